//! `/livez` (process alive, no database) and the seed-compatible `/health` (database reachable).

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::db::Queries;
use crate::error::{ApiError, ApiResult, DATABASE_RETRY_AFTER_SECS};
use crate::response::{json_response, text_response, Body};
use crate::router::{Ctx, Router};

pub fn register_routes(router: &mut Router) {
    router.add(
        Method::GET,
        "/livez",
        json!({
            "summary": "Liveness: the process serves requests (no database access)",
            "tags": ["meta"],
            "responses": {"200": {"description": "Alive", "content": {"text/plain": {"schema": {"const": "ok"}}}}}
        }),
        livez,
    );
    router.add(
        Method::GET,
        "/health",
        json!({
            "summary": "Health with a database check (SELECT 1)",
            "tags": ["meta"],
            "responses": {
                "200": {"description": "Healthy", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["status", "timestamp"],
                    "properties": {"status": {"const": "healthy"}, "timestamp": {"type": "string", "format": "date-time"}}
                }}}},
                "503": {"description": "The database did not answer within DB_TIMEOUT", "headers": {"Retry-After": {"description": "Seconds to wait before asking again", "schema": {"type": "integer", "minimum": 1}}}, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["status", "error"],
                    "properties": {"status": {"const": "unhealthy"}, "error": {"const": "Database connection failed"}}
                }}}}
            }
        }),
        health,
    );
}

async fn livez(_req: Request<Incoming>, _ctx: Ctx) -> ApiResult<Response<Body>> {
    Ok(text_response(StatusCode::OK, "ok"))
}

async fn health(_req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    // Connection and query draw on the request's budget (`DB_TIMEOUT`) like any other request.
    let check = async {
        let client = ctx.state.db().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok::<_, ApiError>(())
    };
    match check.await {
        Ok(()) => Ok(json_response(
            StatusCode::OK,
            &json!({ "status": "healthy", "timestamp": timestamp_now() }),
        )),
        Err(err) => {
            tracing::warn!(
                cause = err.internal_cause().unwrap_or(&err.message),
                "health check: database unreachable"
            );
            let mut response = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "status": "unhealthy", "error": "Database connection failed" }),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(DATABASE_RETRY_AFTER_SECS),
            );
            Ok(response)
        }
    }
}

/// RFC 3339 UTC with milliseconds, the seed's `Date.toISOString()` shape.
fn timestamp_now() -> String {
    OffsetDateTime::now_utc()
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

//! `/livez` (process alive, no database) and the seed-compatible `/health` (database reachable).

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::error::ApiResult;
use crate::http::{json_response, text_response, Body};
use crate::router::{Ctx, Router};

/// The whole `/health` check, connection included, must finish within this.
const HEALTH_DEADLINE: Duration = Duration::from_secs(2);

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
                "503": {"description": "The database is unreachable", "content": {"application/json": {"schema": {
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
    let check = async {
        let client = ctx.state.pool.get().await.map_err(|e| e.to_string())?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| e.to_string())
    };
    let outcome = match tokio::time::timeout(HEALTH_DEADLINE, check).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(cause)) => Err(cause),
        Err(_) => Err("timed out".to_string()),
    };
    match outcome {
        Ok(()) => Ok(json_response(
            StatusCode::OK,
            &json!({ "status": "healthy", "timestamp": timestamp_now() }),
        )),
        Err(cause) => {
            tracing::warn!(cause = %cause, "health check: database unreachable");
            Ok(json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "status": "unhealthy", "error": "Database connection failed" }),
            ))
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

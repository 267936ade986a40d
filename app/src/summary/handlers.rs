//! `GET /api/summary` and its OpenAPI description.

use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::json;

use super::{summarize, timezone, SummaryParams};
use crate::auth::authenticate;
use crate::entries::handlers::{responses, security};
use crate::error::ApiResult;
use crate::query::Query;
use crate::response::{ok_json, Body};
use crate::router::{Ctx, Router};

pub fn register_routes(router: &mut Router) {
    router.schema(
        "SummaryRow",
        json!({
            "type": "object",
            "required": ["key", "hours", "entries"],
            "properties": {
                "key": {"type": "string", "description": "YYYY-MM-DD in `tz`, the project, or the source"},
                "hours": {"type": "number", "minimum": 0},
                "entries": {"type": "integer", "minimum": 1}
            }
        }),
    );
    router.add(
        Method::GET,
        "/api/summary",
        json!({
            "summary": "Hours and entry counts per day, project or source",
            "description": "Computed by PostgreSQL over the caller's entries with from <= date < to. Days are cut at midnight in `tz` (DST included). Groups without entries are not listed; rows are ordered by key.",
            "tags": ["entries"],
            "security": security(),
            "parameters": [
                {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "tz", "in": "query", "schema": {"type": "string", "default": "UTC", "minLength": 1, "maxLength": 64}, "description": "IANA time zone, e.g. Europe/Berlin"},
                {"name": "group_by", "in": "query", "schema": {"type": "string", "enum": ["day", "project", "source"], "default": "day"}}
            ],
            "responses": responses(
                json!({"200": {"description": "One row per group", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/SummaryRow"}}}}}}),
                &[400, 401, 503]
            ),
        }),
        summary,
    );
}

async fn summary(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let user = authenticate(&req, &ctx.state).await?;
    let params = SummaryParams::parse(&Query::from_request(&req))?;
    let client = ctx.state.db().await?;
    let tz = timezone::resolve(&client, "tz", &params.tz).await?;
    let rows = summarize(&client, user.id, &params, &tz).await?;
    Ok(ok_json(&rows))
}

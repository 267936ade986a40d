//! The OpenAPI 3.1 document at `/api/openapi.json`, assembled from the route table so that
//! what is documented and what is served cannot drift apart.

use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use crate::error::{ApiResult, MAX_LISTED_PROBLEMS};
use crate::response::{ok_json, Body};
use crate::router::{Ctx, Router};

pub fn register_routes(router: &mut Router) {
    router.add(
        Method::GET,
        "/api/openapi.json",
        json!({
            "summary": "This document",
            "tags": ["meta"],
            "responses": {"200": {"description": "The OpenAPI 3.1 description of the API", "content": {"application/json": {}}}}
        }),
        serve_document,
    );
}

async fn serve_document(_req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    Ok(ok_json(&ctx.state.openapi))
}

/// The whole document for the routes and schemas registered in `router`.
pub fn document(router: &Router) -> Value {
    let mut schemas = base_schemas();
    if let (Some(base), Value::Object(registered)) =
        (schemas.as_object_mut(), router.openapi_schemas())
    {
        base.extend(registered);
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "time-tracker",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Time entries with imports from Toggl and Tempo. Authenticate with `Authorization: Bearer <token>` from /api/auth/login, or the `session` cookie (unsafe methods then need a matching Origin)."
        },
        "paths": router.openapi_paths(),
        "components": {
            "schemas": schemas,
            "responses": error_response_components(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "session"}
            }
        }
    });
    forbid_nul(&mut document["paths"]);
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        for (name, schema) in schemas.iter_mut() {
            // Error bodies may quote what a client sent.
            if !matches!(name.as_str(), "Error" | "Problem") {
                forbid_nul(schema);
            }
        }
    }
    document
}

/// The pattern of any text the API takes: no NUL character (PostgreSQL text cannot hold
/// one; the server answers 400 naming the field).
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

/// Gives every string schema under `value` without a pattern, format or enum of its own
/// [`NO_NUL_PATTERN`], so that the document states the one rule the server applies to all
/// text.
fn forbid_nul(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let is_string = match map.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
                _ => false,
            };
            let constrained = ["pattern", "format", "enum", "const"]
                .iter()
                .any(|key| map.contains_key(*key));
            if is_string && !constrained {
                map.insert("pattern".to_owned(), json!(NO_NUL_PATTERN));
            }
            map.values_mut().for_each(forbid_nul);
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

/// A required JSON request body of the schema `name` (in `components.schemas`).
pub fn json_body(schema: &str) -> Value {
    json!({
        "required": true,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

/// `responses` entries for the given error statuses, referring to the shared components.
pub fn error_responses(statuses: &[u16]) -> Value {
    let mut map = Map::new();
    for status in statuses {
        if let Some((name, _)) = ERROR_RESPONSES.iter().find(|(_, (s, _))| s == status) {
            map.insert(
                status.to_string(),
                json!({"$ref": format!("#/components/responses/{name}")}),
            );
        }
    }
    Value::Object(map)
}

const ERROR_RESPONSES: &[(&str, (u16, &str))] = &[
    (
        "BadRequest",
        (
            400,
            "Malformed JSON or parameters; `field` names the one at fault",
        ),
    ),
    (
        "Unauthorized",
        (401, "Missing, invalid, expired or revoked credentials"),
    ),
    (
        "Forbidden",
        (
            403,
            "Not allowed (closed registration, foreign or missing Origin with the cookie)",
        ),
    ),
    ("NotFound", (404, "No such resource")),
    ("Conflict", (409, "Conflicts with an existing resource")),
    (
        "PayloadTooLarge",
        (413, "JSON body over 1 MiB or upload over 10 MiB"),
    ),
    ("UnsupportedMediaType", (415, "Wrong Content-Type")),
    (
        "ValidationFailed",
        (
            422,
            "Invalid values; `details` lists the first 100 problems in input order and `total` counts them all",
        ),
    ),
    ("TooManyRequests", (429, "Rate limited; see Retry-After")),
    (
        "ServiceUnavailable",
        (503, "The database is unavailable; see Retry-After"),
    ),
];

fn error_response_components() -> Value {
    let mut map = Map::new();
    for (name, (status, description)) in ERROR_RESPONSES {
        let mut response = json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        });
        if matches!(status, 429 | 503) {
            response["headers"] =
                json!({"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}});
        }
        map.insert((*name).to_string(), response);
    }
    Value::Object(map)
}

fn base_schemas() -> Value {
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                        "message": {"type": "string"},
                        "field": {"type": "string", "description": "The body field or query parameter at fault (400)"},
                        "details": {"type": "array", "maxItems": MAX_LISTED_PROBLEMS, "items": {"$ref": "#/components/schemas/Problem"}},
                        "total": {"type": "integer", "minimum": 1, "description": "With `details` (422): how many problems there are in all"}
                    }
                }
            }
        },
        "Problem": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "field": {"type": "string"},
                "index": {"type": "integer", "minimum": 0, "description": "0-based item of a JSON array"},
                "line": {"type": "integer", "minimum": 1, "description": "1-based line of a CSV file"},
                "message": {"type": "string"}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_schemas_refuse_nul_unless_otherwise_constrained() {
        let mut schema = json!({"type": "object", "properties": {
            "name": {"type": "string"},
            "id": {"type": ["integer", "string"]},
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "pattern": "^[a-z]+$"},
            "n": {"type": "integer"},
            "list": {"type": "array", "items": {"type": ["string", "null"]}}
        }});
        forbid_nul(&mut schema);
        let properties = &schema["properties"];
        assert_eq!(properties["name"]["pattern"], NO_NUL_PATTERN);
        assert_eq!(properties["id"]["pattern"], NO_NUL_PATTERN);
        assert_eq!(properties["list"]["items"]["pattern"], NO_NUL_PATTERN);
        assert!(properties["when"].get("pattern").is_none());
        assert_eq!(properties["code"]["pattern"], "^[a-z]+$");
        assert!(properties["n"].get("pattern").is_none());
        assert_eq!(NO_NUL_PATTERN, r"^[^\u0000]*$");
    }
}

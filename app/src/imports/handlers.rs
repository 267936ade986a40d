//! `/api/import/*` routes and their OpenAPI description.

use http::{header, Method, Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::multipart::{file_field, MultipartError};
use super::{store, tempo, toggl, toggl_csv, Parsed, MAX_ENTRIES, MAX_JSON_INTEGER};
use crate::auth::authenticate;
use crate::entries::handlers::{responses, security};
use crate::entries::model::{MAX_DESCRIPTION_CHARS, MAX_DURATION_HOURS, MAX_PROJECT_CHARS};
use crate::error::{ApiError, ApiResult, Problems, MAX_LISTED_PROBLEMS};
use crate::http::{check_json, read_body, require_json_content_type, UPLOAD_BODY_LIMIT};
use crate::query::Query;
use crate::response::{ok_json, Body};
use crate::router::{Ctx, Router};
use crate::summary::timezone;

/// The longest entry, in seconds.
const MAX_SECONDS: f64 = MAX_DURATION_HOURS * 3600.0;

const IMPORT_ERRORS: [u16; 7] = [400, 401, 403, 413, 415, 422, 503];

fn import_result() -> Value {
    json!({"200": {"description": "Counts of what the import did; a re-import reports every entry unchanged",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImportResult"}}}}})
}

fn tz_parameter() -> Value {
    json!({"name": "tz", "in": "query", "schema": {"type": "string", "default": "UTC", "minLength": 1, "maxLength": 64},
           "description": "IANA time zone of the file's wall-clock times (e.g. Europe/Berlin)"})
}

/// An id as the exports write it: a whole number (in any notation) or a string.
fn id_schema() -> Value {
    json!({"type": ["integer", "string"], "minimum": 0, "maximum": MAX_JSON_INTEGER, "minLength": 1, "maxLength": 255})
}

fn idempotence() -> String {
    format!("All or nothing, in one transaction: any invalid item gives 422 listing the first {MAX_LISTED_PROBLEMS} problems in file order, with `total` counting all, and writes nothing; at most {MAX_ENTRIES} entries per file. A NUL character in any text is a 400 naming the field. Idempotent: entries are matched by (source, external id); identical ones are left untouched. An id repeated in one file with identical content counts once; with different content it is a 422 problem.")
}

pub fn register_routes(router: &mut Router) {
    router.schema(
        "ImportResult",
        json!({
            "type": "object",
            "required": ["inserted", "updated", "unchanged"],
            "properties": {
                "inserted": {"type": "integer", "minimum": 0},
                "updated": {"type": "integer", "minimum": 0},
                "unchanged": {"type": "integer", "minimum": 0}
            }
        }),
    );
    router.schema(
        "TogglTimeEntry",
        json!({
            "type": "object",
            "description": "A Toggl Track API v9 time entry; other fields are ignored.",
            "required": ["id", "start", "duration"],
            "properties": {
                "id": id_schema(),
                "start": {"type": "string", "format": "date-time", "pattern": "^(19[0-9]{2}|[2-9][0-9]{3})-"},
                "stop": {"description": "Ignored: `duration` is what counts"},
                "duration": {"type": "number", "maximum": MAX_SECONDS, "description": "Seconds; negative while running (skipped)"},
                "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION_CHARS},
                "project_id": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_JSON_INTEGER},
                "project_name": {"type": ["string", "null"], "maxLength": MAX_PROJECT_CHARS},
                "server_deleted_at": {"type": ["string", "null"], "description": "Deleted entries are skipped"}
            }
        }),
    );
    router.schema(
        "TempoWorklog",
        json!({
            "type": "object",
            "description": "A Tempo REST API v4 worklog; other fields are ignored.",
            "required": ["tempoWorklogId", "timeSpentSeconds", "startDate"],
            "properties": {
                "tempoWorklogId": id_schema(),
                "issue": {"oneOf": [
                    {"type": "null"},
                    {"type": "object", "properties": {"key": {"type": ["string", "null"], "maxLength": MAX_PROJECT_CHARS}, "id": {"type": ["integer", "string", "null"], "minimum": 0, "maximum": MAX_JSON_INTEGER}},
                     "anyOf": [{"required": ["key"]}, {"required": ["id"]}]}
                ]},
                "timeSpentSeconds": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
                "startDate": {"type": "string", "format": "date", "pattern": "^(19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"},
                "startTime": {"type": ["string", "null"], "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", "description": "HH:MM:SS, default 00:00:00"},
                "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION_CHARS}
            }
        }),
    );

    router.add(
        Method::POST,
        "/api/import/toggl",
        json!({
            "summary": "Import Toggl Track time entries (API v9 JSON)",
            "description": format!("A JSON array as GET /me/time_entries returns it (source `toggl`). Running entries (duration < 0) and deleted ones are skipped. {} Body limit 10 MiB.", idempotence()),
            "tags": ["imports"],
            "security": security(),
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/TogglTimeEntry"}}}}},
            "responses": responses(import_result(), &IMPORT_ERRORS),
        }),
        import_toggl,
    );
    router.add(
        Method::POST,
        "/api/import/tempo",
        json!({
            "summary": "Import Tempo worklogs (REST API v4 JSON)",
            "description": format!("`{{\"results\": [...]}}` as GET /4/worklogs returns it, or a bare array (source `tempo`). The project is the issue key (or id). {} Body limit 10 MiB.", idempotence()),
            "tags": ["imports"],
            "security": security(),
            "parameters": [tz_parameter()],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [
                {"type": "array", "items": {"$ref": "#/components/schemas/TempoWorklog"}},
                {"type": "object", "required": ["results"], "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/TempoWorklog"}}}}
            ]}}}},
            "responses": responses(import_result(), &IMPORT_ERRORS),
        }),
        import_tempo,
    );
    router.add(
        Method::POST,
        "/api/import/csv",
        json!({
            "summary": "Import a Toggl Track detailed-report CSV export",
            "description": format!("multipart/form-data with the CSV in the field `file` (source `toggl-csv`; UTF-8, a BOM is fine). Needs the columns Start date (YYYY-MM-DD), Start time and Duration (HH:MM:SS or decimal hours), or End date and End time instead of Duration; User, Email, Project and Description are used when present. The report has no ids: an entry is identified by a SHA-256 of user, email, start and end, numbered among identical rows, so identical rows stay distinct entries. Problems are listed by line. {} Upload limit 10 MiB.", idempotence()),
            "tags": ["imports"],
            "security": security(),
            "parameters": [tz_parameter()],
            "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary", "description": "The CSV file (text/csv, UTF-8)"}}
            }}}},
            "responses": responses(import_result(), &IMPORT_ERRORS),
        }),
        import_csv,
    );
}

/// The `tz` query parameter as the database spells it (UTC when absent).
async fn import_tz(req: &Request<Incoming>, ctx: &Ctx) -> ApiResult<String> {
    let query = Query::from_request(req);
    query.reject_unknown(&["tz"])?;
    let name = query.get("tz")?.unwrap_or("UTC").to_owned();
    let client = ctx.state.db().await?;
    timezone::resolve(&client, "tz", &name).await
}

/// Reads a JSON import body (up to the upload limit) and checks it whole: syntax errors,
/// NUL characters and repeated keys are 400s naming the field.
async fn read_json_document(req: Request<Incoming>) -> ApiResult<bytes::Bytes> {
    require_json_content_type(req.headers())?;
    let bytes = read_body(req, UPLOAD_BODY_LIMIT).await?;
    check_json(&bytes)?;
    Ok(bytes)
}

async fn store_parsed(
    ctx: &Ctx,
    user_id: uuid::Uuid,
    source: &str,
    tz: &str,
    parsed: Result<Parsed, Problems>,
) -> ApiResult<Response<Body>> {
    let parsed = parsed.map_err(ApiError::from)?;
    let mut client = ctx.state.db().await?;
    let counts = store::import(&mut client, user_id, source, tz, parsed.records).await?;
    tracing::info!(
        source,
        inserted = counts.inserted,
        updated = counts.updated,
        unchanged = counts.unchanged,
        skipped = parsed.skipped,
        "import stored"
    );
    Ok(ok_json(&counts))
}

async fn import_toggl(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let user = authenticate(&req, &ctx.state).await?;
    Query::from_request(&req).reject_unknown(&[])?;
    let document = read_json_document(req).await?;
    // The body is dropped before the records are stored.
    let parsed = toggl::parse(&document);
    drop(document);
    store_parsed(&ctx, user.id, toggl::SOURCE, "UTC", parsed).await
}

async fn import_tempo(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let user = authenticate(&req, &ctx.state).await?;
    let tz = import_tz(&req, &ctx).await?;
    let document = read_json_document(req).await?;
    let parsed = tempo::parse(&document);
    drop(document);
    store_parsed(&ctx, user.id, tempo::SOURCE, &tz, parsed).await
}

async fn import_csv(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let user = authenticate(&req, &ctx.state).await?;
    let tz = import_tz(&req, &ctx).await?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if content_type.is_none() {
        return Err(ApiError::unsupported_media_type("multipart/form-data"));
    }
    let body = read_body(req, UPLOAD_BODY_LIMIT).await?;
    let file = file_field(content_type.as_deref(), body)
        .await
        .map_err(|e| match e {
            MultipartError::NotMultipart => ApiError::unsupported_media_type("multipart/form-data"),
            MultipartError::MissingFile => ApiError::invalid_field(
                "file",
                "is required: send the CSV export as the form field `file`",
            ),
            MultipartError::Malformed(_) => {
                ApiError::bad_request("malformed_multipart", e.to_string())
            }
        })?;
    if let Some(cell) = toggl_csv::find_nul(&file) {
        return Err(ApiError::invalid_field(
            cell.column,
            format!("must not contain NUL characters (line {})", cell.line),
        ));
    }
    let parsed = toggl_csv::parse(&file);
    drop(file);
    store_parsed(&ctx, user.id, toggl_csv::SOURCE, &tz, parsed).await
}

//! `/api/entries` routes and their OpenAPI description.

use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{json, Value};

use super::list::{ListParams, DEFAULT_LIMIT, MAX_LIMIT};
use super::model::{
    CreateEntryBody, EntryChanges, TimeEntry, MAX_DESCRIPTION_CHARS, MAX_DURATION_HOURS,
    MAX_EXTERNAL_ID_CHARS, MAX_PROJECT_CHARS,
};
use super::store::{self, WriteError};
use crate::auth::authenticate;
use crate::error::{ApiError, ApiResult};
use crate::http::read_json;
use crate::openapi::error_responses;
use crate::query::Query;
use crate::response::{created_json, no_content, ok_json, Body};
use crate::router::{Ctx, Router};

/// `responses` with the success entries and the shared error responses.
pub(crate) fn responses(mut success: Value, errors: &[u16]) -> Value {
    if let (Some(map), Value::Object(errors)) = (success.as_object_mut(), error_responses(errors)) {
        map.extend(errors);
    }
    success
}

pub(crate) fn security() -> Value {
    json!([{"bearerAuth": []}, {"cookieAuth": []}])
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn entry_response(status: &str, description: &str) -> Value {
    json!({status: {"description": description, "content": {"application/json": {"schema": schema_ref("TimeEntry")}}}})
}

fn id_parameter() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

/// Dates the API stores start with a year from 1900 to 9999.
const YEARS_1900_TO_9999: &str = "^(19[0-9]{2}|[2-9][0-9]{3})-";

fn writable_properties() -> Value {
    json!({
        "date": {"type": "string", "format": "date-time", "pattern": YEARS_1900_TO_9999, "description": "RFC 3339; years 1900 to 9999"},
        "duration": {"type": "number", "minimum": 0, "maximum": MAX_DURATION_HOURS, "description": "Hours"},
        "source": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$", "description": "Default `manual`"},
        "externalId": {"type": "string", "minLength": 1, "maxLength": MAX_EXTERNAL_ID_CHARS, "description": "Unique per user and source; default: the entry's id"},
        "project": {"type": "string", "maxLength": MAX_PROJECT_CHARS},
        "description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS}
    })
}

pub fn register_routes(router: &mut Router) {
    router.schema(
        "TimeEntry",
        json!({
            "type": "object",
            "required": ["id", "source", "externalId", "date", "duration", "project", "description", "createdAt", "updatedAt"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "source": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"},
                "externalId": {"type": "string", "minLength": 1, "maxLength": MAX_EXTERNAL_ID_CHARS},
                "date": {"type": "string", "format": "date-time"},
                "duration": {"type": "number", "minimum": 0, "description": "Hours"},
                "project": {"type": "string"},
                "description": {"type": "string"},
                "createdAt": {"type": "string", "format": "date-time"},
                "updatedAt": {"type": "string", "format": "date-time"}
            }
        }),
    );
    router.schema(
        "NewTimeEntry",
        json!({
            "type": "object",
            "required": ["date", "duration"],
            "additionalProperties": false,
            "properties": writable_properties()
        }),
    );
    router.schema(
        "TimeEntryChanges",
        json!({
            "type": "object",
            "minProperties": 1,
            "additionalProperties": false,
            "properties": writable_properties()
        }),
    );
    router.schema(
        "TimeEntryPage",
        json!({
            "type": "object",
            "required": ["entries", "nextCursor"],
            "properties": {
                "entries": {"type": "array", "items": schema_ref("TimeEntry")},
                "nextCursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last page"}
            }
        }),
    );

    router.add(
        Method::GET,
        "/api/entries",
        json!({
            "summary": "List the caller's time entries",
            "description": "Ordered by date, then id. Pages are cut by an opaque keyset cursor, so entries added or removed between requests neither repeat nor vanish.",
            "tags": ["entries"],
            "security": security(),
            "parameters": [
                {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "Entries with date >= from (RFC 3339)"},
                {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "Entries with date < to (RFC 3339)"},
                {"name": "source", "in": "query", "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"}},
                {"name": "project", "in": "query", "schema": {"type": "string", "maxLength": MAX_PROJECT_CHARS}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
                {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{48}$"}, "description": "`nextCursor` of the previous page, as given"}
            ],
            "responses": responses(
                json!({"200": {"description": "One page", "content": {"application/json": {"schema": schema_ref("TimeEntryPage")}}}}),
                &[400, 401, 503]
            ),
        }),
        list,
    );
    router.add(
        Method::POST,
        "/api/entries",
        json!({
            "summary": "Create a time entry",
            "tags": ["entries"],
            "security": security(),
            "requestBody": {"required": true, "content": {"application/json": {"schema": schema_ref("NewTimeEntry")}}},
            "responses": responses(entry_response("201", "The new entry"), &[400, 401, 403, 409, 413, 415, 422, 503]),
        }),
        create,
    );
    router.add(
        Method::GET,
        "/api/entries/{id}",
        json!({
            "summary": "One of the caller's time entries",
            "tags": ["entries"],
            "security": security(),
            "parameters": [id_parameter()],
            "responses": responses(entry_response("200", "The entry"), &[401, 404, 503]),
        }),
        get,
    );
    router.add(
        Method::PATCH,
        "/api/entries/{id}",
        json!({
            "summary": "Change fields of a time entry",
            "tags": ["entries"],
            "security": security(),
            "parameters": [id_parameter()],
            "requestBody": {"required": true, "content": {"application/json": {"schema": schema_ref("TimeEntryChanges")}}},
            "responses": responses(entry_response("200", "The changed entry"), &[400, 401, 403, 404, 409, 413, 415, 422, 503]),
        }),
        patch,
    );
    router.add(
        Method::DELETE,
        "/api/entries/{id}",
        json!({
            "summary": "Delete a time entry",
            "tags": ["entries"],
            "security": security(),
            "parameters": [id_parameter()],
            "responses": responses(json!({"204": {"description": "Deleted"}}), &[401, 403, 404, 503]),
        }),
        delete,
    );
}

/// The list response, serialized straight from the entries.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Page<'a> {
    entries: &'a [TimeEntry],
    next_cursor: Option<String>,
}

fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::Duplicate => ApiError::conflict(
            "duplicate_entry",
            "You already have an entry with this source and externalId.",
        ),
        WriteError::Db(e) => e.into(),
    }
}

async fn list(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let user = authenticate(&req, &ctx.state).await?;
    let params = ListParams::parse(&Query::from_request(&req))?;
    let client = ctx.state.db().await?;
    let (entries, next) = store::list(&client, user.id, &params).await?;
    drop(client);
    Ok(ok_json(&Page {
        entries: &entries,
        next_cursor: next.map(|c| c.encode()),
    }))
}

async fn create(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let user = authenticate(&req, &ctx.state).await?;
    let body: CreateEntryBody = read_json(req).await?;
    let entry = body.validate().map_err(ApiError::validation)?;
    let client = ctx.state.db().await?;
    let created = store::create(&client, user.id, &entry)
        .await
        .map_err(write_error)?;
    Ok(created_json(&created))
}

async fn get(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let user = authenticate(&req, &ctx.state).await?;
    let id = ctx.params.uuid("id")?;
    let client = ctx.state.db().await?;
    match store::get(&client, user.id, id).await? {
        Some(entry) => Ok(ok_json(&entry)),
        None => Err(ApiError::not_found()),
    }
}

async fn patch(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let user = authenticate(&req, &ctx.state).await?;
    let id = ctx.params.uuid("id")?;
    let changes: EntryChanges = read_json(req).await?;
    let changes = changes.validate().map_err(ApiError::validation)?;
    let client = ctx.state.db().await?;
    match store::update(&client, user.id, id, &changes)
        .await
        .map_err(write_error)?
    {
        Some(entry) => Ok(ok_json(&entry)),
        None => Err(ApiError::not_found()),
    }
}

async fn delete(req: Request<Incoming>, ctx: Ctx) -> ApiResult<Response<Body>> {
    let user = authenticate(&req, &ctx.state).await?;
    let id = ctx.params.uuid("id")?;
    let client = ctx.state.db().await?;
    if store::delete(&client, user.id, id).await? {
        Ok(no_content())
    } else {
        Err(ApiError::not_found())
    }
}

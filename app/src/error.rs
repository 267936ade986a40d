//! The one error type every handler returns, and its JSON rendering:
//! `{"error":{"code":"snake_case","message":"...","details":[...],"total":N}}`.

use std::fmt;

use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::response::{json_response, Body};

/// `Retry-After` of a 503 for an unavailable database: short, so that a client that follows it
/// is back within seconds of the database (a restart or failover takes about that long).
pub const DATABASE_RETRY_AFTER_SECS: u64 = 2;

/// One problem found while validating input, reported in a 422's `details`.
///
/// `field` names a JSON field, `index` an item of an array and `line` a line of a file;
/// any combination may be set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    /// A problem with one field of the request body.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            index: None,
            line: None,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A problem with item `index` (0-based) of an array.
    pub fn index(index: usize, message: impl Into<String>) -> Self {
        Problem {
            index: Some(index),
            line: None,
            field: None,
            message: message.into(),
        }
    }

    /// A problem on line `line` (1-based) of an uploaded file.
    pub fn line(line: usize, message: impl Into<String>) -> Self {
        Problem {
            index: None,
            line: Some(line),
            field: None,
            message: message.into(),
        }
    }

    /// Adds the field name to an index or line problem.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Where in the input the problem is: problems about the whole input come first.
    fn position(&self) -> usize {
        self.index.or(self.line).unwrap_or(0)
    }
}

/// Most problems a 422 lists; the others are only counted (`total`).
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// The problems found in one request: the first [`MAX_LISTED_PROBLEMS`] in input order, and
/// how many there are in all. A file full of mistakes then costs no more memory, and gets no
/// longer an answer, than one with a hundred.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    /// Sorted by position; problems at one position keep the order they were found in.
    listed: Vec<Problem>,
    total: usize,
}

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `problem`, and keeps it when it is among the first by position.
    pub fn push(&mut self, problem: Problem) {
        self.total += 1;
        let position = problem.position();
        if self.listed.len() == MAX_LISTED_PROBLEMS
            && self
                .listed
                .last()
                .is_some_and(|last| last.position() <= position)
        {
            return;
        }
        let at = self.listed.partition_point(|p| p.position() <= position);
        self.listed.insert(at, problem);
        self.listed.truncate(MAX_LISTED_PROBLEMS);
    }

    /// How many problems were found, listed or not.
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The first problems, in input order.
    pub fn listed(&self) -> &[Problem] {
        &self.listed
    }

    /// `Ok(value)` when no problem was found.
    pub fn or_ok<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl FromIterator<Problem> for Problems {
    fn from_iter<I: IntoIterator<Item = Problem>>(problems: I) -> Self {
        let mut all = Problems::new();
        for problem in problems {
            all.push(problem);
        }
        all
    }
}

/// An error answered to the client. The message is always safe to show; internal causes
/// are kept apart (`internal`) and only logged.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// What only some errors carry, boxed to keep `Result<_, ApiError>` small.
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Default)]
struct Extra {
    /// The offending field or query parameter of a 400.
    field: Option<String>,
    /// The problems of a 422 (the first ones, and how many in all).
    problems: Problems,
    /// Seconds, for 429 and 503.
    retry_after: Option<u64>,
    /// The `Allow` header of a 405.
    allow: Option<String>,
    /// The cause, for the log only: never sent to the client.
    internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// The body field or query parameter a 400 is about.
    pub fn field(&self) -> Option<&str> {
        self.extra.as_ref()?.field.as_deref()
    }

    /// The problems listed by a 422.
    pub fn details(&self) -> &[Problem] {
        self.extra
            .as_ref()
            .map_or(&[], |extra| extra.problems.listed())
    }

    /// `Retry-After` in seconds, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.extra.as_ref()?.retry_after
    }

    /// The internal cause (for the log), if any.
    pub fn internal_cause(&self) -> Option<&str> {
        self.extra.as_ref()?.internal.as_deref()
    }

    /// Sets `Retry-After` (seconds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.extra_mut().retry_after = Some(secs);
        self
    }

    /// Records the internal cause for the log.
    pub fn with_internal(mut self, cause: impl fmt::Display) -> Self {
        self.extra_mut().internal = Some(cause.to_string());
        self
    }

    /// 400 for malformed input that is not about one field (e.g. JSON syntax).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 naming the body field at fault (missing, wrong type).
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let mut err = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!("Field `{field}`: {}", message.into()),
        );
        err.extra_mut().field = Some(field);
        err
    }

    /// 400 naming the query parameter at fault.
    pub fn invalid_parameter(name: impl Into<String>, message: impl Into<String>) -> Self {
        let name = name.into();
        let mut err = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("Query parameter `{name}`: {}", message.into()),
        );
        err.extra_mut().field = Some(name);
        err
    }

    /// 401: no, or no valid, credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required: send a valid bearer token or session cookie.",
        )
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource does not exist.",
        )
    }

    /// 405 with the methods the path does accept.
    pub fn method_not_allowed(allow: impl Into<String>) -> Self {
        let allow = allow.into();
        let mut err = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("This path accepts only: {allow}."),
        );
        err.extra_mut().allow = Some(allow);
        err
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 413 for a body larger than `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The request body exceeds the limit of {limit} bytes."),
        )
    }

    /// 415 naming the content type this route accepts.
    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type must be {expected}."),
        )
    }

    /// 422 listing the problems found (the first [`MAX_LISTED_PROBLEMS`] of them).
    pub fn validation(details: Vec<Problem>) -> Self {
        Self::from(details.into_iter().collect::<Problems>())
    }

    /// 429 with `Retry-After` in seconds (at least 1).
    pub fn too_many_requests(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut err = Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message);
        err.extra_mut().retry_after = Some(retry_after_secs.max(1));
        err
    }

    /// 503 when the database cannot be reached in time, with `Retry-After:
    /// DATABASE_RETRY_AFTER_SECS`; the cause goes to the log only.
    pub fn database_unavailable(cause: impl fmt::Display) -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "The database is unavailable; try again shortly.",
        );
        err.extra_mut().retry_after = Some(DATABASE_RETRY_AFTER_SECS);
        err.extra_mut().internal = Some(cause.to_string());
        err
    }

    /// 503 for a temporarily exhausted resource other than the database.
    pub fn busy(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut err = Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message);
        err.extra_mut().retry_after = Some(retry_after_secs.max(1));
        err
    }

    /// 500: the cause goes to the log only, the client gets a fixed sentence.
    pub fn internal(cause: impl fmt::Display) -> Self {
        let mut err = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "An internal error occurred.",
        );
        err.extra_mut().internal = Some(cause.to_string());
        err
    }

    /// The JSON response for this error.
    pub fn into_response(self) -> Response<Body> {
        let extra = self.extra.unwrap_or_default();
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = &extra.field {
            error["field"] = json!(field);
        }
        if !extra.problems.is_empty() {
            error["details"] = json!(extra.problems.listed());
            error["total"] = json!(extra.problems.total());
        }
        let mut response = json_response(self.status, &json!({ "error": error }));
        let headers = response.headers_mut();
        if let Some(secs) = extra.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = &extra.allow {
            if let Ok(value) = HeaderValue::from_str(allow) {
                headers.insert(header::ALLOW, value);
            }
        }
        response
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl From<Problems> for ApiError {
    /// 422 with the first problems and their total count.
    fn from(problems: Problems) -> Self {
        let (total, listed) = (problems.total(), problems.listed().len());
        let message = if total == 1 {
            "The request has 1 invalid value.".to_string()
        } else if listed < total {
            format!("The request has {total} invalid values; the first {listed} are listed.")
        } else {
            format!("The request has {total} invalid values.")
        };
        let mut err = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        );
        err.extra_mut().problems = problems;
        err
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        ApiError::database_unavailable(err)
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match err {
            DbError::Deadline => ApiError::database_unavailable(err),
            DbError::Pool(err) => err.into(),
            DbError::Postgres(err) => err.into(),
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        if is_connection_failure(&err) {
            ApiError::database_unavailable(err)
        } else {
            // A query the server rejected, or parameters/columns of the wrong type: a bug or a
            // constraint the handler did not map.
            ApiError::internal(err)
        }
    }
}

/// Whether the database could not be reached or the connection broke, as opposed to a
/// query that failed on its own terms.
fn is_connection_failure(err: &tokio_postgres::Error) -> bool {
    if let Some(code) = err.code() {
        return is_unavailable_sqlstate(code);
    }
    if err.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if inner.is::<std::io::Error>() {
            return true;
        }
        source = inner.source();
    }
    // tokio-postgres exposes no error kind; its Display starts with a fixed phrase per kind.
    let text = err.to_string();
    [
        "error connecting",
        "timeout",
        "error performing TLS",
        "connection closed",
    ]
    .iter()
    .any(|phrase| text.starts_with(phrase))
}

/// SQLSTATEs that mean the server cannot serve right now rather than that the query is wrong.
fn is_unavailable_sqlstate(code: &tokio_postgres::error::SqlState) -> bool {
    use tokio_postgres::error::SqlState;
    [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::QUERY_CANCELED,
        SqlState::READ_ONLY_SQL_TRANSACTION,
    ]
    .contains(code)
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(err: ApiError) -> (Response<()>, serde_json::Value) {
        let response = err.into_response();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            Response::from_parts(parts, ()),
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let (response, body) = body_of(ApiError::internal(
            "relation \"users\" does not exist at db:5432",
        ))
        .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(!body.to_string().contains("users"));
        let (response, body) = body_of(ApiError::database_unavailable("connection refused")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body.to_string().contains("refused"));
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[tokio::test]
    async fn a_missed_database_deadline_is_a_503_with_retry_after() {
        let err = ApiError::from(crate::db::DbError::Deadline);
        assert_eq!(
            err.internal_cause(),
            Some("database work did not finish within its deadline")
        );
        let (response, body) = body_of(err).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "database_unavailable");
        assert_eq!(
            response.headers()[header::RETRY_AFTER],
            DATABASE_RETRY_AFTER_SECS.to_string().as_str()
        );
    }

    #[tokio::test]
    async fn validation_lists_every_problem() {
        let err = ApiError::validation(vec![
            Problem::field("email", "is required"),
            Problem::index(3, "duration must be >= 0").with_field("duration"),
            Problem::line(7, "bad date"),
        ]);
        let (response, body) = body_of(err).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body["error"]["details"],
            serde_json::json!([
                {"field": "email", "message": "is required"},
                {"index": 3, "field": "duration", "message": "duration must be >= 0"},
                {"line": 7, "message": "bad date"}
            ])
        );
        assert_eq!(body["error"]["total"], 3);
    }

    #[tokio::test]
    async fn validation_lists_the_first_problems_in_input_order_and_counts_all() {
        let mut problems = Problems::new();
        // Found out of order (a later check reports an earlier item), and far too many.
        for index in (0..1_000).rev().chain(0..1_000) {
            problems.push(Problem::index(index, "bad"));
        }
        assert_eq!(problems.total(), 2_000);
        let (response, body) = body_of(ApiError::from(problems)).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let details = body["error"]["details"].as_array().unwrap();
        assert_eq!(details.len(), MAX_LISTED_PROBLEMS);
        let indexes: Vec<u64> = details
            .iter()
            .map(|p| p["index"].as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = (0..50).flat_map(|i| [i, i]).collect();
        assert_eq!(indexes, expected);
        assert_eq!(body["error"]["total"], 2_000);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("first 100"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn method_not_allowed_and_rate_limits_carry_their_headers() {
        let (response, _) = body_of(ApiError::method_not_allowed("GET, HEAD, OPTIONS")).await;
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD, OPTIONS");
        let (response, _) = body_of(ApiError::too_many_requests("slow down", 0)).await;
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}

//! Request bodies with size limits, JSON decoding that names the field at fault, and
//! response builders.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};

/// The body type of every response.
pub type Body = Full<Bytes>;

/// Largest JSON request body accepted (1 MiB).
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// Largest upload accepted (10 MiB).
pub const UPLOAD_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// A response with a JSON body.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = Response::new(Full::new(Bytes::from(bytes)));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "response serialization failed");
            let mut response = Response::new(Full::new(Bytes::from_static(
                br#"{"error":{"code":"internal_error","message":"An internal error occurred."}}"#,
            )));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
    }
}

/// 200 with a JSON body.
pub fn ok_json<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json_response(StatusCode::OK, value)
}

/// 201 with a JSON body.
pub fn created_json<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json_response(StatusCode::CREATED, value)
}

/// 204 with no body.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// A plain-text response.
pub fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The media type of the request (lower-cased, without parameters), if any.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// 415 unless the request declares a JSON body (`application/json` or `*/*+json`, UTF-8).
pub fn require_json_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let expected = "application/json";
    let Some(essence) = media_type(headers) else {
        return Err(ApiError::unsupported_media_type(expected));
    };
    if essence != expected && !essence.ends_with("+json") {
        return Err(ApiError::unsupported_media_type(expected));
    }
    // JSON is UTF-8 (RFC 8259); refuse a declared different charset rather than misread it.
    let declared_charset = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .into_iter()
        .flat_map(|value| value.split(';').skip(1))
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches('"').to_ascii_lowercase());
    match declared_charset.as_deref() {
        None | Some("utf-8") | Some("utf8") => Ok(()),
        Some(_) => Err(ApiError::unsupported_media_type(
            "application/json; charset=utf-8",
        )),
    }
}

/// 415 unless the request's media type is `expected` (e.g. `multipart/form-data`).
pub fn require_media_type(headers: &HeaderMap, expected: &str) -> ApiResult<()> {
    match media_type(headers) {
        Some(essence) if essence.eq_ignore_ascii_case(expected) => Ok(()),
        _ => Err(ApiError::unsupported_media_type(expected)),
    }
}

/// The declared Content-Length, if any.
fn declared_length(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request("invalid_content_length", "Content-Length is not a number.")
            }),
    }
}

/// Reads the whole body, at most `limit` bytes: a declared Content-Length over the limit is
/// refused before anything is read, and a body without one is cut off at the limit.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> ApiResult<Bytes> {
    let (parts, body) = req.into_parts();
    let timeout = parts
        .extensions
        .get::<BodyReadTimeout>()
        .map_or(DEFAULT_BODY_READ_TIMEOUT, |t| t.0);
    tokio::time::timeout(timeout, read_body_parts(&parts.headers, body, limit))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "The request body did not arrive in time.",
            )
        })?
}

/// How long reading a request body may take; the server puts `BODY_READ_TIMEOUT` into every
/// request's extensions (a client trickling its body must not hold a task forever).
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub std::time::Duration);

/// Used when a request carries no [`BodyReadTimeout`].
pub const DEFAULT_BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// [`read_body`] for a body already split from its request.
pub async fn read_body_parts<B>(headers: &HeaderMap, body: B, limit: usize) -> ApiResult<Bytes>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some(length) = declared_length(headers)? {
        if length > limit as u64 {
            return Err(ApiError::payload_too_large(limit));
        }
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(err) => Err(ApiError::bad_request(
            "body_read_failed",
            format!("The request body could not be read: {err}."),
        )),
    }
}

/// Checks the content type, reads at most [`JSON_BODY_LIMIT`] bytes and decodes them into
/// `T`. Malformed JSON, a missing field or a field of the wrong type is a 400 naming it.
pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> ApiResult<T> {
    require_json_content_type(req.headers())?;
    let bytes = read_body(req, JSON_BODY_LIMIT).await?;
    decode_json(&bytes)
}

/// Decodes a JSON document into `T`, with errors that name the field at fault.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "malformed_json",
            "The request body is empty; a JSON document is required.",
        ));
    }
    // Syntax first (the whole document, trailing characters included), then the shape.
    let document: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        ApiError::bad_request(
            "malformed_json",
            format!("The request body is not valid JSON: {err}."),
        )
    })?;
    serde_path_to_error::deserialize(document).map_err(json_error)
}

fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if !inner.is_data() {
        return ApiError::bad_request(
            "malformed_json",
            format!("The request body is not valid JSON: {inner}."),
        );
    }
    let message = inner.to_string();
    // serde_json appends the position; the field name says more to a client.
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message,
    };
    // A missing field is reported at its parent's path with the name in the message.
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let field = if path == "." {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        return ApiError::invalid_field(field, "is required");
    }
    if path == "." {
        return ApiError::bad_request(
            "invalid_body",
            format!("The request body has the wrong shape: {message}."),
        );
    }
    ApiError::invalid_field(path, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    #[test]
    fn names_the_missing_field() {
        let err = decode_json::<Login>(br#"{"email":"a@b.c"}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.field(), Some("password"));
    }

    #[test]
    fn names_the_wrongly_typed_field() {
        let err = decode_json::<Login>(br#"{"email":5,"password":"x"}"#).unwrap_err();
        assert_eq!(err.field(), Some("email"));
        assert!(err.message.contains("invalid type"), "{}", err.message);
    }

    #[test]
    fn malformed_json_and_trailing_garbage_are_400() {
        for body in [&b"{"[..], b"", b"   ", b"{\"email\":\"a\",}", b"{} x"] {
            let err = decode_json::<serde_json::Value>(body).unwrap_err();
            assert_eq!(
                err.code,
                "malformed_json",
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_non_object_body_is_400() {
        let err = decode_json::<Login>(b"\"text\"").unwrap_err();
        assert_eq!(err.code, "invalid_body");
    }

    #[test]
    fn content_type_rules() {
        let mut headers = HeaderMap::new();
        assert!(require_json_content_type(&headers).is_err());
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=UTF-8", true),
            ("application/merge-patch+json", true),
            ("application/json; charset=latin1", false),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(require_json_content_type(&headers).is_ok(), ok, "{value}");
        }
    }
}

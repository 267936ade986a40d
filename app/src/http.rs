//! Request bodies with size limits and JSON decoding that names the field at fault.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};

/// Largest JSON request body accepted (1 MiB).
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// Largest upload accepted (10 MiB).
pub const UPLOAD_BODY_LIMIT: usize = 10 * 1024 * 1024;

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
    let declared = declared_length(headers)?;
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    // Frames are appended to one buffer as they arrive (sized by Content-Length when given),
    // so that a large body is held once, not as its frames plus their concatenation.
    let mut buffer = BytesMut::with_capacity(declared.map_or(0, |length| length as usize));
    let mut body = std::pin::pin!(Limited::new(body, limit));
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    buffer.extend_from_slice(&data);
                }
            }
            Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(ApiError::payload_too_large(limit));
            }
            Err(err) => {
                return Err(ApiError::bad_request(
                    "body_read_failed",
                    format!("The request body could not be read: {err}."),
                ))
            }
        }
    }
    Ok(buffer.freeze())
}

/// Checks the content type, reads at most [`JSON_BODY_LIMIT`] bytes and decodes them into
/// `T`. Malformed JSON, a missing field or a field of the wrong type is a 400 naming it.
pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> ApiResult<T> {
    require_json_content_type(req.headers())?;
    let bytes = read_body(req, JSON_BODY_LIMIT).await?;
    decode_json(&bytes)
}

/// Decodes a JSON object into `T`, with errors that name the field at fault.
///
/// The document is checked first ([`check_json`]); a body that is not an object is refused
/// as such (serde would otherwise read a struct from an array, field by position).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    check_json(bytes)?;
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[') => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "The request body must be a JSON object ({...}), not an array.",
            ))
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "The request body must be a JSON object ({...}).",
            ))
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)
}

/// Checks a whole JSON document before anything reads it: syntax (trailing characters
/// included), no NUL character in any string or key (PostgreSQL text cannot hold one), and
/// no key twice in one object (which of the values was meant?). Each is a 400 naming the
/// field. Nothing of the document is kept, so this costs no memory however big it is.
pub fn check_json(bytes: &[u8]) -> ApiResult<()> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "malformed_json",
            "The request body is empty; a JSON document is required.",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize::<_, CheckedJson>(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(|err| {
        ApiError::bad_request(
            "malformed_json",
            format!("The request body is not valid JSON: {err}."),
        )
    })
}

const NUL_MESSAGE: &str = "must not contain NUL characters";
const DUPLICATE_KEY_PREFIX: &str = "duplicate field `";
const NUL_KEY_PREFIX: &str = "NUL character in the key `";

/// A JSON value walked by [`check_json`] (and dropped as it goes).
struct CheckedJson;

impl<'de> Deserialize<'de> for CheckedJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedJson)
    }
}

impl<'de> Visitor<'de> for CheckedJson {
    type Value = CheckedJson;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(CheckedJson)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(CheckedJson)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(CheckedJson)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(CheckedJson)
    }

    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(CheckedJson)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self, E> {
        if value.contains('\0') {
            return Err(E::custom(NUL_MESSAGE));
        }
        Ok(CheckedJson)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<CheckedJson>()?.is_some() {}
        Ok(CheckedJson)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        // Keys borrow from the document unless they contain escapes.
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(CheckedKey(key)) = map.next_key()? {
            if key.contains('\0') {
                return Err(de::Error::custom(format!(
                    "{NUL_KEY_PREFIX}{}`",
                    key.escape_default()
                )));
            }
            if seen.contains(&key) {
                return Err(de::Error::custom(format!("{DUPLICATE_KEY_PREFIX}{key}`")));
            }
            map.next_value::<CheckedJson>()?;
            seen.insert(key);
        }
        Ok(CheckedJson)
    }
}

/// An object key, borrowed from the document when it can be.
struct CheckedKey<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for CheckedKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = CheckedKey<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(CheckedKey(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
                Ok(CheckedKey(Cow::Owned(key.to_owned())))
            }

            fn visit_string<E>(self, key: String) -> Result<Self::Value, E> {
                Ok(CheckedKey(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
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
    // A problem with a key is reported at its object's path with the key in the message.
    let child = |name: &str| {
        if path == "." {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let key_in = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .map(|rest| rest.strip_suffix('`').unwrap_or(rest).to_owned())
    };
    if let Some(name) = key_in("missing field `") {
        return ApiError::invalid_field(child(&name), "is required");
    }
    if let Some(name) = key_in(DUPLICATE_KEY_PREFIX) {
        return ApiError::invalid_field(
            child(&name),
            "is given more than once; give each key once",
        );
    }
    if let Some(name) = key_in(NUL_KEY_PREFIX) {
        return ApiError::invalid_field(child(&name), "the key must not contain NUL characters");
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
    use http::HeaderValue;
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
        // serde would read the struct from an array by position and blame "[0]".
        for body in [
            &br#"[{"email":"a@b.c","password":"x"}]"#[..],
            br#"["a@b.c","x"]"#,
        ] {
            let err = decode_json::<Login>(body).unwrap_err();
            assert_eq!(err.code, "invalid_body");
            assert!(err.message.contains("not an array"), "{}", err.message);
            assert_eq!(err.field(), None);
        }
    }

    #[test]
    fn a_nul_character_anywhere_is_400_naming_the_field() {
        let err = decode_json::<Login>(br#"{"email":"a@b.co\u0000","password":"whatever1"}"#)
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.field(), Some("email"));
        assert!(err.message.contains("NUL"), "{}", err.message);
        // Also where nothing reads it, nested, and in keys; an escaped backslash is no NUL.
        for (body, field) in [
            (
                &br#"{"email":"a","password":"b","x":{"y":["ok","\u0000"]}}"#[..],
                "x.y[1]",
            ),
            (br#"{"email":"a","password":"b","k\u0000":1}"#, "k\\u{0}"),
        ] {
            let err = decode_json::<Login>(body).unwrap_err();
            assert_eq!(err.field(), Some(field), "{}", err.message);
        }
        assert!(decode_json::<Login>(br#"{"email":"\\u0000","password":"x"}"#).is_ok());
        assert!(
            check_json(br#"[{"id":1,"d":"\u0000"}]"#)
                .unwrap_err()
                .field()
                == Some("[0].d")
        );
    }

    #[test]
    fn a_key_given_twice_is_400_naming_it() {
        let err = decode_json::<Login>(br#"{"email":"a@b.c","password":"x","email":"c@d.e"}"#)
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.field(), Some("email"));
        assert!(err.message.contains("more than once"), "{}", err.message);
        // Spelt differently but the same key once decoded; and deep inside an array.
        let err = check_json(br#"{"a":1,"\u0061":2}"#).unwrap_err();
        assert_eq!(err.field(), Some("a"));
        let err = check_json(br#"[{}, {"x": {"y": 1, "y": 1}}]"#).unwrap_err();
        assert_eq!(err.field(), Some("[1].x.y"));
        // The same key in different objects is fine.
        assert!(check_json(br#"[{"y": 1}, {"y": 2, "z": {"y": 3}}]"#).is_ok());
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

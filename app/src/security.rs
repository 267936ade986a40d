//! Response security headers, CORS for the configured origins, and the `Origin` check that
//! keeps other sites from making a browser send unsafe requests with its cookie.

use http::{header, HeaderMap, HeaderValue, Method};

use crate::config::normalize_origin;
use crate::error::{ApiError, ApiResult};

/// Headers set on every response.
pub fn apply_security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    // Responses carry personal data and session tokens: no shared or private caching.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// Whether `method` may change state (anything but GET, HEAD, OPTIONS, TRACE).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The request's `Origin`, as sent.
pub fn request_origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN)?.to_str().ok()
}

/// Whether `origin` is one of `CORS_ORIGINS`.
pub fn is_allowed_cors_origin(origin: &str, cors_origins: &[String]) -> bool {
    normalize_origin(origin).is_some_and(|o| cors_origins.contains(&o))
}

/// Whether `origin` names this server as the client reached it (the `Host` header). The
/// scheme is not compared: behind a TLS-terminating proxy the app only sees plain HTTP.
pub fn is_same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(origin) = url::Url::parse(origin) else {
        return false;
    };
    let (Some(origin_host), Some(origin_port)) =
        (origin.host_str(), origin.port_or_known_default())
    else {
        return false;
    };
    let Ok(host) = url::Url::parse(&format!("{}://{host}", origin.scheme())) else {
        return false;
    };
    host.host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
        && host.port_or_known_default() == Some(origin_port)
        && host.path() == "/"
}

/// Whether `origin` may make requests here: this server itself or one of `CORS_ORIGINS`.
pub fn is_trusted_origin(origin: &str, headers: &HeaderMap, cors_origins: &[String]) -> bool {
    is_same_origin(origin, headers) || is_allowed_cors_origin(origin, cors_origins)
}

/// Refuses an unsafe request that a browser sent from a foreign origin, whatever its
/// credentials. Requests without `Origin` (non-browser clients) pass here; cookie
/// authentication separately requires it ([`require_origin_for_cookie`]).
pub fn check_foreign_origin(
    method: &Method,
    headers: &HeaderMap,
    cors_origins: &[String],
) -> ApiResult<()> {
    if !is_unsafe(method) {
        return Ok(());
    }
    match request_origin(headers) {
        None => Ok(()),
        Some(origin) if is_trusted_origin(origin, headers, cors_origins) => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "origin_not_allowed",
            "Requests from this origin are not allowed.",
        )),
    }
}

/// A cookie-authenticated unsafe request must carry an `Origin` naming this server or one of
/// `CORS_ORIGINS`: the cookie alone would let any site act as the user.
pub fn require_origin_for_cookie(
    method: &Method,
    headers: &HeaderMap,
    cors_origins: &[String],
) -> ApiResult<()> {
    if is_unsafe(method) && request_origin(headers).is_none() {
        return Err(ApiError::forbidden(
            "origin_required",
            "A request authenticated by the session cookie must carry an Origin header; \
             API clients should send Authorization: Bearer instead.",
        ));
    }
    check_foreign_origin(method, headers, cors_origins)
}

/// Adds the CORS response headers when the request comes from one of `CORS_ORIGINS`.
pub fn apply_cors_headers(
    request_headers: &HeaderMap,
    response_headers: &mut HeaderMap,
    cors_origins: &[String],
) {
    if cors_origins.is_empty() {
        return;
    }
    // The answer depends on Origin even when it is refused: caches must keep them apart.
    response_headers.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = request_origin(request_headers) else {
        return;
    };
    if !is_allowed_cors_origin(origin, cors_origins) {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(origin) {
        response_headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        response_headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        response_headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
}

/// The headers of an allowed preflight answer (`allow` lists the path's methods).
pub fn apply_preflight_headers(response_headers: &mut HeaderMap, allow: &str) {
    if let Ok(value) = HeaderValue::from_str(allow) {
        response_headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value);
    }
    response_headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    response_headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn same_origin_compares_host_and_port() {
        let h = headers(&[("host", "localhost:3000")]);
        assert!(is_same_origin("http://localhost:3000", &h));
        assert!(is_same_origin("https://LOCALHOST:3000", &h));
        assert!(!is_same_origin("http://localhost:3001", &h));
        assert!(!is_same_origin("http://evil.example", &h));
        assert!(!is_same_origin("null", &h));
        let h = headers(&[("host", "api.example.com")]);
        assert!(is_same_origin("https://api.example.com", &h));
        assert!(!is_same_origin("https://api.example.com:8443", &h));
        assert!(!is_same_origin("https://api.example.com.evil.example", &h));
    }

    #[test]
    fn cookie_requests_need_a_trusted_origin() {
        let cors = vec!["https://app.example.com".to_string()];
        let post = Method::POST;
        let none = headers(&[("host", "api.example.com")]);
        assert_eq!(
            require_origin_for_cookie(&post, &none, &cors)
                .unwrap_err()
                .code,
            "origin_required"
        );
        assert!(require_origin_for_cookie(&Method::GET, &none, &cors).is_ok());
        let foreign = headers(&[
            ("host", "api.example.com"),
            ("origin", "https://evil.example"),
        ]);
        assert_eq!(
            require_origin_for_cookie(&post, &foreign, &cors)
                .unwrap_err()
                .code,
            "origin_not_allowed"
        );
        assert!(check_foreign_origin(&post, &foreign, &cors).is_err());
        let listed = headers(&[
            ("host", "api.example.com"),
            ("origin", "https://app.example.com"),
        ]);
        assert!(require_origin_for_cookie(&post, &listed, &cors).is_ok());
        let own = headers(&[
            ("host", "api.example.com"),
            ("origin", "https://api.example.com"),
        ]);
        assert!(require_origin_for_cookie(&post, &own, &cors).is_ok());
    }
}

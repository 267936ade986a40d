//! The rules every route shares, against the real binary: error bodies, body limits, content
//! types, methods, security headers, CORS, origins and the OpenAPI document.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};
use support::{migrated_db, start_app};
use testkit::http::{connect, read_response};
use testkit::Response;

/// How long the raw-socket requests wait for an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

fn assert_security_headers(response: &Response) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(response.header(name), Some(*value), "{name}");
    }
    assert!(response
        .header("content-security-policy")
        .unwrap()
        .starts_with("default-src 'none'"));
}

#[test]
fn malformed_requests_get_clear_errors() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[]);
    let json_type = ("Content-Type", "application/json");
    let post = |body: &[u8], headers: &[(&str, &str)]| {
        app.api()
            .request("POST", "/api/auth/register", headers, Some(body))
    };

    // Malformed JSON.
    for body in [
        &b"{"[..],
        b"{\"email\": }",
        b"",
        b"{} trailing",
        b"\xff\xfe",
    ] {
        let response = post(body, &[json_type]);
        response.expect(400);
        assert_eq!(response.error_code(), "malformed_json", "{body:?}");
        assert_security_headers(&response);
    }
    // Missing and wrongly typed fields are named.
    for (body, field) in [
        (json!({"email": "a@example.com"}), "password"),
        (json!({"password": "long enough"}), "email"),
        (json!({"email": 42, "password": "long enough"}), "email"),
        (
            json!({"email": "a@example.com", "password": ["x"]}),
            "password",
        ),
        (json!({"email": null, "password": "long enough"}), "email"),
    ] {
        let response = post(body.to_string().as_bytes(), &[json_type]);
        response.expect(400);
        let error = &response.json()["error"];
        assert_eq!(error["code"], "invalid_field", "{body}");
        assert_eq!(error["field"], field, "{body}");
        assert!(error["message"].as_str().unwrap().contains(field));
    }
    // Not an object.
    let response = post(b"[1, 2]", &[json_type]);
    response.expect(400);

    // Validation lists every problem.
    let response = post(
        json!({"email": "not-an-email", "password": "short"})
            .to_string()
            .as_bytes(),
        &[json_type],
    );
    response.expect(422);
    let error = response.json()["error"].clone();
    assert_eq!(error["code"], "validation_failed");
    let fields: BTreeSet<&str> = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, BTreeSet::from(["email", "password"]));
    let long = "x".repeat(1025);
    let response = post(
        json!({"email": "a@example.com", "password": long})
            .to_string()
            .as_bytes(),
        &[json_type],
    );
    response.expect(422);

    // Wrong or missing content type.
    let body = json!({"email": "a@example.com", "password": "long enough"}).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/json; charset=latin1"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| vec![("Content-Type", t)])
            .unwrap_or_default();
        let response = post(body.as_bytes(), &headers);
        response.expect(415);
        assert_eq!(response.error_code(), "unsupported_media_type");
    }

    // Wrong methods and unknown paths.
    let response = app.api().get("/api/auth/login", &[]);
    response.expect(405);
    assert_eq!(response.header("allow"), Some("POST, OPTIONS"));
    assert_eq!(response.error_code(), "method_not_allowed");
    let response = app.api().request("DELETE", "/api/auth/me", &[], None);
    response.expect(405);
    assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS"));
    let response = app.api().get("/api/nothing/here", &[]);
    response.expect(404);
    assert_eq!(response.error_code(), "not_found");
    assert_security_headers(&response);
    let response = app.api().request("HEAD", "/livez", &[], None);
    response.expect(200);

    // Nothing was written by any of it.
    assert_eq!(db.psql("SELECT count(*) FROM users"), "0");
}

#[test]
fn oversized_bodies_are_refused() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[]);

    // Declared too large: refused before the body is read.
    let mut stream = connect(app.api().addr(), READ_TIMEOUT).unwrap();
    write!(
        stream,
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        2 * 1024 * 1024
    )
    .unwrap();
    let response = read_response(&mut stream).unwrap();
    response.expect(413);
    assert_eq!(response.error_code(), "payload_too_large");

    // No Content-Length (chunked): cut off at the limit while reading.
    let mut stream = connect(app.api().addr(), READ_TIMEOUT).unwrap();
    write!(
        stream,
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..20 {
        // The server may answer and close before everything is sent.
        if write!(stream, "{:x}\r\n", chunk.len()).is_err()
            || stream.write_all(&chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let response = read_response(&mut stream).unwrap();
    response.expect(413);

    // Just under the limit is read (and then judged on its content).
    let mut padded = json!({"email": "a@example.com", "password": "long enough"}).to_string();
    padded.push_str(&" ".repeat(1024 * 1024 - padded.len()));
    let response = app.api().request(
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        Some(padded.as_bytes()),
    );
    response.expect(401);
}

#[test]
fn cors_and_origin_rules() {
    let db = migrated_db();
    let allowed = "https://app.example.com";
    let app = start_app(
        &db.url(),
        &[(
            "CORS_ORIGINS",
            "https://app.example.com, http://localhost:5173",
        )],
    );

    // Preflight from an allowed origin.
    let response = app.api().request(
        "OPTIONS",
        "/api/auth/login",
        &[
            ("Origin", allowed),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    response.expect(204);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(allowed)
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(response
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert!(response
        .header("access-control-allow-headers")
        .unwrap()
        .contains("Authorization"));
    assert_security_headers(&response);

    // Preflight from anywhere else.
    let response = app.api().request(
        "OPTIONS",
        "/api/auth/login",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    response.expect(403);
    assert_eq!(response.header("access-control-allow-origin"), None);

    // Simple requests: CORS headers only for listed origins.
    let response = app.api().get("/livez", &[("Origin", allowed)]);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(allowed)
    );
    assert!(response
        .headers_named("vary")
        .iter()
        .any(|v| v.contains("Origin")));
    let response = app
        .api()
        .get("/livez", &[("Origin", "https://evil.example")]);
    response.expect(200);
    assert_eq!(response.header("access-control-allow-origin"), None);

    // An unsafe request from a foreign origin is refused whatever its credentials.
    let body = json!({"email": "a@example.com", "password": "long enough"});
    let response = app.api().post_json(
        "/api/auth/register",
        &[("Origin", "https://evil.example")],
        &body,
    );
    response.expect(403);
    assert_eq!(response.error_code(), "origin_not_allowed");
    assert_eq!(db.psql("SELECT count(*) FROM users"), "0");
    // From a listed origin it goes through.
    app.api()
        .post_json(
            "/api/auth/register",
            &[("Origin", "http://localhost:5173")],
            &body,
        )
        .expect(201);
    let response = app
        .api()
        .post_json("/api/auth/login", &[("Origin", allowed)], &body);
    response.expect(200);
    let cookie = response
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // Cookie + listed origin may log out.
    app.api()
        .request(
            "POST",
            "/api/auth/logout",
            &[("Cookie", &cookie), ("Origin", allowed)],
            None,
        )
        .expect(204);
}

#[test]
fn openapi_document_matches_the_served_routes() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[]);
    let response = app.api().get("/api/openapi.json", &[]);
    response.expect(200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let doc = response.json();
    assert_eq!(doc["openapi"], "3.1.0");

    // Every documented operation is served: without credentials it is never a 404 or 405.
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["responses"].is_object(),
                "{method} {path} has responses"
            );
            assert!(
                operation["summary"].is_string(),
                "{method} {path} has a summary"
            );
            documented.insert((method.to_uppercase(), path.clone()));
            let concrete = path.replace("{id}", "00000000-0000-4000-8000-000000000000");
            let response = app
                .api()
                .request(&method.to_uppercase(), &concrete, &[], None);
            assert!(
                response.status != 404 && response.status != 405,
                "{method} {path}: {} {}",
                response.status,
                response.text()
            );
        }
    }
    // And every served route is documented.
    let served: BTreeSet<(String, String)> = app::routes::build()
        .routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path))
        .collect();
    assert_eq!(documented, served);
    for route in [
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/logout"),
        ("GET", "/api/auth/me"),
        ("POST", "/api/auth/password"),
        ("GET", "/api/openapi.json"),
        ("GET", "/health"),
        ("GET", "/livez"),
    ] {
        assert!(
            documented.contains(&(route.0.to_string(), route.1.to_string())),
            "{route:?} is documented"
        );
    }

    // Every $ref resolves inside the document.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    out.push(target);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "{target} resolves");
    }
}

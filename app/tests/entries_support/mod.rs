//! Shared set-up for the entries, imports and summary tests: a migrated database, the real app
//! binary, and a logged-in user.
#![allow(dead_code)]

use serde_json::Value;

use testkit::{Database, Response, Running};

use crate::support::{login, migrated_db, register, start_app};

pub const PASSWORD: &str = "correct horse battery";

/// A database, one app process and a first user.
pub struct Env {
    pub db: Database,
    pub app: Running,
    /// `Authorization` value of the first user.
    pub auth: String,
}

impl Env {
    pub fn start() -> Env {
        let db = migrated_db();
        let app = start_app(
            &db.url(),
            &[("ALLOW_REGISTRATION", "true"), ("RUST_LOG", "info")],
        );
        let auth = new_user(&app, "ann@example.com");
        Env { db, app, auth }
    }

    /// Another app process on the same database.
    pub fn second_app(&self) -> Running {
        start_app(
            &self.db.url(),
            &[("ALLOW_REGISTRATION", "true"), ("RUST_LOG", "info")],
        )
    }

    pub fn get(&self, path: &str) -> Response {
        self.app.api().get(path, &[("Authorization", &self.auth)])
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.app
            .api()
            .post_json(path, &[("Authorization", &self.auth)], body)
    }

    /// POST with raw bytes and a content type.
    pub fn post_raw(&self, path: &str, content_type: &str, body: &[u8]) -> Response {
        post_raw(&self.app, &self.auth, path, content_type, body)
    }

    /// POST a CSV file as the multipart field `file`.
    pub fn post_csv(&self, path: &str, csv: &[u8]) -> Response {
        let (content_type, body) = multipart("file", "report.csv", csv);
        self.post_raw(path, &content_type, &body)
    }

    /// Number of rows in time_entries.
    pub fn row_count(&self) -> i64 {
        self.db
            .psql("SELECT count(*) FROM time_entries")
            .parse()
            .unwrap()
    }

    /// A fingerprint of every row version: changes whenever any row is written.
    pub fn row_versions(&self) -> String {
        self.db.psql(
            "SELECT coalesce(string_agg(xmin::text || ':' || ctid::text, ',' ORDER BY id), '') FROM time_entries",
        )
    }
}

/// Registers `email` and returns its `Authorization` header value.
pub fn new_user(app: &Running, email: &str) -> String {
    register(app, email, PASSWORD).expect(201);
    let (token, _) = login(app, email, PASSWORD);
    format!("Bearer {token}")
}

pub fn post_raw(
    app: &Running,
    auth: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Response {
    app.api().request(
        "POST",
        path,
        &[("Authorization", auth), ("Content-Type", content_type)],
        Some(body),
    )
}

/// A multipart/form-data body with one file field.
pub fn multipart(field: &str, filename: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----time-tracker-test-7d4e1c";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The problems of a 422, as (index or line, field) pairs.
pub fn problems(response: &Response) -> Vec<(Option<u64>, Option<u64>, Option<String>)> {
    response.expect(422);
    let body = response.json();
    assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details in {body}"))
        .iter()
        .map(|p| {
            assert!(p["message"].as_str().is_some_and(|m| !m.is_empty()), "{p}");
            (
                p["index"].as_u64(),
                p["line"].as_u64(),
                p["field"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Asserts a 400 whose error names `field`.
#[track_caller]
pub fn assert_bad_parameter(response: &Response, field: &str) {
    response.expect(400);
    let body = response.json();
    assert_eq!(body["error"]["field"], field, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(field),
        "{body}"
    );
}

/// Entries of the first user as the API lists them (all pages).
pub fn all_entries(env: &Env, query: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut path = format!("/api/entries?limit=500{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let response = env.get(&path);
        response.expect(200);
        let page = response.json();
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return entries,
        }
    }
    panic!("pagination did not end");
}

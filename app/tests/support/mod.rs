//! What the app's integration tests share beyond testkit (which launches the app, waits for it and speaks HTTP
//! to it): a migrated database, and accounts.
#![allow(dead_code)]

use testkit::{Database, Launch, Response, Running};

/// A database holding the schema (every migration), in a cluster of its own (which the test may stop, restart
/// or freeze).
pub fn migrated_db() -> Database {
    let db = Database::start();
    db.psql(&testkit::schema_sql());
    db
}

/// The app on a free port against `database_url`, with `env` on top of testkit's defaults, answering `/livez`.
pub fn start_app(database_url: &str, env: &[(&str, &str)]) -> Running {
    let app = Launch::app(database_url).envs(env).spawn();
    app.wait_live();
    app
}

/// Logs in; returns the token and the `Set-Cookie` value.
pub fn login(app: &Running, email: &str, password: &str) -> (String, String) {
    let response = app.api().post_json(
        "/api/auth/login",
        &[],
        &serde_json::json!({"email": email, "password": password}),
    );
    response.expect(200);
    let token = response.json()["token"].as_str().unwrap().to_string();
    let cookie = response.header("set-cookie").unwrap().to_string();
    (token, cookie)
}

pub fn register(app: &Running, email: &str, password: &str) -> Response {
    app.api().post_json(
        "/api/auth/register",
        &[],
        &serde_json::json!({"email": email, "password": password}),
    )
}

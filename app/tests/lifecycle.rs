//! Start-up, health, database outages and shutdown of the real binary.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;
use support::{migrated_db, start_app};
use testkit::http::{connect, read_response};
use testkit::{Launch, Running};

/// Runs the app with `env` alone: its exit code and stderr.
fn run_with_env(env: &[(&str, &str)]) -> (i32, String) {
    let done = Launch::new(testkit::bin_path("app"))
        .envs(env)
        .run(Duration::from_secs(10));
    (done.code, done.stderr)
}

#[test]
fn configuration_errors_exit_78_naming_the_setting() {
    let url = "postgres://u:s3cret-pw@127.0.0.1:1/db?sslmode=disable";
    for (env, setting) in [
        (vec![("PORT", "abc")], "PORT"),
        (vec![("PORT", "0")], "PORT"),
        (vec![("PORT", "70000")], "PORT"),
        (vec![("ALLOW_REGISTRATION", "maybe")], "ALLOW_REGISTRATION"),
        (vec![("COOKIE_SECURE", "yes please")], "COOKIE_SECURE"),
        (vec![("SHUTDOWN_TIMEOUT", "5")], "SHUTDOWN_TIMEOUT"),
        (vec![("CORS_ORIGINS", "*")], "CORS_ORIGINS"),
        (vec![("HASH_CONCURRENCY", "0")], "HASH_CONCURRENCY"),
        (vec![("BODY_READ_TIMEOUT", "0s")], "BODY_READ_TIMEOUT"),
        (vec![("SESSION_IDLE_TIMEOUT", "7d")], "SESSION_IDLE_TIMEOUT"),
        (vec![("LOG_FORMAT", "xml")], "LOG_FORMAT"),
        // The supervisor's drain notice: a descriptor number above 2 that the app inherited open.
        (vec![("DRAIN_FD", "three")], "DRAIN_FD"),
        (vec![("DRAIN_FD", "1")], "DRAIN_FD"),
        (vec![("DRAIN_FD", "900")], "DRAIN_FD"),
    ] {
        let mut env = env;
        env.push(("DATABASE_URL", url));
        let (code, stderr) = run_with_env(&env);
        assert_eq!(code, 78, "{env:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(setting), "{setting} named in {stderr}");
        assert!(!stderr.contains("s3cret-pw"), "no password in {stderr}");
    }
    let (code, stderr) = run_with_env(&[]);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    let (code, stderr) = run_with_env(&[("DATABASE_URL", "mysql://u:s3cret-pw@h/db")]);
    assert_eq!(code, 78, "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
}

/// `DRAIN_FD` naming an open descriptor that is not a pipe (here /dev/null on fd 5) is refused
/// at start, not watched forever for a drain that never comes.
#[test]
fn a_drain_fd_that_is_not_a_pipe_is_a_configuration_error() {
    let app = testkit::bin_path("app");
    let done = Launch::new("sh")
        .args(&[
            "-c",
            "exec 5</dev/null; exec \"$0\"",
            &app.to_string_lossy(),
        ])
        .env(
            "DATABASE_URL",
            "postgres://u:p@127.0.0.1:1/db?sslmode=disable",
        )
        .env("DRAIN_FD", "5")
        .run(Duration::from_secs(10));
    let stderr = done.stderr;
    assert_eq!(done.code, 78, "{stderr}");
    assert!(
        stderr.contains("DRAIN_FD") && stderr.contains("not a pipe"),
        "{stderr}"
    );
}

/// Health checks come every few seconds from the supervisor and balancers: at `info` an idle
/// service writes nothing for them, while other requests are still logged.
#[test]
fn health_checks_are_not_logged_at_info() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[("RUST_LOG", "info")]);
    for _ in 0..5 {
        app.api().get("/livez", &[]).expect(200);
        app.api().get("/health", &[]).expect(200);
    }
    app.api().get("/api/openapi.json", &[]).expect(200);
    app.wait_log("/api/openapi.json", Duration::from_secs(5));
    let log = app.log();
    assert!(!log.contains("/livez"), "{log}");
    assert!(!log.contains("/health"), "{log}");
}

#[test]
fn health_follows_the_database_and_livez_does_not() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[]);
    let health = app.api().get("/health", &[]);
    health.expect(200);
    let body = health.json();
    assert_eq!(body["status"], "healthy");
    let timestamp = body["timestamp"].as_str().unwrap();
    time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 timestamp");
    let livez = app.api().get("/livez", &[]);
    livez.expect(200);
    assert_eq!(livez.text(), "ok");
    app.api()
        .post_json(
            "/api/auth/register",
            &[],
            &json!({"email": "ada@example.com", "password": "long enough"}),
        )
        .expect(201);
    // The server's view names the app and its host.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        db.psql(
            "SELECT DISTINCT application_name FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ),
        format!("app@{}", host.trim())
    );

    // The database goes away: /health and database-backed routes answer 503, /livez stays 200.
    db.cluster.stop();
    let health = app.api().get("/health", &[]);
    health.expect(503);
    assert_eq!(
        health.json(),
        json!({"status": "unhealthy", "error": "Database connection failed"})
    );
    app.api().get("/livez", &[]).expect(200);
    let login = app.api().post_json(
        "/api/auth/login",
        &[],
        &json!({"email": "ada@example.com", "password": "long enough"}),
    );
    login.expect(503);
    assert_eq!(login.error_code(), "database_unavailable");
    assert!(login.header("retry-after").is_some());
    let me = app.api().get(
        "/api/auth/me",
        &[("Authorization", &format!("Bearer {}", "a".repeat(64)))],
    );
    me.expect(503);

    // It comes back: so does the app, without a restart.
    db.cluster.restart();
    testkit::wait_for("/health to recover", Duration::from_secs(20), || {
        (app.api().get("/health", &[]).status == 200).then_some(())
    });
    let login = app.api().post_json(
        "/api/auth/login",
        &[],
        &json!({"email": "ada@example.com", "password": "long enough"}),
    );
    login.expect(200);
    assert!(!app.log().contains(db.cluster.password()));
}

#[test]
fn starts_without_the_database() {
    let port = testkit::free_port();
    let url = format!("postgres://u:s3cret-pw@127.0.0.1:{port}/db?sslmode=disable");
    let app = start_app(&url, &[]);
    app.api().get("/livez", &[]).expect(200);
    app.api().get("/health", &[]).expect(503);
    app.api()
        .post_json(
            "/api/auth/register",
            &[],
            &json!({"email": "ada@example.com", "password": "long enough"}),
        )
        .expect(503);
    assert!(!app.log().contains("s3cret-pw"), "{}", app.log());
}

/// Sends a request head with `Expect: 100-continue` and waits for the server's interim
/// answer, which proves the handler is running and waiting for the body.
fn start_in_flight_login(app: &Running, body_len: usize) -> TcpStream {
    let mut stream = connect(app.api().addr(), Duration::from_secs(30)).unwrap();
    write!(
        stream,
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {body_len}\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&interim)
    );
    stream
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let db = migrated_db();
    let mut app = start_app(&db.url(), &[]);
    let body = json!({"email": "ada@example.com", "password": "long enough"}).to_string();
    let mut stream = start_in_flight_login(&app, body.len());

    app.signal(Signal::SIGTERM);
    app.wait_log("shutdown requested", Duration::from_secs(10));
    // No new connections once shutting down.
    testkit::wait_for("the listener to close", Duration::from_secs(10), || {
        TcpStream::connect(app.api().addr()).is_err().then_some(())
    });

    // The request in flight still gets its answer.
    stream.write_all(body.as_bytes()).unwrap();
    let response = read_response(&mut stream).unwrap();
    response.expect(401);
    app.wait_exit(Duration::from_secs(10)).assert_code(0);
}

#[test]
fn shutdown_is_bounded_by_shutdown_timeout() {
    let db = migrated_db();
    let mut app = start_app(&db.url(), &[("SHUTDOWN_TIMEOUT", "1s")]);
    // A request whose body never comes.
    let _stream = start_in_flight_login(&app, 100);
    let (done, took) = app.stop_with(Signal::SIGINT, Duration::from_secs(10));
    done.assert_code(0);
    assert!(
        took >= Duration::from_millis(900),
        "waited for the request: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "bounded: {took:?}");
}

#[test]
fn header_read_timeout_closes_slow_clients() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[("HEADER_READ_TIMEOUT", "1s")]);
    let mut stream = connect(app.api().addr(), Duration::from_secs(15)).unwrap();
    let started = Instant::now();
    // An unfinished head, never completed.
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let outcome = stream.read_to_end(&mut rest);
    let took = started.elapsed();
    // Closed by the server (end of stream or reset), not our own read timeout.
    match outcome {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("the server did not close the connection: {err}"),
    }
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Other clients are served meanwhile and after.
    app.api().get("/livez", &[]).expect(200);
}

#[test]
fn password_hashing_does_not_block_other_requests() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[("HASH_CONCURRENCY", "1")]);
    let in_flight = || db.psql("SELECT count(*) FROM login_failures WHERE failed_at > now()");
    std::thread::scope(|scope| {
        let storm: Vec<_> = (0..4)
            .map(|i| {
                let app = &app;
                scope.spawn(move || {
                    app.api().post_json(
                        "/api/auth/login",
                        &[],
                        &json!({"email": format!("user{i}@example.com"), "password": "long enough"}),
                    )
                    .status
                })
            })
            .collect();
        // Every login has started (its attempt is recorded before the hash is checked).
        testkit::wait_for("4 logins started", Duration::from_secs(30), || {
            (db.psql("SELECT count(*) FROM login_failures") == "4").then_some(())
        });
        let started = Instant::now();
        app.api().get("/livez", &[]).expect(200);
        app.api()
            .get(
                "/api/auth/me",
                &[("Authorization", &format!("Bearer {}", "a".repeat(64)))],
            )
            .expect(401);
        let took = started.elapsed();
        // Measured while the hashes were still queued behind one slot.
        assert_ne!(in_flight(), "0", "the storm outlasted the measurement");
        assert!(
            took < Duration::from_secs(2),
            "served during the storm in {took:?}"
        );
        // Wrong credentials, or (debug builds on a busy machine) no hashing slot within 10 s.
        for login in storm {
            let status = login.join().unwrap();
            assert!(status == 401 || status == 503, "{status}");
        }
    });
}

#[test]
fn body_read_timeout_answers_408() {
    let db = migrated_db();
    let app = start_app(&db.url(), &[("BODY_READ_TIMEOUT", "1s")]);
    let mut stream = connect(app.api().addr(), Duration::from_secs(15)).unwrap();
    let started = Instant::now();
    // A body that stops after 10 of its 100 bytes.
    stream
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\n{\"email\":",
        )
        .unwrap();
    let response = read_response(&mut stream).unwrap();
    let took = started.elapsed();
    response.expect(408);
    assert_eq!(response.error_code(), "request_timeout");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

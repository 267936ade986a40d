//! Start-up, health, database outages and shutdown of the real binary.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;
use support::{read_response, App, Db};

fn run_with_env(env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_app"));
    command.env_clear();
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("running the app");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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
    let output = Command::new("sh")
        .args([
            "-c",
            "exec 5</dev/null; exec \"$0\"",
            env!("CARGO_BIN_EXE_app"),
        ])
        .env_clear()
        .env(
            "DATABASE_URL",
            "postgres://u:p@127.0.0.1:1/db?sslmode=disable",
        )
        .env("DRAIN_FD", "5")
        .stdin(Stdio::null())
        .output()
        .expect("running the app");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("DRAIN_FD") && stderr.contains("not a pipe"),
        "{stderr}"
    );
}

/// Health checks come every few seconds from the supervisor and balancers: at `info` an idle
/// service writes nothing for them, while other requests are still logged.
#[test]
fn health_checks_are_not_logged_at_info() {
    let db = Db::start();
    let app = App::start(&db.url(), &[("RUST_LOG", "info")]);
    for _ in 0..5 {
        app.get("/livez", &[]).expect(200);
        app.get("/health", &[]).expect(200);
    }
    app.get("/api/openapi.json", &[]).expect(200);
    app.wait_for_log("/api/openapi.json", Duration::from_secs(5));
    let log = app.log();
    assert!(!log.contains("/livez"), "{log}");
    assert!(!log.contains("/health"), "{log}");
}

#[test]
fn health_follows_the_database_and_livez_does_not() {
    let db = Db::start();
    let app = App::start(&db.url(), &[]);
    let health = app.get("/health", &[]);
    health.expect(200);
    let body = health.json();
    assert_eq!(body["status"], "healthy");
    let timestamp = body["timestamp"].as_str().unwrap();
    time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 timestamp");
    let livez = app.get("/livez", &[]);
    livez.expect(200);
    assert_eq!(livez.text(), "ok");
    app.post_json(
        "/api/auth/register",
        &[],
        &json!({"email": "ada@example.com", "password": "long enough"}),
    )
    .expect(201);

    // The database goes away: /health and database-backed routes answer 503, /livez stays 200.
    db.cluster.stop();
    let health = app.get("/health", &[]);
    health.expect(503);
    assert_eq!(
        health.json(),
        json!({"status": "unhealthy", "error": "Database connection failed"})
    );
    app.get("/livez", &[]).expect(200);
    let login = app.post_json(
        "/api/auth/login",
        &[],
        &json!({"email": "ada@example.com", "password": "long enough"}),
    );
    login.expect(503);
    assert_eq!(login.error_code(), "database_unavailable");
    assert!(login.header("retry-after").is_some());
    let me = app.get(
        "/api/auth/me",
        &[("Authorization", &format!("Bearer {}", "a".repeat(64)))],
    );
    me.expect(503);

    // It comes back: so does the app, without a restart.
    db.cluster.restart();
    testkit::wait_for("/health to recover", Duration::from_secs(20), || {
        (app.get("/health", &[]).status == 200).then_some(())
    });
    let login = app.post_json(
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
    let app = App::start(&url, &[]);
    app.get("/livez", &[]).expect(200);
    app.get("/health", &[]).expect(503);
    app.post_json(
        "/api/auth/register",
        &[],
        &json!({"email": "ada@example.com", "password": "long enough"}),
    )
    .expect(503);
    assert!(!app.log().contains("s3cret-pw"), "{}", app.log());
}

/// A raw connection to the app whose reads give up after `read_timeout`, so that a test never
/// hangs on a server that does not answer.
fn connect(port: u16, read_timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    stream
}

/// Sends a request head with `Expect: 100-continue` and waits for the server's interim
/// answer, which proves the handler is running and waiting for the body.
fn start_in_flight_login(port: u16, body_len: usize) -> TcpStream {
    let mut stream = connect(port, Duration::from_secs(30));
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
    let db = Db::start();
    let mut app = App::start(&db.url(), &[]);
    let body = json!({"email": "ada@example.com", "password": "long enough"}).to_string();
    let mut stream = start_in_flight_login(app.port, body.len());

    app.signal(Signal::SIGTERM);
    app.wait_for_log("shutdown requested", Duration::from_secs(10));
    // No new connections once shutting down.
    testkit::wait_for("the listener to close", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", app.port))
            .is_err()
            .then_some(())
    });

    // The request in flight still gets its answer.
    stream.write_all(body.as_bytes()).unwrap();
    let response = read_response(&mut stream).unwrap();
    response.expect(401);
    let status = app.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", app.log());
}

#[test]
fn shutdown_is_bounded_by_shutdown_timeout() {
    let db = Db::start();
    let mut app = App::start(&db.url(), &[("SHUTDOWN_TIMEOUT", "1s")]);
    // A request whose body never comes.
    let _stream = start_in_flight_login(app.port, 100);
    let started = Instant::now();
    app.signal(Signal::SIGINT);
    let status = app.wait_exit(Duration::from_secs(10));
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "{}", app.log());
    assert!(
        took >= Duration::from_millis(900),
        "waited for the request: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "bounded: {took:?}");
}

#[test]
fn header_read_timeout_closes_slow_clients() {
    let db = Db::start();
    let app = App::start(&db.url(), &[("HEADER_READ_TIMEOUT", "1s")]);
    let mut stream = connect(app.port, Duration::from_secs(15));
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
    app.get("/livez", &[]).expect(200);
}

#[test]
fn password_hashing_does_not_block_other_requests() {
    let db = Db::start();
    let app = App::start(&db.url(), &[("HASH_CONCURRENCY", "1")]);
    let in_flight = || db.psql("SELECT count(*) FROM login_failures WHERE failed_at > now()");
    std::thread::scope(|scope| {
        let storm: Vec<_> = (0..4)
            .map(|i| {
                let app = &app;
                scope.spawn(move || {
                    app.post_json(
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
        app.get("/livez", &[]).expect(200);
        app.get(
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
    let db = Db::start();
    let app = App::start(&db.url(), &[("BODY_READ_TIMEOUT", "1s")]);
    let mut stream = connect(app.port, Duration::from_secs(15));
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

//! The default child: the `app` binary installed next to the supervisor, checked over HTTP on PORT.
//! Needs `cargo build -p app` (the tests say so when it is missing).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::{assert_no_secret, http_get, shared_cluster, supervisor_bin, Launch};

#[test]
fn runs_the_app_next_to_it_and_stops_it_cleanly() {
    runs_the_app(false);
}

/// As in a container: `docker stop` sends SIGTERM to PID 1 and expects exit 0 well inside 10 s.
#[test]
fn as_pid_1_runs_the_app_next_to_it_and_stops_it_cleanly() {
    runs_the_app(true);
}

fn runs_the_app(pid1: bool) {
    let app = testkit::bin_path("app");
    assert_eq!(
        app.parent(),
        supervisor_bin().parent(),
        "the app must be built in the supervisor's directory"
    );
    let cluster = shared_cluster();
    let db = cluster.create_database();
    let port = testkit::free_port();
    let mut launch = Launch::bare();
    launch
        .env("DATABASE_URL", &cluster.url(&db))
        .env("PORT", &port.to_string())
        // The default check of the app: http://127.0.0.1:$PORT/livez.
        .unset("CHILD_CHECK");
    if pid1 {
        launch.pid1();
    }
    let mut running = launch.spawn();

    running.wait_status("/readyz", 200, Duration::from_secs(30));
    let api = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(
        http_get(api, "/livez").map(|r| r.0),
        Some(200),
        "the app answers on PORT"
    );
    let (_, health) = running.get("/health").expect("the health document");
    assert!(health.contains("\"app:uptime\""), "{health}");

    let sent = Instant::now();
    running.signal(Signal::SIGTERM);
    let done = running.wait_exit(Duration::from_secs(10));
    done.assert_code(0);
    assert!(
        done.at - sent < Duration::from_secs(8),
        "the app took {:?} to stop",
        done.at - sent
    );
    assert_no_secret(&done.output(), cluster.password());
}

#[test]
fn a_dead_app_check_fails_liveness() {
    testkit::bin_path("app");
    let cluster = shared_cluster();
    let db = cluster.create_database();
    let port = testkit::free_port();
    // The app listens on PORT, but the check looks at a port where nothing listens.
    let dead = testkit::free_port();
    let mut launch = Launch::bare();
    launch
        .env("DATABASE_URL", &cluster.url(&db))
        .env("PORT", &port.to_string())
        .env("CHILD_CHECK", &format!("tcp://127.0.0.1:{dead}"));
    let mut running = launch.spawn();
    let api = SocketAddr::from(([127, 0, 0, 1], port));
    testkit::wait_for("the app to answer", Duration::from_secs(30), || {
        http_get(api, "/livez").filter(|r| r.0 == 200)
    });
    running.wait_status("/livez", 503, Duration::from_secs(5));
    assert_eq!(running.get("/readyz").map(|r| r.0), Some(503));
    running.signal(Signal::SIGTERM);
    running.wait_exit(Duration::from_secs(10)).assert_code(0);
}

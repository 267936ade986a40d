//! The default child: the `app` binary installed next to the supervisor, checked over HTTP on PORT.
//! Needs `cargo build -p app` (the tests say so when it is missing).

use std::time::Duration;

use nix::sys::signal::Signal;
use testkit::{Database, Launch};

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
    let db = Database::shared();
    // The default check of the app: http://127.0.0.1:$PORT/livez.
    let mut running = Launch::supervisor_app(&db.url()).as_pid1(pid1).spawn();

    let health = running.health();
    health.wait_status("/readyz", 200, Duration::from_secs(30));
    assert_eq!(
        running.api().status("/livez"),
        Some(200),
        "the app answers on PORT"
    );
    let document = health.try_get("/health").expect("the health document");
    assert!(
        document.text().contains("\"app:uptime\""),
        "{}",
        document.text()
    );

    let (done, took) = running.stop_with(Signal::SIGTERM, Duration::from_secs(10));
    done.assert_code(0);
    assert!(
        took < Duration::from_secs(8),
        "the app took {took:?} to stop"
    );
    done.assert_no_secret(db.cluster.password());
}

#[test]
fn a_dead_app_check_fails_liveness() {
    let db = Database::shared();
    // The app listens on PORT, but the check looks at a port where nothing listens.
    let dead = testkit::free_port();
    let mut running = Launch::supervisor_app(&db.url())
        .env("CHILD_CHECK", &format!("tcp://127.0.0.1:{dead}"))
        .spawn();
    running
        .api()
        .wait_status("/livez", 200, Duration::from_secs(30));
    let health = running.health();
    health.wait_status("/livez", 503, Duration::from_secs(5));
    assert_eq!(health.status("/readyz"), Some(503));
    let (done, _) = running.stop_with(Signal::SIGTERM, Duration::from_secs(10));
    done.assert_code(0);
}

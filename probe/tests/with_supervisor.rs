//! The probe against the real supervisor and a real PostgreSQL: `starting` while the database is down at
//! start-up, pass once everything runs, fail naming postgres when the database stops, unreachable once the
//! supervisor is gone.
//!
//! Needs target/debug/supervisor (`cargo build -p supervisor`).

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::run_probe;
use testkit::{Database, Finished, Launch};

/// Runs the probe until `accept` holds (each run is bounded by the probe's own 2 s deadline); panics with the
/// last answer after `within`.
fn probe_until(
    args: &[&str],
    env: &[(&str, &str)],
    what: &str,
    within: Duration,
    accept: impl Fn(&Finished) -> bool,
) -> Finished {
    let deadline = Instant::now() + within;
    loop {
        let run = run_probe(args, env);
        if accept(&run) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {within:?}; last answer: {} {}",
            run.code,
            run.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn probe_follows_the_real_supervisor_and_database() {
    let db = Database::start();
    // The database is down at first: the supervisor waits for it, reporting `starting`.
    db.cluster.stop();
    let mut supervisor = Launch::supervisor_child(&db.url(), &["/bin/sleep", "600"])
        .env("DB_WAIT", "30s")
        .env("STOP_GRACE", "2s")
        .spawn();
    let port = supervisor.health().port();
    let health_addr = format!("0.0.0.0:{port}");
    let env = [("HEALTH_ADDR", health_addr.as_str())];
    let starting = probe_until(
        &[],
        &env,
        "a `starting` answer",
        Duration::from_secs(20),
        |run| run.stdout.contains("supervisor=fail(starting)"),
    );
    assert_eq!(starting.code, 1, "{}", starting.stdout);
    assert!(starting.stdout.starts_with("fail: "), "{}", starting.stdout);
    // The image's HEALTHCHECK leaves the database out, but still fails while the supervisor is starting.
    let healthcheck = run_probe(&["--ready", "--exclude", "postgres"], &env);
    assert_eq!(healthcheck.code, 1, "{}", healthcheck.stdout);
    assert!(
        healthcheck.stdout.contains("supervisor=fail(starting)"),
        "{}",
        healthcheck.stdout
    );

    db.cluster.restart();
    let pass = probe_until(&[], &env, "probe to pass", Duration::from_secs(45), |run| {
        run.code == 0
    });
    assert!(
        pass.stdout
            .starts_with("pass: supervisor=pass app=pass postgres=pass ("),
        "{}\nsupervisor log:\n{}",
        pass.stdout,
        supervisor.log()
    );
    assert_eq!(pass.stdout.lines().count(), 1);

    let ready = run_probe(&["--ready"], &env);
    assert_eq!(ready.code, 0, "{}", ready.stdout);
    assert!(ready.stdout.contains("postgres=pass"), "{}", ready.stdout);

    let json = run_probe(&["--json"], &env);
    assert_eq!(json.code, 0);
    let document: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("--json prints JSON");
    assert_eq!(document["status"], "pass");
    assert_eq!(
        document["checks"]["postgres:responseTime"][0]["observedUnit"],
        "ms"
    );

    let verbose = run_probe(&["--verbose"], &env);
    assert_eq!(verbose.code, 0);
    assert!(verbose
        .stdout
        .lines()
        .any(|l| l.starts_with("postgres:responseTime") && l.contains(" ms")));

    db.cluster.stop();
    let fail = probe_until(
        &[],
        &env,
        "probe to fail once the database stops",
        Duration::from_secs(20),
        |run| run.code == 1,
    );
    assert!(
        fail.stdout.starts_with("fail: postgres=fail("),
        "{}\nsupervisor log:\n{}",
        fail.stdout,
        supervisor.log()
    );
    assert!(!fail.stdout.contains(db.cluster.password()));
    let ready = run_probe(&["--ready"], &env);
    assert_eq!(ready.code, 1);
    assert!(
        ready.stdout.starts_with("fail: postgres=fail"),
        "{}",
        ready.stdout
    );
    // Liveness does not depend on the database, and neither does the image's HEALTHCHECK.
    let live = run_probe(&["--live"], &env);
    assert_eq!(live.code, 0, "{}", live.stdout);
    let healthcheck = run_probe(&["--ready", "--exclude", "postgres"], &env);
    assert_eq!(healthcheck.code, 0, "{}", healthcheck.stdout);
    assert!(
        healthcheck
            .stdout
            .starts_with("pass: supervisor=pass app=pass postgres=pass(excluded) ("),
        "{}",
        healthcheck.stdout
    );

    supervisor.stop_with(Signal::SIGTERM, Duration::from_secs(10));
    let gone = run_probe(&[], &env);
    assert_eq!(gone.code, 1);
    assert_eq!(
        gone.stdout,
        format!("fail: cannot connect to 127.0.0.1:{port}: connection refused\n")
    );
}

//! `probe --watch` as a real process: a line per change of state, none while the state holds, and a clean
//! exit 0 on SIGINT and SIGTERM.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{fixture, probe};
use testkit::server::{Answer, HttpServer};

const LINE_WAIT: Duration = Duration::from_secs(10);

fn is_timestamped(line: &str) -> bool {
    // 2026-01-21T00:06:47Z pass: ...
    let bytes = line.as_bytes();
    line.len() > 21
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[19] == b'Z'
        && bytes[20] == b' '
}

fn watch_until_signal(signal: Signal) {
    let healthy = Arc::new(AtomicBool::new(true));
    let pass = fixture("health-pass.json");
    let fail = fixture("health-fail.json");
    let state = healthy.clone();
    let server = HttpServer::start(move |_| {
        if state.load(Ordering::SeqCst) {
            Answer::health(200, &pass)
        } else {
            Answer::health(503, &fail)
        }
    });

    let mut watch = probe(&["--watch", "50ms", "--url", &server.url("/health")], &[]).spawn();

    let first = watch.stdout.wait_lines(1, LINE_WAIT).remove(0);
    assert!(is_timestamped(&first), "{first}");
    assert!(first[21..].starts_with("pass: supervisor=pass"), "{first}");

    // Several more polls with the same state print nothing (the round-trip time changes, the state does not).
    let polled = Instant::now();
    testkit::wait_for("five more polls", LINE_WAIT, || {
        (server.requests() >= 6).then_some(())
    });
    assert_eq!(
        watch.stdout.lines().len(),
        1,
        "a line was printed without a change of state"
    );
    assert!(polled.elapsed() < LINE_WAIT);

    healthy.store(false, Ordering::SeqCst);
    // The line after the change.
    let second = watch.stdout.wait_lines(2, LINE_WAIT).remove(1);
    assert!(is_timestamped(&second), "{second}");
    assert_eq!(&second[21..], "fail: postgres=fail(connection refused)");

    healthy.store(true, Ordering::SeqCst);
    // The line after recovery.
    let third = watch.stdout.wait_lines(3, LINE_WAIT).remove(2);
    assert!(third[21..].starts_with("pass: "), "{third}");

    let (done, _) = watch.stop_with(signal, Duration::from_secs(5));
    done.assert_code(0);
}

#[test]
fn watch_prints_changes_and_stops_on_sigterm() {
    watch_until_signal(Signal::SIGTERM);
}

#[test]
fn watch_stops_on_sigint() {
    watch_until_signal(Signal::SIGINT);
}

#[test]
fn watch_reports_an_unreachable_target_and_exits_0_when_interrupted() {
    let port = testkit::free_port();
    let mut watch = probe(
        &["--watch", "1h"],
        &[("HEALTH_ADDR", &format!("0.0.0.0:{port}"))],
    )
    .spawn();
    let first = watch.stdout.wait_lines(1, LINE_WAIT).remove(0);
    assert_eq!(
        &first[21..],
        format!("fail: cannot connect to 127.0.0.1:{port}: connection refused")
    );
    // Mid-interval (an hour long): the signal must end the wait at once.
    let (done, took) = watch.stop_with(Signal::SIGTERM, Duration::from_secs(5));
    done.assert_code(0);
    assert!(took < Duration::from_secs(1));
}

//! The child checks with real processes and signals: stopped, killed, an HTTP endpoint that fails or hangs,
//! a TCP port that closes. Liveness never depends on the database.

mod health_support;

use health_support::{config, ChildEndpoint, ChildProcess, Harness, Mode, SECOND};
use nix::sys::signal::Signal;
use supervisor::health::{ChildCheck, Details};
use supervisor::state::Phase;
use testkit::Response;

/// Nothing listens there: the database is down for all of these tests.
fn unreachable_database() -> String {
    format!(
        "postgres://u:p@127.0.0.1:{}/d?sslmode=disable",
        testkit::free_port()
    )
}

fn alive(reply: &Response) -> bool {
    reply.status == 200 && reply.text() == "ok"
}

fn running_with(check: ChildCheck, child: &ChildProcess) -> Harness {
    let health = Harness::start(config(check, Details::Auto), &unreachable_database());
    health.state.set_child(Some(child.info()));
    health.state.set_phase(Phase::Running);
    health
}

fn not_responding(reply: &Response) -> bool {
    reply.status == 503 && reply.text().contains("[-]app failed: not responding\n")
}

#[test]
fn a_stopped_child_is_not_responding_within_a_second() {
    let mut child = ChildProcess::sleep();
    let health = running_with(ChildCheck::None, &child);
    // Alive although PostgreSQL is unreachable: liveness never depends on the database.
    health.wait_for("/readyz/app", 2 * SECOND, |r| r.status == 200);
    assert!(alive(&health.get("/livez")));
    assert_eq!(health.get("/readyz").status, 503);

    child.signal(Signal::SIGSTOP);
    let (live, took) = health.wait_for("/livez", 2 * SECOND, |r| r.status == 503);
    assert!(not_responding(&live), "{live:?}");
    assert!(took < SECOND, "{took:?}");
    let json = health.get("/health").json();
    assert_eq!(json["checks"]["app:uptime"][0]["output"], "not responding");

    child.signal(Signal::SIGCONT);
    let (_, took) = health.wait_for("/livez", 2 * SECOND, alive);
    assert!(took < SECOND, "{took:?}");

    child.kill();
    let (live, took) = health.wait_for("/livez", 2 * SECOND, |r| r.status == 503);
    assert!(live.text().contains("[-]app failed: exited\n"), "{live:?}");
    assert!(took < SECOND, "{took:?}");
}

#[test]
fn an_http_check_that_hangs_or_fails_is_not_responding() {
    let endpoint = ChildEndpoint::start();
    let child = ChildProcess::sleep();
    let url = format!("http://{}/livez", endpoint.addr());
    let health = running_with(ChildCheck::Http(url.parse().unwrap()), &child);
    health.wait_for("/livez", 2 * SECOND, |r| r.status == 200);
    let (app, _) = health.wait_for("/readyz/app", 2 * SECOND, |r| r.status == 200);
    assert_eq!(app.text(), "ok");

    // Accepts the connection and never answers.
    endpoint.set_mode(Mode::Hang);
    let (live, took) = health.wait_for("/livez", 2 * SECOND, |r| r.status == 503);
    assert!(not_responding(&live), "{live:?}");
    assert!(took < SECOND, "{took:?}");

    endpoint.set_mode(Mode::Ok);
    health.wait_for("/livez", 2 * SECOND, alive);

    // Answers, but not with 2xx.
    endpoint.set_mode(Mode::Unavailable);
    let (live, took) = health.wait_for("/livez", 2 * SECOND, |r| r.status == 503);
    assert!(not_responding(&live), "{live:?}");
    assert!(took < SECOND, "{took:?}");

    endpoint.set_mode(Mode::Ok);
    health.wait_for("/livez", 2 * SECOND, alive);
    let logs = health.logs.text();
    assert!(logs.contains("child check failing"), "{logs}");
    assert!(logs.contains("child check passing"), "{logs}");
}

#[test]
fn a_closed_tcp_port_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let child = ChildProcess::sleep();
    let health = running_with(ChildCheck::Tcp(target), &child);
    health.wait_for("/readyz/app", 2 * SECOND, |r| r.status == 200);
    assert!(alive(&health.get("/livez")));

    drop(listener);
    let (live, took) = health.wait_for("/livez", 2 * SECOND, |r| r.status == 503);
    assert!(
        live.text().contains("[-]app failed: connection refused\n"),
        "{live:?}"
    );
    assert!(took < SECOND, "{took:?}");
}

#[test]
fn a_new_child_is_checked_afresh() {
    let first = ChildProcess::sleep();
    let health = running_with(ChildCheck::None, &first);
    health.wait_for("/readyz/app", 2 * SECOND, |r| r.status == 200);
    first.signal(Signal::SIGSTOP);
    health.wait_for("/livez", 2 * SECOND, |r| r.status == 503);

    // A restart replaces the child: the stopped one's result must not stick to the new pid.
    let second = ChildProcess::sleep();
    health.state.record_restart();
    health.state.set_child(Some(second.info()));
    let (_, took) = health.wait_for("/readyz/app", 2 * SECOND, |r| r.status == 200);
    assert!(took < SECOND, "{took:?}");
    let json = health.get("/health").json();
    assert_eq!(json["checks"]["app:uptime"][0]["pid"], second.pid());
    assert_eq!(json["checks"]["app:uptime"][0]["restarts"], 1);
    let metrics = health.get("/metrics").text();
    assert!(
        metrics.contains("supervisor_child_restarts_total 1"),
        "{metrics}"
    );
}

#[test]
fn a_child_still_binding_its_port_is_alive_but_not_ready() {
    let port = testkit::free_port();
    let target = format!("127.0.0.1:{port}");
    let child = ChildProcess::sleep();
    let health = running_with(ChildCheck::Tcp(target.clone()), &child);
    // Refused, but within the start grace: liveness holds, readiness says starting.
    let (doc, _) = health.wait_for("/health", 2 * SECOND, |r| {
        r.json()["checks"]["app:uptime"][0]["output"] == "starting"
    });
    assert_eq!(doc.status, 503);
    assert!(alive(&health.get("/livez")));
    assert_eq!(health.get("/readyz/app").text(), "failed");

    let listener = std::net::TcpListener::bind(&target).expect("the port is still free");
    let (_, took) = health.wait_for("/readyz/app", 2 * SECOND, |r| r.status == 200);
    assert!(took < SECOND, "{took:?}");

    // Once it has answered, refusing counts at once.
    drop(listener);
    let (live, _) = health.wait_for("/livez", 2 * SECOND, |r| r.status == 503);
    assert!(
        live.text().contains("[-]app failed: connection refused\n"),
        "{live:?}"
    );
}

#[test]
fn a_child_that_never_answers_fails_after_the_start_grace() {
    let port = testkit::free_port();
    let child = ChildProcess::sleep();
    let health = Harness::start(
        config(ChildCheck::Tcp(format!("127.0.0.1:{port}")), Details::Auto),
        &unreachable_database(),
    );
    let mut info = child.info();
    info.started = info
        .started
        .checked_sub(supervisor::health::CHILD_START_GRACE)
        .expect("the machine has been up longer than the grace");
    health.state.set_child(Some(info));
    health.state.set_phase(Phase::Running);
    let (live, took) = health.wait_for("/livez", 2 * SECOND, |r| r.status == 503);
    assert!(
        live.text().contains("[-]app failed: connection refused\n"),
        "{live:?}"
    );
    assert!(took < SECOND, "{took:?}");
}

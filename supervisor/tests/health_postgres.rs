//! The PostgreSQL check against a real server: refused, blackholed, slow (a delaying proxy), restarted,
//! wrong password; a flood of requests adds no queries or connections; no secret in any body or log line.

mod health_support;

use std::time::{Duration, Instant};

use health_support::{config, url_via, ChildProcess, Harness, Proxy, SECOND};
use supervisor::health::{ChildCheck, Details};
use supervisor::state::Phase;
use testkit::server::Blackhole;
use testkit::{PgCluster, Response};

const USER: &str = "health_watcher_q7";
const PASSWORD: &str = "Wk3-unusual-Secret-9z";

/// A cluster with a database and a login role of distinctive name and password.
fn cluster() -> (PgCluster, String) {
    let pg = PgCluster::start();
    let db = pg.create_database();
    pg.psql(
        "postgres",
        &format!("CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'"),
    );
    (pg, db)
}

fn running(url: &str) -> (Harness, ChildProcess) {
    let health = Harness::start(config(ChildCheck::None, Details::Auto), url);
    let child = ChildProcess::sleep();
    health.state.set_child(Some(child.info()));
    health.state.set_migration_version(1);
    health.state.set_phase(Phase::Running);
    (health, child)
}

fn postgres_entry(health: &Harness) -> serde_json::Value {
    health.get("/health").json()["checks"]["postgres:responseTime"][0].clone()
}

fn postgres_output(reply: &Response) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(&reply.text()).ok()?;
    json["checks"]["postgres:responseTime"][0]["output"]
        .as_str()
        .map(str::to_owned)
}

fn assert_no_secret(text: &str) {
    for secret in [USER, PASSWORD, "postgres://"] {
        assert!(!text.contains(secret), "{secret:?} leaked into:\n{text}");
    }
}

#[test]
fn refused_is_reported_at_once() {
    let url = url_via(
        ([127, 0, 0, 1], testkit::free_port()).into(),
        USER,
        PASSWORD,
        "d",
    );
    let (health, _child) = running(&url);
    let (reply, took) = health.wait_for("/health", 2 * SECOND, |r| {
        postgres_output(r).as_deref() == Some("connection refused")
    });
    assert_eq!(reply.status, 503);
    assert!(took < SECOND, "{took:?}");
    let one = health.get("/readyz/postgres");
    assert_eq!((one.status, one.text().as_str()), (503, "failed"));
    assert_eq!(health.get("/livez").status, 200);
    assert_no_secret(&health.logs.text());
}

#[test]
fn a_blackholed_server_times_out_and_requests_never_wait() {
    let blackhole = Blackhole::start();
    let url = url_via(blackhole.addr(), USER, PASSWORD, "d");
    let began = Instant::now();
    let (health, _child) = running(&url);
    // Until the first attempt has its answer, postgres is "starting"; answers come at once meanwhile.
    let mut slowest = Duration::ZERO;
    loop {
        let asked = Instant::now();
        let reply = health.get("/health");
        slowest = slowest.max(asked.elapsed());
        match postgres_output(&reply).as_deref() {
            Some("timeout") => break,
            Some("starting") => {}
            other => panic!("unexpected postgres output {other:?}: {reply:?}"),
        }
        assert!(
            began.elapsed() < 3 * SECOND,
            "no timeout reported within 3 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(took < Duration::from_millis(1_800), "{took:?}");
    // Far below the 800 ms a request would take if it waited on the database.
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
    // Still at most one attempt at a time: a few seconds bring a few connections, not one per request.
    let asked = Instant::now();
    for _ in 0..200 {
        assert_eq!(health.get("/readyz/postgres").status, 503);
    }
    assert!(asked.elapsed() < 3 * SECOND);
    let attempts = blackhole.connections();
    let elapsed = began.elapsed().as_secs_f64();
    assert!(
        (attempts as f64) <= elapsed / 0.8 + 1.0,
        "{attempts} connections in {elapsed:.1} s"
    );
    assert_no_secret(&health.logs.text());
}

#[test]
fn slow_answers_warn_then_time_out_then_recover() {
    let (pg, db) = cluster();
    let proxy = Proxy::start(([127, 0, 0, 1], pg.port()).into());
    let url = url_via(proxy.addr(), USER, PASSWORD, &db);
    let (health, _child) = running(&url);
    health.wait_for("/readyz", 5 * SECOND, |r| r.status == 200);

    proxy.set_delay(Duration::from_millis(350));
    let (reply, _) = health.wait_for("/health", 4 * SECOND, |r| {
        r.json()["checks"]["postgres:responseTime"][0]["status"] == "warn"
    });
    // Warn still passes.
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "warn");
    let entry = &reply.json()["checks"]["postgres:responseTime"][0];
    let ms = entry["observedValue"].as_f64().unwrap();
    assert!((250.0..800.0).contains(&ms), "{entry}");
    assert_eq!(health.get("/readyz").text(), "ok");
    assert!(
        health
            .get("/readyz?verbose")
            .text()
            .contains("[+]postgres ok\n"),
        "a warning passes"
    );

    proxy.set_delay(Duration::from_millis(1_500));
    let (reply, _) = health.wait_for("/health", 5 * SECOND, |r| {
        postgres_output(r).as_deref() == Some("timeout")
    });
    assert_eq!(reply.status, 503);
    assert!(health
        .get("/readyz")
        .text()
        .contains("[-]postgres failed: timeout\n"));

    proxy.set_delay(Duration::ZERO);
    let (_, took) = health.wait_for("/readyz", 8 * SECOND, |r| r.status == 200);
    assert!(took < 6 * SECOND, "{took:?}");
    assert_eq!(postgres_entry(&health)["status"], "pass");
    let logs = health.logs.text();
    assert!(logs.contains("database health check slow"), "{logs}");
    assert!(logs.contains("database health check failing"), "{logs}");
    assert_no_secret(&logs);
}

#[test]
fn a_restarted_server_fails_then_recovers() {
    let (pg, db) = cluster();
    let url = url_via(([127, 0, 0, 1], pg.port()).into(), USER, PASSWORD, &db);
    let (health, _child) = running(&url);
    health.wait_for("/readyz", 5 * SECOND, |r| r.status == 200);

    pg.stop();
    let (reply, took) = health.wait_for("/readyz/postgres", 4 * SECOND, |r| r.status == 503);
    assert_eq!(reply.text(), "failed");
    // The next refresh (every 2 s) notices.
    assert!(took < Duration::from_millis(3_000), "{took:?}");
    let output = postgres_output(&health.get("/health")).unwrap();
    assert!(
        ["connection refused", "query failed"].contains(&output.as_str()),
        "{output}"
    );
    assert_eq!(
        health.get("/livez").status,
        200,
        "liveness ignores the database"
    );

    pg.restart();
    let (_, took) = health.wait_for("/readyz", 5 * SECOND, |r| r.status == 200);
    assert!(took < Duration::from_millis(3_500), "{took:?}");
    assert_no_secret(&health.logs.text());
}

#[test]
fn a_wrong_password_is_an_authentication_failure_without_the_secrets() {
    let (pg, db) = cluster();
    let url = url_via(
        ([127, 0, 0, 1], pg.port()).into(),
        USER,
        "Not-The-Password-1",
        &db,
    );
    let (health, _child) = running(&url);
    let (reply, _) = health.wait_for("/health", 3 * SECOND, |r| {
        postgres_output(r).as_deref() == Some("authentication failed")
    });
    assert_no_secret(&reply.text());
    let logs = health.logs.text();
    assert!(
        logs.contains("authentication failed") || logs.contains("authentication"),
        "{logs}"
    );
    assert!(!logs.contains("Not-The-Password-1"), "{logs}");
    assert_no_secret(&logs);
}

#[test]
fn a_flood_of_requests_adds_no_queries_or_connections() {
    let (pg, db) = cluster();
    let proxy = Proxy::start(([127, 0, 0, 1], pg.port()).into());
    let url = url_via(proxy.addr(), USER, PASSWORD, &db);
    let (health, _child) = running(&url);
    health.wait_for("/readyz", 5 * SECOND, |r| r.status == 200);
    let backends = || {
        pg.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = '{db}' AND backend_type = 'client backend'"
            ),
        )
    };
    assert_eq!(backends(), "1");
    // Counted from here: on a loaded machine the first check may have timed out and reconnected.
    let connections = proxy.connections();
    let queries = proxy.queries();

    let began = Instant::now();
    let endpoint = health.endpoint();
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            std::thread::spawn(move || {
                let paths = [
                    "/readyz",
                    "/health",
                    "/livez",
                    "/readyz/postgres",
                    "/readyz?verbose",
                ];
                let mut bodies = String::new();
                for i in 0..500 {
                    let reply = endpoint.get(paths[(i + worker) % paths.len()], &[]);
                    assert_eq!(reply.status, 200, "{reply:?}");
                    if i % 50 == 0 {
                        bodies.push_str(&reply.text());
                    }
                }
                bodies
            })
        })
        .collect();
    let bodies: Vec<String> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let elapsed = began.elapsed();

    assert_eq!(backends(), "1");
    assert_eq!(
        proxy.connections(),
        connections,
        "no new database connection"
    );
    let added = proxy.queries() - queries;
    // Only the refresher's own schedule: one query per 2 s, whatever the request rate.
    let allowed = (elapsed.as_secs_f64() / 2.0).ceil() as usize + 1;
    assert!(
        added <= allowed,
        "{added} queries during {elapsed:?} of flood (at most {allowed})"
    );
    for body in bodies {
        assert_no_secret(&body);
    }
    assert_no_secret(&health.get("/metrics").text());
    assert_no_secret(&health.logs.text());
}

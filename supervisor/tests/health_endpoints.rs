//! The health listener's HTTP surface against a real PostgreSQL: every row of the contract's table, the
//! lifecycle phases, HEAD/405/404/no-store, verbose and exclude, and who sees details.

mod health_support;

use std::time::{Duration, Instant};

use health_support::{config, non_loopback_ipv4, ChildProcess, Harness, SECOND};
use supervisor::health::{ChildCheck, Details};
use supervisor::state::Phase;
use testkit::{Endpoint, PgCluster, Response};

const FIRST_RESULT: Duration = Duration::from_secs(5);

fn ready(reply: &Response) -> bool {
    reply.status == 200
}

#[test]
fn readiness_and_liveness_follow_the_lifecycle() {
    let pg = PgCluster::start();
    let db = pg.create_database();
    let health = Harness::start(config(ChildCheck::None, Details::Auto), &pg.url(&db));

    // Starting: alive (a pod that is still migrating must not be killed), not ready.
    let live = health.get("/livez");
    assert_eq!((live.status, live.text().as_str()), (200, "ok"));
    let readyz = health.get("/readyz");
    assert_eq!(readyz.status, 503);
    assert!(
        readyz.text().contains("[-]supervisor failed: starting\n"),
        "{readyz:?}"
    );
    assert!(
        readyz.text().ends_with("readyz check failed\n"),
        "{readyz:?}"
    );
    let doc = health.get("/health");
    assert_eq!(doc.status, 503);
    assert_eq!(doc.header("content-type"), Some("application/health+json"));
    let json = doc.json();
    assert_eq!(json["status"], "fail");
    assert_eq!(json["checks"]["supervisor:state"][0]["output"], "starting");
    assert_eq!(json["checks"]["migrations:version"][0]["status"], "warn");

    // Running with a live child and a reachable database: everything passes.
    let child = ChildProcess::sleep();
    health.state.set_child(Some(child.info()));
    health.state.set_migration_version(3);
    health.state.set_phase(Phase::Running);
    let (readyz, _) = health.wait_for("/readyz", FIRST_RESULT, ready);
    assert_eq!(readyz.text(), "ok");
    let doc = health.get("/health");
    assert_eq!(doc.status, 200, "{doc:?}");
    let json = doc.json();
    assert_eq!(json["status"], "pass");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    let checks = &json["checks"];
    assert_eq!(checks["supervisor:state"][0]["observedValue"], "running");
    let app = &checks["app:uptime"][0];
    assert_eq!(app["status"], "pass");
    assert_eq!(app["pid"], child.pid());
    assert_eq!(app["restarts"], 0);
    assert_eq!(app["observedUnit"], "s");
    assert!(app["rssBytes"].as_u64().unwrap() > 0, "{app}");
    let pg_check = &checks["postgres:responseTime"][0];
    assert_eq!(pg_check["status"], "pass");
    assert_eq!(pg_check["componentType"], "datastore");
    let latency = pg_check["observedValue"].as_f64().unwrap();
    assert!(latency > 0.0 && latency < 250.0, "{pg_check}");
    assert_eq!(checks["migrations:version"][0]["observedValue"], 3);
    assert!(!doc.text().contains("\"output\""), "{}", doc.text());
    for check in ["supervisor", "app", "postgres"] {
        let one = health.get(&format!("/readyz/{check}"));
        assert_eq!((one.status, one.text().as_str()), (200, "ok"), "{check}");
    }

    // Draining: readiness fails at once, liveness stays ok.
    let began = Instant::now();
    health.state.set_phase(Phase::Draining);
    let readyz = health.get("/readyz");
    let took = began.elapsed();
    assert_eq!(readyz.status, 503, "{readyz:?}");
    assert!(took < Duration::from_millis(100), "{took:?}");
    assert!(
        readyz.text().contains("[-]supervisor failed: draining\n"),
        "{readyz:?}"
    );
    assert_eq!(health.get("/livez").status, 200);
    let one = health.get("/readyz/supervisor");
    assert_eq!((one.status, one.text().as_str()), (503, "failed"));
    assert_eq!(
        health.get("/health").json()["checks"]["supervisor:state"][0]["output"],
        "draining"
    );

    // Exited: the child is gone, liveness fails too.
    health.state.set_phase(Phase::Exited);
    health.state.set_child(None);
    let live = health.get("/livez");
    assert_eq!(live.status, 503, "{live:?}");
    assert_eq!(
        live.text(),
        "[+]supervisor ok\n[-]app failed: exited\nlivez check failed\n"
    );
    let json = health.get("/health").json();
    assert_eq!(json["checks"]["supervisor:state"][0]["output"], "exited");
    assert_eq!(json["checks"]["app:uptime"][0]["output"], "exited");

    // A restart is counted.
    health.state.record_restart();
    assert_eq!(
        health.get("/health").json()["checks"]["app:uptime"][0]["restarts"],
        1
    );
}

#[test]
fn http_surface_methods_paths_and_queries() {
    let pg = PgCluster::start();
    let db = pg.create_database();
    let health = Harness::start(config(ChildCheck::None, Details::Auto), &pg.url(&db));
    let child = ChildProcess::sleep();
    health.state.set_child(Some(child.info()));
    health.state.set_migration_version(1);
    health.state.set_phase(Phase::Running);
    health.wait_for("/readyz", FIRST_RESULT, ready);

    let mut replies = Vec::new();

    // HEAD: the GET's status and headers, no body.
    let head = health.endpoint().request("HEAD", "/readyz", &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(head.text(), "");
    assert_eq!(head.header("content-length"), Some("2"));
    replies.push(head);

    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in [
            "/livez",
            "/readyz",
            "/health",
            "/metrics",
            "/readyz/postgres",
        ] {
            let reply = health.endpoint().request(method, path, &[], None);
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method} {path}");
            replies.push(reply);
        }
    }
    for path in [
        "/",
        "/livez/",
        "/readyz/",
        "/readyz/redis",
        "/api/entries",
        "/healthz",
        "/LIVEZ",
    ] {
        let reply = health.get(path);
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        replies.push(reply);
    }

    let verbose = health.get("/readyz?verbose");
    assert_eq!(verbose.status, 200);
    assert_eq!(
        verbose.text(),
        "[+]supervisor ok\n[+]app ok\n[+]postgres ok\nreadyz check passed\n"
    );
    assert_eq!(
        verbose.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    replies.push(verbose);
    let verbose = health.get("/livez?verbose=1");
    assert_eq!(
        verbose.text(),
        "[+]supervisor ok\n[+]app ok\nlivez check passed\n"
    );
    replies.push(verbose);

    let excluded = health.get("/readyz?verbose&exclude=postgres");
    assert_eq!(excluded.status, 200);
    assert!(
        excluded.text().contains("[+]postgres excluded: ok\n"),
        "{excluded:?}"
    );
    replies.push(excluded);

    for bad in [
        "/readyz?exclude=redis",
        "/readyz?verbose=maybe",
        "/health?foo=1",
        "/livez?exclude=",
    ] {
        let reply = health.get(bad);
        assert_eq!(reply.status, 400, "{bad}: {reply:?}");
        assert!(!reply.body.is_empty());
        replies.push(reply);
    }

    // Exclude takes a failing check out of the verdict.
    health.state.set_phase(Phase::Draining);
    let reply = health.get("/readyz?exclude=supervisor");
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok"));
    let reply = health.get("/health?exclude=supervisor");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "pass");
    // ... but the document still shows it.
    assert_eq!(
        reply.json()["checks"]["supervisor:state"][0]["status"],
        "fail"
    );
    replies.push(reply);
    health.state.set_phase(Phase::Running);

    let metrics = health.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for needle in [
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "supervisor_child_restarts_total 0",
        "supervisor_child_up 1",
        "supervisor_migration_version 1",
        "supervisor_phase{phase=\"running\"} 1",
        "supervisor_health_check_up{check=\"postgres\"} 1",
        "supervisor_health_check_runs_total{check=\"postgres\",result=\"pass\"}",
        "supervisor_health_check_duration_seconds_bucket{",
        "supervisor_health_requests_total{path=\"/readyz\",code=\"200\"}",
    ] {
        assert!(
            metrics.text().contains(needle),
            "{needle} missing in\n{}",
            metrics.text()
        );
    }
    let rss: u64 = metrics
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.parse().ok())
        .expect("an RSS figure");
    assert!(rss > 0);
    replies.push(metrics);

    for reply in replies {
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
    }
}

#[test]
fn details_depend_on_the_caller_and_the_setting() {
    // Nothing listens on the database port: postgres fails with a reason worth hiding.
    let db_url = format!(
        "postgres://u:p@127.0.0.1:{}/d?sslmode=disable",
        testkit::free_port()
    );
    let failing = |reply: &Response| reply.status == 503 && reply.text().contains("postgres");
    for (details, loopback_sees, remote_sees) in [
        (Details::Auto, true, false),
        (Details::Always, true, true),
        (Details::Never, false, false),
    ] {
        let mut cfg = config(ChildCheck::None, details);
        cfg.addr = (std::net::Ipv4Addr::UNSPECIFIED, 0).into();
        let health = Harness::start(cfg, &db_url);
        health.state.set_phase(Phase::Running);
        let child = ChildProcess::sleep();
        health.state.set_child(Some(child.info()));
        health.state.set_migration_version(1);
        let port = health.addr.port();
        let loopback = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
        health.wait_for("/readyz/app", FIRST_RESULT, ready);
        health.wait_for("/readyz", FIRST_RESULT, |r| {
            r.text().contains("[-]postgres failed: connection refused")
                || r.text().contains("[-]postgres failed: reason withheld")
        });
        let mut callers = vec![(loopback, loopback_sees)];
        match non_loopback_ipv4() {
            Some(ip) => callers.push(((ip, port).into(), remote_sees)),
            None => {
                eprintln!("no non-loopback address: the remote rule is covered by unit tests only")
            }
        }
        for (addr, sees) in callers {
            let readyz = Endpoint::new(addr).get("/readyz", &[]);
            assert!(failing(&readyz), "{readyz:?}");
            let expected = if sees {
                "[-]postgres failed: connection refused\n"
            } else {
                "[-]postgres failed: reason withheld\n"
            };
            assert!(
                readyz.text().contains(expected),
                "{details:?} via {addr}: {readyz:?}"
            );
            let doc = Endpoint::new(addr).get("/health", &[]);
            let json = doc.json();
            for field in ["output", "version", "pid", "rssBytes"] {
                assert_eq!(
                    doc.text().contains(&format!("\"{field}\"")),
                    sees,
                    "{field} with {details:?} via {addr}: {}",
                    doc.text()
                );
            }
            assert_eq!(json["status"], "fail");
            assert_eq!(json["checks"]["postgres:responseTime"][0]["status"], "fail");
            // Statuses and values stay visible to everyone.
            assert_eq!(json["checks"]["app:uptime"][0]["status"], "pass");
            assert_eq!(json["checks"]["migrations:version"][0]["observedValue"], 1);
        }
    }
}

#[test]
fn a_taken_address_is_reported_with_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut cfg = config(ChildCheck::None, Details::Auto);
    cfg.addr = addr;
    let err = match Harness::try_start(cfg, "postgres://u:secret@127.0.0.1:1/d?sslmode=disable") {
        Ok(_) => panic!("binding a taken address succeeded"),
        Err(err) => err,
    };
    assert!(err.contains(&addr.to_string()), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn listener_answers_within_a_second_of_start() {
    let began = Instant::now();
    let health = Harness::start(
        config(ChildCheck::None, Details::Auto),
        "postgres://u:p@127.0.0.1:1/d?sslmode=disable",
    );
    let live = health.get("/livez");
    assert_eq!(live.status, 200);
    assert!(began.elapsed() < SECOND, "{:?}", began.elapsed());
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use std::io::{Read, Write};
    let health = Harness::start(
        config(ChildCheck::None, Details::Auto),
        "postgres://u:p@127.0.0.1:1/d?sslmode=disable",
    );
    let mut stream = testkit::http::connect(health.addr, 10 * SECOND).unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: h\r\n")
        .unwrap();
    let began = Instant::now();
    let mut rest = Vec::new();
    // Ends when the listener closes the connection (a read error here would mean it never did).
    stream
        .read_to_end(&mut rest)
        .expect("the listener closes the connection");
    let took = began.elapsed();
    assert!(took >= Duration::from_secs(4), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    // Meanwhile and afterwards, others are served.
    assert_eq!(health.get("/livez").status, 200);
}

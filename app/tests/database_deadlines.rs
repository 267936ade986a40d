//! The database deadline against a real PostgreSQL that stops answering: every process of the
//! cluster frozen with SIGSTOP (the kernel still ACKs, so only the app's own timers notice),
//! the server stopped (connection refused), and rows locked by the test. Every request gets its
//! answer within `DB_TIMEOUT` plus a small margin, a 503 with `Retry-After` while the database
//! is away; requests succeed again soon after it is back; connections that ran out of time are
//! closed, never handed to the next request.

mod pg_control;
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{login, migrated_db, register, start_app};
use testkit::{Database, Launch, Response, Running};

use pg_control::Sql;

const PASSWORD: &str = "correct horse battery";
/// The default `DB_TIMEOUT`.
const DEFAULT_DEADLINE: Duration = Duration::from_millis(1500);
/// Every request is answered within this while the database is away (rolling updates).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// `DB_TIMEOUT` of the freeze tests: the rest of `ANSWER_WITHIN` is for what is not database
/// work, which on a loaded 2-core machine running a debug build (connections re-opened all at
/// once after the thaw) takes up to a few hundred milliseconds.
const FREEZE_DB_TIMEOUT: (&str, &str) = ("DB_TIMEOUT", "1000ms");
const FREEZE_DEADLINE: Duration = Duration::from_millis(1000);
/// How soon requests must succeed again once the database is back.
const RECOVERY: Duration = Duration::from_secs(5);

/// A user with a session and one time entry.
struct Fixture {
    db: Database,
    app: Running,
    token: String,
    entry_id: String,
}

impl Fixture {
    fn start(env: &[(&str, &str)]) -> Fixture {
        let db = migrated_db();
        // The documented default, stated: the harness relaxes it for behavioural tests.
        let mut settings = vec![("DB_TIMEOUT", "1500ms")];
        settings.extend_from_slice(env);
        let app = start_app(&db.url(), &settings);
        register(&app, "ada@example.com", PASSWORD).expect(201);
        let (token, _) = login(&app, "ada@example.com", PASSWORD);
        let created = app.api().post_json(
            "/api/entries",
            &[("Authorization", &format!("Bearer {token}"))],
            &json!({"source": "manual", "externalId": "e1", "date": "2024-03-01T09:00:00Z",
                    "duration": 1.5, "project": "P", "description": "d"}),
        );
        created.expect(201);
        let entry_id = created.json()["id"].as_str().unwrap().to_string();
        Fixture {
            db,
            app,
            token,
            entry_id,
        }
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Request number `n` of a mix touching every kind of database work: session lookup,
    /// reads, writes, a transaction (login's throttle and session), the health check.
    fn request(&self, n: usize) -> Timed {
        let auth = self.auth();
        let started = Instant::now();
        let response = match n % 6 {
            0 => self.app.api().get("/api/auth/me", &[("Authorization", &auth)]),
            1 => self.app.api().get("/api/entries", &[("Authorization", &auth)]),
            2 => self.app.api().get(
                &format!("/api/entries/{}", self.entry_id),
                &[("Authorization", &auth)],
            ),
            3 => self.app.api().get(
                "/api/summary?group_by=project",
                &[("Authorization", &auth)],
            ),
            4 => self.app.api().get("/health", &[]),
            _ => self.app.api().post_json(
                "/api/entries",
                &[("Authorization", &auth)],
                &json!({"source": "manual", "externalId": format!("n{n}-{:?}", Instant::now()),
                        "date": "2024-03-02T09:00:00Z", "duration": 1, "project": "P", "description": ""}),
            ),
        };
        Timed {
            n,
            elapsed: started.elapsed(),
            response,
        }
    }

    /// `count` requests of the mix at once.
    fn parallel(&self, count: usize) -> Vec<Timed> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .map(|n| scope.spawn(move || self.request(n)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// Waits (bounded) until the whole mix succeeds again.
    fn wait_for_recovery(&self, within: Duration) -> Duration {
        let started = Instant::now();
        testkit::wait_for("requests to succeed again", within, || {
            (0..6)
                .map(|n| self.request(n))
                .all(|t| t.response.status < 300)
                .then_some(())
        });
        started.elapsed()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.app.log();
            let failures: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("request failed"))
                .collect();
            eprintln!("the app's failed requests:\n{}", failures.join("\n"));
        }
    }
}

/// A response and how long it took.
struct Timed {
    n: usize,
    elapsed: Duration,
    response: Response,
}

impl Timed {
    /// 503 with `Retry-After`, within [`ANSWER_WITHIN`].
    #[track_caller]
    fn assert_unavailable_in_time(&self) {
        assert_eq!(
            self.response.status,
            503,
            "request {}: {}",
            self.n,
            self.response.text()
        );
        let retry_after: u64 = self
            .response
            .header("retry-after")
            .unwrap_or_else(|| panic!("request {}: 503 without Retry-After", self.n))
            .parse()
            .expect("Retry-After in seconds");
        assert!(retry_after >= 1, "Retry-After {retry_after}");
        assert!(
            self.elapsed <= ANSWER_WITHIN,
            "request {} took {:?}",
            self.n,
            self.elapsed
        );
    }
}

#[test]
fn a_frozen_database_gets_503_within_the_deadline_and_timed_out_connections_are_closed() {
    // One connection: the one every request before the freeze used.
    let fixture = Fixture::start(&[FREEZE_DB_TIMEOUT, ("DB_POOL_SIZE", "1")]);
    let sql = Sql::connect(&fixture.db.url());
    let before = sql.other_backends();
    assert_eq!(before.len(), 1, "the app's pooled connection: {before:?}");

    let freeze = fixture.db.cluster.freeze();
    // Sequentially: the first request takes the pooled connection into a statement that never
    // answers; the next ones must not get that connection back.
    for n in 0..6 {
        fixture.request(n).assert_unavailable_in_time();
    }
    let health = fixture.request(4);
    health.assert_unavailable_in_time();
    assert_eq!(
        health.response.json(),
        json!({"status": "unhealthy", "error": "Database connection failed"})
    );
    freeze.thaw();

    let took = fixture.wait_for_recovery(RECOVERY);
    eprintln!("recovered {took:?} after the thaw");
    // The connection that ran out of time was closed by the app: its backend ends once it
    // runs again and reads the end of the stream.
    testkit::wait_for(
        "the timed-out connection's backend to end",
        RECOVERY,
        || (!sql.other_backends().contains(&before[0])).then_some(()),
    );
}

#[test]
fn thirty_requests_at_once_during_a_freeze_all_get_503_in_time_then_all_succeed() {
    let fixture = Fixture::start(&[FREEZE_DB_TIMEOUT]);
    // Warm the pool, so that connections that were fine before the freeze are in it.
    for t in fixture.parallel(12) {
        assert!(t.response.status < 300, "{}", t.response.text());
    }
    let sql = Sql::connect(&fixture.db.url());
    let before = sql.other_backends();

    let freeze = fixture.db.cluster.freeze();
    let during = fixture.parallel(30);
    for t in &during {
        t.assert_unavailable_in_time();
    }
    let slowest = during.iter().map(|t| t.elapsed).max().unwrap();
    eprintln!(
        "30 requests during the freeze ({} processes stopped): slowest {slowest:?}",
        freeze.processes()
    );
    freeze.thaw();

    fixture.wait_for_recovery(RECOVERY);
    // One after the other, so that the pool (first in, first out) hands out each of its
    // connections in turn: none of them hangs.
    for n in 0..30 {
        let t = fixture.request(n);
        assert!(t.response.status < 300, "{}", t.response.text());
        assert!(
            t.elapsed < FREEZE_DEADLINE,
            "{:?} after recovery",
            t.elapsed
        );
    }
    // Every connection the frozen requests held was closed, none went back to the pool.
    testkit::wait_for("the timed-out connections to end", RECOVERY, || {
        let open = sql.other_backends();
        (!before.iter().any(|pid| open.contains(pid))).then_some(())
    });
}

#[test]
fn a_freeze_under_continuous_load_answers_every_request_in_time() {
    const CLIENTS: usize = 8;
    const FREEZE: Duration = Duration::from_secs(5);
    let fixture = Fixture::start(&[FREEZE_DB_TIMEOUT]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let thawed_at = std::sync::Mutex::new(None::<Instant>);

    let results: Vec<(Instant, Timed)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (fixture, stop) = (&fixture, &stop);
                scope.spawn(move || {
                    let mut seen = Vec::new();
                    let mut n = client;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let started = Instant::now();
                        seen.push((started, fixture.request(n)));
                        n += CLIENTS;
                    }
                    seen
                })
            })
            .collect();
        // Load first, then the freeze in its middle.
        std::thread::sleep(Duration::from_millis(500));
        let freeze = fixture.db.cluster.freeze();
        std::thread::sleep(FREEZE);
        freeze.thaw();
        *thawed_at.lock().unwrap() = Some(Instant::now());
        // Keep the load on past the recovery window.
        std::thread::sleep(RECOVERY + Duration::from_secs(1));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });

    let thawed_at = thawed_at.lock().unwrap().expect("thawed");
    let frozen_at = thawed_at - FREEZE;
    // Every request, then the verdict, so that a failure shows the whole picture.
    let offset = |at: Instant| {
        at.checked_duration_since(frozen_at)
            .map_or_else(|| format!("-{:?}", frozen_at - at), |d| format!("+{d:?}"))
    };
    let mut problems = Vec::new();
    let mut unavailable = 0;
    for (started, t) in &results {
        let status = t.response.status;
        if status == 503 {
            unavailable += 1;
        }
        let in_time = t.elapsed <= ANSWER_WITHIN;
        let answered_well =
            status < 300 || (status == 503 && t.response.header("retry-after").is_some());
        let recovered = *started < thawed_at + RECOVERY || status < 300;
        if !(in_time && answered_well && recovered) {
            problems.push(format!(
                "request {} started {} (freeze at +0, thaw at +{FREEZE:?}): {status} after {:?}",
                t.n,
                offset(*started),
                t.elapsed
            ));
        }
    }
    eprintln!("{} requests, {unavailable} answered 503", results.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(unavailable > 0, "no request ran into the freeze");
}

#[test]
fn a_stopped_database_gets_a_fast_503_and_requests_succeed_once_it_is_back() {
    let fixture = Fixture::start(&[]);
    fixture.db.cluster.stop();
    for t in fixture.parallel(12) {
        t.assert_unavailable_in_time();
        // Refused connections fail at once: no waiting for the deadline.
        assert!(
            t.elapsed < DEFAULT_DEADLINE,
            "{:?} with the server down",
            t.elapsed
        );
    }
    fixture.db.cluster.restart();
    let took = fixture.wait_for_recovery(RECOVERY);
    eprintln!("recovered {took:?} after the restart");
    for t in fixture.parallel(12) {
        assert!(t.response.status < 300, "{}", t.response.text());
    }
}

#[test]
fn a_statement_blocked_by_a_lock_ends_at_the_deadline() {
    let fixture = Fixture::start(&[]);
    let sql = Sql::connect(&fixture.db.url());
    sql.batch("BEGIN");
    sql.execute("SELECT 1 FROM time_entries FOR UPDATE", &[]);
    let started = Instant::now();
    let patched = fixture.app.api().request(
        "PATCH",
        &format!("/api/entries/{}", fixture.entry_id),
        &[
            ("Authorization", &fixture.auth()),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"duration": 2}"#),
    );
    let elapsed = started.elapsed();
    Timed {
        n: 0,
        elapsed,
        response: patched,
    }
    .assert_unavailable_in_time();
    // The default deadline: the statement waited that long before it was given up.
    assert!(elapsed >= DEFAULT_DEADLINE, "{elapsed:?}");
    // The server gave it up too (the connection's statement_timeout): while the lock is still
    // held, no backend is left waiting for it on behalf of a request answered long ago.
    sql.wait_for_no_lock_waiters("UPDATE time_entries", Duration::from_secs(1));
    sql.batch("ROLLBACK");
    // Nothing changed, and the entry can be changed now.
    let entry = fixture.app.api().get(
        &format!("/api/entries/{}", fixture.entry_id),
        &[("Authorization", &fixture.auth())],
    );
    entry.expect(200);
    assert_eq!(entry.json()["duration"], 1.5);
}

#[test]
fn an_import_has_its_own_longer_deadline() {
    const IMPORT_DEADLINE: Duration = Duration::from_secs(4);
    let fixture = Fixture::start(&[("DB_IMPORT_TIMEOUT", "4s")]);
    let import = || {
        let started = Instant::now();
        let response = fixture.app.api().post_json(
            "/api/import/toggl",
            &[("Authorization", &fixture.auth())],
            &json!([{"id": 7, "description": "x", "start": "2024-03-01T09:00:00Z",
                     "stop": "2024-03-01T10:00:00Z", "duration": 3600}]),
        );
        (started.elapsed(), response)
    };
    // The first import creates the entry; the test then locks it, and a re-import (which
    // locks the row it compares) waits for the test.
    import().1.expect(200);
    let sql = Sql::connect(&fixture.db.url());
    let lock_the_entry = || {
        sql.batch("BEGIN");
        let locked = sql.execute(
            "SELECT 1 FROM time_entries WHERE source = 'toggl' FOR UPDATE",
            &[],
        );
        assert_eq!(locked, 1);
    };

    lock_the_entry();
    let (elapsed, waited) = std::thread::scope(|scope| {
        let waiting = scope.spawn(import);
        sql.wait_for_lock_waiters("WITH input AS", 1, Duration::from_secs(10));
        // Held past DB_TIMEOUT (the scenario, not a synchronisation): an ordinary request
        // would have been answered 503 by now.
        std::thread::sleep(ANSWER_WITHIN);
        sql.batch("ROLLBACK");
        waiting.join().unwrap()
    });
    waited.expect(200);
    assert_eq!(waited.json()["unchanged"], 1);
    assert!(elapsed > ANSWER_WITHIN, "{elapsed:?}");

    // Held past DB_IMPORT_TIMEOUT: 503 with Retry-After at that deadline.
    lock_the_entry();
    let (elapsed, refused) = import();
    sql.batch("ROLLBACK");
    refused.expect(503);
    assert!(refused.header("retry-after").is_some());
    assert!(
        elapsed >= IMPORT_DEADLINE && elapsed <= IMPORT_DEADLINE + Duration::from_millis(500),
        "{elapsed:?}"
    );
}

#[test]
fn db_pool_wait_longer_than_db_timeout_is_refused_at_start() {
    let db = migrated_db();
    let done = Launch::app(&db.url())
        .envs(&[("DB_TIMEOUT", "1s"), ("DB_POOL_WAIT", "2s")])
        .run(Duration::from_secs(10));
    assert_ne!(done.code, 0);
    let log = done.stderr;
    assert!(
        log.contains("DB_POOL_WAIT") && log.contains("DB_TIMEOUT"),
        "{log}"
    );
}

//! Start-up: waiting for PostgreSQL, the migrations under the advisory lock, and signals that arrive before the
//! child exists.

mod common;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::migrations::{assert_migrated_once, migrate_at_once, PsqlSession};
use common::{migration_count, refused_url, touch_started, traps, Scratch};
use testkit::{Database, Launch, PgCluster, Running};

const PASSWORD: &str = "pw-Hm4Wc9yPq";

#[test]
fn a_database_that_comes_up_late_is_waited_for() {
    let db = Database::start();
    db.cluster.stop();

    let scratch = Scratch::new();
    let mut running = touch_started(&db.url(), &scratch)
        .env("DB_WAIT", "20s")
        .spawn();
    wait_for_the_database(&running);
    assert_eq!(
        running.health().status("/readyz"),
        Some(503),
        "ready while the database is down"
    );
    assert!(!scratch.started(), "the child started without the database");
    db.cluster.restart();

    let done = running.wait_exit(Duration::from_secs(25));
    done.assert_code(0);
    assert!(scratch.started(), "the child never ran");
    assert_eq!(
        db.psql("SELECT count(*) FROM refinery_schema_history"),
        migration_count().to_string()
    );
    done.assert_no_secret(db.cluster.password());
}

#[test]
fn the_health_listener_reports_starting_within_a_second() {
    let mut running = Launch::supervisor_child(&refused_url(PASSWORD), &["true"])
        .env("DB_WAIT", "30s")
        .spawn();
    let health = running.health();
    health.wait_answer("/livez", Duration::from_secs(1));
    assert!(
        running.started.elapsed() < Duration::from_secs(1),
        "the listener took {:?}",
        running.started.elapsed()
    );
    assert_eq!(health.status("/livez"), Some(200), "starting is alive");
    let readyz = health.try_get("/readyz").expect("an answer");
    let body = readyz.text();
    assert_eq!(readyz.status, 503, "ready while starting: {body}");
    assert!(body.contains("starting"), "{body}");
    assert!(!body.contains(PASSWORD), "{body}");
    let (done, _) = running.stop_with(Signal::SIGTERM, Duration::from_secs(5));
    done.assert_code(143);
}

/// Waits until the supervisor's health listener answers and its log says it is waiting for PostgreSQL.
fn wait_for_the_database(running: &Running) {
    running
        .health()
        .wait_answer("/livez", Duration::from_secs(5));
    running.wait_log("not reachable", Duration::from_secs(5));
}

/// SIGTERM or SIGINT while PostgreSQL refuses connections: start-up ends within 1 s with 128+N.
fn stop_while_waiting_for_the_database(signal: Signal, code: i32, pid1: bool) {
    let scratch = Scratch::new();
    let mut running = touch_started(&refused_url(PASSWORD), &scratch)
        .env("DB_WAIT", "30s")
        .as_pid1(pid1)
        .spawn();
    wait_for_the_database(&running);
    let (done, took) = running.stop_with(signal, Duration::from_secs(5));
    done.assert_code(code);
    assert!(
        took < Duration::from_secs(1),
        "{signal} took {took:?} to end start-up"
    );
    assert!(!scratch.started(), "the child was started after {signal}");
    done.assert_no_secret(PASSWORD);
}

#[test]
fn sigterm_while_waiting_for_the_database_exits_143() {
    stop_while_waiting_for_the_database(Signal::SIGTERM, 143, false);
}

#[test]
fn sigint_while_waiting_for_the_database_exits_130() {
    stop_while_waiting_for_the_database(Signal::SIGINT, 130, false);
}

#[test]
fn sigterm_while_waiting_for_the_database_as_pid_1_exits_143() {
    stop_while_waiting_for_the_database(Signal::SIGTERM, 143, true);
}

#[test]
fn other_signals_during_start_up_do_not_stop_it() {
    let db = Database::shared();
    let lock = HeldLock::take(&db);
    let scratch = Scratch::new();
    let mut running = traps(&db.url(), &scratch).spawn();
    lock.wait_for_waiter();
    for signal in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGWINCH] {
        running.signal(signal);
    }
    assert!(
        running.still_running_after(Duration::from_millis(300)),
        "a non-stop signal ended start-up"
    );
    drop(lock);
    scratch.wait_line(&running, "traps", "ready", Duration::from_secs(10));
    let (done, _) = running.stop_with(Signal::SIGTERM, Duration::from_secs(10));
    done.assert_code(42);
}

/// A psql session holding the migration lock.
struct HeldLock<'a> {
    session: PsqlSession<'a>,
    db: &'a Database,
}

const HOLDER: &str = "migration-lock-holder";

impl<'a> HeldLock<'a> {
    fn take(db: &'a Database) -> HeldLock<'a> {
        let session = PsqlSession::start(
            db,
            HOLDER,
            &[
                &format!("SELECT pg_advisory_lock({})", supervisor::migrate::LOCK_KEY),
                "SELECT pg_sleep(60)",
            ],
        );
        testkit::wait_for(
            "psql to hold the migration lock",
            Duration::from_secs(10),
            || (advisory_locks(db, true) == 1).then_some(()),
        );
        HeldLock { session, db }
    }

    /// Waits until another session (the supervisor) waits for the lock.
    fn wait_for_waiter(&self) {
        testkit::wait_for(
            "the supervisor to wait for the migration lock",
            Duration::from_secs(10),
            || (advisory_locks(self.db, false) >= 1).then_some(()),
        );
    }
}

fn advisory_locks(db: &Database, granted: bool) -> usize {
    db.psql(&format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND d.datname = current_database() \
           AND l.granted = {granted}"
    ))
    .parse()
    .expect("a count")
}

fn stop_while_migrating(signal: Signal, code: i32) {
    let db = Database::shared();
    let lock = HeldLock::take(&db);
    let scratch = Scratch::new();
    let mut running = touch_started(&db.url(), &scratch).spawn();
    lock.wait_for_waiter();
    assert_eq!(
        running.health().status("/readyz"),
        Some(503),
        "ready while migrating"
    );

    let (done, took) = running.stop_with(signal, Duration::from_secs(5));
    done.assert_code(code);
    assert!(
        took < Duration::from_secs(1),
        "{signal} took {took:?} to end the migration wait"
    );
    assert!(!scratch.started(), "the child was started after {signal}");
    drop(lock);
    // The supervisor's abandoned session gets the lock once the holder is gone, finds its client gone and ends:
    // no lock is left behind to block the next replica.
    testkit::wait_for("no migration lock left", Duration::from_secs(5), || {
        (advisory_locks(&db, false) + advisory_locks(&db, true) == 0).then_some(())
    });
    done.assert_no_secret(db.cluster.password());
}

#[test]
fn sigterm_while_the_migration_lock_is_held_exits_143() {
    stop_while_migrating(Signal::SIGTERM, 143);
}

#[test]
fn sigint_while_the_migration_lock_is_held_exits_130() {
    stop_while_migrating(Signal::SIGINT, 130);
}

/// SIGTERM around the moment start-up ends (the migration lock is freed, then the signal follows after a delay
/// swept across the migration and the spawn): however the race goes, the signal is not lost. Either start-up
/// ends with 143 and no child, or the child starts and receives SIGTERM (exiting 42, or 143 when it arrives
/// before the child's handler is installed).
#[test]
fn a_stop_signal_racing_the_end_of_start_up_is_not_lost() {
    let cluster = PgCluster::shared();
    for delay_ms in [0, 5, 10, 20, 30, 45, 60, 80] {
        let db = Database::in_cluster(&cluster);
        let lock = HeldLock::take(&db);
        let scratch = Scratch::new();
        let mut running = traps(&db.url(), &scratch).spawn();
        lock.wait_for_waiter();
        drop(lock);
        // Not a synchronisation: the delay is the variable of the experiment.
        std::thread::sleep(Duration::from_millis(delay_ms));
        running.signal(Signal::SIGTERM);
        let done = running.wait_exit(Duration::from_secs(10));
        if scratch.exists("traps.pid") {
            eprintln!("SIGTERM {delay_ms} ms after the lock: reached the running child");
            done.assert_code(42);
            assert!(
                scratch.lines("traps").contains(&"TERM".to_owned()),
                "the child never got SIGTERM"
            );
        } else {
            eprintln!("SIGTERM {delay_ms} ms after the lock: ended start-up or the child at once");
            done.assert_code(143);
        }
    }
}

#[test]
fn replicas_migrating_at_once_apply_each_migration_once() {
    let cluster = PgCluster::shared();
    for replicas in [3, 8] {
        let db = Database::in_cluster(&cluster);
        migrate_at_once(&db, &db.url(), replicas);
    }
}

#[test]
fn migrating_twice_is_a_no_op_the_second_time() {
    let db = Database::shared();
    let url = db.url();
    Launch::supervisor_migrate(&url)
        .run(Duration::from_secs(30))
        .assert_code(0);
    let history =
        "SELECT version, name, applied_on, checksum FROM refinery_schema_history ORDER BY version";
    let before = db.psql(history);
    assert_eq!(before.lines().count(), migration_count());
    let second = Launch::supervisor_migrate(&url).run(Duration::from_secs(30));
    second.assert_code(0);
    assert_eq!(
        db.psql(history),
        before,
        "the second run changed the history"
    );
    assert!(
        !second.stderr.contains("migration applied"),
        "{}",
        second.stderr
    );
}

#[test]
fn migrate_stops_on_sigterm_while_waiting_and_while_locked_out() {
    let mut waiting = Launch::supervisor_migrate(&refused_url(PASSWORD))
        .env("DB_WAIT", "30s")
        .spawn();
    waiting.wait_log("not reachable", Duration::from_secs(5));
    let (done, took) = waiting.stop_with(Signal::SIGTERM, Duration::from_secs(5));
    done.assert_code(143);
    assert!(took < Duration::from_secs(1), "took {took:?}");

    let db = Database::shared();
    let lock = HeldLock::take(&db);
    let mut locked_out = Launch::supervisor_migrate(&db.url()).spawn();
    lock.wait_for_waiter();
    let (done, took) = locked_out.stop_with(Signal::SIGINT, Duration::from_secs(5));
    done.assert_code(130);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    drop(lock);
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'refinery_schema_history'"),
        "0",
        "migrated although stopped"
    );
}

#[test]
fn waiting_for_the_migration_lock_names_the_holder_and_ends_after_migration_lock_wait() {
    let db = Database::shared();
    let lock = HeldLock::take(&db);
    let holder_pid = lock.session.backend_pid();
    let scratch = Scratch::new();
    let mut waiting = touch_started(&db.url(), &scratch)
        .env("MIGRATION_LOCK_WAIT", "7s")
        .spawn();
    let started = Instant::now();

    // The health document says why start-up does not finish, and who is in the way.
    let health = waiting.health();
    let state = testkit::wait_for(
        "/health to report the lock wait",
        Duration::from_secs(5),
        || {
            let response = health.try_get("/health")?;
            let state = response.json()["checks"]["supervisor:state"][0].clone();
            (response.status == 503 && state["output"] == "waiting for migration lock")
                .then_some(state)
        },
    );
    assert_eq!(state["observedValue"], "starting");
    assert_eq!(state["lockHolder"]["pid"].to_string(), holder_pid);
    assert_eq!(state["lockHolder"]["applicationName"], HOLDER);
    let client = state["lockHolder"]["clientAddress"]
        .as_str()
        .unwrap_or_default();
    assert!(client.starts_with("127.0.0.1:"), "{state}");
    assert_eq!(
        health.status("/livez"),
        Some(200),
        "a waiting replica must not be restarted"
    );

    // So does the probe operators read.
    let probe = Launch::new(testkit::bin_path("probe"))
        .arg("--verbose")
        .env("HEALTH_ADDR", &health.addr().to_string())
        .run(Duration::from_secs(10));
    let table = probe.stdout;
    assert_eq!(probe.code, 1, "{table}");
    assert!(
        table.contains(&format!(
            "waiting for migration lock: held by pid {holder_pid} (\"{HOLDER}\""
        )),
        "{table}"
    );

    // Past MIGRATION_LOCK_WAIT: exit 75, one line naming the holder, and the child never ran.
    let done = waiting.wait_exit(Duration::from_secs(15));
    done.assert_code(75);
    assert!(done.at - started >= Duration::from_secs(7), "gave up early");
    let last = done.last_line();
    for needed in [
        "still held after 7s",
        &format!("pid {holder_pid}"),
        HOLDER,
        "MIGRATION_LOCK_WAIT",
    ] {
        assert!(last.contains(needed), "{needed} missing from: {last}");
    }
    assert!(!scratch.started(), "the child ran without migrations");
    // The wait was logged at least every 5 s, each time naming the holder.
    let logged = done
        .stderr
        .lines()
        .filter(|line| line.contains("waiting for the migration lock") && line.contains(HOLDER))
        .count();
    assert!(logged >= 2, "logged {logged} times:\n{}", done.stderr);
    done.assert_no_secret(db.cluster.password());
    drop(lock);
}

#[test]
fn waits_too_long_for_the_clock_are_waits_without_end() {
    let db = Database::shared();
    let done = Launch::supervisor_migrate(&db.url())
        .env("DB_WAIT", "18446744073709551615s")
        .env("MIGRATION_LOCK_WAIT", "18446744073709551615s")
        .run(Duration::from_secs(30));
    done.assert_code(0);
    assert_migrated_once(&db);
}

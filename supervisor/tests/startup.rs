//! Start-up: waiting for PostgreSQL, the migrations under the advisory lock, and signals that arrive before the
//! child exists.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use testkit::PgCluster;

use common::{
    assert_no_secret, migration_count, refused_url, shared_cluster, strs, traps_child, Launch,
    Scratch,
};

const PASSWORD: &str = "pw-Hm4Wc9yPq";

#[test]
fn a_database_that_comes_up_late_is_waited_for() {
    let cluster = PgCluster::start();
    let db = cluster.create_database();
    cluster.stop();

    let scratch = Scratch::new();
    let marker = scratch.arg("started");
    let mut running = Launch::child(&cluster.url(&db), &["touch", &marker])
        .env("DB_WAIT", "20s")
        .spawn();
    running.wait_health_up(Duration::from_secs(5));
    assert!(
        running
            .stderr
            .wait_contains("not reachable", Duration::from_secs(5)),
        "no sign of waiting for PostgreSQL:\n{}",
        running.stderr.text()
    );
    assert_eq!(
        running.get("/readyz").map(|r| r.0),
        Some(503),
        "ready while the database is down"
    );
    assert!(
        !scratch.exists("started"),
        "the child started without the database"
    );
    cluster.restart();

    let done = running.wait_exit(Duration::from_secs(25));
    done.assert_code(0);
    assert!(scratch.exists("started"), "the child never ran");
    assert_eq!(
        cluster.psql(&db, "SELECT count(*) FROM refinery_schema_history"),
        migration_count().to_string()
    );
    assert_no_secret(&done.output(), cluster.password());
}

#[test]
fn the_health_listener_reports_starting_within_a_second() {
    let mut running = Launch::child(&refused_url(PASSWORD), &["true"])
        .env("DB_WAIT", "30s")
        .spawn();
    running.wait_health_up(Duration::from_secs(1));
    assert!(
        running.started.elapsed() < Duration::from_secs(1),
        "the listener took {:?}",
        running.started.elapsed()
    );
    assert_eq!(
        running.get("/livez").map(|r| r.0),
        Some(200),
        "starting is alive"
    );
    let (code, body) = running.get("/readyz").expect("an answer");
    assert_eq!(code, 503, "ready while starting: {body}");
    assert!(body.contains("starting"), "{body}");
    assert_no_secret(&body, PASSWORD);
    running.signal(Signal::SIGTERM);
    running.wait_exit(Duration::from_secs(5)).assert_code(143);
}

/// SIGTERM or SIGINT while PostgreSQL refuses connections: start-up ends within 1 s with 128+N.
fn stop_while_waiting_for_the_database(signal: Signal, code: i32, pid1: bool) {
    let scratch = Scratch::new();
    let marker = scratch.arg("started");
    let mut launch = Launch::child(&refused_url(PASSWORD), &["touch", &marker]);
    launch.env("DB_WAIT", "30s");
    if pid1 {
        launch.pid1();
    }
    let mut running = launch.spawn();
    running.wait_health_up(Duration::from_secs(5));
    assert!(running
        .stderr
        .wait_contains("not reachable", Duration::from_secs(5)));
    let sent = Instant::now();
    running.signal(signal);
    let done = running.wait_exit(Duration::from_secs(5));
    done.assert_code(code);
    assert!(
        done.at - sent < Duration::from_secs(1),
        "{signal} took {:?} to end start-up",
        done.at - sent
    );
    assert!(
        !scratch.exists("started"),
        "the child was started after {signal}"
    );
    assert_no_secret(&done.output(), PASSWORD);
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
    let cluster = shared_cluster();
    let db = cluster.create_database();
    let lock = HeldLock::take(&cluster, &db);
    let scratch = Scratch::new();
    let mut running = Launch::child(&cluster.url(&db), &strs(&traps_child(&scratch))).spawn();
    lock.wait_for_waiter(&cluster, &db);
    for signal in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGWINCH] {
        running.signal(signal);
    }
    assert!(
        running.still_running_after(Duration::from_millis(300)),
        "a non-stop signal ended start-up"
    );
    drop(lock);
    scratch.wait_line("traps", "ready", Duration::from_secs(10));
    running.signal(Signal::SIGTERM);
    running.wait_exit(Duration::from_secs(10)).assert_code(42);
}

/// A psql session holding the migration lock; its server session is ended on drop (killing psql alone would
/// leave the backend asleep, holding the lock).
struct HeldLock<'a> {
    psql: Child,
    cluster: &'a PgCluster,
    db: String,
}

const HOLDER: &str = "migration-lock-holder";

impl<'a> HeldLock<'a> {
    fn take(cluster: &'a PgCluster, db: &str) -> HeldLock<'a> {
        let psql = Command::new("psql")
            .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres"])
            .arg("-p")
            .arg(cluster.port().to_string())
            .arg("-d")
            .arg(db)
            .arg("-c")
            .arg(format!(
                "SELECT pg_advisory_lock({})",
                supervisor::migrate::LOCK_KEY
            ))
            .arg("-c")
            .arg("SELECT pg_sleep(60)")
            .env("PGPASSWORD", cluster.password())
            .env("PGAPPNAME", HOLDER)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running psql");
        let held = HeldLock {
            psql,
            cluster,
            db: db.to_owned(),
        };
        testkit::wait_for(
            "psql to hold the migration lock",
            Duration::from_secs(10),
            || (advisory_locks(cluster, db, true) == 1).then_some(()),
        );
        held
    }

    /// Waits until another session (the supervisor) waits for the lock.
    fn wait_for_waiter(&self, cluster: &PgCluster, db: &str) {
        testkit::wait_for(
            "the supervisor to wait for the migration lock",
            Duration::from_secs(10),
            || (advisory_locks(cluster, db, false) >= 1).then_some(()),
        );
    }
}

impl Drop for HeldLock<'_> {
    fn drop(&mut self) {
        self.cluster.psql(
            &self.db,
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = '{HOLDER}' AND datname = current_database()"
            ),
        );
        let _ = self.psql.kill();
        let _ = self.psql.wait();
    }
}

fn advisory_locks(cluster: &PgCluster, db: &str, granted: bool) -> usize {
    cluster
        .psql(
            db,
            &format!(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                 WHERE l.locktype = 'advisory' AND d.datname = current_database() AND l.granted = {granted}"
            ),
        )
        .parse()
        .expect("a count")
}

fn stop_while_migrating(signal: Signal, code: i32) {
    let cluster = shared_cluster();
    let db = cluster.create_database();
    let lock = HeldLock::take(&cluster, &db);
    let scratch = Scratch::new();
    let marker = scratch.arg("started");
    let mut running = Launch::child(&cluster.url(&db), &["touch", &marker]).spawn();
    lock.wait_for_waiter(&cluster, &db);
    assert_eq!(
        running.get("/readyz").map(|r| r.0),
        Some(503),
        "ready while migrating"
    );

    let sent = Instant::now();
    running.signal(signal);
    let done = running.wait_exit(Duration::from_secs(5));
    done.assert_code(code);
    assert!(
        done.at - sent < Duration::from_secs(1),
        "{signal} took {:?} to end the migration wait",
        done.at - sent
    );
    assert!(
        !scratch.exists("started"),
        "the child was started after {signal}"
    );
    drop(lock);
    // The supervisor's abandoned session gets the lock once the holder is gone, finds its client gone and ends:
    // no lock is left behind to block the next replica.
    testkit::wait_for("no migration lock left", Duration::from_secs(5), || {
        (advisory_locks(&cluster, &db, false) + advisory_locks(&cluster, &db, true) == 0)
            .then_some(())
    });
    assert_no_secret(&done.output(), cluster.password());
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
    let cluster = shared_cluster();
    for delay_ms in [0, 5, 10, 20, 30, 45, 60, 80] {
        let db = cluster.create_database();
        let lock = HeldLock::take(&cluster, &db);
        let scratch = Scratch::new();
        let mut running = Launch::child(&cluster.url(&db), &strs(&traps_child(&scratch))).spawn();
        lock.wait_for_waiter(&cluster, &db);
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
    let cluster = shared_cluster();
    for replicas in [3, 8] {
        let db = cluster.create_database();
        let url = cluster.url(&db);
        let mut running: Vec<_> = (0..replicas)
            .map(|_| Launch::migrate(&url).spawn())
            .collect();
        for replica in &mut running {
            let done = replica.wait_exit(Duration::from_secs(60));
            done.assert_code(0);
            assert_no_secret(&done.output(), cluster.password());
        }
        let count = migration_count();
        assert_eq!(
            cluster.psql(
                &db,
                "SELECT count(*), count(DISTINCT version) FROM refinery_schema_history"
            ),
            format!("{count}|{count}"),
            "{replicas} replicas"
        );
    }
}

#[test]
fn migrating_twice_is_a_no_op_the_second_time() {
    let cluster = shared_cluster();
    let db = cluster.create_database();
    let url = cluster.url(&db);
    Launch::migrate(&url)
        .run(Duration::from_secs(30))
        .assert_code(0);
    let history =
        "SELECT version, name, applied_on, checksum FROM refinery_schema_history ORDER BY version";
    let before = cluster.psql(&db, history);
    assert_eq!(before.lines().count(), migration_count());
    let second = Launch::migrate(&url).run(Duration::from_secs(30));
    second.assert_code(0);
    assert_eq!(
        cluster.psql(&db, history),
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
    let mut waiting = Launch::migrate(&refused_url(PASSWORD))
        .env("DB_WAIT", "30s")
        .spawn();
    assert!(
        waiting
            .stderr
            .wait_contains("not reachable", Duration::from_secs(5)),
        "no sign of waiting for PostgreSQL:\n{}",
        waiting.stderr.text()
    );
    let sent = Instant::now();
    waiting.signal(Signal::SIGTERM);
    let done = waiting.wait_exit(Duration::from_secs(5));
    done.assert_code(143);
    assert!(
        done.at - sent < Duration::from_secs(1),
        "took {:?}",
        done.at - sent
    );

    let cluster = shared_cluster();
    let db = cluster.create_database();
    let lock = HeldLock::take(&cluster, &db);
    let mut locked_out = Launch::migrate(&cluster.url(&db)).spawn();
    lock.wait_for_waiter(&cluster, &db);
    let sent = Instant::now();
    locked_out.signal(Signal::SIGINT);
    let done = locked_out.wait_exit(Duration::from_secs(5));
    done.assert_code(130);
    assert!(
        done.at - sent < Duration::from_secs(1),
        "took {:?}",
        done.at - sent
    );
    drop(lock);
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'refinery_schema_history'"
        ),
        "0",
        "migrated although stopped"
    );
}

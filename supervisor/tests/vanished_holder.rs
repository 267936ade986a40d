//! A replica that holds the migration lock and vanishes in the middle of migrating: killed outright, or cut off by
//! a network that silently drops its packets. Either way the server ends its session, the transaction rolls back,
//! the lock is freed and the next replica applies the migrations once.
//!
//! To hold a replica in the middle, a psql session locks the (pre-created) migration history table: the replica
//! takes the migration lock, then blocks reading the history.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::migrations::{assert_migrated_once, PsqlSession};
use testkit::{Database, Launch, PgCluster, Running};

/// Locks the (pre-created) migration history, so that whoever takes the migration lock blocks right after.
fn block_the_history(db: &Database) -> PsqlSession<'_> {
    // refinery's own table definition, so that its CREATE TABLE IF NOT EXISTS finds it.
    db.psql(
        "CREATE TABLE refinery_schema_history (version int4 PRIMARY KEY, name varchar(255), \
         applied_on varchar(255), checksum varchar(255))",
    );
    let session = PsqlSession::start(
        db,
        "history-blocker",
        &["LOCK TABLE refinery_schema_history IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300)"],
    );
    testkit::wait_for(
        "psql to lock the migration history",
        Duration::from_secs(10),
        || {
            (db.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'history-blocker' \
                 AND wait_event = 'PgSleep'",
            ) == "1")
                .then_some(())
        },
    );
    session
}

/// The backend holding the migration lock, once one does, and the client address it sees.
fn lock_holder(db: &Database) -> Option<(i32, String)> {
    let row = db.psql(&format!(
        "SELECT l.pid, coalesce(host(a.client_addr), '') FROM pg_locks l \
         JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.classid = {} AND l.objid = {} AND a.datname = current_database()",
        (supervisor::migrate::LOCK_KEY >> 32) as u32,
        supervisor::migrate::LOCK_KEY as u32
    ));
    let (pid, address) = row.split_once('|')?;
    Some((pid.parse().ok()?, address.to_owned()))
}

/// Waits until the backend `pid` no longer holds the lock; how long that took from `since`.
fn wait_until_released(db: &Database, pid: i32, since: Instant, within: Duration) -> Duration {
    testkit::wait_for("the vanished holder's lock to be freed", within, || {
        (lock_holder(db).map(|(holder, _)| holder) != Some(pid)).then_some(())
    });
    since.elapsed()
}

/// Ends the blocker; the replica waiting behind the vanished one must then migrate, once.
fn unblock_and_finish(blocker: PsqlSession, db: &Database, second: &mut Running) {
    drop(blocker);
    let done = second.wait_exit(Duration::from_secs(30));
    done.assert_code(0);
    assert_migrated_once(db);
}

#[test]
fn a_holder_killed_mid_migration_frees_the_lock_for_the_next_replica() {
    let db = Database::start();
    let blocker = block_the_history(&db);
    let mut first = Launch::supervisor_migrate(&db.url()).spawn();
    let (holder, _) = first.wait_for(
        "the first replica to take the lock",
        Duration::from_secs(15),
        || lock_holder(&db),
    );
    // The server's view names the replica.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        db.psql(&format!(
            "SELECT application_name FROM pg_stat_activity WHERE pid = {holder}"
        )),
        format!("supervisor@{}", host.trim())
    );
    let mut second = Launch::supervisor_migrate(&db.url()).spawn();
    second.wait_log(&format!("held by pid {holder}"), Duration::from_secs(15));

    let (done, _) = first.stop_with(Signal::SIGKILL, Duration::from_secs(5));
    done.assert_code(137);
    // The server notices the closed socket even while the backend waits on a lock
    // (client_connection_check_interval, 5 s).
    let freed = wait_until_released(&db, holder, done.at, Duration::from_secs(20));
    eprintln!("lock freed {freed:?} after SIGKILL");
    assert!(freed < Duration::from_secs(10), "freed after {freed:?}");

    unblock_and_finish(blocker, &db, &mut second);
}

/// A network namespace joined to the host by a veth pair, whose traffic can be dropped without a trace (no RST,
/// no ICMP): the replica inside it just goes silent. Removed on drop.
struct Namespace {
    name: String,
    host: Ipv4Addr,
    inside: Ipv4Addr,
}

impl Namespace {
    /// None, saying why, where namespaces cannot be made (not root, no `ip` or `nft`).
    fn create() -> Option<Namespace> {
        let missing = ["ip", "nft"].into_iter().find(|tool| {
            Command::new(tool)
                .arg("-V")
                .output()
                .map_or(true, |o| !o.status.success())
        });
        if let Some(tool) = missing {
            eprintln!("skipped: `{tool}` is not available (Debian: iproute2, nftables)");
            return None;
        }
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: creating a network namespace needs root");
            return None;
        }
        let id = std::process::id();
        let octet = (id % 250) as u8 + 1;
        let namespace = Namespace {
            name: format!("tt-silent-{id}"),
            host: Ipv4Addr::new(10, 213, octet, 1),
            inside: Ipv4Addr::new(10, 213, octet, 2),
        };
        let (host_if, ns_if) = (format!("tth{id}"), format!("ttn{id}"));
        let ns = namespace.name.as_str();
        let host_addr = format!("{}/30", namespace.host);
        let inside_addr = format!("{}/30", namespace.inside);
        for command in [
            vec!["ip", "netns", "add", ns],
            vec![
                "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
            vec!["ip", "link", "set", &ns_if, "netns", ns],
            vec!["ip", "addr", "add", &host_addr, "dev", &host_if],
            vec!["ip", "link", "set", &host_if, "up"],
            vec!["ip", "-n", ns, "addr", "add", &inside_addr, "dev", &ns_if],
            vec!["ip", "-n", ns, "link", "set", &ns_if, "up"],
            vec!["ip", "-n", ns, "link", "set", "lo", "up"],
        ] {
            run(&command);
        }
        Some(namespace)
    }

    /// From now on every packet in or out of the namespace is dropped.
    fn go_silent(&self) {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.name,
            "nft",
            "add table inet silent; \
             add chain inet silent in { type filter hook input priority 0; policy drop; }; \
             add chain inet silent out { type filter hook output priority 0; policy drop; }",
        ]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // The veth pair goes with the namespace.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(command: &[&str]) {
    Launch::new(command[0])
        .args(&command[1..])
        .run(Duration::from_secs(10))
        .assert_code(0);
}

#[test]
fn a_holder_whose_network_goes_silent_loses_the_lock_within_a_minute() {
    let Some(namespace) = Namespace::create() else {
        return;
    };
    let listen = format!("127.0.0.1,{}", namespace.host);
    let cluster = Arc::new(PgCluster::start_with(&[("listen_addresses", &listen)]));
    let hba = cluster.data_dir().join("pg_hba.conf");
    let mut rules = std::fs::read_to_string(&hba).expect("reading pg_hba.conf");
    rules.push_str(&format!(
        "host all all {}/32 scram-sha-256\n",
        namespace.inside
    ));
    std::fs::write(&hba, rules).expect("writing pg_hba.conf");
    let db = Database::in_cluster(&cluster);
    db.psql("SELECT pg_reload_conf()");

    let blocker = block_the_history(&db);
    let url = format!(
        "postgres://postgres:{}@{}:{}/{}?sslmode=disable",
        cluster.password(),
        namespace.host,
        cluster.port(),
        db.name
    );
    let supervisor = testkit::bin_path("supervisor");
    let mut silent = Launch::new("ip");
    silent
        .args(&["netns", "exec", &namespace.name])
        .arg(&supervisor.to_string_lossy())
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("HEALTH_ADDR", "127.0.0.1:0");
    let mut silent = silent.spawn();
    let (holder, address) = silent.wait_for(
        "the replica in the namespace to take the lock",
        Duration::from_secs(15),
        || lock_holder(&db),
    );
    assert_eq!(address, namespace.inside.to_string());
    let mut second = Launch::supervisor_migrate(&db.url()).spawn();
    second.wait_log(&format!("held by pid {holder}"), Duration::from_secs(15));

    namespace.go_silent();
    let cut = Instant::now();
    // Without keepalives on the server side this would take TCP's two hours and more.
    let freed = wait_until_released(&db, holder, cut, Duration::from_secs(90));
    eprintln!("lock freed {freed:?} after the network went silent");
    assert!(freed < Duration::from_secs(60), "freed after {freed:?}");

    unblock_and_finish(blocker, &db, &mut second);
    // Its own keepalives made the silent replica give up on its side too, rather than hang.
    let gone = silent.wait_exit(Duration::from_secs(60));
    assert_ne!(gone.code, 0, "{}", gone.output());
    drop(namespace);
}

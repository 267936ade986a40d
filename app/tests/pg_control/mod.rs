//! Controlling the test's PostgreSQL from the outside: freezing every process of the cluster
//! (SIGSTOP, as a hung host or a paused container), and a connection of the test's own for
//! holding locks and watching what the app's backends wait for.
#![allow(dead_code)]

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use testkit::PgCluster;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

/// Every process of a cluster stopped with SIGSTOP; continued (SIGCONT) when dropped, so a
/// failing test never leaves the server frozen.
pub struct Freeze {
    pids: Vec<Pid>,
}

impl Freeze {
    /// Stops the postmaster first (so that it starts no new backend), then all its children.
    pub fn cluster(cluster: &PgCluster) -> Freeze {
        let postmaster = postmaster_pid(cluster);
        kill(postmaster, Signal::SIGSTOP).expect("SIGSTOP to the postmaster");
        let mut freeze = Freeze {
            pids: vec![postmaster],
        };
        for child in children_of(postmaster) {
            // A child may have exited since it was listed.
            if kill(child, Signal::SIGSTOP).is_ok() {
                freeze.pids.push(child);
            }
        }
        assert!(
            freeze.pids.len() > 1,
            "the postmaster has no children to stop"
        );
        freeze
    }

    /// How many processes are stopped.
    pub fn processes(&self) -> usize {
        self.pids.len()
    }

    /// Continues every stopped process.
    pub fn thaw(self) {
        drop(self);
    }
}

impl Drop for Freeze {
    fn drop(&mut self) {
        for pid in self.pids.drain(..) {
            let _ = kill(pid, Signal::SIGCONT);
        }
    }
}

/// The postmaster's pid: the first line of `postmaster.pid`.
pub fn postmaster_pid(cluster: &PgCluster) -> Pid {
    let content = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid"))
        .expect("reading postmaster.pid");
    let pid: i32 = content
        .lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("a pid on the first line of postmaster.pid");
    Pid::from_raw(pid)
}

/// Processes whose parent is `parent` (from /proc/PID/stat).
fn children_of(parent: Pid) -> Vec<Pid> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("listing /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the name may contain spaces, so split after its ')'.
        let Some(after_name) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let ppid = after_name
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent.as_raw()) {
            children.push(Pid::from_raw(pid));
        }
    }
    children
}

/// A blocking connection of the test's own (tokio-postgres on a private runtime).
pub struct Sql {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Sql {
    pub fn connect(url: &str) -> Sql {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test's connection");
        let (client, connection) = runtime
            .block_on(tokio_postgres::connect(url, NoTls))
            .expect("connecting the test's own session");
        runtime.spawn(connection);
        Sql { runtime, client }
    }

    pub fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> u64 {
        self.runtime
            .block_on(self.client.execute(sql, params))
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    /// Reads what other backends do now: inside a transaction, `pg_stat_activity` would
    /// otherwise repeat what it showed first.
    fn fresh_activity(&self) {
        self.batch("SELECT pg_stat_clear_snapshot()");
    }

    pub fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        self.runtime
            .block_on(self.client.query(sql, params))
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    pub fn batch(&self, sql: &str) {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// The pids of the other client backends connected to this database (the app's).
    pub fn other_backends(&self) -> Vec<i32> {
        self.fresh_activity();
        self.query(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND backend_type = 'client backend'
               AND pid <> pg_backend_pid()
             ORDER BY pid",
            &[],
        )
        .iter()
        .map(|row| row.get(0))
        .collect()
    }

    /// Waits (bounded) until `count` other backends wait for a lock in a statement starting
    /// with `statement_start`; on timeout, panics showing what the other backends do.
    pub fn wait_for_lock_waiters(&self, statement_start: &str, count: i64, timeout: Duration) {
        self.wait_for_lock_waiters_where(statement_start, timeout, |waiting| waiting >= count);
    }

    /// Waits (bounded) until no other backend waits for a lock in a statement starting with
    /// `statement_start`.
    pub fn wait_for_no_lock_waiters(&self, statement_start: &str, timeout: Duration) {
        self.wait_for_lock_waiters_where(statement_start, timeout, |waiting| waiting == 0);
    }

    fn wait_for_lock_waiters_where(
        &self,
        statement_start: &str,
        timeout: Duration,
        done: impl Fn(i64) -> bool,
    ) {
        let pattern = format!("{}%", statement_start.replace('%', "\\%"));
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.fresh_activity();
            let waiting: i64 = self.query(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND wait_event_type = 'Lock' AND ltrim(query, E' \\t\\r\\n') LIKE $1",
                &[&pattern],
            )[0]
            .get(0);
            if done(waiting) {
                return;
            }
            if std::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} with {waiting} backend(s) waiting for a lock in \
                     {statement_start:?}; other backends:\n{}",
                    self.activity()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// State, wait event and statement of every other backend, one line each.
    pub fn activity(&self) -> String {
        self.fresh_activity();
        self.query(
            "SELECT format('%s %s %s/%s blocked by %s: %s', pid, state, wait_event_type,
                           wait_event, pg_blocking_pids(pid), query)
             FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
    }
}

//! A connection of the test's own to its PostgreSQL, for holding locks and watching what the app's
//! backends wait for. (Freezing the whole cluster is testkit's `PgCluster::freeze`.)
#![allow(dead_code)]

use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

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

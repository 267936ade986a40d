//! Migrations behind a transaction-mode pooler (Debian's PgBouncer), where each transaction may run on a different
//! server connection: replicas starting at once still apply each migration exactly once, and no lock is left
//! behind on a pooled server connection.

mod common;

use std::time::Duration;

use common::migrations::migrate_at_once;
use testkit::{Database, Launch, PgBouncer, PoolMode};

fn pgbouncer_installed() -> bool {
    let installed = PgBouncer::binary().is_some();
    if !installed {
        eprintln!("skipped: pgbouncer is not installed (scripts/test installs Debian's pgbouncer)");
    }
    installed
}

/// Advisory locks held in `db` right now, by anyone (the pooler keeps its server connections open).
fn advisory_locks(db: &Database) -> String {
    db.psql(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND d.datname = current_database()",
    )
}

#[test]
fn replicas_behind_a_transaction_pooler_apply_each_migration_once_and_strand_no_lock() {
    if !pgbouncer_installed() {
        return;
    }
    for replicas in [3, 8] {
        let db = Database::start();
        let bouncer = PgBouncer::start(&db.cluster, PoolMode::Transaction);
        let url = bouncer.url(&db.name);
        migrate_at_once(&db, &url, replicas);
        assert_eq!(advisory_locks(&db), "0", "a lock outlived its replica");
        // The pooler's server connections are still open and reused: a later replica is not locked out.
        Launch::supervisor_migrate(&url)
            .run(Duration::from_secs(30))
            .assert_code(0);
        assert_eq!(
            db.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
                .parse::<u32>()
                .map(|n| n >= 1),
            Ok(true),
            "the pooler kept no server connection: the test proves nothing"
        );
    }
}

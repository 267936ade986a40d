//! Migration tests' shared parts: background psql sessions that hold locks, replicas started at once, and the
//! check that each migration was applied exactly once.

use std::time::Duration;

use testkit::{Database, Launch, Running};

use super::migration_count;

/// A psql session running `commands` in the background under `application_name`. Its server session is ended on
/// drop: killing psql alone would leave the backend running, holding whatever it holds.
pub struct PsqlSession<'a> {
    _psql: Running,
    db: &'a Database,
    application_name: &'static str,
}

impl<'a> PsqlSession<'a> {
    pub fn start(
        db: &'a Database,
        application_name: &'static str,
        commands: &[&str],
    ) -> PsqlSession<'a> {
        let port = db.cluster.port().to_string();
        let mut psql = Launch::new("psql");
        psql.args(&["-X", "-q", "-h", "127.0.0.1", "-U", "postgres"])
            .args(&["-p", &port, "-d", &db.name]);
        for command in commands {
            psql.args(&["-c", command]);
        }
        let psql = psql
            .env("PGPASSWORD", db.cluster.password())
            .env("PGAPPNAME", application_name)
            .spawn();
        PsqlSession {
            _psql: psql,
            db,
            application_name,
        }
    }

    /// The session's server pid, once it is connected.
    pub fn backend_pid(&self) -> String {
        let sql = format!(
            "SELECT pid FROM pg_stat_activity \
             WHERE application_name = '{}' AND datname = current_database()",
            self.application_name
        );
        testkit::wait_for("psql to connect", Duration::from_secs(10), || {
            Some(self.db.psql(&sql)).filter(|pid| !pid.is_empty())
        })
    }
}

impl Drop for PsqlSession<'_> {
    /// Ends the server session; psql itself is killed when its field is dropped.
    fn drop(&mut self) {
        self.db.psql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = '{}' AND datname = current_database()",
            self.application_name
        ));
    }
}

/// Starts `replicas` × `supervisor migrate` against `url` at once; each must succeed, and each migration must be
/// applied exactly once.
pub fn migrate_at_once(db: &Database, url: &str, replicas: usize) {
    let mut running: Vec<_> = (0..replicas)
        .map(|_| Launch::supervisor_migrate(url).spawn())
        .collect();
    for replica in &mut running {
        let done = replica.wait_exit(Duration::from_secs(60));
        done.assert_code(0);
        done.assert_no_secret(db.cluster.password());
    }
    assert_migrated_once(db);
}

pub fn assert_migrated_once(db: &Database) {
    let count = migration_count();
    assert_eq!(
        db.psql("SELECT count(*), count(DISTINCT version) FROM refinery_schema_history"),
        format!("{count}|{count}"),
        "each migration applied exactly once"
    );
}

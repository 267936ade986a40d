//! Waiting for PostgreSQL and applying the embedded migrations under a session advisory lock, so that any number
//! of replicas starting at once apply each migration exactly once.

use std::time::Duration;

use common::db::{Cause, DbConfig};
use tokio::time::Instant;
use tokio_postgres::Client;

use crate::exit::Exit;

refinery::embed_migrations!("../migrations");

/// The advisory lock key every replica takes before migrating ("time-tracker migrations").
pub const LOCK_KEY: i64 = 0x7474_6d69_6772_6174;

/// The longest a single connection attempt may take: a blackholed server must not stretch the wait.
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(3);

/// Connects to PostgreSQL, retrying with backoff (100 ms doubling to 2 s) until `wait` has passed.
pub async fn wait_for_database(db: &DbConfig, wait: Duration) -> Result<Client, Exit> {
    let give_up = Instant::now() + wait;
    let mut delay = Duration::from_millis(100);
    let mut last_cause: Option<Cause> = None;
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        match db
            .connect(left.min(ATTEMPT_DEADLINE).max(Duration::from_millis(1)))
            .await
        {
            Ok(client) => return Ok(client),
            Err(err) => {
                let cause = err.cause();
                if last_cause != Some(cause) {
                    tracing::warn!(database = %db.describe(), cause = cause.as_str(), error = %err, "PostgreSQL is not reachable yet");
                    last_cause = Some(cause);
                }
            }
        }
        let now = Instant::now();
        if now >= give_up {
            return Err(Exit::Unavailable(format!(
                "PostgreSQL at {} unreachable for {} ({}): check DATABASE_URL and that the server is up, or raise DB_WAIT",
                db.describe(),
                common::duration::format_duration(wait),
                last_cause.map_or("no answer", Cause::as_str),
            )));
        }
        tokio::time::sleep_until((now + delay).min(give_up)).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Applies every pending migration in one transaction while holding the advisory lock, and returns the schema
/// version. The lock is a session lock: if this process dies, PostgreSQL releases it with the connection.
pub async fn migrate(client: &mut Client) -> Result<i64, Exit> {
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|err| failed("cannot take the migration lock", &err))?
        .get(0);
    if !locked {
        tracing::info!("another instance is migrating; waiting for it");
        client
            .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(|err| failed("cannot take the migration lock", &err))?;
    }
    let outcome = run_locked(client).await;
    // Unlock even after a failure; should this fail too, closing the connection releases the lock.
    if let Err(err) = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
    {
        tracing::warn!(error = %err, "cannot release the migration lock; it goes with the connection");
    }
    outcome
}

async fn run_locked(client: &mut Client) -> Result<i64, Exit> {
    let report = migrations::runner()
        .set_grouped(true)
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run_async(client)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "migration failed");
            Exit::Migration(format!(
                "migration failed: {}; nothing was applied and the app was not started",
                migration_error_summary(&err)
            ))
        })?;
    for applied in report.applied_migrations() {
        tracing::info!(
            version = applied.version(),
            name = applied.name(),
            "migration applied"
        );
    }
    let last = migrations::runner()
        .get_last_applied_migration_async(client)
        .await
        .map_err(|err| Exit::Migration(format!("cannot read the migration history: {err}")))?;
    Ok(last.map_or(0, |m| i64::from(m.version())))
}

fn migration_error_summary(err: &refinery::Error) -> String {
    use refinery::error::Kind;
    match err.kind() {
        Kind::DivergentVersion(applied, embedded) => format!(
            "the database's migration V{} ({}) differs from this build's ({}): the history diverged",
            applied.version(),
            applied.name(),
            embedded.name()
        ),
        Kind::MissingVersion(applied) => format!(
            "the database has migration V{} ({}) that this build does not know: run a newer image",
            applied.version(),
            applied.name()
        ),
        Kind::Connection(msg, source) => format!("{msg}: {source}"),
        other => other.to_string(),
    }
}

fn failed(what: &str, err: &tokio_postgres::Error) -> Exit {
    tracing::error!(error = %err, "{what}");
    Exit::Migration(format!("{what}: {}", common::db::classify(err).as_str()))
}

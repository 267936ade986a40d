//! Waiting for PostgreSQL, then applying the embedded migrations under the migration lock, so that any number of
//! replicas starting at once apply each migration exactly once.
//!
//! The lock is a transaction-level advisory lock, taken in the very transaction that reads the history and applies
//! the migrations. It cannot outlive that transaction: a holder that crashes, or whose connection the server drops,
//! releases it with the rollback. All the work is one transaction on one server connection, so a transaction-mode
//! pooler (PgBouncer) keeps it together; every statement is simple-protocol or an unnamed typed statement, which such
//! poolers pass through intact, and every setting is transaction-local, so nothing leaks to the pool.
//!
//! Waiting is bounded and visible: each attempt queues for the lock for at most a second, then looks up who holds it
//! (`pg_locks` and `pg_stat_activity`), tells the health listener, logs it every few seconds, and gives up after
//! MIGRATION_LOCK_WAIT.

use std::time::Duration;

use common::db::DbConfig;
use common::health::Reason;
use refinery::Migration;
use refinery_core::traits::r#async::{AsyncMigrate, AsyncQuery, AsyncTransaction};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Transaction};

use crate::exit::Exit;
use crate::state::{LockHolder, LockWait, State};

refinery::embed_migrations!("../migrations");

/// The advisory lock key every replica takes before migrating ("time-tracker migrations").
pub const LOCK_KEY: i64 = 0x7474_6d69_6772_6174;

/// The longest a single connection attempt may take: a blackholed server must not stretch the wait.
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(3);

/// How long one attempt queues for the lock before looking at who holds it.
const LOCK_ATTEMPT: Duration = Duration::from_secs(1);

/// How often the holder is logged while waiting.
const HOLDER_LOG_EVERY: Duration = Duration::from_secs(5);

/// The migration transaction's own settings, each transaction-local and set only where the server knows it
/// (`client_connection_check_interval` is PostgreSQL 14+):
/// - no `statement_timeout`: a pooled server connection may carry one another client left behind;
/// - the server gives up on us if we go silent: TCP keepalives after 10 s idle, every 5 s, 3 misses (about 25 s),
///   checked even while a statement runs, and at most 30 s idle inside the transaction (a frozen holder).
const TRANSACTION_SETTINGS: &str = "SELECT set_config(name, setting, true) \
     FROM (VALUES ('statement_timeout', '0'), ('tcp_keepalives_idle', '10'), \
                  ('tcp_keepalives_interval', '5'), ('tcp_keepalives_count', '3'), \
                  ('client_connection_check_interval', '5s'), \
                  ('idle_in_transaction_session_timeout', '30s')) AS wanted(name, setting) \
     WHERE name IN (SELECT name FROM pg_settings)";

/// `after` from now; a wait too long for the clock (`DB_WAIT=1000000000h`) is a wait of a century.
fn deadline_after(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Connects to PostgreSQL, retrying with backoff (100 ms doubling to 2 s) until `wait` has passed.
pub async fn wait_for_database(db: &DbConfig, wait: Duration) -> Result<Client, Exit> {
    let give_up = deadline_after(wait);
    let mut delay = Duration::from_millis(100);
    let mut last_cause: Option<Reason> = None;
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        match db
            .connect(left.min(ATTEMPT_DEADLINE).max(Duration::from_millis(1)))
            .await
        {
            Ok(client) => return Ok(client),
            Err(err) => {
                let cause = err.reason();
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
                last_cause.map_or("no answer", Reason::as_str),
            )));
        }
        tokio::time::sleep_until((now + delay).min(give_up)).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// The migrations this build embeds, in version order.
pub fn embedded() -> Vec<Migration> {
    migrations::runner().get_migrations().clone()
}

/// Takes the migration lock (waiting at most `lock_wait` for another session to release it, and telling `state`
/// who holds it meanwhile), applies those of `migrations` still pending in the same transaction, and returns the
/// schema version.
pub async fn migrate(
    client: &mut Client,
    migrations: &[Migration],
    lock_wait: Duration,
    state: &State,
) -> Result<i64, Exit> {
    let started = Instant::now();
    let give_up = deadline_after(lock_wait);
    let mut next_log = started;
    loop {
        let transaction = client
            .transaction()
            .await
            .map_err(|err| failed("cannot begin the migration transaction", &err))?;
        let attempt = give_up
            .saturating_duration_since(Instant::now())
            .min(LOCK_ATTEMPT);
        match take_lock(&transaction, attempt).await {
            Ok(()) => {
                state.set_lock_wait(None);
                return run_locked(transaction, migrations).await;
            }
            Err(err) if err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {}
            Err(err) => return Err(failed("cannot take the migration lock", &err)),
        }
        // The failed attempt aborted the transaction; end it before asking who holds the lock.
        transaction
            .rollback()
            .await
            .map_err(|err| failed("cannot take the migration lock", &err))?;
        let holder = lock_holder(client).await;
        let now = Instant::now();
        state.set_lock_wait(Some(LockWait {
            since: started.into_std(),
            holder: holder.clone(),
        }));
        let described = holder.as_ref().map_or_else(
            || "a session that has just ended or cannot be seen".to_owned(),
            LockHolder::to_string,
        );
        if now >= give_up {
            return Err(Exit::LockTimeout(format!(
                "the migration lock is still held after {} by {described}: if that session is stuck, end it \
                 (SELECT pg_terminate_backend({})), or raise MIGRATION_LOCK_WAIT",
                common::duration::format_duration(lock_wait),
                holder.map_or_else(|| "PID".to_owned(), |h| h.pid.to_string()),
            )));
        }
        if now >= next_log {
            tracing::warn!(
                holder_pid = holder.as_ref().map(|h| h.pid),
                holder_application_name =
                    holder.as_ref().and_then(|h| h.application_name.as_deref()),
                holder_client = holder.as_ref().and_then(|h| h.client.as_deref()),
                holder_for_s = holder
                    .as_ref()
                    .and_then(|h| h.held_for)
                    .map(|d| d.as_secs()),
                waited_s = (now - started).as_secs(),
                "waiting for the migration lock held by {described}"
            );
            next_log = now + HOLDER_LOG_EVERY;
        }
    }
}

/// Sets the transaction's settings and queues for the lock for at most `attempt`.
async fn take_lock(
    transaction: &Transaction<'_>,
    attempt: Duration,
) -> Result<(), tokio_postgres::Error> {
    let attempt = format!("{}ms", attempt.as_millis().max(1));
    transaction.query_typed(TRANSACTION_SETTINGS, &[]).await?;
    transaction
        .query_typed(
            "SELECT set_config('lock_timeout', $1, true)",
            &[(&attempt, Type::TEXT)],
        )
        .await?;
    transaction
        .query_typed(
            "SELECT pg_advisory_xact_lock($1)",
            &[(&LOCK_KEY, Type::INT8)],
        )
        .await?;
    // Migrations wait for the locks they need for as long as it takes.
    transaction
        .query_typed("SELECT set_config('lock_timeout', '0', true)", &[])
        .await
        .map(drop)
}

/// The session that holds the migration lock, if any can be seen.
async fn lock_holder(client: &Client) -> Option<LockHolder> {
    // A bigint advisory key is stored as two oids (high and low half) with objsubid 1.
    let high = (LOCK_KEY >> 32) as u32;
    let low = LOCK_KEY as u32;
    let rows = client
        .query_typed(
            "SELECT l.pid, a.application_name, host(a.client_addr), a.client_port, \
                    extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::float8 \
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
               AND l.classid = $1 AND l.objid = $2 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             LIMIT 1",
            &[(&high, Type::OID), (&low, Type::OID)],
        )
        .await;
    let row = match rows {
        Ok(rows) => rows.into_iter().next()?,
        Err(err) => {
            tracing::debug!(error = %err, "cannot look up the migration lock's holder");
            return None;
        }
    };
    let address: Option<String> = row.get(2);
    let port: Option<i32> = row.get(3);
    let held_for: Option<f64> = row.get(4);
    Some(LockHolder {
        pid: row.get(0),
        application_name: row.get(1),
        client: address.map(|address| match port {
            Some(port) if address.contains(':') => format!("[{address}]:{port}"),
            Some(port) => format!("{address}:{port}"),
            None => address,
        }),
        held_for: held_for
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64),
    })
}

async fn run_locked(transaction: Transaction<'_>, migrations: &[Migration]) -> Result<i64, Exit> {
    let mut locked = Locked(transaction);
    let report = refinery::Runner::new(migrations)
        .set_grouped(true)
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run_async(&mut locked)
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
    let version: Option<i32> = locked
        .0
        .query_typed("SELECT max(version) FROM refinery_schema_history", &[])
        .await
        .map_err(|err| failed("cannot read the migration history", &err))?
        .first()
        .and_then(|row| row.get(0));
    locked
        .0
        .commit()
        .await
        .map_err(|err| failed("cannot commit the migrations", &err))?;
    Ok(version.map_or(0, i64::from))
}

/// The migration transaction as refinery sees it: what refinery runs as transactions of their own become
/// statements of this one, so the lock, the history check and the migrations share one transaction.
struct Locked<'a>(Transaction<'a>);

#[derive(Debug, thiserror::Error)]
enum LockedError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the migration history has a malformed row: {0}")]
    History(String),
}

impl AsyncTransaction for Locked<'_> {
    type Error = LockedError;

    async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
        &'a mut self,
        queries: T,
    ) -> Result<usize, LockedError> {
        let mut count = 0;
        for query in queries {
            self.0.batch_execute(query).await?;
            count += 1;
        }
        Ok(count)
    }
}

impl AsyncQuery<Vec<Migration>> for Locked<'_> {
    async fn query(&mut self, query: &str) -> Result<Vec<Migration>, LockedError> {
        let rows = self.0.query_typed(query, &[]).await?;
        rows.iter()
            .map(|row| {
                let version: i32 = row.try_get(0)?;
                let applied_on: String = row.try_get(2)?;
                let checksum: String = row.try_get(3)?;
                let applied_on = OffsetDateTime::parse(&applied_on, &Rfc3339).map_err(|_| {
                    LockedError::History(format!("V{version} applied_on {applied_on:?}"))
                })?;
                let checksum = checksum.parse::<u64>().map_err(|_| {
                    LockedError::History(format!("V{version} checksum {checksum:?}"))
                })?;
                Ok(Migration::applied(
                    version,
                    row.try_get(1)?,
                    applied_on,
                    checksum,
                ))
            })
            .collect()
    }
}

impl AsyncMigrate for Locked<'_> {}

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

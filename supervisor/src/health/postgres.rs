//! The PostgreSQL refresher: one task, one dedicated connection, one `SELECT 1` at a time.
//!
//! Every [`REFRESH_EVERY`] it runs the query with a [`DEADLINE`] and stores a [`PostgresReading`]; requests only
//! read the latest one, so no request rate can add database work. After a failure the connection is
//! dropped and re-opened with a short backoff.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::db::{DbConfig, DbError};
use tokio::time::{sleep, timeout};

use common::health::{CheckName, Reason, Status};

use super::checks::{PostgresReading, Verdict};
use super::shared::Shared;

pub const REFRESH_EVERY: Duration = Duration::from_secs(2);
pub const DEADLINE: Duration = Duration::from_millis(800);
/// First pause after a failure; it doubles up to [`REFRESH_EVERY`].
const BACKOFF_START: Duration = Duration::from_millis(250);

struct Failure {
    reason: Reason,
    detail: String,
}

impl Failure {
    fn new(err: DbError, db: &DbConfig) -> Self {
        Failure {
            reason: err.reason(),
            detail: redact(&err.to_string(), db),
        }
    }
}

/// The server's messages quote the user name (e.g. `password authentication failed for user "..."`): log
/// lines carry neither it nor, should it ever appear, the password. Only quoted names and passwords of
/// some length are replaced, so that a short name cannot mangle the rest of the message.
fn redact(text: &str, db: &DbConfig) -> String {
    let mut text = text.to_owned();
    let pg = db.pg_config();
    if let Some(password) = pg.get_password().and_then(|p| std::str::from_utf8(p).ok()) {
        if password.len() >= 4 {
            text = text.replace(password, "<password>");
        }
    }
    if let Some(user) = pg.get_user().filter(|u| !u.is_empty()) {
        text = text.replace(&format!("\"{user}\""), "\"<user>\"");
    }
    text
}

pub async fn refresh(db: DbConfig, shared: Arc<Shared>) {
    let target = db.describe();
    let mut client = None;
    let mut failures: u32 = 0;
    let mut last_logged: Option<Verdict> = None;
    loop {
        let began = Instant::now();
        let result = check(&db, &mut client).await;
        let outcome = result.as_ref().copied().map_err(|f| f.reason);
        shared.metrics.record_check(
            CheckName::Postgres,
            outcome.is_ok(),
            outcome.unwrap_or_else(|_| began.elapsed()),
        );
        let reading = PostgresReading {
            at: Instant::now(),
            time: SystemTime::now(),
            outcome,
        };
        shared.set_postgres_reading(reading);
        let verdict = reading.verdict(reading.at);
        if last_logged != Some(verdict) {
            match &result {
                Ok(latency) if verdict.status == Status::Warn => tracing::warn!(
                    database = %target,
                    latency_ms = latency.as_secs_f64() * 1e3,
                    "database health check slow"
                ),
                Ok(latency) => tracing::info!(
                    database = %target,
                    latency_ms = latency.as_secs_f64() * 1e3,
                    "database health check passing"
                ),
                Err(f) => tracing::warn!(
                    database = %target,
                    reason = f.reason.as_str(),
                    error = %f.detail,
                    "database health check failing"
                ),
            }
            last_logged = Some(verdict);
        }
        let pause = match result {
            Ok(_) => {
                failures = 0;
                REFRESH_EVERY.saturating_sub(began.elapsed())
            }
            Err(_) => {
                failures = failures.saturating_add(1);
                backoff(failures)
            }
        };
        sleep(pause).await;
    }
}

/// The pause after the `failures`-th failure in a row.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(8);
    (BACKOFF_START * 2u32.pow(doublings)).min(REFRESH_EVERY)
}

/// The dedicated connection. Its I/O task is aborted on drop, which closes the socket even while a query
/// is still waiting for a server that stopped answering (the client alone would leave it open).
struct Connection {
    client: tokio_postgres::Client,
    io: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.io.abort();
    }
}

async fn connect(db: &DbConfig) -> Result<Connection, DbError> {
    let (client, io) = db.connect_with_task(DEADLINE).await?;
    Ok(Connection { client, io })
}

/// Connects when there is no usable connection, then times `SELECT 1`. Any failure drops the connection:
/// after a timeout its state is unknown.
async fn check(db: &DbConfig, slot: &mut Option<Connection>) -> Result<Duration, Failure> {
    let connection = match slot.take() {
        Some(c) if !c.client.is_closed() => c,
        _ => connect(db).await.map_err(|e| Failure::new(e, db))?,
    };
    let began = Instant::now();
    // A constant simple query: one round trip, nothing prepared.
    match timeout(DEADLINE, connection.client.simple_query("SELECT 1")).await {
        Ok(Ok(_)) => {
            let latency = began.elapsed();
            *slot = Some(connection);
            Ok(latency)
        }
        Ok(Err(err)) => Err(Failure::new(DbError::Postgres(err), db)),
        Err(_) => Err(Failure::new(DbError::Timeout(DEADLINE), db)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_and_password_are_redacted() {
        let db =
            DbConfig::parse("postgres://reporting_user:s3cr3t@127.0.0.1:5432/app?sslmode=disable")
                .unwrap();
        let text = redact(
            "password authentication failed for user \"reporting_user\" (s3cr3t)",
            &db,
        );
        assert_eq!(
            text,
            "password authentication failed for user \"<user>\" (<password>)"
        );
        let db = DbConfig::parse("postgres://u:p@127.0.0.1:5432/app?sslmode=disable").unwrap();
        assert_eq!(
            redact("Connection refused; role \"u\" does not exist", &db),
            "Connection refused; role \"<user>\" does not exist"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_refresh_period() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(4), REFRESH_EVERY);
        assert_eq!(backoff(u32::MAX), REFRESH_EVERY);
    }
}

//! Database access under a deadline: the connection pool, the per-request budget for database
//! work, and connection handles that bound every await by it.
//!
//! A frozen server (SIGSTOP, a stalled network) still has its kernel ACK our packets, so only a
//! client-side timer notices it. All of one request's database work (waiting for a pooled
//! connection, connecting, every statement, the commit) draws on one budget, `DB_TIMEOUT`
//! (default 1.5 s) in total; once it is spent the request is answered 503 with `Retry-After`.
//! Time spent elsewhere (hashing a password, reading the body) is not drawn from it. Imports
//! write their batches under a budget of their own, `DB_IMPORT_TIMEOUT`.
//!
//! A connection whose call was cut off is closed instead of going back to the pool: its server
//! may be frozen, and its reply may still be on the way. The server's `statement_timeout` (set to
//! the same value on every new connection) is the second line: it ends the statement we gave up
//! on, which a server blocked on a lock would otherwise keep running after the client has gone.
//!
//! Every statement is unnamed and carries its parameters' types ([`Param`], `query_typed`):
//! parsed, bound and run in one round trip ending in one Sync, so nothing is left on a server
//! connection between statements. That is what a transaction-mode pooler (PgBouncer's
//! `pool_mode = transaction`) needs: it may hand each Sync outside a transaction to another
//! server connection, where a named prepared statement would be missing.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::db::DbConfig;
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
    Transaction,
};
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use crate::config::AppConfig;

/// Builds the pool; connections are opened on demand, so the app starts while the database
/// is down and answers 503 until it is back.
pub fn build_pool(db: &DbConfig, config: &AppConfig) -> anyhow::Result<Pool> {
    let pg_config = db.pg_config().clone();
    // Verified recycling costs a round trip per checkout; a broken connection is detected by the
    // query itself (closed, or cut off by the budget) and dropped.
    let manager_config = || ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match db.tls() {
        Some(tls) => Manager::from_config(pg_config, tls, manager_config()),
        None => Manager::from_config(pg_config, NoTls, manager_config()),
    };
    // Connecting and waiting are bounded by each request's budget; `DB_POOL_WAIT` may bound the
    // wait for a free connection more tightly.
    let statement_timeout = format!("{}ms", config.db_timeout.as_millis().max(1));
    let pool = Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(config.pool_wait))
        .runtime(Runtime::Tokio1)
        .post_create(Hook::async_fn(move |client, _| {
            let statement_timeout = statement_timeout.clone();
            Box::pin(async move {
                set_statement_timeout(client, &statement_timeout)
                    .await
                    .map_err(HookError::Backend)
            })
        }))
        .build()?;
    Ok(pool)
}

/// Sets the session's `statement_timeout` on a new connection, unless the server's default for
/// the role or database already is that value (compared as intervals: the server shows 2000 ms
/// as `2s`). A statement rather than a startup option: poolers such as PgBouncer refuse unknown
/// startup parameters. One typed round trip: every new connection pays for it, within the
/// request's budget.
///
/// Behind a transaction-mode pooler the setting lands on whichever server connection ran this
/// statement, and stays there for the pooler's other clients of the same role; an operator who
/// sets the role's default to `DB_TIMEOUT` (see the README) gives every server connection the
/// timeout, and then this statement changes nothing.
async fn set_statement_timeout(
    client: &tokio_postgres::Client,
    timeout: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .query_typed(
            "SELECT set_config('statement_timeout', $1, false)
             WHERE current_setting('statement_timeout')::interval <> $1::interval",
            &[param(&timeout)],
        )
        .await
        .map(drop)
}

/// How much time database work may still take. Clones share what is left.
#[derive(Debug, Clone)]
pub struct Budget {
    remaining: Arc<Mutex<Duration>>,
}

impl Budget {
    pub fn new(limit: Duration) -> Budget {
        Budget {
            remaining: Arc::new(Mutex::new(limit)),
        }
    }

    pub fn remaining(&self) -> Duration {
        *self.remaining.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `work` for at most what is left and draws the time it took; `None` when it did
    /// not finish in time (or nothing was left).
    async fn run<F: Future>(&self, work: F) -> Option<F::Output> {
        let left = self.remaining();
        if left.is_zero() {
            return None;
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(left, work).await.ok();
        let spent = started.elapsed();
        let mut remaining = self.remaining.lock().unwrap_or_else(|e| e.into_inner());
        *remaining = remaining.saturating_sub(spent);
        outcome
    }
}

tokio::task_local! {
    /// The budget of the request the current task is handling.
    static REQUEST_BUDGET: Budget;
}

/// Runs a request handler with a budget of `limit` for all of its database work.
pub fn with_request_budget<F: Future>(
    limit: Duration,
    handler: F,
) -> impl Future<Output = F::Output> {
    REQUEST_BUDGET.scope(Budget::new(limit), handler)
}

/// The current request's budget; outside a request (background work), a fresh one of `limit`.
pub fn request_budget(limit: Duration) -> Budget {
    REQUEST_BUDGET
        .try_with(Budget::clone)
        .unwrap_or_else(|_| Budget::new(limit))
}

/// Why database work failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The budget for database work ran out (or a call on the connection was cut off before).
    #[error("database work did not finish within its deadline")]
    Deadline,
    /// No connection: the pool's wait timed out or connecting failed.
    #[error("no database connection: {0}")]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

impl DbError {
    /// The SQLSTATE the server answered, if it did.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            DbError::Postgres(e) => e.code(),
            DbError::Deadline | DbError::Pool(_) => None,
        }
    }
}

/// A pooled connection whose every call draws on a budget (see the module comment).
pub struct Db {
    client: Option<Object>,
    budget: Budget,
    /// True while a call is in progress and after one was cut off: the connection is then in
    /// an unknown state and is closed on drop instead of being pooled.
    cut_off: AtomicBool,
    /// The budget of bulk writes (`DB_IMPORT_TIMEOUT`).
    bulk_limit: Duration,
}

impl Db {
    /// Takes a connection from `pool`, waiting and connecting within `budget`.
    pub async fn checkout(
        pool: &Pool,
        budget: Budget,
        bulk_limit: Duration,
    ) -> Result<Db, DbError> {
        match budget.run(pool.get()).await {
            Some(client) => Ok(Db {
                client: Some(client?),
                budget,
                cut_off: AtomicBool::new(false),
                bulk_limit,
            }),
            None => Err(DbError::Deadline),
        }
    }

    fn client_mut(&mut self) -> (&mut Object, &Budget, &AtomicBool) {
        let client = self
            .client
            .as_mut()
            .expect("the connection is only taken on drop");
        (client, &self.budget, &self.cut_off)
    }

    /// Begins a transaction on the request's budget.
    pub async fn transaction(&mut self) -> Result<DbTransaction<'_>, DbError> {
        let (client, budget, cut_off) = self.client_mut();
        let tx = bounded(budget, cut_off, client.transaction()).await?;
        Ok(DbTransaction {
            tx,
            budget,
            cut_off,
        })
    }

    /// Switches this connection to the budget of bulk writes (imports), `DB_IMPORT_TIMEOUT`:
    /// from now on its work draws on that instead of the request's budget.
    pub fn use_bulk_budget(&mut self) {
        self.budget = Budget::new(self.bulk_limit);
    }

    /// Begins a transaction in which the server lets statements run for as long as the
    /// budget has left (the connection's `statement_timeout` is `DB_TIMEOUT`).
    pub async fn bulk_transaction(&mut self) -> Result<DbTransaction<'_>, DbError> {
        let statement_timeout = format!("{}ms", self.budget.remaining().as_millis().max(1));
        let tx = self.transaction().await?;
        tx.execute(
            "SELECT set_config('statement_timeout', $1, true)",
            &[param(&statement_timeout)],
        )
        .await?;
        Ok(tx)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if *self.cut_off.get_mut() {
                // Detached from the pool; dropping it closes the socket.
                drop(Object::take(client));
            }
        }
    }
}

/// A transaction on a [`Db`], drawing on the same budget.
pub struct DbTransaction<'a> {
    tx: Transaction<'a>,
    budget: &'a Budget,
    cut_off: &'a AtomicBool,
}

impl DbTransaction<'_> {
    pub async fn commit(self) -> Result<(), DbError> {
        bounded(self.budget, self.cut_off, self.tx.commit()).await
    }
}

/// Runs one call of `work` on a connection within `budget`, marking the connection cut off
/// unless the call completes.
async fn bounded<T>(
    budget: &Budget,
    cut_off: &AtomicBool,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, DbError> {
    // A connection cut off before stays unusable; marked now, so that a call abandoned by
    // dropping this future counts as cut off as well.
    if cut_off.swap(true, Ordering::AcqRel) {
        return Err(DbError::Deadline);
    }
    match budget.run(work).await {
        Some(result) => {
            cut_off.store(false, Ordering::Release);
            Ok(result?)
        }
        None => Err(DbError::Deadline),
    }
}

/// A statement parameter and the PostgreSQL type it is sent as (see [`param`]).
pub type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// `value` as a statement parameter, typed by its Rust type ([`SqlType`]).
pub fn param<T: ToSql + SqlType + Sync>(value: &T) -> Param<'_> {
    (value, T::TYPE)
}

/// The PostgreSQL type a Rust value is sent as. The server takes it as the parameter's type
/// instead of inferring one from the statement, so a value must fit where it is used (or be
/// cast there, as in `$4::text[]`).
pub trait SqlType {
    const TYPE: Type;
}

/// The PostgreSQL array type of a `Vec` of values of this type.
pub trait SqlElement {
    const ARRAY: Type;
}

macro_rules! sql_types {
    ($($rust:ty => $scalar:ident, $array:ident;)*) => {
        $(
            impl SqlType for $rust {
                const TYPE: Type = Type::$scalar;
            }
            impl SqlElement for $rust {
                const ARRAY: Type = Type::$array;
            }
        )*
    };
}

sql_types! {
    str => TEXT, TEXT_ARRAY;
    String => TEXT, TEXT_ARRAY;
    [u8] => BYTEA, BYTEA_ARRAY;
    i64 => INT8, INT8_ARRAY;
    f64 => FLOAT8, FLOAT8_ARRAY;
    Uuid => UUID, UUID_ARRAY;
    OffsetDateTime => TIMESTAMPTZ, TIMESTAMPTZ_ARRAY;
    PrimitiveDateTime => TIMESTAMP, TIMESTAMP_ARRAY;
}

impl<T: SqlType + ?Sized> SqlType for &T {
    const TYPE: Type = T::TYPE;
}

impl<T: SqlElement + ?Sized> SqlElement for &T {
    const ARRAY: Type = T::ARRAY;
}

/// `None` is sent as NULL of the value's type.
impl<T: SqlType> SqlType for Option<T> {
    const TYPE: Type = T::TYPE;
}

impl<T: SqlElement> SqlElement for Option<T> {
    const ARRAY: Type = T::ARRAY;
}

impl<T: SqlElement> SqlType for Vec<T> {
    const TYPE: Type = T::ARRAY;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The connection, budget and cut-off flag behind a [`Queries`] value (fields private: the
/// only way to the connection is through the bounded calls).
pub struct Parts<'a> {
    client: &'a tokio_postgres::Client,
    budget: &'a Budget,
    cut_off: &'a AtomicBool,
}

/// A [`Queries`] method that runs the client's typed method `$typed` under the budget: one
/// unnamed statement, parsed, bound and run in a single round trip.
macro_rules! bounded_statement {
    ($(#[$doc:meta])* $name:ident = $typed:ident -> $output:ty) => {
        $(#[$doc])*
        fn $name<'a>(
            &'a self,
            statement: &'a str,
            params: &'a [Param<'a>],
        ) -> BoxFuture<'a, Result<$output, DbError>> {
            let parts = self.parts();
            Box::pin(bounded(
                parts.budget,
                parts.cut_off,
                parts.client.$typed(statement, params),
            ))
        }
    };
}

/// Statements on a [`Db`] or a [`DbTransaction`], each bounded by the budget. (Boxed futures:
/// one allocation per statement, and `Send` without higher-ranked inference trouble.)
pub trait Queries: Sync {
    fn parts(&self) -> Parts<'_>;

    bounded_statement!(
        /// The number of rows the statement wrote.
        execute = execute_typed -> u64
    );
    bounded_statement!(query = query_typed -> Vec<Row>);
    bounded_statement!(
        /// Exactly one row, or an error.
        query_one = query_typed_one -> Row
    );
    bounded_statement!(
        /// At most one row, or an error.
        query_opt = query_typed_opt -> Option<Row>
    );
}

impl Queries for Db {
    fn parts(&self) -> Parts<'_> {
        Parts {
            client: self
                .client
                .as_ref()
                .expect("the connection is only taken on drop"),
            budget: &self.budget,
            cut_off: &self.cut_off,
        }
    }
}

impl Queries for DbTransaction<'_> {
    fn parts(&self) -> Parts<'_> {
        Parts {
            client: self.tx.client(),
            budget: self.budget,
            cut_off: self.cut_off,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_budget_bounds_the_sum_of_its_calls_not_each_call() {
        let budget = Budget::new(3 * TICK);
        let two_ticks = || tokio::time::sleep(2 * TICK);
        assert!(budget.run(two_ticks()).await.is_some());
        assert!(budget.remaining() <= TICK);
        // The second call alone would fit in the budget; what is left does not.
        assert!(budget.run(two_ticks()).await.is_none());
        assert_eq!(budget.remaining(), Duration::ZERO);
        // Spent: nothing more starts.
        assert!(budget.run(async {}).await.is_none());
    }

    #[tokio::test]
    async fn one_request_shares_one_budget_and_other_work_is_not_drawn() {
        let limit = 3 * TICK;
        with_request_budget(limit, async {
            let first = request_budget(limit);
            first.run(tokio::time::sleep(TICK)).await;
            let left = first.remaining();
            assert!(left <= 2 * TICK);
            // Time between database calls (e.g. hashing a password) costs nothing.
            tokio::time::sleep(TICK).await;
            let second = request_budget(limit);
            assert_eq!(second.remaining(), left);
        })
        .await;
        // Outside a request, each checkout has a budget of its own.
        assert_eq!(request_budget(limit).remaining(), limit);
    }

    #[tokio::test]
    async fn a_cut_off_call_marks_the_connection_and_later_calls_fail_at_once() {
        let budget = Budget::new(TICK);
        let cut_off = AtomicBool::new(false);
        let never = std::future::pending::<Result<(), tokio_postgres::Error>>();
        assert!(matches!(
            bounded(&budget, &cut_off, never).await,
            Err(DbError::Deadline)
        ));
        assert!(cut_off.load(Ordering::Acquire));
        // Even with time left (a new budget), the connection is not used again.
        let fresh = Budget::new(10 * TICK);
        let ok = async { Ok::<_, tokio_postgres::Error>(()) };
        assert!(matches!(
            bounded(&fresh, &cut_off, ok).await,
            Err(DbError::Deadline)
        ));
        // A call that completes leaves the connection usable.
        let usable = AtomicBool::new(false);
        let ok = async { Ok::<_, tokio_postgres::Error>(7) };
        assert_eq!(bounded(&fresh, &usable, ok).await.unwrap(), 7);
        assert!(!usable.load(Ordering::Acquire));
    }
}

//! The connection pool.

use std::time::Duration;

use common::db::DbConfig;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::AppConfig;

/// Builds the pool; connections are opened on demand, so the app starts while the database
/// is down and answers 503 until it is back.
pub fn build_pool(db: &DbConfig, config: &AppConfig) -> anyhow::Result<Pool> {
    // Verified recycling costs a round trip per checkout; a broken connection is detected by the
    // query itself and dropped by deadpool.
    let manager_config = || ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match db.tls() {
        Some(tls) => Manager::from_config(db.pg_config().clone(), tls, manager_config()),
        None => Manager::from_config(db.pg_config().clone(), NoTls, manager_config()),
    };
    let pool = Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(config.pool_wait))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .runtime(Runtime::Tokio1)
        .build()?;
    Ok(pool)
}

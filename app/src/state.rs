//! State shared by every request.

use deadpool_postgres::Pool;

use crate::config::AppConfig;
use crate::password::PasswordHasher;

/// What handlers reach through `ctx.state`.
pub struct AppState {
    /// Database connections; waits are bounded (`DB_POOL_WAIT`), failures become 503.
    pub pool: Pool,
    pub config: AppConfig,
    /// argon2id hashing off the async threads with bounded concurrency.
    pub passwords: PasswordHasher,
    /// The OpenAPI document, built once from the route table.
    pub openapi: serde_json::Value,
}

impl AppState {
    /// A pooled connection, or 503 when the database cannot be reached in time.
    pub async fn db(&self) -> Result<deadpool_postgres::Object, crate::error::ApiError> {
        Ok(self.pool.get().await?)
    }
}

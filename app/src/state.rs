//! State shared by every request.

use deadpool_postgres::Pool;

use crate::config::AppConfig;
use crate::db::{self, Db};
use crate::password::PasswordHasher;

/// What handlers reach through `ctx.state`.
pub struct AppState {
    /// Database connections; reach them through [`AppState::db`], which bounds every wait.
    pub pool: Pool,
    pub config: AppConfig,
    /// argon2id hashing off the async threads with bounded concurrency.
    pub passwords: PasswordHasher,
    /// The OpenAPI document, built once from the route table.
    pub openapi: serde_json::Value,
}

impl AppState {
    /// A pooled connection drawing on the current request's budget for database work
    /// (`DB_TIMEOUT`, see [`crate::db`]), or 503 when the database cannot be reached in time.
    pub async fn db(&self) -> Result<Db, crate::error::ApiError> {
        let budget = db::request_budget(self.config.db_timeout);
        Ok(Db::checkout(&self.pool, budget, self.config.db_import_timeout).await?)
    }
}

//! The supervisor's health listener (HEALTH_ADDR): `/livez`, `/readyz`, `/readyz/<check>`, `/health` and
//! `/metrics`.
//!
//! Requests never wait on anything: background tasks keep the latest PostgreSQL and child readings in
//! [`Shared`], and each request only reads them together with the lifecycle [`State`].
//!
//! Each module uses only those listed after it: `http` (serving), `child` and `postgres` (the background
//! tasks), `shared` (the latest readings), `metrics` and `document` (the answers' bodies), `checks` (readings
//! into verdicts), then `config`, `connections` and `exposition`, which use none.

mod checks;
mod child;
mod config;
mod connections;
mod document;
mod exposition;
mod http;
mod metrics;
mod postgres;
mod shared;

use std::net::SocketAddr;
use std::sync::Arc;

use common::db::DbConfig;

use crate::state::State;
use shared::Shared;

pub use checks::START_GRACE as CHILD_START_GRACE;
pub use config::{ChildCheck, Details, HealthConfig};
pub use http::shows_details;

/// Bind HEALTH_ADDR now, so that a bind failure stops start-up with the address in the error, then serve in
/// background tasks on the current runtime until the process exits. Also starts the PostgreSQL refresher
/// (its own connection from `db`) and the child checker.
pub async fn start(config: HealthConfig, db: DbConfig, state: Arc<State>) -> std::io::Result<()> {
    launch(config, db, state).await.map(drop)
}

/// [`start`], returning the address actually bound (useful with port 0).
pub async fn launch(
    config: HealthConfig,
    db: DbConfig,
    state: Arc<State>,
) -> std::io::Result<SocketAddr> {
    let listener = http::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(state, config.details));
    tracing::info!(%addr, "health listener up");
    tokio::spawn(http::serve(listener, shared.clone()));
    tokio::spawn(postgres::refresh(db, shared.clone()));
    tokio::spawn(child::watch(config.child_check, shared));
    Ok(addr)
}

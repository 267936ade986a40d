//! The supervisor's health listener (HEALTH_ADDR): `/livez`, `/readyz`, `/readyz/<check>`, `/health` and
//! `/metrics`.
//!
//! Requests never wait on anything: background tasks keep the latest PostgreSQL and child results in
//! [`Shared`], and each request only reads them together with the lifecycle [`State`].

mod checks;
mod child;
mod config;
mod connections;
mod document;
mod exposition;
mod http;
mod metrics;
mod postgres;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use common::db::DbConfig;

use crate::state::State;

pub use checks::{CheckName, Reason, Status};
pub use child::START_GRACE as CHILD_START_GRACE;
pub use config::{ChildCheck, Details, HealthConfig};
pub use http::shows_details;

/// What the background tasks last found, read by every request.
pub(crate) struct Shared {
    state: Arc<State>,
    details: Details,
    postgres: Mutex<Option<postgres::Reading>>,
    child: Mutex<Option<child::Reading>>,
    metrics: metrics::Metrics,
    document: document::DocumentCache,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain readings: a panic elsewhere must not take the listener down.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn new(state: Arc<State>, details: Details) -> Self {
        Shared {
            state,
            details,
            postgres: Mutex::new(None),
            child: Mutex::new(None),
            metrics: metrics::Metrics::new(),
            document: document::DocumentCache::default(),
        }
    }

    fn postgres_reading(&self) -> Option<postgres::Reading> {
        *lock(&self.postgres)
    }

    fn set_postgres_reading(&self, reading: postgres::Reading) {
        *lock(&self.postgres) = Some(reading);
    }

    fn child_reading(&self) -> Option<child::Reading> {
        *lock(&self.child)
    }

    fn set_child_reading(&self, reading: child::Reading) {
        *lock(&self.child) = Some(reading);
    }
}

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

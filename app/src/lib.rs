//! The time-tracker HTTP API: hyper 1 on a tokio multi-thread runtime, matchit routing,
//! PostgreSQL through a deadpool pool.

pub mod accounts;
pub mod auth;
pub mod config;
pub mod db;
pub mod drain;
pub mod entries;
pub mod error;
pub mod health;
pub mod http;
pub mod imports;
pub mod openapi;
pub mod password;
pub mod query;
pub mod response;
pub mod router;
pub mod routes;
pub mod security;
pub mod server;
pub mod state;
pub mod summary;
pub mod throttle;
pub mod validation;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::db::DbConfig;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

pub use config::AppConfig;
pub use error::{ApiError, ApiResult, Problem};
pub use router::{Ctx, Router};
pub use state::AppState;

/// How often expired sessions and old login failures are deleted.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(300);

/// Runs the API until SIGTERM or SIGINT, then shuts down gracefully. With a drain notice (from the
/// supervisor), responses ask clients to leave from the moment the drain begins, before the signal arrives.
pub async fn run(
    config: AppConfig,
    db: DbConfig,
    drain_notice: Option<drain::DrainNotice>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // Handlers first, so that a signal arriving during start-up is not lost.
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    let pool = db::build_pool(&db, &config).context("building the connection pool")?;
    let passwords = password::PasswordHasher::new(config.hash_concurrency)?;
    let router = routes::build();
    let openapi = openapi::document(&router);
    let state = Arc::new(AppState {
        pool,
        config: config.clone(),
        passwords,
        openapi,
    });

    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port));
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (PORT={})", config.port))?;
    tracing::info!(%addr, database = %db.describe(), "listening");

    let maintenance = tokio::spawn(maintenance(state.clone()));
    let lame_duck = drain::LameDuck::default();
    let drain_watch = drain_notice.map(|notice| {
        let lame_duck = lame_duck.clone();
        tokio::spawn(async move {
            notice.wait().await;
            lame_duck.begin();
        })
    });
    let app = server::App::new(Arc::new(router), state, lame_duck);
    let options = server::ServeOptions {
        header_read_timeout: config.header_read_timeout,
        shutdown_timeout: config.shutdown_timeout,
    };
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            _ = sigint.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
        }
    };
    server::serve(listener, app, options, shutdown).await;
    maintenance.abort();
    if let Some(drain_watch) = drain_watch {
        drain_watch.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Deletes expired sessions and login failures outside the throttling window.
async fn maintenance(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Under the same deadline as a request (DB_TIMEOUT), so a frozen database cannot
        // hold a pooled connection here.
        let Ok(client) = state.db().await else {
            continue;
        };
        if let Err(err) = throttle::prune(&client).await {
            tracing::warn!(error = %err, "pruning login failures failed");
        }
        if let Err(err) = auth::prune_expired_sessions(&client).await {
            tracing::warn!(error = %err, "pruning expired sessions failed");
        }
    }
}

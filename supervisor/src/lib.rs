//! The container's PID 1: migrations, the child process, signals and the health listener.
//!
//! - `signals`: which signals are handled and how they reach the lifecycle without being lost;
//! - `lifecycle`: start-up, forwarding, draining, stopping, restarting;
//! - `migrate`: waiting for PostgreSQL and the migration lock;
//! - `child`: spawning the child and reaping;
//! - `health`: the health listener and its checks;
//! - `state`: what the lifecycle tells the health listener.

pub mod child;
pub mod cli;
pub mod config;
pub mod drain;
pub mod exit;
pub mod health;
pub mod lifecycle;
pub mod migrate;
pub mod signals;
pub mod state;

use std::ffi::OsString;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use crate::cli::{Action, Parsed};
use crate::config::Config;
use crate::exit::Exit;
use crate::lifecycle::Supervisor;
use crate::state::State;

/// The whole program; returns the exit code. `main` calls it with nothing before it.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    // First of all, before any thread exists: from here on no handled signal can be lost.
    if let Err(err) = signals::block() {
        eprintln!("supervisor: cannot block signals: {err}");
        return 71;
    }
    let cli = match cli::parse(args) {
        Parsed::Run(cli) => cli,
        Parsed::Exit {
            code,
            output,
            to_stderr,
        } => {
            if to_stderr {
                eprint!("{output}");
            } else {
                print!("{output}");
            }
            return code;
        }
    };
    if let Err(err) = common::logging::init() {
        eprintln!("supervisor: {}", Exit::from(err));
        return Exit::Config(String::new()).code();
    }
    let exit = run(cli);
    if let Some(message) = exit.message() {
        tracing::error!(code = exit.code(), "{message}");
    }
    exit.code()
}

fn run(cli: cli::Cli) -> Exit {
    let signals = match signals::listen() {
        Ok(rx) => rx,
        Err(err) => return Exit::Config(format!("cannot start the signal thread: {err}")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => return Exit::Config(format!("cannot start the runtime: {err}")),
    };
    let exit = runtime.block_on(async move {
        match cli.action {
            Some(Action::Migrate) => migrate_only(signals).await,
            None => supervise(cli.command, signals).await,
        }
    });
    // Dropping the runtime would wait for blocking tasks, such as a getaddrinfo that hangs on an unreachable
    // resolver for many seconds: the verdict is in, so exit without them.
    runtime.shutdown_background();
    exit
}

async fn supervise(
    command: Vec<OsString>,
    signals: UnboundedReceiver<nix::sys::signal::Signal>,
) -> Exit {
    let config = match Config::from_env(command) {
        Ok(config) => config,
        Err(err) => return err.into(),
    };
    if std::process::id() != 1 {
        if let Err(err) = child::become_subreaper() {
            tracing::warn!(%err, "cannot become a child subreaper; orphans go to the real init");
        }
    }
    let state = Arc::new(State::new());
    let addr = config.health.addr;
    if let Err(err) = health::start(
        config.health.clone(),
        config.start_up.db.clone(),
        state.clone(),
    )
    .await
    {
        return Exit::Config(format!(
            "configuration error: HEALTH_ADDR: cannot listen on {addr}: {err}"
        ));
    }
    Supervisor::new(config, state, signals).run().await
}

async fn migrate_only(signals: UnboundedReceiver<nix::sys::signal::Signal>) -> Exit {
    match config::StartUp::from_env() {
        Ok(start_up) => lifecycle::migrate_only(start_up, signals).await,
        Err(err) => err.into(),
    }
}

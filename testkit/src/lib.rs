//! Test harness shared by the workspace's integration tests: throwaway PostgreSQL clusters (and PgBouncer in front
//! of them), the workspace's binaries launched and awaited, a small HTTP client, stand-in servers, processes as
//! /proc shows them, free ports, bounded polling and a throwaway certificate authority; and the load generator
//! behind the `loadgen` binary.

mod cluster;
mod fs;
pub mod http;
pub mod load;
mod pgbouncer;
mod pki;
mod proc;
mod process;
pub mod server;
mod wait;

pub use cluster::{Database, Freeze, PgCluster};
pub use fs::TempDir;
pub use http::{Endpoint, Request, Response};
pub use pgbouncer::{PgBouncer, PoolConnections, PoolMode};
pub use pki::TestPki;
pub use proc::Proc;
pub use process::{Finished, Launch, Output, Running};
pub use wait::wait_for;

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it; another process may still take it).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}

/// Path of a workspace binary in the same profile directory as the running test executable
/// (target/debug/NAME for target/debug/deps/TEST-HASH). Panics if it has not been built.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("locating the test executable");
    let mut dir = exe
        .parent()
        .expect("test executable has a parent directory")
        .to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "binary {name:?} not found at {}: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// Every migration in `migrations/`, in version order, as one script: the schema the supervisor's embedded
/// migrations build, for tests that start the app without the supervisor.
pub fn schema_sql() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut migrations: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|entry| entry.expect("reading the migrations directory").path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let version = name.strip_prefix('V')?.split_once("__")?.0.parse().ok()?;
            name.ends_with(".sql").then_some((version, path))
        })
        .collect();
    migrations.sort();
    assert!(!migrations.is_empty(), "no migrations in {}", dir.display());
    migrations
        .iter()
        .map(|(_, path)| {
            std::fs::read_to_string(path)
                .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

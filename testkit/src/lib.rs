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
use std::sync::atomic::{AtomicU32, Ordering};

/// A TCP port that was free on every address a moment ago, never handed out twice by this process.
///
/// It lies below the kernel's ephemeral range (`ip_local_port_range`): a port the OS picked for `bind(0)` is one
/// that any outgoing connection on the machine (to PostgreSQL, between the programs under test) may take before
/// the program it is meant for binds it, which then fails with "address already in use".
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (low, high) = (
        ephemeral_low.saturating_sub(16_000).max(1024),
        ephemeral_low,
    );
    let span = high - low;
    // Processes that run at the same time start at different places.
    let start = std::process::id() * 7919 % span;
    for _ in 0..span {
        let port = (low + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        let free = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
            && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free TCP port between {low} and {high}")
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

//! The health listener as the supervisor runs it (current-thread runtime, a running child, a real
//! PostgreSQL with pg_stat_statements), for bench/health.sh.
//!
//! Prints `HEALTH_ADDR SOCKET_DIR PG_PORT DBNAME` on one line, then serves until its standard input closes,
//! and then stops the child and the throwaway cluster.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use supervisor::health::{ChildCheck, Details, HealthConfig};
use supervisor::state::{ChildInfo, Phase, State};
use testkit::PgCluster;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned())
        .parse()?;
    let pg = PgCluster::start_with(&[("shared_preload_libraries", "pg_stat_statements")]);
    let dbname = pg.create_database();
    pg.psql(&dbname, "CREATE EXTENSION pg_stat_statements");
    let db = common::db::DbConfig::parse(&pg.url(&dbname))?;
    let mut child = Command::new("sleep")
        .arg("1000000")
        .stdin(Stdio::null())
        .spawn()?;
    let state = Arc::new(State::new());
    state.set_child(Some(ChildInfo {
        pid: i32::try_from(child.id())?,
        started: Instant::now(),
        started_at: SystemTime::now(),
    }));
    state.set_migration_version(1);
    state.set_phase(Phase::Running);
    let config = HealthConfig {
        addr,
        child_check: ChildCheck::None,
        details: Details::Auto,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let bound = supervisor::health::launch(config, db, state).await?;
        let socket_dir = pg
            .data_dir()
            .parent()
            .expect("the data directory has a parent")
            .display()
            .to_string();
        println!("{bound} {socket_dir} {} {dbname}", pg.port());
        std::io::stdout().flush()?;
        // Serve until standard input closes.
        tokio::task::spawn_blocking(|| {
            let stdin = std::io::stdin();
            for _ in stdin.lock().lines() {}
        })
        .await?;
        let _ = child.kill();
        let _ = child.wait();
        drop(pg);
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

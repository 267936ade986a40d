//! A throwaway PgBouncer in front of a [`PgCluster`]: the pooler many deployments put between the app and
//! PostgreSQL, run from the machine's `pgbouncer` binary on a free loopback port, stopped on drop.

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cluster::{pg_bin, server_user};
use crate::{PgCluster, TempDir};

const START_ATTEMPTS: u32 = 3;
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Server connections per database and user unless told otherwise: more than any test's clients.
const DEFAULT_POOL_SIZE: u32 = 20;

/// How PgBouncer hands out server connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// One server connection per client connection, for the client's whole session.
    Session,
    /// A server connection per transaction.
    Transaction,
}

impl PoolMode {
    fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

/// A running PgBouncer; clients authenticate as the cluster's `postgres` user with its password (SCRAM).
pub struct PgBouncer {
    dir: TempDir,
    port: u16,
    password: String,
    child: Child,
}

impl PgBouncer {
    /// The `pgbouncer` binary, if the machine has one (Debian's `pgbouncer` package).
    pub fn binary() -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join("pgbouncer"))
            .find(|candidate| candidate.is_file())
    }

    /// Starts PgBouncer in front of every database of `cluster`; returns once it accepts connections.
    pub fn start(cluster: &PgCluster, mode: PoolMode) -> PgBouncer {
        PgBouncer::start_with_pool_size(cluster, mode, DEFAULT_POOL_SIZE)
    }

    /// Like [`PgBouncer::start`], with at most `pool_size` server connections per database and user. In
    /// transaction mode, fewer than the clients' connections makes PgBouncer hand each client's
    /// transactions (and statements outside one) to whichever server connection is free; in session mode,
    /// a client beyond it waits for a whole session to end.
    pub fn start_with_pool_size(cluster: &PgCluster, mode: PoolMode, pool_size: u32) -> PgBouncer {
        let binary = PgBouncer::binary()
            .expect("pgbouncer is not installed (Debian: apt-get install pgbouncer)");
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = TempDir::new("tt-pgbouncer");
            let port = crate::free_port();
            write_config(&dir, cluster, port, mode, pool_size);
            let mut command = Command::new(&binary);
            command
                .arg(dir.path().join("pgbouncer.ini"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // PgBouncer refuses to run as root.
            if let Some(user) = server_user() {
                std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid))
                    .expect("chown");
                command.uid(user.uid).gid(user.gid);
            }
            let mut child = command.spawn().expect("spawning pgbouncer");
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return PgBouncer {
                        dir,
                        port,
                        password: cluster.password().to_string(),
                        child,
                    };
                }
                if child.try_wait().expect("waiting for pgbouncer").is_some()
                    || Instant::now() >= deadline
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = std::fs::read_to_string(dir.path().join("pgbouncer.log"))
                        .unwrap_or_default();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Another process may have taken the free port first: try another one.
            if !last_log.contains("Address already in use") {
                break;
            }
        }
        panic!("pgbouncer did not start:\n{last_log}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DBNAME?sslmode=disable`, through PgBouncer.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.password, self.port
        )
    }

    /// PgBouncer's log, for assertions and failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// Runs SQL through `psql` and PgBouncer as `postgres`; returns its unaligned, tuples-only output without
    /// the final newline. Panics with psql's error if the statement fails.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        self.run_psql(dbname, &["-t"], sql)
    }

    /// The connections of the pool for `dbname` right now (none before its first client), from PgBouncer's
    /// admin console (`SHOW POOLS`).
    pub fn pool_connections(&self, dbname: &str) -> PoolConnections {
        let output = self.run_psql("pgbouncer", &["-P", "footer=off"], "SHOW POOLS");
        let mut lines = output.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split('|').collect();
        let Some(pool) = lines
            .map(|line| line.split('|').collect::<Vec<_>>())
            .find(|fields| fields.first() == Some(&dbname))
        else {
            return PoolConnections::default();
        };
        let sum = |columns: &[&str]| -> u32 {
            columns
                .iter()
                .map(|column| {
                    header
                        .iter()
                        .position(|name| name == column)
                        .and_then(|at| pool.get(at)?.parse::<u32>().ok())
                        .unwrap_or_else(|| panic!("no count {column} in SHOW POOLS:\n{output}"))
                })
                .sum()
        };
        PoolConnections {
            clients: sum(&["cl_active", "cl_waiting"]),
            servers: sum(&["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"]),
        }
    }

    fn run_psql(&self, dbname: &str, options: &[&str], sql: &str) -> String {
        let output = Command::new(pg_bin("psql"))
            .args(["-X", "-A", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(options)
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", dbname, "-c", sql])
            .arg("-p")
            .arg(self.port.to_string())
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .expect("running psql");
        assert!(
            output.status.success(),
            "psql -d {dbname} -c {sql:?} through PgBouncer failed: {}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
        let mut stdout = String::from_utf8(output.stdout).expect("psql output is UTF-8");
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        stdout
    }
}

/// A pool's client and server connections, as PgBouncer counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolConnections {
    /// Logged-in clients: served, idle or waiting for a server connection.
    pub clients: u32,
    /// Server connections: in use, idle, or being tested or opened.
    pub servers: u32,
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn write_config(dir: &TempDir, cluster: &PgCluster, port: u16, mode: PoolMode, pool_size: u32) {
    let userlist = dir.path().join("userlist.txt");
    let config = format!(
        "[databases]\n\
         * = host=127.0.0.1 port={server_port}\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = scram-sha-256\n\
         auth_file = {userlist}\n\
         pool_mode = {mode}\n\
         logfile = {log}\n\
         admin_users = postgres\n\
         max_client_conn = 200\n\
         default_pool_size = {pool_size}\n",
        server_port = cluster.port(),
        userlist = userlist.display(),
        mode = mode.as_str(),
        log = dir.path().join("pgbouncer.log").display(),
    );
    let mut users = std::fs::File::create(&userlist).expect("writing the userlist");
    writeln!(users, "\"postgres\" \"{}\"", cluster.password()).expect("writing the userlist");
    std::fs::write(dir.path().join("pgbouncer.ini"), config).expect("writing pgbouncer.ini");
    if let Some(user) = server_user() {
        for file in ["pgbouncer.ini", "userlist.txt"] {
            std::os::unix::fs::chown(dir.path().join(file), Some(user.uid), Some(user.gid))
                .expect("chown");
        }
    }
}

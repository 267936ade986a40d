//! A throwaway PostgreSQL cluster: initdb into a temp dir, postgres on 127.0.0.1 and a free port.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::fs::{random_hex, TempDir};
use crate::proc::Proc;

const DIR_PREFIX: &str = "testkit-pg";
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running PostgreSQL server owned by the test. Dropping it stops the server and deletes its directory.
pub struct PgCluster {
    root: TempDir,
    data_dir: PathBuf,
    port: u16,
    password: String,
    settings: Vec<(String, String)>,
    postmaster: Mutex<Option<Child>>,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("data_dir", &self.data_dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl PgCluster {
    /// initdb (superuser `postgres` with a generated password, scram-sha-256 over TCP, trust on the private
    /// unix socket) into a fresh temp dir, then postgres on 127.0.0.1 and a free port with fsync off.
    /// Returns once the server accepts connections.
    pub fn start() -> PgCluster {
        PgCluster::start_with(&[])
    }

    /// Like [`PgCluster::start`], with extra `-c name=value` server settings (e.g. `ssl=on`). Files named by
    /// settings must be readable by the server user (see [`crate::TestPki::write_file`]).
    pub fn start_with(settings: &[(&str, &str)]) -> PgCluster {
        static REAPED: OnceLock<()> = OnceLock::new();
        REAPED.get_or_init(reap_abandoned_clusters);
        let root = TempDir::new(DIR_PREFIX);
        let server_user = server_user();
        if let Some(user) = server_user {
            std::os::unix::fs::chown(root.path(), Some(user.uid), Some(user.gid))
                .unwrap_or_else(|err| panic!("chown {}: {err}", root.path().display()));
        }
        let password = random_hex(16);
        let pwfile = root.path().join("pwfile");
        std::fs::write(&pwfile, &password).expect("writing the initdb password file");
        if let Some(user) = server_user {
            std::os::unix::fs::chown(&pwfile, Some(user.uid), Some(user.gid))
                .expect("chown pwfile");
        }
        let data_dir = root.path().join("data");
        let output = server_command("initdb")
            .arg("-D")
            .arg(&data_dir)
            .args(["-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(root.path())
            .output()
            .expect("running initdb");
        std::fs::remove_file(&pwfile).expect("removing the initdb password file");
        assert!(
            output.status.success(),
            "initdb failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );

        let mut cluster = PgCluster {
            root,
            data_dir,
            port: 0,
            password,
            settings: settings
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            postmaster: Mutex::new(None),
        };
        for attempt in 1..=START_ATTEMPTS {
            cluster.port = crate::free_port();
            match cluster.spawn_and_wait() {
                Ok(child) => {
                    *cluster.postmaster.lock().unwrap() = Some(child);
                    return cluster;
                }
                Err(StartError::PortTaken) if attempt < START_ATTEMPTS => continue,
                Err(err) => panic!("{}", err.describe(&cluster)),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// One cluster shared by the tests of a binary that run at the same time; it stops when the last of them lets
    /// go of it (a later test starts a fresh one). Each test takes its own database in it.
    pub fn shared() -> Arc<PgCluster> {
        static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = slot.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(PgCluster::start());
        *slot = Arc::downgrade(&cluster);
        cluster
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `postgres` superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DBNAME?sslmode=disable`
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.password, self.port
        )
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding the server's unix socket (`.s.PGSQL.PORT`; local connections are trusted).
    pub fn socket_dir(&self) -> &Path {
        self.root.path()
    }

    /// The server's log (stdout and stderr of postgres), for assertions and failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Creates a database with a fresh unique name and returns the name.
    pub fn create_database(&self) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "test_{}_{}",
            COUNTER.fetch_add(1, Ordering::Relaxed),
            random_hex(4)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// Runs SQL through `psql` as the superuser over TCP; returns its unaligned, tuples-only output without
    /// the final newline. Panics with psql's error if the statement fails.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        self.try_psql(dbname, sql)
            .unwrap_or_else(|err| panic!("psql -d {dbname} -c {sql:?} failed: {err}"))
    }

    /// Like [`PgCluster::psql`], returning psql's error text instead of panicking (for statements expected
    /// to fail). Statements are cut off after a minute, so a test waiting on a lock cannot hang.
    pub fn try_psql(&self, dbname: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(pg_bin("psql"))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(dbname)
            .arg("-c")
            .arg(sql)
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGOPTIONS", "-c statement_timeout=60s")
            .stdin(Stdio::null())
            .output()
            .expect("running psql");
        if !output.status.success() {
            return Err(format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            ));
        }
        let mut stdout = String::from_utf8(output.stdout).expect("psql output is UTF-8");
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        Ok(stdout)
    }

    /// Stops the server (fast shutdown: sessions are ended) and waits for it to exit.
    pub fn stop(&self) {
        let mut postmaster = self.postmaster.lock().unwrap();
        if let Some(child) = postmaster.take() {
            stop_postmaster(child, Signal::SIGINT);
        }
    }

    /// Starts the server again on the same port and data (stopping it first if it is running).
    pub fn restart(&self) {
        self.stop();
        let mut postmaster = self.postmaster.lock().unwrap();
        match self.spawn_and_wait() {
            Ok(child) => *postmaster = Some(child),
            Err(err) => panic!("restarting postgres: {}", err.describe(self)),
        }
    }

    /// Stops every process of the server with SIGSTOP (as a hung host or a paused container): the postmaster
    /// first, so that it starts no new backend, then all its children. They continue when the [`Freeze`] is
    /// dropped, so a failing test never leaves the server frozen.
    pub fn freeze(&self) -> Freeze {
        let postmaster = self
            .postmaster
            .lock()
            .unwrap()
            .as_ref()
            .map(|child| Pid::from_raw(child.id() as i32))
            .expect("the server is running");
        kill(postmaster, Signal::SIGSTOP).expect("SIGSTOP to the postmaster");
        let mut freeze = Freeze {
            pids: vec![postmaster],
        };
        for child in Proc::children_of(postmaster.as_raw()) {
            let child = Pid::from_raw(child.pid);
            // A child may have exited since it was listed.
            if kill(child, Signal::SIGSTOP).is_ok() {
                freeze.pids.push(child);
            }
        }
        assert!(
            freeze.pids.len() > 1,
            "the postmaster has no children to stop"
        );
        freeze
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("postgres.log")
    }

    fn spawn_and_wait(&self) -> Result<Child, StartError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the postgres log");
        let log_len_before = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut command = server_command("postgres");
        command
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.root.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=200", "-c", "logging_collector=off"]);
        for (name, value) in &self.settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        let mut child = command
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            // Its own process group: a Ctrl-C meant for the test runner, or signals a test sends to some
            // other process group, must not reach the server.
            .process_group(0)
            .spawn()
            .expect("spawning postgres");

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for postgres") {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                let new_lines = log.get(log_len_before as usize..).unwrap_or(&log);
                if new_lines.contains("could not bind")
                    || new_lines.contains("Address already in use")
                {
                    return Err(StartError::PortTaken);
                }
                return Err(StartError::Exited(status.to_string()));
            }
            if self.is_ready(child.id()) {
                return Ok(child);
            }
            if Instant::now() >= deadline {
                stop_postmaster(child, Signal::SIGQUIT);
                return Err(StartError::NotReady);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// postmaster.pid's 8th line reads "ready" once the server accepts connections (PostgreSQL >= 10).
    fn is_ready(&self, pid: u32) -> bool {
        let Ok(content) = std::fs::read_to_string(self.data_dir.join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = content.lines().collect();
        lines.first().map(|l| l.trim()) == Some(pid.to_string().as_str())
            && lines.get(7).map(|l| l.trim()) == Some("ready")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let postmaster = self.postmaster.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(child) = postmaster.take() {
            // Immediate shutdown: the data is thrown away anyway.
            stop_postmaster(child, Signal::SIGQUIT);
        }
    }
}

/// A database of its own in a cluster.
pub struct Database {
    pub cluster: Arc<PgCluster>,
    pub name: String,
}

impl Database {
    /// A fresh database in a cluster of its own (which the test may stop, restart or freeze).
    pub fn start() -> Database {
        Database::in_cluster(&Arc::new(PgCluster::start()))
    }

    /// A fresh database in the [shared cluster](PgCluster::shared).
    pub fn shared() -> Database {
        Database::in_cluster(&PgCluster::shared())
    }

    /// A fresh database in `cluster`.
    pub fn in_cluster(cluster: &Arc<PgCluster>) -> Database {
        let name = cluster.create_database();
        Database {
            cluster: cluster.clone(),
            name,
        }
    }

    /// The superuser's URL of this database.
    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }

    /// Runs SQL in this database (see [`PgCluster::psql`]).
    pub fn psql(&self, sql: &str) -> String {
        self.cluster.psql(&self.name, sql)
    }
}

/// Every process of a cluster stopped with SIGSTOP ([`PgCluster::freeze`]); continued (SIGCONT) when dropped.
pub struct Freeze {
    pids: Vec<Pid>,
}

impl Freeze {
    /// How many processes are stopped.
    pub fn processes(&self) -> usize {
        self.pids.len()
    }

    /// Continues every stopped process.
    pub fn thaw(self) {
        drop(self);
    }
}

impl Drop for Freeze {
    fn drop(&mut self) {
        for pid in self.pids.drain(..) {
            let _ = kill(pid, Signal::SIGCONT);
        }
    }
}

enum StartError {
    PortTaken,
    Exited(String),
    NotReady,
}

impl StartError {
    fn describe(&self, cluster: &PgCluster) -> String {
        let what = match self {
            StartError::PortTaken => "port stayed taken".to_owned(),
            StartError::Exited(status) => format!("postgres exited ({status})"),
            StartError::NotReady => format!("postgres not ready within {READY_TIMEOUT:?}"),
        };
        format!("{what}; server log:\n{}", cluster.log())
    }
}

/// Signals the postmaster and waits (bounded) for it to exit, escalating to SIGKILL.
fn stop_postmaster(mut child: Child, signal: Signal) {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, signal);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Stops and deletes clusters left behind by test processes that were killed before their Drop ran (their
/// directory names carry the creating process id), so an interrupted run does not leak servers.
fn reap_abandoned_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(|n| {
            n.strip_prefix(DIR_PREFIX)?
                .strip_prefix('-')?
                .split('-')
                .next()?
                .parse::<i32>()
                .ok()
        }) else {
            continue;
        };
        if process_exists(owner) {
            continue;
        }
        let dir = entry.path();
        let data_dir = dir.join("data");
        if let Some(postmaster) = running_postmaster(&data_dir) {
            let _ = kill(postmaster, Signal::SIGQUIT);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while process_exists(postmaster.as_raw()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = kill(postmaster, Signal::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn process_exists(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// The postmaster serving `data_dir`, if one runs: its pid file names it and its command line names the dir.
fn running_postmaster(data_dir: &Path) -> Option<Pid> {
    let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: i32 = pid_file.lines().next()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let data_dir = data_dir.to_str()?.as_bytes();
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == data_dir)
        .then(|| Pid::from_raw(pid))
}

#[derive(Clone, Copy)]
pub(crate) struct ServerUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// PostgreSQL refuses to run as root: when we are root, run it as `postgres` (or `nobody`).
pub(crate) fn server_user() -> Option<ServerUser> {
    static USER: OnceLock<Option<ServerUser>> = OnceLock::new();
    *USER.get_or_init(|| {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let user = ["postgres", "nobody"]
            .iter()
            .find_map(|name| nix::unistd::User::from_name(name).ok().flatten())
            .expect("running as root, but neither a postgres nor a nobody user exists to run PostgreSQL");
        Some(ServerUser {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    })
}

/// A command for a server binary, run as the server user when we are root.
fn server_command(name: &str) -> Command {
    let mut command = Command::new(pg_bin(name));
    if let Some(user) = server_user() {
        command.uid(user.uid).gid(user.gid);
    }
    command.env("LC_ALL", "C");
    command
}

/// A PostgreSQL binary: from `pg_config --bindir`, else the highest /usr/lib/postgresql/*/bin.
pub(crate) fn pg_bin(name: &str) -> PathBuf {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR.get_or_init(find_bindir).join(name)
}

fn find_bindir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|dir| dir.join("initdb").is_file()) {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no PostgreSQL server binaries: neither `pg_config --bindir` nor /usr/lib/postgresql/*/bin has initdb")
}

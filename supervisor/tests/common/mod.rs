//! Shared harness for the supervisor's integration tests: starting the real binary (optionally as PID 1 of a new
//! PID namespace), capturing its output, waiting for its exit, signalling it, talking to its health listener and
//! looking at processes through /proc.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use testkit::PgCluster;

/// The supervisor binary under test.
pub fn supervisor_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_supervisor"))
}

/// The path of a fixture script (tests/fixtures/NAME).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The number of migration files the supervisor embeds.
pub fn migration_count() -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension() == Some(OsStr::new("sql")))
        .count()
}

/// One PostgreSQL cluster shared by the tests of a binary that run at the same time; it stops when the last
/// of them lets go of it (a later test starts a fresh one). Each test takes its own database in it.
pub fn shared_cluster() -> Arc<PgCluster> {
    static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cluster) = slot.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(PgCluster::start());
    *slot = Arc::downgrade(&cluster);
    cluster
}

/// A database URL whose server refuses connections (nothing listens on the port), with a recognisable password.
pub fn refused_url(password: &str) -> String {
    format!(
        "postgres://tracker:{password}@127.0.0.1:{}/tracker?sslmode=disable",
        testkit::free_port()
    )
}

/// Checks that `unshare --pid --fork --mount-proc` works here; the PID 1 tests need it.
pub fn require_unshare() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let out = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "sh", "-c", "echo $$"])
            .output()
            .map_err(|err| format!("cannot run unshare: {err}"))?;
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && pid == "1" {
            Ok(())
        } else {
            Err(format!(
                "`unshare --pid --fork --mount-proc` does not work here (status {}, pid {pid:?}, stderr {:?}); \
                 these tests need root or user namespaces",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(problem) = checked {
        panic!("{problem}");
    }
}

/// How to start the supervisor: a clean environment with a free HEALTH_ADDR and CHILD_CHECK=none.
pub struct Launch {
    env: HashMap<String, String>,
    args: Vec<String>,
    pid1: bool,
    health: SocketAddr,
    pre_exec: Option<fn() -> std::io::Result<()>>,
}

impl Launch {
    /// `supervisor -- CHILD...` against `database_url`.
    pub fn child(database_url: &str, child: &[&str]) -> Launch {
        let mut launch = Launch::bare();
        launch.env("DATABASE_URL", database_url);
        launch.args.push("--".into());
        launch.args.extend(child.iter().map(|s| s.to_string()));
        launch
    }

    /// `supervisor migrate` against `database_url`.
    pub fn migrate(database_url: &str) -> Launch {
        let mut launch = Launch::bare();
        launch.env("DATABASE_URL", database_url);
        launch.args.push("migrate".into());
        launch
    }

    /// No arguments and no DATABASE_URL: add them yourself.
    pub fn bare() -> Launch {
        let health = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
        let mut env = HashMap::new();
        env.insert(
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        );
        env.insert("HEALTH_ADDR".into(), health.to_string());
        env.insert("CHILD_CHECK".into(), "none".into());
        Launch {
            env,
            args: Vec::new(),
            pid1: false,
            health,
            pre_exec: None,
        }
    }

    pub fn env(&mut self, name: &str, value: &str) -> &mut Launch {
        self.env.insert(name.into(), value.into());
        self
    }

    pub fn unset(&mut self, name: &str) -> &mut Launch {
        self.env.remove(name);
        self
    }

    pub fn arg(&mut self, arg: &str) -> &mut Launch {
        self.args.push(arg.into());
        self
    }

    /// Run the supervisor as PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`).
    pub fn pid1(&mut self) -> &mut Launch {
        require_unshare();
        self.pid1 = true;
        self
    }

    /// Something to do in the forked process before the supervisor is executed (must be async-signal-safe).
    pub fn pre_exec(&mut self, f: fn() -> std::io::Result<()>) -> &mut Launch {
        self.pre_exec = Some(f);
        self
    }

    pub fn spawn(&self) -> Running {
        let mut cmd = if self.pid1 {
            let mut cmd = Command::new("unshare");
            // --kill-child: should unshare die, the supervisor (and with it the namespace) dies too.
            cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
                .arg(supervisor_bin());
            cmd
        } else {
            Command::new(supervisor_bin())
        };
        cmd.args(&self.args)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let extra = self.pre_exec;
        // SAFETY: setsid, sigaction and sigprocmask are async-signal-safe. The new session lets the test find
        // and kill everything the supervisor started, should a test fail half-way.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid()?;
                if let Some(f) = extra {
                    f()?;
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd.spawn().expect("starting the supervisor");
        let pid = child.id() as i32;
        let stdout = Captured::new();
        let stderr = Captured::new();
        stdout.pump(child.stdout.take().expect("piped stdout"));
        stderr.pump(child.stderr.take().expect("piped stderr"));
        let (tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let status = child.wait().expect("waiting for the supervisor");
            let _ = tx.send((status, Instant::now(), SystemTime::now()));
        });
        Running {
            launcher: pid,
            pid1: self.pid1,
            supervisor: OnceLock::new(),
            health: self.health,
            started,
            stdout,
            stderr,
            exit,
            exited: None,
        }
    }

    /// Starts the supervisor and waits for it to exit (bounded by `timeout`).
    pub fn run(&self, timeout: Duration) -> Finished {
        let mut running = self.spawn();
        running.wait_exit(timeout)
    }
}

/// Output of a pipe, collected by a thread, that tests can wait on.
#[derive(Clone)]
pub struct Captured {
    /// The text so far, and whether the pipe reached end-of-file.
    inner: Arc<(Mutex<(String, bool)>, Condvar)>,
}

impl Captured {
    fn new() -> Captured {
        Captured {
            inner: Arc::new((Mutex::new((String::new(), false)), Condvar::new())),
        }
    }

    fn pump(&self, mut source: impl Read + Send + 'static) {
        let this = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let (captured, cv) = &*this.inner;
                match source.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        captured.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
                        cv.notify_all();
                        return;
                    }
                    Ok(n) => {
                        captured
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                            .push_str(&String::from_utf8_lossy(&buf[..n]));
                        cv.notify_all();
                    }
                }
            }
        });
    }

    pub fn text(&self) -> String {
        self.inner
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Everything written, once every writer closed the pipe (at most `timeout`: leftovers may hold it open).
    pub fn complete(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (captured, cv) = &*self.inner;
        let mut guard = captured.lock().unwrap_or_else(|e| e.into_inner());
        while !guard.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = cv
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        guard.0.clone()
    }

    /// Waits until the output contains `needle`; false after `timeout`.
    pub fn wait_contains(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (captured, cv) = &*self.inner;
        let mut guard = captured.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if guard.0.contains(needle) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = cv
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A supervisor that was started.
pub struct Running {
    /// The process the test started: the supervisor, or `unshare` in front of it.
    launcher: i32,
    pid1: bool,
    supervisor: OnceLock<i32>,
    pub health: SocketAddr,
    pub started: Instant,
    pub stdout: Captured,
    pub stderr: Captured,
    exit: Receiver<(ExitStatus, Instant, SystemTime)>,
    exited: Option<Finished>,
}

/// How a supervisor run ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit code, or 128 + N when the process died of signal N.
    pub code: i32,
    /// From the spawn to the exit.
    pub elapsed: Duration,
    pub at: Instant,
    /// The same moment on the wall clock, to compare with times the child wrote down.
    pub at_wall: SystemTime,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Everything the supervisor printed, for secret checks.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code, code,
            "exit code after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.elapsed, self.stdout, self.stderr
        );
    }
}

impl Running {
    /// The supervisor's PID as seen from the test (outside any namespace).
    pub fn pid(&self) -> i32 {
        *self.supervisor.get_or_init(|| {
            if !self.pid1 {
                return self.launcher;
            }
            // unshare forks, and the fork execs the supervisor: wait until it has.
            let bin = supervisor_bin();
            testkit::wait_for(
                "the supervisor to run under unshare",
                Duration::from_secs(10),
                || {
                    processes()
                        .into_iter()
                        .find(|p| p.ppid == self.launcher)
                        .filter(|p| {
                            std::fs::read_link(format!("/proc/{}/exe", p.pid))
                                .ok()
                                .as_ref()
                                == Some(&bin)
                        })
                        .map(|p| p.pid)
                },
            )
        })
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal)
            .unwrap_or_else(|err| panic!("sending {signal} to the supervisor: {err}"));
    }

    /// Waits for the supervisor to exit; panics with its output after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Finished {
        if let Some(done) = &self.exited {
            return done.clone();
        }
        match self.exit.recv_timeout(timeout) {
            Ok((status, at, at_wall)) => {
                let done = self.finish(status, at, at_wall);
                self.exited = Some(done.clone());
                done
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "the supervisor did not exit within {timeout:?}\n--- stdout\n{}--- stderr\n{}",
                self.stdout.text(),
                self.stderr.text()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!("lost the supervisor's exit status"),
        }
    }

    /// Whether the supervisor is still running after `grace`.
    pub fn still_running_after(&mut self, grace: Duration) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.exit.recv_timeout(grace) {
            Ok((status, at, at_wall)) => {
                self.exited = Some(self.finish(status, at, at_wall));
                false
            }
            Err(_) => true,
        }
    }

    fn finish(&self, status: ExitStatus, at: Instant, at_wall: SystemTime) -> Finished {
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .or_else(|| status.signal().map(|n| 128 + n))
            .expect("an exit code or a signal");
        let stdout = self.stdout.complete(Duration::from_secs(2));
        let stderr = self.stderr.complete(Duration::from_secs(2));
        Finished {
            code,
            elapsed: at - self.started,
            at,
            at_wall,
            stdout,
            stderr,
        }
    }

    /// GET `path` from the health listener: the status code and body, or None when nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.health, path)
    }

    /// Waits until the health listener answers at all.
    pub fn wait_health_up(&self, timeout: Duration) {
        testkit::wait_for("the health listener to answer", timeout, || {
            self.get("/livez")
        });
    }

    /// Waits until `path` answers with `status`.
    pub fn wait_status(&self, path: &str, status: u16, timeout: Duration) {
        let what = format!("{path} to answer {status}");
        testkit::wait_for(&what, timeout, || {
            self.get(path).filter(|(code, _)| *code == status)
        });
    }

    /// Every process started under this supervisor (its session), as seen from the test.
    pub fn in_session(&self) -> Vec<Proc> {
        processes()
            .into_iter()
            .filter(|p| p.session == self.launcher)
            .collect()
    }

    /// Waits until the child wrote `line` to `name` in `scratch`; panics with the supervisor's log otherwise.
    pub fn wait_line(&mut self, scratch: &Scratch, name: &str, line: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !scratch.lines(name).iter().any(|l| l == line) {
            if Instant::now() >= deadline {
                let masks = self.thread_masks();
                let state = match self.still_running_after(Duration::ZERO) {
                    true => "still running".to_owned(),
                    false => format!("exited: {:?}", self.exited.as_ref().map(|f| f.code)),
                };
                panic!(
                    "no line {line:?} in {name} after {timeout:?}; it has {:?}; the supervisor is {state}; \
                     thread masks {masks:?}\n--- supervisor stderr\n{}",
                    scratch.lines(name),
                    self.stderr.text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Each thread of the supervisor with its blocked signals (SigBlk), for diagnostics.
    pub fn thread_masks(&self) -> Vec<(String, String)> {
        let pid = self.pid();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        tasks
            .filter_map(Result::ok)
            .map(|task| {
                let status =
                    std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                };
                (field("Name:"), field("SigBlk:"))
            })
            .collect()
    }

    /// The supervisor's zombie children right now.
    pub fn zombie_children(&self) -> Vec<i32> {
        let sup = self.pid();
        processes()
            .into_iter()
            .filter(|p| p.ppid == sup && p.state == 'Z')
            .map(|p| p.pid)
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.exited.is_some() {
            return;
        }
        // A failed test: kill everything in the supervisor's session, then collect its status (bounded).
        for p in processes() {
            if p.session == self.launcher {
                let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
            }
        }
        let _ = self.exit.recv_timeout(Duration::from_secs(5));
    }
}

/// A process, from /proc/PID/stat.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
}

/// Every process visible in /proc (processes that vanish while being read are skipped).
pub fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_stat)
        .collect()
}

pub fn proc_stat(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain anything, ')' included: the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some(Proc {
        pid,
        state,
        ppid,
        pgrp,
        session,
    })
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|p| p.state != 'Z')
}

/// A plain HTTP/1.1 GET over a fresh connection: the status code and body, or None when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// A file the child writes to, in its own temp dir.
pub struct Scratch {
    dir: testkit::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: testkit::TempDir::new("supervisor-test"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `name` as a string, for command lines.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// The lines of `name` (none when it does not exist).
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.read(name).lines().map(str::to_owned).collect()
    }

    /// Waits until `name` has a line equal to `line`.
    pub fn wait_line(&self, name: &str, line: &str, timeout: Duration) {
        let what = format!("line {line:?} in {name}");
        testkit::wait_for(&what, timeout, || {
            self.lines(name).iter().any(|l| l == line).then_some(())
        });
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Panics if `secret` appears anywhere in `output`.
pub fn assert_no_secret(output: &str, secret: &str) {
    assert!(
        !output.contains(secret),
        "the password appears in the supervisor's output:\n{output}"
    );
}

/// The child used by the signal tests: `perl traps.pl OUT` (see fixtures/traps.pl).
pub fn traps_child(scratch: &Scratch) -> Vec<String> {
    vec![
        "perl".into(),
        fixture("traps.pl").to_string_lossy().into_owned(),
        scratch.arg("traps"),
    ]
}

/// Borrow a `Vec<String>` as the `&[&str]` that [`Launch::child`] takes.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A wall-clock time the child wrote with `date +%s%N`.
pub fn parse_nanos(line: &str) -> SystemTime {
    let nanos: u64 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a `date +%s%N` time: {line:?}"));
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// The command name of `pid` (empty when it is gone).
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_default()
}

//! Launching the workspace's binaries (the supervisor, the app, the probe) or any other program for a test: a clean
//! environment, its own session (so that everything it starts can be found and killed), optionally as PID 1 of a new
//! PID namespace; its output captured while it runs; its exit awaited with a bound; its HTTP listeners.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::http::Endpoint;
use crate::proc::Proc;

/// How long a request to the supervisor's health listener may take: it must answer within a second.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// How to start a program: a clean environment (only `PATH`), stdin from /dev/null, stdout and stderr captured.
#[derive(Clone)]
pub struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    pid1: bool,
    pre_exec: Option<fn() -> std::io::Result<()>>,
    health: Option<SocketAddr>,
    api: Option<SocketAddr>,
}

impl Launch {
    pub fn new(program: impl Into<PathBuf>) -> Launch {
        let mut env = BTreeMap::new();
        env.insert(
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        );
        Launch {
            program: program.into(),
            args: Vec::new(),
            env,
            pid1: false,
            pre_exec: None,
            health: None,
            api: None,
        }
    }

    /// The supervisor with a free `HEALTH_ADDR` on loopback and `CHILD_CHECK=none`; no arguments and no
    /// `DATABASE_URL` (add them yourself).
    pub fn supervisor() -> Launch {
        let health = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let mut launch = Launch::new(crate::bin_path("supervisor"));
        launch
            .env("HEALTH_ADDR", &health.to_string())
            .env("CHILD_CHECK", "none");
        launch.health = Some(health);
        launch
    }

    /// `supervisor -- CHILD...` against `database_url`.
    pub fn supervisor_child(database_url: &str, child: &[&str]) -> Launch {
        let mut launch = Launch::supervisor();
        launch
            .env("DATABASE_URL", database_url)
            .arg("--")
            .args(child);
        launch
    }

    /// `supervisor migrate` against `database_url`.
    pub fn supervisor_migrate(database_url: &str) -> Launch {
        let mut launch = Launch::supervisor();
        launch.env("DATABASE_URL", database_url).arg("migrate");
        launch
    }

    /// The supervisor running its default child, the app next to it, on a free `PORT`, checked the default way
    /// (its `/livez`). Needs `cargo build -p app`.
    pub fn supervisor_app(database_url: &str) -> Launch {
        crate::bin_path("app");
        let mut launch = Launch::supervisor();
        let port = crate::free_port();
        launch
            .env("DATABASE_URL", database_url)
            .env("PORT", &port.to_string())
            .unset("CHILD_CHECK");
        launch.api = Some(SocketAddr::from(([127, 0, 0, 1], port)));
        launch
    }

    /// The app on a free `PORT` against `database_url`, logging at debug, two password hashes at a time, and a
    /// `DB_TIMEOUT` of 10 s: tests of behaviour must not see a slow connect on a loaded machine as a 503 (the
    /// deadline tests set their own).
    pub fn app(database_url: &str) -> Launch {
        let port = crate::free_port();
        let mut launch = Launch::new(crate::bin_path("app"));
        launch
            .env("DATABASE_URL", database_url)
            .env("PORT", &port.to_string())
            .env("RUST_LOG", "debug")
            .env("HASH_CONCURRENCY", "2")
            .env("DB_TIMEOUT", "10s");
        launch.api = Some(SocketAddr::from(([127, 0, 0, 1], port)));
        launch
    }

    pub fn env(&mut self, name: &str, value: &str) -> &mut Launch {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Each `(name, value)` as [`Launch::env`].
    pub fn envs(&mut self, vars: &[(&str, &str)]) -> &mut Launch {
        for (name, value) in vars {
            self.env(name, value);
        }
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

    pub fn args<S: AsRef<str>>(&mut self, args: &[S]) -> &mut Launch {
        self.args
            .extend(args.iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// When `pid1`, run the program as PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`).
    pub fn as_pid1(&mut self, pid1: bool) -> &mut Launch {
        if pid1 {
            require_unshare();
        }
        self.pid1 = pid1;
        self
    }

    /// Something to do in the forked process before the program is executed (must be async-signal-safe).
    pub fn pre_exec(&mut self, f: fn() -> std::io::Result<()>) -> &mut Launch {
        self.pre_exec = Some(f);
        self
    }

    pub fn spawn(&self) -> Running {
        let program = std::fs::canonicalize(&self.program).unwrap_or_else(|_| self.program.clone());
        let mut cmd = if self.pid1 {
            let mut cmd = Command::new("unshare");
            // --kill-child: should unshare die, the program (and with it the namespace) dies too.
            cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
                .arg(&program);
            cmd
        } else {
            Command::new(&program)
        };
        cmd.args(&self.args)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let extra = self.pre_exec;
        // SAFETY: setsid, sigaction and sigprocmask are async-signal-safe. The new session lets the test find
        // and kill everything the program started, should a test fail half-way.
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
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", program.display()));
        let launcher = child.id() as i32;
        let stdout = Output::new();
        let stderr = Output::new();
        stdout.pump(child.stdout.take().expect("piped stdout"));
        stderr.pump(child.stderr.take().expect("piped stderr"));
        let (tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let status = child.wait().expect("waiting for the launched process");
            let _ = tx.send((status, Instant::now(), SystemTime::now()));
        });
        Running {
            launcher,
            pid1: self.pid1,
            program,
            pid: OnceLock::new(),
            health: self.health,
            api: self.api,
            started,
            stdout,
            stderr,
            exit: Mutex::new(exit),
            exited: None,
        }
    }

    /// Starts the program and waits for it to exit (bounded by `timeout`).
    pub fn run(&self, timeout: Duration) -> Finished {
        self.spawn().wait_exit(timeout)
    }
}

/// Checks that `unshare --pid --fork --mount-proc` works here; the PID 1 tests need it.
fn require_unshare() {
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

/// Output of a pipe, collected by a thread, that tests can wait on.
#[derive(Clone)]
pub struct Output {
    inner: Arc<(Mutex<Captured>, Condvar)>,
}

/// The bytes so far, and whether the pipe reached end-of-file.
type Captured = (Vec<u8>, bool);

impl Output {
    fn new() -> Output {
        Output {
            inner: Arc::new((Mutex::new((Vec::new(), false)), Condvar::new())),
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
                            .extend_from_slice(&buf[..n]);
                        cv.notify_all();
                    }
                }
            }
        });
    }

    /// The output so far (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        let captured = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&captured.0).into_owned()
    }

    /// Whether everything so far is valid UTF-8.
    pub fn is_utf8(&self) -> bool {
        let captured = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        std::str::from_utf8(&captured.0).is_ok()
    }

    /// The complete lines so far.
    pub fn lines(&self) -> Vec<String> {
        let text = self.text();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().map(str::to_owned).collect()
    }

    /// Waits until `done` holds for the text so far, or the pipe is closed, or `timeout` passed; the text then.
    fn wait(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let (captured, cv) = &*self.inner;
        let mut guard = captured.lock().unwrap_or_else(|e| e.into_inner());
        while !done(&String::from_utf8_lossy(&guard.0)) && !guard.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = cv
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        String::from_utf8_lossy(&guard.0).into_owned()
    }

    /// Everything written, once every writer closed the pipe (at most `timeout`: leftovers may hold it open).
    pub fn complete(&self, timeout: Duration) -> String {
        self.wait(timeout, |_| false)
    }

    /// Waits until the output contains `needle`; panics with the output after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) {
        let text = self.wait(timeout, |text| text.contains(needle));
        assert!(
            text.contains(needle),
            "no {needle:?} in the output after {timeout:?}:\n{text}"
        );
    }

    /// Waits until there are `count` complete lines; panics with the output after `timeout`.
    pub fn wait_lines(&self, count: usize, timeout: Duration) -> Vec<String> {
        let complete = |text: &str| text.matches('\n').count() >= count;
        let text = self.wait(timeout, complete);
        assert!(
            complete(&text),
            "fewer than {count} lines after {timeout:?}:\n{text}"
        );
        self.lines()
    }
}

/// A process that was started.
pub struct Running {
    /// The process the test started: the program, or `unshare` in front of it.
    launcher: i32,
    pid1: bool,
    program: PathBuf,
    pid: OnceLock<i32>,
    health: Option<SocketAddr>,
    api: Option<SocketAddr>,
    pub started: Instant,
    pub stdout: Output,
    pub stderr: Output,
    /// In a mutex so that a running process can be shared between threads.
    exit: Mutex<Receiver<Exit>>,
    exited: Option<Finished>,
}

/// The exit status, and when it came on both clocks.
type Exit = (ExitStatus, Instant, SystemTime);

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit code, or 128 + N when the process died of signal N.
    pub code: i32,
    /// From the spawn to the exit.
    pub elapsed: Duration,
    pub at: Instant,
    /// The same moment on the wall clock, to compare with times a child wrote down.
    pub at_wall: SystemTime,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Everything the process printed, for secret checks.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code, code,
            "exit code after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.elapsed, self.stdout, self.stderr
        );
    }

    /// The last line of stderr (the one that says what to fix).
    pub fn last_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }

    /// Panics if `secret` appears anywhere in the output.
    #[track_caller]
    pub fn assert_no_secret(&self, secret: &str) {
        let output = self.output();
        assert!(
            !output.contains(secret),
            "the password appears in the output:\n{output}"
        );
    }
}

impl Running {
    /// The program's PID as seen from the test (outside any namespace).
    pub fn pid(&self) -> i32 {
        *self.pid.get_or_init(|| {
            if !self.pid1 {
                return self.launcher;
            }
            // unshare forks, and the fork execs the program: wait until it has.
            crate::wait_for(
                "the program to run under unshare",
                Duration::from_secs(10),
                || {
                    Proc::children_of(self.launcher)
                        .into_iter()
                        .find(|p| {
                            std::fs::read_link(format!("/proc/{}/exe", p.pid))
                                .ok()
                                .as_deref()
                                == Some(self.program.as_path())
                        })
                        .map(|p| p.pid)
                },
            )
        })
    }

    /// The supervisor's health listener.
    pub fn health(&self) -> Endpoint {
        Endpoint::new(self.health.expect("launched without a health listener"))
            .with_timeout(HEALTH_TIMEOUT)
    }

    /// The app's API (the app itself, or the supervisor's default child).
    pub fn api(&self) -> Endpoint {
        Endpoint::new(self.api.expect("launched without an API port"))
    }

    /// Waits until the app's `/livez` answers 200.
    pub fn wait_live(&self) {
        self.api()
            .wait_status("/livez", 200, Duration::from_secs(30));
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal)
            .unwrap_or_else(|err| panic!("sending {signal} to {}: {err}", self.program.display()));
    }

    /// Sends `signal` and waits for the exit (bounded by `timeout`): how the run ended, and how long after the
    /// signal.
    pub fn stop_with(&mut self, signal: Signal, timeout: Duration) -> (Finished, Duration) {
        let sent = Instant::now();
        self.signal(signal);
        let done = self.wait_exit(timeout);
        let took = done.at - sent;
        (done, took)
    }

    /// Waits for the exit; panics with the output after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Finished {
        if let Some(done) = &self.exited {
            return done.clone();
        }
        let received = self.receive_exit(timeout);
        match received {
            Ok((status, at, at_wall)) => self.finish(status, at, at_wall),
            Err(RecvTimeoutError::Timeout) => panic!(
                "{} did not exit within {timeout:?}\n--- stdout\n{}--- stderr\n{}",
                self.program.display(),
                self.stdout.text(),
                self.stderr.text()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!("lost the exit status"),
        }
    }

    /// Whether the process is still running after `grace`.
    pub fn still_running_after(&mut self, grace: Duration) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.receive_exit(grace) {
            Ok((status, at, at_wall)) => {
                self.finish(status, at, at_wall);
                false
            }
            Err(_) => true,
        }
    }

    fn receive_exit(&self, timeout: Duration) -> Result<Exit, RecvTimeoutError> {
        self.exit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv_timeout(timeout)
    }

    fn finish(&mut self, status: ExitStatus, at: Instant, at_wall: SystemTime) -> Finished {
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .or_else(|| status.signal().map(|n| 128 + n))
            .expect("an exit code or a signal");
        let done = Finished {
            code,
            elapsed: at - self.started,
            at,
            at_wall,
            stdout: self.stdout.complete(Duration::from_secs(2)),
            stderr: self.stderr.complete(Duration::from_secs(2)),
        };
        self.exited = Some(done.clone());
        done
    }

    /// Everything on stderr so far (the log).
    pub fn log(&self) -> String {
        self.stderr.text()
    }

    /// Waits until the log contains `needle`; panics with the log after `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        self.stderr.wait_for(needle, timeout);
    }

    /// Polls `f` until it returns `Some`; after `timeout` panics naming `what`, with the process's state, its
    /// threads' signal masks and its log.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = f() {
                return value;
            }
            if Instant::now() >= deadline {
                let pid = self.pid();
                let state = if Proc::alive(pid) {
                    "still running"
                } else {
                    "gone"
                };
                panic!(
                    "timed out after {timeout:?} waiting for {what}; {} is {state}; thread masks {:?}\n\
                     --- stderr\n{}",
                    self.program.display(),
                    Proc::thread_masks(pid),
                    self.stderr.text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every process started in this run's session, as seen from the test.
    pub fn in_session(&self) -> Vec<Proc> {
        Proc::all()
            .into_iter()
            .filter(|p| p.session == self.launcher)
            .collect()
    }

    /// The program's zombie children right now.
    pub fn zombie_children(&self) -> Vec<i32> {
        Proc::children_of(self.pid())
            .into_iter()
            .filter(|p| p.state == 'Z')
            .map(|p| p.pid)
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.exited.is_some() {
            return;
        }
        // A failed test, or one done with the process: kill everything in its session, then collect its status
        // (bounded).
        for p in self.in_session() {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
        let _ = self.receive_exit(Duration::from_secs(5));
    }
}

//! What the supervisor's integration tests share beyond testkit (which launches the supervisor, waits for it and
//! speaks HTTP to it): fixture scripts, the files a child writes, the trap-recording child, a database URL nobody
//! answers at.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod migrations;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use testkit::{Database, Launch, Running};

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

/// A database URL whose server refuses connections (nothing listens on the port), with a recognisable password.
pub fn refused_url(password: &str) -> String {
    format!(
        "postgres://tracker:{password}@127.0.0.1:{}/tracker?sslmode=disable",
        testkit::free_port()
    )
}

/// Files the child writes, in a temp dir of their own.
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

    /// Whether the child of [`touch_started`] ran.
    pub fn started(&self) -> bool {
        self.exists("started")
    }

    /// Waits until the child of `running` wrote the line `line` to `name`.
    pub fn wait_line(&self, running: &Running, name: &str, line: &str, timeout: Duration) {
        let what = format!("line {line:?} in {name}");
        running.wait_for(&what, timeout, || {
            self.lines(name).iter().any(|l| l == line).then_some(())
        });
    }

    /// Waits until the child of `running` created `name`.
    pub fn wait_exists(&self, running: &Running, name: &str, timeout: Duration) {
        let what = format!("the child to create {name}");
        running.wait_for(&what, timeout, || self.exists(name).then_some(()));
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// `supervisor -- touch STARTED` against `database_url`: [`Scratch::started`] says whether the child ran.
pub fn touch_started(database_url: &str, scratch: &Scratch) -> Launch {
    Launch::supervisor_child(database_url, &["touch", &scratch.arg("started")])
}

/// `supervisor -- perl traps.pl OUT`: a child that writes `ready` to `traps` once its traps are set, then the
/// name of every signal it gets; it exits 42 on SIGTERM and 43 on SIGINT (see fixtures/traps.pl).
pub fn traps(database_url: &str, scratch: &Scratch) -> Launch {
    let script = fixture("traps.pl");
    Launch::supervisor_child(
        database_url,
        &["perl", &script.to_string_lossy(), &scratch.arg("traps")],
    )
}

/// Starts `supervisor -- sh -c SCRIPT` against a fresh database (which must outlive the run) and waits until the
/// script wrote the file named `READY` in it (the word is replaced by a path).
pub fn start_sh(script: &str, configure: impl FnOnce(&mut Launch)) -> (Running, Scratch, Database) {
    let db = Database::shared();
    let scratch = Scratch::new();
    let script = script.replace("READY", &scratch.arg("ready"));
    let mut launch = Launch::supervisor_child(&db.url(), &["sh", "-c", &script]);
    configure(&mut launch);
    let running = launch.spawn();
    scratch.wait_exists(&running, "ready", Duration::from_secs(20));
    (running, scratch, db)
}

/// A wall-clock time the child wrote with `date +%s%N`.
pub fn parse_nanos(line: &str) -> SystemTime {
    let nanos: u64 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a `date +%s%N` time: {line:?}"));
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

//! What the supervisor knows about itself and its child, shared with the health listener.
//!
//! The lifecycle writes it; the health listener only reads it.

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// The supervisor's lifecycle phase, as the health listener reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for PostgreSQL, migrating, or spawning the child.
    Starting,
    /// The child is running.
    Running,
    /// A stop was requested: readiness fails, the child is still serving.
    Draining,
    /// The child has exited (or never started) and the supervisor is on its way out.
    Exited,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Exited => "exited",
        }
    }
}

/// The running child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildInfo {
    pub pid: i32,
    pub started: Instant,
    pub started_at: SystemTime,
}

/// The session holding the migration lock, as `pg_locks` and `pg_stat_activity` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: i32,
    /// Empty when the session set none, `None` when this role may not see it.
    pub application_name: Option<String>,
    /// `address:port`, or `None` for a local socket or when this role may not see it.
    pub client: Option<String>,
    /// The age of the holder's transaction (its session's, for a session-level lock).
    pub held_for: Option<Duration>,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} (", self.pid)?;
        match self.application_name.as_deref() {
            Some("") => f.write_str("no application_name")?,
            Some(name) => write!(f, "{name:?}")?,
            None => f.write_str("application_name hidden")?,
        }
        match &self.client {
            Some(client) => write!(f, " from {client}")?,
            None => f.write_str(" from a local socket or hidden address")?,
        }
        if let Some(held_for) = self.held_for {
            write!(f, ", for {}s", held_for.as_secs())?;
        }
        f.write_str(")")
    }
}

/// Start-up is waiting for the migration lock that another session holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockWait {
    pub since: Instant,
    /// Who held the lock when last looked at; `None` if it could not be told.
    pub holder: Option<LockHolder>,
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    child: Option<ChildInfo>,
    restarts: u32,
    migration_version: Option<i64>,
    lock_wait: Option<LockWait>,
}

#[derive(Debug)]
pub struct State {
    inner: Mutex<Inner>,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    pub fn new() -> Self {
        State {
            inner: Mutex::new(Inner {
                phase: Phase::Starting,
                child: None,
                restarts: 0,
                migration_version: None,
                lock_wait: None,
            }),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind: keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn phase(&self) -> Phase {
        self.inner().phase
    }

    pub fn set_phase(&self, phase: Phase) {
        self.inner().phase = phase;
    }

    pub fn child(&self) -> Option<ChildInfo> {
        self.inner().child
    }

    pub fn set_child(&self, child: Option<ChildInfo>) {
        self.inner().child = child;
    }

    /// How many times the child was restarted after a failure (`RESTART=on-failure`).
    pub fn restarts(&self) -> u32 {
        self.inner().restarts
    }

    pub fn record_restart(&self) {
        self.inner().restarts += 1;
    }

    /// The schema version after the migrations ran; `None` until they have.
    pub fn migration_version(&self) -> Option<i64> {
        self.inner().migration_version
    }

    pub fn set_migration_version(&self, version: i64) {
        self.inner().migration_version = Some(version);
    }

    /// While start-up waits for the migration lock: since when, and who holds it.
    pub fn lock_wait(&self) -> Option<LockWait> {
        self.inner().lock_wait.clone()
    }

    pub fn set_lock_wait(&self, wait: Option<LockWait>) {
        self.inner().lock_wait = wait;
    }
}

//! What the supervisor knows about itself and its child, shared with the health listener.
//!
//! The lifecycle writes it; the health listener only reads it.

use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

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

#[derive(Debug)]
struct Inner {
    child: Option<ChildInfo>,
    restarts: u32,
    migration_version: Option<i64>,
}

#[derive(Debug)]
pub struct State {
    phase: watch::Sender<Phase>,
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
            phase: watch::Sender::new(Phase::Starting),
            inner: Mutex::new(Inner {
                child: None,
                restarts: 0,
                migration_version: None,
            }),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind: keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Watch phase changes (the health listener and tests await them instead of polling).
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
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
}

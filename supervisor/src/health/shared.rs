//! What the background tasks last found, read by every request together with the lifecycle [`State`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::checks::{ChildReading, PostgresReading, Snapshot};
use super::config::Details;
use super::document::DocumentCache;
use super::metrics::Metrics;
use crate::state::State;

pub struct Shared {
    pub state: Arc<State>,
    pub details: Details,
    postgres: Mutex<Option<PostgresReading>>,
    child: Mutex<Option<ChildReading>>,
    pub metrics: Metrics,
    pub document: DocumentCache,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain readings: a panic elsewhere must not take the listener down.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(state: Arc<State>, details: Details) -> Self {
        Shared {
            state,
            details,
            postgres: Mutex::new(None),
            child: Mutex::new(None),
            metrics: Metrics::new(),
            document: DocumentCache::default(),
        }
    }

    pub fn set_postgres_reading(&self, reading: PostgresReading) {
        *lock(&self.postgres) = Some(reading);
    }

    pub fn set_child_reading(&self, reading: ChildReading) {
        *lock(&self.child) = Some(reading);
    }

    /// Everything one request needs, read at once.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            now: Instant::now(),
            phase: self.state.phase(),
            child: self.state.child(),
            child_reading: *lock(&self.child),
            postgres: *lock(&self.postgres),
            restarts: self.state.restarts(),
            migration_version: self.state.migration_version(),
            lock_wait: self.state.lock_wait(),
        }
    }
}

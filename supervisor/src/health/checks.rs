//! The readings the background tasks take, and how each check turns the latest ones into a verdict.

use std::time::{Duration, Instant, SystemTime};

use common::health::{CheckName, Reason, Status};

use crate::state::{ChildInfo, Phase};

/// A PostgreSQL result older than this counts as failed.
pub const POSTGRES_STALE_AFTER: Duration = Duration::from_secs(6);
/// A PostgreSQL answer slower than this is `warn`.
pub const POSTGRES_WARN_OVER: Duration = Duration::from_millis(250);
/// A child reading older than this means the checker itself is stuck.
pub const CHILD_STALE_AFTER: Duration = Duration::from_secs(3);
/// How long a new child may take to answer its check for the first time before failing it counts against
/// liveness (it still fails readiness as `starting`): a child that is still binding its port is not hung.
pub const START_GRACE: Duration = Duration::from_secs(3);

/// The latest check of the child with this pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildReading {
    pub pid: i32,
    pub at: Instant,
    pub time: SystemTime,
    pub outcome: Result<(), Reason>,
    pub rss_bytes: Option<u64>,
    /// The child has answered its check once, or the failure is about the process itself (gone, stopped):
    /// failures no longer get the start grace.
    pub settled: bool,
}

/// The latest PostgreSQL check: the query's round trip, or why it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresReading {
    pub at: Instant,
    pub time: SystemTime,
    pub outcome: Result<Duration, Reason>,
}

impl PostgresReading {
    /// What this reading says at `now`: its failure, `stale` once too old, `warn` when slow.
    pub fn verdict(&self, now: Instant) -> Verdict {
        if now.saturating_duration_since(self.at) > POSTGRES_STALE_AFTER {
            return Verdict::fail(Reason::Stale);
        }
        match self.outcome {
            Err(reason) => Verdict::fail(reason),
            Ok(latency) if latency > POSTGRES_WARN_OVER => Verdict {
                status: Status::Warn,
                reason: None,
            },
            Ok(_) => Verdict::PASS,
        }
    }
}

/// One check's verdict; `reason` is set exactly when the status is not `pass`, except a slow
/// PostgreSQL answer, which is `warn` with its latency as the only explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub reason: Option<Reason>,
}

impl Verdict {
    pub const PASS: Verdict = Verdict {
        status: Status::Pass,
        reason: None,
    };

    pub fn fail(reason: Reason) -> Verdict {
        Verdict {
            status: Status::Fail,
            reason: Some(reason),
        }
    }

    pub fn passing(self) -> bool {
        self.status != Status::Fail
    }
}

/// Which question a check answers: liveness tolerates what is still starting, readiness does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Live,
    Ready,
}

/// Everything one request needs, read once so that all parts of one answer agree.
pub struct Snapshot {
    pub now: Instant,
    pub phase: Phase,
    pub child: Option<ChildInfo>,
    pub child_reading: Option<ChildReading>,
    pub postgres: Option<PostgresReading>,
    pub restarts: u32,
    pub migration_version: Option<i64>,
    pub lock_wait: Option<crate::state::LockWait>,
}

impl Snapshot {
    pub fn verdict(&self, check: CheckName, probe: Probe) -> Verdict {
        match check {
            CheckName::Supervisor => self.supervisor(probe),
            CheckName::App => self.app(probe),
            CheckName::Postgres => self.postgres(),
        }
    }

    fn supervisor(&self, probe: Probe) -> Verdict {
        match (self.phase, probe) {
            (Phase::Running, _) => Verdict::PASS,
            // Answering at all is the supervisor's liveness; a pod still migrating must not be killed.
            (_, Probe::Live) => Verdict::PASS,
            (Phase::Starting, Probe::Ready) if self.lock_wait.is_some() => {
                Verdict::fail(Reason::WaitingForMigrationLock)
            }
            (Phase::Starting, Probe::Ready) => Verdict::fail(Reason::Starting),
            (Phase::Draining, Probe::Ready) => Verdict::fail(Reason::Draining),
            (Phase::Exited, Probe::Ready) => Verdict::fail(Reason::Exited),
        }
    }

    /// The reading about the current child, `None` while nothing was learnt about this pid yet.
    pub fn current_child_reading(&self) -> Option<ChildReading> {
        let child = self.child?;
        self.child_reading.filter(|r| r.pid == child.pid)
    }

    fn app(&self, probe: Probe) -> Verdict {
        let pending = match probe {
            Probe::Live => Verdict::PASS,
            Probe::Ready => Verdict::fail(Reason::Starting),
        };
        if self.child.is_none() {
            return match self.phase {
                Phase::Starting => pending,
                _ => Verdict::fail(Reason::Exited),
            };
        }
        let started = self.child.map_or(self.now, |c| c.started);
        let in_grace = self.now.saturating_duration_since(started) < START_GRACE;
        match self.current_child_reading() {
            None => pending,
            Some(r) if self.now.saturating_duration_since(r.at) > CHILD_STALE_AFTER => {
                Verdict::fail(Reason::Stale)
            }
            Some(r) => match r.outcome {
                Ok(()) => Verdict::PASS,
                Err(_) if !r.settled && in_grace => pending,
                Err(reason) => Verdict::fail(reason),
            },
        }
    }

    fn postgres(&self) -> Verdict {
        self.postgres
            .map_or(Verdict::fail(Reason::Starting), |r| r.verdict(self.now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(phase: Phase) -> Snapshot {
        let now = Instant::now();
        Snapshot {
            now,
            phase,
            child: None,
            child_reading: None,
            postgres: Some(PostgresReading {
                at: now,
                time: SystemTime::now(),
                outcome: Ok(Duration::from_millis(1)),
            }),
            restarts: 0,
            migration_version: Some(1),
            lock_wait: None,
        }
    }

    fn with_child(mut s: Snapshot, outcome: Result<(), Reason>) -> Snapshot {
        let child = ChildInfo {
            pid: 42,
            started: s.now,
            started_at: SystemTime::now(),
        };
        s.child = Some(child);
        s.child_reading = Some(ChildReading {
            pid: 42,
            at: s.now,
            time: SystemTime::now(),
            outcome,
            rss_bytes: None,
            settled: true,
        });
        s
    }

    #[test]
    fn starting_is_alive_but_not_ready() {
        let s = snapshot(Phase::Starting);
        for check in CheckName::LIVENESS {
            assert_eq!(s.verdict(check, Probe::Live), Verdict::PASS);
        }
        assert_eq!(
            s.verdict(CheckName::Supervisor, Probe::Ready),
            Verdict::fail(Reason::Starting)
        );
        assert_eq!(
            s.verdict(CheckName::App, Probe::Ready),
            Verdict::fail(Reason::Starting)
        );
    }

    #[test]
    fn draining_is_alive_but_not_ready() {
        let s = with_child(snapshot(Phase::Draining), Ok(()));
        assert_eq!(s.verdict(CheckName::Supervisor, Probe::Live), Verdict::PASS);
        assert_eq!(s.verdict(CheckName::App, Probe::Live), Verdict::PASS);
        assert_eq!(
            s.verdict(CheckName::Supervisor, Probe::Ready),
            Verdict::fail(Reason::Draining)
        );
    }

    #[test]
    fn a_gone_child_is_dead() {
        let s = snapshot(Phase::Exited);
        assert_eq!(
            s.verdict(CheckName::App, Probe::Live),
            Verdict::fail(Reason::Exited)
        );
        let s = snapshot(Phase::Running);
        assert_eq!(
            s.verdict(CheckName::App, Probe::Live),
            Verdict::fail(Reason::Exited)
        );
    }

    #[test]
    fn a_reading_about_another_pid_is_pending() {
        let mut s = with_child(snapshot(Phase::Running), Err(Reason::NotResponding));
        s.child_reading.as_mut().unwrap().pid = 41;
        assert_eq!(s.verdict(CheckName::App, Probe::Live), Verdict::PASS);
        assert_eq!(
            s.verdict(CheckName::App, Probe::Ready),
            Verdict::fail(Reason::Starting)
        );
    }

    #[test]
    fn a_new_child_gets_a_start_grace_for_liveness_only() {
        let mut s = with_child(snapshot(Phase::Running), Err(Reason::ConnectionRefused));
        s.child_reading.as_mut().unwrap().settled = false;
        assert_eq!(s.verdict(CheckName::App, Probe::Live), Verdict::PASS);
        assert_eq!(
            s.verdict(CheckName::App, Probe::Ready),
            Verdict::fail(Reason::Starting)
        );
        // Past the grace, or once settled, the failure counts.
        s.now += START_GRACE;
        s.child_reading.as_mut().unwrap().at = s.now;
        assert_eq!(
            s.verdict(CheckName::App, Probe::Live),
            Verdict::fail(Reason::ConnectionRefused)
        );
        s.now -= START_GRACE;
        s.child_reading.as_mut().unwrap().at = s.now;
        s.child_reading.as_mut().unwrap().settled = true;
        assert_eq!(
            s.verdict(CheckName::App, Probe::Live),
            Verdict::fail(Reason::ConnectionRefused)
        );
    }

    #[test]
    fn postgres_slow_stale_and_missing() {
        let mut s = snapshot(Phase::Running);
        let r = s.postgres.as_mut().unwrap();
        r.outcome = Ok(Duration::from_millis(300));
        assert_eq!(
            s.verdict(CheckName::Postgres, Probe::Ready).status,
            Status::Warn
        );
        s.now += POSTGRES_STALE_AFTER + Duration::from_millis(1);
        assert_eq!(
            s.verdict(CheckName::Postgres, Probe::Ready),
            Verdict::fail(Reason::Stale)
        );
        s.postgres = None;
        assert_eq!(
            s.verdict(CheckName::Postgres, Probe::Ready),
            Verdict::fail(Reason::Starting)
        );
    }
}

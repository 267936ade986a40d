//! The three checks and how each turns the latest readings into a verdict.

use std::time::{Duration, Instant};

use crate::state::Phase;

use super::{child, postgres, Shared};

/// A PostgreSQL result older than this counts as failed.
pub const POSTGRES_STALE_AFTER: Duration = Duration::from_secs(6);
/// A PostgreSQL answer slower than this is `warn`.
pub const POSTGRES_WARN_OVER: Duration = Duration::from_millis(250);
/// A child reading older than this means the checker itself is stuck.
pub const CHILD_STALE_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// Why a check is not passing: the only words that ever leave the process; full errors go to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Timeout,
    ConnectionRefused,
    DnsFailure,
    TlsFailure,
    AuthenticationFailed,
    QueryFailed,
    Stale,
    Starting,
    Draining,
    Exited,
    NotResponding,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::ConnectionRefused => "connection refused",
            Reason::DnsFailure => "dns failure",
            Reason::TlsFailure => "tls failure",
            Reason::AuthenticationFailed => "authentication failed",
            Reason::QueryFailed => "query failed",
            Reason::Stale => "stale",
            Reason::Starting => "starting",
            Reason::Draining => "draining",
            Reason::Exited => "exited",
            Reason::NotResponding => "not responding",
        }
    }
}

impl From<common::db::Cause> for Reason {
    fn from(cause: common::db::Cause) -> Reason {
        use common::db::Cause;
        match cause {
            Cause::Timeout => Reason::Timeout,
            Cause::ConnectionRefused => Reason::ConnectionRefused,
            Cause::DnsFailure => Reason::DnsFailure,
            Cause::TlsFailure => Reason::TlsFailure,
            Cause::AuthenticationFailed => Reason::AuthenticationFailed,
            Cause::QueryFailed => Reason::QueryFailed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckName {
    Supervisor,
    App,
    Postgres,
}

impl CheckName {
    pub const ALL: [CheckName; 3] = [CheckName::Supervisor, CheckName::App, CheckName::Postgres];
    pub const LIVENESS: [CheckName; 2] = [CheckName::Supervisor, CheckName::App];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Supervisor => "supervisor",
            CheckName::App => "app",
            CheckName::Postgres => "postgres",
        }
    }

    pub fn parse(name: &str) -> Option<CheckName> {
        CheckName::ALL.into_iter().find(|c| c.as_str() == name)
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
    pub child: Option<crate::state::ChildInfo>,
    pub child_reading: Option<child::Reading>,
    pub postgres: Option<postgres::Reading>,
    pub restarts: u32,
    pub migration_version: Option<i64>,
}

impl Snapshot {
    pub fn take(shared: &Shared) -> Snapshot {
        Snapshot {
            now: Instant::now(),
            phase: shared.state.phase(),
            child: shared.state.child(),
            child_reading: shared.child_reading(),
            postgres: shared.postgres_reading(),
            restarts: shared.state.restarts(),
            migration_version: shared.state.migration_version(),
        }
    }

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
            (Phase::Starting, Probe::Ready) => Verdict::fail(Reason::Starting),
            (Phase::Draining, Probe::Ready) => Verdict::fail(Reason::Draining),
            (Phase::Exited, Probe::Ready) => Verdict::fail(Reason::Exited),
        }
    }

    /// The reading about the current child, `None` while nothing was learnt about this pid yet.
    pub fn current_child_reading(&self) -> Option<child::Reading> {
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
        let in_grace = self.now.saturating_duration_since(started) < child::START_GRACE;
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
        let Some(r) = self.postgres else {
            return Verdict::fail(Reason::Starting);
        };
        if self.now.saturating_duration_since(r.at) > POSTGRES_STALE_AFTER {
            return Verdict::fail(Reason::Stale);
        }
        match r.outcome {
            Err(reason) => Verdict::fail(reason),
            Ok(latency) if latency > POSTGRES_WARN_OVER => Verdict {
                status: Status::Warn,
                reason: None,
            },
            Ok(_) => Verdict::PASS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ChildInfo;
    use std::time::SystemTime;

    fn snapshot(phase: Phase) -> Snapshot {
        let now = Instant::now();
        Snapshot {
            now,
            phase,
            child: None,
            child_reading: None,
            postgres: Some(postgres::Reading {
                at: now,
                time: SystemTime::now(),
                outcome: Ok(Duration::from_millis(1)),
            }),
            restarts: 0,
            migration_version: Some(1),
        }
    }

    fn with_child(mut s: Snapshot, outcome: Result<(), Reason>) -> Snapshot {
        let child = ChildInfo {
            pid: 42,
            started: s.now,
            started_at: SystemTime::now(),
        };
        s.child = Some(child);
        s.child_reading = Some(child::Reading {
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
        s.now += child::START_GRACE;
        s.child_reading.as_mut().unwrap().at = s.now;
        assert_eq!(
            s.verdict(CheckName::App, Probe::Live),
            Verdict::fail(Reason::ConnectionRefused)
        );
        s.now -= child::START_GRACE;
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

    #[test]
    fn causes_keep_their_words() {
        use common::db::Cause;
        for cause in [
            Cause::Timeout,
            Cause::ConnectionRefused,
            Cause::DnsFailure,
            Cause::TlsFailure,
            Cause::AuthenticationFailed,
            Cause::QueryFailed,
        ] {
            assert_eq!(Reason::from(cause).as_str(), cause.as_str());
        }
    }
}

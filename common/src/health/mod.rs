//! The health vocabulary the supervisor reports and the probe reads: check statuses, the supervisor's check
//! names, the fixed words that say why a check is not passing, and the `application/health+json` document.

mod document;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use document::{Checks, Document, Entry, LockHolder, CONTENT_TYPE};

/// A check's or a whole answer's status, ordered from best to worst.
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

    /// The IETF health-check draft's values and the aliases it accepts from other ecosystems (`ok`, `up`,
    /// `error`, `down`), any case, plus the app's own `healthy`/`unhealthy`.
    pub fn parse(value: &str) -> Option<Status> {
        match value.to_ascii_lowercase().as_str() {
            "pass" | "ok" | "up" | "healthy" => Some(Status::Pass),
            "warn" => Some(Status::Warn),
            "fail" | "error" | "down" | "unhealthy" => Some(Status::Fail),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Status, D::Error> {
        let text = String::deserialize(deserializer)?;
        Status::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown status {text:?}")))
    }
}

/// Why a check is not passing: the only words about a failure that ever leave the supervisor (its health
/// answers' `output`); full errors go to the log.
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
    WaitingForMigrationLock,
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
            Reason::WaitingForMigrationLock => "waiting for migration lock",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The supervisor's checks, as named in `/readyz/<check>`, `?exclude=<check>` and its verbose text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckName {
    Supervisor,
    App,
    Postgres,
}

impl CheckName {
    pub const ALL: [CheckName; 3] = [CheckName::Supervisor, CheckName::App, CheckName::Postgres];
    pub const LIVENESS: [CheckName; 2] = [CheckName::Supervisor, CheckName::App];
    /// For messages about an unknown check name.
    pub const LIST: &'static str = "supervisor, app, postgres";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_the_drafts_aliases_and_order_by_severity() {
        for (text, status) in [
            ("pass", Status::Pass),
            ("OK", Status::Pass),
            ("up", Status::Pass),
            ("healthy", Status::Pass),
            ("warn", Status::Warn),
            ("fail", Status::Fail),
            ("Error", Status::Fail),
            ("down", Status::Fail),
            ("unhealthy", Status::Fail),
        ] {
            assert_eq!(Status::parse(text), Some(status), "{text}");
        }
        assert_eq!(Status::parse("great"), None);
        assert!(Status::Pass < Status::Warn && Status::Warn < Status::Fail);
    }

    #[test]
    fn check_names_round_trip() {
        for check in CheckName::ALL {
            assert_eq!(CheckName::parse(check.as_str()), Some(check));
        }
        assert_eq!(CheckName::parse("redis"), None);
        let listed: Vec<_> = CheckName::ALL.map(CheckName::as_str).into();
        assert_eq!(listed.join(", "), CheckName::LIST);
    }
}

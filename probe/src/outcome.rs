//! The result of one probe: a report, or the reason there is none, and the exit code each one means.

use std::fmt;

use crate::http::{self, FetchError};
use crate::report::{Report, Status, Unusable};
use crate::target::Target;

/// Exit code for pass and warn.
pub const EXIT_HEALTHY: i32 = 0;
/// Exit code for fail, unreachable, timeout and malformed answers.
pub const EXIT_UNHEALTHY: i32 = 1;
/// Exit code for usage errors (BSD `EX_USAGE`); never 2, which Docker reserves.
pub const EXIT_USAGE: i32 = 64;

/// Why a probe produced no report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Fetch(FetchError),
    HttpStatus {
        authority: String,
        code: u16,
        reason: String,
    },
    Malformed {
        authority: String,
        reason: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Fetch(e) => e.fmt(f),
            Failure::HttpStatus {
                authority,
                code,
                reason,
            } => {
                write!(f, "unexpected HTTP {code}")?;
                if !reason.is_empty() {
                    write!(f, " ({reason})")?;
                }
                write!(f, " from {authority}")
            }
            Failure::Malformed { authority, reason } => {
                write!(f, "malformed answer from {authority}: {reason}")
            }
        }
    }
}

pub type Outcome = Result<Report, Failure>;

/// Fetches `target` within `limit` and interprets the answer.
pub fn probe(target: &Target, limit: std::time::Duration) -> Outcome {
    let response = http::get(target, limit).map_err(Failure::Fetch)?;
    Report::from_response(&response).map_err(|unusable| match unusable {
        Unusable::HttpStatus { code, reason } => Failure::HttpStatus {
            authority: target.authority(),
            code,
            reason,
        },
        Unusable::Malformed(reason) => Failure::Malformed {
            authority: target.authority(),
            reason,
        },
    })
}

pub fn status_of(outcome: &Outcome) -> Status {
    match outcome {
        Ok(report) => report.status,
        Err(_) => Status::Fail,
    }
}

pub fn exit_code(outcome: &Outcome) -> i32 {
    match status_of(outcome) {
        Status::Pass | Status::Warn => EXIT_HEALTHY,
        Status::Fail => EXIT_UNHEALTHY,
    }
}

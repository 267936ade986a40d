//! The supervisor's own exit codes (sysexits.h where one fits), each with the one line that says what to fix.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// 64: the command line is wrong.
    Usage(String),
    /// 78: a setting is missing or malformed.
    Config(String),
    /// 69: PostgreSQL did not answer within DB_WAIT.
    Unavailable(String),
    /// 75: another session still held the migration lock after MIGRATION_LOCK_WAIT.
    LockTimeout(String),
    /// 65: a migration failed or the applied history diverged from the embedded one.
    Migration(String),
    /// 126: the command exists but cannot be executed.
    CommandNotExecutable(String),
    /// 127: the command does not exist.
    CommandNotFound(String),
    /// A signal ended start-up before the child existed: 128 + N.
    Signal(i32),
    /// The child's own status.
    Child(i32),
}

impl Exit {
    pub fn code(&self) -> i32 {
        match self {
            Exit::Usage(_) => 64,
            Exit::Config(_) => 78,
            Exit::Unavailable(_) => 69,
            Exit::LockTimeout(_) => 75,
            Exit::Migration(_) => 65,
            Exit::CommandNotExecutable(_) => 126,
            Exit::CommandNotFound(_) => 127,
            Exit::Signal(code) | Exit::Child(code) => *code,
        }
    }

    /// The line to print, for the exits that are the supervisor's own failures.
    pub fn message(&self) -> Option<&str> {
        match self {
            Exit::Usage(m)
            | Exit::Config(m)
            | Exit::Unavailable(m)
            | Exit::LockTimeout(m)
            | Exit::Migration(m)
            | Exit::CommandNotExecutable(m)
            | Exit::CommandNotFound(m) => Some(m),
            Exit::Signal(_) | Exit::Child(_) => None,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => f.write_str(m),
            None => write!(f, "exit status {}", self.code()),
        }
    }
}

impl From<common::config::ConfigError> for Exit {
    fn from(err: common::config::ConfigError) -> Self {
        Exit::Config(format!("configuration error: {err}"))
    }
}

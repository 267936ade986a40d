//! What went wrong talking to PostgreSQL, in the fixed vocabulary the health endpoints report.

use std::fmt;
use std::time::Duration;

use crate::duration::format_duration;

/// A failed database operation. `Display` is one line with PostgreSQL's or the OS's reason (for logs); it never
/// carries a password, and leaves out the server's DETAIL, which can quote row values.
#[derive(Debug)]
pub enum DbError {
    /// The attempt did not finish within its deadline.
    Timeout(Duration),
    Postgres(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(err: tokio_postgres::Error) -> Self {
        DbError::Postgres(err)
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Timeout(deadline) => {
                write!(f, "timed out after {}", format_duration(*deadline))
            }
            DbError::Postgres(err) => {
                if let Some(db) = err.as_db_error() {
                    return write!(
                        f,
                        "{} {}: {}",
                        db.severity(),
                        db.code().code(),
                        db.message()
                    );
                }
                // tokio-postgres' own Display is only the kind ("error connecting to server"): add the causes.
                write!(f, "{err}")?;
                let mut source = std::error::Error::source(err);
                while let Some(inner) = source {
                    write!(f, ": {inner}")?;
                    source = inner.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Timeout(_) => None,
            DbError::Postgres(err) => Some(err),
        }
    }
}

impl DbError {
    pub fn cause(&self) -> Cause {
        match self {
            DbError::Timeout(_) => Cause::Timeout,
            DbError::Postgres(err) => classify(err),
        }
    }
}

/// The fixed vocabulary the health endpoints report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Timeout,
    ConnectionRefused,
    DnsFailure,
    TlsFailure,
    AuthenticationFailed,
    QueryFailed,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Timeout => "timeout",
            Cause::ConnectionRefused => "connection refused",
            Cause::DnsFailure => "dns failure",
            Cause::TlsFailure => "tls failure",
            Cause::AuthenticationFailed => "authentication failed",
            Cause::QueryFailed => "query failed",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies any tokio-postgres error into the [`Cause`] vocabulary.
pub fn classify(err: &tokio_postgres::Error) -> Cause {
    use tokio_postgres::error::SqlState;

    if let Some(code) = err.code() {
        return if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Cause::AuthenticationFailed
        } else {
            Cause::QueryFailed
        };
    }
    // tokio-postgres does not expose its error kinds; its Display starts with a fixed phrase per kind.
    let text = err.to_string();
    if text.starts_with("error performing TLS handshake") {
        return Cause::TlsFailure;
    }
    // "authentication error" (e.g. a failed SCRAM exchange); "password missing" is reported as a
    // configuration error when the server asks for a password the URL does not have.
    if text.starts_with("authentication error")
        || (text.starts_with("invalid configuration") && source_mentions(err, "password missing"))
    {
        return Cause::AuthenticationFailed;
    }
    if text.starts_with("timeout waiting for server") {
        return Cause::Timeout;
    }
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if inner.is::<native_tls::Error>() {
            return Cause::TlsFailure;
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Cause::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return Cause::Timeout,
                _ => {}
            }
            let message = io.to_string();
            // getaddrinfo failures (tokio's lookup_host) and empty answers.
            if message.contains("failed to lookup address")
                || message.contains("could not resolve any addresses")
                || message.contains("Name or service not known")
            {
                return Cause::DnsFailure;
            }
        }
        source = inner.source();
    }
    Cause::QueryFailed
}

fn source_mentions(err: &tokio_postgres::Error, needle: &str) -> bool {
    std::error::Error::source(err).is_some_and(|source| source.to_string().contains(needle))
}

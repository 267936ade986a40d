//! What went wrong talking to PostgreSQL: a line for the log, and a [`Reason`] for the health endpoints.

use std::fmt;
use std::time::Duration;

use crate::duration::format_duration;
use crate::health::Reason;

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
    pub fn reason(&self) -> Reason {
        match self {
            DbError::Timeout(_) => Reason::Timeout,
            DbError::Postgres(err) => classify(err),
        }
    }
}

/// Classifies any tokio-postgres error into the health vocabulary.
pub fn classify(err: &tokio_postgres::Error) -> Reason {
    use tokio_postgres::error::SqlState;

    if let Some(code) = err.code() {
        return if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Reason::AuthenticationFailed
        } else {
            Reason::QueryFailed
        };
    }
    // tokio-postgres does not expose its error kinds; its Display starts with a fixed phrase per kind.
    let text = err.to_string();
    if text.starts_with("error performing TLS handshake") {
        return Reason::TlsFailure;
    }
    // "authentication error" (e.g. a failed SCRAM exchange); "password missing" is reported as a
    // configuration error when the server asks for a password the URL does not have.
    if text.starts_with("authentication error")
        || (text.starts_with("invalid configuration") && source_mentions(err, "password missing"))
    {
        return Reason::AuthenticationFailed;
    }
    if text.starts_with("timeout waiting for server") {
        return Reason::Timeout;
    }
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if inner.is::<native_tls::Error>() {
            return Reason::TlsFailure;
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Reason::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return Reason::Timeout,
                _ => {}
            }
            let message = io.to_string();
            // getaddrinfo failures (tokio's lookup_host) and empty answers.
            if message.contains("failed to lookup address")
                || message.contains("could not resolve any addresses")
                || message.contains("Name or service not known")
            {
                return Reason::DnsFailure;
            }
        }
        source = inner.source();
    }
    Reason::QueryFailed
}

fn source_mentions(err: &tokio_postgres::Error, needle: &str) -> bool {
    std::error::Error::source(err).is_some_and(|source| source.to_string().contains(needle))
}

//! The app's settings, read from the environment once at start-up. Every malformed value is
//! a [`ConfigError`] naming the setting; nothing is silently defaulted.

use std::time::Duration;

use common::config::{app_port, env_duration, env_var, ConfigError};

/// Settings of the HTTP API (the database settings are `common::db::DbConfig`).
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// `PORT`: the API listens on 0.0.0.0:PORT.
    pub port: u16,
    /// `CORS_ORIGINS`: origins (`scheme://host[:port]`) allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// `ALLOW_REGISTRATION`: registration stays open after the first user.
    pub allow_registration: bool,
    /// `COOKIE_SECURE`: the session cookie gets `Secure`.
    pub cookie_secure: bool,
    /// `SHUTDOWN_TIMEOUT`: how long in-flight requests may take after SIGTERM.
    pub shutdown_timeout: Duration,
    /// `HEADER_READ_TIMEOUT`: how long a client may take to send the request head.
    pub header_read_timeout: Duration,
    /// `BODY_READ_TIMEOUT`: how long a client may take to send a request body.
    pub body_read_timeout: Duration,
    /// `SESSION_IDLE_TIMEOUT`: a session unused this long expires (sliding).
    pub session_idle: Duration,
    /// `SESSION_MAX_AGE`: a session never outlives this, however active (absolute).
    pub session_max_age: Duration,
    /// `HASH_CONCURRENCY`: password hashes computed at once.
    pub hash_concurrency: usize,
    /// `DB_POOL_SIZE`: database connections per process.
    pub pool_size: usize,
    /// `DB_POOL_WAIT`: how long a request waits for a free connection (within `db_timeout`).
    pub pool_wait: Duration,
    /// `DB_TIMEOUT`: all of one request's database work (pool wait, connecting, statements)
    /// takes at most this in total; then 503 with `Retry-After`.
    pub db_timeout: Duration,
    /// `DB_IMPORT_TIMEOUT`: the same for the transaction that writes an import.
    pub db_import_timeout: Duration,
}

/// Default of `DB_TIMEOUT`: a request with a frozen database is answered well within 2 s.
pub const DEFAULT_DB_TIMEOUT: Duration = Duration::from_millis(1500);
/// Default of `DB_IMPORT_TIMEOUT`: about ten times what the largest upload (10 MiB) takes.
pub const DEFAULT_DB_IMPORT_TIMEOUT: Duration = Duration::from_secs(30);

impl AppConfig {
    pub fn from_env() -> Result<AppConfig, ConfigError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let db_timeout = positive(
            "DB_TIMEOUT",
            env_duration("DB_TIMEOUT", DEFAULT_DB_TIMEOUT)?,
        )?;
        // The wait for a free connection is part of the request's database work.
        let pool_wait = positive("DB_POOL_WAIT", env_duration("DB_POOL_WAIT", db_timeout)?)?;
        let config = AppConfig {
            port: app_port()?,
            cors_origins: match env_var("CORS_ORIGINS")? {
                None => Vec::new(),
                Some(list) => parse_origins(&list)?,
            },
            allow_registration: bool_from_env("ALLOW_REGISTRATION", false)?,
            cookie_secure: bool_from_env("COOKIE_SECURE", false)?,
            shutdown_timeout: env_duration("SHUTDOWN_TIMEOUT", Duration::from_secs(7))?,
            header_read_timeout: positive(
                "HEADER_READ_TIMEOUT",
                env_duration("HEADER_READ_TIMEOUT", Duration::from_secs(10))?,
            )?,
            body_read_timeout: positive(
                "BODY_READ_TIMEOUT",
                env_duration("BODY_READ_TIMEOUT", crate::http::DEFAULT_BODY_READ_TIMEOUT)?,
            )?,
            session_idle: positive(
                "SESSION_IDLE_TIMEOUT",
                env_duration("SESSION_IDLE_TIMEOUT", Duration::from_secs(7 * 24 * 3600))?,
            )?,
            session_max_age: positive(
                "SESSION_MAX_AGE",
                env_duration("SESSION_MAX_AGE", Duration::from_secs(30 * 24 * 3600))?,
            )?,
            hash_concurrency: usize_from_env("HASH_CONCURRENCY", cores, 1..=256)?,
            pool_size: usize_from_env("DB_POOL_SIZE", 16, 1..=1000)?,
            pool_wait,
            db_timeout,
            db_import_timeout: positive(
                "DB_IMPORT_TIMEOUT",
                env_duration("DB_IMPORT_TIMEOUT", DEFAULT_DB_IMPORT_TIMEOUT)?,
            )?,
        };
        if config.pool_wait > config.db_timeout {
            return Err(ConfigError::new(
                "DB_POOL_WAIT",
                "must not be longer than DB_TIMEOUT, which bounds all of a request's database work",
            ));
        }
        if config.session_idle > config.session_max_age {
            return Err(ConfigError::new(
                "SESSION_IDLE_TIMEOUT",
                "must not be longer than SESSION_MAX_AGE",
            ));
        }
        Ok(config)
    }
}

fn bool_from_env(name: &str, default: bool) -> Result<bool, ConfigError> {
    match env_var(name)?.as_deref() {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(ConfigError::new(
            name,
            format!("expected true or false, got {other:?}"),
        )),
    }
}

fn usize_from_env(
    name: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    match env_var(name)? {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ConfigError::new(
                name,
                format!(
                    "expected a whole number {}-{}, got {raw:?}",
                    range.start(),
                    range.end()
                ),
            )),
        },
    }
}

fn positive(name: &str, value: Duration) -> Result<Duration, ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::new(name, "must be greater than zero"));
    }
    Ok(value)
}

/// Parses `https://a.example, http://localhost:5173` into serialized origins.
pub fn parse_origins(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut origins = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let origin = normalize_origin(item).ok_or_else(|| {
            ConfigError::new(
                "CORS_ORIGINS",
                format!("{item:?} is not an origin like https://app.example.com (scheme://host[:port], no path, no wildcard)"),
            )
        })?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// The ASCII serialization of an `http(s)` origin (`scheme://host[:port]`, default port left
/// out), or `None` for anything else, including `null` and URLs with a path.
pub fn normalize_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return None;
    }
    // `Url` adds the root path; an origin must not carry one.
    if text.trim_end().ends_with('/') {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_and_validated() {
        assert_eq!(
            parse_origins(
                " https://A.example.com ,http://localhost:5173,https://a.example.com:443"
            )
            .unwrap(),
            vec!["https://a.example.com", "http://localhost:5173"]
        );
        for bad in [
            "*",
            "null",
            "a.example.com",
            "https://a.example.com/path",
            "https://a.example.com/",
            "ftp://a.example.com",
            "https://user@a.example.com",
        ] {
            let err = parse_origins(bad).unwrap_err();
            assert_eq!(err.setting, "CORS_ORIGINS", "{bad}");
        }
    }
}

//! PostgreSQL connection settings from `DATABASE_URL`, TLS set up the way libpq's `sslmode` means it, bounded
//! connection attempts, and a fixed vocabulary for what went wrong.

mod error;
mod tls;
mod url;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use postgres_native_tls::MakeTlsConnector;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::NoTls;

pub use self::error::{classify, DbError};
use self::tls::RootCerts;
use crate::config::{env_var, ConfigError};

const SETTING: &str = "DATABASE_URL";
const SETTING_FILE: &str = "DATABASE_URL_FILE";
const SUPPORTED_PARAMETERS: &str =
    "sslmode, sslrootcert, connect_timeout, application_name, host, options";
const URL_SHAPE: &str = "postgres://USER:PASSWORD@HOST:PORT/DBNAME";

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it, without verifying the certificate (libpq's default).
    Prefer,
    /// TLS required, certificate not verified.
    Require,
    /// TLS required, certificate chain verified against the root certificates; host name not checked.
    VerifyCa,
    /// TLS required, certificate chain and host name verified.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<SslMode, ConfigError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(invalid(format!(
                    "unsupported sslmode \"{}\" (supported: disable, prefer, require, verify-ca, verify-full)",
                    bounded(other)
                )))
            }
        })
    }
}

/// Where and how to connect to PostgreSQL. `Debug` and [`DbConfig::describe`] never show the password.
#[derive(Clone)]
pub struct DbConfig {
    pg: tokio_postgres::Config,
    sslmode: SslMode,
    root_certs: RootCerts,
    /// `None` when the connection never uses TLS: OpenSSL is then never initialised, which keeps its trust
    /// store out of the supervisor's memory.
    tls: Option<MakeTlsConnector>,
    target: String,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("target", &self.target)
            .field("user", &self.pg.get_user())
            .field("password", &self.pg.get_password().map(|_| "<redacted>"))
            .field("sslmode", &self.sslmode.as_str())
            .field("sslrootcert", &self.root_certs.describe())
            .field("connect_timeout", &self.pg.get_connect_timeout())
            .field("application_name", &self.pg.get_application_name())
            .finish_non_exhaustive()
    }
}

impl DbConfig {
    /// Reads `DATABASE_URL`, or the file named by `DATABASE_URL_FILE` (Docker secrets). Setting both, or
    /// neither, is an error. The file's content is trimmed; it is never quoted in an error.
    pub fn from_env() -> Result<DbConfig, ConfigError> {
        let inline = env_var(SETTING)?;
        let file = env_var(SETTING_FILE)?;
        match (inline, file) {
            (Some(_), Some(_)) => Err(invalid(
                "both DATABASE_URL and DATABASE_URL_FILE are set; set only one",
            )),
            (None, None) => Err(invalid("DATABASE_URL is required (or DATABASE_URL_FILE)")),
            (Some(url), None) => DbConfig::parse(&url),
            (None, Some(path)) => DbConfig::from_file(Path::new(&path)),
        }
    }

    /// Reads the URL from a file (trimmed of surrounding whitespace); errors name `DATABASE_URL_FILE` and the
    /// path, never the content.
    pub fn from_file(path: &Path) -> Result<DbConfig, ConfigError> {
        let file_error = |problem: String| {
            ConfigError::new(SETTING_FILE, format!("{}: {problem}", path.display()))
        };
        let content = std::fs::read(path)
            .map_err(|err| file_error(format!("cannot read: {}", io_reason(&err))))?;
        let content =
            String::from_utf8(content).map_err(|_| file_error("not valid UTF-8".to_owned()))?;
        let url = content.trim();
        if url.is_empty() {
            return Err(file_error("the file is empty".to_owned()));
        }
        DbConfig::parse(url).map_err(|err| file_error(err.problem))
    }

    /// Parses a `postgres://` or `postgresql://` URL: user, password (percent-decoded), host (name, IPv4,
    /// `[IPv6]`, or a percent-encoded socket directory), port (default 5432), database name, and the parameters
    /// `sslmode`, `sslrootcert`, `connect_timeout`, `application_name`, `host` (a unix socket directory when it
    /// starts with `/`) and `options`. Anything else is an error naming the parameter. Errors name the setting
    /// `DATABASE_URL` and never contain the password or the URL.
    pub fn parse(url: &str) -> Result<DbConfig, ConfigError> {
        let parts = url::split(url).map_err(invalid)?;
        let mut pg = tokio_postgres::Config::new();

        if parts.user.is_empty() {
            return Err(invalid(format!("missing user name ({URL_SHAPE})")));
        }
        pg.user(&parts.user);
        if let Some(password) = parts.password {
            pg.password(password);
        }
        if parts.dbname.is_empty() {
            return Err(invalid(format!("missing database name ({URL_SHAPE})")));
        }
        pg.dbname(&parts.dbname);
        let port = parts.port.unwrap_or(5432);
        pg.port(port);

        let mut host = parts.host;
        let mut sslmode = SslMode::Prefer;
        let mut root_certs = RootCerts::System;
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &parts.params {
            if seen.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "parameter '{}' is given more than once",
                    bounded(name)
                )));
            }
            match name.as_str() {
                "sslmode" => sslmode = SslMode::parse(value)?,
                "sslrootcert" => root_certs = RootCerts::read(value).map_err(invalid)?,
                "connect_timeout" => {
                    let seconds: u64 = value.parse().map_err(|_| {
                        invalid("connect_timeout must be a whole number of seconds")
                    })?;
                    // As in libpq, 0 means no timeout of its own.
                    if seconds > 0 {
                        pg.connect_timeout(Duration::from_secs(seconds));
                    }
                }
                "application_name" => {
                    pg.application_name(value);
                }
                "host" => {
                    if value.is_empty() {
                        return Err(invalid("parameter 'host' is empty"));
                    }
                    host = value.clone();
                }
                "options" => {
                    pg.options(value);
                }
                other => {
                    return Err(invalid(format!(
                        "unsupported parameter '{}' (supported: {SUPPORTED_PARAMETERS})",
                        bounded(other)
                    )))
                }
            }
            seen.push(name);
        }

        if host.is_empty() {
            return Err(invalid(format!("missing host ({URL_SHAPE})")));
        }
        let unix_socket = host.starts_with('/');
        let target = if unix_socket {
            pg.host_path(&host);
            format!(
                "{}/.s.PGSQL.{port} ({})",
                host.trim_end_matches('/'),
                parts.dbname
            )
        } else {
            pg.host(&host);
            if host.contains(':') {
                format!("[{host}]:{port}/{}", parts.dbname)
            } else {
                format!("{host}:{port}/{}", parts.dbname)
            }
        };
        pg.ssl_mode(match sslmode {
            // PostgreSQL never speaks TLS over unix sockets; like libpq, ignore sslmode there rather than fail.
            _ if unix_socket => PgSslMode::Disable,
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            // tokio-postgres only knows "require"; verification is done by the TLS connector.
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });

        let tls = if unix_socket || sslmode == SslMode::Disable {
            None
        } else {
            Some(tls::connector(sslmode, &root_certs).map_err(invalid)?)
        };
        Ok(DbConfig {
            pg,
            sslmode,
            root_certs,
            tls,
            target,
        })
    }

    /// Names this program's connections `{program}@{host name}` (truncated to PostgreSQL's 63 bytes), so that
    /// `pg_stat_activity` tells replicas apart, unless the URL chose an `application_name` itself.
    pub fn identify_as(mut self, program: &str) -> DbConfig {
        if self.pg.get_application_name().is_none() {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let mut name = format!("{program}@{}", host.trim());
            let mut end = name.len().min(63);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name.truncate(end);
            self.pg.application_name(&name);
        }
        self
    }

    /// TCP keepalives on this side of the connection, so that a server whose network went silent is given up
    /// after `idle + interval * retries` instead of the kernel's default of over two hours.
    pub fn with_keepalives(mut self, idle: Duration, interval: Duration, retries: u32) -> DbConfig {
        self.pg
            .keepalives(true)
            .keepalives_idle(idle)
            .keepalives_interval(interval)
            .keepalives_retries(retries);
        self
    }

    /// The `application_name` connections carry, if any.
    pub fn application_name(&self) -> Option<&str> {
        self.pg.get_application_name()
    }

    /// `host:port/dbname` (or the socket) for log lines: no user, no password.
    pub fn describe(&self) -> String {
        self.target.clone()
    }

    /// The `sslmode` the URL asked for.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// The tokio-postgres settings (verify-ca/verify-full appear as `Require`: the connector verifies).
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    /// A TLS connector honouring the sslmode: disable/prefer/require encrypt without verifying (as libpq does);
    /// verify-ca checks the chain against the root certificates but not the host name; verify-full checks both.
    /// `None` when the connection never uses TLS (sslmode=disable, unix sockets): connect with `NoTls`.
    pub fn tls(&self) -> Option<MakeTlsConnector> {
        self.tls.clone()
    }

    /// Connects, bounding the whole attempt (DNS, TCP, TLS, authentication) by `deadline` (or the URL's
    /// `connect_timeout` when shorter), spawns the connection task on the current tokio runtime and returns the
    /// client.
    pub async fn connect(&self, deadline: Duration) -> Result<tokio_postgres::Client, DbError> {
        Ok(self.connect_with_task(deadline).await?.0)
    }

    /// As [`DbConfig::connect`], also returning the connection task: aborting it closes the socket at once,
    /// even while a query waits on a server that stopped answering.
    pub async fn connect_with_task(
        &self,
        deadline: Duration,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), DbError> {
        // libpq's connect_timeout bounds the whole attempt; tokio-postgres' only bounds the TCP connect.
        let deadline = match self.pg.get_connect_timeout() {
            Some(timeout) => deadline.min(*timeout),
            None => deadline,
        };
        let timed_out = |_| DbError::Timeout(deadline);
        match &self.tls {
            None => {
                let (client, connection) = tokio::time::timeout(deadline, self.pg.connect(NoTls))
                    .await
                    .map_err(timed_out)??;
                Ok((client, self.spawn_connection(connection)))
            }
            Some(tls) => {
                let (client, connection) =
                    tokio::time::timeout(deadline, self.pg.connect(tls.clone()))
                        .await
                        .map_err(timed_out)??;
                Ok((client, self.spawn_connection(connection)))
            }
        }
    }

    fn spawn_connection<T>(
        &self,
        connection: tokio_postgres::Connection<tokio_postgres::Socket, T>,
    ) -> tokio::task::JoinHandle<()>
    where
        T: tokio_postgres::tls::TlsStream + Unpin + Send + 'static,
    {
        let target = self.target.clone();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(database = %target, error = %err, "database connection ended with an error");
            }
        })
    }
}

fn invalid(problem: impl Into<String>) -> ConfigError {
    ConfigError::new(SETTING, problem)
}

/// User-supplied names quoted in errors: escaped and bounded in length.
fn bounded(s: &str) -> String {
    crate::escape::bounded_escaped(s)
}

/// A plain description of an io error for configuration messages.
pub(crate) fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    }
}

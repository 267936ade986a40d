//! PostgreSQL connection settings from `DATABASE_URL`, TLS set up the way libpq's `sslmode` means it, bounded
//! connection attempts, and a fixed vocabulary for what went wrong.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use native_tls::{Certificate, TlsConnector};
use percent_encoding::percent_decode_str;
use postgres_native_tls::MakeTlsConnector;
use tokio_postgres::config::SslMode as PgSslMode;
use url::{Host, Url};

use crate::config::{env_var, ConfigError};
use crate::duration::format_duration;

const SETTING: &str = "DATABASE_URL";
const SETTING_FILE: &str = "DATABASE_URL_FILE";
const SUPPORTED_PARAMETERS: &str =
    "sslmode, sslrootcert, connect_timeout, application_name, host, options";

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
                return Err(ConfigError::new(
                    SETTING,
                    format!(
                        "unsupported sslmode {other:?} (supported: disable, prefer, require, verify-ca, verify-full)"
                    ),
                ))
            }
        })
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// Which certificates a verifying connection trusts.
#[derive(Clone)]
enum RootCerts {
    /// The system's trust store (no `sslrootcert`, or `sslrootcert=system`).
    System,
    /// Only the certificates read from `sslrootcert=PATH`.
    File {
        path: String,
        certs: Vec<Certificate>,
    },
}

/// Where and how to connect to PostgreSQL. `Debug` and [`DbConfig::describe`] never show the password.
#[derive(Clone)]
pub struct DbConfig {
    pg: tokio_postgres::Config,
    sslmode: SslMode,
    root_certs: RootCerts,
    tls: MakeTlsConnector,
    target: String,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root_certs = match &self.root_certs {
            RootCerts::System => "system".to_owned(),
            RootCerts::File { path, certs } => format!("{path} ({} certificates)", certs.len()),
        };
        f.debug_struct("DbConfig")
            .field("target", &self.target)
            .field("user", &self.pg.get_user())
            .field("password", &self.pg.get_password().map(|_| "<redacted>"))
            .field("sslmode", &self.sslmode.as_str())
            .field("sslrootcert", &root_certs)
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
            (Some(_), Some(_)) => Err(ConfigError::new(
                SETTING,
                "both DATABASE_URL and DATABASE_URL_FILE are set; set only one",
            )),
            (None, None) => Err(ConfigError::new(
                SETTING,
                "DATABASE_URL is required (or DATABASE_URL_FILE)",
            )),
            (Some(url), None) => DbConfig::parse(&url),
            (None, Some(path)) => DbConfig::parse(&read_url_file(Path::new(&path))?),
        }
    }

    /// Parses a `postgres://` or `postgresql://` URL: user, password (percent-decoded), host (name, IPv4,
    /// `[IPv6]`), port (default 5432), database name, and the parameters `sslmode`, `sslrootcert`,
    /// `connect_timeout`, `application_name`, `host` (a unix socket directory when it starts with `/`) and
    /// `options`. Anything else is an error naming the parameter. Errors never contain the password or the URL.
    pub fn parse(url: &str) -> Result<DbConfig, ConfigError> {
        let url = Url::parse(url).map_err(|err| invalid(format!("not a valid URL: {err}")))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(invalid(format!(
                "expected a postgres:// or postgresql:// URL, got {}://",
                url.scheme()
            )));
        }
        if url.fragment().is_some() {
            return Err(invalid(
                "unexpected '#' fragment (percent-encode '#' in the password as %23)",
            ));
        }

        let mut pg = tokio_postgres::Config::new();

        let user = decode("user name", url.username())?;
        if user.is_empty() {
            return Err(invalid(
                "missing user name (postgres://USER:PASSWORD@HOST:PORT/DBNAME)",
            ));
        }
        pg.user(&user);
        if let Some(password) = url.password() {
            let password = percent_decode_str(password).collect::<Vec<u8>>();
            pg.password(password);
        }

        let dbname = decode(
            "database name",
            url.path().strip_prefix('/').unwrap_or(url.path()),
        )?;
        if dbname.is_empty() {
            return Err(invalid(
                "missing database name (postgres://USER:PASSWORD@HOST:PORT/DBNAME)",
            ));
        }
        pg.dbname(&dbname);

        let port = url.port().unwrap_or(5432);
        if port == 0 {
            return Err(invalid("port 0 is not a valid port"));
        }
        pg.port(port);

        let mut host = match url.host() {
            None => None,
            Some(Host::Domain("")) => None,
            Some(Host::Domain(name)) => Some(decode("host", name)?),
            Some(Host::Ipv4(ip)) => Some(ip.to_string()),
            Some(Host::Ipv6(ip)) => Some(ip.to_string()),
        };

        let mut sslmode = SslMode::Prefer;
        let mut sslrootcert = None;
        let mut seen = Vec::new();
        for (name, value) in url.query_pairs() {
            if seen.contains(&name) {
                return Err(invalid(format!(
                    "parameter '{name}' is given more than once"
                )));
            }
            match &*name {
                "sslmode" => sslmode = SslMode::parse(&value)?,
                "sslrootcert" => sslrootcert = Some(read_root_certs(&value)?),
                "connect_timeout" => {
                    let seconds: u64 = value.parse().map_err(|_| {
                        invalid(format!(
                            "connect_timeout must be a whole number of seconds, got {value:?}"
                        ))
                    })?;
                    // As in libpq, 0 means no timeout of its own.
                    if seconds > 0 {
                        pg.connect_timeout(Duration::from_secs(seconds));
                    }
                }
                "application_name" => {
                    pg.application_name(&*value);
                }
                "host" => {
                    if value.is_empty() {
                        return Err(invalid("parameter 'host' is empty"));
                    }
                    host = Some(value.clone().into_owned());
                }
                "options" => {
                    pg.options(&*value);
                }
                other => {
                    return Err(invalid(format!(
                        "unsupported parameter '{}' (supported: {SUPPORTED_PARAMETERS})",
                        other.escape_debug()
                    )))
                }
            }
            seen.push(name);
        }

        let Some(host) = host else {
            return Err(invalid(
                "missing host (postgres://USER:PASSWORD@HOST:PORT/DBNAME)",
            ));
        };
        let target;
        if host.starts_with('/') {
            pg.host_path(&host);
            target = format!("{host}/.s.PGSQL.{port} ({dbname})");
        } else {
            pg.host(&host);
            target = if host.contains(':') {
                format!("[{host}]:{port}/{dbname}")
            } else {
                format!("{host}:{port}/{dbname}")
            };
        }
        // PostgreSQL never speaks TLS over unix sockets; like libpq, ignore sslmode there rather than fail.
        let unix_socket = host.starts_with('/');
        pg.ssl_mode(match sslmode {
            _ if unix_socket => PgSslMode::Disable,
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            // tokio-postgres only knows "require"; verification is done by the TLS connector.
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });

        let root_certs = sslrootcert.unwrap_or(RootCerts::System);
        let tls = build_tls(sslmode, &root_certs)?;
        Ok(DbConfig {
            pg,
            sslmode,
            root_certs,
            tls,
            target,
        })
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
    pub fn tls(&self) -> MakeTlsConnector {
        self.tls.clone()
    }

    /// Connects, bounding the whole attempt (DNS, TCP, TLS, authentication) by `deadline`, spawns the
    /// connection task on the current tokio runtime and returns the client.
    pub async fn connect(&self, deadline: Duration) -> Result<tokio_postgres::Client, DbError> {
        let attempt = self.pg.connect(self.tls.clone());
        let (client, connection) = tokio::time::timeout(deadline, attempt)
            .await
            .map_err(|_| DbError::Timeout(deadline))??;
        let target = self.target.clone();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(database = %target, error = %err, "database connection ended with an error");
            }
        });
        Ok(client)
    }
}

fn invalid(problem: impl Into<String>) -> ConfigError {
    ConfigError::new(SETTING, problem)
}

fn decode(part: &str, encoded: &str) -> Result<String, ConfigError> {
    percent_decode_str(encoded)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            invalid(format!(
                "the {part} is not valid UTF-8 once percent-decoded"
            ))
        })
}

fn read_url_file(path: &Path) -> Result<String, ConfigError> {
    let content = std::fs::read(path).map_err(|err| {
        ConfigError::new(
            SETTING_FILE,
            format!("cannot read {}: {}", path.display(), io_reason(&err)),
        )
    })?;
    let content = String::from_utf8(content).map_err(|_| {
        ConfigError::new(
            SETTING_FILE,
            format!("{} is not valid UTF-8", path.display()),
        )
    })?;
    let url = content.trim();
    if url.is_empty() {
        return Err(ConfigError::new(
            SETTING_FILE,
            format!("{} is empty", path.display()),
        ));
    }
    // Errors about the URL name the file, so the operator knows where to look.
    DbConfig::parse(url).map(|_| ()).map_err(|err| {
        ConfigError::new(SETTING_FILE, format!("{}: {}", path.display(), err.problem))
    })?;
    Ok(url.to_owned())
}

/// The io error without its "(os error N)" suffix noise when a plainer description exists.
fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    }
}

fn read_root_certs(value: &str) -> Result<RootCerts, ConfigError> {
    if value == "system" {
        return Ok(RootCerts::System);
    }
    if value.is_empty() {
        return Err(invalid(
            "parameter 'sslrootcert' is empty (give a PEM file path, or 'system')",
        ));
    }
    let pem = std::fs::read(value).map_err(|err| {
        invalid(format!(
            "sslrootcert: cannot read {value}: {}",
            io_reason(&err)
        ))
    })?;
    let certs = Certificate::stack_from_pem(&pem).map_err(|err| {
        invalid(format!(
            "sslrootcert: {value} is not a PEM certificate file: {err}"
        ))
    })?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "sslrootcert: {value} holds no PEM certificate"
        )));
    }
    Ok(RootCerts::File {
        path: value.to_owned(),
        certs,
    })
}

fn build_tls(sslmode: SslMode, root_certs: &RootCerts) -> Result<MakeTlsConnector, ConfigError> {
    let mut builder = TlsConnector::builder();
    builder.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
    if sslmode.verifies() {
        if let RootCerts::File { certs, .. } = root_certs {
            // Like libpq, trust only the given roots.
            builder.disable_built_in_roots(true);
            for cert in certs {
                builder.add_root_certificate(cert.clone());
            }
        }
        builder.danger_accept_invalid_hostnames(sslmode == SslMode::VerifyCa);
    } else {
        // libpq semantics: below verify-ca, TLS protects against eavesdropping, not impersonation.
        builder.danger_accept_invalid_certs(true);
        builder.danger_accept_invalid_hostnames(true);
    }
    let connector = builder
        .build()
        .map_err(|err| invalid(format!("cannot set up TLS: {err}")))?;
    Ok(MakeTlsConnector::new(connector))
}

/// A failed database operation. `Display` carries PostgreSQL's and the OS's reasons, never a password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The attempt did not finish within its deadline.
    #[error("timed out after {}", format_duration(*.0))]
    Timeout(Duration),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
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
    if text.starts_with("authentication error") {
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

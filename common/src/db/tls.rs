//! TLS connectors that mean what libpq's sslmode values mean.

use std::sync::OnceLock;

use native_tls::{Certificate, TlsConnector};
use postgres_native_tls::MakeTlsConnector;

use super::{io_reason, SslMode};

/// Which certificates a verifying connection trusts.
#[derive(Clone)]
pub(crate) enum RootCerts {
    /// The system's trust store (no `sslrootcert`, or `sslrootcert=system`).
    System,
    /// Only the certificates read from `sslrootcert=PATH`.
    File {
        path: String,
        certs: Vec<Certificate>,
    },
}

impl RootCerts {
    /// Reads `sslrootcert`: `system`, or a PEM file holding one or more certificates.
    pub(crate) fn read(value: &str) -> Result<RootCerts, String> {
        if value == "system" {
            return Ok(RootCerts::System);
        }
        if value.is_empty() {
            return Err(
                "parameter 'sslrootcert' is empty (give a PEM file path, or 'system')".to_owned(),
            );
        }
        let pem = read_bounded(value)
            .map_err(|err| format!("sslrootcert: cannot read {}: {err}", value.escape_debug()))?;
        let certs = Certificate::stack_from_pem(&pem).map_err(|err| {
            format!(
                "sslrootcert: {} is not a PEM certificate file: {err}",
                value.escape_debug()
            )
        })?;
        if certs.is_empty() {
            return Err(format!(
                "sslrootcert: {} holds no PEM certificate",
                value.escape_debug()
            ));
        }
        Ok(RootCerts::File {
            path: value.to_owned(),
            certs,
        })
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            RootCerts::System => "system".to_owned(),
            RootCerts::File { path, certs } => format!("{path} ({} certificates)", certs.len()),
        }
    }
}

/// Root certificate bundles are small; a bound keeps a mistaken path (a device, a huge file) from hanging start-up.
const MAX_ROOT_CERT_BYTES: u64 = 4 * 1024 * 1024;

fn read_bounded(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|err| io_reason(&err))?;
    let mut content = Vec::new();
    file.take(MAX_ROOT_CERT_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(|err| io_reason(&err))?;
    if content.len() as u64 > MAX_ROOT_CERT_BYTES {
        return Err(format!(
            "larger than {} MiB",
            MAX_ROOT_CERT_BYTES / 1024 / 1024
        ));
    }
    Ok(content)
}

/// disable/prefer/require: encrypt without verifying (libpq: TLS there protects against eavesdropping, not
/// impersonation); verify-ca: the chain must lead to a trusted root; verify-full: and name the host.
pub(crate) fn connector(
    sslmode: SslMode,
    root_certs: &RootCerts,
) -> Result<MakeTlsConnector, String> {
    // Building a connector loads the system trust store, which is slow; the ones without a root file are the
    // same for every configuration, so each is built once per process.
    static SHARED: [OnceLock<Result<MakeTlsConnector, String>>; 3] = [const { OnceLock::new() }; 3];
    let shared = match (sslmode, root_certs) {
        (SslMode::Disable | SslMode::Prefer | SslMode::Require, _) => &SHARED[0],
        (SslMode::VerifyCa, RootCerts::System) => &SHARED[1],
        (SslMode::VerifyFull, RootCerts::System) => &SHARED[2],
        (SslMode::VerifyCa | SslMode::VerifyFull, RootCerts::File { .. }) => {
            return build(sslmode, root_certs)
        }
    };
    shared.get_or_init(|| build(sslmode, root_certs)).clone()
}

fn build(sslmode: SslMode, root_certs: &RootCerts) -> Result<MakeTlsConnector, String> {
    let mut builder = TlsConnector::builder();
    builder.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
    match sslmode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            builder.danger_accept_invalid_certs(true);
            builder.danger_accept_invalid_hostnames(true);
        }
        SslMode::VerifyCa | SslMode::VerifyFull => {
            if let RootCerts::File { certs, .. } = root_certs {
                // Like libpq, a given root file is the only thing trusted.
                builder.disable_built_in_roots(true);
                for cert in certs {
                    builder.add_root_certificate(cert.clone());
                }
            }
            builder.danger_accept_invalid_hostnames(sslmode == SslMode::VerifyCa);
        }
    }
    let connector = builder
        .build()
        .map_err(|err| format!("cannot set up TLS: {err}"))?;
    Ok(MakeTlsConnector::new(connector))
}

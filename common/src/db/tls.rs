//! TLS connectors that mean what libpq's sslmode values mean.

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
        let pem = std::fs::read(value)
            .map_err(|err| format!("sslrootcert: cannot read {value}: {}", io_reason(&err)))?;
        let certs = Certificate::stack_from_pem(&pem)
            .map_err(|err| format!("sslrootcert: {value} is not a PEM certificate file: {err}"))?;
        if certs.is_empty() {
            return Err(format!("sslrootcert: {value} holds no PEM certificate"));
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

/// disable/prefer/require: encrypt without verifying (libpq: TLS there protects against eavesdropping, not
/// impersonation); verify-ca: the chain must lead to a trusted root; verify-full: and name the host.
pub(crate) fn connector(
    sslmode: SslMode,
    root_certs: &RootCerts,
) -> Result<MakeTlsConnector, String> {
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

//! sslmode against a real TLS-enabled PostgreSQL with a throwaway CA.
#![cfg(feature = "db")]

use std::time::Duration;

use common::db::{DbConfig, DbError};
use common::health::Reason;
use testkit::{PgCluster, TestPki};

const DEADLINE: Duration = Duration::from_secs(10);

/// A server that accepts only TLS connections (hostssl) on 127.0.0.1 and 127.0.0.2.
struct TlsServer {
    pki: TestPki,
    cluster: PgCluster,
}

impl TlsServer {
    fn start() -> TlsServer {
        let pki = TestPki::generate();
        let hba = pki.write_file(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.0/8 scram-sha-256\n",
        );
        let mut settings = pki.server_settings();
        settings.push(("hba_file", hba.display().to_string()));
        // 127.0.0.2 is a loopback address the server certificate does not name.
        settings.push(("listen_addresses", "127.0.0.1,127.0.0.2".to_owned()));
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let cluster = PgCluster::start_with(&settings);
        TlsServer { pki, cluster }
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgres://postgres:{}@{host}:{}/postgres?{params}",
            self.cluster.password(),
            self.cluster.port()
        )
    }

    async fn connect(&self, host: &str, params: &str) -> Result<tokio_postgres::Client, DbError> {
        let config = DbConfig::parse(&self.url(host, params)).unwrap_or_else(|err| panic!("{err}"));
        config.connect(DEADLINE).await
    }

    async fn connect_err(&self, host: &str, params: &str) -> DbError {
        let err = match self.connect(host, params).await {
            Ok(_) => panic!("{host}?{params} should be rejected"),
            Err(err) => err,
        };
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(self.cluster.password()), "{shown}");
        err
    }
}

async fn uses_tls(client: &tokio_postgres::Client) -> bool {
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test]
async fn verify_full_with_the_right_ca_connects_by_ip_and_by_name() {
    let server = TlsServer::start();
    let ca = server.pki.ca_cert.display().to_string();
    for host in ["127.0.0.1", "localhost"] {
        let client = server
            .connect(host, &format!("sslmode=verify-full&sslrootcert={ca}"))
            .await
            .unwrap_or_else(|err| panic!("{host}: {err}"));
        assert!(uses_tls(&client).await);
    }
}

#[tokio::test]
async fn verify_full_with_another_ca_is_a_tls_failure() {
    let server = TlsServer::start();
    let other = server.pki.other_ca_cert.display().to_string();
    let err = server
        .connect_err(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={other}"),
        )
        .await;
    assert_eq!(err.reason(), Reason::TlsFailure, "{err}");
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );

    let err = server
        .connect_err(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={other}"),
        )
        .await;
    assert_eq!(err.reason(), Reason::TlsFailure, "{err}");

    // The throwaway CA is not in the system trust store either.
    let err = server.connect_err("127.0.0.1", "sslmode=verify-full").await;
    assert_eq!(err.reason(), Reason::TlsFailure, "{err}");
    let err = server
        .connect_err("127.0.0.1", "sslmode=verify-full&sslrootcert=system")
        .await;
    assert_eq!(err.reason(), Reason::TlsFailure, "{err}");
}

#[tokio::test]
async fn host_the_certificate_does_not_name_fails_verify_full_but_passes_verify_ca() {
    let server = TlsServer::start();
    let ca = server.pki.ca_cert.display().to_string();
    let err = server
        .connect_err(
            "127.0.0.2",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        )
        .await;
    assert_eq!(err.reason(), Reason::TlsFailure, "{err}");
    assert!(err.to_string().contains("IP address mismatch"), "{err}");

    let client = server
        .connect("127.0.0.2", &format!("sslmode=verify-ca&sslrootcert={ca}"))
        .await
        .expect("verify-ca does not check the host name");
    assert!(uses_tls(&client).await);
}

#[tokio::test]
async fn require_and_prefer_encrypt_without_a_root_certificate() {
    let server = TlsServer::start();
    for params in ["sslmode=require", "sslmode=prefer", ""] {
        let client = server
            .connect("127.0.0.2", params)
            .await
            .unwrap_or_else(|err| panic!("{params:?}: {err}"));
        assert!(uses_tls(&client).await, "{params:?}");
    }
}

#[tokio::test]
async fn disable_against_a_hostssl_only_server_fails_clearly() {
    let server = TlsServer::start();
    let err = server.connect_err("127.0.0.1", "sslmode=disable").await;
    assert_eq!(err.reason(), Reason::AuthenticationFailed, "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with("FATAL 28000: no pg_hba.conf entry"),
        "{message}"
    );
    assert!(message.contains("no encryption"), "{message}");
}

#[tokio::test]
async fn require_against_a_plain_server_is_a_tls_failure() {
    let cluster = PgCluster::start();
    let url = cluster
        .url("postgres")
        .replace("sslmode=disable", "sslmode=require");
    let err = DbConfig::parse(&url)
        .unwrap()
        .connect(DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::TlsFailure, "{err}");
    assert_eq!(
        err.to_string(),
        "error performing TLS handshake: server does not support TLS"
    );

    // prefer falls back to plain text, as libpq does.
    let url = cluster
        .url("postgres")
        .replace("sslmode=disable", "sslmode=prefer");
    let client = DbConfig::parse(&url)
        .unwrap()
        .connect(DEADLINE)
        .await
        .unwrap();
    assert!(!uses_tls(&client).await);
}

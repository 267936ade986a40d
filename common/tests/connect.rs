//! DbConfig::connect against real servers and fake ones, and the Reason each failure maps to.
#![cfg(feature = "db")]

use std::time::{Duration, Instant};

use common::db::{classify, DbConfig, DbError};
use common::health::Reason;
use testkit::server::Blackhole;
use testkit::PgCluster;

const DEADLINE: Duration = Duration::from_secs(10);

fn config(url: &str) -> DbConfig {
    DbConfig::parse(url).unwrap_or_else(|err| panic!("{err}"))
}

async fn connect_err(url: &str, deadline: Duration) -> DbError {
    match config(url).connect(deadline).await {
        Ok(_) => panic!("connecting to {} should fail", config(url).describe()),
        Err(err) => err,
    }
}

#[tokio::test]
async fn connects_and_queries() {
    let cluster = PgCluster::start();
    let db = cluster.create_database();
    let client = config(&format!(
        "{}&application_name=connect-test",
        cluster.url(&db)
    ))
    .connect(DEADLINE)
    .await
    .expect("connecting");
    let row = client
        .query_one("SELECT 1 + 1, current_database()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    assert_eq!(row.get::<_, String>(1), db);
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'connect-test'"
        ),
        "1"
    );

    // A failing query is a query failure, not a connection problem.
    let err = client.simple_query("SELEC 1").await.unwrap_err();
    assert_eq!(classify(&err), Reason::QueryFailed);
    assert_eq!(DbError::from(err).reason().as_str(), "query failed");
}

#[tokio::test]
async fn connects_over_the_unix_socket() {
    let cluster = PgCluster::start();
    let socket_dir = cluster.socket_dir().display().to_string();
    let url = format!(
        "postgres://postgres@:{}/postgres?host={socket_dir}&sslmode=require",
        cluster.port()
    );
    let db_config = config(&url);
    assert!(
        db_config.describe().starts_with(&socket_dir),
        "{}",
        db_config.describe()
    );
    let client = db_config
        .connect(DEADLINE)
        .await
        .expect("connecting over the socket");
    let row = client
        .query_one("SELECT inet_server_addr() IS NULL", &[])
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "a unix socket connection has no server address"
    );
}

#[tokio::test]
async fn wrong_password_is_authentication_failed() {
    let cluster = PgCluster::start();
    let wrong = "wrong-Pa55word";
    let url = format!(
        "postgres://postgres:{wrong}@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port()
    );
    let err = connect_err(&url, DEADLINE).await;
    assert_eq!(err.reason(), Reason::AuthenticationFailed);
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("password authentication failed"), "{shown}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(!shown.contains(cluster.password()), "{shown}");

    let url = format!(
        "postgres://nobody:x@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port()
    );
    assert_eq!(
        connect_err(&url, DEADLINE).await.reason(),
        Reason::AuthenticationFailed
    );

    // No password at all: the client cannot answer the server's challenge.
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port()
    );
    let err = connect_err(&url, DEADLINE).await;
    assert_eq!(err.reason(), Reason::AuthenticationFailed, "{err}");
}

#[tokio::test]
async fn missing_database_is_a_query_failure() {
    let cluster = PgCluster::start();
    let err = connect_err(&cluster.url("no_such_db"), DEADLINE).await;
    assert_eq!(err.reason(), Reason::QueryFailed);
    assert_eq!(
        err.to_string(),
        "FATAL 3D000: database \"no_such_db\" does not exist"
    );
}

#[tokio::test]
async fn closed_port_is_connection_refused() {
    let port = testkit::free_port();
    let err = connect_err(&format!("postgres://u:p@127.0.0.1:{port}/db"), DEADLINE).await;
    assert_eq!(err.reason(), Reason::ConnectionRefused, "{err}");
    assert_eq!(err.reason().as_str(), "connection refused");
    assert_eq!(
        err.to_string(),
        "error connecting to server: Connection refused (os error 111)"
    );
}

#[tokio::test]
async fn unknown_host_is_dns_failure() {
    let err = connect_err("postgres://u:p@no-such-host.invalid/db", DEADLINE).await;
    assert_eq!(err.reason(), Reason::DnsFailure, "{err}");
    assert_eq!(err.reason().as_str(), "dns failure");
}

#[tokio::test]
async fn stopped_server_is_refused_and_recovers_after_restart() {
    let cluster = PgCluster::start();
    let db_config = config(&cluster.url("postgres"));
    let client = db_config.connect(DEADLINE).await.unwrap();
    cluster.stop();
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert_ne!(classify(&err), Reason::AuthenticationFailed, "{err}");
    let err = db_config.connect(DEADLINE).await.unwrap_err();
    assert_eq!(err.reason(), Reason::ConnectionRefused, "{err}");
    cluster.restart();
    let client = db_config
        .connect(DEADLINE)
        .await
        .expect("connecting after restart");
    client.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn blackholed_server_times_out_within_the_deadline() {
    // A server that accepts connections and never says a word.
    let blackhole = Blackhole::start();
    let port = blackhole.addr().port();
    let deadline = Duration::from_millis(500);
    // prefer waits for the TLS answer; disable waits for the authentication request.
    for sslmode in ["prefer", "disable", "verify-full"] {
        let db_config = config(&format!(
            "postgres://u:p@127.0.0.1:{port}/db?sslmode={sslmode}&connect_timeout=60"
        ));
        let started = Instant::now();
        let err = db_config
            .connect(deadline)
            .await
            .expect_err("a silent server");
        let elapsed = started.elapsed();
        assert!(matches!(err, DbError::Timeout(_)), "{sslmode}: {err}");
        assert_eq!(err.reason(), Reason::Timeout);
        assert_eq!(err.to_string(), "timed out after 500ms");
        assert!(
            elapsed >= deadline,
            "{sslmode}: gave up early, after {elapsed:?}"
        );
        assert!(
            elapsed < deadline + Duration::from_millis(200),
            "{sslmode}: took {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn connect_timeout_parameter_bounds_the_whole_attempt() {
    // A server that accepts connections and never says a word.
    let blackhole = Blackhole::start();
    let port = blackhole.addr().port();
    let db_config = config(&format!(
        "postgres://u:p@127.0.0.1:{port}/db?sslmode=disable&connect_timeout=1"
    ));
    let started = Instant::now();
    let err = db_config
        .connect(DEADLINE)
        .await
        .expect_err("a silent server");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
    assert_eq!(err.to_string(), "timed out after 1s");
    assert_eq!(err.reason(), Reason::Timeout, "{err}");
}

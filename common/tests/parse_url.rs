//! DbConfig::parse: every supported part and parameter, and a clear error for everything else.
#![cfg(feature = "db")]

use std::time::Duration;

use common::db::{DbConfig, SslMode};
use tokio_postgres::config::{Host, SslMode as PgSslMode};

const SECRET: &str = "s3cr3t-pa55";

fn parse(url: &str) -> DbConfig {
    DbConfig::parse(url).unwrap_or_else(|err| panic!("{url}: {err}"))
}

fn parse_err(url: &str) -> String {
    let err = DbConfig::parse(url).expect_err(url);
    assert_eq!(err.setting, "DATABASE_URL");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(SECRET), "secret leaked: {shown}");
    err.to_string()
}

#[test]
fn full_url() {
    let url = format!(
        "postgres://app:{SECRET}@db.example.com:6543/tracker?application_name=tt&connect_timeout=5"
    );
    let config = parse(&url);
    let pg = config.pg_config();
    assert_eq!(pg.get_user(), Some("app"));
    assert_eq!(pg.get_password(), Some(SECRET.as_bytes()));
    assert_eq!(pg.get_hosts(), &[Host::Tcp("db.example.com".into())]);
    assert_eq!(pg.get_ports(), &[6543]);
    assert_eq!(pg.get_dbname(), Some("tracker"));
    assert_eq!(pg.get_application_name(), Some("tt"));
    assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_secs(5)));
    assert_eq!(config.sslmode(), SslMode::Prefer);
    assert_eq!(pg.get_ssl_mode(), PgSslMode::Prefer);
    assert_eq!(config.describe(), "db.example.com:6543/tracker");
}

#[test]
fn both_schemes_and_default_port() {
    for scheme in ["postgres", "postgresql"] {
        let config = parse(&format!("{scheme}://u:p@localhost/db"));
        assert_eq!(config.pg_config().get_ports(), &[5432]);
        assert_eq!(config.describe(), "localhost:5432/db");
    }
}

#[test]
fn password_is_optional() {
    let config = parse("postgres://u@h/db");
    assert_eq!(config.pg_config().get_password(), None);
    assert!(!format!("{config:?}").contains("redacted"));
}

#[test]
fn percent_decoding() {
    let config = parse("postgres://us%40er:p%40ss%3Aw%2Fo%23rd%20%25@h/my%20db");
    let pg = config.pg_config();
    assert_eq!(pg.get_user(), Some("us@er"));
    assert_eq!(pg.get_password(), Some("p@ss:w/o#rd %".as_bytes()));
    assert_eq!(pg.get_dbname(), Some("my db"));
    // Non-UTF-8 passwords are bytes on the wire, as libpq sends them.
    let config = parse("postgres://u:%FF%FE@h/db");
    assert_eq!(config.pg_config().get_password(), Some(&[0xff, 0xfe][..]));
}

#[test]
fn hosts_ipv4_ipv6_and_unix_socket() {
    let config = parse("postgres://u:p@127.0.0.1:5433/db");
    assert_eq!(
        config.pg_config().get_hosts(),
        &[Host::Tcp("127.0.0.1".into())]
    );
    assert_eq!(config.describe(), "127.0.0.1:5433/db");

    let config = parse("postgres://u:p@[::1]:5433/db");
    assert_eq!(config.pg_config().get_hosts(), &[Host::Tcp("::1".into())]);
    assert_eq!(config.describe(), "[::1]:5433/db");

    let config = parse("postgres://u:p@[2001:db8::1]/db");
    assert_eq!(
        config.pg_config().get_hosts(),
        &[Host::Tcp("2001:db8::1".into())]
    );

    let config = parse("postgres://u@/db?host=/var/run/postgresql&sslmode=require");
    assert_eq!(
        config.pg_config().get_hosts(),
        &[Host::Unix("/var/run/postgresql".into())]
    );
    // No TLS over unix sockets, as with libpq.
    assert_eq!(config.pg_config().get_ssl_mode(), PgSslMode::Disable);
    assert_eq!(config.describe(), "/var/run/postgresql/.s.PGSQL.5432 (db)");

    let config = parse("postgres://u@%2Ftmp%2Fpg/db");
    assert_eq!(
        config.pg_config().get_hosts(),
        &[Host::Unix("/tmp/pg".into())]
    );

    // host= overrides the authority's host, as in libpq.
    let config = parse("postgres://u@ignored/db?host=other.example");
    assert_eq!(
        config.pg_config().get_hosts(),
        &[Host::Tcp("other.example".into())]
    );
}

#[test]
fn every_sslmode() {
    for (mode, ours, theirs) in [
        ("disable", SslMode::Disable, PgSslMode::Disable),
        ("prefer", SslMode::Prefer, PgSslMode::Prefer),
        ("require", SslMode::Require, PgSslMode::Require),
        ("verify-ca", SslMode::VerifyCa, PgSslMode::Require),
        ("verify-full", SslMode::VerifyFull, PgSslMode::Require),
    ] {
        let config = parse(&format!("postgres://u:p@h/db?sslmode={mode}"));
        assert_eq!(config.sslmode(), ours, "{mode}");
        assert_eq!(config.sslmode().as_str(), mode);
        assert_eq!(config.pg_config().get_ssl_mode(), theirs, "{mode}");
        // TLS is set up only when the connection may use it.
        assert_eq!(config.tls().is_some(), mode != "disable", "{mode}");
    }
    let err = parse_err("postgres://u:p@h/db?sslmode=allow");
    assert_eq!(
        err,
        "DATABASE_URL: unsupported sslmode \"allow\" (supported: disable, prefer, require, verify-ca, verify-full)"
    );
    parse_err("postgres://u:p@h/db?sslmode=");
    parse_err("postgres://u:p@h/db?sslmode=Require");
}

#[test]
fn sslrootcert_is_read_at_parse_time() {
    let pki = testkit::TestPki::generate();
    let ca = pki.ca_cert.display().to_string();
    let config = parse(&format!(
        "postgres://u:p@h/db?sslmode=verify-full&sslrootcert={ca}"
    ));
    assert!(
        format!("{config:?}").contains("1 certificates"),
        "{config:?}"
    );

    // Several certificates in one file.
    let both = pki.write_file(
        "both.crt",
        &(std::fs::read_to_string(&pki.ca_cert).unwrap()
            + &std::fs::read_to_string(&pki.other_ca_cert).unwrap()),
    );
    let config = parse(&format!(
        "postgres://u:p@h/db?sslmode=verify-ca&sslrootcert={}",
        both.display()
    ));
    assert!(
        format!("{config:?}").contains("2 certificates"),
        "{config:?}"
    );

    parse("postgres://u:p@h/db?sslmode=verify-full&sslrootcert=system");

    let err = parse_err("postgres://u:p@h/db?sslrootcert=/no/such/file.crt");
    assert_eq!(
        err,
        "DATABASE_URL: sslrootcert: cannot read /no/such/file.crt: no such file"
    );

    let not_pem = pki.write_file("garbage.crt", "this is not a certificate\n");
    let err = parse_err(&format!(
        "postgres://u:p@h/db?sslrootcert={}",
        not_pem.display()
    ));
    assert!(
        err.contains("holds no PEM certificate") || err.contains("is not a PEM certificate"),
        "{err}"
    );

    let err = parse_err("postgres://u:p@h/db?sslrootcert=/dev/zero");
    assert_eq!(
        err,
        "DATABASE_URL: sslrootcert: cannot read /dev/zero: larger than 4 MiB"
    );
    let err = parse_err(&format!(
        "postgres://u:p@h/db?sslrootcert={}",
        pki.dir().display()
    ));
    assert!(err.contains("cannot read"), "{err}");

    let err = parse_err("postgres://u:p@h/db?sslrootcert=");
    assert!(err.contains("'sslrootcert' is empty"), "{err}");
}

#[test]
fn options_and_application_name_are_decoded() {
    let config =
        parse("postgres://u:p@h/db?options=-c%20search_path%3Dapp&application_name=time%20tracker");
    assert_eq!(config.pg_config().get_options(), Some("-c search_path=app"));
    assert_eq!(
        config.pg_config().get_application_name(),
        Some("time tracker")
    );
}

#[test]
fn connect_timeout_values() {
    let config = parse("postgres://u:p@h/db?connect_timeout=0");
    assert_eq!(config.pg_config().get_connect_timeout(), None);
    for bad in ["-1", "1.5", "5s", "", "99999999999999999999999"] {
        let err = parse_err(&format!("postgres://u:p@h/db?connect_timeout={bad}"));
        assert!(
            err.contains("connect_timeout must be a whole number of seconds"),
            "{err}"
        );
    }
}

#[test]
fn unknown_and_repeated_parameters() {
    let err = parse_err("postgres://u:p@h/db?sslmode=disable&foo=bar");
    assert_eq!(
        err,
        "DATABASE_URL: unsupported parameter 'foo' (supported: sslmode, sslrootcert, connect_timeout, \
         application_name, host, options)"
    );
    // A password given as a parameter is rejected without echoing it.
    let err = parse_err(&format!("postgres://u@h/db?password={SECRET}"));
    assert!(err.contains("unsupported parameter 'password'"), "{err}");
    let err = parse_err("postgres://u:p@h/db?sslmode=disable&sslmode=require");
    assert!(err.contains("'sslmode' is given more than once"), "{err}");
    let err = parse_err("postgres://u:p@h/db?host=");
    assert!(err.contains("'host' is empty"), "{err}");
}

#[test]
fn missing_parts() {
    assert_eq!(
        parse_err(&format!("postgres://:{SECRET}@h/db")),
        "DATABASE_URL: missing user name (postgres://USER:PASSWORD@HOST:PORT/DBNAME)"
    );
    assert_eq!(
        parse_err(&format!("postgres://u:{SECRET}@h")),
        "DATABASE_URL: missing database name (postgres://USER:PASSWORD@HOST:PORT/DBNAME)"
    );
    assert_eq!(
        parse_err(&format!("postgres://u:{SECRET}@h/")),
        "DATABASE_URL: missing database name (postgres://USER:PASSWORD@HOST:PORT/DBNAME)"
    );
    assert_eq!(
        parse_err(&format!("postgres://u:{SECRET}@/db")),
        "DATABASE_URL: missing host (postgres://USER:PASSWORD@HOST:PORT/DBNAME)"
    );
}

#[test]
fn malformed_urls() {
    for url in [
        String::new(),
        "localhost:5432/db".to_owned(),
        format!("u:{SECRET}@h/db"),
        format!("postgres://u:{SECRET}@h:99999/db"),
        format!("postgres://u:{SECRET}@h:port/db"),
        format!("postgres://u:{SECRET}@[::1/db"),
        format!("postgres://u:{SECRET}@h:0/db"),
    ] {
        let err = parse_err(&url);
        assert!(err.starts_with("DATABASE_URL: "), "{err}");
    }
    assert_eq!(
        parse_err(&format!("mysql://u:{SECRET}@h/db")),
        "DATABASE_URL: expected a postgres:// or postgresql:// URL, got mysql://"
    );
    // An unencoded '#' in the password truncates it: say what to do instead of failing later at login.
    let err = parse_err(&format!("postgres://u:{SECRET}#x@h/db"));
    assert!(err.contains("%23"), "{err}");
}

#[test]
fn debug_and_describe_never_show_the_password() {
    let config = parse(&format!("postgres://app:{SECRET}@h:1/db?sslmode=require"));
    let debug = format!("{config:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(debug.contains("require"), "{debug}");
    assert!(!config.describe().contains(SECRET));
    assert!(!config.describe().contains("app"));
    let clone = config.clone();
    assert!(!format!("{clone:?}").contains(SECRET));
}

#[test]
fn a_password_with_unencoded_delimiters_is_never_quoted() {
    for url in [
        format!("postgres://u:{SECRET}?x@localhost/db"),
        format!("postgres://u:a@b/{SECRET}?rd@localhost/db"),
        format!("postgres://u:{SECRET}/?@localhost/db?sslmode=disable"),
    ] {
        let err = parse_err(&url);
        assert!(err.contains("percent-encode"), "{err}");
    }
    // Percent-encoded, the same password is fine.
    let config = parse("postgres://u:s3cr3t%3Fpa55%40%2F@localhost/db");
    assert_eq!(
        config.pg_config().get_password(),
        Some(&b"s3cr3t?pa55@/"[..])
    );
}

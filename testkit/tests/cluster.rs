use std::net::TcpStream;
use std::time::Duration;

use testkit::{wait_for, PgCluster};

#[test]
fn cluster_starts_answers_and_is_removed_on_drop() {
    let cluster = PgCluster::start();
    let data_dir = cluster.data_dir().to_path_buf();
    assert!(data_dir.join("PG_VERSION").is_file());
    assert_eq!(cluster.psql("postgres", "SELECT 1 + 1"), "2");
    assert_eq!(cluster.psql("postgres", "SHOW fsync"), "off");

    let db = cluster.create_database();
    assert_eq!(cluster.psql(&db, "SELECT current_database()"), db);
    assert_ne!(cluster.create_database(), db, "database names are unique");

    let url = cluster.url(&db);
    assert_eq!(
        url,
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}?sslmode=disable",
            cluster.password(),
            cluster.port()
        )
    );
    assert!(cluster.password().len() >= 32);

    let port = cluster.port();
    drop(cluster);
    assert!(
        !data_dir.exists(),
        "{} still exists after drop",
        data_dir.display()
    );
    assert!(
        !data_dir.parent().unwrap().exists(),
        "the cluster's temp dir is removed"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} after drop"
    );
}

#[test]
fn stop_and_restart_keep_port_and_data() {
    let cluster = PgCluster::start();
    let db = cluster.create_database();
    cluster.psql(
        &db,
        "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)",
    );

    cluster.stop();
    wait_for("the port to be closed", Duration::from_secs(5), || {
        TcpStream::connect(("127.0.0.1", cluster.port()))
            .is_err()
            .then_some(())
    });

    cluster.restart();
    assert_eq!(cluster.psql(&db, "SELECT v FROM kept"), "42");
}

#[test]
fn settings_reach_the_server_and_bad_sql_panics_with_the_error() {
    let cluster = PgCluster::start_with(&[("work_mem", "7MB")]);
    assert_eq!(cluster.psql("postgres", "SHOW work_mem"), "7MB");
    let err = cluster.try_psql("postgres", "SELECT 1/0").unwrap_err();
    assert!(err.contains("division by zero"), "{err}");
    assert_eq!(
        cluster.try_psql("postgres", "SHOW statement_timeout"),
        Ok("1min".to_owned())
    );
    let err = std::panic::catch_unwind(|| cluster.psql("postgres", "SELEC 1")).unwrap_err();
    let message = err.downcast_ref::<String>().unwrap();
    assert!(message.contains("syntax error"), "{message}");
}

#[test]
fn wait_for_returns_the_value_or_panics_naming_what() {
    let mut calls = 0;
    let value = wait_for("three calls", Duration::from_secs(5), || {
        calls += 1;
        (calls == 3).then_some(calls)
    });
    assert_eq!(value, 3);

    let err =
        std::panic::catch_unwind(|| wait_for::<()>("never", Duration::from_millis(50), || None))
            .unwrap_err();
    let message = err.downcast_ref::<String>().unwrap();
    assert!(message.contains("waiting for never"), "{message}");
}

#[test]
fn free_ports_are_bindable() {
    let port = testkit::free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
}

#[test]
fn bin_path_panics_clearly_for_a_missing_binary() {
    let err = std::panic::catch_unwind(|| testkit::bin_path("no-such-binary")).unwrap_err();
    let message = err.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("run `cargo build --workspace` first"),
        "{message}"
    );
}

#[test]
fn pki_makes_a_server_certificate_postgres_accepts() {
    let pki = testkit::TestPki::generate();
    let settings = pki.server_settings();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cluster = PgCluster::start_with(&settings);
    assert_eq!(cluster.psql("postgres", "SHOW ssl"), "on");
    let dir = pki.dir().to_path_buf();
    drop(pki);
    assert!(!dir.exists());
}

#[test]
fn clusters_of_killed_test_processes_are_reaped() {
    // A test process that starts a cluster and is killed before Drop can run.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "abandoned_cluster_child", "--nocapture"])
        .env("TESTKIT_ABANDON", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut data_dir = String::new();
    wait_for(
        "the child to report its cluster",
        Duration::from_secs(60),
        || {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut stdout, &mut line).ok()?;
            line.strip_prefix("DATA_DIR=")
                .map(|d| data_dir = d.trim().to_owned())
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let data_dir = std::path::PathBuf::from(data_dir);
    assert!(
        data_dir.exists(),
        "killed before Drop: the cluster is left behind"
    );

    // The next cluster this process starts reaps it (once per process: run it in a fresh child).
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "reaping_child", "--nocapture"])
        .env("TESTKIT_REAP", "1")
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        !data_dir.parent().unwrap().exists(),
        "{} was not reaped",
        data_dir.display()
    );
}

#[test]
fn abandoned_cluster_child() {
    if std::env::var_os("TESTKIT_ABANDON").is_none() {
        return;
    }
    let cluster = PgCluster::start();
    println!("DATA_DIR={}", cluster.data_dir().display());
    // Wait to be killed (bounded, in case the parent is gone).
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn reaping_child() {
    if std::env::var_os("TESTKIT_REAP").is_none() {
        return;
    }
    let _cluster = PgCluster::start();
}

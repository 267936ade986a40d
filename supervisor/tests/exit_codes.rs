//! The supervisor's own exit codes, each with its one line on stderr, and never the database password.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{refused_url, touch_started, Scratch};
use testkit::{Database, Launch};

const PASSWORD: &str = "pw-Zq8rT3vXk";
const QUICK: Duration = Duration::from_secs(10);

#[test]
fn usage_errors_exit_64_with_the_problem_on_stderr() {
    for args in [
        &["--bogus"][..],
        &["no-such-action"],
        &["migrate", "--bogus"],
    ] {
        let mut launch = Launch::supervisor();
        launch.env("DATABASE_URL", &refused_url(PASSWORD));
        for arg in args {
            launch.arg(arg);
        }
        let done = launch.run(QUICK);
        done.assert_code(64);
        let first = done.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error:") && first.contains(args.last().unwrap()),
            "{args:?}: first line of stderr: {first:?}"
        );
        assert!(done.stdout.is_empty(), "{args:?}: stdout: {}", done.stdout);
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    let help = Launch::supervisor().arg("--help").run(QUICK);
    help.assert_code(0);
    assert!(help.stdout.contains("Usage: supervisor"), "{}", help.stdout);
    assert!(help.stdout.contains("migrate"), "{}", help.stdout);

    let version = Launch::supervisor().arg("--version").run(QUICK);
    version.assert_code(0);
    assert_eq!(
        version.stdout.trim(),
        format!("supervisor {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Starts the supervisor with one bad setting and checks: 78, exactly one line naming the setting, no password,
/// the child never started.
fn assert_config_error(setting: &str, configure: impl FnOnce(&mut Launch)) {
    let scratch = Scratch::new();
    let mut launch = touch_started(&refused_url(PASSWORD), &scratch);
    configure(&mut launch);
    let done = launch.run(QUICK);
    done.assert_code(78);
    let lines: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{setting}: expected one line on stderr:\n{}",
        done.stderr
    );
    assert!(
        lines[0].contains(setting),
        "{setting} not named in: {}",
        lines[0]
    );
    done.assert_no_secret(PASSWORD);
    assert!(!scratch.started(), "{setting}: the child was started");
    assert!(
        done.elapsed < Duration::from_secs(2),
        "{setting}: took {:?}",
        done.elapsed
    );
}

#[test]
fn each_malformed_setting_exits_78_naming_it() {
    let cases: &[(&str, &str)] = &[
        ("STOP_GRACE", "8"),
        ("STOP_GRACE", "1.5s"),
        ("DRAIN_DELAY", "-1s"),
        ("RESTART", "always"),
        ("RESTART", "on-failure:x"),
        ("DB_WAIT", "x"),
        ("MIGRATION_LOCK_WAIT", "forever"),
        ("MIGRATION_LOCK_WAIT", "10"),
        ("PORT", "0"),
        ("PORT", "70000"),
        ("HEALTH_ADDR", "bad"),
        ("CHILD_CHECK", "ftp://x"),
        ("LOG_FORMAT", "xml"),
    ];
    for (setting, value) in cases {
        assert_config_error(setting, |launch| {
            launch.env(setting, value);
        });
    }
}

#[test]
fn database_url_problems_exit_78() {
    assert_config_error("DATABASE_URL", |launch| {
        launch.unset("DATABASE_URL");
    });
    let scratch = Scratch::new();
    let file = scratch.path("url");
    std::fs::write(&file, refused_url(PASSWORD)).unwrap();
    assert_config_error("DATABASE_URL_FILE", |launch| {
        launch.env("DATABASE_URL_FILE", file.to_str().unwrap());
    });
    assert_config_error("DATABASE_URL", |launch| {
        launch.env(
            "DATABASE_URL",
            &format!("postgres://tracker:{PASSWORD}@127.0.0.1:5432/tracker?sslmode=bogus"),
        );
    });
    assert_config_error("DATABASE_URL", |launch| {
        launch.env(
            "DATABASE_URL",
            &format!("postgres://tracker:{PASSWORD}@127.0.0.1:5432/tracker?pool=9"),
        );
    });
    assert_config_error("DATABASE_URL", |launch| {
        launch.env(
            "DATABASE_URL",
            &format!("mysql://tracker:{PASSWORD}@127.0.0.1/tracker"),
        );
    });
    assert_config_error("DATABASE_URL_FILE", |launch| {
        launch
            .unset("DATABASE_URL")
            .env("DATABASE_URL_FILE", "/nonexistent/database-url");
    });
}

#[test]
fn a_busy_health_address_exits_78() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_config_error("HEALTH_ADDR", |launch| {
        launch.env("HEALTH_ADDR", &addr);
    });
}

#[test]
fn migrate_checks_its_settings_too() {
    let done = Launch::supervisor_migrate(&refused_url(PASSWORD))
        .env("DB_WAIT", "soon")
        .run(QUICK);
    done.assert_code(78);
    assert!(done.stderr.contains("DB_WAIT"), "{}", done.stderr);
    done.assert_no_secret(PASSWORD);
    let done = Launch::supervisor_migrate(&refused_url(PASSWORD))
        .env("MIGRATION_LOCK_WAIT", "-1m")
        .run(QUICK);
    done.assert_code(78);
    assert!(
        done.last_line().contains("MIGRATION_LOCK_WAIT"),
        "{}",
        done.stderr
    );
}

#[test]
fn a_refused_port_exits_69_after_db_wait() {
    let scratch = Scratch::new();
    let done = touch_started(&refused_url(PASSWORD), &scratch)
        .env("DB_WAIT", "1s")
        .run(QUICK);
    done.assert_code(69);
    assert!(
        done.elapsed >= Duration::from_millis(950) && done.elapsed < Duration::from_millis(2000),
        "gave up after {:?}",
        done.elapsed
    );
    let last = done.last_line();
    assert!(
        last.contains("DB_WAIT"),
        "the last line should say what to fix: {last}"
    );
    done.assert_no_secret(PASSWORD);
    assert!(!scratch.started());
}

#[test]
fn a_blackholed_server_exits_69_within_db_wait() {
    // The kernel completes the handshake of a listening socket nobody accepts from: the server never answers.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let url = format!("postgres://tracker:{PASSWORD}@127.0.0.1:{port}/tracker?sslmode=disable");
    let done = Launch::supervisor_child(&url, &["true"])
        .env("DB_WAIT", "2s")
        .run(QUICK);
    done.assert_code(69);
    assert!(
        done.elapsed >= Duration::from_millis(1900) && done.elapsed < Duration::from_millis(2500),
        "gave up after {:?}: each attempt must end by DB_WAIT",
        done.elapsed
    );
    done.assert_no_secret(PASSWORD);
    drop(blackhole);
}

#[test]
fn a_wrong_password_exits_69_without_showing_either_password() {
    let db = Database::shared();
    let url = db.url().replace(db.cluster.password(), PASSWORD);
    let done = Launch::supervisor_child(&url, &["true"])
        .env("DB_WAIT", "1s")
        .run(QUICK);
    done.assert_code(69);
    assert!(
        done.elapsed < Duration::from_secs(3),
        "took {:?}",
        done.elapsed
    );
    assert!(
        done.stderr.contains("authentication failed"),
        "the cause should be named:\n{}",
        done.stderr
    );
    done.assert_no_secret(PASSWORD);
    done.assert_no_secret(db.cluster.password());
}

#[test]
fn a_diverged_checksum_exits_65_without_starting_the_child() {
    let db = Database::shared();
    let url = db.url();
    Launch::supervisor_migrate(&url).run(QUICK).assert_code(0);
    db.psql("UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1");

    let scratch = Scratch::new();
    let done = touch_started(&url, &scratch).run(QUICK);
    done.assert_code(65);
    assert!(!scratch.started(), "the child ran after a failed migration");
    let last = done.last_line();
    assert!(
        last.contains("V1"),
        "the line should name the migration: {last}"
    );
    done.assert_no_secret(db.cluster.password());
}

#[test]
fn a_migration_unknown_to_this_build_exits_65() {
    let db = Database::shared();
    let url = db.url();
    Launch::supervisor_migrate(&url).run(QUICK).assert_code(0);
    db.psql(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
         VALUES (999, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
    );

    let scratch = Scratch::new();
    let done = touch_started(&url, &scratch).run(QUICK);
    done.assert_code(65);
    assert!(!scratch.started(), "the child ran after a failed migration");
    assert!(done.last_line().contains("V999"), "{}", done.stderr);
    // `supervisor migrate` refuses the same way.
    let migrate = Launch::supervisor_migrate(&url).run(QUICK);
    migrate.assert_code(65);
    migrate.assert_no_secret(db.cluster.password());
}

#[test]
fn a_failing_migration_exits_65_and_applies_nothing() {
    let db = Database::shared();
    // The first migration creates time_entries after other tables: this one makes it fail half-way.
    db.psql("CREATE TABLE time_entries (id int)");

    let scratch = Scratch::new();
    let done = touch_started(&db.url(), &scratch).run(QUICK);
    done.assert_code(65);
    assert!(!scratch.started());
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'users'"),
        "0",
        "the failed migration left tables behind"
    );
    done.assert_no_secret(db.cluster.password());
}

#[test]
fn a_command_that_is_not_executable_exits_126() {
    let db = Database::shared();
    let scratch = Scratch::new();
    let file = scratch.path("not-executable");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    let done = Launch::supervisor_child(&db.url(), &[file.to_str().unwrap()]).run(QUICK);
    done.assert_code(126);
    let last = done.last_line();
    assert!(
        last.contains("not-executable"),
        "the line should name the command: {last}"
    );
    done.assert_no_secret(db.cluster.password());

    // A directory is not executable either.
    let done =
        Launch::supervisor_child(&db.url(), &[scratch.path("").to_str().unwrap()]).run(QUICK);
    done.assert_code(126);
}

#[test]
fn a_missing_command_exits_127() {
    let db = Database::shared();
    for command in ["no-such-command-4f1c", "/nonexistent/bin/app"] {
        let done = Launch::supervisor_child(&db.url(), &[command]).run(QUICK);
        done.assert_code(127);
        let last = done.last_line();
        assert!(
            last.contains(command),
            "the line should name the command: {last}"
        );
        done.assert_no_secret(db.cluster.password());
    }
}

#[test]
fn the_password_never_appears_in_a_normal_run() {
    let db = Database::shared();
    let done = Launch::supervisor_child(&db.url(), &["sh", "-c", "exit 0"])
        .env("RUST_LOG", "trace")
        .run(QUICK);
    done.assert_code(0);
    done.assert_no_secret(db.cluster.password());
    let json = Launch::supervisor_child(&db.url(), &["sh", "-c", "exit 0"])
        .env("RUST_LOG", "trace")
        .env("LOG_FORMAT", "json")
        .run(QUICK);
    json.assert_code(0);
    json.assert_no_secret(db.cluster.password());
}

/// Each stderr line must be one JSON object with a level and a message.
fn assert_json_lines(stderr: &str) {
    assert!(!stderr.trim().is_empty(), "nothing logged");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}"));
        assert!(event["level"].is_string(), "no level: {line}");
        let message = event
            .get("message")
            .or_else(|| event.get("fields").and_then(|f| f.get("message")));
        assert!(message.is_some_and(|m| m.is_string()), "no message: {line}");
    }
}

#[test]
fn json_logs_are_one_object_per_line_in_every_outcome() {
    let db = Database::shared();
    let url = db.url();

    let ok = Launch::supervisor_child(&url, &["sh", "-c", "exit 0"])
        .env("LOG_FORMAT", "json")
        .run(QUICK);
    ok.assert_code(0);
    assert_json_lines(&ok.stderr);

    let config = Launch::supervisor_child(&url, &["true"])
        .env("LOG_FORMAT", "json")
        .env("STOP_GRACE", "soon")
        .run(QUICK);
    config.assert_code(78);
    assert_json_lines(&config.stderr);

    let unreachable = Launch::supervisor_child(&refused_url(PASSWORD), &["true"])
        .env("LOG_FORMAT", "json")
        .env("DB_WAIT", "500ms")
        .run(QUICK);
    unreachable.assert_code(69);
    assert_json_lines(&unreachable.stderr);
    unreachable.assert_no_secret(PASSWORD);

    let missing = Launch::supervisor_child(&url, &["no-such-command-4f1c"])
        .env("LOG_FORMAT", "json")
        .run(QUICK);
    missing.assert_code(127);
    assert_json_lines(&missing.stderr);
    missing.assert_no_secret(db.cluster.password());
}

#[test]
fn the_url_can_come_from_database_url_file() {
    let db = Database::shared();
    let scratch = Scratch::new();
    let file = scratch.path("database-url");
    // As Docker secrets are often written: with a trailing newline.
    std::fs::write(&file, format!("{}\n", db.url())).unwrap();
    let done = touch_started("unused", &scratch)
        .unset("DATABASE_URL")
        .env("DATABASE_URL_FILE", file.to_str().unwrap())
        .run(QUICK);
    done.assert_code(0);
    assert!(scratch.started());
    done.assert_no_secret(db.cluster.password());
}

#[test]
fn a_bad_command_is_reported_before_waiting_for_the_database() {
    let scratch = Scratch::new();
    let not_executable = scratch.path("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
    // Executable, but neither ELF nor a #! script: execvp would hand it to /bin/sh.
    let garbage = scratch.path("garbage");
    std::fs::write(&garbage, [0u8, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    std::fs::set_permissions(
        &garbage,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let directory = scratch.path("");
    let cases = [
        ("no-such-command-4f1c", 127),
        ("/nonexistent/bin/app", 127),
        (not_executable.to_str().unwrap(), 126),
        (garbage.to_str().unwrap(), 126),
        (directory.to_str().unwrap(), 126),
    ];
    for (command, code) in cases {
        let done = Launch::supervisor_child(&refused_url(PASSWORD), &[command])
            .env("DB_WAIT", "30s")
            .run(QUICK);
        done.assert_code(code);
        assert!(
            done.elapsed < Duration::from_secs(2),
            "{command}: took {:?}, as if waiting for the database",
            done.elapsed
        );
        done.assert_no_secret(PASSWORD);
    }
}

/// As execvp does: a PATH entry whose file is not executable is skipped for the next one.
#[test]
fn the_path_search_skips_files_that_are_not_executable() {
    let db = Database::shared();
    let scratch = Scratch::new();
    let first = scratch.path("first");
    let second = scratch.path("second");
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    std::fs::write(first.join("tool-4f1c"), "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::write(
        second.join("tool-4f1c"),
        format!("#!/bin/sh\ntouch {}\n", scratch.arg("ran")),
    )
    .unwrap();
    std::fs::set_permissions(
        second.join("tool-4f1c"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}:{}",
        first.display(),
        second.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let done = Launch::supervisor_child(&db.url(), &["tool-4f1c"])
        .env("PATH", &path)
        .run(QUICK);
    done.assert_code(0);
    assert!(
        scratch.exists("ran"),
        "the executable tool on PATH did not run"
    );
}

/// A script whose interpreter is missing exists but cannot be executed: 126, as shells report it.
#[test]
fn a_script_with_a_missing_interpreter_exits_126() {
    let scratch = Scratch::new();
    let script = scratch.path("script");
    std::fs::write(&script, "#!/nonexistent/interpreter\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let db = Database::shared();
    let done = Launch::supervisor_child(&db.url(), &[script.to_str().unwrap()]).run(QUICK);
    done.assert_code(126);
    let last = done.last_line();
    assert!(
        last.contains("script"),
        "the line should name the command: {last}"
    );
}

#[test]
fn a_host_that_does_not_resolve_exits_69_within_db_wait() {
    let url = format!(
        "postgres://tracker:{PASSWORD}@db.does-not-exist.invalid:5432/tracker?sslmode=disable"
    );
    let done = Launch::supervisor_child(&url, &["true"])
        .env("DB_WAIT", "1s")
        .run(QUICK);
    done.assert_code(69);
    assert!(
        done.elapsed < Duration::from_millis(2500),
        "gave up after {:?}",
        done.elapsed
    );
    done.assert_no_secret(PASSWORD);
}

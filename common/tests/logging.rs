//! logging::init in a child process (it installs a process-wide subscriber): format, filter, bad settings.

use std::time::Duration;

use testkit::Launch;

/// Set in the child: emit events after init and exit.
const CHILD: &str = "COMMON_LOGGING_TEST_CHILD";

/// Runs `logging_child` in a process of its own with these settings: whether it succeeded, and its stderr (which
/// must be UTF-8).
fn run_child(log_format: Option<&str>, rust_log: Option<&str>) -> (bool, String) {
    let mut launch = Launch::new(std::env::current_exe().unwrap());
    launch
        .args(&[
            "--exact",
            "logging_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1");
    if let Some(format) = log_format {
        launch.env("LOG_FORMAT", format);
    }
    if let Some(filter) = rust_log {
        launch.env("RUST_LOG", filter);
    }
    let mut running = launch.spawn();
    let done = running.wait_exit(Duration::from_secs(60));
    assert!(running.stderr.is_utf8(), "{}", done.stderr);
    (done.code == 0, done.stderr)
}

/// The child's side: does nothing unless run by `run_child`.
#[test]
fn logging_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    if let Err(err) = common::logging::init() {
        eprintln!("CONFIG ERROR {err}");
        std::process::exit(78);
    }
    // A second call keeps the first subscriber and does not fail.
    common::logging::init().expect("second init");
    tracing::info!(answer = 42, "hello\nworld \u{1b}[31mred\r");
    tracing::debug!("debug detail");
    tracing::warn!(target: "noisy", "warned");
    // What tokio-postgres logs: statements with their parameters at debug, server notices at info.
    tracing::debug!(target: "tokio_postgres::query", "executing statement s0 with parameters: [\"secret-hash\"]");
    tracing::info!(target: "tokio_postgres::connection", "NOTICE: relation already exists, skipping");
}

fn event_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("hello") || l.contains("debug detail") || l.contains("warned"))
        .collect()
}

#[test]
fn text_is_the_default_one_line_per_event_at_info() {
    let (ok, stderr) = run_child(None, None);
    assert!(ok, "{stderr}");
    let lines = event_lines(&stderr);
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].contains("INFO") && lines[0].contains("answer=42"),
        "{stderr}"
    );
    assert!(
        lines[0].contains("hello\\nworld \\x1b[31mred\\r answer=42"),
        "line breaks and escapes in messages are escaped: {stderr}"
    );
    assert!(
        !stderr.contains("\u{1b}["),
        "no colours when stderr is not a terminal: {stderr}"
    );
}

#[test]
fn json_lines_parse() {
    let (ok, stderr) = run_child(Some("json"), Some("debug"));
    assert!(ok, "{stderr}");
    let lines = event_lines(&stderr);
    assert_eq!(lines.len(), 3, "{stderr}");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string(), "{line}");
        assert!(value["timestamp"].is_string(), "{line}");
    }
    let first: serde_json::Value = serde_json::from_str(event_lines(&stderr)[0]).unwrap();
    assert_eq!(first["message"], "hello\nworld \u{1b}[31mred\r");
    assert_eq!(first["answer"], 42);
}

#[test]
fn tokio_postgres_never_logs_query_parameters() {
    for filter in [
        None,
        Some("debug"),
        Some("trace"),
        Some("tokio_postgres=trace"),
        Some("tokio_postgres::query=debug"),
    ] {
        let (ok, stderr) = run_child(Some("json"), filter);
        assert!(ok, "{stderr}");
        assert!(!stderr.contains("secret-hash"), "{filter:?}: {stderr}");
    }
    // Notices are left out by default, shown when asked for.
    let (_, stderr) = run_child(None, None);
    assert!(!stderr.contains("NOTICE"), "{stderr}");
    let (_, stderr) = run_child(None, Some("tokio_postgres=info"));
    assert!(
        stderr.contains("NOTICE: relation already exists"),
        "{stderr}"
    );
    let (_, stderr) = run_child(None, Some("debug,tokio_postgres=error"));
    assert!(
        !stderr.contains("NOTICE"),
        "a stricter RUST_LOG still applies: {stderr}"
    );
}

#[test]
fn filter_is_applied() {
    let (ok, stderr) = run_child(Some("text"), Some("warn"));
    assert!(ok, "{stderr}");
    let lines = event_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("warned"));
}

#[test]
fn bad_settings_name_the_variable() {
    let (ok, stderr) = run_child(Some("yaml"), None);
    assert!(!ok);
    assert!(
        stderr.contains("CONFIG ERROR LOG_FORMAT: expected text or json, got \"yaml\""),
        "{stderr}"
    );

    let (ok, stderr) = run_child(None, Some("info,foo=loud"));
    assert!(!ok);
    assert!(
        stderr.contains("CONFIG ERROR RUST_LOG: invalid filter"),
        "{stderr}"
    );
}

//! The real `probe` binary against real sockets: a real HTTP server with recorded documents, refused ports,
//! silent and misbehaving peers, and every exit code.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use support::{fixture, run_probe};
use testkit::server::{read_request_head, Answer, HttpServer, RawServer};

fn url_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--url", url];
    args.extend_from_slice(extra);
    args
}

#[test]
fn passing_document_exits_0_with_the_roll_call() {
    let server = HttpServer::answering(Answer::health(200, &fixture("health-pass.json")));
    let url = server.url("/health");
    let run = run_probe(&["--url", &url], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = run.stdout.trim_end();
    assert!(
        line.starts_with("pass: supervisor=pass app=pass postgres=pass ("),
        "{line}"
    );
    assert!(line.ends_with(" ms)"), "{line}");
    assert_eq!(run.stdout.lines().count(), 1);
    assert!(run.stderr.is_empty());
}

#[test]
fn warning_document_exits_0() {
    let server = HttpServer::answering(Answer::health(200, &fixture("health-warn.json")));
    let run = run_probe(&["--url", &server.url("/health")], &[]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.starts_with("warn: postgres=warn(timeout) ("),
        "{}",
        run.stdout
    );
}

#[test]
fn failing_document_exits_1_naming_the_failed_check() {
    let server = HttpServer::answering(Answer::health(503, &fixture("health-fail.json")));
    let run = run_probe(&["--url", &server.url("/health")], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "fail: postgres=fail(connection refused)\n");
}

#[test]
fn default_target_comes_from_health_addr_with_wildcard_as_loopback() {
    let server = HttpServer::answering(Answer::health(200, &fixture("health-pass.json")));
    let addr = format!("0.0.0.0:{}", server.addr.port());
    let run = run_probe(&[], &[("HEALTH_ADDR", &addr)]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/health");
    assert_eq!(
        seen[0].host.as_deref(),
        Some(format!("127.0.0.1:{}", server.addr.port()).as_str())
    );
    assert!(seen[0]
        .user_agent
        .as_deref()
        .is_some_and(|ua| ua.starts_with("probe/")));
}

#[test]
fn proxy_variables_are_ignored() {
    let server = HttpServer::answering(Answer::health(200, &fixture("health-pass.json")));
    let addr = format!("127.0.0.1:{}", server.addr.port());
    // A proxy that refuses connections: had the probe used it, the check would fail.
    let dead_proxy = format!("http://127.0.0.1:{}", testkit::free_port());
    let env = [
        ("HEALTH_ADDR", addr.as_str()),
        ("http_proxy", dead_proxy.as_str()),
        ("HTTP_PROXY", dead_proxy.as_str()),
        ("all_proxy", dead_proxy.as_str()),
    ];
    let run = run_probe(&[], &env);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(server.seen()[0].target, "/health");
}

#[test]
fn ready_and_live_read_the_verbose_text() {
    let server = HttpServer::start(|target| match target {
        "/readyz?verbose" => {
            Answer::new(503, "text/plain; charset=utf-8", fixture("readyz-fail.txt"))
        }
        "/livez?verbose" => {
            Answer::new(200, "text/plain; charset=utf-8", fixture("livez-pass.txt"))
        }
        _ => Answer::new(404, "text/plain", "not found"),
    });
    let base = server.url("");
    let ready = run_probe(&["--ready", "--url", &base], &[]);
    assert_eq!(ready.code, 1);
    assert_eq!(ready.stdout, "fail: postgres=fail(reason withheld)\n");
    let live = run_probe(&["--live", "--url", &base], &[]);
    assert_eq!(live.code, 0);
    assert!(
        live.stdout.starts_with("pass: supervisor=pass app=pass ("),
        "{}",
        live.stdout
    );
    let targets: Vec<_> = server.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/readyz?verbose", "/livez?verbose"]);
}

#[test]
fn exclude_asks_the_server_to_leave_a_check_out() {
    let server = HttpServer::start(|target| match target {
        "/readyz?verbose&exclude=postgres" => Answer::new(
            200,
            "text/plain; charset=utf-8",
            "[+]supervisor ok\n[+]app ok\n[+]postgres excluded: ok\nreadyz check passed\n",
        ),
        _ => Answer::new(400, "text/plain", "unexpected query"),
    });
    let run = run_probe(
        &["--ready", "--exclude", "postgres", "--url", &server.url("")],
        &[],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with("pass: supervisor=pass app=pass postgres=pass(excluded) ("),
        "{}",
        run.stdout
    );
    let targets: Vec<_> = server.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/readyz?verbose&exclude=postgres"]);

    let bad = run_probe(&["--ready", "--exclude", "database"], &[]);
    assert_eq!(bad.code, 64);
    assert!(
        bad.stderr.contains("checks are supervisor, app, postgres"),
        "{}",
        bad.stderr
    );
}

#[test]
fn json_prints_the_document_as_received() {
    let document = fixture("health-pass.json");
    let server = HttpServer::answering(Answer::health(200, &document));
    let run = run_probe(&url_args(&server.url("/health"), &["--json"]), &[]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout.trim_end(), document.trim_end());
}

#[test]
fn json_escapes_terminal_controls_but_keeps_the_meaning() {
    let document = "{\"status\":\"fail\",\"output\":\"\u{9b}2J\u{202e}gnp.exe\"}";
    let server = HttpServer::answering(Answer::health(503, document));
    let run = run_probe(&url_args(&server.url("/health"), &["--json"]), &[]);
    assert_eq!(run.code, 1);
    assert!(!run.stdout.contains('\u{9b}') && !run.stdout.contains('\u{202e}'));
    let printed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let original: serde_json::Value = serde_json::from_str(document).unwrap();
    assert_eq!(printed, original);
}

#[test]
fn json_on_failure_is_still_json() {
    let port = testkit::free_port().to_string();
    let run = run_probe(
        &["--json"],
        &[("HEALTH_ADDR", &format!("127.0.0.1:{port}"))],
    );
    assert_eq!(run.code, 1);
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(value["status"], "fail");
    assert!(value["output"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
}

#[test]
fn verbose_prints_a_table_of_checks() {
    let server = HttpServer::answering(Answer::health(503, &fixture("health-fail.json")));
    let run = run_probe(&url_args(&server.url("/health"), &["--verbose"]), &[]);
    assert_eq!(run.code, 1);
    let lines: Vec<_> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("GET http://127.0.0.1:") && lines[0].contains("HTTP 503"));
    assert!(lines[1].starts_with("CHECK") && lines[1].contains("OUTPUT"));
    let postgres = lines
        .iter()
        .find(|l| l.starts_with("postgres:responseTime"))
        .unwrap();
    assert!(
        postgres.contains("fail") && postgres.contains("connection refused"),
        "{postgres}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("app:uptime") && l.contains("37.1 s")));
    assert_eq!(
        *lines.last().unwrap(),
        "fail: postgres=fail(connection refused)"
    );
}

#[test]
fn quiet_prints_nothing_and_keeps_the_exit_code() {
    let pass = HttpServer::answering(Answer::health(200, &fixture("health-pass.json")));
    let run = run_probe(&url_args(&pass.url("/health"), &["--quiet"]), &[]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "", "")
    );
    let fail = HttpServer::answering(Answer::health(503, &fixture("health-fail.json")));
    let run = run_probe(&url_args(&fail.url("/health"), &["--quiet"]), &[]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (1, "", "")
    );
}

#[test]
fn refused_port_exits_1() {
    let port = testkit::free_port();
    let run = run_probe(&[], &[("HEALTH_ADDR", &format!("0.0.0.0:{port}"))]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!("fail: cannot connect to 127.0.0.1:{port}: connection refused\n")
    );
}

#[test]
fn silent_listener_is_cut_off_at_the_2s_deadline() {
    // Accepts, reads the request, and never answers.
    let server = RawServer::start(|mut stream| {
        read_request_head(&mut stream);
        let _ = stream.read(&mut [0u8; 1]);
    });
    let addr = server.addr();
    let run = run_probe(&[], &[("HEALTH_ADDR", &addr.to_string())]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!("fail: no answer from {addr} within 2s\n")
    );
    assert!(
        run.elapsed >= Duration::from_millis(1900) && run.elapsed < Duration::from_millis(2600),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn unanswered_backlog_connection_honours_a_short_timeout() {
    // Never accepted: the connection completes in the kernel's backlog and the request sits there.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let run = run_probe(
        &["--timeout", "300ms"],
        &[("HEALTH_ADDR", &addr.to_string())],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!("fail: no answer from {addr} within 300ms\n")
    );
    assert!(
        run.elapsed >= Duration::from_millis(280) && run.elapsed < Duration::from_millis(900),
        "took {:?}",
        run.elapsed
    );
    drop(listener);
}

#[test]
fn ipv6_wildcard_means_ipv6_loopback() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback on this machine; nothing to test");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    // Refused on [::1] proves the wildcard was mapped to the IPv6 loopback, not to 127.0.0.1.
    let run = run_probe(&[], &[("HEALTH_ADDR", &format!("[::]:{port}"))]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!("fail: cannot connect to [::1]:{port}: connection refused\n")
    );
}

#[test]
fn trickling_server_cannot_stretch_the_deadline() {
    // One header byte every 50 ms: each read succeeds, only the total deadline can stop it.
    let server = RawServer::start(|mut stream| {
        read_request_head(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n");
        for _ in 0..200 {
            if stream.write_all(b"X").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let addr = server.addr();
    let url = format!("http://{addr}/health");
    let run = run_probe(&["--url", &url, "--timeout", "500ms"], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!("fail: answer from {addr} not complete within 500ms\n")
    );
    assert!(
        run.elapsed < Duration::from_millis(1100),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn garbage_answer_is_malformed() {
    let server = RawServer::start(|mut stream| {
        read_request_head(&mut stream);
        let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n\x1b]0;pwned\x07");
    });
    let addr = server.addr();
    let run = run_probe(&["--url", &format!("http://{addr}/health")], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .starts_with(&format!("fail: malformed answer from {addr}: not HTTP")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains('\x1b') && !run.stdout.contains('\x07'));
}

#[test]
fn connection_closed_without_answer_exits_1() {
    let server = RawServer::start(|mut stream| {
        read_request_head(&mut stream);
        // Dropping the stream closes the connection without a byte.
    });
    let addr = server.addr();
    let run = run_probe(&["--url", &format!("http://{addr}/health")], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!("fail: connection to {addr} closed without an answer\n")
    );
}

#[test]
fn huge_bodies_are_refused_whatever_the_framing() {
    let big = vec![b' '; 200 * 1024];
    let server = HttpServer::answering(Answer::new(200, "application/health+json", big));
    let run = run_probe(&["--url", &server.url("/health")], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("over the 64 KiB limit"),
        "{}",
        run.stdout
    );

    // Chunked, and endless: the probe must stop reading at the cap, not at the server's whim.
    let server = RawServer::start(|mut stream| {
        read_request_head(&mut stream);
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/health+json\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let chunk = format!("2000\r\n{}\r\n", " ".repeat(0x2000));
        for _ in 0..10_000 {
            if stream.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    let addr = server.addr();
    let run = run_probe(&["--url", &format!("http://{addr}/health")], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("over the 64 KiB limit"),
        "{}",
        run.stdout
    );
}

#[test]
fn chunked_document_over_a_raw_socket_is_read() {
    let document = fixture("health-pass.json");
    let server = RawServer::start(move |mut stream| {
        read_request_head(&mut stream);
        let (a, b) = document.as_bytes().split_at(document.len() / 2);
        let mut answer =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/health+json\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for part in [a, b] {
            answer.extend(format!("{:x}\r\n", part.len()).bytes());
            answer.extend_from_slice(part);
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"0\r\n\r\n");
        let _ = stream.write_all(&answer);
        // Hold the connection open: the probe must finish from the framing alone.
        let _ = stream.read(&mut [0u8; 1]);
    });
    let addr = server.addr();
    let run = run_probe(&["--url", &format!("http://{addr}/health")], &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.starts_with("pass: supervisor=pass"));
}

#[test]
fn bad_documents_are_malformed_answers() {
    let cases: Vec<(Answer, &str)> = vec![
        (Answer::health(200, "<html>hi</html>"), "not JSON"),
        (Answer::health(200, "{\"checks\":{}}"), "no \"status\""),
        (
            Answer::health(200, "{\"status\":\"grand\"}"),
            "unknown status",
        ),
        (
            Answer::new(
                200,
                "application/json",
                b"{\"status\":\"pa\xffss\"}".to_vec(),
            ),
            "not UTF-8",
        ),
        (
            Answer::new(200, "text/html", "<h1>It works!</h1>"),
            "unexpected content type text/html",
        ),
        (
            Answer::new(200, "text/plain", "Hello, world"),
            "not a health answer",
        ),
    ];
    for (answer, expected) in cases {
        let server = HttpServer::answering(answer);
        let run = run_probe(&["--url", &server.url("/health")], &[]);
        assert_eq!(run.code, 1, "{expected}: {}", run.stdout);
        let prefix = format!("fail: malformed answer from {}: ", server.addr);
        assert!(
            run.stdout.starts_with(&prefix) && run.stdout.contains(expected),
            "expected {expected:?}, got {}",
            run.stdout
        );
        assert!(run.stdout.len() <= 257);
    }
}

#[test]
fn unexpected_http_status_exits_1() {
    let server = HttpServer::answering(Answer::new(404, "text/plain", "not found"));
    let run = run_probe(&["--url", &server.url("/nope")], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!(
            "fail: unexpected HTTP 404 (Not Found) from {}\n",
            server.addr
        )
    );
}

#[test]
fn hostile_document_gives_a_short_clean_line() {
    let long = "\u{1b}[31m".repeat(5_000);
    let document = format!(
        "{{\"status\":\"fail\",\"checks\":{{\"db\\u0007:x\":[{{\"status\":\"fail\",\"output\":\"{}\"}}]}}}}",
        long.replace('\u{1b}', "\\u001b")
    );
    let server = HttpServer::answering(Answer::health(503, &document));
    let run = run_probe(&["--url", &server.url("/health")], &[]);
    assert_eq!(run.code, 1);
    let line = run.stdout.strip_suffix('\n').unwrap();
    assert!(line.len() <= 256, "{} bytes", line.len());
    assert!(!line.chars().any(char::is_control), "{line:?}");
    assert!(line.starts_with("fail: db?=fail(?[31m"), "{line}");
}

#[test]
fn usage_errors_exit_64_never_2() {
    let cases: &[&[&str]] = &[
        &["--bogus"],
        &["positional"],
        &["--timeout", "2"],
        &["--timeout", "-1s"],
        &["--timeout", "0s"],
        &["--timeout"],
        &["--watch", "soon"],
        &["--url", "ftp://127.0.0.1/health"],
        &["--url", "https://127.0.0.1/health"],
        &["--url", "http://user:secret@127.0.0.1/health"],
        &["--url", "http://127.0.0.1:99999/"],
        &["--ready", "--live"],
        &["--json", "--verbose"],
        &["--quiet", "--json"],
        &["--watch", "--json"],
        &["--live", "--url", "http://127.0.0.1:1/health"],
    ];
    for args in cases {
        let run = run_probe(args, &[]);
        assert_eq!(run.code, 64, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("secret"), "{args:?}: {}", run.stderr);
    }
    for bad_addr in ["", "nohost", "0.0.0.0:port", "[::1:8081"] {
        let run = run_probe(&[], &[("HEALTH_ADDR", bad_addr)]);
        assert_eq!(run.code, 64, "HEALTH_ADDR={bad_addr:?}: {}", run.stderr);
        assert!(run.stderr.contains("HEALTH_ADDR"), "{}", run.stderr);
    }
}

#[test]
fn help_and_version_exit_0() {
    let help = run_probe(&["--help"], &[]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Usage: probe") && help.stdout.contains("--watch"));
    let version = run_probe(&["--version"], &[]);
    assert_eq!(version.code, 0);
    assert_eq!(
        version.stdout,
        format!("probe {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn recorded_supervisor_answers_give_the_expected_verdicts() {
    let cases = [
        (
            "/health",
            200,
            "application/health+json",
            "supervisor-pass.json",
            0,
            "pass: supervisor=pass app=pass postgres=pass (",
        ),
        (
            "/health",
            503,
            "application/health+json",
            "supervisor-fail.json",
            1,
            "fail: postgres=fail(connection refused)\n",
        ),
        (
            "/readyz?verbose",
            200,
            "text/plain; charset=utf-8",
            "readyz-pass.txt",
            0,
            "pass: supervisor=pass app=pass postgres=pass (",
        ),
        (
            "/readyz?verbose",
            503,
            "text/plain; charset=utf-8",
            "supervisor-readyz-fail.txt",
            1,
            "fail: postgres=fail(connection refused)\n",
        ),
    ];
    for (path, status, content_type, name, code, expected) in cases {
        let body = fixture(name);
        let server = HttpServer::answering(Answer::new(status, content_type, body));
        let run = run_probe(&["--url", &server.url(path)], &[]);
        assert_eq!(run.code, code, "{name}: {}", run.stdout);
        assert!(run.stdout.starts_with(expected), "{name}: {}", run.stdout);
    }
}

#[test]
fn host_names_are_resolved_within_the_deadline() {
    let server = HttpServer::answering(Answer::health(200, &fixture("health-pass.json")));
    let url = format!("http://localhost:{}/health", server.addr.port());
    let run = run_probe(&["--url", &url], &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        server.seen()[0].host.as_deref(),
        Some(format!("localhost:{}", server.addr.port()).as_str())
    );

    // `.invalid` never resolves (RFC 6761); whether the resolver says so at once or stays silent, the
    // probe fails within its deadline.
    let run = run_probe(&["--url", "http://health.invalid:8081/health"], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .starts_with("fail: cannot resolve health.invalid: ")
            || run.stdout == "fail: no answer from health.invalid:8081 within 2s\n",
        "{}",
        run.stdout
    );
    assert!(
        run.elapsed < Duration::from_millis(2600),
        "took {:?}",
        run.elapsed
    );
}

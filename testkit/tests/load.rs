//! The load generator against real servers on loopback: a small hyper server whose paths misbehave in each way a
//! request can be lost, and raw sockets for what hyper will not do (reset, close right after answering).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONNECTION;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use testkit::load::{self, LoadConfig, Outcome, Report, StopReason, Target};
use testkit::{free_port, wait_for, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Body = BoxBody<Bytes, std::io::Error>;

/// A hyper server on 127.0.0.1. Paths: `/ok`; `/status/N`; `/close` (200 with `Connection: close`);
/// `/drop-second` (answers the first request of a connection, closes it without an answer at the second);
/// `/drop` (closes without an answer); `/slow` (answers after 30 s);
/// `/need-header` (200 with `X-Bench: yes`, else 400).
struct HyperServer {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl HyperServer {
    async fn start() -> HyperServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&requests);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let on_this_connection = Arc::new(AtomicU64::new(0));
                    let service = service_fn(move |request| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let nth = on_this_connection.fetch_add(1, Ordering::Relaxed) + 1;
                        handle(request, nth)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HyperServer { addr, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A service error makes hyper close the connection without writing a response.
async fn handle(request: Request<Incoming>, nth: u64) -> Result<Response<Body>, std::io::Error> {
    let path = request.uri().path().to_owned();
    let text = |status: StatusCode| {
        let mut response = Response::new(
            Full::new(Bytes::from_static(b"ok"))
                .map_err(|e: Infallible| match e {})
                .boxed(),
        );
        *response.status_mut() = status;
        response
    };
    let dropped = || std::io::Error::other("closing without an answer");
    match path.as_str() {
        "/ok" => Ok(text(StatusCode::OK)),
        "/close" => {
            let mut response = text(StatusCode::OK);
            response
                .headers_mut()
                .insert(CONNECTION, "close".parse().expect("header value"));
            Ok(response)
        }
        "/drop-second" if nth >= 2 => Err(dropped()),
        "/drop-second" => Ok(text(StatusCode::OK)),
        "/drop" => Err(dropped()),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(text(StatusCode::OK))
        }
        "/need-header" => match request.headers().get("x-bench") {
            Some(value) if value == "yes" => Ok(text(StatusCode::OK)),
            _ => Ok(text(StatusCode::BAD_REQUEST)),
        },
        _ => match path
            .strip_prefix("/status/")
            .and_then(|code| code.parse::<u16>().ok())
        {
            Some(code) => Ok(text(StatusCode::from_u16(code).expect("valid status"))),
            None => Ok(text(StatusCode::NOT_FOUND)),
        },
    }
}

/// A raw HTTP/1.1 server: reads each request head, answers `200 ok` (keep-alive) `answers` times per connection,
/// then does `then` to it.
#[derive(Clone, Copy)]
enum RawEnd {
    /// Reads the next request, then resets the connection (RST, SO_LINGER 0).
    ResetAtNextRequest,
    /// Closes right after the last answer, while the connection is idle.
    CloseWhenIdle,
    /// Reads the next request, sends a head promising 100 bytes and 10 of them, then closes.
    TruncateNextAnswer,
}

async fn start_raw(answers: usize, end: RawEnd) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(serve_raw(stream, answers, end));
        }
    });
    addr
}

async fn serve_raw(mut stream: TcpStream, answers: usize, end: RawEnd) {
    for _ in 0..answers {
        if !read_request_head(&mut stream).await {
            return;
        }
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
    match end {
        RawEnd::ResetAtNextRequest => {
            read_request_head(&mut stream).await;
            stream.set_zero_linger().expect("SO_LINGER 0");
            drop(stream);
        }
        RawEnd::CloseWhenIdle => {
            let _ = stream.shutdown().await;
        }
        RawEnd::TruncateNextAnswer => {
            if read_request_head(&mut stream).await {
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b";
                let _ = stream.write_all(head).await;
                let _ = stream.shutdown().await;
            }
        }
    }
}

/// Reads up to the end of a request head (bodiless requests only); false at EOF.
async fn read_request_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

fn config(url: &str, connections: usize, requests: u64) -> LoadConfig {
    let mut config = LoadConfig::new(Target::parse(url).expect("target URL"));
    config.connections = connections;
    config.requests = Some(requests);
    config.timeout = Duration::from_secs(5);
    config
}

async fn run(config: LoadConfig) -> Report {
    load::run(config, std::future::pending())
        .await
        .expect("load run")
}

fn failures(report: &Report) -> Vec<(&'static str, u64)> {
    report
        .stats()
        .failures()
        .into_iter()
        .map(|(outcome, count)| (outcome.name(), count))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_requests_are_counted_once_each_on_reused_connections() {
    let server = HyperServer::start().await;
    let report = run(config(&server.url("/ok"), 4, 1000)).await;
    let stats = report.stats();
    assert_eq!((stats.total, stats.ok(), stats.failed()), (1000, 1000, 0));
    assert_eq!(
        server.requests(),
        1000,
        "every request reached the server exactly once"
    );
    assert_eq!(
        report.connection_counts.opened, 4,
        "each worker keeps its connection"
    );
    assert_eq!(report.stopped_by, StopReason::Requests);
    let latency = stats.latency.expect("latencies");
    assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    assert_eq!(report.records().len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_are_classified_with_503_apart() {
    let server = HyperServer::start().await;
    for (path, outcome) in [
        ("/status/404", Outcome::Http4xx),
        ("/status/429", Outcome::Http4xx),
        ("/status/503", Outcome::Http503),
        ("/status/500", Outcome::Http5xx),
        ("/status/502", Outcome::Http5xx),
        ("/status/302", Outcome::HttpOther),
        ("/status/204", Outcome::Ok),
    ] {
        let report = run(config(&server.url(path), 2, 6)).await;
        assert_eq!(
            report.stats().count(outcome),
            6,
            "{path}: {:?}",
            failures(&report)
        );
        assert_eq!(
            report.connection_counts.opened, 2,
            "{path}: an error status keeps the connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_is_honoured_with_a_new_connection_per_request() {
    let server = HyperServer::start().await;
    let report = run(config(&server.url("/close"), 2, 40)).await;
    assert_eq!(report.stats().ok(), 40, "{:?}", failures(&report));
    assert_eq!(report.connection_counts.opened, 40);
    assert_eq!(report.connection_counts.told_to_close, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_connection_closed_without_an_answer_is_a_stale_keep_alive() {
    let server = HyperServer::start().await;
    // Per connection: the first request is answered, the second finds it closed; then a new connection.
    let report = run(config(&server.url("/drop-second"), 1, 10)).await;
    let stats = report.stats();
    assert_eq!(stats.ok(), 5, "{:?}", failures(&report));
    assert_eq!(stats.count(Outcome::StaleKeepAlive), 5);
    assert_eq!(
        report.connection_counts.opened, 5,
        "reconnects after each failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_connection_reset_at_the_next_request_is_a_stale_keep_alive() {
    let addr = start_raw(2, RawEnd::ResetAtNextRequest).await;
    let report = run(config(&format!("http://{addr}/"), 1, 9)).await;
    let stats = report.stats();
    assert_eq!(stats.ok(), 6, "{:?}", failures(&report));
    assert_eq!(stats.count(Outcome::StaleKeepAlive), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_connection_closed_without_an_answer_is_counted_apart() {
    let server = HyperServer::start().await;
    let report = run(config(&server.url("/drop"), 2, 8)).await;
    assert_eq!(
        report.stats().count(Outcome::ClosedBeforeResponse),
        8,
        "{:?}",
        failures(&report)
    );
    assert_eq!(report.connection_counts.opened, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_connect_refused() {
    let report = run(config(&format!("http://127.0.0.1:{}/", free_port()), 2, 6)).await;
    assert_eq!(
        report.stats().count(Outcome::ConnectRefused),
        6,
        "{:?}",
        failures(&report)
    );
    assert_eq!(report.connection_counts.opened, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_a_timeout_after_the_per_request_deadline() {
    let server = HyperServer::start().await;
    let mut config = config(&server.url("/slow"), 2, 4);
    config.timeout = Duration::from_millis(300);
    let report = run(config).await;
    let stats = report.stats();
    assert_eq!(stats.count(Outcome::Timeout), 4, "{:?}", failures(&report));
    let latency = stats.latency.expect("latencies");
    assert!(latency.p50 >= Duration::from_millis(300), "{latency:?}");
    assert!(
        latency.max < Duration::from_secs(5),
        "bounded by the deadline: {latency:?}"
    );
    assert_eq!(
        report.connection_counts.opened, 4,
        "a timed-out connection is not reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_breaks_off_is_a_broken_response() {
    let addr = start_raw(0, RawEnd::TruncateNextAnswer).await;
    let report = run(config(&format!("http://{addr}/"), 1, 3)).await;
    assert_eq!(
        report.stats().count(Outcome::BrokenResponse),
        3,
        "{:?}",
        failures(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_while_idle_is_replaced_without_a_failure() {
    let addr = start_raw(1, RawEnd::CloseWhenIdle).await;
    let mut config = config(&format!("http://{addr}/"), 1, 4);
    // 250 ms between requests: the close has long arrived when the next request is due.
    config.rate = Some(4.0);
    let report = run(config).await;
    assert_eq!(report.stats().ok(), 4, "{:?}", failures(&report));
    assert_eq!(report.connection_counts.opened, 4);
    assert_eq!(report.connection_counts.closed_idle, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_sent_with_every_request() {
    let server = HyperServer::start().await;
    let mut with = config(&server.url("/need-header"), 2, 10);
    let (name, value) = load::parse_header("X-Bench: yes").expect("header");
    with.headers.insert(name, value);
    assert_eq!(run(with).await.stats().ok(), 10);
    let without = run(config(&server.url("/need-header"), 2, 10)).await;
    assert_eq!(without.stats().count(Outcome::Http4xx), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_is_a_ceiling() {
    let server = HyperServer::start().await;
    let mut config = config(&server.url("/ok"), 2, u64::MAX);
    config.requests = None;
    config.rate = Some(40.0);
    config.duration = Some(Duration::from_secs(1));
    let report = run(config).await;
    let total = report.stats().total;
    // The first tick of each connection is at once: at most 40 in the second plus one per connection.
    assert!(
        (1..=42).contains(&total),
        "{total} requests at 40/s for 1 s"
    );
    assert_eq!(report.stopped_by, StopReason::Duration);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stop_file_ends_the_run_and_phases_split_the_requests() {
    let server = HyperServer::start().await;
    let dir = TempDir::new("loadgen");
    let phase_file = dir.path().join("phase");
    let stop_file = dir.path().join("stop");
    std::fs::write(&phase_file, "steady\n").expect("phase file");
    let mut config = config(&server.url("/ok"), 2, 0);
    config.requests = None;
    config.rate = Some(400.0);
    config.phase_file = Some(phase_file.clone());
    config.stop_file = Some(stop_file.clone());
    let running = tokio::spawn(load::run(config, std::future::pending()));

    let seen = |n: u64| {
        let server_requests = Arc::clone(&server.requests);
        tokio::task::spawn_blocking(move || {
            wait_for("requests at the server", Duration::from_secs(20), || {
                (server_requests.load(Ordering::Relaxed) >= n).then_some(())
            })
        })
    };
    seen(30).await.expect("waiting");
    std::fs::write(&phase_file, "rollout\n").expect("phase file");
    let switched = server.requests();
    // The phase file is read every 100 ms: 200 requests at 400/s is half a second later.
    seen(switched + 200).await.expect("waiting");
    std::fs::write(&stop_file, "").expect("stop file");
    let report = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the run ends once the stop file exists")
        .expect("join")
        .expect("load run");

    assert_eq!(report.stopped_by, StopReason::StopFile);
    let names: Vec<String> = report
        .phases()
        .into_iter()
        .map(|phase| phase.name)
        .collect();
    assert_eq!(names, ["steady", "rollout"]);
    let steady = report.phase("steady").expect("steady phase");
    let rollout = report.phase("rollout").expect("rollout phase");
    assert!(
        steady.stats.total >= 30 && rollout.stats.total >= 100,
        "{steady:?} {rollout:?}"
    );
    assert_eq!(
        steady.stats.total + rollout.stats.total,
        report.stats().total
    );
    assert!(steady.last_start <= rollout.first_start);
    assert_eq!(report.stats().total, server.requests());
}

#[test]
fn bad_urls_and_headers_are_refused_with_a_reason() {
    for url in [
        "https://example.com/",
        "example.com/x",
        "http://user:pw@host/",
        "http:///x",
    ] {
        assert!(Target::parse(url).is_err(), "{url} accepted");
    }
    assert!(Target::parse("http://127.0.0.1:3000/api/entries?limit=5").is_ok());
    for header in ["no colon", "bad name: x", "X-Ok: line\nbreak"] {
        assert!(load::parse_header(header).is_err(), "{header:?} accepted");
    }
}

/// The binary: JSON document, --max-failed, usage errors, SIGTERM.
#[test]
fn the_binary_writes_the_json_report_and_its_exit_status_says_what_happened() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(HyperServer::start());
    let dir = TempDir::new("loadgen-bin");
    let json_path = dir.path().join("report.json");
    let loadgen = env!("CARGO_BIN_EXE_loadgen");

    let output = Command::new(loadgen)
        .args(["-c", "3", "-n", "300", "--max-failed", "0", "--json"])
        .arg(&json_path)
        .arg(server.url("/ok"))
        .output()
        .expect("running loadgen");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("300 total, 300 ok, 0 failed"), "{summary}");
    let doc = read_json(&json_path);
    assert_eq!(doc["total"], 300);
    assert_eq!(doc["ok"], 300);
    assert_eq!(doc["failed"], 0);
    assert_eq!(
        doc["failures"]["stale_keepalive"], 0,
        "every kind is listed"
    );
    assert!(doc["latency_ms"]["p99"].as_f64().expect("p99") > 0.0);
    assert_eq!(doc["stopped_by"], "requests");
    let timeline = doc["timeline"].as_array().expect("timeline");
    let per_second: u64 = timeline
        .iter()
        .map(|s| s["total"].as_u64().expect("total"))
        .sum();
    assert_eq!(per_second, 300);

    let failing = Command::new(loadgen)
        .args(["-q", "-c", "1", "-n", "5", "--max-failed", "4"])
        .arg(server.url("/status/503"))
        .output()
        .expect("running loadgen");
    assert_eq!(failing.status.code(), Some(1));

    for bad in [
        vec!["--header", "nocolon", "http://127.0.0.1:1/"],
        vec!["-c", "0", "http://127.0.0.1:1/"],
        vec!["ftp://127.0.0.1:1/"],
        vec!["--timeout", "5", "http://127.0.0.1:1/"],
    ] {
        let output = Command::new(loadgen)
            .args(&bad)
            .output()
            .expect("running loadgen");
        assert_eq!(output.status.code(), Some(64), "{bad:?}");
        assert!(!output.stderr.is_empty(), "{bad:?} says why");
    }

    // Unbounded: SIGTERM ends it and the report still comes out.
    std::fs::remove_file(&json_path).expect("removing the old report");
    let mut child = Command::new(loadgen)
        .args(["-q", "-c", "2", "--rate", "200", "--json"])
        .arg(&json_path)
        .arg(server.url("/ok"))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning loadgen");
    let before = server.requests();
    wait_for("load at the server", Duration::from_secs(20), || {
        (server.requests() >= before + 20).then_some(())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = wait_for(
        "loadgen to exit after SIGTERM",
        Duration::from_secs(20),
        || child.try_wait().expect("waiting for loadgen"),
    );
    assert!(status.success(), "{status}");
    let doc = read_json(&json_path);
    assert_eq!(doc["stopped_by"], "signal");
    assert!(doc["total"].as_u64().expect("total") >= 20);
    assert_eq!(doc["failed"], 0);
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("reading the JSON report");
    serde_json::from_str(&text).expect("the report is JSON")
}

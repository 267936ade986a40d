//! Load generator: N keep-alive HTTP/1.1 connections, each driven by its own worker in a closed loop (as fast as
//! the server answers, or paced to a target rate), recording the outcome and latency of every request.
//!
//! Nothing is retried: every request a client would have lost is counted, by kind. A connection the server closed
//! while it sat idle is replaced before the next request (a pooled client sees that close too and never writes on
//! it), so only requests actually written to a connection that then closed count as lost. `Connection: close` in a
//! response is honoured: the next request opens a new connection.

mod report;

pub use report::{Latencies, Phase, Record, Report, Second, Stats, StopReason};

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// How often the stop file and the phase file are looked at.
const CONTROL_POLL: Duration = Duration::from_millis(100);
/// Pause after a failed connect before the worker tries again, so a target that refuses at once does not turn
/// the worker into a busy loop (not counted in any latency).
const CONNECT_FAILURE_PAUSE: Duration = Duration::from_millis(10);
/// The phase of requests started while no phase file names one.
pub const DEFAULT_PHASE: &str = "run";

/// What became of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A 2xx response, its body read to the end.
    Ok,
    /// A 4xx response.
    Http4xx,
    /// 503 Service Unavailable (a server or balancer saying "not now").
    Http503,
    /// Any other 5xx.
    Http5xx,
    /// A 1xx or 3xx final response: not what a load test expects.
    HttpOther,
    /// Nothing listened: the TCP connect was refused.
    ConnectRefused,
    /// The TCP connect failed otherwise (unreachable, name resolution, reset during the handshake).
    ConnectFailed,
    /// Written on a reused keep-alive connection that was then closed or reset before any response: the race of
    /// a server closing an idle connection without having said `Connection: close`.
    StaleKeepAlive,
    /// Written on a fresh connection that was closed or reset before any response (a proxy in front of a
    /// listener that just closed, a server that accepts and drops).
    ClosedBeforeResponse,
    /// A response that was malformed or cut short (the body ended early).
    BrokenResponse,
    /// No complete response within the per-request timeout (connecting included).
    Timeout,
}

impl Outcome {
    /// Every outcome, in the order reports list them.
    pub const ALL: [Outcome; 11] = [
        Outcome::Ok,
        Outcome::Http4xx,
        Outcome::Http503,
        Outcome::Http5xx,
        Outcome::HttpOther,
        Outcome::ConnectRefused,
        Outcome::ConnectFailed,
        Outcome::StaleKeepAlive,
        Outcome::ClosedBeforeResponse,
        Outcome::BrokenResponse,
        Outcome::Timeout,
    ];

    /// The name used in summaries and JSON keys.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Http4xx => "http_4xx",
            Outcome::Http503 => "http_503",
            Outcome::Http5xx => "http_5xx",
            Outcome::HttpOther => "http_other",
            Outcome::ConnectRefused => "connect_refused",
            Outcome::ConnectFailed => "connect_failed",
            Outcome::StaleKeepAlive => "stale_keepalive",
            Outcome::ClosedBeforeResponse => "closed_before_response",
            Outcome::BrokenResponse => "broken_response",
            Outcome::Timeout => "timeout",
        }
    }

    fn index(self) -> usize {
        Outcome::ALL
            .iter()
            .position(|outcome| *outcome == self)
            .expect("every outcome is listed in ALL")
    }

    fn from_status(status: StatusCode) -> Outcome {
        match status.as_u16() {
            200..=299 => Outcome::Ok,
            400..=499 => Outcome::Http4xx,
            503 => Outcome::Http503,
            500..=599 => Outcome::Http5xx,
            _ => Outcome::HttpOther,
        }
    }
}

/// Where requests go: an `http://` URL split into what the connection and the request line need.
#[derive(Clone, Debug)]
pub struct Target {
    url: String,
    /// `host:port` to connect to.
    addr: String,
    host_header: HeaderValue,
    path_and_query: Uri,
}

impl Target {
    /// Parses `http://host[:port][/path][?query]`; anything else (https, user info, no host) is an error saying so.
    pub fn parse(url: &str) -> Result<Target, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "{url:?}: only http:// is supported, not {other}://"
                ))
            }
            None => return Err(format!("{url:?}: expected http://host:port/path")),
        }
        let authority = uri.authority().ok_or_else(|| format!("{url:?}: no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "{url:?}: user info in the URL is not supported (use --header)"
            ));
        }
        let port = authority.port_u16().unwrap_or(80);
        let path_and_query: Uri = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .parse()
            .map_err(|e| format!("{url:?}: bad path: {e}"))?;
        Ok(Target {
            url: url.to_owned(),
            addr: format!("{}:{port}", authority.host()),
            host_header: HeaderValue::from_str(authority.as_str())
                .map_err(|e| format!("{url:?}: bad host: {e}"))?,
            path_and_query,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Parses a `Name: value` header argument.
pub fn parse_header(arg: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("header {arg:?}: expected \"Name: value\""))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("header {arg:?}: {:?} is not a header name", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("header {arg:?}: the value has characters a header cannot carry"))?;
    Ok((name, value))
}

/// What to run. Without `duration`, `requests` or a stop file the run lasts until the `stop` future given to
/// [`run`] completes.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: Target,
    pub method: Method,
    /// Sent with every request; a `Host` here replaces the one taken from the URL.
    pub headers: HeaderMap,
    /// Concurrent connections, one worker each.
    pub connections: usize,
    /// Total requests per second across all connections (a ceiling; `None`: as fast as the server answers).
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
    /// Total requests across all connections.
    pub requests: Option<u64>,
    /// Bound on each request, connecting and reading the whole body included.
    pub timeout: Duration,
    /// The run ends once this file exists.
    pub stop_file: Option<PathBuf>,
    /// Each request is tagged with the phase named by this file's first line when it starts (read every 100 ms).
    pub phase_file: Option<PathBuf>,
}

impl LoadConfig {
    /// A closed-loop GET with the defaults of the `loadgen` binary: 8 connections, 10 s per-request timeout, no
    /// bound (set `duration`, `requests` or `stop_file`).
    pub fn new(target: Target) -> LoadConfig {
        LoadConfig {
            target,
            method: Method::GET,
            headers: HeaderMap::new(),
            connections: 8,
            rate: None,
            duration: None,
            requests: None,
            timeout: Duration::from_secs(10),
            stop_file: None,
            phase_file: None,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("connections must be at least 1".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!(
                    "rate must be a positive number of requests per second, not {rate}"
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err("the per-request timeout must be above 0".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err("the duration must be above 0".into());
        }
        Ok(())
    }
}

/// Runs the load until the duration passes, the request budget is spent, the stop file appears or `stop`
/// completes, whichever is first. Requests in flight then finish (each bounded by the timeout) and are recorded.
pub async fn run(
    config: LoadConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Report, String> {
    config.validate()?;
    let started = Instant::now();
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        request_head: RequestHead::new(&config),
        addr: config.target.addr.clone(),
        timeout: config.timeout,
        started,
        budget: config.requests.map(AtomicU64::new),
        phases: Phases::new(read_phase(config.phase_file.as_ref()).as_deref()),
        stop: stop_rx,
    });

    let mut workers = JoinSet::new();
    for index in 0..config.connections {
        let pacer = config.rate.map(|rate| {
            // Each connection gets its share of the rate; starts are staggered so the ticks interleave.
            let period = Duration::from_secs_f64(config.connections as f64 / rate);
            let first = started + period.mul_f64(index as f64 / config.connections as f64);
            let mut pacer = tokio::time::interval_at(first.into(), period);
            pacer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            pacer
        });
        workers.spawn(worker(Arc::clone(&shared), pacer));
    }

    let mut control = Control {
        stop: Box::pin(stop),
        deadline: config.duration.map(|d| Box::pin(tokio::time::sleep(d))),
        poll: tokio::time::interval(CONTROL_POLL),
        stop_file: config.stop_file.clone(),
        phase_file: config.phase_file.clone(),
        shared: Arc::clone(&shared),
    };
    let stopped_by = OnceLock::new();
    let mut logs = Vec::with_capacity(config.connections);
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(Ok(log)) => logs.push(log),
                Some(Err(error)) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Some(Err(error)) => return Err(format!("a load worker failed: {error}")),
                None => break,
            },
            reason = control.next_stop(), if stopped_by.get().is_none() => {
                let _ = stopped_by.set(reason);
                // Workers finish the request they are in, then leave.
                let _ = stop_tx.send(true);
            }
        }
    }
    let elapsed = started.elapsed();
    Ok(Report::new(
        &config,
        started_unix_ms,
        elapsed,
        stopped_by.get().copied().unwrap_or(StopReason::Requests),
        shared.phases.names(),
        logs,
    ))
}

/// What every worker shares.
struct Shared {
    request_head: RequestHead,
    addr: String,
    timeout: Duration,
    started: Instant,
    /// Requests left to start, when bounded.
    budget: Option<AtomicU64>,
    phases: Phases,
    stop: watch::Receiver<bool>,
}

impl Shared {
    /// Takes one request from the budget; false once it is spent or the run is stopping.
    fn claim_request(&self) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        match &self.budget {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// The parts of the request that never change.
struct RequestHead {
    method: Method,
    path_and_query: Uri,
    headers: HeaderMap,
}

impl RequestHead {
    fn new(config: &LoadConfig) -> RequestHead {
        let mut headers = config.headers.clone();
        if !headers.contains_key(HOST) {
            headers.insert(HOST, config.target.host_header.clone());
        }
        RequestHead {
            method: config.method.clone(),
            path_and_query: config.target.path_and_query.clone(),
            headers,
        }
    }

    fn request(&self) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.path_and_query.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Phase names in order of first appearance, and the one requests are tagged with now.
struct Phases {
    names: Mutex<Vec<String>>,
    current: AtomicUsize,
}

impl Phases {
    fn new(initial: Option<&str>) -> Phases {
        Phases {
            names: Mutex::new(vec![initial.unwrap_or(DEFAULT_PHASE).to_owned()]),
            current: AtomicUsize::new(0),
        }
    }

    fn current(&self) -> u16 {
        self.current.load(Ordering::Relaxed) as u16
    }

    fn enter(&self, name: &str) {
        let mut names = self.names.lock().expect("phase names lock");
        let index = match names.iter().position(|known| known == name) {
            Some(index) => index,
            // Past u16::MAX distinct names, later ones share the last slot rather than grow without bound.
            None if names.len() > usize::from(u16::MAX) => names.len() - 1,
            None => {
                names.push(name.to_owned());
                names.len() - 1
            }
        };
        self.current.store(index, Ordering::Relaxed);
    }

    fn names(&self) -> Vec<String> {
        self.names.lock().expect("phase names lock").clone()
    }
}

/// The first line of the phase file, trimmed; `None` when it is missing or blank.
fn read_phase(path: Option<&PathBuf>) -> Option<String> {
    let text = std::fs::read_to_string(path?).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// Watches for the reasons to stop, and follows the phase file meanwhile.
struct Control {
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    poll: tokio::time::Interval,
    stop_file: Option<PathBuf>,
    phase_file: Option<PathBuf>,
    shared: Arc<Shared>,
}

impl Control {
    /// Cancel safe: all state lives in `self`, so a `select!` may drop this future and call it again.
    async fn next_stop(&mut self) -> StopReason {
        loop {
            tokio::select! {
                () = &mut self.stop => return StopReason::Signal,
                () = async { self.deadline.as_mut().expect("guarded by the condition").await },
                    if self.deadline.is_some() => return StopReason::Duration,
                _ = self.poll.tick() => {
                    if self.stop_file.as_ref().is_some_and(|path| path.exists()) {
                        return StopReason::StopFile;
                    }
                    if let Some(name) = read_phase(self.phase_file.as_ref()) {
                        self.shared.phases.enter(&name);
                    }
                }
            }
        }
    }
}

/// What one worker saw.
pub(crate) struct WorkerLog {
    pub(crate) records: Vec<Record>,
    pub(crate) connections: ConnectionCounts,
}

/// How connections came and went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// TCP connections opened (attempts that connected).
    pub opened: u64,
    /// Keep-alive connections found closed by the server before the next request was written (not a loss).
    pub closed_idle: u64,
    /// Connections given up because a response said `Connection: close`.
    pub told_to_close: u64,
}

impl ConnectionCounts {
    pub(crate) fn add(&mut self, other: ConnectionCounts) {
        self.opened += other.opened;
        self.closed_idle += other.closed_idle;
        self.told_to_close += other.told_to_close;
    }
}

type Sender = SendRequest<Empty<Bytes>>;

async fn worker(shared: Arc<Shared>, mut pacer: Option<tokio::time::Interval>) -> WorkerLog {
    let mut log = WorkerLog {
        records: Vec::new(),
        connections: ConnectionCounts::default(),
    };
    let mut stop = shared.stop.clone();
    let mut connection: Option<Sender> = None;
    loop {
        if let Some(pacer) = pacer.as_mut() {
            tokio::select! {
                _ = pacer.tick() => {}
                _ = stop.wait_for(|stopping| *stopping) => break,
            }
        }
        if !shared.claim_request() {
            break;
        }
        let phase = shared.phases.current();
        let start = Instant::now();
        let outcome = match tokio::time::timeout(
            shared.timeout,
            exchange(&shared, &mut connection, &mut log.connections),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_elapsed) => {
                // Dropping the response future made hyper close that connection.
                connection = None;
                Outcome::Timeout
            }
        };
        log.records.push(Record::new(
            start.duration_since(shared.started),
            start.elapsed(),
            outcome,
            phase,
        ));
        if matches!(outcome, Outcome::ConnectRefused | Outcome::ConnectFailed) {
            tokio::time::sleep(CONNECT_FAILURE_PAUSE).await;
        }
    }
    log
}

/// One request on the worker's connection, opening one first when there is none (or it was closed while idle).
async fn exchange(
    shared: &Shared,
    connection: &mut Option<Sender>,
    counts: &mut ConnectionCounts,
) -> Outcome {
    if let Some(sender) = connection.as_mut() {
        if sender.ready().await.is_err() {
            *connection = None;
            counts.closed_idle += 1;
        }
    }
    let reused = connection.is_some();
    let sender = match connection {
        Some(sender) => sender,
        None => match connect(&shared.addr).await {
            Ok(sender) => {
                counts.opened += 1;
                connection.insert(sender)
            }
            Err(outcome) => return outcome,
        },
    };
    let response = match sender.send_request(shared.request_head.request()).await {
        Ok(response) => response,
        Err(error) => {
            *connection = None;
            return if error.is_parse() || error.is_parse_status() || error.is_parse_too_large() {
                Outcome::BrokenResponse
            } else if reused {
                Outcome::StaleKeepAlive
            } else {
                Outcome::ClosedBeforeResponse
            };
        }
    };
    let keep_alive = keeps_alive(&response);
    let status = response.status();
    if response.into_body().collect().await.is_err() {
        *connection = None;
        return Outcome::BrokenResponse;
    }
    if !keep_alive {
        *connection = None;
        counts.told_to_close += 1;
    }
    Outcome::from_status(status)
}

async fn connect(addr: &str) -> Result<Sender, Outcome> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|error| match error.kind() {
            io::ErrorKind::ConnectionRefused => Outcome::ConnectRefused,
            _ => Outcome::ConnectFailed,
        })?;
    // Requests are small and latency is what is measured.
    let _ = stream.set_nodelay(true);
    let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Outcome::ConnectFailed)?;
    // The driver ends when the connection closes; its errors reach the request that was waiting on it.
    tokio::spawn(async move {
        let _ = driver.await;
    });
    Ok(sender)
}

/// Whether the server lets the connection be reused: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
/// `Connection: keep-alive`.
fn keeps_alive<B>(response: &Response<B>) -> bool {
    let has_token = |token: &str| {
        response
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    };
    match response.version() {
        Version::HTTP_10 => has_token("keep-alive"),
        _ => !has_token("close"),
    }
}

//! Shared by the health listener's integration tests: the listener on its own thread and runtime (as in the
//! supervisor), a PostgreSQL TCP proxy that can delay answers and counts queries, a child process and a child
//! HTTP endpoint.
#![allow(dead_code)]

pub mod prometheus;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use testkit::server::{Acceptor, Answer, HttpServer};
use testkit::{Endpoint, Launch, Response, Running};

use supervisor::health::{ChildCheck, Details, HealthConfig};
use supervisor::state::{ChildInfo, State};

pub const SECOND: Duration = Duration::from_secs(1);

/// Log lines written while the listener ran.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The health listener on a thread of its own with a current-thread runtime, as the supervisor runs it.
pub struct Harness {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    pub logs: Logs,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

pub fn config(child_check: ChildCheck, details: Details) -> HealthConfig {
    HealthConfig {
        addr: (Ipv4Addr::LOCALHOST, 0).into(),
        child_check,
        details,
    }
}

impl Harness {
    pub fn start(config: HealthConfig, database_url: &str) -> Harness {
        Harness::try_start(config, database_url).expect("starting the health listener")
    }

    pub fn try_start(config: HealthConfig, database_url: &str) -> Result<Harness, String> {
        let db = common::db::DbConfig::parse(database_url).expect("a valid database URL");
        let state = Arc::new(State::new());
        let logs = Logs::default();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn({
            let state = state.clone();
            let sink = logs.0.clone();
            move || {
                let subscriber = tracing_subscriber::fmt()
                    .with_ansi(false)
                    .with_max_level(tracing::Level::DEBUG)
                    .with_writer(move || LogWriter(sink.clone()))
                    .finish();
                let _logging = tracing::subscriber::set_default(subscriber);
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let started = supervisor::health::launch(config, db, state).await;
                    let failed = started.is_err();
                    let _ = addr_tx.send(started.map_err(|e| e.to_string()));
                    if !failed {
                        let _ = stop_rx.await;
                    }
                });
            }
        });
        let addr = addr_rx
            .recv_timeout(10 * SECOND)
            .expect("the listener thread reports")?;
        Ok(Harness {
            addr,
            state,
            logs,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The listener, as the tests call it.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.addr).with_timeout(2 * SECOND)
    }

    /// GET `target`; panics when nothing answers.
    pub fn get(&self, target: &str) -> Response {
        self.endpoint().get(target, &[])
    }

    /// Polls `target` until `accept` holds, at most `within`; returns the response and how long it took.
    pub fn wait_for(
        &self,
        target: &str,
        within: Duration,
        accept: impl Fn(&Response) -> bool,
    ) -> (Response, Duration) {
        self.endpoint().wait_until(target, within, accept)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A local address that is not loopback, if the machine has one (the source address of a route out).
pub fn non_loopback_ipv4() -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // connect() on UDP only picks a route and source address; nothing is sent.
    for target in ["192.0.2.1:9", "10.255.255.1:9", "203.0.113.1:9"] {
        if socket.connect(target).is_ok() {
            if let Ok(SocketAddr::V4(local)) = socket.local_addr() {
                if !local.ip().is_loopback() && !local.ip().is_unspecified() {
                    return Some(*local.ip());
                }
            }
        }
    }
    None
}

/// A stand-in child: a real process, killed and reaped on drop.
pub struct ChildProcess(Running);

impl ChildProcess {
    pub fn sleep() -> ChildProcess {
        ChildProcess(Launch::new("sleep").arg("600").spawn())
    }

    pub fn pid(&self) -> i32 {
        self.0.pid()
    }

    pub fn info(&self) -> ChildInfo {
        ChildInfo {
            pid: self.pid(),
            started: Instant::now(),
            started_at: SystemTime::now(),
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        self.0.signal(signal);
    }

    /// Kills and reaps it: its pid no longer exists afterwards.
    pub fn kill(&mut self) {
        self.0
            .stop_with(nix::sys::signal::Signal::SIGKILL, 5 * SECOND);
    }
}

/// How a [`ChildEndpoint`] answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Ok = 0,
    Unavailable = 1,
    Hang = 2,
}

/// An HTTP endpoint standing in for the child's `/livez`: 200, 503, or accepting and never answering.
pub struct ChildEndpoint {
    server: HttpServer,
    mode: Arc<AtomicU8>,
}

impl ChildEndpoint {
    pub fn start() -> ChildEndpoint {
        let mode = Arc::new(AtomicU8::new(Mode::Ok as u8));
        let server = HttpServer::start({
            let mode = mode.clone();
            move |_| match mode.load(Ordering::SeqCst) {
                0 => Answer::status(200, "ok"),
                1 => Answer::status(503, "ok"),
                _ => Answer::never(),
            }
        });
        ChildEndpoint { server, mode }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

/// A TCP proxy in front of PostgreSQL that can delay the server's answers and counts connections and simple
/// queries (protocol `Q` messages) sent by the client.
pub struct Proxy {
    acceptor: Acceptor,
    delay_ms: Arc<AtomicU64>,
    connections: Arc<AtomicUsize>,
    queries: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let delay_ms = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let queries = Arc::new(AtomicUsize::new(0));
        let acceptor = Acceptor::start({
            let delay_ms = delay_ms.clone();
            let connections = connections.clone();
            let queries = queries.clone();
            move |client| {
                let Ok(server) = TcpStream::connect_timeout(&upstream, SECOND) else {
                    return;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let (client_read, server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let queries = queries.clone();
                std::thread::spawn(move || forward_counting(client_read, server_write, &queries));
                let delay_ms = delay_ms.clone();
                std::thread::spawn(move || forward_delayed(server, client, &delay_ms));
            }
        });
        Proxy {
            acceptor,
            delay_ms,
            connections,
            queries,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr()
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

fn forward_delayed(mut from: TcpStream, mut to: TcpStream, delay_ms: &AtomicU64) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            // The proxy's whole point: hold the server's answer back.
            std::thread::sleep(Duration::from_millis(delay));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Forwards the client's bytes, counting `Q` messages (the first message is the untagged startup packet).
fn forward_counting(mut from: TcpStream, mut to: TcpStream, queries: &AtomicUsize) {
    let mut buf = [0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut startup_seen = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        loop {
            let header = if startup_seen { 5 } else { 4 };
            if pending.len() < header {
                break;
            }
            let len_at = header - 4;
            let len = u32::from_be_bytes(pending[len_at..len_at + 4].try_into().unwrap()) as usize;
            let total = len_at + len;
            if pending.len() < total {
                break;
            }
            if startup_seen && pending[0] == b'Q' {
                queries.fetch_add(1, Ordering::SeqCst);
            }
            startup_seen = true;
            pending.drain(..total);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// `postgres://USER:PASSWORD@ADDR/DB?sslmode=disable`
pub fn url_via(addr: SocketAddr, user: &str, password: &str, db: &str) -> String {
    format!("postgres://{user}:{password}@{addr}/{db}?sslmode=disable")
}

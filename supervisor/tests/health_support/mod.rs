//! Shared by the health listener's integration tests: the listener on its own thread and runtime (as in the
//! supervisor), a plain HTTP/1.1 client, a PostgreSQL TCP proxy that can delay answers and counts queries,
//! a listener that accepts and never answers, a child process and a child HTTP endpoint.
#![allow(dead_code)]

pub mod flood;
pub mod prometheus;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

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

    pub fn get(&self, target: &str) -> Reply {
        call(self.addr, "GET", target)
    }

    /// Polls `target` until `accept` holds, at most `within`; returns the reply and how long it took.
    pub fn wait_for(
        &self,
        target: &str,
        within: Duration,
        accept: impl Fn(&Reply) -> bool,
    ) -> (Reply, Duration) {
        let began = Instant::now();
        loop {
            let reply = self.get(target);
            if accept(&reply) {
                return (reply, began.elapsed());
            }
            assert!(
                began.elapsed() < within,
                "GET {target}: no acceptable answer within {within:?}; last: {reply:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
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

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub fn call(addr: SocketAddr, method: &str, target: &str) -> Reply {
    call_with(addr, method, target, &[])
}

/// [`call`] with extra request headers.
pub fn call_with(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect_timeout(&addr, 2 * SECOND).expect("connecting");
    stream.set_read_timeout(Some(2 * SECOND)).unwrap();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: health\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reading the answer");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
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
pub struct ChildProcess {
    pub child: Child,
}

impl ChildProcess {
    pub fn sleep() -> ChildProcess {
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning sleep");
        ChildProcess { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn info(&self) -> ChildInfo {
        ChildInfo {
            pid: self.pid(),
            started: Instant::now(),
            started_at: SystemTime::now(),
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("kill");
    }

    /// Kills and reaps it: its pid no longer exists afterwards.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Background threads that accept on a listener until dropped.
struct Acceptor {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    fn start(mut on_connection: impl FnMut(TcpStream) + Send + 'static) -> Acceptor {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        on_connection(stream);
                    }
                }
            }
        });
        Acceptor {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, SECOND);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections and never answers (they stay open until it is dropped).
pub struct Blackhole {
    acceptor: Acceptor,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let held = Arc::new(Mutex::new(Vec::new()));
        let acceptor = Acceptor::start({
            let held = held.clone();
            move |stream| held.lock().unwrap().push(stream)
        });
        Blackhole { acceptor, held }
    }

    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }

    pub fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
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
    acceptor: Acceptor,
    mode: Arc<AtomicU8>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl ChildEndpoint {
    pub fn start() -> ChildEndpoint {
        let mode = Arc::new(AtomicU8::new(Mode::Ok as u8));
        let held = Arc::new(Mutex::new(Vec::new()));
        let acceptor = Acceptor::start({
            let mode = mode.clone();
            let held = held.clone();
            move |mut stream| {
                let status = match mode.load(Ordering::SeqCst) {
                    0 => "200 OK",
                    1 => "503 Service Unavailable",
                    _ => {
                        held.lock().unwrap().push(stream);
                        return;
                    }
                };
                stream.set_read_timeout(Some(SECOND)).unwrap();
                let mut buf = [0u8; 1024];
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        ChildEndpoint {
            acceptor,
            mode,
            held,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
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
        self.acceptor.addr
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

//! Shared by the probe's integration tests: running the real `probe` binary with a bound on its run time,
//! a real HTTP server (hyper) with scripted answers, and raw TCP servers for misbehaving peers.

#![allow(dead_code)]

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// How long any single probe run may take before the test fails (the probe's own deadline is 2 s).
pub const RUN_LIMIT: Duration = Duration::from_secs(15);

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// The probe binary with an empty environment plus `env`, so nothing from the test runner leaks in.
pub fn probe_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_probe"));
    command.args(args).env_clear().envs(env.iter().copied());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the probe to completion (failing the test if it outlives [`RUN_LIMIT`]).
pub fn run_probe(args: &[&str], env: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let child = probe_command(args, env).spawn().expect("spawning probe");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(RUN_LIMIT) {
        Ok(output) => output.expect("waiting for probe"),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("probe {args:?} still running after {RUN_LIMIT:?}");
        }
    };
    let elapsed = started.elapsed();
    Run {
        code: output
            .status
            .code()
            .unwrap_or_else(|| panic!("probe died of a signal: {:?}", output.status)),
        stdout: String::from_utf8(output.stdout).expect("probe's stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("probe's stderr is UTF-8"),
        elapsed,
    }
}

/// A scripted answer of the test HTTP server.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            content_type: Some(content_type),
            body: body.into(),
        }
    }

    pub fn health(status: u16, body: &str) -> Answer {
        Answer::new(status, "application/health+json", body)
    }
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub host: Option<String>,
    pub user_agent: Option<String>,
}

type Script = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

/// A hyper HTTP/1.1 server on 127.0.0.1 whose answer for a request target is chosen by `script`.
pub struct HttpServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpServer {
    pub fn start(script: impl Fn(&str) -> Answer + Send + Sync + 'static) -> HttpServer {
        let script: Script = Arc::new(script);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("building the test server runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("binding the test server");
        let addr = listener.local_addr().expect("test server address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_server = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let script = script.clone();
                let seen = seen_by_server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let target = request
                            .uri()
                            .path_and_query()
                            .map_or_else(String::new, |pq| pq.to_string());
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        seen.lock().unwrap().push(Seen {
                            method: request.method().to_string(),
                            target: request.uri().to_string(),
                            host: header("host"),
                            user_agent: header("user-agent"),
                        });
                        let answer = script(&target);
                        let mut response = Response::builder().status(answer.status);
                        if let Some(content_type) = answer.content_type {
                            response = response.header("content-type", content_type);
                        }
                        let response = response
                            .body(Full::new(Bytes::from(answer.body)))
                            .expect("building the test answer");
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpServer {
            addr,
            seen,
            runtime: Some(runtime),
        }
    }

    /// Always gives the same answer.
    pub fn answering(answer: Answer) -> HttpServer {
        HttpServer::start(move |_| answer.clone())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A raw TCP server that hands each accepted connection to `serve` on its own thread.
pub fn raw_server(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a raw server");
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// Reads the request head so the peer's write completes, like a real server would.
pub fn read_request_head(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
}

/// Lines of a running child's stdout, delivered through a channel as they are printed.
pub fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the child to exit within `limit`, killing it and failing the test otherwise.
pub fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            return status
                .code()
                .unwrap_or_else(|| panic!("child died of a signal: {status:?}"));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("child still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn fixture(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    std::fs::read_to_string(format!("{path}{name}"))
        .unwrap_or_else(|e| panic!("reading fixture {name}: {e}"))
}

//! Servers that stand in for the peers of the code under test: a scripted HTTP server (hyper), raw TCP servers for
//! peers that misbehave byte by byte, and a listener that accepts and never answers. Each stops when dropped.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Accepts connections on 127.0.0.1 and hands each to a handler on the accepting thread, until dropped.
pub struct Acceptor {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    pub fn start(mut on_connection: impl FnMut(TcpStream) + Send + 'static) -> Acceptor {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("the listener's address");
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

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A raw TCP server that serves each connection on a thread of its own, for peers that misbehave.
pub struct RawServer {
    acceptor: Acceptor,
}

impl RawServer {
    pub fn start(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> RawServer {
        let serve = Arc::new(serve);
        let acceptor = Acceptor::start(move |stream| {
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        });
        RawServer { acceptor }
    }

    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }
}

/// Reads a request head off `stream` (at most 5 s), so the peer's write completes as with a real server.
pub fn read_request_head(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("setting a read timeout");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line == "\r\n" {
            break;
        }
        line.clear();
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

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// A scripted answer of [`HttpServer`].
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    /// Read the request and never answer.
    pub never: bool,
}

impl Answer {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            content_type: Some(content_type),
            body: body.into(),
            never: false,
        }
    }

    /// `application/health+json`
    pub fn health(status: u16, body: &str) -> Answer {
        Answer::new(status, "application/health+json", body)
    }

    /// A status and a body, without a content type.
    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            content_type: None,
            ..Answer::new(status, "", body)
        }
    }

    /// No answer at all: the connection stays open until the server is dropped.
    pub fn never() -> Answer {
        Answer {
            never: true,
            ..Answer::status(200, "")
        }
    }
}

/// What [`HttpServer`] saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub host: Option<String>,
    pub user_agent: Option<String>,
}

type Script = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

/// A hyper HTTP/1.1 server on 127.0.0.1 whose answer for a request target (path and query) is chosen by a script.
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
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
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
                        async move {
                            if answer.never {
                                std::future::pending::<()>().await;
                            }
                            let mut response = hyper::Response::builder().status(answer.status);
                            if let Some(content_type) = answer.content_type {
                                response = response.header("content-type", content_type);
                            }
                            let response = response
                                .body(Full::new(Bytes::from(answer.body)))
                                .expect("building the test answer");
                            Ok::<_, Infallible>(response)
                        }
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

//! Hostile clients: many connections that hold a slot each of a server that limits its connections, on a runtime
//! of their own.
//! Each client reconnects as soon as it notices its connection was closed, as an attacker keeping its slots would.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How a crowd of clients holds its connections.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// A keep-alive request every `every` on the same connection, answers read (renews the slot).
    KeepAlive { every: Duration },
    /// Headers that never end: one more header line every `every` (slowloris).
    Slowloris { every: Duration },
    /// Connects, sends nothing, reconnects the moment the connection is closed.
    Silent,
}

/// `count` clients behaving alike, connecting from `source` (any 127.0.0.0/8 address works on loopback).
#[derive(Clone, Copy, Debug)]
pub struct Crowd {
    pub behaviour: Behaviour,
    pub count: usize,
    pub source: IpAddr,
}

/// What the clients did so far.
#[derive(Default)]
pub struct Tally {
    /// Connections opened.
    pub connects: AtomicUsize,
    /// Connections currently open as the clients see them.
    pub open: AtomicUsize,
    /// Complete answers read by keep-alive clients.
    pub answers: AtomicUsize,
}

/// The running clients; dropping it closes every connection.
pub struct Flood {
    pub tally: Arc<Tally>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Flood {
    pub fn start(target: SocketAddr, crowds: &[Crowd]) -> Flood {
        let tally = Arc::new(Tally::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let crowds = crowds.to_vec();
        let thread = std::thread::spawn({
            let tally = tally.clone();
            move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the flood");
                runtime.block_on(async move {
                    for crowd in crowds {
                        for _ in 0..crowd.count {
                            tokio::spawn(client(target, crowd, tally.clone()));
                        }
                    }
                    let _ = stop_rx.await;
                });
                // Dropping the runtime drops every client task and with it its socket.
            }
        });
        Flood {
            tally,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn connects(&self) -> usize {
        self.tally.connects.load(Ordering::SeqCst)
    }

    pub fn answers(&self) -> usize {
        self.tally.answers.load(Ordering::SeqCst)
    }

    pub fn open(&self) -> usize {
        self.tally.open.load(Ordering::SeqCst)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Counts a connection as open while it lives.
struct Held(Arc<Tally>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connect(target: SocketAddr, source: IpAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

async fn client(target: SocketAddr, crowd: Crowd, tally: Arc<Tally>) {
    loop {
        let Ok(stream) = connect(target, crowd.source).await else {
            // Out of ports or refused: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tally.connects.fetch_add(1, Ordering::SeqCst);
        tally.open.fetch_add(1, Ordering::SeqCst);
        let held = Held(tally.clone());
        match crowd.behaviour {
            Behaviour::KeepAlive { every } => keep_alive(stream, every, &tally).await,
            Behaviour::Slowloris { every } => slowloris(stream, every).await,
            Behaviour::Silent => silent(stream).await,
        }
        drop(held);
    }
}

/// Requests on one connection until it fails.
async fn keep_alive(mut stream: TcpStream, every: Duration, tally: &Tally) {
    let mut buf = vec![0u8; 4096];
    loop {
        if stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: health\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        // The answer is small: its head and body arrive together; read until the body is complete.
        let mut got = Vec::new();
        let complete = loop {
            let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break false,
            }
            if super::is_complete(&got) {
                break true;
            }
        };
        if !complete {
            return;
        }
        tally.answers.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(every).await;
    }
}

/// Starts a request and never finishes its headers.
async fn slowloris(mut stream: TcpStream, every: Duration) {
    if stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: health\r\n")
        .await
        .is_err()
    {
        return;
    }
    let (mut read, mut write) = stream.split();
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            // The listener closing the connection (or answering, which it must not).
            _ = read.read(&mut buf) => return,
            _ = tokio::time::sleep(every) => {
                if write.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Holds the connection until the listener closes it.
async fn silent(mut stream: TcpStream) {
    let mut buf = [0u8; 256];
    let _ = stream.read(&mut buf).await;
}

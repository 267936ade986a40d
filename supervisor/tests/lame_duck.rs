//! The lame duck, with the supervisor as PID 1 running the real app: from the first SIGTERM until the listener
//! closes, readiness fails and every API response carries `Connection: close`, so connected keep-alive clients
//! leave; new connections are still served until DRAIN_DELAY ends. Needs `cargo build -p app`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::{shared_cluster, Launch, Running};
use testkit::PgCluster;

const DRAIN_DELAY: Duration = Duration::from_secs(3);

/// One HTTP/1.1 response read off a keep-alive connection.
struct Answer {
    status: u16,
    connection_close: bool,
}

/// A keep-alive client connection to the app.
struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .expect("connecting to the app");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        KeepAlive {
            reader: BufReader::new(stream),
        }
    }

    /// Sends `GET /livez` and reads the whole response.
    fn get_livez(&mut self) -> std::io::Result<Answer> {
        self.get("/livez")
    }

    /// Sends `GET path` and reads the whole response (the body is framed by Content-Length).
    fn get(&mut self, path: &str) -> std::io::Result<Answer> {
        write!(
            self.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: app\r\n\r\n"
        )?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not a status line: {line:?}")))?;
        let (mut length, mut connection_close) = (0usize, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            let (name, value) = (name.to_ascii_lowercase(), value.trim().to_ascii_lowercase());
            match name.as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "connection" => connection_close = value == "close",
                _ => {}
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body)?;
        Ok(Answer {
            status,
            connection_close,
        })
    }

    /// Whether the server closed the connection (end of file before any byte).
    fn closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}

/// The supervisor running the app, its API address, and the cluster, which must outlive them.
struct Started {
    running: Running,
    api: SocketAddr,
    _cluster: Arc<PgCluster>,
}

fn start_app(pid1: bool) -> Started {
    let cluster = shared_cluster();
    let db = cluster.create_database();
    let port = testkit::free_port();
    testkit::bin_path("app");
    let mut launch = Launch::bare();
    launch
        .env("DATABASE_URL", &cluster.url(&db))
        .env("PORT", &port.to_string())
        .env("DRAIN_DELAY", &format!("{}s", DRAIN_DELAY.as_secs()))
        .unset("CHILD_CHECK");
    if pid1 {
        launch.pid1();
    }
    let running = launch.spawn();
    running.wait_status("/readyz", 200, Duration::from_secs(30));
    Started {
        running,
        api: SocketAddr::from(([127, 0, 0, 1], port)),
        _cluster: cluster,
    }
}

/// The notice reaches the app through a pipe: waits (bounded) for its first effect on fresh connections.
fn wait_until_told_to_leave(api: SocketAddr) {
    testkit::wait_for(
        "responses with Connection: close",
        Duration::from_secs(1),
        || {
            let answer = KeepAlive::connect(api).get_livez().ok()?;
            (answer.status == 200 && answer.connection_close).then_some(())
        },
    );
}

fn keep_alive_clients_are_told_to_leave(pid1: bool) {
    // The cluster binding keeps it alive until the test ends.
    let Started {
        mut running,
        api,
        _cluster,
    } = start_app(pid1);
    let mut client = KeepAlive::connect(api);
    let before = client.get_livez().expect("a request before the stop");
    assert_eq!(before.status, 200);
    assert!(
        !before.connection_close,
        "no Connection: close before the drain"
    );

    let stopped = Instant::now();
    running.signal(Signal::SIGTERM);
    running.wait_status("/readyz", 503, Duration::from_secs(1));
    wait_until_told_to_leave(api);
    assert!(
        stopped.elapsed() < DRAIN_DELAY,
        "the lame duck began only after {:?}",
        stopped.elapsed()
    );

    // The client connected before the stop is answered, told to leave, and the server closes its side.
    let during = client
        .get_livez()
        .expect("a request on the kept-alive connection during the drain");
    assert_eq!(during.status, 200);
    assert!(
        during.connection_close,
        "Connection: close during the drain"
    );
    assert!(
        client.closed_by_server(),
        "the server closes the connection after that answer"
    );

    // Every API response, errors included, not only the health route.
    for (path, status) in [
        ("/api/openapi.json", 200),
        ("/api/entries", 401),
        ("/nowhere", 404),
    ] {
        let answer = KeepAlive::connect(api).get(path).expect(path);
        assert_eq!(answer.status, status, "{path}");
        assert!(answer.connection_close, "Connection: close on {path}");
    }

    // New connections are still accepted (a balancer may not have noticed yet) until DRAIN_DELAY ends.
    let mut late = KeepAlive::connect(api);
    let answer = late.get_livez().expect("a new connection during the drain");
    assert_eq!(answer.status, 200);
    assert!(answer.connection_close);
    assert!(stopped.elapsed() < DRAIN_DELAY, "checked within the drain");

    let done = running.wait_exit(DRAIN_DELAY + Duration::from_secs(8));
    done.assert_code(0);
    assert!(
        done.at - stopped >= DRAIN_DELAY,
        "the app stopped {:?} after SIGTERM, before DRAIN_DELAY",
        done.at - stopped
    );
    assert!(
        TcpStream::connect_timeout(&api, Duration::from_secs(1)).is_err(),
        "the listener is closed"
    );
    assert!(done.output().contains("drain begun"), "{}", done.output());
}

#[test]
fn keep_alive_clients_are_told_to_leave_during_the_drain() {
    keep_alive_clients_are_told_to_leave(false);
}

#[test]
fn as_pid_1_keep_alive_clients_are_told_to_leave_during_the_drain() {
    common::require_unshare();
    keep_alive_clients_are_told_to_leave(true);
}

/// A second SIGTERM cuts the drain short; the lame duck has begun with the first.
#[test]
fn as_pid_1_a_second_sigterm_ends_the_drain_at_once() {
    common::require_unshare();
    let Started {
        mut running,
        api,
        _cluster,
    } = start_app(true);
    let stopped = Instant::now();
    running.signal(Signal::SIGTERM);
    running.wait_status("/readyz", 503, Duration::from_secs(1));
    wait_until_told_to_leave(api);
    running.signal(Signal::SIGTERM);
    let done = running.wait_exit(Duration::from_secs(8));
    done.assert_code(0);
    assert!(
        done.at - stopped < DRAIN_DELAY,
        "the second SIGTERM did not cut the drain short ({:?})",
        done.at - stopped
    );
}

//! The lame duck, with the supervisor as PID 1 running the real app: from the first SIGTERM until the listener
//! closes, readiness fails and every API response carries `Connection: close`, so connected keep-alive clients
//! leave; new connections are still served until DRAIN_DELAY ends. Needs `cargo build -p app`.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use testkit::http::Connection;
use testkit::{Database, Launch, Running};

const DRAIN_DELAY: Duration = Duration::from_secs(3);

/// The supervisor running the app, ready, and its database, which must outlive it.
fn start_app(pid1: bool) -> (Running, Database) {
    let db = Database::shared();
    let running = Launch::supervisor_app(&db.url())
        .env("DRAIN_DELAY", &format!("{}s", DRAIN_DELAY.as_secs()))
        .as_pid1(pid1)
        .spawn();
    // Through the process, so that a supervisor that never gets ready is shown with its log.
    let health = running.health();
    running.wait_for("/readyz to answer 200", Duration::from_secs(30), || {
        (health.status("/readyz") == Some(200)).then_some(())
    });
    (running, db)
}

fn connect(api: SocketAddr) -> Connection {
    Connection::open(api).expect("connecting to the app")
}

/// SIGTERM: readiness fails at once, and the notice reaches the app through a pipe; waits (bounded) for its first
/// effect on fresh connections.
fn stop_and_wait_until_told_to_leave(running: &Running) {
    running.signal(Signal::SIGTERM);
    running
        .health()
        .wait_status("/readyz", 503, Duration::from_secs(1));
    let api = running.api().addr();
    testkit::wait_for(
        "responses with Connection: close",
        Duration::from_secs(1),
        || {
            let answer = connect(api).get("/livez").ok()?;
            (answer.status == 200 && answer.connection_close()).then_some(())
        },
    );
}

fn keep_alive_clients_are_told_to_leave(pid1: bool) {
    // The database binding keeps it alive until the test ends.
    let (mut running, _db) = start_app(pid1);
    let api = running.api().addr();
    let mut client = connect(api);
    let before = client.get("/livez").expect("a request before the stop");
    assert_eq!(before.status, 200);
    assert!(
        !before.connection_close(),
        "no Connection: close before the drain"
    );

    let stopped = Instant::now();
    stop_and_wait_until_told_to_leave(&running);
    assert!(
        stopped.elapsed() < DRAIN_DELAY,
        "the lame duck began only after {:?}",
        stopped.elapsed()
    );

    // The client connected before the stop is answered, told to leave, and the server closes its side.
    let during = client
        .get("/livez")
        .expect("a request on the kept-alive connection during the drain");
    assert_eq!(during.status, 200);
    assert!(
        during.connection_close(),
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
        let answer = connect(api).get(path).expect(path);
        assert_eq!(answer.status, status, "{path}");
        assert!(answer.connection_close(), "Connection: close on {path}");
    }

    // New connections are still accepted (a balancer may not have noticed yet) until DRAIN_DELAY ends.
    let mut late = connect(api);
    let answer = late
        .get("/livez")
        .expect("a new connection during the drain");
    assert_eq!(answer.status, 200);
    assert!(answer.connection_close());
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
    keep_alive_clients_are_told_to_leave(true);
}

/// A second SIGTERM cuts the drain short; the lame duck has begun with the first.
#[test]
fn as_pid_1_a_second_sigterm_ends_the_drain_at_once() {
    let (mut running, _db) = start_app(true);
    let stopped = Instant::now();
    stop_and_wait_until_told_to_leave(&running);
    let (done, _) = running.stop_with(Signal::SIGTERM, Duration::from_secs(8));
    done.assert_code(0);
    assert!(
        done.at - stopped < DRAIN_DELAY,
        "the second SIGTERM did not cut the drain short ({:?})",
        done.at - stopped
    );
}

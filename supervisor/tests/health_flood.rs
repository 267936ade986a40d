//! The health listener under clients that hold connections: idle keep-alive connections renewed every few
//! seconds, headers that never end (slowloris) and silent connections, several times more than the listener
//! keeps open. A fresh `probe` and fresh requests must still get their answer within a second, and the
//! supervisor's file descriptors stay bounded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use testkit::http::flood::{Behaviour, Crowd, Flood};
use testkit::{Database, Launch, Request};

/// Connections the listener keeps open at most (supervisor/src/health/http.rs).
const SLOTS: usize = 256;
/// The bound every fresh request must meet.
const DEADLINE: Duration = Duration::from_secs(1);
/// How long the probes run against the flood: longer than the listener's 5 s header timeout and than the
/// keep-alive clients' period, so that every way a slot could be freed or kept has happened meanwhile.
const UNDER_FLOOD: Duration = Duration::from_secs(8);

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or_else(|err| panic!("reading /proc/{pid}/fd: {err}"))
}

/// Open files the test process may have: the flood is sized below it (CI machines may allow only 1024).
fn open_file_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("reading /proc/self/limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The source address of the kubelet-like caller: none of the crowds uses it.
const KUBELET: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));

/// One fresh connection from `source`, `GET path`, read to the end: the status and how long it took.
fn timed_get(source: IpAddr, addr: SocketAddr, path: &str) -> (Option<u16>, Duration) {
    let began = Instant::now();
    let response = Request::get(path)
        .from(source)
        .timeout(2 * DEADLINE)
        .send(addr);
    (response.ok().map(|r| r.status), began.elapsed())
}

/// The real `probe` (Docker's HEALTHCHECK) with a 1 s deadline of its own: its exit status and wall time.
fn timed_probe(addr: SocketAddr) -> (Option<i32>, Duration, String) {
    let done = Launch::new(testkit::bin_path("probe"))
        .args(&["--timeout", "1s"])
        .unset("PATH")
        .env("HEALTH_ADDR", &addr.to_string())
        .run(10 * DEADLINE);
    (Some(done.code), done.elapsed, done.output())
}

#[test]
fn held_connections_never_keep_a_fresh_probe_waiting() {
    let db = Database::shared();
    let mut supervisor = Launch::supervisor_child(&db.url(), &["sleep", "600"]).spawn();
    let health = supervisor.health();
    // Ready: migrations ran, the child runs and the database check passed.
    health.wait_status("/readyz", 200, Duration::from_secs(30));
    let pid = supervisor.pid();
    let target = health.addr();
    let idle_fds = fd_count(pid);

    // Several times more clients than slots; the keep-alive ones share the probe's address.
    let per_crowd = (open_file_limit().saturating_sub(200) / 3).min(400);
    assert!(
        per_crowd >= SLOTS,
        "this test needs at least {} open files",
        3 * SLOTS + 200
    );
    let flood = Flood::start(
        target,
        &[
            Crowd {
                behaviour: Behaviour::KeepAlive {
                    every: Duration::from_secs(3),
                },
                count: per_crowd,
                source: loopback(1),
            },
            Crowd {
                behaviour: Behaviour::Slowloris {
                    every: Duration::from_secs(1),
                },
                count: per_crowd,
                source: loopback(2),
            },
            Crowd {
                behaviour: Behaviour::Silent,
                count: per_crowd,
                source: loopback(3),
            },
        ],
    );
    // Every slot taken: far more connections made than kept, and the supervisor holding about as many as
    // it keeps (its idle count may have included a passing connection or two).
    testkit::wait_for(
        "the flood to take every slot",
        Duration::from_secs(20),
        || (flood.connects() > 2 * SLOTS && fd_count(pid) >= idle_fds + SLOTS - 8).then_some(()),
    );
    let answers_before = flood.answers();

    let mut slow = Vec::new();
    let mut times = Vec::new();
    let mut most_fds = 0;
    let mut probes = 0;
    let mut requests = 0;
    let began = Instant::now();
    while began.elapsed() < UNDER_FLOOD {
        let (code, took, text) = timed_probe(target);
        probes += 1;
        times.push(took);
        if code != Some(0) || took >= DEADLINE {
            slow.push(format!("probe: exit {code:?} after {took:?}: {text}"));
        }
        // From the probe's own address, and as a kubelet calls: from an address of its own (no crowd's), a
        // fresh connection per check.
        for source in [loopback(1), KUBELET] {
            for path in ["/livez", "/readyz"] {
                let (status, took) = timed_get(source, target, path);
                requests += 1;
                times.push(took);
                if status != Some(200) || took >= DEADLINE {
                    slow.push(format!(
                        "GET {path} from {source}: {status:?} after {took:?}"
                    ));
                }
            }
        }
        most_fds = most_fds.max(fd_count(pid));
    }

    let answers = flood.answers() - answers_before;
    let connects = flood.connects();
    drop(flood);
    assert!(
        slow.is_empty(),
        "{} of {probes} probes and {requests} requests missed {DEADLINE:?} ({connects} connections made):\n{}",
        slow.len(),
        slow.join("\n")
    );
    // The flood was real: keep-alive clients kept being served and far more connections were made than kept.
    assert!(answers > 0, "the keep-alive clients got no answers");
    assert!(connects > 3 * SLOTS, "only {connects} connections made");
    // Bounded: the slots, plus at most a few connections being closed at any moment.
    assert!(
        most_fds <= idle_fds + SLOTS + 8,
        "the supervisor held {most_fds} file descriptors (idle {idle_fds}, {SLOTS} slots)"
    );
    times.sort();
    eprintln!(
        "{probes} probes and {requests} requests under a flood of {} clients ({connects} connections, \
         {answers} keep-alive answers): median {:?}, slowest {:?}; at most {most_fds} fds (idle {idle_fds})",
        3 * per_crowd,
        times[times.len() / 2],
        times[times.len() - 1],
    );
    // Operators see it: connections closed to make room are counted.
    let metrics = health.try_get("/metrics").expect("/metrics answers").text();
    let evicted: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("supervisor_health_connections_evicted_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no eviction count in\n{metrics}"));
    assert!(evicted > 0.0, "{metrics}");
    supervisor.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(15));
}

//! A flood of clients holding health-listener connections, and how long fresh callers wait meanwhile, for
//! bench/health.sh. The clients are testkit's, as in the integration test (supervisor/tests/health_flood.rs): a
//! third send a keep-alive request every 3 s from 127.0.0.1 (the probe's address), a third never finish their
//! headers (127.0.0.2), a third connect and stay silent (127.0.0.3); each reconnects as soon as it notices
//! its connection closed.
//!
//!   health_flood ADDR PID CLIENTS PROBE SECONDS
//!
//! Times, for SECONDS, the real `probe` (PROBE, with a 5 s deadline) and fresh `GET /livez` connections
//! one after the other, and samples the listener process's (PID) open file descriptors and resident
//! memory. Prints a few lines of figures.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::http::flood::{Behaviour, Crowd, Flood};

const LIMIT: Duration = Duration::from_secs(5);

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

fn rss_kib(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn fresh_get(addr: SocketAddr) -> Option<Duration> {
    let began = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, LIMIT).ok()?;
    stream.set_read_timeout(Some(LIMIT)).ok()?;
    write!(
        stream,
        "GET /livez HTTP/1.1\r\nHost: health\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    raw.starts_with(b"HTTP/1.1 200").then(|| began.elapsed())
}

/// The probe's wall time when it passed; its output is printed to standard error when it did not.
fn probe(bin: &str, addr: SocketAddr) -> Option<Duration> {
    let began = Instant::now();
    let out = Command::new(bin)
        .args(["--timeout", "5s"])
        .env("HEALTH_ADDR", addr.to_string())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let took = began.elapsed();
    if !out.status.success() {
        eprintln!(
            "probe failed after {took:?}: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    Some(took)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// p50, p99 and max of what answered; answers over 1 s and failures (no answer within 5 s) counted apart.
fn report(name: &str, times: &mut [Option<Duration>]) {
    let failed = times.iter().filter(|t| t.is_none()).count();
    let mut ok: Vec<Duration> = times.iter().flatten().copied().collect();
    ok.sort();
    let over = ok.iter().filter(|t| **t >= Duration::from_secs(1)).count();
    let at = |q: f64| {
        ok.get(((ok.len() as f64 - 1.0) * q).round() as usize)
            .map_or("-".to_owned(), |d| ms(*d))
    };
    println!(
        "{name} count={} p50_ms={} p99_ms={} max_ms={} over_1s={over} failed={failed}",
        times.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, pid, clients, probe_bin, seconds] = args.as_slice() else {
        return Err("usage: health_flood ADDR PID CLIENTS PROBE SECONDS".into());
    };
    let addr: SocketAddr = addr.parse()?;
    let pid: u32 = pid.parse()?;
    let clients: usize = clients.parse()?;
    let seconds = Duration::from_secs(seconds.parse()?);
    let idle_fds = fds(pid);
    let idle_rss = rss_kib(pid);
    let source = |last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
    let per_crowd = clients / 3;
    let flood = Flood::start(
        addr,
        &[
            Crowd {
                behaviour: Behaviour::KeepAlive {
                    every: Duration::from_secs(3),
                },
                count: per_crowd,
                source: source(1),
            },
            Crowd {
                behaviour: Behaviour::Slowloris {
                    every: Duration::from_secs(1),
                },
                count: per_crowd,
                source: source(2),
            },
            Crowd {
                behaviour: Behaviour::Silent,
                count: per_crowd,
                source: source(3),
            },
        ],
    );
    // Let every client connect once (bounded), so that whatever slots exist are taken.
    let began = Instant::now();
    while flood.connects() < 3 * per_crowd && began.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let connects_before = flood.connects();
    let (mut probes, mut gets) = (Vec::new(), Vec::new());
    let (mut most_fds, mut most_rss) = (0, 0);
    let began = Instant::now();
    while began.elapsed() < seconds {
        probes.push(probe(probe_bin, addr));
        gets.push(fresh_get(addr));
        most_fds = most_fds.max(fds(pid));
        most_rss = most_rss.max(rss_kib(pid));
    }
    let elapsed = began.elapsed().as_secs_f64();
    println!(
        "clients {}; connections opened during the run: {:.0}/s; keep-alive answers {}; open as the clients see it {}",
        3 * per_crowd,
        (flood.connects() - connects_before) as f64 / elapsed,
        flood.answers(),
        flood.open()
    );
    println!("listener_fds idle={idle_fds} max={most_fds}");
    println!("listener_rss_kib before={idle_rss} max={most_rss}");
    report("probe", &mut probes);
    report("fresh_get", &mut gets);
    Ok(())
}

//! The child checker: is the child's process there and not stopped, and does it answer CHILD_CHECK?
//!
//! One background task checks every [`CHECK_EVERY`] (every [`FIRST_ANSWER_EVERY`] while a new child has not
//! answered yet) with a [`CHECK_DEADLINE`], so a child that stops answering is reported `not responding` within a
//! second; requests only read the latest [`ChildReading`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};
use tokio::net::TcpStream;
use tokio::time::timeout;

use common::health::{CheckName, Reason};

use super::checks::{ChildReading, START_GRACE};
use super::config::ChildCheck;
use super::shared::Shared;

pub const CHECK_EVERY: Duration = Duration::from_millis(250);
/// While a new child, within its start grace, has not answered yet: readiness then follows the child's start
/// closely rather than at the next tick.
pub const FIRST_ANSWER_EVERY: Duration = Duration::from_millis(20);
pub const CHECK_DEADLINE: Duration = Duration::from_millis(500);
/// A failed probe: the word for the answers and the full story for the log.
struct Failure {
    reason: Reason,
    detail: String,
}

impl Failure {
    fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

pub async fn watch(check: ChildCheck, shared: Arc<Shared>) {
    let mut system = System::new();
    let mut last: Option<(i32, Result<(), Reason>)> = None;
    let mut answered: Option<i32> = None;
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        let child = shared.state.child();
        // Measured from the start of a check, as a ticker would, but never catching up on missed ones.
        next = tokio::time::Instant::now()
            + match child {
                Some(child)
                    if answered == Some(child.pid) || child.started.elapsed() >= START_GRACE =>
                {
                    CHECK_EVERY
                }
                _ => FIRST_ANSWER_EVERY,
            };
        let Some(child) = child else {
            continue;
        };
        let began = Instant::now();
        let (process, rss_bytes) = inspect_process(&mut system, child.pid);
        let process_failed = process.is_err();
        let result = match process {
            Ok(()) => probe(&check).await,
            Err(failure) => Err(failure),
        };
        if result.is_ok() {
            answered = Some(child.pid);
        }
        let outcome = result.as_ref().map(|_| ()).map_err(|f| f.reason);
        shared
            .metrics
            .record_check(CheckName::App, outcome.is_ok(), began.elapsed());
        if last != Some((child.pid, outcome)) {
            match &result {
                Ok(()) => tracing::info!(pid = child.pid, "child check passing"),
                Err(f) => tracing::warn!(
                    pid = child.pid,
                    reason = f.reason.as_str(),
                    detail = %f.detail,
                    "child check failing"
                ),
            }
            last = Some((child.pid, outcome));
        }
        shared.set_child_reading(ChildReading {
            pid: child.pid,
            at: Instant::now(),
            time: SystemTime::now(),
            outcome,
            rss_bytes,
            settled: process_failed || answered == Some(child.pid),
        });
    }
}

/// Whether the process exists and is scheduled (a stopped process accepts TCP connections through the
/// kernel's backlog but never answers), and its resident memory.
fn inspect_process(system: &mut System, pid: i32) -> (Result<(), Failure>, Option<u64>) {
    let Ok(raw) = u32::try_from(pid) else {
        return (Err(Failure::new(Reason::Exited, "invalid pid")), None);
    };
    let pid = Pid::from_u32(raw);
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    let Some(process) = system.process(pid) else {
        return (Err(Failure::new(Reason::Exited, "no such process")), None);
    };
    let rss = Some(process.memory());
    match process.status() {
        ProcessStatus::Zombie | ProcessStatus::Dead => (
            Err(Failure::new(Reason::Exited, "process is a zombie")),
            None,
        ),
        ProcessStatus::Stop | ProcessStatus::Tracing => (
            Err(Failure::new(Reason::NotResponding, "process is stopped")),
            rss,
        ),
        _ => (Ok(()), rss),
    }
}

async fn probe(check: &ChildCheck) -> Result<(), Failure> {
    let attempt = async {
        match check {
            ChildCheck::None => Ok(()),
            ChildCheck::Tcp(target) => connect(target).await.map(drop),
            ChildCheck::Http(uri) => get(uri).await,
        }
    };
    match timeout(CHECK_DEADLINE, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Failure::new(
            Reason::NotResponding,
            format!("no answer within {CHECK_DEADLINE:?}"),
        )),
    }
}

async fn connect(target: &str) -> Result<TcpStream, Failure> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target)
        .await
        .map_err(|e| Failure::new(Reason::DnsFailure, format!("resolving {target}: {e}")))?
        .collect();
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some((addr, e)),
        }
    }
    Err(match last_error {
        None => Failure::new(Reason::DnsFailure, format!("{target} has no address")),
        Some((addr, e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Failure::new(
            Reason::ConnectionRefused,
            format!("connecting to {addr}: {e}"),
        ),
        Some((addr, e)) => {
            Failure::new(Reason::NotResponding, format!("connecting to {addr}: {e}"))
        }
    })
}

async fn get(uri: &Uri) -> Result<(), Failure> {
    let authority = uri
        .authority()
        .ok_or_else(|| Failure::new(Reason::NotResponding, "the check URL has no host"))?;
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(80);
    let stream = connect(&format!("{host}:{port}")).await?;
    let failed = |e: hyper::Error| Failure::new(Reason::NotResponding, format!("GET {uri}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::CONNECTION, "close")
        .header(hyper::header::USER_AGENT, "supervisor-health")
        .body(Empty::<Bytes>::new())
        .map_err(|e| Failure::new(Reason::NotResponding, format!("GET {uri}: {e}")))?;
    // The connection is driven here rather than in a task of its own, so that a deadline drops it.
    let response = sender.send_request(request);
    tokio::pin!(connection, response);
    let response = tokio::select! {
        biased;
        response = &mut response => response.map_err(failed)?,
        ended = &mut connection => {
            ended.map_err(failed)?;
            // Closed after answering (`Connection: close`): the answer, if any, is ready now.
            response.await.map_err(failed)?
        }
    };
    if response.status().is_success() {
        Ok(())
    } else {
        Err(Failure::new(
            Reason::NotResponding,
            format!("GET {uri}: status {}", response.status()),
        ))
    }
}

//! The HTTP side: binding, the accept loop, routing, query parameters and who sees details.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE, VARY, X_CONTENT_TYPE_OPTIONS,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use common::health::{CheckName, Status, CONTENT_TYPE as HEALTH_JSON};

use super::checks::Probe;
use super::config::Details;
use super::connections::{Activity, Connections};
use super::document;
use super::exposition::Format;
use super::shared::Shared;

/// Connections kept open at once; a new one beyond them closes a stale one (see [`Connections`]).
const MAX_CONNECTIONS: usize = 256;
/// A client must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer limit per connection (hyper's minimum is 8 KiB): requests here are a line and a few headers,
/// and a flood of half-sent headers must not grow each buffer to hyper's default of ~400 KiB.
const MAX_BUFFER: usize = 16 * 1024;
const TEXT: &str = "text/plain; charset=utf-8";

/// Connections the kernel completes and queues until they are accepted. Connections closed to make room
/// reconnect at once, so the queue must hold a flood's worth of them; a full queue drops new connections,
/// and a dropped SYN costs a client a 1 s retransmission. The kernel caps it at net.core.somaxconn (4096 by
/// default since Linux 5.4); the usual 128 overflows under any flood.
const BACKLOG: u32 = 4096;
/// The kernel hands a connection to accept() only once its first bytes arrived, or after this many seconds
/// (TCP_DEFER_ACCEPT): silent connections wait in the kernel without taking a descriptor or a slot, and a
/// connection is never a candidate for closing before its request could be read. A client that has sent
/// nothing by then meets the header read timeout.
const DEFER_ACCEPT_SECONDS: nix::libc::c_int = 5;

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listen = || {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // As std and tokio do: a restarted supervisor must not wait for old connections' TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        defer_accept(&socket, DEFER_ACCEPT_SECONDS)?;
        socket.listen(BACKLOG)
    };
    listen()
        .map_err(|e: std::io::Error| std::io::Error::new(e.kind(), format!("binding {addr}: {e}")))
}

fn defer_accept(socket: &TcpSocket, seconds: nix::libc::c_int) -> std::io::Result<()> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the call, and setsockopt reads exactly size_of::<c_int>() bytes
    // from a live c_int.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&seconds as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut open = Connections::new(MAX_CONNECTIONS);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %err, "health listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let evicted = open.make_room(peer.ip());
        if evicted {
            shared.metrics.record_eviction();
        }
        let activity = open.activity();
        let task = tokio::spawn(serve_connection(
            stream,
            peer,
            shared.clone(),
            activity.clone(),
        ));
        open.add(peer.ip(), activity, task.abort_handle());
        if evicted {
            // Let the closed connection's task be dropped (its socket closed) before accepting more, so
            // that a burst of connections never holds more than a few descriptors beyond the limit.
            tokio::task::yield_now().await;
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    activity: Activity,
) {
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        activity.touch();
        let response = respond(&shared, peer.ip(), &request);
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUFFER)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(err) = served {
        tracing::debug!(%peer, error = %err, "health connection ended");
    }
}

/// Whether a caller at `peer` may see failure reasons, the version, the child's pid and memory.
pub fn shows_details(details: Details, peer: IpAddr) -> bool {
    match details {
        Details::Always => true,
        Details::Never => false,
        Details::Auto => match peer {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        },
    }
}

enum Route<'a> {
    Livez,
    Readyz,
    ReadyzCheck(&'a str),
    Health,
    Metrics,
}

impl Route<'_> {
    /// The path as a metrics label: a fixed set.
    fn label(&self) -> &'static str {
        match self {
            Route::Livez => "/livez",
            Route::Readyz => "/readyz",
            Route::ReadyzCheck(_) => "/readyz/<check>",
            Route::Health => "/health",
            Route::Metrics => "/metrics",
        }
    }
}

fn route(path: &str) -> Option<Route<'_>> {
    match path {
        "/livez" => Some(Route::Livez),
        "/readyz" => Some(Route::Readyz),
        "/health" => Some(Route::Health),
        "/metrics" => Some(Route::Metrics),
        _ => path.strip_prefix("/readyz/").map(Route::ReadyzCheck),
    }
}

/// `?verbose` and `?exclude=<check>` (repeatable).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub verbose: bool,
    pub excluded: Vec<CheckName>,
}

/// A caller's text for an error message, cut short.
fn clip(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

pub fn parse_query(query: Option<&str>) -> Result<Query, String> {
    let mut parsed = Query::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (clip(key), clip(value));
        match key {
            "verbose" => match value {
                "" | "1" | "true" => parsed.verbose = true,
                "0" | "false" => parsed.verbose = false,
                _ => {
                    return Err(format!(
                        "verbose={value:?}: expected no value, 1, true, 0 or false"
                    ))
                }
            },
            "exclude" => {
                let check = CheckName::parse(value).ok_or_else(|| {
                    format!(
                        "exclude={value:?}: unknown check; checks are {}",
                        CheckName::LIST
                    )
                })?;
                if !parsed.excluded.contains(&check) {
                    parsed.excluded.push(check);
                }
            }
            _ => {
                return Err(format!(
                    "unknown query parameter {key:?}; expected verbose or exclude=<check>"
                ))
            }
        }
    }
    Ok(parsed)
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn verdict_code(passed: bool) -> StatusCode {
    if passed {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Answers one request from the latest readings; never waits.
pub fn respond<B>(shared: &Shared, peer: IpAddr, request: &Request<B>) -> Response<Full<Bytes>> {
    let Some(route) = route(request.uri().path()) else {
        let response = reply(StatusCode::NOT_FOUND, TEXT, "not found\n");
        shared.metrics.record_request("other", 404);
        return response;
    };
    let response = answer(shared, peer, request, &route);
    shared
        .metrics
        .record_request(route.label(), response.status().as_u16());
    response
}

fn answer<B>(
    shared: &Shared,
    peer: IpAddr,
    request: &Request<B>,
    route: &Route<'_>,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "method not allowed: use GET or HEAD\n",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let query = match parse_query(request.uri().query()) {
        Ok(query) => query,
        Err(problem) => return reply(StatusCode::BAD_REQUEST, TEXT, format!("{problem}\n")),
    };
    let details = shows_details(shared.details, peer);
    let snapshot = shared.snapshot();
    match route {
        Route::Livez | Route::Readyz => {
            let probe = match route {
                Route::Livez => Probe::Live,
                _ => Probe::Ready,
            };
            let checks: &[CheckName] = match probe {
                Probe::Live => &CheckName::LIVENESS,
                Probe::Ready => &CheckName::ALL,
            };
            let passed = checks.iter().all(|&check| {
                query.excluded.contains(&check) || snapshot.verdict(check, probe).passing()
            });
            if passed && !query.verbose {
                return reply(StatusCode::OK, TEXT, Bytes::from_static(b"ok"));
            }
            let (passed, text) = document::verbose_text(&snapshot, probe, &query.excluded, details);
            reply(verdict_code(passed), TEXT, text)
        }
        Route::ReadyzCheck(name) => match CheckName::parse(name) {
            None => reply(
                StatusCode::NOT_FOUND,
                TEXT,
                format!("unknown check; checks are {}\n", CheckName::LIST),
            ),
            Some(check) => {
                let passed = snapshot.verdict(check, Probe::Ready).passing();
                let body: &'static str = if passed { "ok" } else { "failed" };
                reply(verdict_code(passed), TEXT, body)
            }
        },
        Route::Health => {
            let (status, body) = shared.document.render(&snapshot, &query.excluded, details);
            reply(verdict_code(status != Status::Fail), HEALTH_JSON, body)
        }
        Route::Metrics => {
            let accept = request.headers().get_all(ACCEPT);
            let format = Format::negotiate(accept.iter().filter_map(|v| v.to_str().ok()));
            let mut response = reply(
                StatusCode::OK,
                format.content_type(),
                shared.metrics.render(&snapshot, format),
            );
            response
                .headers_mut()
                .insert(VARY, HeaderValue::from_static("accept"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_follow_the_setting_and_the_caller() {
        let loopback: [IpAddr; 3] = [
            "127.0.0.1".parse().unwrap(),
            "::1".parse().unwrap(),
            "::ffff:127.0.0.1".parse().unwrap(),
        ];
        let remote: [IpAddr; 3] = [
            "192.0.2.7".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            "::ffff:10.0.0.1".parse().unwrap(),
        ];
        for ip in loopback {
            assert!(shows_details(Details::Auto, ip), "{ip}");
            assert!(!shows_details(Details::Never, ip), "{ip}");
        }
        for ip in remote {
            assert!(!shows_details(Details::Auto, ip), "{ip}");
            assert!(shows_details(Details::Always, ip), "{ip}");
        }
    }

    #[test]
    fn queries_parse_or_say_why_not() {
        assert_eq!(parse_query(None), Ok(Query::default()));
        let q = parse_query(Some(
            "verbose&exclude=postgres&exclude=app&exclude=postgres",
        ))
        .unwrap();
        assert!(q.verbose);
        assert_eq!(q.excluded, vec![CheckName::Postgres, CheckName::App]);
        assert!(parse_query(Some("verbose=1")).unwrap().verbose);
        assert!(!parse_query(Some("verbose=false")).unwrap().verbose);
        let err = parse_query(Some("exclude=redis")).unwrap_err();
        assert!(
            err.contains("redis") && err.contains("unknown check"),
            "{err}"
        );
        let err = parse_query(Some("verbose=maybe")).unwrap_err();
        assert!(err.contains("verbose"), "{err}");
        let err = parse_query(Some("foo=1")).unwrap_err();
        assert!(err.contains("unknown query parameter \"foo\""), "{err}");
    }
}

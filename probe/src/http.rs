//! One HTTP/1.1 GET over a blocking socket, with a single deadline covering resolution, connect, write and
//! every read, and hard caps on what the server may send.
//!
//! A runtime and a full client would cost more start-up time than the whole probe is allowed; the response
//! head is parsed by `httparse`, the body framing (Content-Length, chunked, read-to-close) is done here.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::duration::format_duration;

use crate::sanitize;
use crate::target::Target;

/// The most a response body may hold; a health answer is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most the status line and headers may hold.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
const READ_CHUNK: usize = 8 * 1024;

/// What the server answered.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// The media type without parameters, lower-cased (`application/health+json`).
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// From just before resolution to the last body byte.
    pub elapsed: Duration,
}

/// Why a probe produced no verdict: no usable answer arrived, or it was not a health answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Resolve {
        host: String,
        reason: String,
    },
    Connect {
        authority: String,
        reason: String,
    },
    Timeout {
        authority: String,
        limit: Duration,
    },
    /// The server started answering but did not finish in time.
    Incomplete {
        authority: String,
        limit: Duration,
    },
    Closed {
        authority: String,
    },
    Broken {
        authority: String,
        reason: String,
    },
    Malformed {
        authority: String,
        reason: String,
    },
    /// A code that says nothing about health (404, 500, ...).
    HttpStatus {
        authority: String,
        code: u16,
        reason: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Resolve { host, reason } => write!(f, "cannot resolve {host}: {reason}"),
            Failure::Connect { authority, reason } => {
                write!(f, "cannot connect to {authority}: {reason}")
            }
            Failure::Timeout { authority, limit } => {
                write!(
                    f,
                    "no answer from {authority} within {}",
                    format_duration(*limit)
                )
            }
            Failure::Incomplete { authority, limit } => write!(
                f,
                "answer from {authority} not complete within {}",
                format_duration(*limit)
            ),
            Failure::Closed { authority } => {
                write!(f, "connection to {authority} closed without an answer")
            }
            Failure::Broken { authority, reason } => {
                write!(f, "connection to {authority} failed: {reason}")
            }
            Failure::Malformed { authority, reason } => {
                write!(f, "malformed answer from {authority}: {reason}")
            }
            Failure::HttpStatus {
                authority,
                code,
                reason,
            } => {
                write!(f, "unexpected HTTP {code}")?;
                if !reason.is_empty() {
                    write!(f, " ({reason})")?;
                }
                write!(f, " from {authority}")
            }
        }
    }
}

/// Sends `GET target` and reads the whole answer, all within `limit`.
pub fn get(target: &Target, limit: Duration) -> Result<Response, Failure> {
    let started = Instant::now();
    let deadline = started + limit;
    let authority = target.authority();
    let timeout = || Failure::Timeout {
        authority: authority.clone(),
        limit,
    };

    let addrs = match target.socket_addr() {
        Some(addr) => vec![addr],
        None => resolve(target, deadline).map_err(|e| match e {
            StepError::Timeout => timeout(),
            StepError::Failed(reason) => Failure::Resolve {
                host: target.host().to_string(),
                reason,
            },
        })?,
    };
    let mut stream = connect_any(&addrs, deadline).map_err(|e| match e {
        StepError::Timeout => timeout(),
        StepError::Failed(reason) => Failure::Connect {
            authority: authority.clone(),
            reason,
        },
    })?;
    let _ = stream.set_nodelay(true);

    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: probe/{version}\r\n\
         Accept: application/health+json, application/json;q=0.9, text/plain;q=0.8\r\n\
         Connection: close\r\n\r\n",
        path = target.path(),
        version = env!("CARGO_PKG_VERSION"),
    );
    let remaining = remaining(deadline).ok_or_else(timeout)?;
    stream
        .set_write_timeout(Some(remaining))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| {
            if is_timeout(&e) {
                timeout()
            } else {
                Failure::Broken {
                    authority: authority.clone(),
                    reason: describe_io(&e),
                }
            }
        })?;

    let mut reader = Reader {
        stream,
        buf: Vec::with_capacity(READ_CHUNK),
        pos: 0,
        received: 0,
        deadline,
    };
    let response = read_response(&mut reader).map_err(|e| match e {
        ReadError::Timeout if reader.received > 0 => Failure::Incomplete {
            authority: authority.clone(),
            limit,
        },
        ReadError::Timeout => timeout(),
        ReadError::Closed => Failure::Closed {
            authority: authority.clone(),
        },
        ReadError::Io(reason) => Failure::Broken {
            authority: authority.clone(),
            reason,
        },
        ReadError::Malformed(reason) => Failure::Malformed {
            authority: authority.clone(),
            reason,
        },
    })?;
    Ok(Response {
        elapsed: started.elapsed(),
        ..response
    })
}

fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// The OS's reason in lower case without the `(os error N)` suffix, e.g. `connection refused`.
fn describe_io(e: &io::Error) -> String {
    let full = e.to_string();
    let short = full.split(" (os error").next().unwrap_or(&full);
    sanitize::clean(&short.to_lowercase(), 80)
}

/// Why resolving or connecting gave up.
enum StepError {
    Timeout,
    Failed(String),
}

/// Resolves a host name on a helper thread: `getaddrinfo` has no timeout of its own, and the deadline must
/// hold even when DNS does not answer.
fn resolve(target: &Target, deadline: Instant) -> Result<Vec<SocketAddr>, StepError> {
    let host = target.host().to_string();
    let port = target.port();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let result = (host.as_str(), port).to_socket_addrs().map(Vec::from_iter);
            let _ = tx.send(result);
        })
        .map_err(|e| StepError::Failed(describe_io(&e)))?;
    let left = remaining(deadline).ok_or(StepError::Timeout)?;
    match rx.recv_timeout(left) {
        Ok(Ok(addrs)) if addrs.is_empty() => Err(StepError::Failed("no addresses".into())),
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(StepError::Failed(describe_io(&e))),
        Err(_) => Err(StepError::Timeout),
    }
}

/// Tries each address in turn (e.g. `localhost` as ::1 then 127.0.0.1) within the deadline; reports the
/// first address's failure, which is the one the user most likely meant.
fn connect_any(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, StepError> {
    let mut first_failure = None;
    for addr in addrs {
        let left = remaining(deadline).ok_or(StepError::Timeout)?;
        match TcpStream::connect_timeout(addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) if is_timeout(&e) => return Err(StepError::Timeout),
            Err(e) => {
                first_failure.get_or_insert_with(|| describe_io(&e));
            }
        }
    }
    Err(StepError::Failed(
        first_failure.unwrap_or_else(|| "no address to connect to".into()),
    ))
}

#[derive(Debug)]
enum ReadError {
    Timeout,
    Closed,
    Io(String),
    Malformed(String),
}

/// Buffered reading from the socket, each read bounded by what is left of the deadline.
struct Reader<S> {
    stream: S,
    buf: Vec<u8>,
    /// Bytes before `pos` have been consumed.
    pos: usize,
    /// Bytes read from the server so far.
    received: usize,
    deadline: Instant,
}

/// Lets the reader set a per-read timeout on sockets while tests feed it from memory.
trait TimedRead: Read {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

impl TimedRead for TcpStream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

impl<S: TimedRead> Reader<S> {
    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }

    /// Reads more bytes; `Ok(0)` means the server closed the connection.
    fn fill(&mut self) -> Result<usize, ReadError> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let left = remaining(self.deadline).ok_or(ReadError::Timeout)?;
        self.stream
            .set_timeout(left)
            .map_err(|e| ReadError::Io(describe_io(&e)))?;
        let old_len = self.buf.len();
        self.buf.resize(old_len + READ_CHUNK, 0);
        let result = loop {
            match self.stream.read(&mut self.buf[old_len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match result {
            Ok(n) => {
                self.buf.truncate(old_len + n);
                self.received += n;
                Ok(n)
            }
            Err(e) => {
                self.buf.truncate(old_len);
                Err(if is_timeout(&e) {
                    ReadError::Timeout
                } else {
                    ReadError::Io(describe_io(&e))
                })
            }
        }
    }
}

fn malformed(reason: impl Into<String>) -> ReadError {
    ReadError::Malformed(reason.into())
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn read_response<S: TimedRead>(reader: &mut Reader<S>) -> Result<Response, ReadError> {
    let (head_len, status, reason, content_type, framing) = read_head(reader)?;
    reader.consume(head_len);
    let body = match framing {
        _ if status == 204 || status == 304 => Vec::new(),
        Framing::Length(n) => read_exact_body(reader, n)?,
        Framing::Chunked => read_chunked_body(reader)?,
        Framing::UntilClose => read_body_until_close(reader)?,
    };
    Ok(Response {
        status,
        reason,
        content_type,
        body,
        elapsed: Duration::ZERO,
    })
}

type Head = (usize, u16, String, Option<String>, Framing);

fn read_head<S: TimedRead>(reader: &mut Reader<S>) -> Result<Head, ReadError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(reader.available()) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = parsed.code.unwrap_or(0);
                let reason = sanitize::clean(parsed.reason.unwrap_or(""), 40);
                let (content_type, framing) = interpret_headers(parsed.headers)?;
                return Ok((head_len, status, reason, content_type, framing));
            }
            Ok(httparse::Status::Partial) => {
                if reader.available().len() >= MAX_HEAD_BYTES {
                    return Err(malformed("headers over 16 KiB"));
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(malformed(format!("more than {MAX_HEADERS} headers")))
            }
            Err(e) => {
                let what = if reader.available().starts_with(b"HTTP/") {
                    format!("bad response head ({e})")
                } else {
                    let start = &reader.available()[..reader.available().len().min(24)];
                    let start = String::from_utf8_lossy(start);
                    format!("not HTTP: starts with {:?}", sanitize::clean(&start, 24))
                };
                return Err(malformed(what));
            }
        }
        let was_empty = reader.available().is_empty();
        if reader.fill()? == 0 {
            return Err(if was_empty {
                ReadError::Closed
            } else {
                malformed("connection closed in the middle of the headers")
            });
        }
    }
}

fn interpret_headers(
    headers: &[httparse::Header<'_>],
) -> Result<(Option<String>, Framing), ReadError> {
    let mut content_type = None;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for header in headers {
        let value = std::str::from_utf8(header.value)
            .map_err(|_| {
                malformed(format!(
                    "{} header is not text",
                    sanitize::clean(header.name, 40)
                ))
            })?
            .trim();
        if header.name.eq_ignore_ascii_case("content-type") {
            let essence = value.split(';').next().unwrap_or("").trim();
            content_type = Some(sanitize::clean(&essence.to_ascii_lowercase(), 60));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed(format!(
                    "bad Content-Length {:?}",
                    sanitize::clean(value, 30)
                )));
            }
            // Over the cap is refused before reading a byte of it.
            let n = value.parse::<usize>().unwrap_or(usize::MAX);
            if length.is_some_and(|previous| previous != n) {
                return Err(malformed("conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or("").trim();
            if last.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else {
                return Err(malformed(format!(
                    "unsupported Transfer-Encoding {:?}",
                    sanitize::clean(value, 30)
                )));
            }
        }
    }
    let framing = match (chunked, length) {
        (true, Some(_)) => return Err(malformed("both Content-Length and chunked encoding")),
        (true, None) => Framing::Chunked,
        (false, Some(n)) if n > MAX_BODY_BYTES => {
            return Err(malformed(format!(
                "body of {n} bytes is over the 64 KiB limit"
            )))
        }
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::UntilClose,
    };
    Ok((content_type, framing))
}

fn read_exact_body<S: TimedRead>(reader: &mut Reader<S>, len: usize) -> Result<Vec<u8>, ReadError> {
    while reader.available().len() < len {
        if reader.fill()? == 0 {
            return Err(malformed(format!(
                "body ended after {} of {len} bytes",
                reader.available().len()
            )));
        }
    }
    let body = reader.available()[..len].to_vec();
    reader.consume(len);
    Ok(body)
}

fn read_body_until_close<S: TimedRead>(reader: &mut Reader<S>) -> Result<Vec<u8>, ReadError> {
    loop {
        if reader.available().len() > MAX_BODY_BYTES {
            return Err(malformed("body over the 64 KiB limit"));
        }
        if reader.fill()? == 0 {
            return Ok(reader.available().to_vec());
        }
    }
}

fn read_chunked_body<S: TimedRead>(reader: &mut Reader<S>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        // The chunk-size line.
        let size = loop {
            match httparse::parse_chunk_size(reader.available()) {
                Ok(httparse::Status::Complete((used, size))) => {
                    reader.consume(used);
                    break size;
                }
                Ok(httparse::Status::Partial) => {
                    if reader.available().len() > 1024 {
                        return Err(malformed("chunk size line too long"));
                    }
                    if reader.fill()? == 0 {
                        return Err(malformed("connection closed inside chunked body"));
                    }
                }
                Err(_) => return Err(malformed("bad chunk size in chunked body")),
            }
        };
        if size == 0 {
            // Trailers are not needed and the connection closes after this answer.
            return Ok(body);
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > MAX_BODY_BYTES - body.len() {
            return Err(malformed("body over the 64 KiB limit"));
        }
        while reader.available().len() < size + 2 {
            if reader.fill()? == 0 {
                return Err(malformed("connection closed inside chunked body"));
            }
        }
        let data = &reader.available()[..size + 2];
        if &data[size..] != b"\r\n" {
            return Err(malformed("chunk not followed by CRLF"));
        }
        body.extend_from_slice(&data[..size]);
        reader.consume(size + 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves a fixed byte string in pieces, as a socket might.
    struct Scripted {
        pieces: Vec<Vec<u8>>,
    }

    impl Read for Scripted {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pieces.is_empty() {
                return Ok(0);
            }
            let piece = &mut self.pieces[0];
            let n = piece.len().min(out.len());
            out[..n].copy_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.pieces.remove(0);
            }
            Ok(n)
        }
    }

    impl TimedRead for Scripted {
        fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn parse_pieces(pieces: &[&[u8]]) -> Result<Response, ReadError> {
        let mut reader = Reader {
            stream: Scripted {
                pieces: pieces.iter().map(|p| p.to_vec()).collect(),
            },
            buf: Vec::new(),
            pos: 0,
            received: 0,
            deadline: Instant::now() + Duration::from_secs(5),
        };
        read_response(&mut reader)
    }

    fn parse(raw: &[u8]) -> Result<Response, ReadError> {
        parse_pieces(&[raw])
    }

    fn malformed_reason(raw: &[u8]) -> String {
        match parse(raw) {
            Err(ReadError::Malformed(reason)) => reason,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    #[test]
    fn content_length_body() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Type: Application/Health+JSON; charset=utf-8\r\nContent-Length: 4\r\n\r\nbodyEXTRA").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.reason, "OK");
        assert_eq!(r.content_type.as_deref(), Some("application/health+json"));
        assert_eq!(r.body, b"body");
    }

    #[test]
    fn chunked_body_split_across_reads() {
        let r = parse_pieces(&[
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe",
            b"llo\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
        ])
        .unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, b"hello world");
    }

    #[test]
    fn body_until_close() {
        let r = parse(b"HTTP/1.0 200 OK\r\n\r\nok").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"ok");
        assert!(r.content_type.is_none());
    }

    #[test]
    fn oversized_bodies_are_refused() {
        assert!(
            malformed_reason(b"HTTP/1.1 200 OK\r\nContent-Length: 9999999999\r\n\r\n")
                .contains("64 KiB")
        );
        let mut huge = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'x', MAX_BODY_BYTES + 10));
        assert!(malformed_reason(&huge).contains("64 KiB"));
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            MAX_BODY_BYTES + 1
        );
        assert!(malformed_reason(chunked.as_bytes()).contains("64 KiB"));
    }

    #[test]
    fn oversized_heads_are_refused() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..2000 {
            head.extend(format!("X-Filler-{i}: {}\r\n", "y".repeat(20)).bytes());
        }
        let reason = malformed_reason(&head);
        assert!(reason.contains("headers"), "{reason}");
    }

    #[test]
    fn garbage_is_reported_as_not_http() {
        let reason = malformed_reason(b"SSH-2.0-OpenSSH_9.2\r\n\x1b[2J");
        assert!(reason.starts_with("not HTTP"), "{reason}");
        assert!(!reason.contains('\x1b'));
        assert!(malformed_reason(b"HTTP/1.1 abc\r\n\r\n").contains("bad response head"));
    }

    #[test]
    fn framing_errors() {
        assert!(
            malformed_reason(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
                .contains("5 of 10")
        );
        assert!(
            malformed_reason(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
                .contains("Content-Length")
        );
        assert!(malformed_reason(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
        )
        .contains("conflicting"));
        assert!(
            malformed_reason(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
                .contains("Transfer-Encoding")
        );
        assert!(
            malformed_reason(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .contains("chunk size")
        );
        assert!(malformed_reason(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY"
        )
        .contains("CRLF"));
        assert!(
            malformed_reason(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
                .contains("closed")
        );
        assert!(malformed_reason(b"HTTP/1.1 200 OK\r\nContent-").contains("middle of the headers"));
    }

    /// Deterministic pseudo-random bytes (xorshift), so a failure can be replayed.
    fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                (*seed >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded() {
        let prefixes: [&[u8]; 4] = [
            b"",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 503 X\r\nContent-Length: 40\r\n\r\n",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for round in 0..4000 {
            let mut raw = prefixes[round % prefixes.len()].to_vec();
            let len = (noise(&mut seed, 1)[0] as usize) * (1 + round % 7);
            raw.extend(noise(&mut seed, len));
            // Split at an arbitrary point, as two reads would deliver it.
            let cut = raw.len() / 2;
            if let Ok(response) = parse_pieces(&[&raw[..cut], &raw[cut..]]) {
                assert!(response.body.len() <= MAX_BODY_BYTES);
                assert!(!response.reason.chars().any(crate::sanitize::is_unsafe_char));
                let _ = crate::answer::read(&response, "h:1");
            }
        }
    }

    #[test]
    fn empty_answer_is_closed() {
        assert!(matches!(parse(b""), Err(ReadError::Closed)));
    }
}

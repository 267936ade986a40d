//! A small HTTP/1.1 client over plain sockets, for tests: one request per fresh connection (`Connection: close`)
//! read to the end, a keep-alive [`Connection`] that reads one framed response at a time, and the raw pieces
//! (connect, read, parse) for tests that write malformed or unfinished requests byte by byte.

pub mod flood;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a request may take to connect, and each read or write, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed HTTP response.
#[derive(Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked and cut to `Content-Length`.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &self.text())
            .finish()
    }
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every header called `name`, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the response says `Connection: close`.
    pub fn connection_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.text()))
    }

    /// The `error.code` of the API's error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {}", self.text()))
            .to_string()
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }
}

/// One request, sent on a fresh connection with `Connection: close`.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Duration,
    source: Option<IpAddr>,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Request {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: None,
            timeout: DEFAULT_TIMEOUT,
            source: None,
        }
    }

    pub fn get(target: &str) -> Request {
        Request::new("GET", target)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn headers(self, headers: &[(&str, &str)]) -> Request {
        headers
            .iter()
            .fold(self, |request, (name, value)| request.header(name, value))
    }

    /// The body; `Content-Length` is added unless a length or `Transfer-Encoding` header is given.
    pub fn body(mut self, body: &[u8]) -> Request {
        self.body = Some(body.to_vec());
        self
    }

    /// Bounds the connect and each read and write.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    /// Connects from this local address (any 127.0.0.0/8 address works on loopback).
    pub fn from(mut self, source: IpAddr) -> Request {
        self.source = Some(source);
        self
    }

    /// Sends the request to `addr` and reads the response to the end of the connection.
    pub fn send(&self, addr: SocketAddr) -> std::io::Result<Response> {
        let mut stream = match self.source {
            Some(source) => connect_from(source, addr, self.timeout)?,
            None => connect(addr, self.timeout)?,
        };
        let given = |name: &str| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let mut head = format!(
            "{} {} HTTP/1.1\r\nConnection: close\r\n",
            self.method, self.target
        );
        if !given("host") {
            head.push_str(&format!("Host: {addr}\r\n"));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let (Some(body), false) = (
            &self.body,
            given("content-length") || given("transfer-encoding"),
        ) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if let Some(body) = &self.body {
            // The server may answer (413) and close before taking all of a large body.
            let _ = stream.write_all(body);
        }
        read_response(&mut stream)
    }
}

/// A server the tests talk to: its address and the timeout of each request.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    addr: SocketAddr,
    timeout: Duration,
}

impl Endpoint {
    pub fn new(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(self, timeout: Duration) -> Endpoint {
        Endpoint { timeout, ..self }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sends `request` with this endpoint's timeout.
    pub fn send(&self, request: Request) -> std::io::Result<Response> {
        request.timeout(self.timeout).send(self.addr)
    }

    /// One request; panics naming it when no response comes.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let mut request = Request::new(method, target).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        self.send(request)
            .unwrap_or_else(|err| panic!("{method} {target} to {}: {err}", self.addr))
    }

    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", target, headers, None)
    }

    /// POST with a JSON body.
    pub fn post_json(&self, target: &str, headers: &[(&str, &str)], body: &Value) -> Response {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.request("POST", target, &all, Some(body.to_string().as_bytes()))
    }

    /// GET `target`, or None when nothing answers (for polling).
    pub fn try_get(&self, target: &str) -> Option<Response> {
        self.send(Request::get(target)).ok()
    }

    /// The status of GET `target`, or None when nothing answers.
    pub fn status(&self, target: &str) -> Option<u16> {
        self.try_get(target).map(|r| r.status)
    }

    /// Polls GET `target` until `accept` holds, at most `within`; returns the response and how long it took.
    pub fn wait_until(
        &self,
        target: &str,
        within: Duration,
        accept: impl Fn(&Response) -> bool,
    ) -> (Response, Duration) {
        let began = Instant::now();
        loop {
            let response = self.try_get(target);
            if let Some(response) = response.as_ref().filter(|r| accept(r)) {
                return (response.clone(), began.elapsed());
            }
            assert!(
                began.elapsed() < within,
                "GET {target} on {}: no acceptable answer within {within:?}; last: {response:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until GET `target` answers at all.
    pub fn wait_answer(&self, target: &str, within: Duration) -> Response {
        self.wait_until(target, within, |_| true).0
    }

    /// Waits until GET `target` answers with `status`.
    pub fn wait_status(&self, target: &str, status: u16, within: Duration) -> Response {
        self.wait_until(target, within, |r| r.status == status).0
    }
}

/// A TCP connection with read and write timeouts.
pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// [`connect`] from the local address `source`.
pub fn connect_from(
    source: IpAddr,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        tokio::time::timeout(timeout, socket.connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Reads one response to the end of the connection.
pub fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A reset after the server answered early (e.g. 413) still leaves the answer.
        Err(err) if !raw.is_empty() || err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => return Err(err),
    }
    parse_response(&raw)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Parses a whole response: head, then the body cut to `Content-Length` or de-chunked.
pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| invalid("head not UTF-8"))?;
    let (status, headers) = parse_head(head)?;
    let rest = &raw[split + 4..];
    let body = if is_chunked(&headers) {
        dechunk(&mut &rest[..])?
    } else {
        let mut body = rest.to_vec();
        if let Some(length) = content_length(&headers) {
            body.truncate(length);
        }
        body
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The status line and header lines (without the blank line that ends them).
fn parse_head(head: &str) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| invalid("no status line"))?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn content_length(headers: &[(String, String)]) -> Option<usize> {
    header(headers, "content-length")?.parse().ok()
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    header(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
}

/// Reads a chunked body to its last chunk (trailers are skipped).
fn dechunk(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = size_line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            let mut trailer = String::new();
            while reader.read_line(&mut trailer)? > 0 && trailer != "\r\n" {
                trailer.clear();
            }
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut end = [0u8; 2];
        reader.read_exact(&mut end)?;
    }
}

/// Whether `raw` holds a complete response (its head and a `Content-Length` body).
pub fn is_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let length = std::str::from_utf8(&raw[..end])
        .ok()
        .and_then(|head| parse_head(head).ok())
        .and_then(|(_, headers)| content_length(&headers))
        .unwrap_or(0);
    raw.len() >= end + 4 + length
}

/// A keep-alive connection: requests one after the other, each response read by its framing.
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects within 1 s; each read then times out after 5 s.
    pub fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Connection {
            reader: BufReader::new(stream),
        })
    }

    /// Sends `GET target` (without `Connection: close`) and reads the whole response.
    pub fn get(&mut self, target: &str) -> std::io::Result<Response> {
        write!(
            self.reader.get_mut(),
            "GET {target} HTTP/1.1\r\nHost: test\r\n\r\n"
        )?;
        let mut head = String::new();
        loop {
            let before = head.len();
            if self.reader.read_line(&mut head)? == 0 {
                return Err(invalid("closed before the end of the head"));
            }
            if &head[before..] == "\r\n" {
                break;
            }
        }
        let (status, headers) = parse_head(head.trim_end_matches("\r\n"))?;
        let body = if is_chunked(&headers) {
            dechunk(&mut self.reader)?
        } else {
            let mut body = vec![0u8; content_length(&headers).unwrap_or(0)];
            self.reader.read_exact(&mut body)?;
            body
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Whether the server closed the connection (end of file before any byte).
    pub fn closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}

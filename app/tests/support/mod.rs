//! Harness for the app's integration tests: a migrated database in a throwaway cluster, the
//! real `app` binary as a child process with its stderr captured, and a small HTTP/1.1 client
//! over plain sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use testkit::PgCluster;

/// A cluster with one database holding the schema (every migration).
pub struct Db {
    pub cluster: PgCluster,
    pub name: String,
}

impl Db {
    pub fn start() -> Db {
        let cluster = PgCluster::start();
        let name = cluster.create_database();
        cluster.psql(&name, &testkit::schema_sql());
        Db { cluster, name }
    }

    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }

    pub fn psql(&self, sql: &str) -> String {
        self.cluster.psql(&self.name, sql)
    }
}

/// A running `app` process. Killed when dropped.
pub struct App {
    child: Option<Child>,
    pub port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Reads stderr until the process closes it.
    stderr_pump: Option<std::thread::JoinHandle<()>>,
}

impl App {
    /// Starts the app on a free port with `DATABASE_URL` and `env`, and waits for `/livez`.
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> App {
        let app = App::spawn(database_url, env);
        app.wait_live();
        app
    }

    /// Starts the app without waiting.
    pub fn spawn(database_url: &str, env: &[(&str, &str)]) -> App {
        let port = testkit::free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_app"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "debug")
            .env("HASH_CONCURRENCY", "2")
            // These tests are about behaviour, not the deadline: on a loaded machine running debug
            // builds, a slow connect must not become a 503. The deadline tests set their own.
            .env("DB_TIMEOUT", "10s");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the app binary");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("piped stderr");
        let lines = stderr.clone();
        let stderr_pump = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        App {
            child: Some(child),
            port,
            stderr,
            stderr_pump: Some(stderr_pump),
        }
    }

    pub fn wait_live(&self) {
        testkit::wait_for("the app's /livez", Duration::from_secs(30), || {
            let stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
            drop(stream);
            let response = try_request(self.port, "GET", "/livez", &[], None).ok()?;
            (response.status == 200).then_some(())
        });
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("signalling the app");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let status = testkit::wait_for("the app to exit", timeout, || {
            child.try_wait().expect("waiting for the app")
        });
        self.child = None;
        // The process has exited, so its stderr is closed: once the pump has read the rest,
        // `log()` holds every line the process wrote.
        if let Some(pump) = self.stderr_pump.take() {
            let _ = pump.join();
        }
        status
    }

    /// Every stderr line so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        testkit::wait_for(&format!("log line {needle:?}"), timeout, || {
            self.log().contains(needle).then_some(())
        });
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        request(self.port, method, path, headers, body)
    }

    /// POST with a JSON body.
    pub fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.request("POST", path, &all, Some(body.to_string().as_bytes()))
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, None)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.text()))
    }

    /// The `error.code` of an error body.
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

/// One request on a fresh connection (`Connection: close`).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    try_request(port, method, path, headers, body)
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"))
}

pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let has_length = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    if let (Some(body), false) = (body, has_length) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        // The server may answer (413) and close before taking all of a large body.
        let _ = stream.write_all(body);
    }
    read_response(&mut stream)
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

pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| invalid("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| invalid("no status line"))?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Registers (when `register`) and logs in; returns the token and the `Set-Cookie` value.
pub fn login(app: &App, email: &str, password: &str) -> (String, String) {
    let response = app.post_json(
        "/api/auth/login",
        &[],
        &serde_json::json!({"email": email, "password": password}),
    );
    response.expect(200);
    let token = response.json()["token"].as_str().unwrap().to_string();
    let cookie = response.header("set-cookie").unwrap().to_string();
    (token, cookie)
}

pub fn register(app: &App, email: &str, password: &str) -> Response {
    app.post_json(
        "/api/auth/register",
        &[],
        &serde_json::json!({"email": email, "password": password}),
    )
}

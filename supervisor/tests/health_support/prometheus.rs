//! A real Prometheus server (Debian's `prometheus` package) on a free loopback port, its HTTP API, and a proxy
//! that makes Prometheus ask for a given `Content-Type` (Prometheus 2.42 always prefers OpenMetrics).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testkit::server::Acceptor;
use testkit::{Endpoint, Launch, Running};

use super::SECOND;

/// The `prometheus` binary on PATH, if installed.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file())
}

/// `promtool` beside it.
pub fn promtool() -> Option<PathBuf> {
    let tool = binary()?.with_file_name("promtool");
    tool.is_file().then_some(tool)
}

/// A Prometheus server scraping `jobs` (name, target) every second; stopped and its data removed on drop.
pub struct Prometheus {
    server: Running,
    pub addr: SocketAddr,
    _dir: testkit::TempDir,
}

impl Prometheus {
    pub fn start(binary: &std::path::Path, jobs: &[(&str, SocketAddr)]) -> Prometheus {
        let dir = testkit::TempDir::new("prometheus");
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
        for (job, target) in jobs {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ));
        }
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("writing prometheus.yml");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, testkit::free_port()));
        let server = Launch::new(binary)
            .arg(&format!("--config.file={}", config_file.display()))
            .arg(&format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(&format!("--web.listen-address={addr}"))
            .spawn();
        server.wait_for("prometheus to be ready", 30 * SECOND, || {
            Endpoint::new(addr)
                .try_get("/-/ready")
                .filter(|r| r.status == 200)
        });
        Prometheus {
            server,
            addr,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    /// GET an API path: the `data` of a successful answer.
    pub fn api(&self, target: &str) -> serde_json::Value {
        let response = Endpoint::new(self.addr)
            .with_timeout(5 * SECOND)
            .get(target, &[]);
        let body = response.text();
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"));
        assert!(
            response.status == 200 && json["status"] == "success",
            "{target}: {} {body}",
            response.status
        );
        json["data"].clone()
    }

    /// Polls an API path until `accept` holds (at most `within`).
    pub fn wait_api<T>(
        &self,
        target: &str,
        within: Duration,
        accept: impl Fn(&serde_json::Value) -> Option<T>,
    ) -> T {
        let began = Instant::now();
        loop {
            let data = self.api(target);
            if let Some(value) = accept(&data) {
                return value;
            }
            assert!(
                began.elapsed() < within,
                "{target}: nothing acceptable within {within:?}; last: {data}\nprometheus log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Forwards each HTTP request to `upstream` with its `Accept` header replaced by `accept`, one request per
/// connection.
pub struct AcceptProxy {
    acceptor: Acceptor,
}

impl AcceptProxy {
    pub fn start(upstream: SocketAddr, accept: &'static str) -> AcceptProxy {
        let acceptor = Acceptor::start(move |client| {
            std::thread::spawn(move || {
                let _ = forward(client, upstream, accept);
            });
        });
        AcceptProxy { acceptor }
    }

    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr()
    }
}

fn forward(mut client: TcpStream, upstream: SocketAddr, accept: &str) -> std::io::Result<()> {
    client.set_read_timeout(Some(5 * SECOND))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Scrape requests have no body: the head is everything.
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let mut request = format!("{}\r\n", lines.next().unwrap_or_default());
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("accept") && !name.eq_ignore_ascii_case("connection") {
            request.push_str(line);
            request.push_str("\r\n");
        }
    }
    request.push_str(&format!("Accept: {accept}\r\nConnection: close\r\n\r\n"));
    let mut server = TcpStream::connect_timeout(&upstream, SECOND)?;
    server.set_read_timeout(Some(5 * SECOND))?;
    server.write_all(request.as_bytes())?;
    std::io::copy(&mut server, &mut client)?;
    Ok(())
}

//! `loadgen`: keep-alive HTTP/1.1 load that records the outcome of every request (see `testkit::load`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::Parser;
use hyper::header::HeaderMap;
use hyper::Method;
use testkit::load::{self, LoadConfig, Target};

const AFTER_HELP: &str = "\
Outcomes (each failed request is counted under exactly one; nothing is retried):
  ok                      2xx, body read to the end
  http_4xx, http_503, http_5xx, http_other (1xx/3xx)
  connect_refused         nothing listened on the port
  connect_failed          the TCP connect failed otherwise
  stale_keepalive         written on a reused keep-alive connection, closed or reset before any response
  closed_before_response  written on a fresh connection, closed or reset before any response
  broken_response         malformed or cut short
  timeout                 no complete response within --timeout (connecting included)
A keep-alive connection the server closed while idle is replaced before the next request (not a failure);
`Connection: close` in a response is honoured. Latency counts from the start of a request (its connect included)
until its outcome is known, for failures too.

Phases: with --phase-file, each request is tagged with the file's first line when it starts (read every 100 ms),
and the summary and JSON report each phase apart (e.g. write `steady`, then `rollout`).

Exit status: 0 done; 1 more requests failed than --max-failed allows; 64 usage error; 70 the run itself failed
(e.g. the JSON file cannot be written).

Example:
  loadgen -c 8 -d 30s -H 'Authorization: Bearer TOKEN' --json out.json 'http://127.0.0.1:3000/api/entries?limit=5'";

/// Keep-alive HTTP/1.1 load generator that records the outcome of every request.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version, after_help = AFTER_HELP)]
struct Cli {
    /// Target, http://host:port/path?query
    url: String,
    /// Concurrent keep-alive connections, each its own worker
    #[arg(short = 'c', long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Run for this long (500ms, 30s, 2m)
    #[arg(short = 'd', long, value_parser = common::parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many requests in total
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Target rate in requests per second across all connections (default: as fast as answers come)
    #[arg(short = 'r', long)]
    rate: Option<f64>,
    /// Request header "Name: value" (repeatable)
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = load::parse_header)]
    headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// Request method (the request has no body)
    #[arg(short = 'X', long, default_value = "GET")]
    method: Method,
    /// Per-request timeout, connecting included
    #[arg(short = 't', long, default_value = "10s", value_parser = common::parse_duration)]
    timeout: Duration,
    /// Write the JSON report here ("-": standard output, the summary then goes to standard error)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// End the run once this file exists
    #[arg(long, value_name = "FILE")]
    stop_file: Option<PathBuf>,
    /// Tag requests with the phase named by this file's first line
    #[arg(long, value_name = "FILE")]
    phase_file: Option<PathBuf>,
    /// Runtime worker threads
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Exit 1 when more requests than this failed
    #[arg(long, value_name = "N")]
    max_failed: Option<u64>,
    /// No summary
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(64),
            };
        }
    };
    let config = match config(&cli) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("loadgen: {message}");
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.into())
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadgen: starting the runtime: {error}");
            return ExitCode::from(70);
        }
    };
    let report = match runtime.block_on(async { load::run(config, stop_signal()).await }) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("loadgen: {message}");
            return ExitCode::from(64);
        }
    };
    let json_to_stdout = cli.json.as_deref() == Some("-".as_ref());
    if !cli.quiet {
        if json_to_stdout {
            eprint!("{}", report.summary());
        } else {
            print!("{}", report.summary());
        }
    }
    if let Some(path) = &cli.json {
        let text = report.to_json().to_string();
        let written = if json_to_stdout {
            println!("{text}");
            Ok(())
        } else {
            std::fs::write(path, text + "\n")
        };
        if let Err(error) = written {
            eprintln!(
                "loadgen: writing the JSON report to {}: {error}",
                path.display()
            );
            return ExitCode::from(70);
        }
    }
    let failed = report.stats().failed();
    match cli.max_failed {
        Some(allowed) if failed > allowed => {
            eprintln!("loadgen: {failed} requests failed, more than the {allowed} allowed");
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

fn config(cli: &Cli) -> Result<LoadConfig, String> {
    let mut config = LoadConfig::new(Target::parse(&cli.url)?);
    config.method = cli.method.clone();
    config.headers = HeaderMap::new();
    for (name, value) in &cli.headers {
        config.headers.append(name.clone(), value.clone());
    }
    config.connections = cli.connections as usize;
    config.rate = cli.rate;
    config.duration = cli.duration;
    config.requests = cli.requests;
    config.timeout = cli.timeout;
    config.stop_file = cli.stop_file.clone();
    config.phase_file = cli.phase_file.clone();
    Ok(config)
}

/// Completes on the first SIGINT or SIGTERM; the run then ends and reports what it has.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the default action ends the process, as before.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

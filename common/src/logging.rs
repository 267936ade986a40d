//! Process-wide logging: one event per line on stderr, as text or JSON.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use crate::config::{env_var, ConfigError};

/// How log lines are written, from `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// Reads `LOG_FORMAT` (`text` or `json`, default `text`).
    pub fn from_env() -> Result<LogFormat, ConfigError> {
        match env_var("LOG_FORMAT")?.as_deref() {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(ConfigError::new(
                "LOG_FORMAT",
                format!("expected text or json, got {other:?}"),
            )),
        }
    }
}

/// The filter when `RUST_LOG` is unset: `info`, less the migration runner's multi-line reports (the supervisor
/// logs each applied migration itself) and PostgreSQL's NOTICE messages.
pub const DEFAULT_FILTER: &str = "info,refinery_core=warn,tokio_postgres=warn";

/// Reads the `RUST_LOG` filter (default [`DEFAULT_FILTER`]), rejecting directives that do not parse.
pub fn filter_from_env() -> Result<EnvFilter, ConfigError> {
    let directives = env_var("RUST_LOG")?.unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    EnvFilter::builder().parse(&directives).map_err(|err| {
        ConfigError::new("RUST_LOG", format!("invalid filter {directives:?}: {err}"))
    })
}

/// tokio-postgres logs every query's parameters at debug level (password hashes, session token hashes). This
/// cap drops its debug and trace events whatever `RUST_LOG` says, so no secret reaches the log; it only ever
/// removes events, so a stricter `RUST_LOG` for tokio_postgres still applies.
fn below_secret_bearing_levels(meta: &tracing::Metadata<'_>) -> bool {
    !(meta.target().starts_with("tokio_postgres") && *meta.level() > tracing::Level::INFO)
}

/// Installs the global subscriber: `LOG_FORMAT=text|json` (default text), `RUST_LOG` filter (default
/// [`DEFAULT_FILTER`]), one event per line on stderr. Malformed settings are a [`ConfigError`] naming the
/// variable. Calling it again once a subscriber is installed is harmless and keeps the first one.
pub fn init() -> Result<(), ConfigError> {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::fmt;
    use tracing_subscriber::prelude::*;

    let format = LogFormat::from_env()?;
    let subscriber = tracing_subscriber::registry()
        .with(filter_from_env()?)
        .with(filter_fn(below_secret_bearing_levels));
    // A second call finds a subscriber already installed; keeping the first one is the intended outcome.
    let _already_installed = match format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal();
            let layer = fmt::layer()
                .with_ansi(ansi)
                .with_writer(move || OneLineStderr { ansi });
            subscriber.with(layer).try_init()
        }
        LogFormat::Json => {
            let layer = fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stderr);
            subscriber.with(layer).try_init()
        }
    };
    Ok(())
}

/// Writes text-format events to stderr with line breaks (and, without a terminal, escape characters) inside
/// an event escaped, so each event stays one line and a logged value cannot forge another line.
struct OneLineStderr {
    ansi: bool,
}

impl Write for OneLineStderr {
    /// The fmt layer hands over each formatted event in a single call, ending in its newline.
    fn write(&mut self, event: &[u8]) -> std::io::Result<usize> {
        let (body, newline) = match event.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (event, false),
        };
        let mut line = Vec::with_capacity(event.len() + 8);
        for &byte in body {
            match byte {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                0x1b if !self.ansi => line.extend_from_slice(b"\\x1b"),
                _ => line.push(byte),
            }
        }
        if newline {
            line.push(b'\n');
        }
        std::io::stderr().lock().write_all(&line)?;
        Ok(event.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

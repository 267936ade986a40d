//! `--watch`: poll until SIGINT or SIGTERM, printing a timestamped line whenever the state changes.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::answer::{self, EXIT_HEALTHY, EXIT_UNHEALTHY};
use crate::cli::Options;
use crate::render::summary_line;

/// Polls `options.target` every `interval` and writes a line to `out` on every change of state (the
/// round-trip time alone is not a change). Returns the exit code: 0 once interrupted.
pub fn watch(
    options: &Options,
    interval: Duration,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    // Self-pipe: the signal handler writes a byte, and the wait between polls is a read with a timeout, so
    // a signal ends the wait at once without polling a flag.
    let mut wake = match register_stop_signals() {
        Ok(wake) => wake,
        Err(e) => {
            let _ = writeln!(err, "error: cannot handle SIGINT/SIGTERM: {e}");
            return EXIT_UNHEALTHY;
        }
    };
    let mut last_state: Option<String> = None;
    loop {
        let outcome = answer::probe(&options.target, options.timeout);
        let state = summary_line(&outcome, false);
        if last_state.as_deref() != Some(state.as_str()) {
            let line = format!("{} {}", timestamp(), summary_line(&outcome, true));
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                // Nobody is reading any more (e.g. `probe --watch | head -1`): nothing left to do.
                return EXIT_HEALTHY;
            }
            last_state = Some(state);
        }
        if wait_for_stop(&mut wake, interval) {
            return EXIT_HEALTHY;
        }
    }
}

fn register_stop_signals() -> io::Result<UnixStream> {
    let (read_end, write_end) = UnixStream::pair()?;
    for signal in [SIGINT, SIGTERM] {
        signal_hook::low_level::pipe::register(signal, write_end.try_clone()?)?;
    }
    Ok(read_end)
}

/// Waits up to `interval`; true if a stop signal arrived.
fn wait_for_stop(wake: &mut UnixStream, interval: Duration) -> bool {
    let deadline = Instant::now() + interval;
    let mut byte = [0u8; 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if wake.set_read_timeout(Some(left)).is_err() {
            return true;
        }
        match wake.read(&mut byte) {
            Ok(_) => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn timestamp() -> String {
    OffsetDateTime::now_utc()
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

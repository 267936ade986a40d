//! Signal handling: every signal the supervisor cares about is blocked in all threads and read synchronously by
//! one dedicated thread, so none is lost while the supervisor is busy (waiting for the database, migrating,
//! spawning the child) and no system call is interrupted by a handler.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use tokio::sync::mpsc;

/// Signals forwarded to the child's process group.
pub const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Signals that start a graceful stop.
pub fn is_stop(signal: Signal) -> bool {
    matches!(signal, Signal::SIGTERM | Signal::SIGINT)
}

/// The signals blocked and waited for: the forwarded ones and SIGCHLD (time to reap).
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED {
        set.add(signal);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Blocks the handled signals in the calling thread. Call it first thing in `main`, before any other thread
/// exists: threads inherit the mask, so from here on every such signal stays pending until [`listen`] takes it.
pub fn block() -> nix::Result<()> {
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&handled()), None)
}

/// Starts the thread that waits for the blocked signals and hands each one to the lifecycle.
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<Signal>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let set = handled();
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            match set.wait() {
                Ok(signal) => {
                    if tx.send(signal).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    // Only an invalid set makes sigwait fail, and that would fail every time.
                    tracing::error!(%err, "sigwait failed: signals are no longer handled");
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// 128 + N: the shell convention for "ended by signal N".
pub fn exit_code(signal: Signal) -> i32 {
    128 + signal as i32
}

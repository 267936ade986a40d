//! The lame duck: from the moment a drain begins until the listener closes, every response asks its client to
//! leave (`Connection: close`), so keep-alive clients reconnect, through their balancer, to a replica that is
//! staying, instead of sending their next request into a connection that is about to close.
//!
//! The supervisor owns the phase: it hands the app the read end of a pipe, its number in `DRAIN_FD`, and closes
//! the other end when the drain begins (see the supervisor's `drain` module). Run on its own, without `DRAIN_FD`,
//! the app has no drain phase and SIGTERM alone ends it.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::config::ConfigError;
use tokio::io::AsyncReadExt;

/// The variable naming the inherited descriptor.
pub const DRAIN_FD: &str = "DRAIN_FD";

/// Whether the drain has begun; cheap to clone and to ask on every response.
#[derive(Debug, Clone, Default)]
pub struct LameDuck(Arc<AtomicBool>);

impl LameDuck {
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn begin(&self) {
        if !self.0.swap(true, Ordering::Relaxed) {
            tracing::info!("drain begun: responses now carry Connection: close");
        }
    }
}

/// The drain notice inherited from the supervisor, if `DRAIN_FD` names one.
#[derive(Debug)]
pub struct DrainNotice {
    fd: OwnedFd,
}

impl DrainNotice {
    /// Takes ownership of the descriptor `DRAIN_FD` names. Anything but the number of an open pipe is a
    /// configuration error: a drain that silently never begins would lose requests in every rolling update.
    pub fn from_env() -> Result<Option<DrainNotice>, ConfigError> {
        let Some(value) = std::env::var_os(DRAIN_FD).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let value = value.to_string_lossy();
        let problem = |text: &str| ConfigError::new(DRAIN_FD, format!("{value:?} {text}"));
        let fd: RawFd = match value.parse() {
            Ok(fd) if fd > 2 => fd,
            _ => return Err(problem("is not a file descriptor number above 2")),
        };
        // SAFETY: F_SETFD on a number only sets a flag, failing when nothing is open there; no memory is touched.
        if unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC) } == -1 {
            return Err(problem(
                "names no open descriptor (start the app from the supervisor, or unset it)",
            ));
        }
        // SAFETY: the descriptor is open and, by the protocol DRAIN_FD names, inherited for this purpose alone;
        // nothing else in the process owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        match nix::sys::stat::fstat(&fd) {
            Ok(stat) if stat.st_mode & nix::libc::S_IFMT == nix::libc::S_IFIFO => {
                Ok(Some(DrainNotice { fd }))
            }
            _ => Err(problem("is not a pipe")),
        }
    }

    /// Resolves when the drain begins: end of file (or any byte, or a read error) on the pipe.
    pub async fn wait(self) {
        let mut pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(self.fd) {
            Ok(pipe) => pipe,
            Err(err) => {
                // Without a readable notice the lame duck cannot begin early; SIGTERM still stops the app.
                tracing::error!(error = %err, "cannot watch the drain notice");
                return std::future::pending().await;
            }
        };
        let mut byte = [0u8; 1];
        let _ = pipe.read(&mut byte).await;
    }
}

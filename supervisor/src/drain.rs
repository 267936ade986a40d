//! The drain notice: how the child learns that a stop is under way before it is signalled.
//!
//! Readiness fails the moment a stop begins, but a balancer only moves *new* connections; clients already
//! connected (an L4 balancer pins each connection to one backend) keep sending on them until the app tells them to
//! leave. So the child must know when the drain begins, and the supervisor, which owns the phase, is the one
//! source of truth: each child inherits the read end of a pipe, its number in `DRAIN_FD`, and the supervisor
//! closes the write end when the drain begins. The child reads end-of-file, which it also reads if the supervisor
//! is gone, as good a reason to leave as any. A pipe needs no signal number (every catchable signal is forwarded
//! for the child's own use) and no polling.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;

/// The variable that gives the child the number of its end of the pipe.
pub const DRAIN_FD: &str = "DRAIN_FD";

/// The supervisor's end: closing it is the notice.
#[derive(Debug)]
pub struct DrainNotice {
    write: Option<OwnedFd>,
}

/// The child's end, inherited across exec; the supervisor drops its copy once the child has started.
#[derive(Debug)]
pub struct ChildEnd {
    read: OwnedFd,
}

/// A new pipe for one child. Both ends are close-on-exec; `ChildEnd::keep_on_exec` clears that for the child's end
/// in the forked child only, so no other process the supervisor starts inherits either end.
pub fn pipe() -> io::Result<(DrainNotice, ChildEnd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((DrainNotice { write: Some(write) }, ChildEnd { read }))
}

impl DrainNotice {
    /// Tells the child that the drain has begun. Idempotent.
    pub fn send(&mut self) {
        if self.write.take().is_some() {
            tracing::debug!("drain notice sent to the child");
        }
    }
}

impl ChildEnd {
    /// The descriptor number the child finds in `DRAIN_FD`.
    pub fn raw(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Runs in the forked child before exec: lets this descriptor survive exec. Async-signal-safe (one fcntl).
    pub fn keep_on_exec(fd: RawFd) -> io::Result<()> {
        // SAFETY: F_SETFD on a descriptor this process owns; no memory is touched.
        if unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_notice_is_end_of_file_on_the_childs_end() {
        let (mut notice, child) = pipe().unwrap();
        let mut reader = std::fs::File::from(child.read);
        let flags = nix::fcntl::fcntl(&reader, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_eq!(flags & OFlag::O_NONBLOCK.bits(), 0, "a blocking read end");
        notice.send();
        notice.send();
        let mut buf = [0u8; 1];
        assert_eq!(
            reader.read(&mut buf).unwrap(),
            0,
            "end of file after the notice"
        );
    }

    #[test]
    fn both_ends_are_close_on_exec_until_the_child_keeps_its_own() {
        let (notice, child) = pipe().unwrap();
        let cloexec = |fd: RawFd| {
            // SAFETY: F_GETFD on an open descriptor.
            let flags = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) };
            flags & nix::libc::FD_CLOEXEC != 0
        };
        assert!(cloexec(notice.write.as_ref().unwrap().as_raw_fd()));
        assert!(cloexec(child.raw()));
        ChildEnd::keep_on_exec(child.raw()).unwrap();
        assert!(!cloexec(child.raw()));
    }
}

//! Starting the child and collecting exited processes.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::drain::{ChildEnd, DRAIN_FD};
use crate::exit::Exit;

/// How a process ended, as an exit code: its own status, or 128 + N when signal N killed it.
pub fn status_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(crate::signals::exit_code(signal)),
        _ => None,
    }
}

/// Starts `command` as the leader of a new process group, with every signal at its default disposition and an
/// empty signal mask, whatever the supervisor itself blocks or ignores. The child inherits its end of the drain
/// notice, named in `DRAIN_FD`.
pub fn spawn(command: &[OsString], drain: &ChildEnd) -> Result<Pid, Exit> {
    let (program, args) = command.split_first().expect("the command is never empty");
    let mut cmd = Command::new(program);
    let drain_fd = drain.raw();
    cmd.args(args)
        .process_group(0)
        .env(DRAIN_FD, drain_fd.to_string());
    // SAFETY: between fork and exec only async-signal-safe system calls are made (rt_sigaction, sigprocmask,
    // fcntl).
    unsafe {
        cmd.pre_exec(move || {
            reset_signals()?;
            ChildEnd::keep_on_exec(drain_fd)
        });
    }
    match cmd.spawn() {
        Ok(child) => Ok(Pid::from_raw(child.id() as i32)),
        Err(err) => Err(spawn_error(program, &err)),
    }
}

/// Checks that the command can be executed, before start-up waits for the database: the answer (126 or 127)
/// should not take `DB_WAIT` and a migration to arrive. `spawn` maps the same failures if they appear later.
pub fn check(command: &[OsString]) -> Result<(), Exit> {
    let program = command.first().map(PathBuf::from).unwrap_or_default();
    let shown = program.display();
    let Some(path) = resolve(&program) else {
        return Err(Exit::CommandNotFound(format!(
            "{shown}: command not found (give an existing program after --)"
        )));
    };
    if path.is_dir() {
        return Err(Exit::CommandNotExecutable(format!(
            "{shown}: is a directory"
        )));
    }
    if nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK).is_err() {
        return Err(Exit::CommandNotExecutable(format!(
            "{shown}: permission denied (make it executable, or check the user it runs as)"
        )));
    }
    // execvp would hand a file that is neither ELF nor a script to /bin/sh; run only what the kernel runs.
    let mut head = [0u8; 256];
    let read = std::fs::File::open(&path).and_then(|mut f| std::io::Read::read(&mut f, &mut head));
    let head = match read {
        Ok(n) => &head[..n],
        Err(err) => {
            return Err(Exit::CommandNotExecutable(format!(
                "{shown}: cannot read: {err}"
            )))
        }
    };
    if head.starts_with(b"\x7fELF") {
        return Ok(());
    }
    let Some(line) = head.strip_prefix(b"#!") else {
        return Err(Exit::CommandNotExecutable(format!(
            "{shown}: not a program (no ELF header and no #! line)"
        )));
    };
    // The kernel runs the script's interpreter: a missing one would look like the script itself was not found.
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let interpreter = line
        .split(|b| b.is_ascii_whitespace())
        .find(|word| !word.is_empty())
        .map(|word| Path::new(std::ffi::OsStr::from_bytes(word)));
    match interpreter {
        Some(interpreter)
            if nix::unistd::access(interpreter, nix::unistd::AccessFlags::X_OK).is_ok() =>
        {
            Ok(())
        }
        Some(interpreter) => Err(Exit::CommandNotExecutable(format!(
            "{shown}: bad interpreter {} (install it or fix the #! line)",
            interpreter.display()
        ))),
        None => Err(Exit::CommandNotExecutable(format!(
            "{shown}: empty #! line"
        ))),
    }
}

/// Where `execvp` would find `program`: as given when it holds a '/', else the first match on PATH.
fn resolve(program: &Path) -> Option<PathBuf> {
    if program.as_os_str().is_empty() {
        return None;
    }
    if program.as_os_str().as_bytes().contains(&b'/') {
        return program.exists().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    // Like execvp: the first executable match wins; a non-executable one is reported only when nothing else fits.
    let candidates: Vec<PathBuf> = std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .filter(|candidate| candidate.is_file())
        .collect();
    let executable = candidates
        .iter()
        .find(|c| nix::unistd::access(c.as_path(), nix::unistd::AccessFlags::X_OK).is_ok());
    executable.or(candidates.first()).cloned()
}

fn spawn_error(program: &OsString, err: &io::Error) -> Exit {
    let program = program.to_string_lossy();
    match err.kind() {
        io::ErrorKind::NotFound => Exit::CommandNotFound(format!(
            "{program}: command not found (give an existing program after --)"
        )),
        io::ErrorKind::PermissionDenied => Exit::CommandNotExecutable(format!(
            "{program}: permission denied (make it executable, or check the user it runs as)"
        )),
        _ => Exit::CommandNotExecutable(format!("{program}: cannot execute: {err}")),
    }
}

/// Runs in the forked child just before exec: signals caught by the parent are reset by exec, but ignored ones
/// and the mask would be inherited. glibc's posix_spawn leaves its internal realtime signals (32, 33) ignored in
/// the children of threaded programs, and its `sigaction` refuses to touch them, so the kernel is asked directly.
fn reset_signals() -> io::Result<()> {
    // The kernel's `struct sigaction` all zeros: SIG_DFL, no flags, no restorer, empty mask. Its size is the
    // same for every layout the kernel uses (handler, flags, optional restorer, 8-byte mask).
    let default = [0u64; 4];
    for signum in 1..=nix::libc::SIGRTMAX() {
        if signum == nix::libc::SIGKILL || signum == nix::libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction with a valid pointer to a zeroed kernel sigaction and no old-action pointer.
        let rc = unsafe {
            nix::libc::syscall(
                nix::libc::SYS_rt_sigaction,
                signum,
                default.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    Ok(())
}

/// Sends `signal` to every process of the group led by `pgid`. Returns false when the group is gone.
pub fn signal_group(pgid: Pid, signal: Signal) -> bool {
    match kill(Pid::from_raw(-pgid.as_raw()), signal) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(err) => {
            tracing::warn!(%err, pgid = pgid.as_raw(), %signal, "cannot signal the process group");
            true
        }
    }
}

/// Whether any process of the group is left (zombies included, until they are reaped).
pub fn group_alive(pgid: Pid) -> bool {
    !matches!(kill(Pid::from_raw(-pgid.as_raw()), None), Err(Errno::ESRCH))
}

/// Collects every exited child, adopted orphans included, and returns the ones the caller may care about.
pub fn reap() -> Vec<(Pid, WaitStatus)> {
    let mut exited = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return exited,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    exited.push((pid, status));
                }
            }
            Err(Errno::EINTR) => continue,
            Err(err) => {
                tracing::error!(%err, "waitpid failed");
                return exited;
            }
        }
    }
}

/// Makes the supervisor the reaper of orphans below it when it is not PID 1 (PID 1 is anyway).
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

//! Signals reach the child's process group, the stop drains and escalates, and the supervisor exits with the
//! child's status; as PID 1 of a PID namespace and as an ordinary process.

mod common;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::{start_sh, traps, Scratch};
use testkit::{Database, Launch, Proc, Running};

/// A child that ignores SIGTERM, and says when it runs.
const IGNORES_SIGTERM: &str =
    "trap '' TERM; echo ready > READY; for i in $(seq 600); do sleep 0.1; done";

/// Starts the supervisor with the trap-recording child and waits until its traps are set; the database must
/// outlive the run.
fn start_traps(pid1: bool, configure: impl FnOnce(&mut Launch)) -> (Running, Scratch, Database) {
    let db = Database::shared();
    let scratch = Scratch::new();
    let mut launch = traps(&db.url(), &scratch);
    launch.as_pid1(pid1);
    configure(&mut launch);
    let running = launch.spawn();
    scratch.wait_line(&running, "traps", "ready", Duration::from_secs(20));
    (running, scratch, db)
}

fn forwards_every_signal(pid1: bool, stop: Signal, code: i32) {
    let (mut running, scratch, _db) = start_traps(pid1, |_| {});

    let (pid, ppid) = {
        let ids = scratch.read("traps.pid");
        let (pid, ppid) = ids.trim().split_once(' ').expect("PID PPID");
        (pid.to_owned(), ppid.to_owned())
    };
    if pid1 {
        assert_eq!(
            ppid, "1",
            "inside the namespace the child's parent is PID 1"
        );
    } else {
        assert_eq!(
            ppid,
            running.pid().to_string(),
            "the supervisor is the child's parent"
        );
        assert_eq!(
            Proc::of(pid.parse().unwrap()).map(|p| p.pgrp),
            pid.parse().ok(),
            "the child leads its own process group"
        );
    }

    for (signal, name) in [
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGQUIT, "QUIT"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGWINCH, "WINCH"),
        (Signal::SIGCONT, "CONT"),
    ] {
        running.signal(signal);
        scratch.wait_line(&running, "traps", name, Duration::from_secs(5));
    }
    assert!(
        running.still_running_after(Duration::from_millis(100)),
        "a forwarded signal other than SIGTERM/SIGINT ended the supervisor"
    );

    let name = if stop == Signal::SIGTERM {
        "TERM"
    } else {
        "INT"
    };
    running.signal(stop);
    scratch.wait_line(&running, "traps", name, Duration::from_secs(5));
    let done = running.wait_exit(Duration::from_secs(5));
    done.assert_code(code);
    let lines = scratch.lines("traps");
    assert_eq!(
        lines,
        ["ready", "HUP", "QUIT", "USR1", "USR2", "WINCH", "CONT", name],
        "each signal exactly once"
    );
}

#[test]
fn forwards_every_signal_and_sigterm_stops() {
    forwards_every_signal(false, Signal::SIGTERM, 42);
}

#[test]
fn forwards_every_signal_and_sigint_stops() {
    forwards_every_signal(false, Signal::SIGINT, 43);
}

#[test]
fn as_pid_1_forwards_every_signal_and_sigterm_stops() {
    forwards_every_signal(true, Signal::SIGTERM, 42);
}

#[test]
fn as_pid_1_forwards_every_signal_and_sigint_stops() {
    forwards_every_signal(true, Signal::SIGINT, 43);
}

#[test]
fn as_pid_1_the_supervisor_is_pid_1() {
    let db = Database::shared();
    let scratch = Scratch::new();
    let out = scratch.arg("ppid");
    let script = format!("echo \"$PPID $(cat /proc/1/comm)\" > {out}");
    Launch::supervisor_child(&db.url(), &["sh", "-c", &script])
        .as_pid1(true)
        .run(Duration::from_secs(20))
        .assert_code(0);
    let seen = scratch.read("ppid");
    assert_eq!(
        seen.trim(),
        "1 supervisor",
        "the child's parent, and PID 1 inside the namespace"
    );
}

/// SIGINT to `bash -c 'sleep 1000; true'`: only the group gets it to sleep, bash then dies of SIGINT.
fn group_delivery(pid1: bool) {
    let db = Database::shared();
    let mut running = Launch::supervisor_child(&db.url(), &["bash", "-c", "sleep 1000; true"])
        .as_pid1(pid1)
        .spawn();
    // The signal must find `sleep` already started.
    running.wait_for("bash to start sleep", Duration::from_secs(20), || {
        running
            .in_session()
            .into_iter()
            .find(|p| Proc::comm(p.pid) == "sleep")
    });
    let (done, took) = running.stop_with(Signal::SIGINT, Duration::from_secs(5));
    done.assert_code(130);
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[test]
fn sigint_reaches_the_whole_group() {
    group_delivery(false);
}

#[test]
fn as_pid_1_sigint_reaches_the_whole_group() {
    group_delivery(true);
}

/// The supervisor starts with some signals ignored and blocked (as a careless parent may leave them): the child
/// still gets default dispositions and an empty mask. Signals 32 and 33 are ignored the way glibc's posix_spawn
/// leaves them in a child of a threaded program (glibc's own `signal` refuses them: the raw system call does not).
fn ignore_and_block_some_signals() -> std::io::Result<()> {
    use nix::libc;
    /// The kernel's `struct sigaction` (x86_64 and aarch64 layout).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    // SAFETY: signal, sigprocmask and rt_sigaction are async-signal-safe; nothing else is touched.
    unsafe {
        for signum in [32, 33] {
            let ignore = KernelSigaction {
                handler: libc::SIG_IGN,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            let rc = libc::syscall(
                libc::SYS_rt_sigaction,
                signum,
                &ignore as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        for signum in [
            libc::SIGALRM,
            libc::SIGTTOU,
            libc::SIGRTMIN() + 2,
            libc::SIGRTMAX() - 1,
        ] {
            libc::signal(signum, libc::SIG_IGN);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPROF);
        libc::sigaddset(&mut set, libc::SIGRTMIN() + 4);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    Ok(())
}

fn default_dispositions(pid1: bool) {
    let db = Database::shared();
    let scratch = Scratch::new();
    // cp reads /proc/self/status in its own process: the child's own masks, with no shell in between.
    Launch::supervisor_child(
        &db.url(),
        &["cp", "/proc/self/status", &scratch.arg("status")],
    )
    .pre_exec(ignore_and_block_some_signals)
    .as_pid1(pid1)
    .run(Duration::from_secs(20))
    .assert_code(0);
    let status = scratch.read("status");
    for field in ["SigBlk", "SigIgn"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
            .trim();
        assert!(
            !value.is_empty() && value.chars().all(|c| c == '0'),
            "the child's {field} is {value}, expected all zero"
        );
    }
}

#[test]
fn the_child_starts_with_default_dispositions_and_an_empty_mask() {
    default_dispositions(false);
}

#[test]
fn as_pid_1_the_child_starts_with_default_dispositions_and_an_empty_mask() {
    default_dispositions(true);
}

#[test]
fn exits_with_the_childs_status() {
    let db = Database::shared();
    let url = db.url();
    for (script, code) in [
        ("exit 0", 0),
        ("exit 3", 3),
        ("exit 255", 255),
        ("kill -9 $$", 137),
        ("kill -USR1 $$", 138),
    ] {
        Launch::supervisor_child(&url, &["sh", "-c", script])
            .run(Duration::from_secs(20))
            .assert_code(code);
    }
    Launch::supervisor_child(&url, &["sh", "-c", "kill -9 $$"])
        .as_pid1(true)
        .run(Duration::from_secs(20))
        .assert_code(137);
}

#[test]
fn drain_delay_holds_the_signal_while_readiness_fails() {
    let (mut running, scratch, _db) = start_traps(false, |launch| {
        launch.env("DRAIN_DELAY", "2s");
    });
    let health = running.health();
    health.wait_status("/readyz", 200, Duration::from_secs(15));

    let sent = Instant::now();
    running.signal(Signal::SIGTERM);
    // Readiness fails within 100 ms: ask as fast as the listener answers.
    let failed_after = loop {
        let status = health.status("/readyz");
        let elapsed = sent.elapsed();
        if status == Some(503) {
            break elapsed;
        }
        assert!(
            elapsed < Duration::from_secs(1),
            "/readyz still {status:?} after {elapsed:?}"
        );
    };
    assert!(
        failed_after < Duration::from_millis(100),
        "/readyz failed only after {failed_after:?}"
    );
    assert_eq!(
        health.status("/livez"),
        Some(200),
        "liveness must hold while draining"
    );
    assert!(
        !scratch.lines("traps").contains(&"TERM".to_owned()),
        "the child got SIGTERM before DRAIN_DELAY"
    );

    scratch.wait_line(&running, "traps", "TERM", Duration::from_secs(5));
    let forwarded_after = sent.elapsed();
    assert!(
        forwarded_after >= Duration::from_millis(1900)
            && forwarded_after < Duration::from_millis(3000),
        "SIGTERM forwarded after {forwarded_after:?}, DRAIN_DELAY is 2s"
    );
    running.wait_exit(Duration::from_secs(5)).assert_code(42);
}

#[test]
fn a_second_sigterm_cuts_the_drain_short() {
    let (mut running, scratch, _db) = start_traps(false, |launch| {
        launch.env("DRAIN_DELAY", "20s");
    });
    let health = running.health();
    health.wait_status("/readyz", 200, Duration::from_secs(15));
    running.signal(Signal::SIGTERM);
    // The first SIGTERM has been taken (readiness reports the drain) before the second is sent: two pending
    // SIGTERMs would merge into one.
    health.wait_status("/readyz", 503, Duration::from_secs(1));
    assert!(
        running.still_running_after(Duration::from_millis(200)),
        "exited during the drain"
    );
    assert!(!scratch.lines("traps").contains(&"TERM".to_owned()));

    let second = Instant::now();
    running.signal(Signal::SIGTERM);
    scratch.wait_line(&running, "traps", "TERM", Duration::from_secs(2));
    assert!(
        second.elapsed() < Duration::from_millis(500),
        "forwarded after {:?}",
        second.elapsed()
    );
    running.wait_exit(Duration::from_secs(5)).assert_code(42);
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_stop_grace() {
    let (mut running, _scratch, _db) = start_sh(IGNORES_SIGTERM, |launch| {
        launch.env("STOP_GRACE", "500ms");
    });
    let (done, took) = running.stop_with(Signal::SIGTERM, Duration::from_secs(5));
    done.assert_code(137);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1000),
        "killed after {took:?}, STOP_GRACE is 500ms"
    );
}

#[test]
fn the_health_listener_answers_until_the_end_of_the_stop() {
    let (mut running, _scratch, _db) = start_sh(IGNORES_SIGTERM, |launch| {
        launch.env("STOP_GRACE", "1s");
    });
    let health = running.health();
    // Ready first, so that the 503 below comes from the stop and not from a check still starting.
    health.wait_status("/readyz", 200, Duration::from_secs(15));
    running.signal(Signal::SIGTERM);
    health.wait_status("/readyz", 503, Duration::from_secs(1));
    // Within the grace period, the listener still answers: liveness holds, readiness says draining.
    assert_eq!(health.status("/livez"), Some(200));
    let readyz = health
        .try_get("/readyz?verbose")
        .expect("an answer while stopping");
    assert_eq!(readyz.status, 503);
    assert!(readyz.text().contains("draining"), "{}", readyz.text());
    running.wait_exit(Duration::from_secs(5)).assert_code(137);
}

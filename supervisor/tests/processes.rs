//! Reaping orphans, cleaning up what is left of the child's process group, and restarts.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::{fixture, parse_nanos, start_sh, traps, Scratch};
use testkit::{Database, Finished, Launch, Proc};

/// The child leaves 100 orphans that die a second later: the supervisor must adopt them (as PID 1 or as child
/// subreaper) and reap each one; no zombie may stay for 1 s.
fn orphans_are_reaped(pid1: bool) {
    let db = Database::shared();
    let scratch = Scratch::new();
    let orphans = fixture("orphans.sh");
    let mut running = Launch::supervisor_child(
        &db.url(),
        &[
            "bash",
            orphans.to_str().unwrap(),
            &scratch.arg("spawned"),
            "4",
        ],
    )
    .as_pid1(pid1)
    .spawn();
    let supervisor = running.pid();

    // Watch the supervisor's children from the start until the orphans are long gone.
    let mut adopted = HashSet::new();
    let mut zombie_since: HashMap<i32, Instant> = HashMap::new();
    let mut oldest_zombie = Duration::ZERO;
    let mut spawned = false;
    let mut watch_until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < watch_until {
        let now = Instant::now();
        if !spawned && scratch.exists("spawned") {
            // The last orphans die a second after this: watch well past that.
            spawned = true;
            watch_until = now + Duration::from_millis(2500);
        }
        for p in Proc::children_of(supervisor) {
            adopted.insert(p.pid);
            if p.state == 'Z' {
                let since = *zombie_since.entry(p.pid).or_insert(now);
                oldest_zombie = oldest_zombie.max(now - since);
            }
        }
        // The pace of the observation, not a synchronisation.
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(spawned, "the child never reported its orphans spawned");
    assert!(
        adopted.len() > 90,
        "only {} processes were ever the supervisor's children: the orphans were not adopted",
        adopted.len()
    );
    assert!(
        oldest_zombie < Duration::from_secs(1),
        "a zombie stayed for {oldest_zombie:?}"
    );
    assert_eq!(running.zombie_children(), Vec::<i32>::new(), "zombies left");
    running.wait_exit(Duration::from_secs(10)).assert_code(0);
}

#[test]
fn orphans_are_reaped_by_the_subreaper() {
    orphans_are_reaped(false);
}

#[test]
fn as_pid_1_orphans_are_reaped() {
    orphans_are_reaped(true);
}

/// Runs `script` as the child; it must write the pid of a leftover to `left` and `date +%s%N` to `exited` just
/// before it exits 0. Returns the leftover's pid and how long the supervisor took to exit after the child.
fn run_with_leftover(script: &str, stop_grace: &str) -> (i32, Duration) {
    let db = Database::shared();
    let scratch = Scratch::new();
    let script = script
        .replace("LEFT", &scratch.arg("left"))
        .replace("EXITED", &scratch.arg("exited"));
    let done = Launch::supervisor_child(&db.url(), &["sh", "-c", &script])
        .env("STOP_GRACE", stop_grace)
        .run(Duration::from_secs(30));
    done.assert_code(0);
    let leftover: i32 = scratch
        .read("left")
        .trim()
        .parse()
        .expect("the leftover's pid");
    let exited = parse_nanos(&scratch.read("exited"));
    let after = done
        .at_wall
        .duration_since(exited)
        .expect("the supervisor exited after its child");
    (leftover, after)
}

#[test]
fn a_leftover_ignoring_sigterm_is_killed_after_stop_grace() {
    let (leftover, after) = run_with_leftover(
        "trap '' TERM; sleep 1000 & echo $! > LEFT; date +%s%N > EXITED; exit 0",
        "500ms",
    );
    assert!(
        after >= Duration::from_millis(450) && after < Duration::from_millis(1500),
        "exited {after:?} after the child, STOP_GRACE is 500ms"
    );
    testkit::wait_for("the leftover to be gone", Duration::from_secs(2), || {
        (!Proc::alive(leftover)).then_some(())
    });
}

#[test]
fn a_leftover_that_stops_on_sigterm_ends_the_run_at_once() {
    let (leftover, after) = run_with_leftover(
        "sleep 1000 & echo $! > LEFT; date +%s%N > EXITED; exit 0",
        "8s",
    );
    assert!(
        after < Duration::from_millis(500),
        "exited {after:?} after the child"
    );
    testkit::wait_for("the leftover to be gone", Duration::from_secs(2), || {
        (!Proc::alive(leftover)).then_some(())
    });
}

/// Runs a child that appends `date +%s%N` to `starts` and then does `then`; returns the start times and the exit.
fn starts(restart: Option<&str>, then: &str) -> (Vec<std::time::SystemTime>, Finished) {
    let db = Database::shared();
    let scratch = Scratch::new();
    let script = format!("date +%s%N >> {}; {then}", scratch.arg("starts"));
    let mut launch = Launch::supervisor_child(&db.url(), &["sh", "-c", &script]);
    if let Some(policy) = restart {
        launch.env("RESTART", policy);
    }
    let done = launch.run(Duration::from_secs(30));
    let times = scratch
        .lines("starts")
        .iter()
        .map(|l| parse_nanos(l))
        .collect();
    (times, done)
}

#[test]
fn on_failure_restarts_with_backoff_then_exits_with_the_childs_code() {
    let (times, done) = starts(Some("on-failure:2"), "exit 4");
    done.assert_code(4);
    assert_eq!(times.len(), 3, "started {} times", times.len());
    let gaps: Vec<Duration> = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap())
        .collect();
    assert!(
        gaps[0] >= Duration::from_millis(100) && gaps[0] < Duration::from_millis(700),
        "first backoff {:?}, expected about 100ms",
        gaps[0]
    );
    assert!(
        gaps[1] >= Duration::from_millis(200) && gaps[1] < Duration::from_millis(900),
        "second backoff {:?}, expected about 200ms",
        gaps[1]
    );
}

#[test]
fn death_by_signal_counts_as_a_failure() {
    let (times, done) = starts(Some("on-failure:1"), "kill -9 $$");
    done.assert_code(137);
    assert_eq!(times.len(), 2);
}

#[test]
fn never_and_success_are_not_restarted() {
    let (times, done) = starts(None, "exit 4");
    done.assert_code(4);
    assert_eq!(times.len(), 1, "RESTART unset restarted");

    let (times, done) = starts(Some("never"), "exit 4");
    done.assert_code(4);
    assert_eq!(times.len(), 1, "RESTART=never restarted");

    let (times, done) = starts(Some("on-failure:2"), "exit 0");
    done.assert_code(0);
    assert_eq!(times.len(), 1, "a successful exit was restarted");
}

#[test]
fn sigterm_during_the_restart_backoff_stops_without_another_start() {
    let db = Database::shared();
    let scratch = Scratch::new();
    let script = format!("date +%s%N >> {}; exit 4", scratch.arg("starts"));
    let mut running = Launch::supervisor_child(&db.url(), &["sh", "-c", &script])
        .env("RESTART", "on-failure:9")
        .spawn();
    // After the sixth failure the backoff is 3.2 s: time enough to see the child gone and signal.
    running.wait_for("six starts", Duration::from_secs(20), || {
        (scratch.lines("starts").len() >= 6).then_some(())
    });
    let supervisor = running.pid();
    running.wait_for("the sixth child to be gone", Duration::from_secs(2), || {
        Proc::children_of(supervisor).is_empty().then_some(())
    });
    let (done, took) = running.stop_with(Signal::SIGTERM, Duration::from_secs(5));
    done.assert_code(143);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(
        scratch.lines("starts").len(),
        6,
        "started again after SIGTERM"
    );
}

#[test]
fn a_stopped_child_is_not_restarted() {
    let db = Database::shared();
    let scratch = Scratch::new();
    let mut running = traps(&db.url(), &scratch)
        .env("RESTART", "on-failure:3")
        .spawn();
    scratch.wait_line(&running, "traps", "ready", Duration::from_secs(20));
    running.signal(Signal::SIGTERM);
    // The child exits 42 on SIGTERM: a failure, but one the stop asked for.
    running.wait_exit(Duration::from_secs(5)).assert_code(42);
    assert_eq!(
        scratch.lines("traps"),
        ["ready", "TERM"],
        "started again after the stop"
    );
}

#[test]
fn a_child_exiting_during_the_drain_ends_it_at_once() {
    let (mut running, _scratch, _db) =
        start_sh("echo ready > READY; sleep 0.5; exit 5", |launch| {
            launch.env("DRAIN_DELAY", "10s");
        });
    let (done, took) = running.stop_with(Signal::SIGTERM, Duration::from_secs(5));
    done.assert_code(5);
    assert!(
        took < Duration::from_secs(2),
        "waited {took:?} for a drain whose child was gone"
    );
}

#[test]
fn on_failure_defaults_to_five_restarts() {
    let (times, done) = starts(Some("on-failure"), "exit 9");
    done.assert_code(9);
    assert_eq!(times.len(), 6, "one start and five restarts");
    let span = times[5].duration_since(times[0]).unwrap();
    // 100 + 200 + 400 + 800 + 1600 ms of backoff.
    assert!(
        span >= Duration::from_millis(3100) && span < Duration::from_millis(5000),
        "restarts took {span:?}"
    );
}

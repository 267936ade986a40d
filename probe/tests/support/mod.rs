//! Shared by the probe's integration tests beyond testkit (which launches the probe and the stand-in servers it
//! talks to): the probe with a clean environment and a bound on its run time, and the recorded answers.

#![allow(dead_code)]

use std::time::Duration;

use testkit::{Finished, Launch};

/// How long any single probe run may take before the test fails (the probe's own deadline is 2 s).
pub const RUN_LIMIT: Duration = Duration::from_secs(15);

/// The probe binary with nothing in its environment but `env`, so nothing from the test runner leaks in.
pub fn probe(args: &[&str], env: &[(&str, &str)]) -> Launch {
    let mut launch = Launch::new(env!("CARGO_BIN_EXE_probe"));
    launch.unset("PATH").args(args).envs(env);
    launch
}

/// Runs the probe to completion (failing the test if it outlives [`RUN_LIMIT`]); what it prints is UTF-8.
pub fn run_probe(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut running = probe(args, env).spawn();
    let done = running.wait_exit(RUN_LIMIT);
    assert!(
        running.stdout.is_utf8() && running.stderr.is_utf8(),
        "probe {args:?} printed something that is not UTF-8: {done:?}"
    );
    done
}

pub fn fixture(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    std::fs::read_to_string(format!("{path}{name}"))
        .unwrap_or_else(|e| panic!("reading fixture {name}: {e}"))
}

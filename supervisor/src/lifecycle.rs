//! The supervisor's life: start-up (database, migrations), the child's run, the drain and the stop.
//!
//! Everything happens on one task: signals arrive through a channel (see `signals`), so each decision sees a
//! consistent picture and no signal is handled twice or lost.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{sleep_until, Duration, Instant};

use crate::child;
use crate::config::{Config, RestartPolicy, StartUp};
use crate::drain::{self, DrainNotice};
use crate::exit::Exit;
use crate::migrate;
use crate::signals;
use crate::state::{ChildInfo, Phase, State};

/// How often the leftovers of a finished child's group are looked for, for those whose exit sends us no SIGCHLD
/// (their parent is still alive outside our reach).
const LEFTOVER_POLL: Duration = Duration::from_millis(100);

pub struct Supervisor {
    config: Config,
    state: Arc<State>,
    signals: UnboundedReceiver<Signal>,
}

/// How one run of the child ended.
struct Ended {
    code: i32,
    stop_requested: bool,
}

impl Supervisor {
    pub fn new(config: Config, state: Arc<State>, signals: UnboundedReceiver<Signal>) -> Self {
        Supervisor {
            config,
            state,
            signals,
        }
    }

    /// Start-up, then the child until it is done. Returns how the supervisor must exit.
    pub async fn run(mut self) -> Exit {
        if let Err(exit) = child::check(&self.config.command) {
            return self.exit(exit);
        }
        match start_up(&self.config.start_up, &self.state, &mut self.signals).await {
            Ok(version) => self.state.set_migration_version(version),
            Err(exit) => return self.exit(exit),
        }
        let exit = self.supervise().await;
        self.exit(exit)
    }

    fn exit(&self, exit: Exit) -> Exit {
        self.state.set_phase(Phase::Exited);
        exit
    }

    /// Runs the child, restarting it on failure as the policy allows.
    async fn supervise(&mut self) -> Exit {
        let mut restarts = 0u32;
        loop {
            let (notice, child_end) = match drain::pipe() {
                Ok(ends) => ends,
                Err(err) => {
                    return Exit::CommandNotExecutable(format!(
                        "cannot create the drain notice pipe: {err}"
                    ))
                }
            };
            let spawned = child::spawn(&self.config.command, &child_end);
            drop(child_end);
            let pid = match spawned {
                Ok(pid) => pid,
                Err(exit) => return exit,
            };
            tracing::info!(pid = pid.as_raw(), command = ?self.config.command, "child started");
            self.state.set_child(Some(ChildInfo {
                pid: pid.as_raw(),
                started: std::time::Instant::now(),
                started_at: SystemTime::now(),
            }));
            self.state.set_phase(Phase::Running);

            let ended = self.watch(pid, notice).await;
            self.state.set_child(None);
            let may_restart = match self.config.restart {
                RestartPolicy::OnFailure { max } => restarts < max,
                RestartPolicy::Never => false,
            };
            if ended.stop_requested || ended.code == 0 || !may_restart {
                return Exit::Child(ended.code);
            }
            restarts += 1;
            let delay = RestartPolicy::backoff(restarts);
            tracing::warn!(code = ended.code, restart = restarts, delay = ?delay, "child failed; restarting");
            self.state.set_phase(Phase::Starting);
            self.state.record_restart();
            if let Err(signal) = until_stopped(&mut self.signals, tokio::time::sleep(delay)).await {
                tracing::info!(%signal, "stopped while waiting to restart the child");
                return Exit::Signal(signals::exit_code(signal));
            }
        }
    }

    /// Forwards signals to the child's group, drains and stops it, and returns once the child has exited and
    /// nothing is left of its process group. The drain begins with the first stop signal: readiness fails and the
    /// child gets its notice at once; the signal itself follows after DRAIN_DELAY.
    async fn watch(&mut self, pgid: Pid, mut notice: DrainNotice) -> Ended {
        let stop_grace = self.config.stop_grace;
        let mut code: Option<i32> = None;
        let mut stop_requested = false;
        // A stop signal held back while readiness reports draining.
        let mut drain: Option<(Instant, Signal)> = None;
        let mut kill_at: Option<Instant> = None;

        let forward = |signal: Signal, kill_at: &mut Option<Instant>| {
            tracing::info!(%signal, pgid = pgid.as_raw(), "forwarding to the child's process group");
            child::signal_group(pgid, signal);
            if signals::is_stop(signal) {
                kill_at.get_or_insert(Instant::now() + stop_grace);
            }
        };

        loop {
            let poll = code.map(|_| Instant::now() + LEFTOVER_POLL);
            let deadline = [drain.map(|(at, _)| at), kill_at, poll]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                Some(signal) = self.signals.recv() => {
                    match signal {
                        Signal::SIGCHLD => {
                            for (pid, status) in child::reap() {
                                if pid != pgid {
                                    tracing::debug!(pid = pid.as_raw(), ?status, "reaped an orphan");
                                    continue;
                                }
                                let exit_code = child::status_code(status).unwrap_or(1);
                                tracing::info!(pid = pid.as_raw(), code = exit_code, "child exited");
                                code = Some(exit_code);
                                self.state.set_phase(Phase::Exited);
                                self.state.set_child(None);
                                drain = None;
                                if child::signal_group(pgid, Signal::SIGTERM) {
                                    tracing::info!("terminating what is left of the child's process group");
                                    kill_at.get_or_insert(Instant::now() + stop_grace);
                                }
                            }
                        }
                        signal if signals::is_stop(signal) && !stop_requested && code.is_none() => {
                            stop_requested = true;
                            self.state.set_phase(Phase::Draining);
                            notice.send();
                            if self.config.drain_delay.is_zero() {
                                forward(signal, &mut kill_at);
                            } else {
                                tracing::info!(%signal, delay = ?self.config.drain_delay, "draining before the stop");
                                drain = Some((Instant::now() + self.config.drain_delay, signal));
                            }
                        }
                        signal => {
                            if signals::is_stop(signal) {
                                stop_requested = true;
                                notice.send();
                                // A second stop signal cuts the drain short.
                                drain = None;
                            }
                            forward(signal, &mut kill_at);
                        }
                    }
                }
                _ = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                    let now = Instant::now();
                    if let Some((at, signal)) = drain {
                        if now >= at {
                            drain = None;
                            forward(signal, &mut kill_at);
                        }
                    }
                    if kill_at.is_some_and(|at| now >= at) {
                        tracing::warn!(grace = ?stop_grace, "still running after STOP_GRACE: killing the process group");
                        child::signal_group(pgid, Signal::SIGKILL);
                        kill_at = None;
                    }
                }
                else => {
                    // No signal can arrive any more (the signal thread failed) and no timer is due: without
                    // SIGCHLD the child cannot be waited for, so stop it and leave.
                    tracing::error!("signal handling is gone: killing the child's process group");
                    child::signal_group(pgid, Signal::SIGKILL);
                    return Ended { code: code.unwrap_or(137), stop_requested };
                }
            }
            if let Some(code) = code {
                if !child::group_alive(pgid) {
                    return Ended {
                        code,
                        stop_requested,
                    };
                }
            }
        }
    }
}

/// `supervisor migrate`: start-up without the child.
pub async fn migrate_only(settings: StartUp, mut signals: UnboundedReceiver<Signal>) -> Exit {
    match start_up(&settings, &State::new(), &mut signals).await {
        Ok(_) => Exit::Child(0),
        Err(exit) => exit,
    }
}

/// Waits for PostgreSQL and applies the migrations; a stop signal ends it at once (there is no child yet).
async fn start_up(
    settings: &StartUp,
    state: &State,
    signals: &mut UnboundedReceiver<Signal>,
) -> Result<i64, Exit> {
    let work = async {
        let mut client = migrate::wait_for_database(&settings.db, settings.db_wait).await?;
        migrate::migrate(&mut client, &migrate::embedded(), settings.lock_wait, state).await
    };
    match until_stopped(signals, work).await {
        Ok(Ok(version)) => {
            tracing::info!(version, "schema is current");
            Ok(version)
        }
        Ok(Err(exit)) => Err(exit),
        Err(signal) => {
            tracing::info!(%signal, "stopped during start-up; the child was not started");
            Err(Exit::Signal(signals::exit_code(signal)))
        }
    }
}

/// Drives `work` while handling signals: a stop signal abandons it (there is no child to forward to).
async fn until_stopped<F: Future>(
    signals: &mut UnboundedReceiver<Signal>,
    work: F,
) -> Result<F::Output, Signal> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => return Ok(output),
            Some(signal) = signals.recv() => match signal {
                Signal::SIGCHLD => {
                    child::reap();
                }
                signal if signals::is_stop(signal) => return Err(signal),
                signal => tracing::debug!(%signal, "no child to forward to yet"),
            },
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

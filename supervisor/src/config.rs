//! The supervisor's settings, read from the environment once at start-up. Anything malformed is an error that
//! names the setting, never a silent default.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use common::config::{app_port, env_duration, env_var, ConfigError};
use common::db::DbConfig;

use crate::health::HealthConfig;

/// What happens when the child exits on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Never,
    /// Restart after a failure (non-zero exit or death by signal) at most `max` times.
    OnFailure {
        max: u32,
    },
}

impl RestartPolicy {
    pub const DEFAULT_MAX: u32 = 5;

    pub fn parse(value: &str) -> Result<Self, String> {
        match value.split_once(':') {
            None if value == "never" => Ok(RestartPolicy::Never),
            None if value == "on-failure" => Ok(RestartPolicy::OnFailure {
                max: Self::DEFAULT_MAX,
            }),
            Some(("on-failure", n)) => match n.parse::<u32>() {
                Ok(max) if !n.starts_with('+') => Ok(RestartPolicy::OnFailure { max }),
                _ => Err(format!(
                    "'{n}' is not a restart count (a whole number, e.g. on-failure:3)"
                )),
            },
            _ => Err("expected never, on-failure or on-failure:N".into()),
        }
    }

    /// The delay before restart number `attempt` (1-based): 100 ms doubling, capped at 10 s.
    pub fn backoff(attempt: u32) -> Duration {
        let ms = 100u64.saturating_mul(1 << attempt.saturating_sub(1).min(16));
        Duration::from_millis(ms.min(10_000))
    }
}

/// What start-up needs: the database, and how long to wait for it and for the migration lock.
#[derive(Debug, Clone)]
pub struct StartUp {
    pub db: DbConfig,
    pub db_wait: Duration,
    pub lock_wait: Duration,
}

impl StartUp {
    /// Also all that `supervisor migrate` needs.
    pub fn from_env() -> Result<StartUp, ConfigError> {
        Ok(StartUp {
            // The server's view of who holds the migration lock names the replica; a server that goes silent is
            // given up after about 25 s rather than hours.
            db: DbConfig::from_env()?
                .identify_as("supervisor")
                .with_keepalives(Duration::from_secs(10), Duration::from_secs(5), 3),
            db_wait: env_duration("DB_WAIT", Duration::from_secs(60))?,
            lock_wait: env_duration("MIGRATION_LOCK_WAIT", Duration::from_secs(600))?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub start_up: StartUp,
    pub health: HealthConfig,
    pub stop_grace: Duration,
    pub drain_delay: Duration,
    pub restart: RestartPolicy,
    /// Program and arguments of the child.
    pub command: Vec<OsString>,
}

impl Config {
    /// Reads every setting; `command` is the one given after `--`, empty for the default `app`.
    pub fn from_env(command: Vec<OsString>) -> Result<Config, ConfigError> {
        let child_is_app = command.first().is_none_or(|program| {
            std::path::Path::new(program).file_name() == Some(std::ffi::OsStr::new("app"))
        });
        let command = if command.is_empty() {
            vec![default_app()?.into_os_string()]
        } else {
            command
        };
        Ok(Config {
            start_up: StartUp::from_env()?,
            health: HealthConfig::from_env(child_is_app, app_port()?)?,
            stop_grace: env_duration("STOP_GRACE", Duration::from_secs(8))?,
            drain_delay: env_duration("DRAIN_DELAY", Duration::ZERO)?,
            restart: match env_var("RESTART")? {
                None => RestartPolicy::Never,
                Some(value) => RestartPolicy::parse(&value)
                    .map_err(|problem| ConfigError::new("RESTART", problem))?,
            },
            command,
        })
    }
}

/// The `app` binary installed next to the supervisor.
fn default_app() -> Result<PathBuf, ConfigError> {
    let exe = std::env::current_exe().map_err(|err| {
        ConfigError::new(
            "COMMAND",
            format!("cannot locate the supervisor binary: {err}"),
        )
    })?;
    Ok(exe.with_file_name("app"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!(RestartPolicy::parse("never"), Ok(RestartPolicy::Never));
        assert_eq!(
            RestartPolicy::parse("on-failure"),
            Ok(RestartPolicy::OnFailure { max: 5 })
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:0"),
            Ok(RestartPolicy::OnFailure { max: 0 })
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:12"),
            Ok(RestartPolicy::OnFailure { max: 12 })
        );
        for bad in [
            "always",
            "on-failure:",
            "on-failure:-1",
            "on-failure:+2",
            "on-failure:x",
            "Never",
            "never:1",
        ] {
            assert!(RestartPolicy::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn backoff_doubles_from_100ms_to_10s() {
        let delays: Vec<u64> = (1..=9)
            .map(|n| RestartPolicy::backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        assert_eq!(RestartPolicy::backoff(1000), Duration::from_secs(10));
    }
}

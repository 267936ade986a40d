//! Code shared by the supervisor, the app and the probe: configuration from the environment, durations, and
//! behind features what only some of them need: `logging`, `health` (the health vocabulary and document) and `db` (the
//! PostgreSQL connection settings and error classification).
pub mod config;
#[cfg(feature = "db")]
pub mod db;
pub mod duration;
pub mod escape;
#[cfg(feature = "health")]
pub mod health;
#[cfg(feature = "logging")]
pub mod logging;

pub use config::{env_duration, env_var, ConfigError};
pub use duration::{format_duration, parse_duration};

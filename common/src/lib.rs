//! Code shared by the supervisor, the app and the probe: configuration from the environment, durations,
//! logging and (feature `db`) the PostgreSQL connection settings and error classification.
pub mod config;
#[cfg(feature = "db")]
pub mod db;
pub mod duration;
pub mod escape;
pub mod logging;

pub use config::{env_duration, env_var, ConfigError};
pub use duration::{format_duration, parse_duration};

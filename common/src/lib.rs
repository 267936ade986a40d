//! Code shared by the supervisor, the app and the probe.
pub mod duration;

//! The container's PID 1: migrations, the child process, signals and the health listener.
pub mod state;

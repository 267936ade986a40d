//! Test harness shared by the workspace's integration tests.

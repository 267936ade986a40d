//! Time entries: the caller's own, created by hand or by imports.

pub mod handlers;
pub mod list;
pub mod model;
pub mod store;

pub use handlers::register_routes;

//! The route table: every module registers its routes here, once, at start-up.

use crate::router::Router;

/// All routes of the API.
pub fn build() -> Router {
    let mut router = Router::new();
    crate::health::register_routes(&mut router);
    crate::openapi::register_routes(&mut router);
    crate::accounts::register_routes(&mut router);
    crate::entries::register_routes(&mut router);
    crate::imports::register_routes(&mut router);
    crate::summary::register_routes(&mut router);
    router
}

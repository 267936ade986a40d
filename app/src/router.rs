//! Method + path routing on top of matchit. Every route carries its OpenAPI operation, so the
//! published document and the served routes come from one table.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::response::Body;
use crate::state::AppState;

/// What a handler's future resolves to.
pub type HandlerFuture = Pin<Box<dyn Future<Output = ApiResult<Response<Body>>> + Send>>;
type Handler = Arc<dyn Fn(Request<Incoming>, Ctx) -> HandlerFuture + Send + Sync>;

/// Everything a handler gets besides the request.
#[derive(Clone)]
pub struct Ctx {
    pub state: Arc<AppState>,
    pub params: PathParams,
}

/// The `{name}` segments of the matched path, percent-decoded.
#[derive(Debug, Clone, Default)]
pub struct PathParams(Vec<(String, String)>);

impl PathParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The parameter as a UUID; anything else cannot name an existing resource, so it is a 404.
    pub fn uuid(&self, name: &str) -> ApiResult<uuid::Uuid> {
        self.get(name)
            .and_then(|raw| uuid::Uuid::parse_str(raw).ok())
            .ok_or_else(ApiError::not_found)
    }
}

struct Endpoint {
    method: Method,
    handler: Handler,
    operation: Value,
}

struct Route {
    path: String,
    endpoints: Vec<Endpoint>,
}

/// What a lookup found.
pub enum Lookup {
    Found {
        handler: HandlerRef,
        params: PathParams,
    },
    /// The path exists, not with this method: the `Allow` value.
    MethodNotAllowed(String),
    NotFound,
}

/// A handler ready to be called.
pub struct HandlerRef(Handler);

impl HandlerRef {
    pub fn call(&self, req: Request<Incoming>, ctx: Ctx) -> HandlerFuture {
        (self.0)(req, ctx)
    }
}

/// The route table.
#[derive(Default)]
pub struct Router {
    matcher: matchit::Router<usize>,
    routes: Vec<Route>,
    schemas: BTreeMap<String, Value>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `method` on `path` (matchit syntax, `/api/entries/{id}`, the same
    /// as OpenAPI's), documented by the OpenAPI operation object `operation`.
    ///
    /// Panics on a duplicate or conflicting route: the table is fixed at start-up and a test
    /// builds it.
    pub fn add<F, Fut>(&mut self, method: Method, path: &str, operation: Value, handler: F)
    where
        F: Fn(Request<Incoming>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ApiResult<Response<Body>>> + Send + 'static,
    {
        // Each request's database work draws on one budget (`DB_TIMEOUT`, see `crate::db`).
        let handler: Handler = Arc::new(move |req, ctx: Ctx| {
            let db_timeout = ctx.state.config.db_timeout;
            Box::pin(crate::db::with_request_budget(
                db_timeout,
                handler(req, ctx),
            ))
        });
        let index = match self.matcher.at(path) {
            Ok(found) if self.routes[*found.value].path == path => *found.value,
            _ => {
                let index = self.routes.len();
                self.matcher
                    .insert(path, index)
                    .unwrap_or_else(|err| panic!("route {path}: {err}"));
                self.routes.push(Route {
                    path: path.to_string(),
                    endpoints: Vec::new(),
                });
                index
            }
        };
        let route = &mut self.routes[index];
        assert!(
            route.endpoints.iter().all(|e| e.method != method),
            "route {method} {path} registered twice"
        );
        route.endpoints.push(Endpoint {
            method,
            handler,
            operation,
        });
    }

    /// Adds a schema to the OpenAPI document's `components.schemas`.
    pub fn schema(&mut self, name: &str, schema: Value) {
        assert!(
            self.schemas.insert(name.to_string(), schema).is_none(),
            "schema {name} registered twice"
        );
    }

    /// Finds the handler for `method` and `path`. HEAD is served by GET.
    pub fn lookup(&self, method: &Method, path: &str) -> Lookup {
        let Ok(found) = self.matcher.at(path) else {
            return Lookup::NotFound;
        };
        let route = &self.routes[*found.value];
        let endpoint = route
            .endpoints
            .iter()
            .find(|e| e.method == *method)
            .or_else(|| {
                (*method == Method::HEAD)
                    .then(|| route.endpoints.iter().find(|e| e.method == Method::GET))
                    .flatten()
            });
        match endpoint {
            Some(endpoint) => {
                let params = found
                    .params
                    .iter()
                    .map(|(name, value)| {
                        let decoded = percent_encoding::percent_decode_str(value)
                            .decode_utf8_lossy()
                            .into_owned();
                        (name.to_string(), decoded)
                    })
                    .collect();
                Lookup::Found {
                    handler: HandlerRef(endpoint.handler.clone()),
                    params: PathParams(params),
                }
            }
            None => Lookup::MethodNotAllowed(Self::allow_value(route)),
        }
    }

    /// The `Allow` value for `path`, if the path exists.
    pub fn allowed_methods(&self, path: &str) -> Option<String> {
        let found = self.matcher.at(path).ok()?;
        Some(Self::allow_value(&self.routes[*found.value]))
    }

    fn allow_value(route: &Route) -> String {
        let mut methods: Vec<&str> = route.endpoints.iter().map(|e| e.method.as_str()).collect();
        if methods.contains(&"GET") && !methods.contains(&"HEAD") {
            methods.push("HEAD");
        }
        methods.push("OPTIONS");
        methods.join(", ")
    }

    /// Every registered (method, path), in registration order.
    pub fn routes(&self) -> Vec<(Method, String)> {
        self.routes
            .iter()
            .flat_map(|route| {
                route
                    .endpoints
                    .iter()
                    .map(|e| (e.method.clone(), route.path.clone()))
            })
            .collect()
    }

    /// The OpenAPI `paths` object.
    pub fn openapi_paths(&self) -> Value {
        let mut paths = Map::new();
        for route in &self.routes {
            let mut item = Map::new();
            for endpoint in &route.endpoints {
                item.insert(
                    endpoint.method.as_str().to_ascii_lowercase(),
                    endpoint.operation.clone(),
                );
            }
            paths.insert(route.path.clone(), Value::Object(item));
        }
        Value::Object(paths)
    }

    /// The OpenAPI `components.schemas` object.
    pub fn openapi_schemas(&self) -> Value {
        Value::Object(self.schemas.clone().into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::no_content;
    use serde_json::json;

    fn table() -> Router {
        let mut router = Router::new();
        for (method, path) in [
            (Method::GET, "/api/entries"),
            (Method::POST, "/api/entries"),
            (Method::GET, "/api/entries/{id}"),
            (Method::DELETE, "/api/entries/{id}"),
        ] {
            router.add(method, path, json!({"summary": path}), |_req, _ctx| async {
                Ok(no_content())
            });
        }
        router
    }

    #[test]
    fn finds_routes_with_decoded_params() {
        let router = table();
        match router.lookup(&Method::GET, "/api/entries/a%20b") {
            Lookup::Found { params, .. } => assert_eq!(params.get("id"), Some("a b")),
            _ => panic!("GET /api/entries/{{id}} is routed"),
        }
        // HEAD is served by GET.
        assert!(matches!(
            router.lookup(&Method::HEAD, "/api/entries"),
            Lookup::Found { .. }
        ));
        assert!(matches!(
            router.lookup(&Method::GET, "/api/nothing"),
            Lookup::NotFound
        ));
        assert!(matches!(
            router.lookup(&Method::GET, "/api/entries/1/2"),
            Lookup::NotFound
        ));
    }

    #[test]
    fn wrong_method_lists_the_allowed_ones() {
        let router = table();
        match router.lookup(&Method::PUT, "/api/entries/x") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, "GET, DELETE, HEAD, OPTIONS"),
            _ => panic!("PUT is not allowed"),
        }
        assert_eq!(
            router.allowed_methods("/api/entries").as_deref(),
            Some("GET, POST, HEAD, OPTIONS")
        );
    }

    #[test]
    fn documents_every_route() {
        let router = table();
        let paths = router.openapi_paths();
        assert_eq!(
            paths["/api/entries/{id}"]["delete"]["summary"],
            "/api/entries/{id}"
        );
        assert_eq!(router.routes().len(), 4);
        assert!(PathParams::default().uuid("id").is_err());
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_duplicate_route_is_refused() {
        let mut router = table();
        router.add(Method::GET, "/api/entries", json!({}), |_req, _ctx| async {
            Ok(no_content())
        });
    }
}

//! The HTTP/1 server: accept loop, per-request dispatch with the shared rules (routing, 404,
//! 405, preflight, origin check, security headers, access log) and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::drain::LameDuck;
use crate::error::ApiError;
use crate::http::BodyReadTimeout;
use crate::response::{no_content, Body};
use crate::router::{Ctx, Lookup, Router};
use crate::security;
use crate::state::AppState;

/// Paths that health checkers poll.
const HEALTH_CHECK_PATHS: [&str; 2] = ["/livez", "/health"];

/// The route table and the state, shared by all connections.
#[derive(Clone)]
pub struct App {
    router: Arc<Router>,
    state: Arc<AppState>,
    lame_duck: LameDuck,
}

impl App {
    pub fn new(router: Arc<Router>, state: Arc<AppState>, lame_duck: LameDuck) -> Self {
        App {
            router,
            state,
            lame_duck,
        }
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Answers one request; never fails (errors become their JSON response).
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let request_headers = req.headers().clone();
        let cors_origins = &self.state.config.cors_origins;

        let mut response = match self.dispatch(req).await {
            Ok(response) => response,
            Err(err) => {
                if err.status.is_server_error() {
                    tracing::error!(
                        %method, %path, status = err.status.as_u16(), code = err.code,
                        cause = err.internal_cause().unwrap_or(""), "request failed"
                    );
                }
                err.into_response()
            }
        };

        let headers = response.headers_mut();
        security::apply_cors_headers(&request_headers, headers, cors_origins);
        security::apply_security_headers(headers);
        if self.lame_duck.is_draining() {
            // hyper closes the connection once this response is written; the client reconnects elsewhere.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let status = response.status().as_u16();
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        // Health checks arrive every few seconds from the supervisor and balancers: an idle service
        // should write next to nothing, so they are logged only at debug.
        if HEALTH_CHECK_PATHS.contains(&path.as_str()) {
            tracing::debug!(%method, %path, status, elapsed_ms, "request");
        } else {
            tracing::info!(%method, %path, status, elapsed_ms, "request");
        }
        response
    }

    async fn dispatch(&self, mut req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let config = &self.state.config;
        req.extensions_mut()
            .insert(BodyReadTimeout(config.body_read_timeout));
        if req.method() == Method::OPTIONS {
            return self.options(&req);
        }
        security::check_foreign_origin(req.method(), req.headers(), &config.cors_origins)?;
        match self.router.lookup(req.method(), req.uri().path()) {
            Lookup::NotFound => Err(ApiError::not_found()),
            Lookup::MethodNotAllowed(allow) => Err(ApiError::method_not_allowed(allow)),
            Lookup::Found { handler, params } => {
                let ctx = Ctx {
                    state: self.state.clone(),
                    params,
                };
                // Its own task, so that a panicking handler becomes a 500 instead of a dropped
                // connection.
                let handling = tokio::spawn(handler.call(req, ctx));
                match handling.await {
                    Ok(result) => result,
                    Err(join_error) => Err(ApiError::internal(format!(
                        "handler task failed: {join_error}"
                    ))),
                }
            }
        }
    }

    /// OPTIONS: a CORS preflight from an allowed origin, or the path's `Allow`.
    fn options(&self, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let Some(allow) = self.router.allowed_methods(req.uri().path()) else {
            return Err(ApiError::not_found());
        };
        let is_preflight = req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let mut response = no_content();
        if is_preflight {
            let origin = security::request_origin(req.headers()).unwrap_or("");
            if !security::is_allowed_cors_origin(origin, &self.state.config.cors_origins) {
                return Err(ApiError::forbidden(
                    "origin_not_allowed",
                    "Requests from this origin are not allowed.",
                ));
            }
            security::apply_preflight_headers(response.headers_mut(), &allow);
        }
        if let Ok(value) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, value);
        }
        Ok(response)
    }
}

/// Connection settings.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// How long a client may take to send a request head (slowloris guard).
    pub header_read_timeout: Duration,
    /// How long in-flight requests may take once shutdown begins.
    pub shutdown_timeout: Duration,
}

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish (closing idle connections at once) and returns when all connections are
/// closed or `shutdown_timeout` has passed. Returns whether every connection finished.
pub async fn serve(
    listener: TcpListener,
    app: App,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => serve_connection(&builder, &graceful, &app, stream, peer),
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!(
        open_connections = open,
        timeout_ms = options.shutdown_timeout.as_millis() as u64,
        "shutting down: no new connections, finishing in-flight requests"
    );
    match tokio::time::timeout(options.shutdown_timeout, graceful.shutdown()).await {
        Ok(()) => {
            tracing::info!("all connections closed");
            true
        }
        Err(_) => {
            tracing::warn!("shutdown timeout elapsed with requests still in flight");
            false
        }
    }
}

fn serve_connection(
    builder: &Arc<hyper::server::conn::http1::Builder>,
    graceful: &GracefulShutdown,
    app: &App,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let app = app.clone();
    let service = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.handle(req).await) }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%peer, error = %err, "connection ended with an error");
        }
    });
}

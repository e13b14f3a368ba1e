//! The HTTP API: [`Application::build`] binds the listener and assembles the actix app;
//! [`Application::run_until_stopped`] serves until the shutdown token fires, then stops
//! gracefully (stop accepting, let in-flight requests finish within
//! `http.shutdown_timeout_secs`).
//!
//! Reads `[http]`: `host`, `port`, `workers`, `body_limit_bytes`, `shutdown_timeout_secs`,
//! `client_request_timeout_ms`, `keep_alive_secs`, `request_timeout_ms`, `booking_timeout_ms`,
//! `cors_allowed_origins`, `cors_max_age_secs` (see [`guard`]).

pub mod auth;
pub mod cursor;
pub mod extract;
pub mod guard;
pub mod health;
pub mod legacy;
pub mod metrics;
pub mod query;
pub mod rate_limit;
pub mod response;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Condition, ErrorHandlers, from_fn};
use actix_web::{App, HttpMessage, HttpServer, web};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::error;
use crate::state::AppState;

/// Extra routes a caller adds to the app (tests use it for probes such as a slow handler).
pub type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A resource whose unmatched methods answer a JSON 405 (without it actix falls through to
/// the app's 404), under the request deadline ([`guard::deadline`]; it runs after routing,
/// where it may keep a handle on the request to answer in its place).
pub fn resource(
    path: &str,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    record_route(path);
    web::resource(path)
        .default_service(web::to(error::method_not_allowed))
        .wrap(from_fn(guard::deadline))
}

fn route_registry() -> &'static std::sync::Mutex<std::collections::BTreeSet<String>> {
    static ROUTES: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<String>>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(Default::default)
}

fn record_route(path: &str) {
    if let Ok(mut routes) = route_registry().lock() {
        routes.insert(path.to_owned());
    }
}

/// Every path registered through [`resource`] in this process (full paths: the API does not
/// use scopes, so that this list is complete). The contract test compares it with the
/// OpenAPI document.
pub fn registered_paths() -> Vec<String> {
    route_registry()
        .lock()
        .map(|routes| routes.iter().cloned().collect())
        .unwrap_or_default()
}

/// The features' route table, which the composition root ([`crate::app::routes`]) hands to
/// [`Application::build`]: this module knows no feature.
pub type RouteTable = fn(&mut web::ServiceConfig);

/// The routes every role's server has whatever the features: liveness, readiness, metrics.
fn own_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health").get(health::health))
        .service(
            resource("/ready")
                .wrap(from_fn(rate_limit::read))
                .get(health::ready),
        )
        .service(resource("/metrics").get(metrics::render_public));
}

/// Query-string errors in the envelope, naming the problem.
fn query_error(
    err: actix_web::error::QueryPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    let message = err.to_string();
    let field = message
        .split('`')
        .nth(1)
        .map_or_else(|| "query".to_owned(), |f| format!("query.{f}"));
    error::ApiError::field(field, message).into()
}

/// Path-segment errors in the envelope.
fn path_error(err: actix_web::error::PathError, _: &actix_web::HttpRequest) -> actix_web::Error {
    error::ApiError::field("path", err.to_string()).into()
}

/// A bound, not yet running, HTTP server.
pub struct Application {
    port: u16,
    server: Server,
    closing: CancellationToken,
}

impl Application {
    /// Binds `http.host:http.port` and builds the server with its own routes and `routes`.
    pub fn build(state: AppState, routes: RouteTable) -> anyhow::Result<Self> {
        Self::build_with(state, routes, None)
    }

    /// As [`Application::build`], with extra routes registered after the API's own.
    pub fn build_with(
        state: AppState,
        routes: RouteTable,
        extra: Option<ExtraRoutes>,
    ) -> anyhow::Result<Self> {
        let http = state.settings().http.clone();
        let listener = TcpListener::bind((http.host.as_str(), http.port))
            .map_err(|e| anyhow::anyhow!("binding {}:{}: {e}", http.host, http.port))?;
        let port = listener.local_addr()?.port();
        // Install the recorder before the first request is counted.
        let _ = metrics::handle();

        let closing = state.closing().clone();
        let data = web::Data::new(state);
        let body_limit = http.body_limit_bytes;
        let deadlines = guard::Deadlines::from_settings(&http);
        let head_limits = guard::HeadLimits {
            header_bytes: http.max_header_bytes,
            uri_bytes: http.max_uri_bytes,
        };
        let cors_settings = http.clone();
        let mut server = HttpServer::new(move || {
            let extra = extra.clone();
            App::new()
                .app_data(deadlines)
                .app_data(head_limits)
                .app_data(data.clone())
                .app_data(extract::BodyLimit(body_limit))
                .app_data(web::PayloadConfig::new(body_limit))
                .app_data(web::JsonConfig::default().limit(body_limit))
                .app_data(web::QueryConfig::default().error_handler(query_error))
                .app_data(web::PathConfig::default().error_handler(path_error))
                .configure(own_routes)
                .configure(routes)
                .configure(move |cfg| {
                    if let Some(extra) = &extra {
                        extra(cfg);
                    }
                })
                .default_service(web::to(error::not_found))
                .wrap(from_fn(legacy::envelope))
                // Innermost first (the request deadline is on each resource): CORS, JSON-ify actix's plain errors,
                // measure, security headers, tag the response with the request id, all inside
                // the request's tracing span.
                .wrap(Condition::new(
                    !cors_settings.cors_allowed_origins.is_empty(),
                    guard::cors(&cors_settings),
                ))
                .wrap(ErrorHandlers::new().default_handler(error::jsonify_error))
                .wrap(from_fn(guard::cookie_csrf))
                .wrap(from_fn(guard::limit_head))
                .wrap(from_fn(metrics::track))
                .wrap(guard::security_headers())
                .wrap(from_fn(request_id_header))
                .wrap(TracingLogger::default())
        })
        .disable_signals()
        .shutdown_timeout(http.shutdown_timeout_secs)
        .client_request_timeout(Duration::from_millis(http.client_request_timeout_ms))
        .keep_alive(Duration::from_secs(http.keep_alive_secs));
        if http.workers > 0 {
            server = server.workers(http.workers);
        }
        let server = server.listen(listener)?.run();
        tracing::info!(http.port = port, "HTTP server listening");
        Ok(Self {
            port,
            server,
            closing,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled, then stops gracefully and returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        tokio::select! {
            res = &mut server => {
                // The server stopped on its own: that is a failure of this role.
                res??;
                anyhow::bail!("HTTP server stopped unexpectedly");
            }
            () = shutdown.cancelled() => {
                tracing::info!("HTTP server draining in-flight requests");
                // Streams end now (their clients reconnect elsewhere); requests finish.
                self.closing.cancel();
                handle.stop(true).await;
                server.await??;
                tracing::info!("HTTP server stopped");
                Ok(())
            }
        }
    }
}

/// Adds `x-request-id` (from the tracing span's request id) to every response.
async fn request_id_header(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().copied();
    let mut res = next.call(req).await?;
    if let Some(id) = id
        && let Ok(value) = HeaderValue::from_str(&id.to_string())
    {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(res)
}

//! Prometheus metrics: one recorder per process, rendered at `GET /metrics`.
//!
//! The numbers are business volumes, so `/metrics` is not public: on the API's port it needs
//! `Authorization: Bearer <metrics.token>` ([`render_public`]); every role can also serve it on
//! an internal listener, `metrics.listen` ([`run_listener`]), which is how worker roles, which
//! have no API port, are scraped.
//!
//! HTTP metrics: `http_requests_total{method,route,status}` and the histogram
//! `http_request_duration_seconds{method,route}`, labelled by route *pattern* (`/api/events/{id}`),
//! never by raw path, so label cardinality stays bounded.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, http::header};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets in seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `booking_batch_size` buckets, in requests (the latency buckets would put every batch in
/// `+Inf` or `le="1"`).
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// Counters documented in docs/api.md (`GET /metrics`), registered at 0 when the recorder is installed so that
/// alerts and dashboards see them from start-up, not after first use.
pub const COUNTERS: &[&str] = &[
    "booking_backpressure_total",
    "booking_dead_letters_total",
    "booking_replays_total",
    "booking_rebalances_total",
    "notifications_sent_total",
    "notifications_retried_total",
    "notifications_failed_total",
    "notifications_refused_total",
    "page_sessions_renewed_total",
    "notifications_unverified_total",
    "cache_lookups_total",
    "cache_errors_total",
    "rate_limited_total",
    "login_throttled_total",
    "csrf_rejected_total",
    "auth_revocation_check_errors_total",
    "waiting_room_joins_total",
    "waiting_room_admitted_total",
    "waiting_room_tokens_used_total",
    "waiting_room_tokens_expired_total",
    "waiting_room_store_errors_total",
    "holds_expired_total",
    "payments_applied_total",
    "payments_captured_total",
    "payments_late_total",
    "payments_duplicate_total",
    "booking_writer_commit_failures_total",
    "payment_sessions_total",
    "payment_sessions_failed_total",
    "payment_webhooks_total",
    "refunds_total",
];

/// Gauges documented in docs/api.md, registered at 0 likewise.
pub const GAUGES: &[&str] = &[
    "booking_queue_depth",
    "notifications_dead_letters",
    "reconcile_drift_events",
    "reconcile_type_drift",
    "reconcile_money_drift_events",
    "reconcile_stuck_chores",
    "booking_chores_stuck",
    "waiting_room_streams",
];

/// Histograms documented in docs/api.md, registered (empty) likewise.
pub const HISTOGRAMS: &[&str] = &[
    "booking_batch_size",
    "booking_decision_latency_seconds",
    "waiting_room_wait_seconds",
];

/// The decision statuses `booking_decisions_total{status}` starts with.
const DECISION_STATUSES: &[&str] = &["confirmed", "held", "partial", "waitlisted", "rejected"];

fn register_documented() {
    for name in COUNTERS {
        metrics::counter!(*name).increment(0);
    }
    for status in DECISION_STATUSES {
        metrics::counter!("booking_decisions_total", "status" => *status).increment(0);
    }
    for name in GAUGES {
        metrics::gauge!(*name).increment(0.0);
    }
    for name in HISTOGRAMS {
        let _ = metrics::histogram!(*name);
    }
}

/// Installs the process-wide recorder once and returns its handle (`None` if another recorder
/// was installed first, in which case `/metrics` answers 503).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("booking_batch_size".to_owned()),
                    BATCH_SIZE_BUCKETS,
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            register_documented();
            Some(handle)
        })
        .as_ref()
}

/// `GET /metrics` on the public port: only with the configured bearer token (compared as
/// SHA-256 digests, so the comparison takes the same time however much of it matches).
pub async fn render_public(
    req: actix_web::HttpRequest,
    state: actix_web::web::Data<crate::state::AppState>,
) -> HttpResponse {
    use secrecy::ExposeSecret;
    use sha2::{Digest, Sha256};
    let configured = state.settings().metrics.token.as_ref();
    let Some(token) = configured.filter(|t| !t.expose_secret().is_empty()) else {
        return crate::error::error_response(
            actix_web::http::StatusCode::FORBIDDEN,
            "forbidden",
            "metrics are served on the internal listener (metrics.listen) or with metrics.token",
            &[],
        );
    };
    let given = crate::http::auth::bearer(&req).unwrap_or_default();
    if Sha256::digest(given.as_bytes()) != Sha256::digest(token.expose_secret().as_bytes()) {
        return crate::error::error_response(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the metrics token is missing or wrong",
            &[],
        );
    }
    render().await
}

/// The internal listener (`metrics.listen`), as a role: `GET /metrics`, and `GET /ready` with
/// what this process's roles report about themselves (a booking worker: the partitions it owns),
/// no authentication (bind it to an address only the scraper and operators reach). Idle when no
/// listener is configured.
pub async fn run_listener(
    state: crate::state::AppState,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let addr = state.settings().metrics.listen.clone();
    if addr.is_empty() {
        shutdown.cancelled().await;
        return Ok(());
    }
    let listener = std::net::TcpListener::bind(&addr)
        .map_err(|e| anyhow::anyhow!("binding metrics.listen {addr}: {e}"))?;
    let _ = handle();
    let data = actix_web::web::Data::new(state.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .route("/metrics", actix_web::web::get().to(render))
            .route("/ready", actix_web::web::get().to(status))
            .default_service(actix_web::web::to(crate::error::not_found))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tracing::info!(metrics.listen = %addr, "metrics listener up");
    let handle = server.handle();
    let mut task = tokio::spawn(server);
    tokio::select! {
        res = &mut task => {
            res??;
            anyhow::bail!("metrics listener stopped unexpectedly")
        }
        () = shutdown.cancelled() => {
            handle.stop(false).await;
            let _ = task.await;
            Ok(())
        }
    }
}

/// `GET /ready` on the internal listener: the process is up, and what its roles report.
async fn status(state: actix_web::web::Data<crate::state::AppState>) -> HttpResponse {
    crate::http::response::ok(
        serde_json::Value::Object(state.reported()),
        "What this process's roles report",
    )
}

/// `GET /metrics` in the Prometheus text format.
pub async fn render() -> HttpResponse {
    match handle() {
        Some(h) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4"))
            .body(h.render()),
        None => crate::error::error_response(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "metrics recorder unavailable",
            &[],
        ),
    }
}

/// Middleware recording request counts and latency per route pattern.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().to_string();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    Ok(res)
}

#[cfg(test)]
mod tests {
    #[test]
    fn batch_sizes_are_counted_in_requests_and_latencies_in_seconds() {
        let handle = super::handle().expect("the recorder");
        metrics::histogram!("booking_batch_size").record(37.0);
        metrics::histogram!("booking_decision_latency_seconds").record(0.003);
        let text = handle.render();
        assert!(
            text.contains("booking_batch_size_bucket{le=\"20\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("booking_batch_size_bucket{le=\"50\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("booking_decision_latency_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
    }
}

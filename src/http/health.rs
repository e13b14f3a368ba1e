//! `GET /health` (liveness, the seed's body) and `GET /ready` (readiness: pings Postgres, and
//! Redis and Kafka when configured; 503 naming what failed).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::{FieldError, error_response};
use crate::state::AppState;

/// How long each readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: the process answers. Body kept from the seed for its probes.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "OK",
        "message": "AtomicSeats API is running",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }))
}

/// Readiness: every configured dependency answers.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = serde_json::Map::new();
    let mut failed = Vec::new();

    let mut record = |name: &str, result: Option<anyhow::Result<()>>| match result {
        None => {
            checks.insert(name.to_owned(), json!("not configured"));
        }
        Some(Ok(())) => {
            checks.insert(name.to_owned(), json!("ok"));
        }
        Some(Err(e)) => {
            tracing::warn!(dependency = name, error = %e, "readiness check failed");
            checks.insert(name.to_owned(), json!("failed"));
            failed.push(FieldError::new(name, e.to_string()));
        }
    };

    let (pg, redis, kafka) = tokio::join!(
        crate::db::ping(state.db(), PROBE_TIMEOUT),
        async {
            match state.redis() {
                Some(pool) => Some(crate::redis::ping(pool, PROBE_TIMEOUT).await),
                None => None,
            }
        },
        state.booking_queue().ping()
    );
    record("postgres", Some(pg));
    record("redis", redis);
    record("kafka", kafka);

    if failed.is_empty() {
        crate::http::response::ok(json!({ "checks": checks }), "ready")
    } else {
        let names: Vec<&str> = failed.iter().map(|f| f.field.as_str()).collect();
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            &format!("not ready: {} unreachable", names.join(", ")),
            &failed,
        )
    }
}

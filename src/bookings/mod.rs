//! Bookings: the accept path, the batched booking worker, idempotency, waitlist and
//! cancellation.
//!
//! Status: the worker role exists so that `work-bookings` and `all` have their final shape; the
//! engine itself is issue #5.

use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// The `work-bookings` role. Until the engine lands it only waits for shutdown.
pub async fn run_worker(_state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::warn!("booking worker: the booking engine is not built yet; idling until shutdown");
    shutdown.cancelled().await;
    Ok(())
}

/// Called after an event's capacity was raised or its waitlist reopened (committed). The
/// waitlist is served by the booking engine (issue #5); until then there is nothing to serve.
pub async fn after_capacity_change(_state: &AppState, event_id: i64) {
    tracing::debug!(
        event.id = event_id,
        "capacity changed; waitlist serving arrives with the booking engine"
    );
}

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

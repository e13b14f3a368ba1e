//! Notifications: email for every booking outcome, sent from the outbox exactly once.
//!
//! Status: the worker role exists so that `work-notify` and `all` have their final shape; the
//! sender itself is issue #6.

use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// The `work-notify` role. Until notifications land it only waits for shutdown.
pub async fn run_worker(_state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::warn!("notification worker: not built yet; idling until shutdown");
    shutdown.cancelled().await;
    Ok(())
}

/// Called after a transaction wrote outbox rows: tells the notification sender to look. The
/// sender arrives with issue #6; until then rows wait in the outbox (nothing is lost).
pub fn wake(_state: &AppState) {}

//! The composition root: the one place that knows every feature, and so the one place that
//! builds an [`AppState`] with each feature's parts (see [`crate::state`]) and the HTTP route
//! table ([`routes`]). Infrastructure (`http`, `db`, `config`, `state`, `error`, …) never names a
//! feature; `tests/api/architecture.rs` checks it.

use crate::bookings::BookingQueue;
use crate::bookings::outcomes::OutcomeHub;
use crate::cache::EventCache;
use crate::config::{QueueKind, Settings};
use crate::http::{Application, ExtraRoutes};
use crate::mail::Mailer;
use crate::notifications::NotificationQueue;
use crate::payments::Payments;
use crate::state::AppState;
use crate::waiting_room::WaitingRoom;

/// Every feature's routes, in the order they are matched.
pub fn routes(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.configure(crate::users::configure)
        .configure(crate::bookings::configure)
        .configure(crate::events::configure)
        .configure(crate::waiting_room::configure)
        .configure(crate::tickets::configure)
        .configure(crate::payments::configure)
        .configure(crate::admin::configure)
        .configure(crate::openapi::configure)
        .configure(crate::web::configure);
}

/// The HTTP server of this application, bound (`extra`: routes a test adds after the API's).
pub fn server(state: AppState, extra: Option<ExtraRoutes>) -> anyhow::Result<Application> {
    Application::build_with(state, routes, extra)
}

/// The `serve` role: the HTTP API until `shutdown`.
pub async fn serve(
    state: AppState,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    server(state, None)?.run_until_stopped(shutdown).await
}

/// The state of a process running `role`: infrastructure plus every feature's parts.
pub fn build_state(settings: Settings, role: &str) -> anyhow::Result<AppState> {
    let builder = AppState::builder(settings, role)?;
    let settings = builder.settings();
    // Redis when configured; in-process only when every writer lives in this process
    // (in-process queue); otherwise no cache, so nothing can go stale.
    let event_cache = match (builder.redis(), builder.redis_shared(), settings.queue.kind) {
        (Some(pool), Some(shared), _) => EventCache::redis(
            pool.clone(),
            shared.clone(),
            settings.redis.key_prefix.clone(),
            std::time::Duration::from_millis(settings.redis.near_cache_ms),
        ),
        (_, _, QueueKind::Memory) => EventCache::memory(),
        (_, _, QueueKind::Kafka) => EventCache::none(),
    };
    let booking_queue = BookingQueue::from_settings(settings)?;
    let mailer = Mailer::from_settings(&settings.mail)?;
    let notification_queue = NotificationQueue::from_settings(settings)?;
    let waiting_room = WaitingRoom::new(settings, builder.redis_shared().cloned());
    let payments = Payments::from_settings(settings)?;
    Ok(builder
        .with(event_cache)
        .with(booking_queue)
        .with(OutcomeHub::default())
        .with(mailer)
        .with(notification_queue)
        .with(waiting_room)
        .with(payments)
        .build())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[tokio::test]
    async fn every_feature_finds_its_part() {
        let env = HashMap::from([("ATOMICSEATS_ENV".to_owned(), "test".to_owned())]);
        let settings =
            Settings::load(std::path::Path::new("/nonexistent"), &env).expect("defaults load");
        let state = build_state(settings, "test").expect("state");
        // Each accessor panics when its part is missing.
        let _ = state.event_cache().kind();
        let _ = state.booking_queue().memory();
        let _ = state.outcomes();
        let _ = state.mailer();
        let _ = state.notification_queue();
        let _ = state.rooms().kind();
        let _ = state.payments().stripe.is_some();
    }
}

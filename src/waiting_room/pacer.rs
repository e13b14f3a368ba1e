//! The pacer: admits buyers from each open waiting room at the pace of the seats left.
//!
//! It runs beside the booking writers (`work-bookings`, `all`) and reads the seats left from
//! what the writers publish after each commit (the event cache), so admission follows the
//! writer's view of the seats, not a sweep of the database: every `waiting_room.tick_ms` it
//! reads each open room's numbers, computes the frontier with [`domain::next_frontier`] and
//! moves it forward. Moving it is idempotent (a frontier only grows, to a target computed
//! from shared numbers), so several pacers in scale-out agree. Which events have an open room
//! is read from PostgreSQL every `DISCOVER` (one small query, off the polling path).

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tokio_util::sync::CancellationToken;

use crate::db::schema::events;
use crate::state::AppState;
use crate::waiting_room::{Settings, domain};

/// How often the set of open rooms is read again.
const DISCOVER: Duration = Duration::from_secs(2);

/// Events whose room is open now or opens before the next look: waiting room on, on sale
/// (or about to be), not started or cancelled. [`tick`] admits nobody before the on-sale.
async fn open_rooms(state: &AppState) -> anyhow::Result<Vec<i64>> {
    let mut conn = state.db().get().await?;
    let now = Utc::now();
    let soon = now + chrono::Duration::from_std(DISCOVER * 2).unwrap_or_default();
    Ok(events::table
        .filter(events::waiting_room)
        .filter(events::status.eq("active"))
        .filter(events::starts_at.gt(now))
        .filter(events::on_sale_at.is_null().or(events::on_sale_at.le(soon)))
        .select(events::id)
        .load(&mut conn)
        .await?)
}

/// One tick for one room: read, decide, advance.
pub async fn tick(state: &AppState, settings: &Settings, event_id: i64) -> anyhow::Result<()> {
    // The room first, then the seats: a token's use is recorded after its booking's commit
    // (which publishes the seats), so seats read after the uses they explain are never older
    // than them. Read the other way round, a use recorded in between looked like a seat still
    // free and admitted one buyer too many (seen under load in CI).
    let rooms = state.rooms();
    let now = Utc::now().timestamp_millis();
    let summary = rooms
        .summary(event_id, now - settings.ttl_ms, now - 1000)
        .await?;
    // The event as its writer last published it (the cache), else as stored.
    let event = match crate::events::service::lookup(state, event_id).await {
        Ok(e) => e,
        Err(crate::error::ApiError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(anyhow::anyhow!("reading event {event_id}: {e}")),
    };
    if event.on_sale_at.is_some_and(|t| Utc::now() < t) {
        return Ok(());
    }
    // The cap holds over any second: the frontier a second ago plus the cap.
    let cap = match (settings.max_admit_per_sec, summary.cap) {
        (0, 0) => None,
        (0, c) | (c, 0) => Some(c),
        (a, b) => Some(a.min(b)),
    }
    .map(|c| (summary.admitted_then + u64::from(c)).saturating_sub(summary.room.admitted));
    let pace = domain::Pace {
        seats_left: i64::from(event.available_seats()),
        seats_sold: i64::from(event.reserved_seats),
        seats_per_buyer: settings.seats_per_buyer,
        overadmit: settings.overadmit,
        cap,
        paused: summary.paused,
    };
    let target = domain::next_frontier(&summary.room, &pace);
    let expired = summary.room.closed.saturating_sub(summary.room.used_closed);
    let (moved, fresh) = rooms
        .advance(event_id, target, now, pace.seats_left <= 0, expired)
        .await?;
    if moved > 0 {
        metrics::counter!("waiting_room_admitted_total").increment(moved);
    }
    if fresh > 0 {
        metrics::counter!("waiting_room_tokens_expired_total").increment(fresh);
    }
    let waiting = summary
        .room
        .joined
        .saturating_sub(summary.room.admitted + moved);
    metrics::gauge!("waiting_room_length", "event" => event_id.to_string()).set(waiting as f64);
    Ok(())
}

/// The pacer role: ticks every open room until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings = Settings::from(state.settings());
    let mut ticker = tokio::time::interval(settings.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rooms: Vec<i64> = Vec::new();
    let mut discovered: Option<tokio::time::Instant> = None;
    let mut open_before: Vec<i64> = Vec::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        if discovered.is_none_or(|t| t.elapsed() >= DISCOVER) {
            match open_rooms(&state).await {
                Ok(found) => {
                    // Rooms that closed: their length is no longer waiting for anything.
                    for gone in open_before.iter().filter(|id| !found.contains(id)) {
                        metrics::gauge!("waiting_room_length", "event" => gone.to_string())
                            .set(0.0);
                    }
                    open_before.clone_from(&found);
                    rooms = found;
                    discovered = Some(tokio::time::Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "waiting room: cannot list open rooms"),
            }
        }
        for &id in &rooms {
            if let Err(e) = tick(&state, &settings, id).await {
                tracing::warn!(event.id = id, error = %e, "waiting room: pacing failed");
            }
        }
    }
}

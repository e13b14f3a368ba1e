//! Reconciliation: make every derived copy agree with PostgreSQL, the source of truth.
//!
//! One pass ([`run_once`]):
//! 1. rebuilds the event cache **in place** from PostgreSQL (never emptied first, so no live
//!    event is ever missing), repairing tampered or stale entries and deleting entries of events
//!    that no longer exist;
//! 2. verifies invariant 1 for every event (`reserved_seats` equals the sum of its held and
//!    confirmed bookings) and for every ticket type (`sold` likewise), and the money ledger
//!    (captured − refunded = what the paid bookings keep, [`crate::payments::ledger::drift`]);
//!    reports drift as a log line, the `reconcile_drift_events` and `reconcile_money_drift_events`
//!    gauges and a non-zero exit of `atomicseats reconcile`;
//!    and finds **stuck chores**: holds still held a minute after they were due and payments
//!    captured a minute ago and not applied — a booking writer that cannot apply them
//!    (`reconcile_stuck_chores`, an ERROR line each, a non-zero exit).
//!
//! 3. serves every waitlist that has free seats;
//! 4. re-publishes notifications that were not delivered in time, and counts dead letters
//!    (`notifications_dead_letters`).
//!
//! [`run`] loops on the cron schedule from `reconcile.schedule` (empty disables it); a failed
//! pass is logged and the loop goes on.

use std::str::FromStr;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::RunQueryDsl;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// One event whose counter disagrees with its bookings.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Drift {
    /// The event.
    #[diesel(sql_type = BigInt)]
    pub event_id: i64,
    /// `events.reserved_seats`.
    #[diesel(sql_type = Integer)]
    pub reserved_seats: i32,
    /// Sum of seats of its confirmed bookings.
    #[diesel(sql_type = BigInt)]
    pub confirmed_seats: i64,
}

/// One ticket type whose `sold` disagrees with its bookings.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct TypeDrift {
    /// The type.
    #[diesel(sql_type = BigInt)]
    pub ticket_type_id: i64,
    /// `ticket_types.sold`.
    #[diesel(sql_type = Integer)]
    pub sold: i32,
    /// Seats of its held and confirmed bookings.
    #[diesel(sql_type = BigInt)]
    pub booked: i64,
}

/// How late a hold's expiry or a payment's application may be before a pass reports it stuck.
pub const STUCK_AFTER_SECS: i64 = 60;

/// A hold or payment its writer should have applied and has not.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct StuckChore {
    /// The booking.
    #[diesel(sql_type = BigInt)]
    pub booking_id: i64,
    /// Its event.
    #[diesel(sql_type = BigInt)]
    pub event_id: i64,
    /// `hold_overdue` (held past its expiry) or `payment_unapplied` (captured, not applied).
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    /// Seconds since it was due.
    #[diesel(sql_type = BigInt)]
    pub late_secs: i64,
}

/// Holds and payments overdue by more than [`STUCK_AFTER_SECS`].
pub async fn stuck_chores(
    conn: &mut diesel_async::AsyncPgConnection,
) -> diesel::QueryResult<Vec<StuckChore>> {
    diesel::sql_query(
        "SELECT id AS booking_id, event_id, 'hold_overdue' AS kind, \
                extract(epoch FROM now() - expires_at)::BIGINT AS late_secs \
           FROM bookings WHERE status = 'held' \
            AND expires_at < now() - make_interval(secs => $1) \
         UNION ALL \
         SELECT booking_id, event_id, 'payment_unapplied', \
                extract(epoch FROM now() - coalesce(captured_at, created_at))::BIGINT \
           FROM payment_sessions WHERE state = 'captured' \
            AND coalesce(captured_at, created_at) < now() - make_interval(secs => $1) \
         ORDER BY 1",
    )
    .bind::<diesel::sql_types::Double, _>(STUCK_AFTER_SECS as f64)
    .load(conn)
    .await
}

/// What one pass found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Events whose counter drifted.
    pub drift: Vec<Drift>,
    /// Ticket types whose counter drifted.
    pub type_drift: Vec<TypeDrift>,
    /// Events whose ledger does not match their bookings.
    pub money_drift: Vec<crate::payments::ledger::MoneyDrift>,
    /// Holds and payments a writer has not applied in time.
    pub stuck: Vec<StuckChore>,
    /// Cache entries written or repaired.
    pub cache_written: usize,
    /// Stale cache entries removed.
    pub cache_removed: usize,
    /// Events whose waitlist got freed seats in this pass.
    pub waitlists_served: usize,
    /// Undelivered notifications handed to the queue again.
    pub notifications_republished: usize,
}

/// One reconciliation pass.
#[tracing::instrument(name = "reconcile", skip_all, err)]
pub async fn run_once(state: &AppState) -> anyhow::Result<Report> {
    let mut conn = state.db().get().await?;
    let (cache_written, cache_removed) = rebuild_cache(state, &mut conn).await?;
    drop(conn);
    let waitlists_served = crate::bookings::sweep_waitlists(state).await?;
    let notifications_republished = crate::notifications::worker::publish_due(state).await?;
    let mut conn = state.db().get().await?;
    let drift: Vec<Drift> = diesel::sql_query(
        "SELECT e.id AS event_id, e.reserved_seats, \
                COALESCE(SUM(b.seats) FILTER (WHERE b.status IN ('confirmed', 'held')), 0)::BIGINT AS confirmed_seats \
         FROM events e LEFT JOIN bookings b ON b.event_id = e.id \
         GROUP BY e.id \
         HAVING e.reserved_seats <> COALESCE(SUM(b.seats) FILTER (WHERE b.status IN ('confirmed', 'held')), 0) \
         ORDER BY e.id",
    )
    .load(&mut conn)
    .await?;
    // Bookings from before ticket types have none: they are the default type's.
    let type_drift: Vec<TypeDrift> = diesel::sql_query(
        "SELECT t.id AS ticket_type_id, t.sold, COALESCE(SUM(b.seats), 0)::BIGINT AS booked \
         FROM ticket_types t LEFT JOIN bookings b ON b.event_id = t.event_id \
              AND b.status IN ('confirmed', 'held') \
              AND (b.ticket_type_id = t.id OR (b.ticket_type_id IS NULL AND t.is_default)) \
         JOIN events e ON e.id = t.event_id AND e.status = 'active' \
         GROUP BY t.id HAVING t.sold <> COALESCE(SUM(b.seats), 0) ORDER BY t.id",
    )
    .load(&mut conn)
    .await?;
    let money_drift = crate::payments::ledger::drift(&mut conn).await?;
    let stuck = stuck_chores(&mut conn).await?;
    crate::users::model::drop_expired_username_holds(&mut conn).await?;
    metrics::gauge!("reconcile_stuck_chores").set(stuck.len() as f64);
    for c in &stuck {
        tracing::error!(
            booking.id = c.booking_id,
            event.id = c.event_id,
            chore = %c.kind,
            late_secs = c.late_secs,
            "stuck chore: the event's booking writer has not applied this hold or payment"
        );
    }
    metrics::gauge!("reconcile_money_drift_events").set(money_drift.len() as f64);
    for d in &type_drift {
        tracing::error!(
            ticket_type.id = d.ticket_type_id,
            ticket_type.sold = d.sold,
            ticket_type.booked = d.booked,
            "seat counter drift: a ticket type's sold differs from its bookings"
        );
    }
    for d in &money_drift {
        tracing::error!(
            event.id = d.event_id,
            ledger.net = d.net,
            ledger.expected = d.expected,
            "money drift: captured − refunded differs from what the paid bookings keep"
        );
    }
    metrics::gauge!("reconcile_drift_events").set(drift.len() as f64);
    for d in &drift {
        tracing::error!(
            event.id = d.event_id,
            event.reserved_seats = d.reserved_seats,
            event.confirmed_seats = d.confirmed_seats,
            "seat counter drift: reserved_seats differs from the sum of confirmed bookings"
        );
    }
    tracing::info!(
        drift.events = drift.len(),
        cache.written = cache_written,
        cache.removed = cache_removed,
        waitlists.served = waitlists_served,
        notifications.republished = notifications_republished,
        "reconciliation pass finished"
    );
    let failed: i64 = {
        use diesel::{ExpressionMethods, QueryDsl};
        crate::db::schema::outbox::table
            .filter(crate::db::schema::outbox::status.eq("failed"))
            .count()
            .get_result(&mut conn)
            .await?
    };
    metrics::gauge!("notifications_dead_letters").set(failed as f64);
    metrics::gauge!("reconcile_type_drift").set(type_drift.len() as f64);
    Ok(Report {
        drift,
        type_drift,
        money_drift,
        stuck,
        cache_written,
        cache_removed,
        waitlists_served,
        notifications_republished,
    })
}

/// Rebuilds the event cache in place; entries cached with a version above the row read are
/// re-read and repaired only if the fresh row is still older (tampering, not a newer write).
async fn rebuild_cache(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
) -> anyhow::Result<(usize, usize)> {
    let cache = state.event_cache();
    let events = crate::events::model::Event::all(conn).await?;
    let mut report = cache.rebuild(&events).await?;
    for (id, cached_version) in std::mem::take(&mut report.ahead) {
        if let Some(fresh) = crate::events::model::Event::find(conn, id).await?
            && cache.repair(&fresh, cached_version).await?
        {
            tracing::warn!(
                event.id = id,
                "repaired a cache entry ahead of the database"
            );
            report.written += 1;
        }
    }
    metrics::counter!("reconcile_cache_repairs_total").increment(report.written as u64);
    Ok((report.written, report.removed))
}

/// Loops on `reconcile.schedule` until `shutdown`; with `on_start`, runs a pass first.
pub async fn run(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings = &state.settings().reconcile;
    if settings.on_start {
        // A failed pass never stops the role: it is logged and the schedule goes on.
        let _ = run_once(&state).await;
    }
    let raw = settings.schedule.trim();
    if raw.is_empty() {
        tracing::info!("reconciliation schedule disabled");
        shutdown.cancelled().await;
        return Ok(());
    }
    let schedule =
        cron::Schedule::from_str(raw).map_err(|e| anyhow::anyhow!("`reconcile.schedule`: {e}"))?;
    loop {
        let Some(next) = schedule.upcoming(chrono::Utc).next() else {
            tracing::warn!("reconciliation schedule has no upcoming time; stopping the loop");
            shutdown.cancelled().await;
            return Ok(());
        };
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(wait) => {}
        }
        let _ = run_once(&state).await;
    }
}

//! Event writes as transactions: create, update and delete/cancel. Each locks the event row
//! (`FOR UPDATE`), so it serialises with the booking worker, which locks the same row; the cache
//! is written after the commit.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use crate::cache::Lookup;
use crate::db::schema::{bookings, events, ticket_types, users};
use crate::error::{ApiError, ApiResult};
use crate::events::domain::{self, Limits, UpdateEventBody};
use crate::events::model::{Event, NewEvent};
use crate::http::auth::AuthUser;
use crate::notifications::outbox::{self, NewNotification};
use crate::state::AppState;

/// Who may change an event: its host, or an admin.
/// One event, from the cache when it holds it, else from PostgreSQL (and then cached unless
/// cancelled). A tombstone does not say whether the event was deleted (404) or cancelled, so it
/// is answered like a miss. Cancelled events are returned: callers decide who may see them.
pub async fn lookup(state: &AppState, id: i64) -> ApiResult<Event> {
    if let Lookup::Hit(e) = state.event_cache().get(id).await {
        return Ok((*e).clone());
    }
    let mut conn = state.db().get().await?;
    let event = Event::find(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
    if !event.is_cancelled() {
        state.event_cache().put(&event).await;
    }
    Ok(event)
}

/// The configured event limits.
pub fn limits(state: &AppState) -> Limits {
    Limits {
        max_capacity: i64::from(state.settings().events.max_capacity),
        hold_secs: {
            let c = &state.settings().checkout;
            (
                i64::from(c.hold_min_secs),
                i64::from(c.hold_max_secs),
                i64::from(c.hold_default_secs),
            )
        },
    }
}

/// Inserts a validated event and caches it.
pub async fn create(state: &AppState, new: NewEvent) -> ApiResult<Event> {
    let mut conn = state.db().get().await?;
    let host_exists: Option<String> = users::table
        .find(new.host_id)
        .select(users::role)
        .first(&mut conn)
        .await
        .optional()?;
    match host_exists.as_deref() {
        None => return Err(ApiError::field("hostId", "no user with this id")),
        Some("guest") => {
            return Err(ApiError::field(
                "hostId",
                "this user is a guest; promote them to host first",
            ));
        }
        Some(_) => {}
    }
    let event = new.insert(&mut conn).await?;
    tracing::info!(
        event.id = event.id,
        event.host_id = event.host_id,
        "event created"
    );
    state.event_cache().put(&event).await;
    Ok(event)
}

/// Updates an event as `caller`. Capacity can go down only to the seats already reserved
/// (409 naming both numbers); raising it lets the waitlist be served.
pub async fn update(
    state: &AppState,
    caller: &AuthUser,
    body: UpdateEventBody,
) -> ApiResult<Event> {
    let id = body
        .id
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::field("id", "is required and must be a positive integer"))?;
    let limits = limits(state);
    let mut conn = state.db().get().await?;
    let caller = *caller;
    let (event, capacity_raised) = conn
        .transaction(async |conn| {
            let current = Event::lock(conn, id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
            if !caller.manages(conn, current.host_id).await? {
                return Err(ApiError::Forbidden(
                    "only the event's host or an admin may change it".to_owned(),
                ));
            }
            if current.is_cancelled() {
                return Err(ApiError::Conflict {
                    code: "event_cancelled",
                    message: "the event is cancelled and can no longer be changed".to_owned(),
                });
            }
            let now = Utc::now();
            let changes = domain::validate_update(&body, &current, limits, now)?;
            if let Some(capacity) = changes.capacity
                && capacity < current.reserved_seats
            {
                return Err(ApiError::Conflict {
                    code: "capacity_below_reserved",
                    message: format!(
                        "capacity {capacity} is below the {} seats already reserved",
                        current.reserved_seats
                    ),
                });
            }
            let raised = changes.capacity.is_some_and(|c| c > current.capacity)
                || (changes.waitlist_open == Some(true) && !current.waitlist_open);
            let updated = Event::update(conn, id, &changes).await?;
            Ok((updated, raised))
        })
        .await?;
    tracing::info!(
        event.id = event.id,
        event.version = event.version,
        "event updated"
    );
    state.event_cache().put(&event).await;
    if capacity_raised {
        crate::bookings::after_capacity_change(state, event.id).await;
    }
    Ok(event)
}

/// What deleting an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// The event was cancelled (it had bookings) rather than removed.
    pub cancelled: bool,
    /// Bookings cancelled.
    pub bookings_cancelled: usize,
    /// Waitlist entries cleared.
    pub waitlist_cleared: usize,
}

/// Deletes an event as `caller` by cancelling it: no more bookings, its bookings cancelled, its
/// waitlist cleared, every ticket holder and waiting buyer notified through the outbox. It
/// leaves listings and the cache at once; the row stays (see below).
pub async fn delete(
    state: &AppState,
    caller: &AuthUser,
    id: Option<i64>,
) -> ApiResult<(Event, Deleted)> {
    let id = id
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::field("id", "is required and must be a positive integer"))?;
    let mut conn = state.db().get().await?;
    let caller = *caller;
    let result = conn
        .transaction(async |conn| {
            let event = Event::lock(conn, id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
            if !caller.manages(conn, event.host_id).await? {
                return Err(ApiError::Forbidden(
                    "only the event's host or an admin may delete it".to_owned(),
                ));
            }
            if event.is_cancelled() {
                return Ok((
                    event,
                    Deleted {
                        cancelled: true,
                        bookings_cancelled: 0,
                        waitlist_cleared: 0,
                    },
                ));
            }
            // Never a hard delete, even without bookings: requests already queued for it
            // (in Kafka, acknowledged with 202) must still be decided and stored, which needs
            // the row. Cancelled events are gone from listings and hidden from everyone but
            // their managers.
            cancel_inner(conn, &event).await
        })
        .await?;
    let (event, deleted) = &result;
    tracing::info!(
        event.id = event.id,
        event.cancelled = deleted.cancelled,
        bookings.cancelled = deleted.bookings_cancelled,
        "event deleted"
    );
    state.event_cache().remove(id).await;
    crate::notifications::wake(state);
    Ok(result)
}

/// Cancels `event` (locked by the caller): bookings cancelled, seats released, waitlisted
/// requests closed, outbox rows for everyone affected.
async fn cancel_inner(conn: &mut AsyncPgConnection, event: &Event) -> ApiResult<(Event, Deleted)> {
    let now = Utc::now();
    // Unpaid bookings (confirmed free or instant ones, and holds) are cancelled; paid ones wait
    // for their refund, run from the outbox.
    let mut cancelled: Vec<(i64, i64, i32, i64)> = diesel::update(
        bookings::table
            .filter(bookings::event_id.eq(event.id))
            .filter(bookings::status.eq_any(["confirmed", "held"]))
            .filter(bookings::paid_at.is_null()),
    )
    .set((
        bookings::status.eq("cancelled"),
        bookings::cancelled_at.eq(now),
        bookings::expires_at.eq(None::<chrono::DateTime<Utc>>),
    ))
    .returning((
        bookings::id,
        bookings::user_id,
        bookings::seats,
        bookings::cost,
    ))
    .get_results(conn)
    .await?;
    let paid: Vec<(i64, i64, i32, i64)> = diesel::update(
        bookings::table
            .filter(bookings::event_id.eq(event.id))
            .filter(bookings::status.eq("confirmed"))
            .filter(bookings::paid_at.is_not_null()),
    )
    .set((
        bookings::status.eq("refund_pending"),
        bookings::cancelled_at.eq(now),
    ))
    .returning((
        bookings::id,
        bookings::user_id,
        bookings::seats,
        bookings::cost,
    ))
    .get_results(conn)
    .await?;
    let mut refunds = Vec::new();
    for (booking_id, user_id, _, _) in &paid {
        refunds.extend(
            crate::payments::refund::jobs_for_cancelled(
                conn,
                event,
                *booking_id,
                *user_id,
                "event_cancelled",
            )
            .await?,
        );
    }
    outbox::enqueue(conn, &refunds).await?;
    cancelled.extend(paid);
    diesel::update(ticket_types::table.filter(ticket_types::event_id.eq(event.id)))
        .set(ticket_types::sold.eq(0))
        .execute(conn)
        .await?;
    // Requests that were only waiting are closed as rejected; partly confirmed ones keep their
    // (now cancelled) confirmation.
    let waiting = crate::bookings::engine::take_off_waitlist(
        conn,
        event.id,
        None,
        crate::bookings::domain::Status::Confirmed,
        crate::bookings::domain::Reason::EventClosed,
    )
    .await?;
    let updated: Event = diesel::update(events::table.find(event.id))
        .set((
            events::status.eq("cancelled"),
            events::cancelled_at.eq(now),
            events::reserved_seats.eq(0),
            events::version.eq(events::version + 1),
        ))
        .returning(Event::as_returning())
        .get_result(conn)
        .await?;
    let event_facts = json!({
        "eventId": event.id,
        "eventName": event.name,
        "venue": event.venue,
        "startsAt": event.starts_at,
    });
    let mut rows = Vec::with_capacity(cancelled.len() + waiting.len());
    for (booking_id, user_id, seats, cost) in &cancelled {
        let mut payload = event_facts.clone();
        payload["bookingId"] = json!(booking_id);
        payload["seats"] = json!(seats);
        payload["cost"] = json!(cost);
        rows.push(NewNotification::new(
            crate::notifications::kind::Notice::EventCancelled,
            *user_id,
            Some(event.id),
            payload,
        ));
    }
    for w in &waiting {
        let mut payload = event_facts.clone();
        payload["requestId"] = json!(w.request_id);
        payload["seatsWaited"] = json!(w.seats);
        rows.push(NewNotification::new(
            crate::notifications::kind::Notice::EventCancelledWaitlist,
            w.user_id,
            Some(event.id),
            payload,
        ));
    }
    outbox::enqueue(conn, &rows).await?;
    Ok((
        updated,
        Deleted {
            cancelled: true,
            bookings_cancelled: cancelled.len(),
            waitlist_cleared: waiting.len(),
        },
    ))
}

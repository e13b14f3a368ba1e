//! Deciding bookings in PostgreSQL: one transaction per event group.
//!
//! [`decide`] takes every queued request of one event (arrival order), locks the event row once,
//! drops requests that were already decided (redelivery: invariant 2), allocates in memory
//! ([`super::domain::allocate`]: waitlist first, then new requests, first-fit), and writes the
//! whole group with multi-row inserts, one counter update and the outbox rows (invariant 5), all
//! in one commit. The database's `CHECK` on `reserved_seats` backs invariant 1.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use crate::bookings::domain::{
    self, BookingRequest, EventSeats, Outcome, Plan, Reason, Status, WaitEntry,
};
use crate::db::schema::{booking_requests, bookings, events, waitlist};
use crate::events::model::Event;

/// A stored request row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = booking_requests)]
pub struct StoredRequest {
    /// Request id.
    pub id: Uuid,
    /// Buyer.
    pub user_id: i64,
    /// Event.
    pub event_id: i64,
    /// Seats asked.
    pub seats: i32,
    /// Partial allowed.
    pub allow_partial: bool,
    /// Waitlist wanted.
    pub join_waitlist: bool,
    /// State.
    pub status: String,
    /// Seats confirmed.
    pub seats_confirmed: i32,
    /// Seats waiting.
    pub seats_waitlisted: i32,
    /// Rejection reason.
    pub reject_reason: Option<String>,
    /// Cost of the confirmed seats.
    pub cost: i64,
}

/// A row for the bulk insert below.
struct NewRequestRow<'a> {
    id: Uuid,
    user_id: i64,
    event_id: i64,
    seats: i32,
    allow_partial: bool,
    join_waitlist: bool,
    idempotency_key: Option<&'a str>,
    status: &'static str,
    seats_confirmed: i32,
    seats_waitlisted: i32,
    reject_reason: Option<&'static str>,
    cost: i64,
    requested_at: chrono::DateTime<Utc>,
}

/// A row for the bulk insert below.
struct NewBookingRow {
    request_id: Uuid,
    user_id: i64,
    event_id: i64,
    seats: i32,
    cost: i64,
}

/// A row for the bulk insert below.
struct NewWaitRow {
    request_id: Uuid,
    user_id: i64,
    event_id: i64,
    seats: i32,
    allow_partial: bool,
}

/// A row for the bulk insert below.
struct NewOutboxRow {
    kind: &'static str,
    user_id: Option<i64>,
    event_id: Option<i64>,
    payload: serde_json::Value,
}

/// What a decision pass produced.
#[derive(Debug, Clone, Default)]
pub struct Decided {
    /// One outcome per input request, input order.
    pub outcomes: Vec<Outcome>,
    /// Outcomes of waitlist entries that got seats in this pass.
    pub served: Vec<Outcome>,
    /// The event row after the pass (for the cache), when it still exists.
    pub event: Option<Event>,
    /// Outbox rows written (notifications to wake up for).
    pub notifications: usize,
}

impl StoredRequest {
    /// The outcome this stored row describes.
    pub fn outcome(&self, booking_id: Option<i64>, position: Option<i64>) -> Outcome {
        Outcome {
            request_id: self.id,
            event_id: self.event_id,
            user_id: self.user_id,
            status: Status::parse(&self.status).unwrap_or(Status::Rejected),
            seats_requested: self.seats,
            seats_confirmed: self.seats_confirmed,
            seats_waitlisted: self.seats_waitlisted,
            booking_id,
            cost: self.cost,
            position,
            reason: self.reject_reason.as_deref().and_then(Reason::parse),
            allow_partial: self.allow_partial,
            join_waitlist: self.join_waitlist,
        }
    }
}

/// The outcome of a stored request, with its latest booking and current waitlist position.
pub async fn stored_outcome(
    conn: &mut AsyncPgConnection,
    row: &StoredRequest,
) -> QueryResult<Outcome> {
    let booking_id: Option<i64> = bookings::table
        .filter(bookings::request_id.eq(row.id))
        .select(diesel::dsl::max(bookings::id))
        .first(conn)
        .await?;
    let position = if row.seats_waitlisted > 0 {
        waitlist_position(conn, row.id).await?
    } else {
        None
    };
    Ok(row.outcome(booking_id, position))
}

/// 1-based place of a request in its event's waitlist.
pub async fn waitlist_position(
    conn: &mut AsyncPgConnection,
    request: Uuid,
) -> QueryResult<Option<i64>> {
    let mine: Option<(i64, i64)> = waitlist::table
        .filter(waitlist::request_id.eq(request))
        .select((waitlist::id, waitlist::event_id))
        .first(conn)
        .await
        .optional()?;
    let Some((id, event)) = mine else {
        return Ok(None);
    };
    let ahead: i64 = waitlist::table
        .filter(waitlist::event_id.eq(event))
        .filter(waitlist::id.le(id))
        .count()
        .get_result(conn)
        .await?;
    Ok(Some(ahead))
}

/// Decides one event's group of requests (arrival order) in one transaction. Safe to repeat:
/// requests already decided return their stored outcome and change nothing.
pub async fn decide(
    conn: &mut AsyncPgConnection,
    event_id: i64,
    requests: &[BookingRequest],
) -> anyhow::Result<Decided> {
    // A concurrent insert of the same request id (the same idempotency key sent for two events
    // at once) makes one transaction fail on the primary key; the retry then sees it as decided.
    let mut attempt = 0;
    loop {
        let result = conn
            .transaction(async |conn| {
                let Some(event) = Event::lock(conn, event_id).await? else {
                    return Ok(Decided {
                        outcomes: requests
                            .iter()
                            .map(|r| unstored_rejection(r, Reason::EventClosed))
                            .collect(),
                        ..Decided::default()
                    });
                };
                decide_locked(conn, event, requests).await
            })
            .await;
        match result {
            Err(e) if attempt < 3 && is_unique_violation(&e) => {
                attempt += 1;
                tracing::debug!(
                    event.id = event_id,
                    "request id raced with another batch; retrying"
                );
            }
            other => return other,
        }
    }
}

fn is_unique_violation(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<diesel::result::Error>(),
        Some(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

/// A rejection that could not be stored (its event no longer exists).
fn unstored_rejection(r: &BookingRequest, reason: Reason) -> Outcome {
    Outcome {
        request_id: r.request_id,
        event_id: r.event_id,
        user_id: r.user_id,
        status: Status::Rejected,
        seats_requested: r.seats,
        seats_confirmed: 0,
        seats_waitlisted: 0,
        booking_id: None,
        cost: 0,
        position: None,
        reason: Some(reason),
        allow_partial: r.allow_partial,
        join_waitlist: r.join_waitlist,
    }
}

#[derive(QueryableByName)]
struct UserSeats {
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = BigInt)]
    seats: i64,
}

/// The pass on a locked event row (the caller holds the transaction).
pub async fn decide_locked(
    conn: &mut AsyncPgConnection,
    event: Event,
    requests: &[BookingRequest],
) -> anyhow::Result<Decided> {
    let now = Utc::now();
    // During a flash sale these tables grow from nothing to 100k rows within a minute, faster
    // than autovacuum refreshes their statistics; with stale statistics the planner picks a
    // sequential scan for `id = ANY($1)` (O(rows × batch)). Every statement below has an index
    // path, so take sequential scans off the table for this transaction only.
    diesel::sql_query("SET LOCAL enable_seqscan = off")
        .execute(conn)
        .await?;
    // 1. Redelivered or retried requests: answer from what is stored, change nothing.
    let ids: Vec<Uuid> = requests.iter().map(|r| r.request_id).collect();
    let existing: Vec<StoredRequest> = if ids.is_empty() {
        Vec::new()
    } else {
        booking_requests::table
            .filter(booking_requests::id.eq_any(&ids))
            .select(StoredRequest::as_select())
            .load(conn)
            .await?
    };
    let mut known: HashMap<Uuid, Outcome> = HashMap::new();
    for row in &existing {
        known.insert(row.id, stored_outcome(conn, row).await?);
    }
    let mut seen = HashSet::new();
    let fresh: Vec<&BookingRequest> = requests
        .iter()
        .filter(|r| !known.contains_key(&r.request_id) && seen.insert(r.request_id))
        .collect();
    let fresh_owned: Vec<BookingRequest> = fresh.iter().map(|r| (*r).clone()).collect();

    // 2. What the allocator needs: free seats, the serveable head of the waitlist, the cap.
    let free = (event.capacity - event.reserved_seats).max(0);
    let waiting: Vec<WaitEntry> = if free > 0 {
        waitlist::table
            .filter(waitlist::event_id.eq(event.id))
            .filter(
                waitlist::seats
                    .le(free)
                    .or(waitlist::allow_partial.eq(true)),
            )
            .order(waitlist::id.asc())
            .limit(i64::from(free))
            .select((
                waitlist::id,
                waitlist::request_id,
                waitlist::user_id,
                waitlist::seats,
                waitlist::allow_partial,
            ))
            .for_update()
            .load::<(i64, Uuid, i64, i32, bool)>(conn)
            .await?
            .into_iter()
            .map(
                |(id, request_id, user_id, seats, allow_partial)| WaitEntry {
                    id,
                    request_id,
                    user_id,
                    seats,
                    allow_partial,
                },
            )
            .collect()
    } else {
        Vec::new()
    };
    let mut held: HashMap<i64, i32> = HashMap::new();
    if event.max_per_user.is_some() && !fresh_owned.is_empty() {
        let users: Vec<i64> = fresh_owned
            .iter()
            .map(|r| r.user_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let rows: Vec<UserSeats> = diesel::sql_query(
            "SELECT user_id, SUM(seats)::BIGINT AS seats FROM ( \
               SELECT user_id, seats FROM bookings WHERE event_id = $1 AND status = 'confirmed' AND user_id = ANY($2) \
               UNION ALL \
               SELECT user_id, seats FROM waitlist WHERE event_id = $1 AND user_id = ANY($2)) s \
             GROUP BY user_id",
        )
        .bind::<BigInt, _>(event.id)
        .bind::<diesel::sql_types::Array<BigInt>, _>(&users)
        .load(conn)
        .await?;
        for r in rows {
            held.insert(r.user_id, i32::try_from(r.seats).unwrap_or(i32::MAX));
        }
    }
    let seats = EventSeats {
        capacity: event.capacity,
        reserved: event.reserved_seats,
        max_per_user: event.max_per_user,
        waitlist_open: event.waitlist_open,
        closed: event.closed_at(now).is_some(),
    };
    let plan: Plan = domain::allocate(seats, &waiting, &fresh_owned, &held);

    if plan.seats_confirmed == 0 && fresh_owned.is_empty() {
        // Nothing to write: only redeliveries, or a waitlist that cannot be served.
        return Ok(Decided {
            outcomes: requests
                .iter()
                .filter_map(|r| known.get(&r.request_id).cloned())
                .collect(),
            event: Some(event),
            ..Decided::default()
        });
    }

    let price = event.price;
    let mut outbox_rows: Vec<NewOutboxRow> = Vec::new();
    let facts = json!({
        "eventId": event.id,
        "eventName": event.name,
        "venue": event.venue,
        "startsAt": event.starts_at,
        "price": price,
    });
    let note = |kind: &'static str, user: i64, extra: serde_json::Value| {
        let mut payload = facts.clone();
        if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        NewOutboxRow {
            kind,
            user_id: Some(user),
            event_id: Some(event.id),
            payload,
        }
    };

    // 3. Waitlist entries that got seats.
    let mut new_bookings: Vec<NewBookingRow> = Vec::new();
    let mut fully_served = 0i64;
    for s in &plan.served {
        let remaining = s.entry.seats - s.confirmed;
        if remaining == 0 {
            diesel::delete(waitlist::table.find(s.entry.id))
                .execute(conn)
                .await?;
            fully_served += 1;
        } else {
            diesel::update(waitlist::table.find(s.entry.id))
                .set(waitlist::seats.eq(remaining))
                .execute(conn)
                .await?;
        }
        diesel::update(booking_requests::table.find(s.entry.request_id))
            .set((
                booking_requests::seats_confirmed
                    .eq(booking_requests::seats_confirmed + s.confirmed),
                booking_requests::seats_waitlisted
                    .eq(booking_requests::seats_waitlisted - s.confirmed),
                booking_requests::cost.eq(booking_requests::cost + i64::from(s.confirmed) * price),
                booking_requests::status.eq(diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
                    "CASE WHEN seats_confirmed + {c} >= seats THEN 'confirmed' ELSE 'partial' END",
                    c = s.confirmed
                ))),
            ))
            .execute(conn)
            .await?;
        new_bookings.push(NewBookingRow {
            request_id: s.entry.request_id,
            user_id: s.entry.user_id,
            event_id: event.id,
            seats: s.confirmed,
            cost: i64::from(s.confirmed) * price,
        });
    }

    // 4. New requests: their rows with the outcome, bookings, waitlist entries.
    let waitlist_before: i64 = if plan.decided.iter().any(|d| d.waitlisted > 0) {
        waitlist::table
            .filter(waitlist::event_id.eq(event.id))
            .count()
            .get_result(conn)
            .await?
    } else {
        0
    };
    let mut rows = Vec::with_capacity(fresh_owned.len());
    let mut wait_rows = Vec::new();
    let mut positions: HashMap<Uuid, i64> = HashMap::new();
    let mut next_position = waitlist_before - fully_served;
    for d in &plan.decided {
        let r = &fresh_owned[d.index];
        let status = Status::of(d.confirmed, d.waitlisted, r.seats);
        rows.push(NewRequestRow {
            id: r.request_id,
            user_id: r.user_id,
            event_id: event.id,
            seats: r.seats,
            allow_partial: r.allow_partial,
            join_waitlist: r.join_waitlist,
            idempotency_key: r.idempotency_key.as_deref(),
            status: status.as_str(),
            seats_confirmed: d.confirmed,
            seats_waitlisted: d.waitlisted,
            reject_reason: d.reason.map(Reason::as_str),
            cost: i64::from(d.confirmed) * price,
            requested_at: r.requested_at,
        });
        if d.confirmed > 0 {
            new_bookings.push(NewBookingRow {
                request_id: r.request_id,
                user_id: r.user_id,
                event_id: event.id,
                seats: d.confirmed,
                cost: i64::from(d.confirmed) * price,
            });
        }
        if d.waitlisted > 0 {
            next_position += 1;
            positions.insert(r.request_id, next_position);
            wait_rows.push(NewWaitRow {
                request_id: r.request_id,
                user_id: r.user_id,
                event_id: event.id,
                seats: d.waitlisted,
                allow_partial: r.allow_partial,
            });
        }
    }
    insert_requests(conn, &rows).await?;
    let booking_ids = insert_bookings(conn, &new_bookings).await?;
    insert_waitlist(conn, &wait_rows).await?;

    // 5. One counter update for the whole group.
    let updated: Event = diesel::update(events::table.find(event.id))
        .set((
            events::reserved_seats.eq(events::reserved_seats + plan.seats_confirmed),
            events::version.eq(events::version + 1),
        ))
        .returning(Event::as_returning())
        .get_result(conn)
        .await?;

    // 6. Outcomes and their notifications.
    let mut fresh_outcomes: HashMap<Uuid, Outcome> = HashMap::new();
    for d in &plan.decided {
        let r = &fresh_owned[d.index];
        let status = Status::of(d.confirmed, d.waitlisted, r.seats);
        let cost = i64::from(d.confirmed) * price;
        let outcome = Outcome {
            request_id: r.request_id,
            event_id: event.id,
            user_id: r.user_id,
            status,
            seats_requested: r.seats,
            seats_confirmed: d.confirmed,
            seats_waitlisted: d.waitlisted,
            booking_id: booking_ids.get(&r.request_id).copied(),
            cost,
            position: positions.get(&r.request_id).copied(),
            reason: d.reason,
            allow_partial: r.allow_partial,
            join_waitlist: r.join_waitlist,
        };
        let kind = match status {
            Status::Confirmed => "booking_confirmed",
            Status::Partial => "booking_partial",
            Status::Waitlisted => "booking_waitlisted",
            Status::Rejected | Status::Pending => "booking_rejected",
        };
        outbox_rows.push(note(
            kind,
            r.user_id,
            json!({
                "requestId": r.request_id,
                "seatsRequested": r.seats,
                "seats": d.confirmed,
                "seatsWaitlisted": d.waitlisted,
                "cost": cost,
                "bookingId": outcome.booking_id,
                "position": outcome.position,
                "reason": d.reason.map(Reason::as_str),
            }),
        ));
        fresh_outcomes.insert(r.request_id, outcome);
    }
    let mut served = Vec::with_capacity(plan.served.len());
    for s in &plan.served {
        let booking_id = booking_ids.get(&s.entry.request_id).copied();
        outbox_rows.push(note(
            "waitlist_confirmed",
            s.entry.user_id,
            json!({
                "requestId": s.entry.request_id,
                "seats": s.confirmed,
                "seatsStillWaiting": s.entry.seats - s.confirmed,
                "cost": i64::from(s.confirmed) * price,
                "bookingId": booking_id,
            }),
        ));
        let row: StoredRequest = booking_requests::table
            .find(s.entry.request_id)
            .select(StoredRequest::as_select())
            .first(conn)
            .await?;
        served.push(row.outcome(booking_id, None));
    }
    let notifications = outbox_rows.len();
    insert_outbox(conn, &outbox_rows).await?;

    let outcomes = requests
        .iter()
        .filter_map(|r| {
            fresh_outcomes
                .get(&r.request_id)
                .or_else(|| known.get(&r.request_id))
                .cloned()
        })
        .collect();
    Ok(Decided {
        outcomes,
        served,
        event: Some(updated),
        notifications,
    })
}

// Bulk inserts as `INSERT … SELECT FROM UNNEST(arrays)`: one fixed statement text whatever the
// batch size, so PostgreSQL prepares it once. Multi-row `VALUES` lists change text with every row
// count and were re-parsed and re-planned (up to thousands of parameters) for every batch.

async fn insert_requests(
    conn: &mut AsyncPgConnection,
    rows: &[NewRequestRow<'_>],
) -> QueryResult<()> {
    use diesel::sql_types::{
        Array, Bool, Int4, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid,
    };
    if rows.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "INSERT INTO booking_requests (id, user_id, event_id, seats, allow_partial, join_waitlist, \
           idempotency_key, status, seats_confirmed, seats_waitlisted, reject_reason, cost, requested_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int4[], $5::bool[], $6::bool[], \
           $7::text[], $8::text[], $9::int4[], $10::int4[], $11::text[], $12::int8[], $13::timestamptz[])",
    )
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind::<Array<Int8>, _>(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
    .bind::<Array<Int8>, _>(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(rows.iter().map(|r| r.seats).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(rows.iter().map(|r| r.allow_partial).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(rows.iter().map(|r| r.join_waitlist).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.idempotency_key).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.status).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(rows.iter().map(|r| r.seats_confirmed).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(rows.iter().map(|r| r.seats_waitlisted).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.reject_reason).collect::<Vec<_>>())
    .bind::<Array<Int8>, _>(rows.iter().map(|r| r.cost).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.requested_at).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(drop)
}

#[derive(QueryableByName)]
struct InsertedBooking {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    request_id: Uuid,
}

async fn insert_bookings(
    conn: &mut AsyncPgConnection,
    rows: &[NewBookingRow],
) -> QueryResult<HashMap<Uuid, i64>> {
    use diesel::sql_types::{Array, Int4, Int8, Uuid as SqlUuid};
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let inserted: Vec<InsertedBooking> = diesel::sql_query(
        "INSERT INTO bookings (request_id, user_id, event_id, seats, cost) \
         SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int4[], $5::int8[]) \
         RETURNING id, request_id",
    )
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.request_id).collect::<Vec<_>>())
    .bind::<Array<Int8>, _>(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
    .bind::<Array<Int8>, _>(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(rows.iter().map(|r| r.seats).collect::<Vec<_>>())
    .bind::<Array<Int8>, _>(rows.iter().map(|r| r.cost).collect::<Vec<_>>())
    .load(conn)
    .await?;
    Ok(inserted.into_iter().map(|b| (b.request_id, b.id)).collect())
}

async fn insert_waitlist(conn: &mut AsyncPgConnection, rows: &[NewWaitRow]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Bool, Int4, Int8, Uuid as SqlUuid};
    if rows.is_empty() {
        return Ok(());
    }
    // WITH ORDINALITY keeps arrival order in the identity ids (the FIFO order).
    diesel::sql_query(
        "INSERT INTO waitlist (request_id, user_id, event_id, seats, allow_partial) \
         SELECT r, u, e, s, p FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int4[], $5::bool[]) \
           WITH ORDINALITY AS t(r, u, e, s, p, n) ORDER BY n",
    )
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.request_id).collect::<Vec<_>>())
    .bind::<Array<Int8>, _>(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
    .bind::<Array<Int8>, _>(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(rows.iter().map(|r| r.seats).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(rows.iter().map(|r| r.allow_partial).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(drop)
}

async fn insert_outbox(conn: &mut AsyncPgConnection, rows: &[NewOutboxRow]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Int8, Jsonb, Nullable, Text};
    if rows.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "INSERT INTO outbox (kind, user_id, event_id, payload) \
         SELECT k, u, e, p FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::jsonb[]) \
           WITH ORDINALITY AS t(k, u, e, p, n) ORDER BY n",
    )
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
    .bind::<Array<Nullable<Int8>>, _>(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Int8>>, _>(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(rows.iter().map(|r| r.payload.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(drop)
}

/// Events that have free seats and a waitlist (the reconciliation sweep).
pub async fn events_with_serveable_waitlists(
    conn: &mut AsyncPgConnection,
) -> QueryResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let rows: Vec<Id> = diesel::sql_query(
        "SELECT e.id FROM events e \
         WHERE e.status = 'active' AND e.reserved_seats < e.capacity \
           AND EXISTS (SELECT 1 FROM waitlist w WHERE w.event_id = e.id \
                       AND (w.seats <= e.capacity - e.reserved_seats OR w.allow_partial))",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

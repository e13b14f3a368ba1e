//! Booking SQL outside the writer's hot path: stored outcomes (the status endpoint, retries),
//! the waitlist service after a write outside the writer (a cancellation, a capacity raise, the
//! reconciliation sweep) and the reads the writer needs to load an event's state.
//!
//! New requests are decided only by [`super::writer`]; serving a waitlist here takes the event
//! row lock and bumps the event's version, so the writer's next commit on stale state fails and
//! it reloads.

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use crate::bookings::domain::{self, EventSeats, Holdings, Outcome, Reason, Status, WaitEntry};
use crate::db::schema::{booking_requests, bookings, events, outbox, ticket_types};
use crate::db::views::waitlist;
use crate::events::model::Event;
use crate::notifications::kind::Notice;

/// A waitlist row as the allocator sees it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = waitlist)]
struct WaitRow {
    request_id: Uuid,
    user_id: i64,
    seats: i32,
    allow_partial: bool,
    price_quoted: i64,
    ticket_type_id: Option<i64>,
}

impl From<WaitRow> for WaitEntry {
    fn from(r: WaitRow) -> Self {
        Self {
            request_id: r.request_id,
            user_id: r.user_id,
            seats: r.seats,
            allow_partial: r.allow_partial,
            price_quoted: r.price_quoted,
            ticket_type_id: r.ticket_type_id,
        }
    }
}

/// An event's whole waitlist, FIFO (the writer's state when it loads an event).
pub async fn waitlist_of(
    conn: &mut AsyncPgConnection,
    event_id: i64,
) -> QueryResult<Vec<WaitEntry>> {
    Ok(waitlist::table
        .filter(waitlist::event_id.eq(event_id))
        .order(waitlist::id.asc())
        .select(WaitRow::as_select())
        .load::<WaitRow>(conn)
        .await?
        .into_iter()
        .map(WaitEntry::from)
        .collect())
}

/// The waiting-room admissions (ranks) requests of the event have used.
pub async fn admissions_used(
    conn: &mut AsyncPgConnection,
    event_id: i64,
) -> QueryResult<std::collections::HashSet<u64>> {
    use crate::db::schema::booking_requests;
    Ok(booking_requests::table
        .filter(booking_requests::event_id.eq(event_id))
        .filter(booking_requests::admission_rank.is_not_null())
        .select(booking_requests::admission_rank.assume_not_null())
        .load::<i64>(conn)
        .await?
        .into_iter()
        .filter_map(|r| u64::try_from(r).ok())
        .collect())
}

#[derive(QueryableByName)]
struct UserSeats {
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    ticket_type_id: Option<i64>,
    #[diesel(sql_type = BigInt)]
    seats: i64,
}

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
    /// The ticket type (`None` on rows from before types: the default).
    pub ticket_type_id: Option<i64>,
}

/// What serving a waitlist did.
#[derive(Debug, Clone, Default)]
pub struct Decided {
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
            ticket_type_id: self.ticket_type_id,
            expires_at: None,
        }
    }
}

/// The outcome of a stored request, with its latest booking and current waitlist position.
/// Its status says where its seats are now: `held`, `expired`, `refund_pending`, `refunded`
/// or `cancelled` when its latest booking is so and nothing is still waiting.
pub async fn stored_outcome(
    conn: &mut AsyncPgConnection,
    row: &StoredRequest,
) -> QueryResult<Outcome> {
    let latest: Option<(i64, String, Option<chrono::DateTime<Utc>>)> = bookings::table
        .filter(bookings::request_id.eq(row.id))
        .order(bookings::id.desc())
        .select((bookings::id, bookings::status, bookings::expires_at))
        .first(conn)
        .await
        .optional()?;
    let position = if row.seats_waitlisted > 0 {
        waitlist_position(conn, row.id).await?
    } else {
        None
    };
    let mut outcome = row.outcome(latest.as_ref().map(|l| l.0), position);
    let Some((_, status, expires_at)) = latest else {
        return Ok(outcome);
    };
    if position.is_some() {
        return Ok(outcome);
    }
    match status.as_str() {
        "held" => {
            outcome.status = Status::Held;
            outcome.expires_at = expires_at;
        }
        "expired" => outcome.status = Status::Expired,
        "refund_pending" => outcome.status = Status::RefundPending,
        "refunded" => outcome.status = Status::Refunded,
        "cancelled" => {
            // Seats it got, all since cancelled, nothing still waiting: `cancelled`.
            let live: i64 = bookings::table
                .filter(bookings::request_id.eq(row.id))
                .filter(bookings::status.eq_any(["confirmed", "held"]))
                .count()
                .get_result(conn)
                .await?;
            if live == 0 {
                outcome.status = Status::Cancelled;
            }
        }
        _ => {}
    }
    Ok(outcome)
}

/// The stored outcomes of those of `ids` that are stored (retries, redeliveries).
///
/// In Kafka mode every batch asks this (any message may be a redelivery), from the first batch
/// of a sale on. A cached prepared statement would keep the generic plan PostgreSQL made after
/// its fifth run: made while `booking_requests` held a few pages, that plan was a sequential
/// scan comparing every row with every id, and it stayed one as the table grew — 150–270 ms
/// per batch (`auto_explain` in a slow Kafka sale; such sales ran at 4,761–5,573/s, decision p99
/// 10–11 s, in 4 of 8 split-process runs). The id filter is therefore SQL text, as the history's
/// and the outbox's literal predicates are: diesel caches no statement holding a literal, so
/// PostgreSQL plans this one for the ids and the table as they are.
pub async fn stored_outcomes(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<Outcome>> {
    use diesel::sql_types::{Array, Bool};
    let rows: Vec<StoredRequest> = booking_requests::table
        .filter(
            diesel::dsl::sql::<Bool>("booking_requests.id = ANY(")
                .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
                .sql(")"),
        )
        .select(StoredRequest::as_select())
        .load(conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(stored_outcome(conn, row).await?);
    }
    Ok(out)
}

/// Those of `ids` that are users.
pub async fn existing_users(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<i64>> {
    crate::db::schema::users::table
        .filter(crate::db::schema::users::id.eq_any(ids))
        .select(crate::db::schema::users::id)
        .load(conn)
        .await
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

/// A waitlist entry taken off its queue: the request, its buyer and the seats it was waiting for.
#[derive(Debug, Clone, QueryableByName)]
pub struct LeftEntry {
    /// The request that stopped waiting.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub request_id: Uuid,
    /// Its buyer.
    #[diesel(sql_type = BigInt)]
    pub user_id: i64,
    /// The seats it was still waiting for.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub seats: i32,
}

/// Takes the waitlist entries of event `event_id` — only `user`'s, or everyone's — off the
/// queue: each request row stops waiting (the row is the entry). A request left with confirmed
/// seats gets status `kept_status`; one with none is `rejected` for `reason`. The caller holds
/// the event's row lock (every writer of an event's waitlist takes it first) and bumps its
/// version. Leaving the waitlist and cancelling an event both come here.
pub async fn take_off_waitlist(
    conn: &mut AsyncPgConnection,
    event_id: i64,
    user: Option<i64>,
    kept_status: Status,
    reason: Reason,
) -> QueryResult<Vec<LeftEntry>> {
    diesel::sql_query(
        "UPDATE booking_requests r SET seats_waitlisted = 0, \
                status = CASE WHEN r.seats_confirmed > 0 THEN $3 ELSE 'rejected' END, \
                reject_reason = CASE WHEN r.seats_confirmed > 0 THEN NULL ELSE $4 END \
           FROM (SELECT id, seats_waitlisted FROM booking_requests \
                  WHERE event_id = $1 AND seats_waitlisted > 0 AND ($2::int8 IS NULL OR user_id = $2) \
                  ORDER BY waitlist_seq FOR UPDATE) w \
          WHERE r.id = w.id \
      RETURNING r.id AS request_id, r.user_id, w.seats_waitlisted AS seats",
    )
    .bind::<BigInt, _>(event_id)
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(user)
    .bind::<diesel::sql_types::Text, _>(kept_status.as_str())
    .bind::<diesel::sql_types::Text, _>(reason.as_str())
    .load(conn)
    .await
}

/// Serves an event's waitlist from its free seats in one transaction (after a write outside
/// the writer freed seats; the reconciliation sweep). The writer notices the version bump.
pub async fn serve_waitlist(
    conn: &mut AsyncPgConnection,
    event_id: i64,
) -> anyhow::Result<Decided> {
    conn.transaction(async |conn| {
        let Some(event) = Event::lock(conn, event_id).await? else {
            return Ok(Decided::default());
        };
        serve_waitlist_locked(conn, event).await
    })
    .await
}

/// [`serve_waitlist`] on a row the caller has locked in its transaction: the same rule as the
/// writer (ticket type quotas, holds in `hold` checkout).
pub async fn serve_waitlist_locked(
    conn: &mut AsyncPgConnection,
    event: Event,
) -> anyhow::Result<Decided> {
    let now = Utc::now();
    let free = event.available_seats();
    if free == 0 || event.closed_at(now).is_some() {
        return Ok(Decided {
            event: Some(event),
            ..Decided::default()
        });
    }
    let waiting: Vec<WaitEntry> = waitlist::table
        .filter(waitlist::event_id.eq(event.id))
        .filter(
            waitlist::seats
                .le(free)
                .or(waitlist::allow_partial.eq(true)),
        )
        .order(waitlist::id.asc())
        .limit(i64::from(free).max(1000))
        .select(WaitRow::as_select())
        .for_update()
        .load::<WaitRow>(conn)
        .await?
        .into_iter()
        .map(WaitEntry::from)
        .collect();
    let types: Vec<domain::TicketType> = crate::tickets::model::of_event(conn, event.id)
        .await?
        .iter()
        .map(crate::tickets::model::TicketTypeRow::domain)
        .collect();
    let seats = EventSeats {
        capacity: event.capacity,
        reserved: event.reserved_seats,
        max_per_user: event.max_per_user,
        waitlist_open: event.waitlist_open,
        closed: false,
        price: event.price,
        // Serving the waitlist decides no new request.
        on_sale_at: None,
    };
    let plan = domain::allocate(seats, &types, &waiting, &[], &Holdings::default());
    if plan.served.is_empty() {
        return Ok(Decided {
            event: Some(event),
            ..Decided::default()
        });
    }
    let expires_at = now + chrono::Duration::seconds(i64::from(event.hold_secs));
    let mut served = Vec::with_capacity(plan.served.len());
    let mut notes = Vec::with_capacity(plan.served.len());
    for s in &plan.served {
        let remaining = s.entry.seats - s.confirmed;
        // The request row is the entry: at 0 seats waiting it leaves the waitlist.
        let row: StoredRequest = diesel::update(booking_requests::table.find(s.entry.request_id))
            .set((
                booking_requests::seats_confirmed
                    .eq(booking_requests::seats_confirmed + s.confirmed),
                booking_requests::seats_waitlisted
                    .eq(booking_requests::seats_waitlisted - s.confirmed),
                booking_requests::cost.eq(booking_requests::cost + s.cost),
                booking_requests::status.eq(diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
                    "CASE WHEN seats_confirmed + {c} >= seats THEN 'confirmed' ELSE 'partial' END",
                    c = s.confirmed
                ))),
            ))
            .returning(StoredRequest::as_returning())
            .get_result(conn)
            .await?;
        let status = domain::booking_status(event.holds(), s.cost);
        let held = status == domain::BookingStatus::Held;
        let booking_id: i64 = diesel::insert_into(bookings::table)
            .values((
                bookings::request_id.eq(s.entry.request_id),
                bookings::user_id.eq(s.entry.user_id),
                bookings::event_id.eq(event.id),
                bookings::seats.eq(s.confirmed),
                bookings::cost.eq(s.cost),
                bookings::status.eq(status.as_str()),
                bookings::expires_at.eq(held.then_some(expires_at)),
                bookings::ticket_type_id.eq(s.ticket_type_id),
            ))
            .returning(bookings::id)
            .get_result(conn)
            .await?;
        notes.push((
            outbox::kind.eq(if held {
                Notice::BookingHeld
            } else {
                Notice::WaitlistConfirmed
            }
            .as_str()),
            outbox::user_id.eq(Some(s.entry.user_id)),
            outbox::event_id.eq(Some(event.id)),
            outbox::payload.eq(json!({
                "eventId": event.id,
                "eventName": event.name,
                "venue": event.venue,
                "startsAt": event.starts_at,
                "price": event.price,
                "requestId": s.entry.request_id,
                "seats": s.confirmed,
                "seatsStillWaiting": remaining,
                "cost": s.cost,
                "bookingId": booking_id,
                "expiresAt": held.then_some(expires_at),
                "fromWaitlist": true,
            })),
        ));
        let mut outcome = row.outcome(Some(booking_id), None);
        if held {
            outcome.status = Status::Held;
            outcome.expires_at = Some(expires_at);
        }
        served.push(outcome);
    }
    diesel::insert_into(outbox::table)
        .values(&notes)
        .execute(conn)
        .await?;
    for (ticket_type, seats) in &plan.type_seats {
        diesel::update(ticket_types::table.find(ticket_type))
            .set(ticket_types::sold.eq(ticket_types::sold + seats))
            .execute(conn)
            .await?;
    }
    let updated: Event = diesel::update(events::table.find(event.id))
        .set((
            events::reserved_seats.eq(events::reserved_seats + plan.seats_confirmed),
            events::version.eq(events::version + 1),
        ))
        .returning(Event::as_returning())
        .get_result(conn)
        .await?;
    Ok(Decided {
        served,
        event: Some(updated),
        notifications: notes.len(),
    })
}

/// Each of `users`' held, confirmed and waitlisted seats on the event, in all and per ticket
/// type (for the caps). Rows without a type are of `default_type`.
pub async fn seats_held(
    conn: &mut AsyncPgConnection,
    event_id: i64,
    users: &[i64],
    default_type: Option<i64>,
) -> QueryResult<Holdings> {
    let rows: Vec<UserSeats> = diesel::sql_query(
        "SELECT user_id, ticket_type_id, SUM(seats)::BIGINT AS seats FROM ( \
           SELECT user_id, ticket_type_id, seats FROM bookings WHERE event_id = $1 AND status IN ('confirmed', 'held') AND user_id = ANY($2) \
           UNION ALL \
           SELECT user_id, ticket_type_id, seats FROM waitlist WHERE event_id = $1 AND user_id = ANY($2)) s \
         GROUP BY user_id, ticket_type_id",
    )
    .bind::<BigInt, _>(event_id)
    .bind::<diesel::sql_types::Array<BigInt>, _>(users)
    .load(conn)
    .await?;
    let mut held = Holdings::default();
    for r in rows {
        let seats = i32::try_from(r.seats).unwrap_or(i32::MAX);
        *held.by_user.entry(r.user_id).or_default() += seats;
        if let Some(t) = r.ticket_type_id.or(default_type) {
            *held.by_type.entry((r.user_id, t)).or_default() += seats;
        }
    }
    Ok(held)
}

/// `n` fresh booking ids from the table's identity sequence (the writer numbers its rows
/// before writing them, so a whole transaction can be sent at once).
pub async fn next_booking_ids(conn: &mut AsyncPgConnection, n: i64) -> QueryResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let rows: Vec<Id> = diesel::sql_query(
        "SELECT nextval(pg_get_serial_sequence('bookings', 'id')) AS id FROM generate_series(1, $1)",
    )
    .bind::<BigInt, _>(n)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Events that have free seats and a waitlist and have not started (the reconciliation sweep;
/// a started event's waitlist is never served, DESIGN invariant 7).
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
         WHERE e.status = 'active' AND e.starts_at > now() AND e.reserved_seats < e.capacity \
           AND EXISTS (SELECT 1 FROM waitlist w WHERE w.event_id = e.id \
                       AND (w.seats <= e.capacity - e.reserved_seats OR w.allow_partial))",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// A booking the writer has work to do on: a hold due to expire, or one with a payment
/// captured and not applied yet.
#[derive(Debug, Clone, QueryableByName)]
pub struct Chore {
    /// The payment session captured (`None`: a hold due to expire).
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    pub session_id: Option<i64>,
    /// The amount captured.
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    pub amount: Option<i64>,
    /// The booking.
    #[diesel(sql_type = BigInt)]
    pub booking_id: i64,
    /// Its event.
    #[diesel(sql_type = BigInt)]
    pub event_id: i64,
    /// Its buyer.
    #[diesel(sql_type = BigInt)]
    pub user_id: i64,
    /// Its request.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub request_id: Uuid,
    /// Its seats.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub seats: i32,
    /// What they cost.
    #[diesel(sql_type = BigInt)]
    pub cost: i64,
    /// Its ticket type.
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    pub ticket_type_id: Option<i64>,
    /// Its state as committed.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    /// The payment does not match its session (amount, currency, booking): refund it.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub mismatch: bool,
}

/// Holds due to expire (soonest first) and captured payments not applied yet, at most `limit`
/// of each: the writer's sweep. Both reads are on partial indexes that hold only such rows.
/// `shard` (`(n, i)`): only events with `id mod n = i` (an in-process shard's own).
pub async fn chores(
    conn: &mut AsyncPgConnection,
    limit: i64,
    shard: Option<(i64, i64)>,
) -> QueryResult<Vec<Chore>> {
    let (n, i) = shard.unwrap_or((0, 0));
    let mut due: Vec<Chore> = diesel::sql_query(
        "SELECT NULL::int8 AS session_id, NULL::int8 AS amount, id AS booking_id, event_id, \
                user_id, request_id, seats, cost, ticket_type_id, status, false AS mismatch \
           FROM bookings WHERE status = 'held' AND expires_at <= now() \
            AND ($2 = 0 OR mod(event_id, $2) = $3) \
          ORDER BY expires_at LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .bind::<BigInt, _>(n)
    .bind::<BigInt, _>(i)
    .load(conn)
    .await?;
    let paid: Vec<Chore> = diesel::sql_query(
        "SELECT s.id AS session_id, s.amount, b.id AS booking_id, b.event_id, b.user_id, \
                b.request_id, b.seats, b.cost, b.ticket_type_id, b.status, \
                s.mismatch \
           FROM payment_sessions s JOIN bookings b ON b.id = s.booking_id \
          WHERE s.state = 'captured' AND ($2 = 0 OR mod(b.event_id, $2) = $3) \
          ORDER BY s.id LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .bind::<BigInt, _>(n)
    .bind::<BigInt, _>(i)
    .load(conn)
    .await?;
    // A hold paid just as it ran out is confirmed, not expired: its payment goes first.
    let paid_ids: std::collections::HashSet<i64> = paid.iter().map(|c| c.booking_id).collect();
    due.retain(|c| !paid_ids.contains(&c.booking_id));
    due.extend(paid);
    Ok(due)
}

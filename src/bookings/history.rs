//! `GET /api/user/bookings`: the caller's booking history.
//!
//! A buyer sees everything they asked for, newest first: their bookings (`confirmed`,
//! `cancelled`), the seats they still wait for (`waitlisted`) and the requests that were turned
//! down (`rejected`). Each source is read on its own index (`bookings_user_history_idx`,
//! `waitlist_user_history_idx`, `booking_requests_user_rejected_idx`), at most `limit + 1` rows
//! after the cursor each, and the three are merged here.
//!
//! Order: `(createdAt DESC, source DESC, id DESC)` at full microsecond precision, where the
//! source rank (booking 2, waitlist 1, rejected 0) only separates rows of different sources
//! that share a timestamp. The cursor carries the whole key, so a page boundary inside a run of
//! equal timestamps neither skips nor repeats a row (the seed's millisecond cursor did both).
//!
//! The summary view groups **all** matching rows by event (not one page of them) and pages
//! over the groups, most recent activity first.

use std::cmp::Ordering;
use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::db::schema::{booking_requests, bookings, events};
use crate::db::sql::{Bind, DynSql};
use crate::db::views::waitlist;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::auth::AuthUser;
use crate::http::cursor;
use crate::http::query;
use crate::http::response;
use crate::state::AppState;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// Which rows a `status` filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Bookings holding seats.
    Confirmed,
    /// Bookings held while the buyer pays.
    Held,
    /// Holds that ran out unpaid.
    Expired,
    /// Bookings cancelled by the buyer or with their event.
    Cancelled,
    /// Paid bookings cancelled and refunded (or being refunded).
    Refunded,
    /// Waitlist entries still waiting.
    Waitlisted,
    /// Requests turned down (sold out, limit, closed, withdrawn from the waitlist).
    Rejected,
}

impl StatusFilter {
    fn wants(self, source: Source) -> bool {
        match self {
            Self::Confirmed | Self::Held | Self::Expired | Self::Cancelled | Self::Refunded => {
                source == Source::Booking
            }
            Self::Waitlisted => source == Source::Waitlist,
            Self::Rejected => source == Source::Rejected,
        }
    }

    fn booking_status(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Confirmed => Some(&["confirmed"]),
            Self::Held => Some(&["held"]),
            Self::Expired => Some(&["expired"]),
            Self::Cancelled => Some(&["cancelled"]),
            Self::Refunded => Some(&["refund_pending", "refunded"]),
            Self::Waitlisted | Self::Rejected => None,
        }
    }
}

/// Where a history row comes from; the discriminant is its rank among equal timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// `booking_requests` with status `rejected`.
    Rejected = 0,
    /// `waitlist`.
    Waitlist = 1,
    /// `bookings`.
    Booking = 2,
}

impl Source {
    fn from_rank(rank: u8) -> Option<Self> {
        match rank {
            0 => Some(Self::Rejected),
            1 => Some(Self::Waitlist),
            2 => Some(Self::Booking),
            _ => None,
        }
    }
}

/// The id part of a row's sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowId {
    /// Booking or waitlist entry id.
    Num(i64),
    /// Request id (rejected requests).
    Request(Uuid),
}

/// A row's position in the history; larger is newer (listed first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Timestamp.
    pub at: DateTime<Utc>,
    /// Source.
    pub source: Source,
    /// Id within the source.
    pub id: RowId,
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.source, self.id).cmp(&(other.at, other.source, other.id))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `tickets` view's cursor.
pub fn encode_ticket_cursor(k: &Key) -> String {
    let id = match k.id {
        RowId::Num(n) => n.to_string(),
        RowId::Request(u) => u.to_string(),
    };
    cursor::encode("t1", &[&(k.source as u8), &k.at.timestamp_micros(), &id])
}

/// Decodes a `tickets` cursor; any damage is `None`.
pub fn decode_ticket_cursor(raw: &str) -> Option<Key> {
    let [rank, micros, id] = cursor::decode::<3>(raw, "t1")?;
    let source = Source::from_rank(rank.parse().ok()?)?;
    let at = cursor::timestamp(&micros)?;
    let id = match source {
        Source::Rejected => RowId::Request(Uuid::parse_str(&id).ok()?),
        Source::Booking | Source::Waitlist => {
            RowId::Num(id.parse::<i64>().ok().filter(|n| *n > 0)?)
        }
    };
    Some(Key { at, source, id })
}

/// The `summary` view's cursor: the last group's latest activity and event id.
pub fn encode_summary_cursor(at: DateTime<Utc>, event_id: i64) -> String {
    cursor::encode("s1", &[&at.timestamp_micros(), &event_id])
}

/// Decodes a `summary` cursor.
pub fn decode_summary_cursor(raw: &str) -> Option<(DateTime<Utc>, i64)> {
    let [micros, id] = cursor::decode::<2>(raw, "s1")?;
    let at = cursor::timestamp(&micros)?;
    let id = id.parse::<i64>().ok().filter(|n| *n > 0)?;
    Some((at, id))
}

/// Where one source's rows must lie after a `tickets` cursor. Rows sort by
/// `(at, source, id)`; within one source that reduces to a bound on `(at, id)`.
#[derive(Debug, Clone, Copy)]
enum After {
    /// No cursor.
    All,
    /// A source ranked below the cursor's: its rows at the cursor's instant come after it.
    AtOrBefore(DateTime<Utc>),
    /// A source ranked above: only strictly older rows.
    Before(DateTime<Utc>),
    /// The cursor's own source: older, or as old with a smaller id.
    BeforeKey(DateTime<Utc>, RowId),
}

impl After {
    fn of(cursor: Option<Key>, source: Source) -> Self {
        match cursor {
            None => Self::All,
            Some(c) => match source.cmp(&c.source) {
                Ordering::Less => Self::AtOrBefore(c.at),
                Ordering::Greater => Self::Before(c.at),
                Ordering::Equal => Self::BeforeKey(c.at, c.id),
            },
        }
    }
}

/// The filters every source of the history takes: the caller's `eventId`, `from`/`to` on the
/// source's time column, and the cursor bound on `(time, id)` (`time <= t` is always there so
/// that the index scan starts at the cursor).
macro_rules! history_filters {
    ($sql:ident, $q:expr, $source:expr, $event:expr, $at:expr, $id:expr, $id_kind:path) => {
        if let Some(e) = $q.event_id {
            $sql = $sql.filter($event.eq(e));
        }
        if let Some(f) = $q.from {
            $sql = $sql.filter($at.ge(f));
        }
        if let Some(t) = $q.to {
            $sql = $sql.filter($at.le(t));
        }
        match After::of($q.ticket_cursor, $source) {
            After::All => {}
            After::AtOrBefore(t) => $sql = $sql.filter($at.le(t)),
            After::Before(t) => $sql = $sql.filter($at.lt(t)),
            After::BeforeKey(t, $id_kind(id)) => {
                $sql = $sql.filter($at.le(t)).filter($at.lt(t).or($id.lt(id)));
            }
            // A cursor's id kind always matches its source (see `decode_ticket_cursor`).
            After::BeforeKey(..) => {}
        }
    };
}

/// A parsed history request.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Page size.
    pub limit: usize,
    /// `view=summary`.
    pub summary: bool,
    /// Position after the previous `tickets` page.
    pub ticket_cursor: Option<Key>,
    /// Position after the previous `summary` page.
    pub summary_cursor: Option<(DateTime<Utc>, i64)>,
    /// Only this event.
    pub event_id: Option<i64>,
    /// Only this status.
    pub status: Option<StatusFilter>,
    /// Rows at or after.
    pub from: Option<DateTime<Utc>>,
    /// Rows at or before.
    pub to: Option<DateTime<Utc>>,
}

impl HistoryQuery {
    fn wants(&self, source: Source) -> bool {
        self.status.is_none_or(|s| s.wants(source))
    }
}

/// Parses the query string; every bad or unknown parameter is named in one 400.
pub fn parse_query(params: &HashMap<String, String>) -> ApiResult<HistoryQuery> {
    let mut errors = Vec::new();
    let mut q = HistoryQuery {
        limit: DEFAULT_LIMIT,
        ..HistoryQuery::default()
    };
    for (key, value) in params {
        match key.as_str() {
            "limit" => {
                if let Some(n) = query::limit("limit", value, MAX_LIMIT, &mut errors) {
                    q.limit = n;
                }
            }
            "view" => match value.as_str() {
                "tickets" => q.summary = false,
                "summary" => q.summary = true,
                _ => errors.push(FieldError::new("view", "must be tickets or summary")),
            },
            "eventId" => q.event_id = query::id("eventId", value, &mut errors),
            "status" => {
                q.status = match value.as_str() {
                    "confirmed" => Some(StatusFilter::Confirmed),
                    "held" => Some(StatusFilter::Held),
                    "expired" => Some(StatusFilter::Expired),
                    "cancelled" => Some(StatusFilter::Cancelled),
                    "refunded" => Some(StatusFilter::Refunded),
                    "waitlisted" => Some(StatusFilter::Waitlisted),
                    "rejected" => Some(StatusFilter::Rejected),
                    _ => {
                        errors.push(FieldError::new(
                            "status",
                            "must be confirmed, held, expired, cancelled, refunded, waitlisted or rejected",
                        ));
                        None
                    }
                }
            }
            "from" | "to" => {
                query::range_param(key, value, &mut q.from, &mut q.to, &mut errors);
            }
            "cursor" => {}
            other => errors.push(FieldError::new(other, "unknown query parameter")),
        }
    }
    query::check_range(q.from, q.to, &mut errors);
    // The cursor belongs to a view: a tickets cursor is not a summary position.
    if let Some(raw) = params.get("cursor") {
        let ok = if q.summary {
            q.summary_cursor = decode_summary_cursor(raw);
            q.summary_cursor.is_some()
        } else {
            q.ticket_cursor = decode_ticket_cursor(raw);
            q.ticket_cursor.is_some()
        };
        if !ok {
            errors.push(FieldError::new(
                "cursor",
                "is not a cursor this endpoint issued for this view",
            ));
        }
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(ApiError::fields(errors))
    }
}

/// One history row before its event is attached.
#[derive(Debug, Clone)]
struct Row {
    key: Key,
    request_id: Uuid,
    event_id: i64,
    seats: i32,
    cost: i64,
    status: String,
    cancelled_at: Option<DateTime<Utc>>,
    reject_reason: Option<String>,
}

/// The event facts a history row shows; `status` as the event itself says it (`on_sale`,
/// `sold_out`, `started`, `ended`, `cancelled`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBrief {
    #[serde(skip)]
    id: i64,
    name: String,
    venue: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    price: i64,
    status: String,
}

/// `tickets` view element.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TicketItem<'a> {
    /// Booking id (the id `DELETE /api/events/book` takes); `null` for waitlist entries and
    /// rejected requests, which are not tickets.
    id: Option<i64>,
    kind: &'static str,
    request_id: Uuid,
    event_id: i64,
    event: Option<&'a EventBrief>,
    number_of_seats: i32,
    cost: i64,
    status: &'a str,
    created_at: DateTime<Utc>,
    cancelled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reject_reason: Option<&'a str>,
}

type BookingRow = (
    i64,
    Uuid,
    i64,
    i32,
    i64,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

async fn booking_rows(
    conn: &mut AsyncPgConnection,
    user: i64,
    q: &HistoryQuery,
    fetch: i64,
) -> QueryResult<Vec<Row>> {
    let mut sql = bookings::table
        .filter(bookings::user_id.eq(user))
        .into_boxed();
    if let Some(s) = q.status.and_then(StatusFilter::booking_status) {
        sql = sql.filter(bookings::status.eq_any(s));
    }
    history_filters!(
        sql,
        q,
        Source::Booking,
        bookings::event_id,
        bookings::created_at,
        bookings::id,
        RowId::Num
    );
    let rows: Vec<BookingRow> = sql
        .order((bookings::created_at.desc(), bookings::id.desc()))
        .limit(fetch)
        .select((
            bookings::id,
            bookings::request_id,
            bookings::event_id,
            bookings::seats,
            bookings::cost,
            bookings::status,
            bookings::created_at,
            bookings::cancelled_at,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, request_id, event_id, seats, cost, status, at, cancelled_at)| Row {
                key: Key {
                    at,
                    source: Source::Booking,
                    id: RowId::Num(id),
                },
                request_id,
                event_id,
                seats,
                cost,
                status,
                cancelled_at,
                reject_reason: None,
            },
        )
        .collect())
}

async fn waitlist_rows(
    conn: &mut AsyncPgConnection,
    user: i64,
    q: &HistoryQuery,
    fetch: i64,
) -> QueryResult<Vec<Row>> {
    let mut sql = waitlist::table
        .filter(waitlist::user_id.eq(user))
        .into_boxed();
    history_filters!(
        sql,
        q,
        Source::Waitlist,
        waitlist::event_id,
        waitlist::created_at,
        waitlist::id,
        RowId::Num
    );
    let rows: Vec<(i64, Uuid, i64, i32, DateTime<Utc>)> = sql
        .order((waitlist::created_at.desc(), waitlist::id.desc()))
        .limit(fetch)
        .select((
            waitlist::id,
            waitlist::request_id,
            waitlist::event_id,
            waitlist::seats,
            waitlist::created_at,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, request_id, event_id, seats, at)| Row {
            key: Key {
                at,
                source: Source::Waitlist,
                id: RowId::Num(id),
            },
            request_id,
            event_id,
            seats,
            cost: 0,
            status: "waitlisted".to_owned(),
            cancelled_at: None,
            reject_reason: None,
        })
        .collect())
}

type RejectedRow = (Uuid, i64, i32, Option<String>, DateTime<Utc>);

async fn rejected_rows(
    conn: &mut AsyncPgConnection,
    user: i64,
    q: &HistoryQuery,
    fetch: i64,
) -> QueryResult<Vec<Row>> {
    // A literal predicate, so the partial index applies also to a generic plan.
    let mut sql = booking_requests::table
        .filter(booking_requests::user_id.eq(user))
        .filter(diesel::dsl::sql::<Bool>(
            "booking_requests.status = 'rejected'",
        ))
        .into_boxed();
    history_filters!(
        sql,
        q,
        Source::Rejected,
        booking_requests::event_id,
        booking_requests::requested_at,
        booking_requests::id,
        RowId::Request
    );
    let rows: Vec<RejectedRow> = sql
        .order((
            booking_requests::requested_at.desc(),
            booking_requests::id.desc(),
        ))
        .limit(fetch)
        .select((
            booking_requests::id,
            booking_requests::event_id,
            booking_requests::seats,
            booking_requests::reject_reason,
            booking_requests::requested_at,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, event_id, seats, reason, at)| Row {
            key: Key {
                at,
                source: Source::Rejected,
                id: RowId::Request(id),
            },
            request_id: id,
            event_id,
            seats,
            cost: 0,
            status: "rejected".to_owned(),
            cancelled_at: None,
            reject_reason: reason,
        })
        .collect())
}

async fn event_briefs(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> QueryResult<HashMap<i64, EventBrief>> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let found: Vec<crate::events::model::Event> = events::table
        .filter(events::id.eq_any(&ids))
        .select(crate::events::model::Event::as_select())
        .load(conn)
        .await?;
    let now = Utc::now();
    Ok(found
        .into_iter()
        .map(|e| {
            let status = e.status_at(now).to_owned();
            let brief = EventBrief {
                id: e.id,
                name: e.name,
                venue: e.venue,
                starts_at: e.starts_at,
                ends_at: e.ends_at,
                price: e.price,
                status,
            };
            (brief.id, brief)
        })
        .collect())
}

/// One `tickets` page: `{ items, pageInfo }`.
pub async fn tickets_page(
    conn: &mut AsyncPgConnection,
    user: i64,
    q: &HistoryQuery,
) -> QueryResult<serde_json::Value> {
    let fetch = i64::try_from(q.limit + 1).unwrap_or(i64::MAX);
    let mut rows = Vec::new();
    if q.wants(Source::Booking) {
        rows.extend(booking_rows(conn, user, q, fetch).await?);
    }
    if q.wants(Source::Waitlist) {
        rows.extend(waitlist_rows(conn, user, q, fetch).await?);
    }
    if q.wants(Source::Rejected) {
        rows.extend(rejected_rows(conn, user, q, fetch).await?);
    }
    rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.key));
    let has_more = rows.len() > q.limit;
    rows.truncate(q.limit);
    let next_cursor = if has_more {
        rows.last().map(|r| encode_ticket_cursor(&r.key))
    } else {
        None
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
    let briefs = event_briefs(conn, &ids).await?;
    let items: Vec<TicketItem<'_>> = rows
        .iter()
        .map(|r| TicketItem {
            id: match (r.key.source, r.key.id) {
                (Source::Booking, RowId::Num(id)) => Some(id),
                _ => None,
            },
            kind: match r.key.source {
                Source::Booking => "booking",
                Source::Waitlist => "waitlist",
                Source::Rejected => "request",
            },
            request_id: r.request_id,
            event_id: r.event_id,
            event: briefs.get(&r.event_id),
            number_of_seats: r.seats,
            cost: r.cost,
            status: &r.status,
            created_at: r.key.at,
            cancelled_at: r.cancelled_at,
            reject_reason: r.reject_reason.as_deref(),
        })
        .collect();
    Ok(json!({
        "items": items,
        "pageInfo": { "hasMore": has_more, "nextCursor": next_cursor },
    }))
}

/// One event's totals over every matching row of the caller.
#[derive(Debug, QueryableByName)]
struct SummaryRow {
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = BigInt)]
    active_seats: i64,
    #[diesel(sql_type = BigInt)]
    cancelled_seats: i64,
    #[diesel(sql_type = BigInt)]
    waitlisted_seats: i64,
    #[diesel(sql_type = BigInt)]
    active_bookings: i64,
    #[diesel(sql_type = BigInt)]
    cancelled_bookings: i64,
    #[diesel(sql_type = BigInt)]
    rejected_requests: i64,
    #[diesel(sql_type = BigInt)]
    active_cost: i64,
    #[diesel(sql_type = Timestamptz)]
    first_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    last_at: DateTime<Utc>,
}

/// `summary` view element.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryItem<'a> {
    event_id: i64,
    event: Option<&'a EventBrief>,
    /// Seats held by confirmed bookings.
    active_tickets: i64,
    /// Seats of cancelled bookings.
    cancelled_tickets: i64,
    /// `activeTickets + cancelledTickets`.
    total_tickets: i64,
    /// Seats still waited for.
    waitlisted_tickets: i64,
    active_bookings: i64,
    cancelled_bookings: i64,
    rejected_requests: i64,
    /// Cost of the active seats only (minor units).
    total_cost: i64,
    first_booked_at: DateTime<Utc>,
    last_booked_at: DateTime<Utc>,
}

/// One `summary` page: the groups of all matching rows, most recent activity first.
pub async fn summary_page(
    conn: &mut AsyncPgConnection,
    user: i64,
    q: &HistoryQuery,
) -> QueryResult<serde_json::Value> {
    // Each filter value is bound once and its placeholder used by every branch.
    let mut sql = DynSql::default();
    let user_p = sql.param(Bind::Int(user));
    let event = q.event_id.map(|e| sql.param(Bind::Int(e)));
    let from = q.from.map(|f| sql.param(Bind::Time(f)));
    let to = q.to.map(|t| sql.param(Bind::Time(t)));
    let cursor = q
        .summary_cursor
        .map(|(at, id)| (sql.param(Bind::Time(at)), sql.param(Bind::Int(id))));
    let fetch = i64::try_from(q.limit + 1).unwrap_or(i64::MAX);
    let limit = sql.param(Bind::Int(fetch));
    let filters = |at: &str| {
        let mut s = format!(" WHERE user_id = {user_p}");
        if let Some(p) = &event {
            s.push_str(&format!(" AND event_id = {p}"));
        }
        if let Some(p) = &from {
            s.push_str(&format!(" AND {at} >= {p}"));
        }
        if let Some(p) = &to {
            s.push_str(&format!(" AND {at} <= {p}"));
        }
        s
    };
    let mut branches = Vec::new();
    if q.wants(Source::Booking) {
        let status = match q.status.and_then(StatusFilter::booking_status) {
            Some(s) => format!(" AND status IN ('{}')", s.join("', '")),
            None => String::new(),
        };
        branches.push(format!(
            "SELECT event_id,
                    CASE WHEN status IN ('confirmed', 'held') THEN seats ELSE 0 END AS active_seats,
                    CASE WHEN status IN ('cancelled', 'refund_pending', 'refunded') THEN seats ELSE 0 END AS cancelled_seats,
                    0 AS waitlisted_seats,
                    CASE WHEN status IN ('confirmed', 'held') THEN 1 ELSE 0 END AS active_bookings,
                    CASE WHEN status IN ('cancelled', 'refund_pending', 'refunded') THEN 1 ELSE 0 END AS cancelled_bookings,
                    0 AS rejected_requests,
                    CASE WHEN status IN ('confirmed', 'held') THEN cost ELSE 0 END AS active_cost,
                    created_at AS at
               FROM bookings{}{status}",
            filters("created_at")
        ));
    }
    if q.wants(Source::Waitlist) {
        branches.push(format!(
            "SELECT event_id, 0, 0, seats, 0, 0, 0, 0, created_at
               FROM waitlist{}",
            filters("created_at")
        ));
    }
    if q.wants(Source::Rejected) {
        branches.push(format!(
            "SELECT event_id, 0, 0, 0, 0, 0, 1, 0, requested_at
               FROM booking_requests{} AND status = 'rejected'",
            filters("requested_at")
        ));
    }
    let having = match &cursor {
        Some((at, id)) => format!(" HAVING (max(at), event_id) < ({at}, {id})"),
        None => String::new(),
    };
    sql.push(&format!(
        "SELECT event_id,
                sum(active_seats)::int8 AS active_seats,
                sum(cancelled_seats)::int8 AS cancelled_seats,
                sum(waitlisted_seats)::int8 AS waitlisted_seats,
                sum(active_bookings)::int8 AS active_bookings,
                sum(cancelled_bookings)::int8 AS cancelled_bookings,
                sum(rejected_requests)::int8 AS rejected_requests,
                sum(active_cost)::int8 AS active_cost,
                min(at) AS first_at, max(at) AS last_at
           FROM ({}) AS rows (event_id, active_seats, cancelled_seats, waitlisted_seats,
                              active_bookings, cancelled_bookings, rejected_requests,
                              active_cost, at)
          GROUP BY event_id{having}
          ORDER BY last_at DESC, event_id DESC
          LIMIT {limit}",
        branches.join(" UNION ALL ")
    ));
    let mut rows: Vec<SummaryRow> = sql.load(conn).await?;
    let has_more = rows.len() > q.limit;
    rows.truncate(q.limit);
    let next_cursor = if has_more {
        rows.last()
            .map(|r| encode_summary_cursor(r.last_at, r.event_id))
    } else {
        None
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
    let briefs = event_briefs(conn, &ids).await?;
    let items: Vec<SummaryItem<'_>> = rows
        .iter()
        .map(|r| SummaryItem {
            event_id: r.event_id,
            event: briefs.get(&r.event_id),
            active_tickets: r.active_seats,
            cancelled_tickets: r.cancelled_seats,
            total_tickets: r.active_seats + r.cancelled_seats,
            waitlisted_tickets: r.waitlisted_seats,
            active_bookings: r.active_bookings,
            cancelled_bookings: r.cancelled_bookings,
            rejected_requests: r.rejected_requests,
            total_cost: r.active_cost,
            first_booked_at: r.first_at,
            last_booked_at: r.last_at,
        })
        .collect();
    Ok(json!({
        "items": items,
        "pageInfo": { "hasMore": has_more, "nextCursor": next_cursor },
    }))
}

/// One booking of an event as its host sees it: who (name and username, never the email),
/// what and in which state.
#[derive(Debug, Clone, Serialize, QueryableByName)]
#[serde(rename_all = "camelCase")]
pub struct Attendee {
    /// Booking id.
    #[diesel(sql_type = BigInt)]
    pub booking_id: i64,
    /// The buyer's name.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub name: String,
    /// The buyer's username.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub username: String,
    /// The ticket type's name.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub ticket_type: Option<String>,
    /// Seats.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub seats: i32,
    /// `held`, `confirmed`, `refund_pending`, …
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    /// Price of the seats, minor units.
    #[diesel(sql_type = BigInt)]
    pub cost: i64,
    /// When it was booked.
    #[diesel(sql_type = Timestamptz)]
    pub booked_at: DateTime<Utc>,
    /// Whether the event takes payments by hand and this hold waits for one.
    #[diesel(sql_type = Bool)]
    pub awaits_manual_payment: bool,
}

/// An event's live bookings (held, confirmed, refund on its way), oldest first: the host's
/// attendee list. At most 10,000.
pub async fn attendees(conn: &mut AsyncPgConnection, event_id: i64) -> QueryResult<Vec<Attendee>> {
    diesel::sql_query(
        "SELECT b.id AS booking_id, u.name, u.username, t.name AS ticket_type, b.seats, b.status, \
                b.cost, b.created_at AS booked_at, \
                (b.status = 'held' AND b.cost > 0 AND e.payment_provider = 'manual') AS awaits_manual_payment \
           FROM bookings b JOIN users u ON u.id = b.user_id JOIN events e ON e.id = b.event_id \
           LEFT JOIN ticket_types t ON t.id = b.ticket_type_id \
          WHERE b.event_id = $1 AND b.status IN ('held', 'confirmed', 'refund_pending') \
          ORDER BY b.created_at, b.id LIMIT 10000",
    )
    .bind::<BigInt, _>(event_id)
    .load(conn)
    .await
}

/// `GET /api/user/bookings`.
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    params: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let q = parse_query(&params)?;
    let mut conn = state.db().get().await?;
    if q.summary {
        let page = summary_page(&mut conn, caller.id, &q).await?;
        Ok(response::ok(page, "Booking history (summary)"))
    } else {
        let page = tickets_page(&mut conn, caller.id, &q).await?;
        Ok(response::ok(page, "Booking history"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_cursors_round_trip_and_reject_damage() {
        let at = DateTime::from_timestamp_micros(1_764_115_200_123_456).unwrap_or_default();
        for key in [
            Key {
                at,
                source: Source::Booking,
                id: RowId::Num(42),
            },
            Key {
                at,
                source: Source::Rejected,
                id: RowId::Request(Uuid::from_u128(7)),
            },
        ] {
            assert_eq!(decode_ticket_cursor(&encode_ticket_cursor(&key)), Some(key));
        }
        let summary = encode_summary_cursor(at, 3);
        assert_eq!(decode_summary_cursor(&summary), Some((at, 3)));
        assert_eq!(decode_ticket_cursor(&summary), None, "views do not mix");
        for bad in ["", "!!", "dDE6Mjox", "dDE6OTox"] {
            assert_eq!(decode_ticket_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_order_by_time_then_source_then_id() {
        let at = DateTime::from_timestamp_micros(5).unwrap_or_default();
        let later = DateTime::from_timestamp_micros(6).unwrap_or_default();
        let k = |at, source, id| Key {
            at,
            source,
            id: RowId::Num(id),
        };
        let mut keys = vec![
            k(at, Source::Waitlist, 9),
            k(at, Source::Booking, 1),
            k(later, Source::Waitlist, 1),
            k(at, Source::Booking, 2),
        ];
        keys.sort_unstable_by_key(|k| std::cmp::Reverse(*k));
        assert_eq!(
            keys,
            vec![
                k(later, Source::Waitlist, 1),
                k(at, Source::Booking, 2),
                k(at, Source::Booking, 1),
                k(at, Source::Waitlist, 9),
            ]
        );
    }
}

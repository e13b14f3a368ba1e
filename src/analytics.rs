//! Organiser figures: `GET /api/admin/analytics` (admins, all events or one host's) and
//! `GET /api/events/{id}/stats` (an event's host, or an admin).
//!
//! Computed on indexed data at request time, no second copy to keep in step:
//! - *flows* (bookings, cancellations, revenue, requests by outcome) aggregate `bookings` and
//!   `booking_requests`, optionally within `from`/`to` (on `bookings.created_at` and
//!   `booking_requests.requested_at`); a host's or an event's figures read
//!   `bookings_event_created_idx`, which covers the aggregated columns;
//! - *state* (capacity, reserved seats, utilisation, waitlist) is the current state of
//!   `events` and `waitlist`; `from`/`to` do not apply to it. Without a window the per-event
//!   confirmed seats come from `events.reserved_seats`, which the engine keeps equal to the sum
//!   of confirmed seats (invariant 1, checked by `atomicseats reconcile`).
//!
//! Overall capacity counts events that are not cancelled; `perEventUtilization` lists every
//! event (with its status), highest utilisation first, ties by id, keyset-paginated.

use std::collections::{BTreeMap, HashMap};

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use serde_json::json;

use crate::db::sql::{Bind, DynSql};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::events::model::Event;
use crate::events::routes::path_id;
use crate::http::auth::AuthUser;
use crate::http::cursor;
use crate::http::query;
use crate::http::response;
use crate::state::AppState;
use crate::users::domain::Role;

const TOP_DEFAULT: usize = 5;
const TOP_MAX: usize = 100;
const PAGE_DEFAULT: usize = 50;
const PAGE_MAX: usize = 500;

/// Which events the figures cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every event.
    All,
    /// One host's events.
    Host(i64),
    /// One event.
    Event(i64),
}

/// An optional time window (inclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// At or before.
    pub to: Option<DateTime<Utc>>,
}

impl Window {
    fn is_open(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

/// The two filters every figure takes.
trait Filters {
    /// ` AND <event column> in scope`.
    fn scope(&mut self, column: &str, scope: Scope) -> &mut Self;
    /// ` AND <time column> within the window`.
    fn window(&mut self, column: &str, w: Window) -> &mut Self;
}

impl Filters for DynSql {
    fn scope(&mut self, column: &str, scope: Scope) -> &mut Self {
        match scope {
            Scope::All => self,
            Scope::Host(h) => self
                .push(&format!(
                    " AND {column} IN (SELECT id FROM events WHERE host_id = "
                ))
                .bind(Bind::Int(h))
                .push(")"),
            Scope::Event(e) => self.push(&format!(" AND {column} = ")).bind(Bind::Int(e)),
        }
    }

    fn window(&mut self, column: &str, w: Window) -> &mut Self {
        if let Some(f) = w.from {
            self.push(&format!(" AND {column} >= ")).bind(Bind::Time(f));
        }
        if let Some(t) = w.to {
            self.push(&format!(" AND {column} <= ")).bind(Bind::Time(t));
        }
        self
    }
}

#[derive(Debug, QueryableByName)]
struct BookingTotals {
    #[diesel(sql_type = BigInt)]
    confirmed_bookings: i64,
    #[diesel(sql_type = BigInt)]
    confirmed_seats: i64,
    #[diesel(sql_type = BigInt)]
    cancelled_bookings: i64,
    #[diesel(sql_type = BigInt)]
    cancelled_seats: i64,
    #[diesel(sql_type = BigInt)]
    revenue: i64,
}

#[derive(Debug, QueryableByName)]
struct OutcomeCount {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    reject_reason: Option<String>,
    #[diesel(sql_type = BigInt)]
    requests: i64,
    #[diesel(sql_type = BigInt)]
    seats: i64,
}

#[derive(Debug, QueryableByName)]
struct Triple {
    #[diesel(sql_type = BigInt)]
    a: i64,
    #[diesel(sql_type = BigInt)]
    b: i64,
    #[diesel(sql_type = BigInt)]
    c: i64,
}

/// One event's utilisation.
#[derive(Debug, QueryableByName, Serialize)]
#[serde(rename_all = "camelCase")]
struct EventUtilization {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    host_id: i64,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Timestamptz)]
    starts_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    reserved_seats: i64,
    #[diesel(sql_type = BigInt)]
    capacity: i64,
    /// Confirmed seats (within the window when one is given).
    #[diesel(sql_type = BigInt)]
    confirmed_seats: i64,
    #[diesel(sql_type = BigInt)]
    waitlist_seats: i64,
    #[serde(skip)]
    #[diesel(sql_type = Text)]
    sort_key: String,
}

/// `reserved / capacity × 100`, rounded to two decimals; 0 for no capacity.
pub fn percent(reserved: i64, capacity: i64) -> f64 {
    if capacity <= 0 {
        return 0.0;
    }
    // Integer arithmetic to the hundredth (half up), then one exact division by 100.
    let hundredths = (reserved as i128 * 10_000 * 2 + capacity as i128) / (2 * capacity as i128);
    hundredths as f64 / 100.0
}

/// Exact sort key of `reserved / capacity` (injective for capacities below 2^31).
const UTIL_KEY: &str = "div(e.reserved_seats::numeric * 100000000000000000000, e.capacity)";

async fn booking_totals(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    window: Window,
) -> diesel::QueryResult<BookingTotals> {
    let mut sql = DynSql::default();
    sql.push(
        "SELECT count(*) FILTER (WHERE status = 'confirmed')::int8 AS confirmed_bookings,
                coalesce(sum(seats) FILTER (WHERE status = 'confirmed'), 0)::int8 AS confirmed_seats,
                count(*) FILTER (WHERE status = 'cancelled')::int8 AS cancelled_bookings,
                coalesce(sum(seats) FILTER (WHERE status = 'cancelled'), 0)::int8 AS cancelled_seats,
                coalesce(sum(cost) FILTER (WHERE status = 'confirmed'), 0)::int8 AS revenue
           FROM bookings WHERE TRUE",
    )
    .scope("event_id", scope)
    .window("created_at", window);
    let mut rows: Vec<BookingTotals> = sql.load(conn).await?;
    rows.pop().ok_or(diesel::result::Error::NotFound)
}

#[derive(Debug, QueryableByName)]
struct CheckoutTotals {
    #[diesel(sql_type = BigInt)]
    holds_open: i64,
    #[diesel(sql_type = BigInt)]
    holds_expired: i64,
    #[diesel(sql_type = BigInt)]
    holds_paid: i64,
}

/// Holds (open, expired, paid) and money from the ledger (captured, refunded).
async fn checkout(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    window: Window,
) -> diesel::QueryResult<serde_json::Value> {
    let mut sql = DynSql::default();
    sql.push(
        "SELECT count(*) FILTER (WHERE status = 'held')::int8 AS holds_open,
                count(*) FILTER (WHERE status = 'expired')::int8 AS holds_expired,
                count(*) FILTER (WHERE paid_at IS NOT NULL)::int8 AS holds_paid
           FROM bookings WHERE TRUE",
    )
    .scope("event_id", scope)
    .window("created_at", window);
    let h: CheckoutTotals = sql
        .load::<CheckoutTotals>(conn)
        .await?
        .pop()
        .ok_or(diesel::result::Error::NotFound)?;
    let mut sql = DynSql::default();
    sql.push(
        "SELECT coalesce(sum(amount) FILTER (WHERE kind = 'capture'), 0)::int8 AS a,
                coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0)::int8 AS b,
                count(*) FILTER (WHERE kind = 'refund')::int8 AS c
           FROM payments WHERE TRUE",
    )
    .scope("event_id", scope)
    .window("created_at", window);
    let m: Triple = sql
        .load::<Triple>(conn)
        .await?
        .pop()
        .ok_or(diesel::result::Error::NotFound)?;
    Ok(json!({
        "holds": {
            "open": h.holds_open,
            "expired": h.holds_expired,
            "paid": h.holds_paid,
            "conversionPercent": percent(h.holds_paid, h.holds_paid + h.holds_expired),
        },
        "payments": { "captured": m.a, "refunded": m.b, "refunds": m.c, "net": m.a - m.b },
    }))
}

async fn outcomes(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    window: Window,
) -> diesel::QueryResult<serde_json::Map<String, serde_json::Value>> {
    let mut sql = DynSql::default();
    sql.push(
        "SELECT status, reject_reason, count(*)::int8 AS requests, coalesce(sum(seats), 0)::int8 AS seats
           FROM booking_requests WHERE TRUE",
    )
    .scope("event_id", scope)
    .window("requested_at", window)
    .push(" GROUP BY status, reject_reason");
    let rows: Vec<OutcomeCount> = sql.load(conn).await?;
    let mut by_status: BTreeMap<&str, i64> = ["confirmed", "partial", "waitlisted", "rejected"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    let mut by_reason: BTreeMap<String, i64> = BTreeMap::new();
    let (mut total, mut seats) = (0, 0);
    for r in &rows {
        *by_status.entry(r.status.as_str()).or_default() += r.requests;
        if let Some(reason) = &r.reject_reason {
            *by_reason.entry(reason.clone()).or_default() += r.requests;
        }
        total += r.requests;
        seats += r.seats;
    }
    let mut out = serde_json::Map::new();
    out.insert(
        "requestsByOutcome".into(),
        json!({
            "confirmed": by_status["confirmed"],
            "partial": by_status["partial"],
            "waitlisted": by_status["waitlisted"],
            "rejected": by_status["rejected"],
            "total": total,
            "seatsRequested": seats,
        }),
    );
    out.insert("rejectionsByReason".into(), json!(by_reason));
    Ok(out)
}

/// Current waitlist: entries, seats, events with a queue.
async fn waitlist(conn: &mut AsyncPgConnection, scope: Scope) -> diesel::QueryResult<Triple> {
    let mut sql = DynSql::default();
    sql.push(
        "SELECT count(*)::int8 AS a, coalesce(sum(seats), 0)::int8 AS b,
                count(DISTINCT event_id)::int8 AS c
           FROM waitlist WHERE TRUE",
    )
    .scope("event_id", scope);
    let mut rows: Vec<Triple> = sql.load(conn).await?;
    rows.pop().ok_or(diesel::result::Error::NotFound)
}

/// Current capacity of events that are not cancelled: reserved, capacity, count.
async fn capacity(conn: &mut AsyncPgConnection, scope: Scope) -> diesel::QueryResult<Triple> {
    let mut sql = DynSql::default();
    sql.push(
        "SELECT coalesce(sum(reserved_seats), 0)::int8 AS a, coalesce(sum(capacity), 0)::int8 AS b,
                count(*)::int8 AS c
           FROM events WHERE status = 'active'",
    )
    .scope("id", scope);
    let mut rows: Vec<Triple> = sql.load(conn).await?;
    rows.pop().ok_or(diesel::result::Error::NotFound)
}

/// Per-event confirmed seats: the reserved seats, or the window's confirmed bookings.
fn confirmed_seats_expr(sql: &mut DynSql, window: Window) {
    if window.is_open() {
        sql.push("e.reserved_seats::int8");
    } else {
        sql.push(
            "(SELECT coalesce(sum(b.seats), 0)::int8 FROM bookings b
               WHERE b.event_id = e.id AND b.status = 'confirmed'",
        )
        .window("b.created_at", window)
        .push(")");
    }
}

fn select_events(sql: &mut DynSql, window: Window) {
    sql.push(&format!(
        "SELECT e.id, e.name, e.host_id, {} AS status, e.starts_at,
                e.reserved_seats::int8 AS reserved_seats, e.capacity::int8 AS capacity, ",
        crate::events::model::PUBLIC_STATUS_SQL
    ));
    confirmed_seats_expr(sql, window);
    sql.push(&format!(
        " AS confirmed_seats,
                (SELECT coalesce(sum(w.seats), 0)::int8 FROM waitlist w WHERE w.event_id = e.id)
                    AS waitlist_seats,
                {UTIL_KEY}::text AS sort_key
           FROM events e WHERE TRUE"
    ));
}

/// Top `n` events by confirmed seats, ties by id.
async fn most_popular(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    window: Window,
    n: usize,
) -> diesel::QueryResult<Vec<EventUtilization>> {
    let mut sql = DynSql::default();
    select_events(&mut sql, window);
    sql.scope("e.id", scope)
        .push(" ORDER BY confirmed_seats DESC, e.id ASC LIMIT ")
        .bind(Bind::Int(i64::try_from(n).unwrap_or(i64::MAX)));
    sql.load(conn).await
}

/// A page of events by utilisation (highest first, ties by id) after `cursor`.
async fn utilization_page(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    window: Window,
    cursor: Option<&(String, i64)>,
    fetch: usize,
) -> diesel::QueryResult<Vec<EventUtilization>> {
    let mut sql = DynSql::default();
    select_events(&mut sql, window);
    sql.scope("e.id", scope);
    if let Some((key, id)) = cursor {
        sql.push(&format!(" AND ({UTIL_KEY} < "))
            .bind(Bind::Text(key.clone()))
            .push(&format!("::numeric OR ({UTIL_KEY} = "))
            .bind(Bind::Text(key.clone()))
            .push("::numeric AND e.id > ")
            .bind(Bind::Int(*id))
            .push("))");
    }
    sql.push(&format!(" ORDER BY {UTIL_KEY} DESC, e.id ASC LIMIT "))
        .bind(Bind::Int(i64::try_from(fetch).unwrap_or(i64::MAX)));
    sql.load(conn).await
}

fn encode_cursor(key: &str, id: i64) -> String {
    cursor::encode("u1", &[&key, &id])
}

fn decode_cursor(raw: &str) -> Option<(String, i64)> {
    let [key, id] = cursor::decode::<2>(raw, "u1")?;
    if key.is_empty() || key.len() > 40 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = id.parse::<i64>().ok().filter(|n| *n > 0)?;
    Some((key, id))
}

fn util_json(e: &EventUtilization) -> serde_json::Value {
    json!({
        "id": e.id,
        "name": e.name,
        "hostId": e.host_id,
        "status": e.status,
        "startsAt": e.starts_at,
        "reservedSeats": e.reserved_seats,
        "capacity": e.capacity,
        "confirmedSeats": e.confirmed_seats,
        "utilizationPercent": percent(e.reserved_seats, e.capacity),
        "waitlistSeats": e.waitlist_seats,
    })
}

/// Parsed analytics query.
#[derive(Debug, Default)]
struct AnalyticsQuery {
    top: usize,
    page: usize,
    cursor: Option<(String, i64)>,
    host_id: Option<i64>,
    window: Window,
}

fn parse_window(key: &str, value: &str, w: &mut Window, errors: &mut Vec<FieldError>) -> bool {
    query::range_param(key, value, &mut w.from, &mut w.to, errors)
}

fn parse_analytics(params: &HashMap<String, String>) -> ApiResult<AnalyticsQuery> {
    let mut errors = Vec::new();
    let mut q = AnalyticsQuery {
        top: TOP_DEFAULT,
        page: PAGE_DEFAULT,
        ..AnalyticsQuery::default()
    };
    for (key, value) in params {
        if parse_window(key, value, &mut q.window, &mut errors) {
            continue;
        }
        match key.as_str() {
            "limit" => q.top = query::limit("limit", value, TOP_MAX, &mut errors).unwrap_or(0),
            "perEventLimit" => {
                q.page = query::limit("perEventLimit", value, PAGE_MAX, &mut errors).unwrap_or(0);
            }
            "cursor" => {
                q.cursor = decode_cursor(value);
                if q.cursor.is_none() {
                    errors.push(FieldError::new(
                        "cursor",
                        "is not a cursor this endpoint issued",
                    ));
                }
            }
            "hostId" => q.host_id = query::id("hostId", value, &mut errors),
            other => errors.push(FieldError::new(other, "unknown query parameter")),
        }
    }
    query::check_range(q.window.from, q.window.to, &mut errors);
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(ApiError::fields(errors))
    }
}

/// The figures shared by both endpoints.
async fn flows(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    window: Window,
) -> diesel::QueryResult<serde_json::Map<String, serde_json::Value>> {
    let b = booking_totals(conn, scope, window).await?;
    let w = waitlist(conn, scope).await?;
    let mut out = serde_json::Map::new();
    out.insert(
        "totalBookings".into(),
        json!({ "bookings": b.confirmed_bookings, "seats": b.confirmed_seats }),
    );
    out.insert(
        "cancellations".into(),
        json!({ "bookings": b.cancelled_bookings, "seats": b.cancelled_seats }),
    );
    out.insert("revenue".into(), json!(b.revenue));
    out.insert("checkout".into(), checkout(conn, scope, window).await?);
    out.insert(
        "waitlist".into(),
        json!({ "entries": w.a, "seats": w.b, "events": w.c }),
    );
    out.extend(outcomes(conn, scope, window).await?);
    out.insert(
        "window".into(),
        json!({ "from": window.from, "to": window.to }),
    );
    Ok(out)
}

/// `GET /api/admin/analytics?limit&perEventLimit&cursor&hostId&from&to` (admin).
pub async fn admin_analytics(
    state: web::Data<AppState>,
    caller: AuthUser,
    params: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let out = admin_report(&state, &caller, &params).await?;
    Ok(response::ok(out, "Admin analytics fetched successfully"))
}

/// The admin's analytics for `params` (the API's query parameters). The API's
/// `GET /api/admin/analytics` and the admin's analytics page both come here.
pub async fn admin_report(
    state: &AppState,
    caller: &AuthUser,
    params: &HashMap<String, String>,
) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    caller.require(&[Role::Admin])?;
    let q = parse_analytics(params)?;
    let mut conn = state.db().get().await?;
    caller.require_admin(&mut conn).await?;
    let scope = q.host_id.map_or(Scope::All, Scope::Host);
    let mut out = flows(&mut conn, scope, q.window).await?;
    let cap = capacity(&mut conn, scope).await?;
    out.insert(
        "overallCapacity".into(),
        json!({
            "totalReserved": cap.a,
            "totalCapacity": cap.b,
            "utilizationPercent": percent(cap.a, cap.b),
            "events": cap.c,
        }),
    );
    let top = most_popular(&mut conn, scope, q.window, q.top).await?;
    out.insert(
        "mostPopularEvents".into(),
        top.iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "name": e.name,
                    "hostId": e.host_id,
                    "confirmedSeats": e.confirmed_seats,
                    "capacity": e.capacity,
                    "utilizationPercent": percent(e.reserved_seats, e.capacity),
                })
            })
            .collect(),
    );
    let mut page =
        utilization_page(&mut conn, scope, q.window, q.cursor.as_ref(), q.page + 1).await?;
    let has_more = page.len() > q.page;
    page.truncate(q.page);
    let next = if has_more {
        page.last().map(|e| encode_cursor(&e.sort_key, e.id))
    } else {
        None
    };
    out.insert(
        "perEventUtilization".into(),
        page.iter().map(util_json).collect(),
    );
    out.insert(
        "perEventPageInfo".into(),
        json!({ "hasMore": has_more, "nextCursor": next }),
    );
    out.insert("hostId".into(), json!(q.host_id));
    Ok(out)
}

/// `GET /api/events/{id}/stats?from&to`: the event's host or an admin.
pub async fn event_stats(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    params: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&path)?;
    let mut errors = Vec::new();
    let mut window = Window::default();
    for (key, value) in params.iter() {
        if !parse_window(key, value, &mut window, &mut errors) {
            errors.push(FieldError::new(key.as_str(), "unknown query parameter"));
        }
    }
    query::check_range(window.from, window.to, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let out = event_report(&state, &caller, id, window).await?;
    Ok(response::ok(out, "Event stats"))
}

/// An event's stats over `window` for its host or an admin (403 for anyone else): the flows,
/// the event's capacity and utilisation, its queue. The API's stats and the host's dashboard
/// both come here.
pub async fn event_report(
    state: &AppState,
    caller: &AuthUser,
    id: i64,
    window: Window,
) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    let mut conn = state.db().get().await?;
    let event = Event::find(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
    if !caller.manages(&mut conn, event.host_id).await? {
        return Err(ApiError::Forbidden(
            "only the event's host or an admin sees its stats".into(),
        ));
    }
    let mut out = flows(&mut conn, Scope::Event(id), window).await?;
    let reserved = i64::from(event.reserved_seats);
    let capacity = i64::from(event.capacity);
    out.insert(
        "event".into(),
        json!({
            "id": event.id,
            "name": event.name,
            "hostId": event.host_id,
            "status": event.status_at(Utc::now()),
            "startsAt": event.starts_at,
            "endsAt": event.ends_at,
            "capacity": capacity,
            "reservedSeats": reserved,
            "availableSeats": event.available_seats(),
            "utilizationPercent": percent(reserved, capacity),
            "price": event.price,
        }),
    );
    if event.waiting_room {
        out.insert(
            "queue".into(),
            crate::waiting_room::facts(state, &event).await?,
        );
    }
    Ok(out)
}

#[derive(Debug, QueryableByName)]
struct SalesPoint {
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    seats: i64,
}

/// Seats an event holds now (confirmed or held), as a running total by the minute they were
/// booked: the dashboard's "seats sold over time". At most 2,000 points (the latest).
pub async fn sales_series(
    conn: &mut AsyncPgConnection,
    event_id: i64,
) -> diesel::QueryResult<Vec<(DateTime<Utc>, i64)>> {
    use diesel_async::RunQueryDsl;
    let rows: Vec<SalesPoint> = diesel::sql_query(
        "SELECT at, (sum(seats) OVER (ORDER BY at))::int8 AS seats FROM ( \
           SELECT date_trunc('minute', created_at) AS at, sum(seats) AS seats FROM bookings \
            WHERE event_id = $1 AND status IN ('confirmed', 'held') GROUP BY 1) m \
         ORDER BY at DESC LIMIT 2000",
    )
    .bind::<BigInt, _>(event_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().rev().map(|p| (p.at, p.seats)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_half_up_to_hundredths() {
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(400, 1000), 40.0);
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(2, 3), 66.67);
        assert_eq!(percent(1, 8), 12.5);
        assert_eq!(percent(7, 7), 100.0);
    }

    #[test]
    fn cursors_round_trip_and_reject_damage() {
        let c = encode_cursor("40000000000000000000", 9);
        assert_eq!(decode_cursor(&c), Some(("40000000000000000000".into(), 9)));
        for bad in [
            "",
            "u1",
            &cursor::encode("u1", &[&"4x", &9]),
            &cursor::encode("u1", &[&"4", &0]),
            &cursor::encode("t1", &[&"4", &9]),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}

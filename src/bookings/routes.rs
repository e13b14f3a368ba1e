//! Booking handlers: book (the accept path), request status, cancel, waitlist.
//!
//! The accept path does no database I/O in the common case: verify the token (extractor),
//! check the rate limit (middleware), validate, look the event up in the cache, queue.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::bookings::Submitted;
use crate::bookings::domain::{BookingRequest, Outcome, Reason, SEATS_RANGE, Status};
use crate::bookings::engine::{self, StoredRequest};
use crate::bookings::idempotency::{self, Claim};
use crate::db::schema::{booking_requests, bookings, events};
use crate::error::{ApiError, ApiResult, FieldError, error_response};
use crate::events::model::{Closed, Event};
use crate::http::auth::AuthUser;
use crate::http::extract::{ApiJson, parse_json};
use crate::http::response;
use crate::notifications::outbox::{self, NewNotification};
use crate::state::AppState;
use crate::users::domain::Role;

/// Namespace of idempotency-derived request ids (UUIDv5 of `"<user id>:<key>"`).
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6a0d_6f1e_8f2b_4c3a_9e51_1d2c_3b4a_5f60);
/// Longest `Prefer: wait`.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// `POST /api/events/book` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BookBody {
    /// The event.
    pub event_id: Option<i64>,
    /// Seats asked for.
    pub number_of_seats: Option<i64>,
    /// Fewer seats are fine.
    pub allow_partial: Option<bool>,
    /// Wait for seats when there are too few (default yes).
    pub join_waitlist: Option<bool>,
    /// The ticket type (default: the event's default type).
    pub ticket_type_id: Option<i64>,
}

/// A booking ask whose fields passed [`validate`].
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// The event.
    pub event_id: i64,
    /// Seats asked for (1 to 10).
    pub seats: i32,
    /// Fewer seats are fine.
    pub allow_partial: bool,
    /// Wait for seats when there are too few.
    pub join_waitlist: bool,
    /// The ticket type (default: the event's default type).
    pub ticket_type_id: Option<i64>,
}

/// What placing a booking request gave.
pub enum Placed {
    /// Decided (its outcome).
    Decided(BookingRequest, Outcome),
    /// Accepted durably, not decided yet (`statusUrl` tells), with what to tell the client.
    Pending(BookingRequest, &'static str),
}

/// The request id of an idempotent request: the same user and key always give the same id.
pub fn request_id_for(user_id: i64, key: &str) -> Uuid {
    Uuid::new_v5(
        &IDEMPOTENCY_NAMESPACE,
        format!("{user_id}:{key}").as_bytes(),
    )
}

fn idempotency_key(req: &HttpRequest) -> ApiResult<Option<String>> {
    let raw = req
        .headers()
        .get("idempotency-key")
        .or_else(|| req.headers().get("x-idempotency-key"));
    let Some(raw) = raw else { return Ok(None) };
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// `Prefer: wait=N` (seconds, capped at 30). Other preferences are ignored (RFC 7240); a
/// `wait` that is not a non-negative number is a 400 naming the header.
fn prefer_wait(req: &HttpRequest) -> ApiResult<Option<Duration>> {
    let Some(header) = req.headers().get("prefer") else {
        return Ok(None);
    };
    let bad = || ApiError::field("Prefer", "wait must be a non-negative number of seconds");
    let header = header.to_str().map_err(|_| bad())?;
    for part in header.split([',', ';']) {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case("wait") {
            continue;
        }
        let secs: f64 = v.trim().trim_matches('"').parse().map_err(|_| bad())?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(bad());
        }
        // Capped before converting: any value past the cap (1e20 included) is the cap.
        return Ok(Some(Duration::from_secs_f64(
            secs.min(MAX_WAIT.as_secs_f64()),
        )));
    }
    Ok(None)
}

/// Checks a booking body, naming every field that is wrong.
pub fn validate(body: &BookBody) -> ApiResult<Ask> {
    let mut errors = Vec::new();
    let event_id = match body.event_id {
        Some(id) if id > 0 => Some(id),
        Some(_) => {
            errors.push(FieldError::new("eventId", "must be a positive integer"));
            None
        }
        None => {
            errors.push(FieldError::new("eventId", "is required"));
            None
        }
    };
    let seats = match body.number_of_seats {
        Some(n) if i32::try_from(n).is_ok_and(|n| SEATS_RANGE.contains(&n)) => {
            i32::try_from(n).ok()
        }
        Some(_) => {
            errors.push(FieldError::new(
                "numberOfSeats",
                "must be an integer from 1 to 10",
            ));
            None
        }
        None => {
            errors.push(FieldError::new("numberOfSeats", "is required"));
            None
        }
    };
    if body.ticket_type_id.is_some_and(|t| t <= 0) {
        errors.push(FieldError::new(
            "ticketTypeId",
            "must be a positive integer",
        ));
    }
    match (event_id, seats) {
        (Some(event_id), Some(seats)) if errors.is_empty() => Ok(Ask {
            event_id,
            seats,
            allow_partial: body.allow_partial.unwrap_or(false),
            join_waitlist: body.join_waitlist.unwrap_or(true),
            ticket_type_id: body.ticket_type_id,
        }),
        _ => Err(ApiError::fields(errors)),
    }
}

fn rejected_code(reason: Reason) -> &'static str {
    reason.as_str()
}

/// A booking request's answer (`data`), serialized straight into the body: the keys are
/// declared in the order a `json!` map wrote them (alphabetical), so the bytes are the same,
/// without building a map per answer (`BTreeMap` inserts were ~3% of the accept path's samples).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct OutcomeBody<'a> {
    booking_id: Option<i64>,
    cost: i64,
    event_id: i64,
    expires_at: Option<chrono::DateTime<Utc>>,
    message_id: Uuid,
    position: Option<i64>,
    reason: Option<Reason>,
    request_id: Uuid,
    seats: i32,
    seats_requested: i32,
    seats_waitlisted: i32,
    status: Status,
    status_url: &'a str,
    ticket_type_id: Option<i64>,
}

/// The answer of a request not decided yet (`data`), keys in the same order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PendingBody<'a> {
    message_id: Uuid,
    request_id: Uuid,
    status: Status,
    status_url: &'a str,
}

/// The answer for a known outcome.
fn outcome_response(o: &Outcome, waited: bool) -> HttpResponse {
    let status_url = format!("/api/bookings/requests/{}", o.request_id);
    let data = OutcomeBody {
        booking_id: o.booking_id,
        cost: o.cost,
        event_id: o.event_id,
        expires_at: o.expires_at,
        message_id: o.request_id,
        position: o.position,
        reason: o.reason,
        request_id: o.request_id,
        seats: o.seats_confirmed,
        seats_requested: o.seats_requested,
        seats_waitlisted: o.seats_waitlisted,
        status: o.status,
        status_url: &status_url,
        ticket_type_id: o.ticket_type_id,
    };
    // A rejection is a 409 whether or not the client asked to wait (the old fast path
    // answered sold-out and closed events so; now the writer decides and stores them).
    if !waited && o.status != Status::Rejected {
        return response::respond(StatusCode::ACCEPTED, data, "Booking request received");
    }
    match o.status {
        Status::Confirmed => response::created(data, "Booking confirmed"),
        Status::Held => response::created(
            data,
            "Seats held: pay before expiresAt (POST /api/bookings/{bookingId}/pay)",
        ),
        Status::Expired => response::ok(data, "This request's hold has expired"),
        Status::RefundPending | Status::Refunded => response::ok(
            data,
            "This request's booking has been cancelled and refunded",
        ),
        Status::Partial if o.seats_waitlisted == 0 => {
            response::created(data, "Booking partially confirmed")
        }
        Status::Partial => response::respond(
            StatusCode::ACCEPTED,
            data,
            "Booking partially confirmed; the rest is waitlisted",
        ),
        Status::Waitlisted => response::respond(StatusCode::ACCEPTED, data, "Waitlisted"),
        // A replay after the booking was cancelled: say so, not "confirmed".
        Status::Cancelled => response::ok(data, "This request's booking has been cancelled"),
        Status::Pending => {
            response::respond(StatusCode::ACCEPTED, data, "Booking request received")
        }
        Status::Rejected => {
            let reason = o.reason.unwrap_or(Reason::SoldOut);
            let mut resp = error_response(
                StatusCode::CONFLICT,
                rejected_code(reason),
                &format!("booking rejected: {}", reason.describe()),
                &[],
            );
            // Keep the request id visible to the client.
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&o.request_id.to_string())
            {
                resp.headers_mut().insert(
                    actix_web::http::header::HeaderName::from_static("x-booking-request-id"),
                    v,
                );
            }
            resp
        }
    }
}

/// `POST /api/events/book`: queue a booking request. Answers once it is durable: in-process,
/// once decided and committed (the answer carries the outcome); with Kafka, once the broker has
/// acknowledged it. `Prefer: wait=N` waits for the decision (201 / 202 / 409).
#[tracing::instrument(name = "book", skip_all, fields(user.id = caller.id, event.id = tracing::field::Empty, request.id = tracing::field::Empty))]
pub async fn book(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    body: ApiJson<BookBody>,
) -> ApiResult<HttpResponse> {
    let ask = validate(&body.into_inner())?;
    let key = idempotency_key(&req)?;
    let wait = prefer_wait(&req)?;
    let admission = crate::waiting_room::token_of(&req);
    match place(&state, caller, admission, ask, key, wait).await? {
        Placed::Decided(request, outcome) => answer(&request, &outcome, wait.is_some()),
        Placed::Pending(request, message) => Ok(pending_response(&request, message)),
    }
}

/// Places one booking request through the booking queue (both transports) and, in-process or
/// when `wait` is given, waits for its decision. The API's `book` and the booking form of the
/// event page both come here.
/// `admission`: the waiting room's admission token, for an event sold through its room.
pub async fn place(
    state: &AppState,
    caller: AuthUser,
    admission: Option<&str>,
    ask: Ask,
    key: Option<String>,
    wait: Option<Duration>,
) -> ApiResult<Placed> {
    let Ask {
        event_id,
        seats,
        allow_partial,
        join_waitlist,
        ticket_type_id,
    } = ask;
    // Turned away first when the consumers are too far behind: no cache read, no claim.
    state.booking_queue().admit()?;
    let span = tracing::Span::current();
    span.record("event.id", event_id);
    let event = crate::events::service::lookup(state, event_id).await?;
    // An event sold through its waiting room takes bookings only from admitted buyers.
    let admitted = crate::waiting_room::check_admission(state, &event, caller.id, admission)?;
    let now = Utc::now();
    // No shortcut for closed or sold-out events: every request goes to the writer, which
    // decides it with the others and stores it, so each answered request has a status
    // (`statusUrl`) and counts in analytics.
    let request = BookingRequest {
        request_id: key
            .as_deref()
            .map_or_else(Uuid::now_v7, |k| request_id_for(caller.id, k)),
        user_id: caller.id,
        event_id,
        seats,
        allow_partial,
        join_waitlist,
        idempotency_key: key,
        requested_at: now,
        // The price the buyer was shown: they never pay more (DESIGN invariant 6). Quoted
        // for the default type (the event's price); another type sells at its price.
        quoted_price: ticket_type_id.is_none().then_some(event.price),
        ticket_type_id,
        // The writer lets an admission take seats (or a waitlist place) once.
        admission: admitted.map(|a| a.for_request()),
    };
    span.record("request.id", tracing::field::display(request.request_id));

    let queue = state.booking_queue();
    // Kafka answers before the decision: claim the id so that a retry gets what an in-process
    // retry gets (the first outcome, or 422 for a different body).
    if queue.memory().is_none() {
        match idempotency::claim(state, &request).await {
            Claim::Reused => return Err(idempotency_mismatch()),
            Claim::Retry => {
                // Answered as the in-process path answers a decided request.
                if let Some(o) = load_outcome(state, request.request_id).await? {
                    return Ok(Placed::Decided(request, o));
                }
                // Not decided yet (or its first publish failed): queue it again; the writer
                // decides an id once.
            }
            Claim::New => {}
        }
    }
    if let Submitted::Deciding(rx) = queue.submit(&request).await? {
        let timeout = Duration::from_secs(state.settings().booking.decision_timeout_secs);
        let outcome = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(o))) => o,
            // Refused for good (never stored): nothing was booked.
            Ok(Ok(Err(message))) => {
                return Err(ApiError::Unprocessable {
                    code: "booking_refused",
                    message,
                });
            }
            // The writer dropped the request without deciding it (stopped mid-shutdown): it
            // was never written, so a retry (same Idempotency-Key) is safe.
            Ok(Err(_)) => {
                return Err(ApiError::Unavailable {
                    message:
                        "the booking service is restarting; retry with the same Idempotency-Key"
                            .to_owned(),
                    retry_after_secs: 2,
                });
            }
            // Still queued or being written: the outcome is not known yet, and a blind retry
            // without a key could book twice. Say so, with where to look.
            Err(_) => {
                queue.remember_pending(request.request_id, caller.id);
                return Ok(Placed::Pending(
                    request,
                    "Booking request accepted; its outcome is not known yet, poll statusUrl",
                ));
            }
        };
        if let Some(a) = admitted {
            a.record_use(state).await;
        }
        return Ok(Placed::Decided(request, outcome));
    }
    // Kafka: durable once the broker acknowledged it (acks=all); decided later. The
    // admission's use is recorded after the decision when the client waits for it, else now.
    let decided = match wait {
        Some(wait) => crate::bookings::outcomes::wait_for(state, request.request_id, wait).await?,
        None => None,
    };
    if let Some(a) = admitted {
        a.record_use(state).await;
    }
    Ok(match decided {
        Some(o) => Placed::Decided(request, o),
        None => Placed::Pending(request, "Booking request received and is being processed."),
    })
}

/// 202 `pending`: accepted durably, decided later; `statusUrl` tells the outcome.
fn pending_response(request: &BookingRequest, message: &str) -> HttpResponse {
    response::respond(
        StatusCode::ACCEPTED,
        PendingBody {
            message_id: request.request_id,
            request_id: request.request_id,
            status: Status::Pending,
            status_url: &format!("/api/bookings/requests/{}", request.request_id),
        },
        message,
    )
}

/// The answer for a decided request (either transport).
fn answer(request: &BookingRequest, outcome: &Outcome, waited: bool) -> ApiResult<HttpResponse> {
    if outcome.reason == Some(Reason::UnknownUser) {
        return Err(ApiError::Unauthorized(
            "your account no longer exists".to_owned(),
        ));
    }
    if !outcome.matches(request) {
        return Err(idempotency_mismatch());
    }
    Ok(outcome_response(outcome, waited))
}

fn idempotency_mismatch() -> ApiError {
    ApiError::Unprocessable {
        code: "idempotency_key_reused",
        message: "this Idempotency-Key was already used with a different request body".to_owned(),
    }
}

/// The stored outcome of a request, if decided.
pub async fn load_outcome(state: &AppState, request: Uuid) -> anyhow::Result<Option<Outcome>> {
    let mut conn = state.db().get().await?;
    let row: Option<StoredRequest> = booking_requests::table
        .find(request)
        .select(StoredRequest::as_select())
        .first(&mut conn)
        .await
        .optional()?;
    match row {
        Some(r) => Ok(Some(engine::stored_outcome(&mut conn, &r).await?)),
        None => Ok(None),
    }
}

/// `GET /api/bookings/requests/{requestId}`: the request's status and outcome (its owner or an
/// admin; anyone else gets 404, as for an unknown id).
pub async fn request_status(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: Uuid = path
        .parse()
        .map_err(|_| ApiError::field("requestId", "must be a UUID"))?;
    let not_found = || ApiError::NotFound(format!("no booking request {id}"));
    // Someone else's request: only for an admin, as they are now (not as the token says).
    let may_see = async |owner: i64| -> ApiResult<bool> {
        if owner == caller.id {
            return Ok(true);
        }
        if caller.role != Role::Admin {
            return Ok(false);
        }
        let mut conn = state.db().get().await?;
        match caller.require_admin(&mut conn).await {
            Ok(_) => Ok(true),
            Err(ApiError::Forbidden(_)) => Ok(false),
            Err(e) => Err(e),
        }
    };
    match load_outcome(&state, id).await? {
        Some(o) if may_see(o.user_id).await? => {
            Ok(response::ok(outcome_json(&o), "Booking request status"))
        }
        Some(_) => Err(not_found()),
        None => match pending_owner(&state, id).await {
            Some(owner) if may_see(owner).await? => Ok(response::ok(
                json!({ "requestId": id, "status": Status::Pending }),
                "Booking request status",
            )),
            _ => Err(not_found()),
        },
    }
}

/// Who owns a request accepted but not decided yet: this process's queue, or the claim any
/// API node made when it queued the request on Kafka.
async fn pending_owner(state: &AppState, id: Uuid) -> Option<i64> {
    match state.booking_queue().pending_owner(id) {
        Some(owner) => Some(owner),
        None => idempotency::owner(state, id).await,
    }
}

fn outcome_json(o: &Outcome) -> serde_json::Value {
    json!({
        "requestId": o.request_id,
        "eventId": o.event_id,
        "status": o.status,
        "seatsRequested": o.seats_requested,
        "seats": o.seats_confirmed,
        "seatsWaitlisted": o.seats_waitlisted,
        "bookingId": o.booking_id,
        "cost": o.cost,
        "position": o.position,
        "reason": o.reason,
        "ticketTypeId": o.ticket_type_id,
        "expiresAt": o.expires_at,
    })
}

/// `DELETE /api/events/book` body (also accepted as query parameters, as the seed did).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CancelBody {
    event_id: Option<i64>,
    booking_id: Option<i64>,
    cancel_all: Option<bool>,
}

fn cancel_params(query: &HashMap<String, String>, bytes: &[u8]) -> ApiResult<CancelBody> {
    let mut body: CancelBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        parse_json(bytes)?
    };
    let mut errors = Vec::new();
    for (k, v) in query {
        match k.as_str() {
            "eventId" => match v.parse() {
                Ok(n) => body.event_id = body.event_id.or(Some(n)),
                Err(_) => errors.push(FieldError::new("eventId", "must be a positive integer")),
            },
            "bookingId" => match v.parse() {
                Ok(n) => body.booking_id = body.booking_id.or(Some(n)),
                Err(_) => errors.push(FieldError::new("bookingId", "must be a positive integer")),
            },
            "cancelAll" => match v.as_str() {
                "true" => body.cancel_all = body.cancel_all.or(Some(true)),
                "false" => body.cancel_all = body.cancel_all.or(Some(false)),
                _ => errors.push(FieldError::new("cancelAll", "must be true or false")),
            },
            other => errors.push(FieldError::new(other, "unknown query parameter")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    Ok(body)
}

/// `DELETE /api/events/book { eventId, bookingId?, cancelAll? }`: cancels the caller's
/// **confirmed** bookings (one by id, all with `cancelAll`, else the latest). Repeating it frees
/// nothing twice. The freed seats go to the waitlist first, in the same transaction. A paid
/// booking is refunded when the event's refund policy allows it (409 otherwise).
#[tracing::instrument(name = "cancel_booking", skip_all, fields(user.id = caller.id))]
pub async fn cancel(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<HashMap<String, String>>,
    bytes: web::Bytes,
) -> ApiResult<HttpResponse> {
    let body = cancel_params(&query, &bytes)?;
    let event_id = body
        .event_id
        .filter(|e| *e > 0)
        .ok_or_else(|| ApiError::field("eventId", "is required and must be a positive integer"))?;
    if body.booking_id.is_some_and(|b| b <= 0) {
        return Err(ApiError::field("bookingId", "must be a positive integer"));
    }
    let targets = match (body.booking_id, body.cancel_all.unwrap_or(false)) {
        (Some(b), _) => Targets::One(b),
        (None, true) => Targets::All,
        (None, false) => Targets::Latest,
    };
    let done = cancel_bookings(&state, event_id, caller.id, targets, false).await?;
    Ok(response::ok(done, "Booking cancelled successfully"))
}

/// Which of a buyer's confirmed bookings on an event to cancel.
#[derive(Debug, Clone, Copy)]
pub enum Targets {
    /// This one.
    One(i64),
    /// The latest.
    Latest,
    /// All.
    All,
}

/// Cancels `user`'s confirmed bookings on an event in one transaction under the event lock:
/// seats (and ticket type counts) freed, unpaid bookings `cancelled`, paid ones
/// `refund_pending` with a refund job per payment, the waitlist served from the freed seats.
/// `host_refund`: the host or an admin refunds whatever the refund policy says and whether or
/// not the event has started.
pub async fn cancel_bookings(
    state: &AppState,
    event_id: i64,
    user: i64,
    targets: Targets,
    host_refund: bool,
) -> ApiResult<serde_json::Value> {
    let mut conn = state.db().get().await?;
    let (freed, cancelled, refunds, decided) = conn
        .transaction(async |conn| {
            // The lock serialises this cancellation with the booking worker and other writers.
            let locked = Event::lock(conn, event_id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no event with id {event_id}")))?;
            let now = Utc::now();
            // A started (or cancelled) event is frozen: refunds are the host's decision.
            match locked.closed_at(now) {
                Some(Closed::Started) if !host_refund => {
                    return Err(ApiError::Conflict {
                        code: "event_closed",
                        message: "the event has started; bookings can no longer be cancelled (ask the host for a refund)".to_owned(),
                    });
                }
                Some(Closed::Cancelled) => {
                    return Err(ApiError::Conflict {
                        code: "event_closed",
                        message: "the event is cancelled; its bookings were cancelled with it".to_owned(),
                    });
                }
                _ => {}
            }
            let mut q = bookings::table
                .filter(bookings::event_id.eq(event_id))
                .filter(bookings::user_id.eq(user))
                .filter(bookings::status.eq("confirmed"))
                .select((
                    bookings::id,
                    bookings::request_id,
                    bookings::seats,
                    bookings::cost,
                    bookings::paid_at.is_not_null(),
                    bookings::ticket_type_id,
                ))
                .order(bookings::id.desc())
                // No row locks needed: every writer of an event's bookings holds the event row.
                .into_boxed();
            match targets {
                Targets::One(b) => q = q.filter(bookings::id.eq(b)),
                Targets::Latest => q = q.limit(1),
                Targets::All => {}
            }
            let targets: Vec<(i64, Uuid, i32, i64, bool, Option<i64>)> = q.load(conn).await?;
            if targets.is_empty() {
                return Err(ApiError::NotFound(
                    "no confirmed booking to cancel for this event".to_owned(),
                ));
            }
            if !host_refund && targets.iter().any(|t| t.4) {
                refund_allowed(&locked, now)?;
            }
            let ids = |paid: bool| -> Vec<i64> {
                targets.iter().filter(|t| t.4 == paid).map(|t| t.0).collect()
            };
            let freed: i32 = targets.iter().map(|t| t.2).sum();
            for (paid, status) in [(false, "cancelled"), (true, "refund_pending")] {
                diesel::update(bookings::table.filter(bookings::id.eq_any(ids(paid))))
                    .set((bookings::status.eq(status), bookings::cancelled_at.eq(now)))
                    .execute(conn)
                    .await?;
            }
            release_type_seats(conn, event_id, &targets.iter().map(|t| (t.5, t.2)).collect::<Vec<_>>()).await?;
            let event: Event = diesel::update(events::table.find(event_id))
                .set((
                    events::reserved_seats.eq(events::reserved_seats - freed),
                    events::version.eq(events::version + 1),
                ))
                .returning(Event::as_returning())
                .get_result(conn)
                .await?;
            let mut rows: Vec<_> = targets
                .iter()
                .map(|(id, request, seats, cost, paid, _)| {
                    NewNotification::new(
                        crate::notifications::kind::Notice::BookingCancelled,
                        user,
                        Some(event_id),
                        json!({
                            "eventId": event.id, "eventName": event.name, "venue": event.venue,
                            "startsAt": event.starts_at, "bookingId": id, "requestId": request,
                            "seats": seats, "cost": cost, "refund": paid,
                        }),
                    )
                })
                .collect();
            let mut refunds = 0;
            let reason = if host_refund { "host_refund" } else { "cancelled" };
            for id in ids(true) {
                let jobs =
                    crate::payments::refund::jobs_for_cancelled(conn, &event, id, user, reason)
                        .await?;
                refunds += jobs.len();
                rows.extend(jobs);
            }
            outbox::enqueue(conn, &rows).await?;
            // Freed seats go to the waitlist first (FIFO), before any new request.
            let decided = engine::serve_waitlist_locked(conn, event)
                .await
                .map_err(ApiError::Internal)?;
            Ok::<_, ApiError>((freed, targets.len(), refunds, decided))
        })
        .await?;
    crate::bookings::after_commit(state, &decided).await;
    crate::notifications::wake(state);
    tracing::info!(
        seats.freed = freed,
        bookings.cancelled = cancelled,
        refunds = refunds,
        waitlist.served = decided.served.len(),
        "bookings cancelled"
    );
    Ok(json!({
        "eventId": event_id,
        "seatsFreed": freed,
        "bookingsCancelled": cancelled,
        "refunds": refunds,
        "waitlistServed": decided.served.len(),
    }))
}

/// Whether a buyer may cancel a paid booking now (the event's refund policy).
fn refund_allowed(event: &Event, now: chrono::DateTime<Utc>) -> ApiResult<()> {
    match event.refund_until_hours {
        None => Err(ApiError::Conflict {
            code: "refund_not_offered",
            message: "this event does not refund cancelled bookings; ask the host".to_owned(),
        }),
        Some(h) if now + chrono::Duration::hours(i64::from(h)) > event.starts_at => {
            Err(ApiError::Conflict {
                code: "refund_window_closed",
                message: format!(
                    "paid bookings can be cancelled and refunded until {h} hours before the start; ask the host"
                ),
            })
        }
        Some(_) => Ok(()),
    }
}

/// Gives seats back to their ticket types (`None`: the event's default type).
pub async fn release_type_seats(
    conn: &mut diesel_async::AsyncPgConnection,
    event_id: i64,
    seats: &[(Option<i64>, i32)],
) -> diesel::QueryResult<()> {
    use crate::db::schema::ticket_types;
    let mut by_type: Vec<(Option<i64>, i32)> = Vec::new();
    for (t, n) in seats {
        match by_type.iter_mut().find(|(x, _)| x == t) {
            Some((_, m)) => *m += n,
            None => by_type.push((*t, *n)),
        }
    }
    for (t, n) in by_type {
        let of_event = ticket_types::table.filter(ticket_types::event_id.eq(event_id));
        let less = ticket_types::sold.eq(ticket_types::sold - n);
        match t {
            Some(id) => {
                diesel::update(of_event.filter(ticket_types::id.eq(id)))
                    .set(less)
                    .execute(conn)
                    .await?
            }
            None => {
                diesel::update(of_event.filter(ticket_types::is_default.eq(true)))
                    .set(less)
                    .execute(conn)
                    .await?
            }
        };
    }
    Ok(())
}

/// `GET /api/events/{id}/waitlist/me`: the caller's place(s) in the event's waitlist.
pub async fn my_waitlist(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let event_id = crate::events::routes::path_id(&path)?;
    let mut conn = state.db().get().await?;
    let entries: Vec<serde_json::Value> = waitlist_places(&mut conn, caller.id, &[event_id])
        .await?
        .into_iter()
        .map(|p| json!({ "requestId": p.request_id, "position": p.position, "seatsWanted": p.seats }))
        .collect();
    if entries.is_empty() {
        return Err(ApiError::NotFound(
            "you are not on this event's waitlist".to_owned(),
        ));
    }
    Ok(response::ok(
        json!({ "eventId": event_id, "position": entries[0]["position"], "seatsWanted": entries[0]["seatsWanted"], "entries": entries }),
        "Waitlist position",
    ))
}

/// One of a buyer's entries in an event's waitlist.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct WaitlistPlace {
    /// The event.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub event_id: i64,
    /// The request that is waiting.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub request_id: Uuid,
    /// 1 = next to be served.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub position: i64,
    /// Seats it still wants.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub seats: i32,
}

/// `user`'s entries in the waitlists of `events`, by event, first in line first: one query
/// (each place counted on the event's FIFO index). The API's `GET …/waitlist/me` and the
/// pages' "my bookings" both come here.
pub async fn waitlist_places(
    conn: &mut diesel_async::AsyncPgConnection,
    user: i64,
    events: &[i64],
) -> ApiResult<Vec<WaitlistPlace>> {
    Ok(diesel::sql_query(
        "SELECT w.event_id, w.request_id, w.seats, \
                (SELECT count(*) FROM waitlist x \
                  WHERE x.event_id = w.event_id AND x.id <= w.id) AS position \
           FROM waitlist w WHERE w.user_id = $1 AND w.event_id = ANY($2) \
          ORDER BY w.event_id, w.id",
    )
    .bind::<diesel::sql_types::BigInt, _>(user)
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(events)
    .load(conn)
    .await?)
}

/// `DELETE /api/events/{id}/waitlist/me`: leave the waitlist.
pub async fn leave_waitlist(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let event_id = crate::events::routes::path_id(&path)?;
    let left = leave(&state, caller.id, event_id).await?;
    Ok(response::ok(
        json!({ "eventId": event_id, "entriesRemoved": left }),
        "Left the waitlist",
    ))
}

/// Takes every entry of `user` off event `event_id`'s waitlist (under the event's lock, its
/// version bumped, a `waitlist_left` notification in the same transaction); 404 when there
/// was none. Returns the entries removed. The API's `DELETE …/waitlist/me` and the pages'
/// "leave the waitlist" both come here.
pub async fn leave(state: &AppState, user: i64, event_id: i64) -> ApiResult<usize> {
    let mut conn = state.db().get().await?;
    let left = conn
        .transaction(async |conn| {
            // Every writer of an event's waitlist takes the event row first (the booking
            // writer's lock order) and bumps its version, so a decision the writer made on the
            // entries before they left cannot commit.
            let Some(event) = Event::lock(conn, event_id).await? else {
                return Ok::<_, ApiError>(None);
            };
            let removed = engine::take_off_waitlist(
                conn,
                event_id,
                Some(user),
                Status::Partial,
                Reason::Withdrawn,
            )
            .await?;
            if removed.is_empty() {
                return Ok(None);
            }
            let ids: Vec<Uuid> = removed.iter().map(|r| r.request_id).collect();
            let seats: i32 = removed.iter().map(|r| r.seats).sum();
            outbox::enqueue(
                conn,
                &[NewNotification::new(
                    crate::notifications::kind::Notice::WaitlistLeft,
                    user,
                    Some(event_id),
                    json!({
                        "eventId": event.id, "eventName": event.name, "venue": event.venue,
                        "startsAt": event.starts_at, "seats": seats, "requestIds": ids,
                    }),
                )],
            )
            .await?;
            let updated: Event = diesel::update(events::table.find(event_id))
                .set(events::version.eq(events::version + 1))
                .returning(Event::as_returning())
                .get_result(conn)
                .await?;
            Ok(Some((removed.len(), updated)))
        })
        .await?;
    let Some((left, event)) = left else {
        return Err(ApiError::NotFound(
            "you are not on this event's waitlist".to_owned(),
        ));
    };
    state.event_cache().put(&event).await;
    crate::notifications::wake(state);
    Ok(left)
}

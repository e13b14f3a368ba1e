//! Payment handlers: pay a hold, release it, record a manual payment, refund, Stripe's webhook.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::bookings::domain::BookingStatus;
use crate::db::schema::{bookings, payment_sessions};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::AuthUser;
use crate::http::extract::parse_json;
use crate::http::response;
use crate::payments::ledger::{self, Entry, NewSession};
use crate::payments::stripe::{self, CallError};
use crate::state::AppState;

/// How long a handler waits for the booking writer to apply what it recorded (a sweep is
/// `checkout.sweep_ms`; past this the answer says it is being applied).
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// A booking as the payment handlers need it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = bookings)]
pub struct BookingFacts {
    /// Id.
    pub id: i64,
    /// Request.
    pub request_id: Uuid,
    /// Buyer.
    pub user_id: i64,
    /// Event.
    pub event_id: i64,
    /// Seats.
    pub seats: i32,
    /// Cost.
    pub cost: i64,
    /// State.
    pub status: String,
    /// End of the hold.
    pub expires_at: Option<DateTime<Utc>>,
}

fn booking_id(raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::field("id", "must be a positive integer"))
}

async fn load(conn: &mut AsyncPgConnection, id: i64) -> ApiResult<Option<BookingFacts>> {
    Ok(bookings::table
        .find(id)
        .select(BookingFacts::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The booking, locked until the transaction ends (what serializes the payment handlers of
/// one booking).
async fn lock_booking(conn: &mut AsyncPgConnection, id: i64) -> ApiResult<BookingFacts> {
    bookings::table
        .find(id)
        .select(BookingFacts::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("no booking {id}")))
}

/// The caller's own booking (someone else's answers 404, as an unknown id).
async fn own(conn: &mut AsyncPgConnection, caller: &AuthUser, id: i64) -> ApiResult<BookingFacts> {
    load(conn, id)
        .await?
        .filter(|b| b.user_id == caller.id)
        .ok_or_else(|| ApiError::NotFound(format!("no booking {id} of yours")))
}

impl BookingFacts {
    /// Its state (`None`: a name this version does not know).
    fn state(&self) -> Option<BookingStatus> {
        BookingStatus::parse(&self.status)
    }

    /// Held, or expired (a payment then re-acquires the seats if they are free).
    fn payable(&self) -> bool {
        matches!(
            self.state(),
            Some(BookingStatus::Held | BookingStatus::Expired)
        )
    }
}

fn not_held(b: &BookingFacts) -> ApiError {
    let (code, message) = match b.state() {
        Some(BookingStatus::Confirmed) => {
            ("already_confirmed", "this booking is confirmed already")
        }
        Some(BookingStatus::Expired) => (
            "hold_expired",
            "this hold has expired and its seats went back on sale",
        ),
        _ => ("not_held", "this booking is not held for payment"),
    };
    ApiError::Conflict {
        code,
        message: message.to_owned(),
    }
}

/// The booking's state once the writer has applied what was recorded (or after `APPLY_WAIT`).
async fn settled(state: &AppState, id: i64, from: &[&str]) -> ApiResult<BookingFacts> {
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    loop {
        let mut conn = state.db().get().await?;
        let b = load(&mut conn, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no booking {id}")))?;
        let pending: bool = diesel::select(diesel::dsl::exists(
            payment_sessions::table
                .filter(payment_sessions::booking_id.eq(id))
                .filter(payment_sessions::state.eq("captured")),
        ))
        .get_result(&mut conn)
        .await?;
        drop(conn);
        if (!from.contains(&b.status.as_str()) && !pending)
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(b);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn booking_json(b: &BookingFacts) -> serde_json::Value {
    json!({
        "bookingId": b.id,
        "requestId": b.request_id,
        "eventId": b.event_id,
        "seats": b.seats,
        "cost": b.cost,
        "status": b.status,
        "expiresAt": b.expires_at,
    })
}

/// `POST /api/bookings/{id}/pay` (the buyer): how to pay a held booking. Stripe: a Checkout
/// Session (the same one when asked again); manual: the instructions.
pub async fn pay(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = booking_id(&path)?;
    let data = how_to_pay(&state, &caller, id).await?;
    let message = if data["provider"] == "stripe" {
        "Pay at url before expiresAt"
    } else {
        "Pay the host; they mark the booking paid"
    };
    Ok(response::ok(data, message))
}

/// How the caller pays their held booking `id`: `manual` (instructions) or `stripe` (a Checkout
/// Session, the same one when asked again; the buyer comes back to "my bookings"). The API's
/// `pay` and the pay button of the pages both come here.
pub async fn how_to_pay(
    state: &AppState,
    caller: &AuthUser,
    id: i64,
) -> ApiResult<serde_json::Value> {
    let mut conn = state.db().get().await?;
    let b = own(&mut conn, caller, id).await?;
    if b.state() != Some(BookingStatus::Held) {
        return Err(not_held(&b));
    }
    let event = crate::events::service::lookup(state, b.event_id).await?;
    let currency = state.settings().payments.currency.clone();
    let base = json!({
        "bookingId": b.id,
        "amount": b.cost,
        "currency": currency,
        "expiresAt": b.expires_at,
    });
    if event.payment_provider != "stripe" {
        let mut data = base;
        data["provider"] = json!("manual");
        data["instructions"] = json!(
            "Pay the host as they tell you (bank transfer, cash); they mark the booking paid. \
             Unpaid at expiresAt, the seats go back on sale."
        );
        return Ok(data);
    }
    let Some(client) = state.payments().stripe.clone() else {
        return Err(ApiError::Unavailable {
            message: "card payments are not configured here; contact the host".to_owned(),
            retry_after_secs: 60,
        });
    };
    // One open session per booking, whatever the clicks: the booking row is locked while the
    // open session is looked up or made, so two `pay` at once get the same one (and Stripe,
    // asked twice with the session's idempotency key, makes one Checkout Session).
    let session = conn
        .transaction(async |conn| {
            let now = lock_booking(conn, b.id).await?;
            if now.state() != Some(BookingStatus::Held) {
                return Err(not_held(&now));
            }
            if let Some(s) = ledger::open_session(conn, b.id).await? {
                return Ok(s);
            }
            Ok(ledger::insert_session(
                conn,
                &NewSession {
                    booking_id: b.id,
                    event_id: b.event_id,
                    user_id: b.user_id,
                    provider: "stripe",
                    amount: b.cost,
                    state: "open",
                },
            )
            .await?)
        })
        .await?;
    drop(conn);
    let session = match session.external_id {
        Some(_) => session,
        None => {
            let s = session;
            let public = &state.settings().http.public_url;
            let created = client
                .create_session(
                    b.id,
                    s.id,
                    &format!("{} — {} seat(s)", event.name, b.seats),
                    b.cost,
                    &currency,
                    &format!("{public}/me?done=paid"),
                    &format!("{public}/me"),
                    &format!("atomicseats-pay-{}", s.id),
                )
                .await
                .map_err(|e| {
                    tracing::warn!(booking.id = b.id, error = %e, "creating a Stripe Checkout Session failed");
                    metrics::counter!("payment_sessions_failed_total").increment(1);
                    match e {
                        CallError::Transient(_) => ApiError::Unavailable {
                            message: "the payment provider is unavailable, retry shortly".to_owned(),
                            retry_after_secs: 5,
                        },
                        CallError::Refused(m) => ApiError::Unprocessable {
                            code: "payment_refused",
                            message: m,
                        },
                    }
                })?;
            let mut conn = state.db().get().await?;
            metrics::counter!("payment_sessions_total", "provider" => "stripe").increment(1);
            ledger::set_external(&mut conn, s.id, &created.id, &created.url)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no payment session {}", s.id)))?
        }
    };
    let mut data = base;
    data["provider"] = json!("stripe");
    data["sessionId"] = json!(session.external_id);
    data["url"] = json!(session.url);
    Ok(data)
}

/// `POST /api/bookings/{id}/release` (the buyer): give a hold back before it expires. Its
/// writer expires it on its next sweep (seats back on sale, the waitlist served first).
pub async fn release(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = booking_id(&path)?;
    let b = release_hold(&state, &caller, id).await?;
    Ok(response::ok(b, "Hold released"))
}

/// Gives the caller's hold `id` back: due at once, expired by its writer on its next sweep;
/// answers once it has (the booking as it is then).
pub async fn release_hold(
    state: &AppState,
    caller: &AuthUser,
    id: i64,
) -> ApiResult<serde_json::Value> {
    let mut conn = state.db().get().await?;
    let b = own(&mut conn, caller, id).await?;
    let n = diesel::update(bookings::table.find(id).filter(bookings::status.eq("held")))
        .set(bookings::expires_at.eq(diesel::dsl::now))
        .execute(&mut conn)
        .await?;
    if n == 0 {
        return Err(not_held(&b));
    }
    drop(conn);
    let b = settled(state, id, &["held"]).await?;
    Ok(booking_json(&b))
}

/// `POST /api/bookings/{id}/mark-paid` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkPaidBody {
    reference: Option<String>,
}

/// `POST /api/bookings/{id}/mark-paid { reference? }` (the event's host or an admin): records
/// a manual payment of a held booking (or of one whose hold expired: the writer then re-acquires
/// the seats if they are free, else the payment is refunded).
pub async fn mark_paid(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> ApiResult<HttpResponse> {
    let id = booking_id(&path)?;
    let body: MarkPaidBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        MarkPaidBody::default()
    } else {
        parse_json(&bytes)?
    };
    let b = record_manual_payment(&state, &caller, id, body.reference.as_deref()).await?;
    Ok(response::ok(b, "Payment recorded"))
}

/// Records a manual payment of booking `id` (held, or expired: the writer then re-acquires its
/// seats if they are free, else refunds it) for its event's host or an admin; answers once
/// the writer applied it. The API's `mark-paid` and the host's dashboard both come here.
pub async fn record_manual_payment(
    state: &AppState,
    caller: &AuthUser,
    id: i64,
    reference: Option<&str>,
) -> ApiResult<serde_json::Value> {
    if reference.is_some_and(|r| r.trim().is_empty() || r.len() > 200) {
        return Err(ApiError::field("reference", "must be 1 to 200 characters"));
    }
    let mut conn = state.db().get().await?;
    let b = load(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no booking {id}")))?;
    let event = crate::events::service::lookup(state, b.event_id).await?;
    if !caller.manages(&mut conn, event.host_id).await? {
        return Err(ApiError::Forbidden(
            "only the event's host or an admin may record payments".to_owned(),
        ));
    }
    if !b.payable() || b.cost == 0 {
        return Err(not_held(&b));
    }
    let recorded = conn
        .transaction(async |conn| {
            // The booking row is the lock: two marks at once (a double click, the host and a
            // webhook) see each other's capture, never both "none yet".
            let now = lock_booking(conn, id).await?;
            if !now.payable() {
                return Err(not_held(&now));
            }
            if ledger::has_capture(conn, id).await? {
                return Ok::<_, ApiError>(false);
            }
            let s = ledger::insert_session(
                conn,
                &NewSession {
                    booking_id: b.id,
                    event_id: b.event_id,
                    user_id: b.user_id,
                    provider: "manual",
                    amount: b.cost,
                    state: "captured",
                },
            )
            .await?;
            let reference = format!(
                "manual-{}{}",
                s.id,
                reference
                    .map(|r| format!(": {}", r.trim()))
                    .unwrap_or_default()
            );
            ledger::append(
                conn,
                Entry {
                    event_id: b.event_id,
                    booking_id: b.id,
                    session_id: Some(s.id),
                    kind: "capture",
                    amount: b.cost,
                    provider: "manual",
                    reference: &reference,
                },
            )
            .await?;
            Ok(true)
        })
        .await?;
    // The connection goes back before waiting for the writer, which needs the pool to apply it.
    drop(conn);
    if !recorded {
        return Err(ApiError::Conflict {
            code: "already_paid",
            message: "a payment for this booking is recorded already".to_owned(),
        });
    }
    metrics::counter!("payments_captured_total", "provider" => "manual").increment(1);
    tracing::info!(booking.id = id, "manual payment recorded");
    let b = settled(state, id, &["held", "expired"]).await?;
    Ok(booking_json(&b))
}

/// `POST /api/bookings/{id}/refund` (the event's host or an admin): cancels a booking and
/// refunds what was paid, whatever the event's refund policy.
pub async fn refund(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = booking_id(&path)?;
    let mut conn = state.db().get().await?;
    let b = load(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no booking {id}")))?;
    let event = crate::events::service::lookup(&state, b.event_id).await?;
    if !caller.manages(&mut conn, event.host_id).await? {
        return Err(ApiError::Forbidden(
            "only the event's host or an admin may refund".to_owned(),
        ));
    }
    drop(conn);
    let done = crate::bookings::routes::cancel_bookings(
        &state,
        b.event_id,
        b.user_id,
        crate::bookings::routes::Targets::One(id),
        true,
    )
    .await?;
    Ok(response::ok(done, "Booking cancelled and refunded"))
}

/// Logs refused webhooks at most once a minute, with how many there were since the last line
/// (a flood of forged calls must not flood the log; `payment_webhooks_total` counts each).
fn log_refusal(e: stripe::SignatureError) {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    static LOGGED_AT: AtomicI64 = AtomicI64::new(0);
    REFUSED.fetch_add(1, Ordering::Relaxed);
    let now = Utc::now().timestamp();
    let last = AtomicI64::load(&LOGGED_AT, Ordering::Relaxed);
    if now - last >= 60
        && LOGGED_AT
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let refused = REFUSED.swap(0, Ordering::Relaxed);
        tracing::warn!(error = %e, refused, "Stripe webhooks refused since the last report");
    }
}

/// `POST /api/payments/stripe/webhook`: Stripe's events, verified by `Stripe-Signature`.
/// Answers: 400 `invalid_signature` (missing, stale or wrong signature: nothing changed);
/// 200 `{received, duplicate}` for an event id seen before; 200 `{received, ignored}` for an
/// event type we do not use or a session we do not know (logged and counted: nothing changed);
/// 200 `{received}` after recording a capture; 404 when no webhook secret is configured, 503
/// when the database is down (Stripe retries both).
pub async fn stripe_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> ApiResult<HttpResponse> {
    let count = |result: &'static str| {
        metrics::counter!("payment_webhooks_total", "result" => result).increment(1);
    };
    let settings = &state.settings().payments;
    let Some(secret) = settings
        .stripe_webhook_secret
        .as_ref()
        .map(secrecy::ExposeSecret::expose_secret)
        .filter(|s| !s.is_empty())
    else {
        // Not configured: the endpoint does not exist here (Stripe retries until it does).
        count("not_configured");
        return Err(ApiError::NotFound(
            "Stripe webhooks are not enabled on this server".to_owned(),
        ));
    };
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = stripe::verify(
        header,
        &bytes,
        secret,
        settings.webhook_tolerance_secs,
        Utc::now().timestamp(),
    ) {
        count(e.label());
        log_refusal(e);
        return Err(ApiError::BadRequest {
            code: "invalid_signature",
            message: format!("invalid Stripe-Signature: {e}"),
        });
    }
    let event: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::MalformedJson(format!("the webhook body is not JSON: {e}")))?;
    let (Some(event_id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        count("malformed_event");
        return Err(ApiError::field("id", "a Stripe event has an id and a type"));
    };
    let object = &event["data"]["object"];
    let paid = matches!(
        kind,
        "checkout.session.completed" | "checkout.session.async_payment_succeeded"
    ) && object["payment_status"].as_str() == Some("paid");
    if !paid {
        count("ignored_type");
        return Ok(HttpResponse::Ok().json(json!({ "received": true, "ignored": kind })));
    }
    let session_id = object["id"].as_str().unwrap_or_default().to_owned();
    let amount = object["amount_total"].as_i64().unwrap_or(0);
    let currency = object["currency"].as_str().unwrap_or_default();
    let client_reference = object["client_reference_id"].as_str();
    let metadata_booking = object["metadata"]["booking_id"].as_str();
    let our_currency = &settings.currency;
    let reference = object["payment_intent"]
        .as_str()
        .unwrap_or(&session_id)
        .to_owned();
    let mut conn = state.db().get().await?;
    let outcome = conn
        .transaction(async |conn| {
            let Some(s) = ledger::lock_by_external(conn, &session_id).await? else {
                return Ok::<_, ApiError>("unknown_session");
            };
            if !ledger::first_delivery(conn, "stripe", event_id).await? {
                return Ok("duplicate");
            }
            if amount <= 0 {
                return Ok("no_amount");
            }
            // The money was taken whatever it says: it goes in the ledger. A payment that is not
            // the one asked for (another amount or currency, another booking) pays nothing: the
            // writer refunds it.
            ledger::append(
                conn,
                Entry {
                    event_id: s.event_id,
                    booking_id: s.booking_id,
                    session_id: Some(s.id),
                    kind: "capture",
                    amount,
                    provider: "stripe",
                    reference: &reference,
                },
            )
            .await?;
            let ours = s.booking_id.to_string();
            let matches = amount == s.amount
                && currency.eq_ignore_ascii_case(our_currency)
                && client_reference == Some(ours.as_str())
                && metadata_booking == Some(ours.as_str());
            if !matches {
                tracing::error!(
                    payment.session = s.id,
                    expected = s.amount,
                    captured = amount,
                    currency,
                    "a Stripe payment does not match its session (amount, currency or booking); refunding it"
                );
            }
            Ok(
                match (ledger::mark_captured(conn, s.id, amount, !matches).await?, matches) {
                    (false, _) => "captured_again",
                    (true, true) => "captured",
                    (true, false) => "mismatch",
                },
            )
        })
        .await?;
    count(outcome);
    match outcome {
        "captured" => {
            metrics::counter!("payments_captured_total", "provider" => "stripe").increment(1);
            tracing::info!(stripe.session = %session_id, "Stripe payment captured");
            Ok(HttpResponse::Ok().json(json!({ "received": true })))
        }
        "duplicate" => Ok(HttpResponse::Ok().json(json!({ "received": true, "duplicate": true }))),
        other => {
            tracing::warn!(stripe.session = %session_id, stripe.event = event_id, outcome = other, "Stripe webhook changed nothing");
            Ok(HttpResponse::Ok().json(json!({ "received": true, "ignored": other })))
        }
    }
}

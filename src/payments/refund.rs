//! Running a refund job (an outbox row of kind [`super::REFUND_JOB`]): the provider's refund,
//! then the ledger row, the booking's `refund_pending` → `refunded` and the buyer's email, in
//! one transaction. The notifier calls it with the retries and dead letters it gives emails;
//! the provider's `Idempotency-Key` (the outbox row id) makes a retry after a lost answer
//! refund once.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::json;

use crate::db::schema::bookings;
use crate::mail::SendError;
use crate::notifications::outbox::{self, NewNotification, OutboxRow};
use crate::payments::ledger::{self, Entry};
use crate::payments::stripe::CallError;
use crate::state::AppState;

/// A refund job for `amount` of the payment `session_id` of `booking_id` (an outbox row the
/// notifier runs, [`execute`]); `amount: None` refunds what was captured.
pub fn job(
    event: &crate::events::model::Event,
    user_id: i64,
    session_id: i64,
    booking_id: i64,
    amount: Option<i64>,
    reason: &str,
) -> NewNotification {
    NewNotification::refund_job(
        user_id,
        event.id,
        json!({
            "eventId": event.id, "eventName": event.name, "sessionId": session_id,
            "bookingId": booking_id, "amount": amount, "reason": reason,
        }),
    )
}

/// The refund jobs of a paid booking being cancelled: one per payment it keeps.
pub async fn jobs_for_cancelled(
    conn: &mut diesel_async::AsyncPgConnection,
    event: &crate::events::model::Event,
    booking_id: i64,
    user_id: i64,
    reason: &str,
) -> diesel::QueryResult<Vec<NewNotification>> {
    Ok(ledger::kept_sessions(conn, booking_id)
        .await?
        .iter()
        .map(|s| job(event, user_id, s.id, booking_id, Some(s.amount), reason))
        .collect())
}

/// Runs one refund job.
pub async fn execute(state: &AppState, row: &OutboxRow) -> Result<(), SendError> {
    let transient = |e: &dyn std::fmt::Display| SendError::Transient(e.to_string());
    let session_id = row.payload["sessionId"]
        .as_i64()
        .ok_or_else(|| SendError::Permanent("refund job without sessionId".to_owned()))?;
    let mut conn = state.db().get().await.map_err(|e| transient(&e))?;
    let session = ledger::session(&mut conn, session_id)
        .await
        .map_err(|e| transient(&e))?
        .ok_or_else(|| SendError::Permanent(format!("no payment session {session_id}")))?;
    let (captured_ref, captured) = ledger::capture_of(&mut conn, session_id)
        .await
        .map_err(|e| transient(&e))?
        .ok_or_else(|| SendError::Permanent(format!("session {session_id} has no capture")))?;
    let amount = row.payload["amount"]
        .as_i64()
        .unwrap_or(captured)
        .min(captured);
    drop(conn);
    let reference = match session.provider.as_str() {
        "stripe" => {
            let client = state.payments().stripe.as_ref().ok_or_else(|| {
                SendError::Transient("Stripe is not configured on this node".to_owned())
            })?;
            client
                .refund(
                    &captured_ref,
                    amount,
                    &format!("atomicseats-refund-{}", row.id),
                )
                .await
                .map_err(|e| match e {
                    CallError::Transient(m) => SendError::Transient(m),
                    CallError::Refused(m) => SendError::Permanent(m),
                })?
        }
        // Paid by hand, paid back by hand: the ledger records that it is owed and the buyer is
        // told the host will return it.
        _ => format!("manual-refund-{}", row.id),
    };
    let mut conn = state.db().get().await.map_err(|e| transient(&e))?;
    let booking_id = session.booking_id;
    let reason = row.payload["reason"]
        .as_str()
        .unwrap_or("cancelled")
        .to_owned();
    let facts = row.payload.clone();
    conn.transaction(async |conn| {
        let new = ledger::append(
            conn,
            Entry {
                event_id: session.event_id,
                booking_id,
                session_id: Some(session_id),
                kind: "refund",
                amount,
                provider: &session.provider,
                reference: &reference,
            },
        )
        .await?;
        if !new {
            return Ok(()); // recorded by an earlier attempt
        }
        diesel::update(
            bookings::table
                .find(booking_id)
                .filter(bookings::status.eq("refund_pending")),
        )
        .set(bookings::status.eq("refunded"))
        .execute(conn)
        .await?;
        let mut payload = facts;
        payload["amount"] = json!(amount);
        payload["reason"] = json!(reason);
        payload["manual"] = json!(session.provider == "manual");
        outbox::enqueue(
            conn,
            &[NewNotification::new(
                crate::notifications::kind::Notice::BookingRefunded,
                session.user_id,
                Some(session.event_id),
                payload,
            )],
        )
        .await?;
        diesel::QueryResult::Ok(())
    })
    .await
    .map_err(|e| transient(&e))?;
    metrics::counter!("refunds_total", "provider" => session.provider.clone()).increment(1);
    tracing::info!(
        booking.id = booking_id,
        payment.session = session_id,
        amount,
        "refund recorded"
    );
    Ok(())
}

//! Idempotency claims for requests queued on Kafka, where the API answers before the decision.
//!
//! In-process, the writer decides before the API answers, so a retry always meets the stored
//! outcome. With Kafka the API answers 202 first; to answer a retry the same way (the first
//! outcome once decided, 422 `idempotency_key_reused` for a different body with the same
//! key), every request the API queues claims its id in the [`Ephemeral`] store — shared by
//! every API node when Redis is configured — with its owner and a fingerprint of its body,
//! for [`WINDOW`] (Stripe keeps keys 24 hours too). The claim also lets any node answer
//! `pending` for a request that is queued but not decided.
//!
//! [`Ephemeral`]: crate::ephemeral::Ephemeral

use std::time::Duration;

use uuid::Uuid;

use crate::bookings::domain::BookingRequest;
use crate::state::AppState;

/// How long a request id with an Idempotency-Key is remembered.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a request without a key is remembered: only its owner matters (status `pending`
/// on any node) until its decision is stored, which takes seconds; an hour bounds Redis memory
/// (~200 bytes a request) during a flash sale of millions.
pub const UNKEYED_WINDOW: Duration = Duration::from_secs(3600);

/// What claiming a request id found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First time this id is seen (or the store is unavailable: then the writer's own check,
    /// by request id, still books once).
    New,
    /// The same request again (same owner and body): a retry.
    Retry,
    /// The same id with a different body: the key was reused.
    Reused,
}

fn key(id: Uuid) -> String {
    format!("booking:req:{id}")
}

/// Owner and body, as stored in the claim.
fn fingerprint(r: &BookingRequest) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        r.user_id, r.event_id, r.seats, r.allow_partial, r.join_waitlist
    )
}

/// Claims `request`'s id (see the module docs).
pub async fn claim(state: &AppState, request: &BookingRequest) -> Claim {
    match state
        .ephemeral()
        .set_if_absent(
            &key(request.request_id),
            &fingerprint(request),
            if request.idempotency_key.is_some() {
                WINDOW
            } else {
                UNKEYED_WINDOW
            },
        )
        .await
    {
        Ok(None) => Claim::New,
        Ok(Some(existing)) if existing == fingerprint(request) => Claim::Retry,
        Ok(Some(_)) => Claim::Reused,
        Err(e) => {
            metrics::counter!("booking_idempotency_store_errors_total").increment(1);
            tracing::warn!(error = %e, "idempotency claim unavailable; the writer still books once");
            Claim::New
        }
    }
}

/// The owner of a claimed (queued, maybe not yet decided) request.
pub async fn owner(state: &AppState, id: Uuid) -> Option<i64> {
    let claimed = state.ephemeral().get(&key(id)).await.ok()??;
    claimed.split('|').next()?.parse().ok()
}

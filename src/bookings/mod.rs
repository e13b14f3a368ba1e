//! Bookings: the accept path, the batched booking worker, idempotency, waitlist and
//! cancellation. The engine's invariants (DESIGN.md) are its acceptance criteria:
//!
//! 1. no oversell: the worker allocates under the event row lock and the database `CHECK`s it;
//! 2. exactly-once effect: every request has a unique id (the primary key of
//!    `booking_requests`); a redelivered or retried request returns its first outcome;
//! 3. nothing acknowledged is lost: the API answers success only once the request is durable;
//! 4. FIFO fairness: the waitlist is served before new requests;
//! 5. side effects after commit, from the outbox written in the decision's transaction.
//!
//! Routes: `POST /api/events/book`, `DELETE /api/events/book`,
//! `GET /api/bookings/requests/{requestId}`, `GET|DELETE /api/events/{id}/waitlist/me`.
//! Reads `[booking]` and `[queue]`.

pub mod domain;
pub mod engine;
pub mod history;
pub mod idempotency;
pub mod kafka;
pub mod outcomes;
pub mod queue;
pub mod routes;
pub mod store;
pub mod worker;
pub mod writer;

use actix_web::middleware::from_fn;
use actix_web::web;
use tokio_util::sync::CancellationToken;

use crate::bookings::domain::BookingRequest;
use crate::bookings::queue::MemoryQueue;
use crate::config::{QueueKind, Settings};
use crate::error::ApiError;
use crate::http::{rate_limit, resource};
use crate::state::AppState;

/// How a submitted request will be answered.
pub enum Submitted {
    /// In-process: the writer answers here once the decision is committed.
    Deciding(tokio::sync::oneshot::Receiver<queue::Reply>),
    /// Kafka: durable in the broker, decided later (wait for or poll the outcome).
    Queued,
}

/// The transport of booking requests, chosen by `queue.kind`.
pub enum BookingQueue {
    /// In-process channels (single node).
    Memory(MemoryQueue),
    /// Kafka topics (scale-out).
    Kafka(kafka::KafkaQueue),
}

impl BookingQueue {
    /// Builds the configured transport.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let b = &settings.booking;
        match settings.queue.kind {
            QueueKind::Memory => Ok(Self::Memory(MemoryQueue::new(b.shards, b.queue_capacity))),
            QueueKind::Kafka => Ok(Self::Kafka(kafka::KafkaQueue::new(&settings.kafka)?)),
        }
    }

    /// The in-process queue, when that is the transport.
    pub fn memory(&self) -> Option<&MemoryQueue> {
        match self {
            Self::Memory(q) => Some(q),
            Self::Kafka(_) => None,
        }
    }

    /// Submits a request: the only way a handler queues one, on either transport. In-process,
    /// the writer answers on the returned channel once the decision is committed; with Kafka,
    /// `Ok` means the broker has the request (acks=all) and it is decided later.
    pub async fn submit(&self, request: &BookingRequest) -> Result<Submitted, ApiError> {
        match self {
            Self::Memory(m) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                match m.try_send(queue::Envelope::new(request.clone(), Some(tx))) {
                    Ok(()) => Ok(Submitted::Deciding(rx)),
                    Err(queue::SendError::Full) => {
                        metrics::counter!("booking_backpressure_total").increment(1);
                        Err(ApiError::Unavailable {
                            message: "too many bookings in flight, retry shortly".to_owned(),
                            retry_after_secs: 1,
                        })
                    }
                    Err(queue::SendError::Closed) => Err(ApiError::Unavailable {
                        message: "the booking service is restarting, retry shortly".to_owned(),
                        retry_after_secs: 2,
                    }),
                    // Accepting it would answer `pending` for a request nobody decides, lost
                    // when the process stops: refuse, and say why in the log.
                    Err(queue::SendError::NoWriter) => {
                        tracing::error!(
                            "a booking arrived at a process with no booking writer: the \
                             in-process queue needs `atomicseats all` (or queue.kind = \"kafka\" \
                             for separate API nodes)"
                        );
                        Err(ApiError::Unavailable {
                            message: "bookings are not taken here, retry shortly".to_owned(),
                            retry_after_secs: 2,
                        })
                    }
                }
            }
            Self::Kafka(k) => {
                self.admit()?;
                k.publish(request).await.map_err(|e| {
                    tracing::warn!(error = %e, "booking request not acknowledged by Kafka");
                    metrics::counter!("booking_publish_failures_total").increment(1);
                    ApiError::Unavailable {
                        message: "the booking queue is unavailable, retry shortly".to_owned(),
                        retry_after_secs: 2,
                    }
                })?;
                Ok(Submitted::Queued)
            }
        }
    }

    /// 503 + `Retry-After` while the Kafka consumers are more than `kafka.max_lag` requests
    /// behind (always `Ok` in-process, where a full queue answers instead). Handlers call it
    /// before any other work, so that a request turned away costs no cache read, no claim.
    pub fn admit(&self) -> Result<(), ApiError> {
        if let Self::Kafka(k) = self
            && let Some(behind) = k.backlog()
        {
            metrics::counter!("booking_backpressure_total").increment(1);
            tracing::debug!(lag = behind, "booking consumers behind; answering 503");
            return Err(ApiError::Unavailable {
                message: "too many bookings waiting to be decided, retry shortly".to_owned(),
                retry_after_secs: 1,
            });
        }
        Ok(())
    }

    /// Remembers a request whose handler answered `pending` before the decision (in-process;
    /// Kafka remembers every request it published).
    pub fn remember_pending(&self, request: uuid::Uuid, owner: i64) {
        if let Self::Memory(m) = self {
            m.remember_pending(request, owner);
        }
    }

    /// The owner of a request accepted by this process and not decided yet.
    pub fn pending_owner(&self, request: uuid::Uuid) -> Option<i64> {
        match self {
            // In-process requests are decided before the API answers, unless it stopped waiting.
            Self::Memory(m) => m.pending_owner(request),
            Self::Kafka(k) => k.pending_owner(request),
        }
    }

    /// Readiness of the transport (`None` when there is nothing external to check).
    pub async fn ping(&self) -> Option<anyhow::Result<()>> {
        match self {
            Self::Memory(_) => None,
            Self::Kafka(k) => Some(k.ping().await),
        }
    }
}

/// Registers the booking routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/events/book")
            .wrap(from_fn(rate_limit::booking))
            .post(routes::book)
            .delete(routes::cancel),
    )
    .service(
        resource("/api/bookings/requests/{requestId}")
            .wrap(from_fn(rate_limit::read))
            .get(routes::request_status),
    )
    .service(
        resource("/api/events/{id}/waitlist/me")
            .wrap(from_fn(rate_limit::booking))
            .get(routes::my_waitlist)
            .delete(routes::leave_waitlist),
    );
}

/// The `work-bookings` role for the configured transport.
pub async fn run_worker(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    match state.booking_queue() {
        BookingQueue::Memory(_) => worker::run_memory(state, shutdown).await,
        BookingQueue::Kafka(_) => kafka::run_consumer(state, shutdown).await,
    }
}

/// Serves an event's waitlist outside the writer (after a committed write freed seats or
/// reopened the waitlist; the sweep), then updates the cache and wakes the notifier.
pub async fn serve_waitlist(state: &AppState, event_id: i64) -> anyhow::Result<usize> {
    let decided = {
        let mut conn = state.db().get().await?;
        engine::serve_waitlist(&mut conn, event_id).await?
    };
    after_commit(state, &decided).await;
    Ok(decided.served.len())
}

/// What follows a committed waitlist service: the cache, the notifier, metrics.
pub async fn after_commit(state: &AppState, decided: &engine::Decided) {
    if let Some(e) = &decided.event {
        state.event_cache().put(e).await;
    }
    if decided.notifications > 0 {
        crate::notifications::wake(state);
    }
    if !decided.served.is_empty() {
        metrics::counter!("booking_waitlist_served_total").increment(decided.served.len() as u64);
    }
}

/// After an event's capacity was raised or its waitlist reopened (committed): serve the
/// waitlist now rather than at the next sweep.
pub async fn after_capacity_change(state: &AppState, event_id: i64) {
    if let Err(e) = serve_waitlist(state, event_id).await {
        tracing::warn!(event.id = event_id, error = %e, "serving the waitlist failed; the reconciliation sweep will retry");
    }
}

/// The reconciliation sweep: serve every waitlist that has free seats. Returns how many events
/// were served.
pub async fn sweep_waitlists(state: &AppState) -> anyhow::Result<usize> {
    let ids = {
        let mut conn = state.db().get().await?;
        engine::events_with_serveable_waitlists(&mut conn).await?
    };
    for id in &ids {
        serve_waitlist(state, *id).await?;
    }
    Ok(ids.len())
}

impl AppState {
    /// The booking queue (a part of the state, see [`crate::state`]).
    pub fn booking_queue(&self) -> &BookingQueue {
        self.part()
            .unwrap_or_else(|| crate::state::missing_part("booking queue"))
    }

    /// Waiters for booking outcomes in this process.
    pub fn outcomes(&self) -> &outcomes::OutcomeHub {
        self.part()
            .unwrap_or_else(|| crate::state::missing_part("outcome hub"))
    }
}

//! The booking queue: one interface, two transports chosen by `queue.kind`.
//!
//! - **In-process** (`memory`): bounded tokio channels, one per shard; a request goes to shard
//!   `event_id mod shards`, so one task is the only writer of each event. The sender waits for
//!   the decision (the reply channel): the API answers only once the decision is committed.
//! - **Kafka** (`kafka`): see [`super::kafka`].
//!
//! A full queue is reported at once ([`SendError::Full`]): the API answers 503 with
//! `Retry-After` instead of letting latency grow without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::bookings::domain::{BookingRequest, Outcome};

/// What the worker sends back: the outcome, or why it could not decide.
pub type Reply = Result<Outcome, String>;

/// A queued request and where its outcome goes.
#[derive(Debug)]
pub struct Envelope {
    /// The request.
    pub request: BookingRequest,
    /// The waiting API handler (none for redeliveries and sweeps).
    pub reply: Option<oneshot::Sender<Reply>>,
    /// The request may already be stored (an idempotent retry, a redelivery, a batch whose
    /// commit outcome is unknown): the writer looks it up before deciding it.
    pub maybe_stored: bool,
    /// Decide it in a transaction of its own (its batch was refused by the database once).
    pub isolate: bool,
    /// The writer's batch sequence number (to report whole batches as done, in order).
    pub(crate) seq: u64,
}

impl Envelope {
    /// A request from this process's API, answered on `reply`.
    pub fn new(request: BookingRequest, reply: Option<oneshot::Sender<Reply>>) -> Self {
        let maybe_stored = request.idempotency_key.is_some();
        Self {
            request,
            reply,
            maybe_stored,
            isolate: false,
            seq: 0,
        }
    }

    /// A request delivered by a queue that may deliver it again (Kafka).
    pub fn redeliverable(request: BookingRequest) -> Self {
        Self {
            maybe_stored: true,
            ..Self::new(request, None)
        }
    }
}

/// Why a request could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The queue is at capacity: back off.
    #[error("the booking queue is full")]
    Full,
    /// The worker has stopped (shutting down).
    #[error("the booking worker is not running")]
    Closed,
    /// No writer runs in this process (e.g. `serve` on the in-process queue): a request
    /// queued here would never be decided.
    #[error("no booking writer runs in this process")]
    NoWriter,
}

/// The in-process transport.
pub struct MemoryQueue {
    senders: Vec<mpsc::Sender<Envelope>>,
    receivers: Mutex<Option<Vec<mpsc::Receiver<Envelope>>>>,
    /// Whether a writer took the receivers (read on every submit: no lock).
    writer_attached: std::sync::atomic::AtomicBool,
    /// Requests whose handler stopped waiting before the decision (answered `pending`):
    /// request id → owner, for the status endpoint until the decision is stored.
    pending: Mutex<HashMap<uuid::Uuid, (i64, Instant)>>,
}

/// How long a request answered `pending` is remembered (it is decided long before).
const PENDING_KEPT: Duration = Duration::from_secs(600);

impl MemoryQueue {
    /// `shards` channels of `capacity` requests each.
    pub fn new(shards: usize, capacity: usize) -> Self {
        let (senders, receivers) = (0..shards.max(1))
            .map(|_| mpsc::channel(capacity.max(1)))
            .unzip();
        Self {
            senders,
            receivers: Mutex::new(Some(receivers)),
            writer_attached: std::sync::atomic::AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers a request answered `pending` (its handler gave up waiting).
    pub fn remember_pending(&self, request: uuid::Uuid, owner: i64) {
        if let Ok(mut p) = self.pending.lock() {
            let now = Instant::now();
            p.retain(|_, (_, at)| now.duration_since(*at) < PENDING_KEPT);
            p.insert(request, (owner, now));
        }
    }

    /// The owner of a request answered `pending` and not known to be decided.
    pub fn pending_owner(&self, request: uuid::Uuid) -> Option<i64> {
        self.pending.lock().ok()?.get(&request).map(|(o, _)| *o)
    }

    /// The shard of an event.
    pub fn shard_of(&self, event_id: i64) -> usize {
        let n = self.senders.len() as i64;
        usize::try_from(event_id.rem_euclid(n)).unwrap_or(0)
    }

    /// Queues a request without waiting for room.
    pub fn try_send(&self, envelope: Envelope) -> Result<(), SendError> {
        // No writer took the receivers: none will decide this request.
        if !self
            .writer_attached
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(SendError::NoWriter);
        }
        let shard = self.shard_of(envelope.request.event_id);
        self.senders[shard].try_send(envelope).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    /// The receiving ends, once (the worker takes them).
    pub fn take_receivers(&self) -> Option<Vec<mpsc::Receiver<Envelope>>> {
        let taken = self.receivers.lock().ok()?.take();
        if taken.is_some() {
            self.writer_attached
                .store(true, std::sync::atomic::Ordering::Release);
        }
        taken
    }

    /// Requests waiting in all shards.
    pub fn depth(&self) -> usize {
        self.senders
            .iter()
            .map(|s| s.max_capacity() - s.capacity())
            .sum()
    }
}

//! Notifications: an email for every decision that concerns a user, exactly once in effect.
//!
//! Decisions write outbox rows in their own transaction (invariant 5); the booking writer writes
//! a transaction's notifications as one `outbox_batches` row. The **relay** (running in every
//! process that writes them) expands those batches into outbox rows ([`outbox::expand`]) and
//! hands due rows to the notification queue — in-process, or the Kafka topic `notify-user` —
//! after commit ([`wake`], yielding to a busy writer) and on a one-second tick;
//! reconciliation re-publishes rows whose message was lost. **`work-notify`** consumes the queue:
//! claims the row, renders its template, sends it over SMTP and marks it sent. A redelivered id
//! for a sent row is skipped. Transient SMTP failures retry with exponential backoff; after
//! `notify.max_attempts` (or a permanent failure) the row is dead-lettered (`failed`): counted in
//! `notifications_failed_total`, listed by `GET /api/admin/notifications?status=failed`, and
//! retryable with `POST /api/admin/notifications/{id}/retry`. A bad message never blocks the
//! queue. The one window left: a crash after the SMTP server accepted a message and before it
//! was marked sent resends it once the claim expires (at-least-once at the SMTP boundary).
//!
//! Reads `[notify]` and `[mail]`.

pub mod kind;
pub mod outbox;
pub mod render;
pub mod worker;

use std::sync::Mutex;

use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::mpsc;

use crate::config::{KafkaSettings, QueueKind, Settings};
use crate::state::AppState;

/// How notification ids travel from the relay to `work-notify`.
pub enum NotificationQueue {
    /// In-process channel.
    Memory {
        /// Sending side.
        tx: mpsc::Sender<i64>,
        /// Receiving side, taken once by the worker.
        rx: Mutex<Option<mpsc::Receiver<i64>>>,
    },
    /// Kafka topic.
    Kafka {
        /// Producer.
        producer: FutureProducer,
        /// Topic name (with suffix).
        topic: String,
    },
}

/// The notification topic name after the suffix.
pub fn topic(k: &KafkaSettings) -> String {
    crate::kafka::Topics::from_settings(k).notifications
}

impl NotificationQueue {
    /// The configured transport.
    pub fn from_settings(s: &Settings) -> anyhow::Result<Self> {
        Ok(match s.queue.kind {
            QueueKind::Memory => {
                let (tx, rx) = mpsc::channel(100_000);
                Self::Memory {
                    tx,
                    rx: Mutex::new(Some(rx)),
                }
            }
            QueueKind::Kafka => Self::Kafka {
                producer: crate::kafka::producer(&s.kafka, "notification")?,
                topic: topic(&s.kafka),
            },
        })
    }

    /// Hands one id to the queue. `false` if it could not (it will be re-published).
    pub async fn publish(&self, id: i64, user_id: Option<i64>) -> bool {
        match self {
            Self::Memory { tx, .. } => tx.try_send(id).is_ok(),
            Self::Kafka { producer, topic } => {
                let payload = serde_json::json!({ "outboxId": id }).to_string();
                let key = user_id.unwrap_or(0).to_string();
                producer
                    .send(
                        FutureRecord::to(topic).key(&key).payload(&payload),
                        std::time::Duration::from_secs(5),
                    )
                    .await
                    .is_ok()
            }
        }
    }
}

impl NotificationQueue {
    /// Hands over `(outbox id, user id)` pairs all at once; whether each was taken, in order.
    pub async fn publish_many(&self, items: &[(i64, Option<i64>)]) -> Vec<bool> {
        futures_util::future::join_all(items.iter().map(|(id, user)| self.publish(*id, *user)))
            .await
    }
}

/// Tells the relay that outbox rows were committed (call after the commit).
pub fn wake(state: &AppState) {
    state.outbox_signal().notify_one();
}

impl AppState {
    /// Where notification ids go (a part of the state, see [`crate::state`]).
    pub fn notification_queue(&self) -> &NotificationQueue {
        self.part()
            .unwrap_or_else(|| crate::state::missing_part("notification queue"))
    }
}

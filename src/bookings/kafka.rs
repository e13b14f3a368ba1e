//! The Kafka transport (rdkafka, librdkafka built from source).
//!
//! - Producer: `acks=all` and idempotence; a request is keyed by its event id, so each event
//!   lives in one partition and is decided by one consumer at a time. The API answers only once
//!   the broker has acknowledged the record (invariant 3).
//! - Consumer (`work-bookings`): one consumer group; takes what is buffered (up to
//!   `booking.batch_max`), decides it per event, and commits offsets only after the decision
//!   committed in PostgreSQL. A crash between the two redelivers the batch, which the engine
//!   recognises by request id (invariant 2). A message that cannot be decoded goes to the
//!   dead-letter topic and its offset is committed: it never blocks its partition. A batch that
//!   cannot be decided (PostgreSQL down) is retried until it can, never skipped.
//!
//! Reads `[kafka]`: `brokers`, topic names (the seed's by default), `group_id`, `partitions`,
//! `create_topics`, `session_timeout_ms`, `heartbeat_interval_ms`, `produce_timeout_ms`,
//! `topic_suffix`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bookings::domain::BookingRequest;
use crate::bookings::queue::Envelope;
use crate::bookings::writer::Writer;
use crate::config::KafkaSettings;
use crate::kafka::{self, Topics};
use crate::state::AppState;

/// Pending requests remembered for the status endpoint (per process).
const PENDING_REMEMBERED: usize = 100_000;

/// The producing side, held by the API.
pub struct KafkaQueue {
    producer: FutureProducer,
    topics: Topics,
    timeout: Duration,
    pending: Mutex<(HashMap<Uuid, i64>, VecDeque<Uuid>)>,
    lag: Arc<LagWatch>,
}

/// The booking consumers' lag as the API sees it: refreshed at most once a second, off the
/// request path (a request reads the last figure).
struct LagWatch {
    /// Requests produced and not yet committed by the consumer group.
    behind: AtomicU64,
    /// When a refresh last started (ms since the watch was made).
    last: AtomicU64,
    born: std::time::Instant,
    max: u64,
    /// A client of the consumer group that never joins it: reads committed offsets only.
    client: Option<BaseConsumer>,
    topic: String,
}

impl LagWatch {
    fn new(k: &KafkaSettings, topic: &str) -> Self {
        let client = (k.max_lag > 0)
            .then(|| {
                kafka::consumer_config(k, &k.group_id)
                    .create::<BaseConsumer>()
                    .map_err(|e| tracing::warn!(error = %e, "no Kafka lag watch"))
                    .ok()
            })
            .flatten();
        Self {
            behind: AtomicU64::new(0),
            last: AtomicU64::new(0),
            born: std::time::Instant::now(),
            max: k.max_lag,
            client,
            topic: topic.to_owned(),
        }
    }

    /// The last known lag when it is over the bound.
    fn over(self: &Arc<Self>) -> Option<u64> {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last.load(Ordering::Relaxed);
        if self.client.is_some()
            && now.saturating_sub(last) >= 1000
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.refresh());
        }
        let behind = self.behind.load(Ordering::Relaxed);
        (self.max > 0 && behind > self.max).then_some(behind)
    }

    fn refresh(&self) {
        let Some(c) = &self.client else { return };
        match group_lag(c, &self.topic, Duration::from_secs(2)) {
            Ok(lag) => {
                self.behind
                    .store(lag.iter().map(|(_, l)| *l).sum(), Ordering::Relaxed);
                metrics::gauge!("booking_consumer_group_lag")
                    .set(self.behind.load(Ordering::Relaxed) as f64);
            }
            Err(e) => tracing::debug!(error = %e, "reading the booking consumers' lag failed"),
        }
    }
}

/// Per partition of `topic`: produced minus committed by the client's group.
fn group_lag(c: &BaseConsumer, topic: &str, timeout: Duration) -> anyhow::Result<Vec<(i32, u64)>> {
    let meta = c.fetch_metadata(Some(topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    for t in meta.topics() {
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    let committed = c.committed_offsets(tpl, timeout)?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let (low, high) = c.fetch_watermarks(topic, e.partition(), timeout)?;
        let done = match e.offset() {
            Offset::Offset(n) => n,
            _ => low,
        };
        out.push((e.partition(), u64::try_from(high - done).unwrap_or(0)));
    }
    Ok(out)
}

impl KafkaQueue {
    /// Builds the producer (connections open lazily).
    pub fn new(k: &KafkaSettings) -> anyhow::Result<Self> {
        let producer = kafka::producer(k, "booking")?;
        Ok(Self {
            producer,
            topics: Topics::from_settings(k),
            timeout: Duration::from_millis(k.produce_timeout_ms),
            pending: Mutex::new((HashMap::new(), VecDeque::new())),
            lag: Arc::new(LagWatch::new(k, &Topics::from_settings(k).bookings)),
        })
    }

    /// The consumers' lag when it is over `kafka.max_lag` (the API then answers 503).
    pub fn backlog(&self) -> Option<u64> {
        self.lag.over()
    }

    /// Produces `request` and waits for the broker's acknowledgement.
    pub async fn publish(&self, request: &BookingRequest) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(request)?;
        let key = request.event_id.to_string();
        self.producer
            .send(
                FutureRecord::to(&self.topics.bookings)
                    .key(&key)
                    .payload(&payload),
                self.timeout,
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("Kafka did not acknowledge the request: {e}"))?;
        if let Ok(mut p) = self.pending.lock() {
            let (map, order) = &mut *p;
            map.insert(request.request_id, request.user_id);
            order.push_back(request.request_id);
            while order.len() > PENDING_REMEMBERED {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        Ok(())
    }

    /// The owner of a request this process published (for the status endpoint).
    pub fn pending_owner(&self, request: Uuid) -> Option<i64> {
        self.pending.lock().ok()?.0.get(&request).copied()
    }

    /// Asks a broker for metadata (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        let producer = self.producer.clone();
        let timeout = self.timeout.min(Duration::from_secs(2));
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, timeout)
                .map(drop)
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .await?
    }
}

/// Logs what the worker owns: every assignment, revocation and rebalance error.
pub struct Ownership;

impl ClientContext for Ownership {}

impl ConsumerContext for Ownership {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let parts = |tpl: &TopicPartitionList| -> Vec<i32> {
            tpl.elements().iter().map(|e| e.partition()).collect()
        };
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = ?parts(tpl), "booking partitions assigned");
                metrics::counter!("booking_rebalances_total", "kind" => "assign").increment(1);
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = ?parts(tpl), "booking partitions revoked");
                metrics::counter!("booking_rebalances_total", "kind" => "revoke").increment(1);
            }
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "booking consumer rebalance failed");
            }
        }
    }
}

type BookingConsumer = StreamConsumer<Ownership>;

fn consumer(k: &KafkaSettings) -> anyhow::Result<BookingConsumer> {
    let mut config = kafka::consumer_config(k, &k.group_id);
    if !k.instance_id.is_empty() {
        config.set("group.instance.id", &k.instance_id);
    }
    let c: BookingConsumer = config
        .set("partition.assignment.strategy", &k.assignment_strategy)
        .create_with_context(Ownership)
        .map_err(|e| anyhow::anyhow!("creating the Kafka consumer: {e}"))?;
    Ok(c)
}

/// The `work-bookings` role on Kafka.
pub async fn run_consumer(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let k = state.settings().kafka.clone();
    kafka::ensure_topics(&k).await?;
    let topics = Topics::from_settings(&k);
    let consumer = Arc::new(consumer(&k)?);
    consumer
        .subscribe(&[&topics.bookings])
        .map_err(|e| anyhow::anyhow!("subscribing to {}: {e}", topics.bookings))?;
    let dlq = kafka::producer(&k, "dead-letter")?;
    // How many partitions there are to own (the alert rules compare the owned ones with it).
    metrics::gauge!("booking_partitions_total").set(f64::from(k.partitions));
    let lag_task = tokio::spawn(export_lag(
        state.clone(),
        consumer.clone(),
        shutdown.clone(),
    ));
    let batch_max = state.settings().booking.batch_max.max(1);
    let mut writer: Writer<TopicPartitionList> = Writer::new(state.clone(), "work-bookings")?;
    tracing::info!(topic = %topics.bookings, group = %k.group_id, "booking worker running (Kafka)");

    let mut sweep =
        tokio::time::interval(Duration::from_millis(state.settings().checkout.sweep_ms));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut more = false;
    loop {
        let room = writer.has_room();
        let first = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = writer.wait_front(), if writer.in_flight() => {
                let done = writer.settle().await;
                dead_letter(&dlq, &topics, writer.take_dead(), &shutdown).await;
                commit_offsets(&consumer, done);
                continue;
            }
            () = std::future::ready(()), if more && room && !writer.sweeping() => {
                more = sweep_owned(&mut writer, &consumer, k.partitions).await;
                continue;
            }
            _ = sweep.tick(), if room && !writer.sweeping() => {
                more = sweep_owned(&mut writer, &consumer, k.partitions).await;
                continue;
            }
            m = consumer.recv(), if room => match m {
                Ok(m) => m.detach(),
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka receive failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let mut messages = vec![first];
        while messages.len() < batch_max {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => messages.push(m.detach()),
                _ => break,
            }
        }
        let mut envelopes = Vec::with_capacity(messages.len());
        let mut defective = Vec::new();
        for m in &messages {
            match m.payload().map(serde_json::from_slice::<BookingRequest>) {
                // Decodable but never decidable (seats out of range, a key too long…): it
                // would fail every transaction it is in, so it goes to the dead letters now.
                Some(Ok(r)) if r.defect().is_some() => {
                    tracing::error!(kafka.partition = m.partition(), kafka.offset = m.offset(), request.id = %r.request_id, defect = r.defect(), "booking message can never be decided; sent to the dead-letter topic");
                    defective.push(m.payload().unwrap_or_default().to_vec());
                }
                Some(Ok(r)) => envelopes.push(Envelope::redeliverable(r)),
                other => {
                    let why = match other {
                        Some(Err(e)) => e.to_string(),
                        _ => "empty payload".to_owned(),
                    };
                    tracing::error!(kafka.partition = m.partition(), kafka.offset = m.offset(), error = %why, "undecodable booking message; sent to the dead-letter topic");
                    defective.push(m.payload().unwrap_or_default().to_vec());
                }
            }
        }
        for payload in defective {
            metrics::counter!("booking_dead_letters_total").increment(1);
            if !produce_dead_letter(&dlq, &topics, &payload, &shutdown).await {
                return Ok(());
            }
        }
        metrics::histogram!("booking_batch_size").record(envelopes.len() as f64);
        // Offsets are committed once every request of the batch is decided (in order).
        let done = writer.submit(envelopes, kafka::offsets(&messages)?).await;
        commit_offsets(&consumer, done);
    }
    lag_task.abort();
    // Decide what was taken (bounded by the role's drain time), then commit its offsets.
    let done = writer.drain().await;
    dead_letter(&dlq, &topics, writer.take_dead(), &shutdown).await;
    commit_offsets(&consumer, done);
    // Flush our last commits before leaving the group (bounded: an uncommitted offset only
    // means a redelivery, which the engine recognises).
    let c = consumer.clone();
    let flush = tokio::task::spawn_blocking(move || {
        if let Ok(tpl) = c.position() {
            let _ = c.commit(&tpl, CommitMode::Sync);
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(3), flush).await;
    Ok(())
}

/// Commits the offsets of wholly decided batches. A lost commit means a redelivery, which the
/// writer recognises by request id.
fn commit_offsets(consumer: &BookingConsumer, done: Vec<TopicPartitionList>) {
    for tpl in done {
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit failed; the batch will be redelivered and deduplicated");
        }
    }
}

/// Sends requests the database refused on their own to the dead-letter topic.
async fn dead_letter(
    dlq: &FutureProducer,
    topics: &Topics,
    dead: Vec<BookingRequest>,
    shutdown: &CancellationToken,
) {
    for r in dead {
        if let Ok(payload) = serde_json::to_vec(&r)
            && !produce_dead_letter(dlq, topics, &payload, shutdown).await
        {
            return;
        }
    }
}

/// Produces one dead letter, retrying until the broker takes it (false: shutting down).
async fn produce_dead_letter(
    dlq: &FutureProducer,
    topics: &Topics,
    payload: &[u8],
    shutdown: &CancellationToken,
) -> bool {
    // Keep trying: dropping it silently would lose the evidence.
    while let Err((e, _)) = dlq
        .send(
            FutureRecord::<[u8], [u8]>::to(&topics.dead_letter).payload(payload),
            Duration::from_secs(5),
        )
        .await
    {
        tracing::warn!(error = %e, "dead-letter produce failed; retrying");
        if shutdown.is_cancelled() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    true
}

/// Exports what this worker owns and how far behind it is, every second:
/// `booking_consumer_lag{partition}` and their sum as `booking_queue_depth`.
async fn export_lag(state: AppState, consumer: Arc<BookingConsumer>, shutdown: CancellationToken) {
    let mut owned: Vec<i32> = Vec::new();
    loop {
        let c = consumer.clone();
        let read = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(i32, u64)>> {
            let assigned = c.assignment()?;
            let position = c.position()?;
            let mut out = Vec::new();
            for e in assigned.elements() {
                let (low, high) =
                    c.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(1))?;
                let at = position
                    .find_partition(e.topic(), e.partition())
                    .and_then(|p| match p.offset() {
                        Offset::Offset(n) => Some(n),
                        _ => None,
                    })
                    .unwrap_or(low);
                out.push((e.partition(), u64::try_from(high - at).unwrap_or(0)));
            }
            Ok(out)
        })
        .await;
        if let Ok(Ok(lag)) = read {
            for p in &owned {
                if !lag.iter().any(|(q, _)| q == p) {
                    metrics::gauge!("booking_consumer_lag", "partition" => p.to_string()).set(0.0);
                    metrics::gauge!("booking_partition_owned", "partition" => p.to_string())
                        .set(0.0);
                }
            }
            owned = lag.iter().map(|(p, _)| *p).collect();
            for (p, l) in &lag {
                metrics::gauge!("booking_consumer_lag", "partition" => p.to_string())
                    .set(*l as f64);
                // Summed over the workers, every partition should be 1: the alert rule
                // `BookingPartitionWithoutOwner` compares it with `booking_partitions_total`.
                metrics::gauge!("booking_partition_owned", "partition" => p.to_string()).set(1.0);
            }
            metrics::gauge!("booking_partitions_assigned").set(lag.len() as f64);
            state.report(
                "bookingPartitions",
                serde_json::json!(
                    lag.iter()
                        .map(|(p, l)| serde_json::json!({ "partition": p, "lag": l }))
                        .collect::<Vec<_>>()
                ),
            );
            metrics::gauge!("booking_queue_depth")
                .set(lag.iter().map(|(_, l)| *l).sum::<u64>() as f64);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Applies the expiries and payments of the events whose partitions this consumer owns.
async fn sweep_owned(
    writer: &mut Writer<TopicPartitionList>,
    consumer: &BookingConsumer,
    partitions: u32,
) -> bool {
    let owned: std::collections::HashSet<i32> = consumer
        .assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default();
    if owned.is_empty() {
        return false;
    }
    let owns = move |event: i64| owned.contains(&partition_of(event, partitions));
    writer.sweep(&owns, None).await
}

/// The partition librdkafka's default partitioner (`consistent_random`) puts an event's
/// requests in: CRC-32 of the key (the event id in decimal) modulo the partition count.
pub fn partition_of(event_id: i64, partitions: u32) -> i32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for b in event_id.to_string().bytes() {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    i32::try_from((!crc) % partitions.max(1)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_partition_is_crc32_of_the_key() {
        // CRC-32("123456789") = 0xCBF43926, the check value of the algorithm.
        assert_eq!(
            super::partition_of(123_456_789, 1_000_000_007),
            i32::try_from(0xCBF4_3926_u32 % 1_000_000_007).unwrap_or(-1)
        );
        assert_eq!(super::partition_of(5, 1), 0);
    }
}

//! Kafka plumbing shared by the booking and notification queues: client settings, the producer
//! (acks=all, idempotent), consumer settings (manual commits from the earliest offset), topic
//! names and creation, and the offsets to commit after a batch. Infrastructure: it knows the
//! configuration, not the features that use it.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::config::KafkaSettings;

/// The topic names of a deployment (each with `kafka.topic_suffix`).
#[derive(Debug, Clone)]
pub struct Topics {
    /// Booking requests, keyed by event id.
    pub bookings: String,
    /// Booking messages that can never be decided.
    pub dead_letter: String,
    /// Notification ids, keyed by user id.
    pub notifications: String,
}

impl Topics {
    /// From configuration.
    pub fn from_settings(k: &KafkaSettings) -> Self {
        Self {
            bookings: format!("{}{}", k.topic_bookings, k.topic_suffix),
            dead_letter: format!("{}{}", k.topic_dead_letter, k.topic_suffix),
            notifications: format!("{}{}", k.topic_notifications, k.topic_suffix),
        }
    }
}

/// Settings every client shares.
pub fn client_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("client.id", "atomicseats")
        .set("socket.keepalive.enable", "true")
        .set("log_level", "4");
    c
}

/// A producer whose sends complete once every in-sync replica has the record (acks=all), with
/// idempotence (a retried send is written once). `what` names it in errors.
pub fn producer(k: &KafkaSettings, what: &str) -> anyhow::Result<FutureProducer> {
    client_config(k)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", k.produce_timeout_ms.to_string())
        .create()
        .map_err(|e| anyhow::anyhow!("creating the {what} producer: {e}"))
}

/// Consumer settings for `group`: offsets committed by the application once a batch is done
/// (never automatically), a new group starting from the earliest record.
pub fn consumer_config(k: &KafkaSettings, group: &str) -> ClientConfig {
    let mut c = client_config(k);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", k.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", k.heartbeat_interval_ms.to_string())
        .set("fetch.wait.max.ms", k.fetch_wait_max_ms.to_string())
        .set("enable.partition.eof", "false");
    c
}

/// Creates the deployment's topics if they do not exist (idempotent; off with
/// `kafka.create_topics = false`).
pub async fn ensure_topics(k: &KafkaSettings) -> anyhow::Result<()> {
    if !k.create_topics {
        return Ok(());
    }
    let topics = Topics::from_settings(k);
    let admin: AdminClient<DefaultClientContext> = client_config(k)
        .create()
        .map_err(|e| anyhow::anyhow!("creating the Kafka admin client: {e}"))?;
    let partitions = i32::try_from(k.partitions).unwrap_or(1).max(1);
    let new = [
        NewTopic::new(&topics.bookings, partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&topics.dead_letter, 1, TopicReplication::Fixed(1)),
        NewTopic::new(
            &topics.notifications,
            partitions,
            TopicReplication::Fixed(1),
        ),
    ];
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating Kafka topics: {e}"))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, e)) => anyhow::bail!("creating Kafka topic {topic}: {e}"),
        }
    }
    Ok(())
}

/// Offsets to commit after `messages` are done: the next offset of every partition seen.
pub fn offsets(messages: &[OwnedMessage]) -> anyhow::Result<TopicPartitionList> {
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    for m in messages {
        let e = next
            .entry((m.topic().to_owned(), m.partition()))
            .or_insert(0);
        *e = (*e).max(m.offset() + 1);
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))
            .map_err(|e| anyhow::anyhow!("offset list: {e}"))?;
    }
    Ok(tpl)
}

//! `work-notify` (delivering) and the outbox relay (publishing).

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use futures_util::StreamExt;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

use crate::db::schema::users;
use crate::mail::SendError;
use crate::notifications::{NotificationQueue, outbox, render};
use crate::state::AppState;

/// What one delivery attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Sent and marked sent.
    Sent,
    /// Already sent, failed, not due or claimed elsewhere: nothing done.
    Skipped,
    /// Failed transiently; retry scheduled.
    Retrying,
    /// Dead-lettered.
    Failed,
}

/// Delivers outbox row `id` once: claim, render, send, record. Safe to call for any id, any
/// number of times.
#[tracing::instrument(name = "deliver", skip(state), fields(notification.kind = tracing::field::Empty))]
pub async fn deliver(state: &AppState, id: i64) -> anyhow::Result<Delivery> {
    let mut conn = state.db().get().await?;
    let Some(row) = outbox::claim(&mut conn, id).await? else {
        metrics::counter!("notifications_skipped_total").increment(1);
        return Ok(Delivery::Skipped);
    };
    tracing::Span::current().record("notification.kind", row.kind.as_str());
    let recipient: Option<(String, String)> = match row.user_id {
        Some(uid) => users::table
            .find(uid)
            .select((users::email, users::name))
            .first(&mut conn)
            .await
            .optional()?,
        None => None,
    };
    let Some((email, name)) = recipient else {
        outbox::mark_failed(&mut conn, id, "the recipient no longer exists").await?;
        metrics::counter!("notifications_failed_total").increment(1);
        return Ok(Delivery::Failed);
    };
    let Some(mail) = render::render(&row.kind, &row.payload, &name) else {
        outbox::mark_failed(
            &mut conn,
            id,
            &format!("no template for kind `{}`", row.kind),
        )
        .await?;
        metrics::counter!("notifications_failed_total").increment(1);
        return Ok(Delivery::Failed);
    };
    // Not inside a transaction: the claim holds the row while SMTP talks.
    drop(conn);
    let result = state.mailer().send(&email, &row.kind, &mail).await;
    let mut conn = state.db().get().await?;
    let settings = &state.settings().notify;
    match result {
        Ok(()) => {
            outbox::mark_sent(&mut conn, id).await?;
            metrics::counter!("notifications_sent_total", "kind" => row.kind.clone()).increment(1);
            tracing::info!(notification.id = id, "notification sent");
            Ok(Delivery::Sent)
        }
        Err(SendError::Transient(e)) if row.attempts < settings.max_attempts => {
            let exp = u32::try_from(row.attempts.saturating_sub(1))
                .unwrap_or(0)
                .min(16);
            let delay_ms = settings
                .backoff_base_ms
                .saturating_mul(1u64 << exp)
                .min(settings.backoff_max_ms);
            let next = Utc::now()
                + chrono::Duration::milliseconds(i64::try_from(delay_ms).unwrap_or(i64::MAX));
            outbox::schedule_retry(&mut conn, id, next, &e).await?;
            metrics::counter!("notifications_retried_total").increment(1);
            tracing::warn!(notification.id = id, attempts = row.attempts, retry_in_ms = delay_ms, error = %e, "sending failed; will retry");
            state.outbox_signal().notify_one();
            Ok(Delivery::Retrying)
        }
        Err(e) => {
            outbox::mark_failed(&mut conn, id, &e.to_string()).await?;
            metrics::counter!("notifications_failed_total").increment(1);
            tracing::error!(notification.id = id, attempts = row.attempts, error = %e, "notification dead-lettered");
            Ok(Delivery::Failed)
        }
    }
}

/// Publishes due outbox rows to the notification queue; returns how many.
pub async fn publish_due(state: &AppState) -> anyhow::Result<usize> {
    let republish = chrono::Duration::seconds(
        i64::try_from(state.settings().notify.republish_after_secs).unwrap_or(60),
    );
    // Fixed for the whole call: rows this call publishes are never due again within it, so the
    // loop ends even when publishing takes longer than `republish_after`.
    let stale = Utc::now() - republish;
    let mut total = 0;
    loop {
        let mut conn = state.db().get().await?;
        let ids: Vec<(i64, Option<i64>)> = conn
            .transaction(async |conn| {
                let ids = outbox::take_due(conn, stale, 500).await?;
                let owners: Vec<(i64, Option<i64>)> = crate::db::schema::outbox::table
                    .filter(crate::db::schema::outbox::id.eq_any(&ids))
                    .select((
                        crate::db::schema::outbox::id,
                        crate::db::schema::outbox::user_id,
                    ))
                    .load(conn)
                    .await?;
                Ok::<_, diesel::result::Error>(owners)
            })
            .await?;
        drop(conn);
        if ids.is_empty() {
            return Ok(total);
        }
        for (id, user) in &ids {
            // A row that cannot be handed over now stays due and is re-published later.
            if !state.notification_queue().publish(*id, *user).await {
                tracing::warn!(
                    notification.id = id,
                    "notification queue refused a message; it will be re-published"
                );
            }
        }
        total += ids.len();
        if ids.len() < 500 {
            return Ok(total);
        }
    }
}

/// The relay: publishes right after commits (woken) and on a one-second tick.
pub async fn run_relay(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    loop {
        if let Err(e) = publish_due(&state).await {
            tracing::warn!(error = %e, "publishing notifications failed; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = state.outbox_signal().notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    // Hand over what the last batches wrote before leaving.
    let _ = publish_due(&state).await;
    Ok(())
}

async fn handle(state: &AppState, id: i64) {
    if let Err(e) = deliver(state, id).await {
        // The row stays pending and unclaimed after its claim expires: re-published later.
        tracing::warn!(notification.id = id, error = %e, "delivery attempt failed");
    }
}

/// The `work-notify` role.
pub async fn run(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let concurrency = state.settings().notify.concurrency.max(1);
    match state.notification_queue() {
        NotificationQueue::Memory { rx, .. } => {
            let rx = rx.lock().ok().and_then(|mut r| r.take()).ok_or_else(|| {
                anyhow::anyhow!("the in-process notification worker is already running")
            })?;
            tracing::info!("notification worker running (in-process queue)");
            // The receiver as a stream that ends at shutdown.
            let stream =
                futures_util::stream::unfold((rx, shutdown.clone()), |(mut rx, stop)| async move {
                    tokio::select! {
                        () = stop.cancelled() => None,
                        id = rx.recv() => id.map(|id| (id, (rx, stop))),
                    }
                });
            stream
                .for_each_concurrent(concurrency, |id| {
                    let state = state.clone();
                    async move { handle(&state, id).await }
                })
                .await;
            Ok(())
        }
        NotificationQueue::Kafka { .. } => run_kafka(state, shutdown, concurrency).await,
    }
}

async fn run_kafka(
    state: AppState,
    shutdown: CancellationToken,
    concurrency: usize,
) -> anyhow::Result<()> {
    let k = state.settings().kafka.clone();
    crate::bookings::kafka::ensure_topics(&k).await?;
    let consumer: StreamConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("group.id", &k.notify_group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", k.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", k.heartbeat_interval_ms.to_string())
        .create()
        .map_err(|e| anyhow::anyhow!("creating the notification consumer: {e}"))?;
    let topic = super::topic(&k);
    consumer
        .subscribe(&[&topic])
        .map_err(|e| anyhow::anyhow!("subscribing to {topic}: {e}"))?;
    tracing::info!(topic = %topic, "notification worker running (Kafka)");
    loop {
        let msg = tokio::select! {
            () = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "Kafka receive failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let id = msg
            .payload()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            .and_then(|v| v.get("outboxId").and_then(serde_json::Value::as_i64));
        match id {
            Some(id) => handle(&state, id).await,
            // A bad message never blocks the partition: log it and move on.
            None => tracing::error!(
                kafka.offset = msg.offset(),
                "undecodable notification message skipped"
            ),
        }
        if let Err(e) = consumer.commit_message(&msg, CommitMode::Async) {
            tracing::warn!(error = %e, "notification offset commit failed (redelivery is harmless)");
        }
    }
    let _ = concurrency;
    Ok(())
}

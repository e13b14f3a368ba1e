//! `work-notify` (delivering) and the outbox relay (publishing).

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use futures_util::{FutureExt, StreamExt};
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

use crate::db::schema::users;
use crate::mail::SendError;
use crate::notifications::kind::{Job, Notice};
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

/// Delivers outbox row `id` once (see [`deliver_batch`]).
pub async fn deliver(state: &AppState, id: i64) -> anyhow::Result<Delivery> {
    let outcomes = deliver_batch(state, &[id]).await?;
    Ok(outcomes
        .into_iter()
        .next()
        .map_or(Delivery::Skipped, |(_, d)| d))
}

/// Marks `ids` sent, retrying through a database outage for most of the claim (one minute):
/// the emails are out, and giving up here would send them again when the claim expires.
async fn mark_sent_persistently(state: &AppState, ids: &[i64]) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    let mut pause = Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut conn = state.db().get().await?;
            outbox::mark_sent(&mut conn, ids).await?;
            anyhow::Ok(())
        }
        .await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, notifications = ids.len(), "marking sent failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Who a notification goes to.
#[derive(Debug, Clone)]
struct Recipient {
    id: i64,
    email: String,
    name: String,
    verified: bool,
}

/// The row's payload plus what is minted at sending time: the verification link (signed now,
/// so no token is ever stored). `None` when it cannot be built.
fn personalise(
    state: &AppState,
    row: &outbox::OutboxRow,
    kind: Notice,
    recipient: &Recipient,
) -> Option<serde_json::Value> {
    let mut payload = row.payload.clone();
    if kind == Notice::VerifyEmail {
        let token = state
            .tokens()
            .issue_email_verification(recipient.id, &recipient.email)
            .ok()?;
        payload["verifyUrl"] = serde_json::Value::String(format!(
            "{}/api/user/verify-email?token={token}",
            state.settings().http.public_url
        ));
    }
    Some(payload)
}

/// Delivers outbox rows once each: one claim for the batch, one recipient lookup, the emails
/// sent concurrently (`notify.concurrency`), each marked sent as soon as the server took it. Safe to call for
/// any ids, any number of times: ids already sent, failed, not due or claimed elsewhere are
/// skipped.
pub async fn deliver_batch(state: &AppState, ids: &[i64]) -> anyhow::Result<Vec<(i64, Delivery)>> {
    let mut conn = state.db().get().await?;
    let rows = outbox::claim(&mut conn, ids).await?;
    let skipped = ids.len() - rows.len();
    if skipped > 0 {
        metrics::counter!("notifications_skipped_total").increment(skipped as u64);
    }
    let user_ids: Vec<i64> = rows.iter().filter_map(|r| r.user_id).collect();
    let recipients: std::collections::HashMap<i64, Recipient> = users::table
        .filter(users::id.eq_any(&user_ids))
        .select((
            users::id,
            users::email,
            users::name,
            users::email_verified_at.is_not_null(),
        ))
        .load::<(i64, String, String, bool)>(&mut conn)
        .await?
        .into_iter()
        .map(|(id, email, name, verified)| {
            (
                id,
                Recipient {
                    id,
                    email,
                    name,
                    verified,
                },
            )
        })
        .collect();
    // Not inside a transaction: the claims hold the rows while SMTP talks.
    drop(conn);
    let concurrency = state.settings().notify.concurrency.max(1);
    let mut sends = futures_util::stream::iter(rows)
        .map(|row| {
            let recipient = row.user_id.and_then(|u| recipients.get(&u)).cloned();
            async move {
                // A refund is run through the payment provider, not mailed (its email is a
                // notification it writes once the refund is recorded).
                let kind = match Job::parse(&row.kind) {
                    Some(Job::Refund) => {
                        let result = crate::payments::refund::execute(state, &row).await;
                        return (row, result);
                    }
                    Some(Job::Email(kind)) => kind,
                    None => {
                        let why = format!(
                            "no template for kind `{}` (not a kind of this version)",
                            row.kind
                        );
                        return (row, Err(SendError::Permanent(why)));
                    }
                };
                let result = match recipient {
                    None => Err(SendError::Permanent(
                        "the recipient no longer exists".to_owned(),
                    )),
                    Some(r) if !r.verified && kind != Notice::VerifyEmail => {
                        Err(SendError::Unverified)
                    }
                    Some(r) => match personalise(state, &row, kind, &r)
                        .map(|payload| render::render(kind, &payload, &r.name))
                    {
                        None => Err(SendError::Permanent(
                            "the email's personal link could not be made".to_owned(),
                        )),
                        Some(mail) => {
                            state
                                .mailer()
                                .send(&r.email, row.id, &row.kind, &mail)
                                .await
                        }
                    },
                };
                (row, result)
            }
        })
        .buffer_unordered(concurrency);
    // Each accepted email is marked sent right away (with whatever else finished at the same
    // moment): a crash between the SMTP server's "250" and the mark resends it once the claim
    // expires, so that window is kept to one UPDATE.
    let mut results: Vec<(outbox::OutboxRow, Result<(), SendError>)> = Vec::new();
    while let Some(first) = sends.next().await {
        let mut ready = vec![first];
        while let Some(Some(more)) = sends.next().now_or_never() {
            ready.push(more);
        }
        let sent: Vec<i64> = ready
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(row, _)| row.id)
            .collect();
        mark_sent_persistently(state, &sent).await?;
        results.extend(ready);
    }

    let mut conn = state.db().get().await?;
    let settings = &state.settings().notify;
    let mut outcomes = Vec::with_capacity(results.len());
    for (row, result) in results {
        match result {
            Ok(()) => {
                metrics::counter!("notifications_sent_total", "kind" => row.kind.clone())
                    .increment(1);
                tracing::debug!(notification.id = row.id, notification.kind = %row.kind, "notification sent");
                outcomes.push((row.id, Delivery::Sent));
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
                outbox::schedule_retry(&mut conn, row.id, next, &e).await?;
                metrics::counter!("notifications_retried_total").increment(1);
                tracing::warn!(notification.id = row.id, attempts = row.attempts, retry_in_ms = delay_ms, error = %e, "sending failed; will retry");
                outcomes.push((row.id, Delivery::Retrying));
            }
            Err(SendError::Unverified) => {
                outbox::mark_failed(&mut conn, row.id, &SendError::Unverified.to_string()).await?;
                metrics::counter!("notifications_unverified_total").increment(1);
                tracing::debug!(notification.id = row.id, notification.kind = %row.kind, "not sent: address not verified");
                outcomes.push((row.id, Delivery::Failed));
            }
            Err(e) => {
                outbox::mark_failed(&mut conn, row.id, &e.to_string()).await?;
                metrics::counter!("notifications_failed_total").increment(1);
                tracing::error!(notification.id = row.id, notification.kind = %row.kind, attempts = row.attempts, error = %e, "notification dead-lettered");
                outcomes.push((row.id, Delivery::Failed));
            }
        }
    }
    if outcomes.iter().any(|(_, d)| *d == Delivery::Retrying) {
        state.outbox_signal().notify_one();
    }
    for id in ids {
        if !outcomes.iter().any(|(o, _)| o == id) {
            outcomes.push((*id, Delivery::Skipped));
        }
    }
    Ok(outcomes)
}

/// Most due rows one round of the relay takes.
const PUBLISH_PAGE: i64 = 500;

/// Publishes due outbox rows to the notification queue; returns how many.
pub async fn publish_due(state: &AppState) -> anyhow::Result<usize> {
    let mut pass = Pass::begin(state, Beside::Writer);
    while pass.round(state).await? {}
    Ok(pass.handed)
}

/// One pass of the relay over what was due when it began, in rounds of at most
/// [`PUBLISH_PAGE`] due rows and a few of the writer's batches. Bounded: rows a pass publishes
/// are not due again within it, and the writer's batches committed after it began wait for
/// the next pass, so a pass ends even while a sale goes on.
struct Pass {
    /// Rows published before this are due again (their hand-over was lost).
    stale: chrono::DateTime<Utc>,
    /// The pass's snapshot is the newest batch committed before this (`None`: the newest).
    batches_before: Option<chrono::DateTime<Utc>>,
    /// The newest writer batch when the pass began (read by its first round), or the newest
    /// older than `batches_before`.
    upto: Option<i64>,
    /// Notifications handed over so far.
    handed: usize,
}

/// Whether a relay runs in the process of a booking writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beside {
    /// `all`, `work-bookings`: it expands the writer's batches in the writer's pauses.
    Writer,
    /// `serve` in the scale-out layout: the writer is in another process, whose relay expands
    /// its batches in its pauses; this one takes a batch only once it is `relay_max_delay_ms`
    /// old (that relay is gone, or never got to it), so it never competes with a sale.
    Nothing,
}

impl Pass {
    fn begin(state: &AppState, beside: Beside) -> Self {
        let notify = &state.settings().notify;
        let republish =
            chrono::Duration::seconds(i64::try_from(notify.republish_after_secs).unwrap_or(60));
        let max_delay = chrono::Duration::milliseconds(
            i64::try_from(notify.relay_max_delay_ms).unwrap_or(30_000),
        );
        let now = Utc::now();
        Self {
            stale: now - republish,
            batches_before: (beside == Beside::Nothing).then(|| now - max_delay),
            upto: None,
            handed: 0,
        }
    }

    /// Takes one round of due rows and expanded batches and hands them over; whether more of
    /// the pass is left.
    async fn round(&mut self, state: &AppState) -> anyhow::Result<bool> {
        let (stale, upto, before) = (self.stale, self.upto, self.batches_before);
        let mut conn = state.db().get().await?;
        // Due rows, then the writer's batches expanded into rows written published.
        let (upto, due, batches, ids) = conn
            .transaction(async |conn| {
                let upto = match upto {
                    Some(u) => u,
                    None => outbox::last_batch(conn, before).await?,
                };
                let ids = outbox::take_due(conn, stale, PUBLISH_PAGE).await?;
                let mut owners: Vec<(i64, Option<i64>)> = crate::db::schema::outbox::table
                    .filter(crate::db::schema::outbox::id.eq_any(&ids))
                    .select((
                        crate::db::schema::outbox::id,
                        crate::db::schema::outbox::user_id,
                    ))
                    .load(conn)
                    .await?;
                let (batches, expanded) = outbox::expand(conn, upto).await?;
                owners.extend(expanded);
                Ok::<_, diesel::result::Error>((upto, ids.len(), batches, owners))
            })
            .await?;
        drop(conn);
        self.upto = Some(upto);
        let more = due == PUBLISH_PAGE as usize || batches > 0;
        if ids.is_empty() {
            return Ok(more);
        }
        // All of a round in flight at once (the Kafka producer batches them; one
        // acknowledgement round instead of 500). What the queue refuses (full, or its consumer
        // stopped) is due again at once for the next pass; this one stops there.
        let handed = state.notification_queue().publish_many(&ids).await;
        let refused: Vec<i64> = ids
            .iter()
            .zip(&handed)
            .filter(|(_, ok)| !**ok)
            .map(|((id, _), _)| *id)
            .collect();
        self.handed += ids.len() - refused.len();
        if !refused.is_empty() {
            metrics::counter!("notifications_refused_total").increment(refused.len() as u64);
            tracing::warn!(
                notifications = refused.len(),
                "the notification queue refused notifications; they stay due for the next relay"
            );
            let mut conn = state.db().get().await?;
            outbox::unpublish(&mut conn, &refused).await?;
            return Ok(false);
        }
        Ok(more)
    }
}

/// The relay: publishes what commits wrote, and everything due (retries, lost hand-overs) on a
/// one-second tick. It yields to a busy writer: after a commit it waits until commits pause for
/// `notify.relay_quiet_ms`, and goes back to waiting between two rounds of a pass when the
/// writer commits again; once the oldest commit waiting is `notify.relay_max_delay_ms` old, it
/// finishes a whole pass whatever the writer does. During a flash sale its bookkeeping thus
/// comes in the sale's pauses and in a few bounded bursts, not beside every batch. For a process
/// with a booking writer (`all`, `work-bookings`).
pub async fn run_relay(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    relay(state, shutdown, Beside::Writer).await
}

/// The relay of a process without a booking writer (`serve` in the scale-out layout): it
/// hands over what this process's handlers write, and the writer's batches only once they are
/// `notify.relay_max_delay_ms` old — the relay beside the writer takes them in its pauses.
pub async fn run_relay_apart(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    relay(state, shutdown, Beside::Nothing).await
}

async fn relay(state: AppState, shutdown: CancellationToken, beside: Beside) -> anyhow::Result<()> {
    let settings = &state.settings().notify;
    let quiet = Duration::from_millis(settings.relay_quiet_ms);
    let max_delay = Duration::from_millis(settings.relay_max_delay_ms);
    let tick = Duration::from_secs(1);
    // The first commit not handed over yet, and the latest one.
    let mut waiting_since: Option<Instant> = None;
    let mut last_commit = Instant::now();
    let mut last_run: Option<Instant> = None;
    loop {
        let due = match waiting_since {
            Some(first) => last_commit.elapsed() >= quiet || first.elapsed() >= max_delay,
            None => last_run.is_none_or(|t| t.elapsed() >= tick),
        };
        if due {
            let forced = waiting_since.is_some_and(|first| first.elapsed() >= max_delay);
            match relay_pass(&state, &shutdown, forced, beside).await {
                Ok(true) => {
                    if let Some(first) = waiting_since.take() {
                        metrics::histogram!("notification_relay_delay_seconds")
                            .record(first.elapsed().as_secs_f64());
                    }
                }
                // The writer committed during the pass: wait for the next pause.
                Ok(false) if !shutdown.is_cancelled() => {
                    last_commit = Instant::now();
                    waiting_since.get_or_insert(last_commit);
                    metrics::counter!("notification_relay_yields_total").increment(1);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "publishing notifications failed; retrying"),
            }
            last_run = Some(Instant::now());
        }
        let nap = if waiting_since.is_some() {
            quiet.min(max_delay).max(Duration::from_millis(10))
        } else {
            tick
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = state.outbox_signal().notified() => {
                last_commit = Instant::now();
                waiting_since.get_or_insert(last_commit);
            }
            () = tokio::time::sleep(nap) => {}
        }
    }
    // Hand over what the last batches wrote before leaving, within bounds: anything left is
    // picked up by the next relay or reconciliation pass.
    let _ = tokio::time::timeout(Duration::from_secs(3), publish_due(&state)).await;
    Ok(())
}

/// One pass of the relay, round by round; `Ok(false)` when it stopped early because the writer
/// committed meanwhile (unless `forced`) or the relay is stopping, the rest left for later.
async fn relay_pass(
    state: &AppState,
    shutdown: &CancellationToken,
    forced: bool,
    beside: Beside,
) -> anyhow::Result<bool> {
    let mut pass = Pass::begin(state, beside);
    loop {
        // Registered before the round, so that a commit during it is seen after it.
        let commit = state.outbox_signal().notified();
        tokio::pin!(commit);
        commit.as_mut().enable();
        if !pass.round(state).await? {
            return Ok(true);
        }
        if shutdown.is_cancelled() || (!forced && commit.now_or_never().is_some()) {
            return Ok(false);
        }
    }
}

/// Most notifications one delivery round takes.
const BATCH: usize = 200;

async fn handle(state: &AppState, ids: &[i64]) {
    if let Err(e) = deliver_batch(state, ids).await {
        // The rows stay pending; once their claims expire they are re-published.
        tracing::warn!(notifications = ids.len(), error = %e, "delivery round failed");
    }
}

/// The `work-notify` role.
pub async fn run(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let concurrency = state.settings().notify.concurrency.max(1);
    match state.notification_queue() {
        NotificationQueue::Memory { rx, .. } => {
            let mut rx = rx.lock().ok().and_then(|mut r| r.take()).ok_or_else(|| {
                anyhow::anyhow!("the in-process notification worker is already running")
            })?;
            tracing::info!("notification worker running (in-process queue)");
            loop {
                let first = tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    id = rx.recv() => match id {
                        Some(id) => id,
                        None => return Ok(()),
                    },
                };
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(id) => batch.push(id),
                        Err(_) => break,
                    }
                }
                handle(&state, &batch).await;
            }
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
    crate::kafka::ensure_topics(&k).await?;
    let consumer: StreamConsumer = crate::kafka::consumer_config(&k, &k.notify_group_id)
        .create()
        .map_err(|e| anyhow::anyhow!("creating the notification consumer: {e}"))?;
    let topic = super::topic(&k);
    consumer
        .subscribe(&[&topic])
        .map_err(|e| anyhow::anyhow!("subscribing to {topic}: {e}"))?;
    tracing::info!(topic = %topic, "notification worker running (Kafka)");
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let first = match first {
            Ok(m) => m.detach(),
            Err(e) => {
                tracing::warn!(error = %e, "Kafka receive failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut messages = vec![first];
        while messages.len() < BATCH {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => messages.push(m.detach()),
                _ => break,
            }
        }
        let ids: Vec<i64> = messages
            .iter()
            .filter_map(|m| {
                let id = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                    .and_then(|v| v.get("outboxId").and_then(serde_json::Value::as_i64));
                if id.is_none() {
                    // A bad message never blocks the partition: log it and move on.
                    tracing::error!(
                        kafka.offset = m.offset(),
                        "undecodable notification message skipped"
                    );
                }
                id
            })
            .collect();
        handle(&state, &ids).await;
        match crate::kafka::offsets(&messages) {
            Ok(tpl) => {
                if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(error = %e, "notification offset commit failed (redelivery is harmless)");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "notification offsets not committed (redelivery is harmless)")
            }
        }
    }
    let _ = concurrency;
    Ok(())
}

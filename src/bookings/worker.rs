//! The booking worker: takes everything queued (up to `booking.batch_max`), groups it by event,
//! decides each group in one transaction, then — after the commit — answers the waiting
//! handlers, updates the event cache and wakes the notification sender.
//!
//! Reads `[booking]`: `batch_max`, `linger_ms`, `shards`, `queue_capacity`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bookings::domain::{BookingRequest, Outcome};
use crate::bookings::engine;
use crate::bookings::queue::Envelope;
use crate::state::AppState;

/// Attempts for one group before its waiting handlers are told to retry.
const MAX_ATTEMPTS: u32 = 5;

/// Groups requests by event, keeping arrival order inside each group and the order in which
/// events first appear.
pub fn group_by_event(requests: Vec<BookingRequest>) -> Vec<(i64, Vec<BookingRequest>)> {
    let mut order: Vec<i64> = Vec::new();
    let mut groups: HashMap<i64, Vec<BookingRequest>> = HashMap::new();
    for r in requests {
        let g = groups.entry(r.event_id).or_insert_with(|| {
            order.push(r.event_id);
            Vec::new()
        });
        g.push(r);
    }
    order
        .into_iter()
        .filter_map(|e| groups.remove(&e).map(|g| (e, g)))
        .collect()
}

/// Decides one event's group, retrying transient failures. After the commit: cache, metrics,
/// notifications. Returns the outcomes (input order, duplicates included) or the last error.
pub async fn decide_group(
    state: &AppState,
    event_id: i64,
    requests: &[BookingRequest],
) -> anyhow::Result<Vec<Outcome>> {
    let mut attempt = 0;
    let decided = loop {
        attempt += 1;
        let result = async {
            let mut conn = state.db().get().await?;
            engine::decide(&mut conn, event_id, requests).await
        }
        .await;
        match result {
            Ok(d) => break d,
            Err(e) if attempt < MAX_ATTEMPTS => {
                tracing::warn!(event.id = event_id, error = %e, attempt, "deciding a batch failed; retrying");
                tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(event) = &decided.event {
        state.event_cache().put(event).await;
    }
    if decided.notifications > 0 {
        crate::notifications::wake(state);
    }
    let now = chrono::Utc::now();
    for (o, r) in decided.outcomes.iter().zip(requests) {
        metrics::counter!("booking_decisions_total", "status" => o.status.as_str()).increment(1);
        let latency = (now - r.requested_at).to_std().unwrap_or_default();
        metrics::histogram!("booking_decision_latency_seconds").record(latency.as_secs_f64());
    }
    if !decided.served.is_empty() {
        metrics::counter!("booking_waitlist_served_total").increment(decided.served.len() as u64);
    }
    state.outcomes().publish(&decided.outcomes).await;
    // Duplicates inside one batch map to the first copy's outcome.
    let by_id: HashMap<_, _> = decided.outcomes.iter().map(|o| (o.request_id, o)).collect();
    Ok(requests
        .iter()
        .filter_map(|r| by_id.get(&r.request_id).map(|o| (*o).clone()))
        .collect())
}

/// Decides a batch of envelopes and answers their handlers.
async fn process(state: &AppState, batch: Vec<Envelope>) {
    metrics::histogram!("booking_batch_size").record(batch.len() as f64);
    let mut replies: HashMap<uuid::Uuid, Vec<tokio::sync::oneshot::Sender<super::queue::Reply>>> =
        HashMap::new();
    let mut requests = Vec::with_capacity(batch.len());
    for env in batch {
        if let Some(tx) = env.reply {
            replies.entry(env.request.request_id).or_default().push(tx);
        }
        requests.push(env.request);
    }
    for (event_id, group) in group_by_event(requests) {
        let started = Instant::now();
        match decide_group(state, event_id, &group).await {
            Ok(outcomes) => {
                tracing::debug!(
                    event.id = event_id,
                    batch.size = group.len(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "batch decided"
                );
                for o in outcomes {
                    for tx in replies.remove(&o.request_id).unwrap_or_default() {
                        let _ = tx.send(Ok(o.clone()));
                    }
                }
            }
            Err(e) => {
                tracing::error!(event.id = event_id, error = ?e, "batch could not be decided");
                for r in &group {
                    for tx in replies.remove(&r.request_id).unwrap_or_default() {
                        let _ = tx.send(Err("the booking could not be decided, retry".to_owned()));
                    }
                }
            }
        }
    }
}

/// One shard's loop: batch, decide, repeat; on shutdown, decide what is queued, then stop.
async fn run_shard(state: AppState, mut rx: mpsc::Receiver<Envelope>, shutdown: CancellationToken) {
    let settings = state.settings().booking.clone();
    let batch_max = settings.batch_max.max(1);
    loop {
        let first = tokio::select! {
            biased;
            env = rx.recv() => match env {
                Some(env) => env,
                None => return,
            },
            () = shutdown.cancelled() => break,
        };
        let mut batch = Vec::with_capacity(batch_max.min(4096));
        batch.push(first);
        fill(&mut rx, &mut batch, batch_max);
        if settings.linger_ms > 0 && batch.len() < batch_max {
            tokio::time::sleep(Duration::from_millis(settings.linger_ms)).await;
            fill(&mut rx, &mut batch, batch_max);
        }
        process(&state, batch).await;
    }
    // Stop taking new requests; decide the ones already queued (their handlers are waiting).
    rx.close();
    let mut rest = Vec::new();
    while let Ok(env) = rx.try_recv() {
        rest.push(env);
    }
    if !rest.is_empty() {
        tracing::info!(
            requests = rest.len(),
            "deciding queued requests before stopping"
        );
        process(&state, rest).await;
    }
}

fn fill(rx: &mut mpsc::Receiver<Envelope>, batch: &mut Vec<Envelope>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(env) => batch.push(env),
            Err(_) => break,
        }
    }
}

/// The in-process worker: one task per shard until `shutdown`.
pub async fn run_memory(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(queue) = state.booking_queue().memory() else {
        anyhow::bail!("the in-process worker needs queue.kind = \"memory\"");
    };
    let receivers = queue
        .take_receivers()
        .ok_or_else(|| anyhow::anyhow!("the in-process booking worker is already running"))?;
    let depth_state = state.clone();
    let depth_stop = shutdown.clone();
    let gauge = tokio::spawn(async move {
        loop {
            if let Some(q) = depth_state.booking_queue().memory() {
                metrics::gauge!("booking_queue_depth").set(q.depth() as f64);
            }
            tokio::select! {
                () = depth_stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    for rx in receivers {
        tasks.spawn(run_shard(state.clone(), rx, shutdown.clone()));
    }
    tracing::info!(
        shards = tasks.len(),
        "booking worker running (in-process queue)"
    );
    while let Some(res) = tasks.join_next().await {
        if let Err(e) = res {
            anyhow::bail!("a booking shard panicked: {e}");
        }
    }
    gauge.abort();
    Ok(())
}

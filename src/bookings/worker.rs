//! The in-process booking worker: one [`Writer`] per shard. Each shard takes everything queued
//! (up to `booking.batch_max`) as one batch and hands it to its writer, which decides it while
//! earlier batches commit; the shard settles transactions as they finish. On shutdown it stops
//! taking requests, decides what is queued and waits for every commit.
//!
//! Reads `[booking]`: `batch_max`, `linger_ms`, `shards`, `queue_capacity`, `pipeline_depth`,
//! `overlap_min`, `overlap_wait_us`.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bookings::domain::{Outcome, Status};
use crate::bookings::queue::Envelope;
use crate::bookings::writer::Writer;
use crate::state::AppState;

/// `booking.dry_run`: answer every request `pending` without deciding it (the accept path's
/// ceiling, for the benchmark).
async fn run_dry(mut rx: mpsc::Receiver<Envelope>, shutdown: CancellationToken) {
    loop {
        let env = tokio::select! {
            () = shutdown.cancelled() => return,
            env = rx.recv() => match env {
                Some(env) => env,
                None => return,
            },
        };
        let pending = Outcome::undecided(&env.request, Status::Pending, None);
        if let Some(tx) = env.reply {
            let _ = tx.send(Ok(pending));
        }
    }
}

/// One shard's loop: batch, submit, settle; on shutdown, decide what is queued, then stop.
async fn run_shard(
    mut writer: Writer<()>,
    state: AppState,
    (shard, mut rx): (usize, mpsc::Receiver<Envelope>),
    shutdown: CancellationToken,
) {
    let settings = state.settings().booking.clone();
    let batch_max = settings.batch_max.max(1);
    // The sweep applies expiries and payments of this shard's events only.
    let owner = state.clone();
    let owns = move |event: i64| {
        owner
            .booking_queue()
            .memory()
            .is_some_and(|q| q.shard_of(event) == shard)
    };
    let mut sweep =
        tokio::time::interval(Duration::from_millis(state.settings().checkout.sweep_ms));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shards = i64::try_from(settings.shards.max(1)).unwrap_or(1);
    let scope = Some((shards, i64::try_from(shard).unwrap_or(0)));
    // A full page of holds due: sweep again as soon as there is room, not a tick later.
    let mut more = false;
    loop {
        let room = writer.has_room();
        let first = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = writer.wait_front(), if writer.in_flight() => {
                writer.settle().await;
                continue;
            }
            () = std::future::ready(()), if more && room && !writer.sweeping() => {
                more = writer.sweep(&owns, scope).await;
                continue;
            }
            _ = sweep.tick(), if room && !writer.sweeping() => {
                more = writer.sweep(&owns, scope).await;
                continue;
            }
            env = rx.recv(), if room => match env {
                Some(env) => env,
                None => break,
            },
        };
        let mut batch = Vec::with_capacity(batch_max.min(4096));
        batch.push(first);
        fill(&mut rx, &mut batch, batch_max);
        if settings.linger_ms > 0 && batch.len() < batch_max {
            tokio::time::sleep(Duration::from_millis(settings.linger_ms)).await;
            fill(&mut rx, &mut batch, batch_max);
        }
        // (min, max): a batch never holds more than batch_max, so it waits for no more.
        let sizes = (settings.overlap_min.min(batch_max), batch_max);
        if writer.in_flight() && batch.len() < sizes.0 {
            let wait = Duration::from_micros(settings.overlap_wait_us);
            gather(&mut writer, &mut rx, &mut batch, sizes, wait).await;
        }
        metrics::histogram!("booking_batch_size").record(batch.len() as f64);
        writer.submit(batch, ()).await;
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
        writer.submit(rest, ()).await;
    }
    writer.drain().await;
}

/// Adds requests to `batch` (at most `max`; `min` ≤ `max`) until it holds `min`, `wait` has
/// passed or no transaction is in flight any more (settling the one that commits meanwhile).
/// In a sale, the answers of the transaction that committed last bring their clients' next
/// requests back a moment later: a batch started at once would hold them back for a whole
/// commit with only the first few.
async fn gather(
    writer: &mut Writer<()>,
    rx: &mut mpsc::Receiver<Envelope>,
    batch: &mut Vec<Envelope>,
    (min, max): (usize, usize),
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    while batch.len() < min && writer.in_flight() {
        tokio::select! {
            biased;
            () = writer.wait_front() => {
                writer.settle().await;
            }
            env = rx.recv() => match env {
                Some(env) => {
                    batch.push(env);
                    fill(rx, batch, max);
                }
                None => return,
            },
            () = tokio::time::sleep_until(deadline) => return,
        }
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

/// The in-process worker: one writer task per shard until `shutdown`.
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
    let dry_run = state.settings().booking.dry_run;
    if dry_run {
        tracing::warn!("booking.dry_run: requests are answered without being decided or stored");
    }
    for (shard, rx) in receivers.into_iter().enumerate() {
        if dry_run {
            tasks.spawn(run_dry(rx, shutdown.clone()));
        } else {
            let writer = Writer::new(state.clone(), "work-bookings")?;
            tasks.spawn(run_shard(
                writer,
                state.clone(),
                (shard, rx),
                shutdown.clone(),
            ));
        }
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

//! Outcome fan-out for `Prefer: wait` when the decision happens away from the handler (Kafka
//! transport).
//!
//! In-process: the worker publishes every outcome to the waiters registered in this process.
//! Across processes (`serve` and `work-bookings` on different machines) a waiter also polls
//! PostgreSQL for its request (a primary-key lookup, backing off from 20 ms to 250 ms), so no
//! extra broker is needed and nothing is missed if a publication is. With the in-process queue
//! the handler gets the outcome directly from the worker and does not use this.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use uuid::Uuid;

use crate::bookings::domain::Outcome;

/// Waiters of this process.
#[derive(Default)]
pub struct OutcomeHub {
    waiters: Mutex<HashMap<Uuid, Vec<oneshot::Sender<Outcome>>>>,
}

impl OutcomeHub {
    /// Registers interest in `request`.
    pub fn subscribe(&self, request: Uuid) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiters.lock() {
            w.entry(request).or_default().push(tx);
        }
        rx
    }

    /// Drops waiters that gave up.
    pub fn forget(&self, request: Uuid) {
        if let Ok(mut w) = self.waiters.lock()
            && let Some(list) = w.get_mut(&request)
        {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                w.remove(&request);
            }
        }
    }

    /// Hands outcomes to their waiters in this process.
    pub async fn publish(&self, outcomes: &[Outcome]) {
        let Ok(mut w) = self.waiters.lock() else {
            return;
        };
        if w.is_empty() {
            return;
        }
        for o in outcomes {
            for tx in w.remove(&o.request_id).unwrap_or_default() {
                let _ = tx.send(o.clone());
            }
        }
    }
}

/// Waits up to `timeout` for the outcome of `request`: from this process's worker, or by
/// polling PostgreSQL.
pub async fn wait_for(
    state: &crate::state::AppState,
    request: Uuid,
    timeout: Duration,
) -> anyhow::Result<Option<Outcome>> {
    let mut rx = Some(state.outcomes().subscribe(request));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut interval = Duration::from_millis(20);
    let result = loop {
        if let Some(o) = crate::bookings::routes::load_outcome(state, request).await? {
            break Some(o);
        }
        let sleep =
            tokio::time::sleep_until((tokio::time::Instant::now() + interval).min(deadline));
        match rx.as_mut() {
            Some(r) => tokio::select! {
                got = r => match got {
                    Ok(o) => break Some(o),
                    // The hub dropped us (it never does while we wait): fall back to polling.
                    Err(_) => rx = None,
                },
                () = sleep => {}
            },
            None => sleep.await,
        }
        if tokio::time::Instant::now() >= deadline {
            break crate::bookings::routes::load_outcome(state, request).await?;
        }
        interval = (interval * 2).min(Duration::from_millis(250));
    };
    state.outcomes().forget(request);
    Ok(result)
}

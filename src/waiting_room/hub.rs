//! One reader per event per process for the live streams: however many buyers follow a room
//! over Server-Sent Events, this process reads the room's frontier from the store once every
//! `REFRESH` and hands it to all of them (a `watch` channel). A stream reads its own place
//! only when it starts, at on-sale (when the draw fixes it) and when the frontier passes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::state::AppState;
use crate::waiting_room::Rooms;

/// How often a watched room is read.
pub const REFRESH: Duration = Duration::from_millis(500);

/// The room's shared numbers at one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The event's on-sale time.
    pub on_sale_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether its waitlist is open.
    pub waitlist_open: bool,
    /// The frontier.
    pub admitted: u64,
    /// Places taken.
    pub joined: u64,
    /// No seats left.
    pub sold_out: bool,
    /// The frontier ten seconds before.
    pub admitted_then: u64,
}

type Watchers = Mutex<HashMap<i64, watch::Sender<Option<Snapshot>>>>;

/// The per-process readers.
pub struct Hub {
    rooms: Rooms,
    watchers: Arc<Watchers>,
}

fn lock(m: &Watchers) -> std::sync::MutexGuard<'_, HashMap<i64, watch::Sender<Option<Snapshot>>>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hub {
    /// A hub reading `rooms`.
    pub fn new(rooms: Rooms) -> Self {
        Self {
            rooms,
            watchers: Arc::default(),
        }
    }

    /// Streams currently following rooms in this process.
    pub fn followers(&self) -> usize {
        lock(&self.watchers)
            .values()
            .map(watch::Sender::receiver_count)
            .sum()
    }

    /// Follows `event`'s room; the first follower in this process starts its reader, the
    /// last one to leave stops it.
    pub fn subscribe(&self, state: &AppState, event: i64) -> watch::Receiver<Option<Snapshot>> {
        let mut map = lock(&self.watchers);
        if let Some(tx) = map.get(&event) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        map.insert(event, tx.clone());
        let rooms = self.rooms.clone();
        let state = state.clone();
        let watchers = Arc::clone(&self.watchers);
        tokio::spawn(async move {
            loop {
                if tx.receiver_count() == 0 {
                    let mut map = lock(&watchers);
                    // Checked again under the lock: a follower may have just arrived.
                    if tx.receiver_count() == 0 {
                        map.remove(&event);
                        return;
                    }
                }
                let now = chrono::Utc::now().timestamp_millis();
                let read = async {
                    let e = crate::events::service::lookup(&state, event).await?;
                    let f = rooms.place(event, 0, now - 10_000, false).await?;
                    anyhow::Ok((e, f))
                };
                match read.await {
                    Ok((e, f)) => {
                        let snap = Snapshot {
                            on_sale_at: e.on_sale_at,
                            waitlist_open: e.waitlist_open,
                            admitted: f.admitted,
                            joined: f.joined,
                            sold_out: f.sold_out,
                            admitted_then: f.admitted_then,
                        };
                        tx.send_if_modified(|old| {
                            let changed = old.as_ref() != Some(&snap);
                            *old = Some(snap);
                            changed
                        });
                    }
                    Err(e) => {
                        tracing::warn!(event.id = event, error = %e, "waiting room: stream refresh failed")
                    }
                }
                tokio::time::sleep(REFRESH).await;
            }
        });
        rx
    }
}

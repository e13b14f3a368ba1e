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

/// The status streams open on this process, counted per account and per client IP, so that
/// one account (or one address) cannot hold an unbounded number of them.
#[derive(Debug, Default)]
pub struct StreamSlots {
    open: std::sync::Arc<std::sync::Mutex<SlotCounts>>,
}

#[derive(Debug, Default)]
struct SlotCounts {
    by_user: std::collections::HashMap<i64, usize>,
    by_ip: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// One open stream's place in [`StreamSlots`]; given back when dropped (the stream ended).
#[derive(Debug)]
pub struct StreamSlot {
    open: std::sync::Arc<std::sync::Mutex<SlotCounts>>,
    user: i64,
    ip: Option<std::net::IpAddr>,
}

impl StreamSlots {
    /// A slot for a new stream of `user` from `ip`, or `None` when either is at its cap.
    pub fn take(
        &self,
        user: i64,
        ip: Option<std::net::IpAddr>,
        per_user: usize,
        per_ip: usize,
    ) -> Option<StreamSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = open.by_user.get(&user).copied().unwrap_or(0);
        let theirs = ip.map_or(0, |ip| open.by_ip.get(&ip).copied().unwrap_or(0));
        if mine >= per_user || theirs >= per_ip {
            return None;
        }
        *open.by_user.entry(user).or_default() += 1;
        if let Some(ip) = ip {
            *open.by_ip.entry(ip).or_default() += 1;
        }
        Some(StreamSlot {
            open: self.open.clone(),
            user,
            ip,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.by_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.by_user.remove(&self.user);
            }
        }
        if let Some(ip) = self.ip
            && let Some(n) = open.by_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                open.by_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod slot_tests {
    use super::StreamSlots;

    #[test]
    fn slots_are_capped_per_user_and_per_ip_and_given_back() {
        let slots = StreamSlots::default();
        let ip = Some(
            "10.0.0.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        );
        let a = slots.take(1, ip, 2, 3);
        let b = slots.take(1, ip, 2, 3);
        assert!(a.is_some() && b.is_some());
        assert!(slots.take(1, ip, 2, 3).is_none(), "the account's cap");
        let c = slots.take(2, ip, 2, 3);
        assert!(c.is_some());
        assert!(slots.take(3, ip, 2, 3).is_none(), "the address's cap");
        drop(a);
        assert!(
            slots.take(1, ip, 2, 3).is_some(),
            "a closed stream gives its slot back"
        );
    }
}

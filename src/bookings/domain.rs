//! Booking messages, outcomes, and the allocation rule as a pure function.
//!
//! The rule (one for new requests and the waitlist, so fairness needs no special case): an
//! event's waitlist (oldest first) followed by its new requests (in arrival order) form one
//! queue. One pass walks it first-fit: an entry whose seats fit is confirmed (or, with
//! `allowPartial`, takes what is left and keeps its place for the rest); an entry that does not
//! fit stays in line, so a smaller request behind it can still take the remaining seats, but no
//! request ever jumps ahead of one that fits. A new request that does not fit joins the
//! waitlist if it is open and the buyer agreed, else it is rejected. The per-user cap counts
//! confirmed plus waitlisted seats and is checked in the same pass.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Fewest and most seats in one request.
pub const SEATS_RANGE: std::ops::RangeInclusive<i32> = 1..=10;

/// A booking request as queued (the Kafka payload, and the in-process message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingRequest {
    /// Unique request id (UUIDv5 of user + `Idempotency-Key`, or random).
    pub request_id: Uuid,
    /// The buyer.
    pub user_id: i64,
    /// The event (also the partition key).
    pub event_id: i64,
    /// Seats wanted (1–10).
    pub seats: i32,
    /// Take fewer seats than asked if that is all there is.
    pub allow_partial: bool,
    /// Join the waitlist if the seats are not there.
    pub join_waitlist: bool,
    /// The client's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// When the API accepted it.
    pub requested_at: DateTime<Utc>,
}

/// A request's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Queued, not decided yet.
    Pending,
    /// Every seat confirmed.
    Confirmed,
    /// Some seats confirmed; the rest waitlisted (or not available).
    Partial,
    /// Waiting for seats.
    Waitlisted,
    /// Refused (see the reason).
    Rejected,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Partial => "partial",
            Self::Waitlisted => "waitlisted",
            Self::Rejected => "rejected",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "confirmed" => Self::Confirmed,
            "partial" => Self::Partial,
            "waitlisted" => Self::Waitlisted,
            "rejected" => Self::Rejected,
            _ => return None,
        })
    }

    /// The status of a request with these seat counts.
    pub fn of(seats_confirmed: i32, seats_waitlisted: i32, requested: i32) -> Self {
        if seats_confirmed >= requested {
            Self::Confirmed
        } else if seats_confirmed > 0 {
            Self::Partial
        } else if seats_waitlisted > 0 {
            Self::Waitlisted
        } else {
            Self::Rejected
        }
    }
}

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not enough seats and the buyer did not want the waitlist.
    SoldOut,
    /// The buyer would exceed the event's per-user cap.
    PerUserLimit,
    /// The event is cancelled or has started.
    EventClosed,
    /// Not enough seats and the waitlist is closed.
    WaitlistClosed,
    /// The buyer left the waitlist.
    Withdrawn,
}

impl Reason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SoldOut => "sold_out",
            Self::PerUserLimit => "per_user_limit",
            Self::EventClosed => "event_closed",
            Self::WaitlistClosed => "waitlist_closed",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sold_out" => Self::SoldOut,
            "per_user_limit" => Self::PerUserLimit,
            "event_closed" => Self::EventClosed,
            "waitlist_closed" => Self::WaitlistClosed,
            "withdrawn" => Self::Withdrawn,
            _ => return None,
        })
    }

    /// The reason in words (emails, messages).
    pub fn describe(self) -> &'static str {
        match self {
            Self::SoldOut => "the event is sold out",
            Self::PerUserLimit => "it would exceed the event's limit of seats per buyer",
            Self::EventClosed => "the event is no longer taking bookings",
            Self::WaitlistClosed => "there are not enough seats and the waitlist is closed",
            Self::Withdrawn => "you left the waitlist",
        }
    }
}

/// What happened to a request (the API answer, the outcome fan-out, the status endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The request.
    pub request_id: Uuid,
    /// The event.
    pub event_id: i64,
    /// The buyer.
    pub user_id: i64,
    /// State.
    pub status: Status,
    /// Seats asked for.
    pub seats_requested: i32,
    /// Seats confirmed.
    pub seats_confirmed: i32,
    /// Seats waiting.
    pub seats_waitlisted: i32,
    /// The booking created by this decision, if any.
    pub booking_id: Option<i64>,
    /// Cost of the confirmed seats (minor units).
    pub cost: i64,
    /// Place in the waitlist (1 = next), when waiting.
    pub position: Option<i64>,
    /// Why it was rejected.
    pub reason: Option<Reason>,
    /// The request's `allowPartial` (to detect a reused idempotency key).
    pub allow_partial: bool,
    /// The request's `joinWaitlist` (same).
    pub join_waitlist: bool,
}

impl Outcome {
    /// Whether this outcome belongs to a request with these parameters (an idempotency key
    /// reused with another body does not).
    pub fn matches(&self, r: &BookingRequest) -> bool {
        self.event_id == r.event_id
            && self.user_id == r.user_id
            && self.seats_requested == r.seats
            && self.allow_partial == r.allow_partial
            && self.join_waitlist == r.join_waitlist
    }
}

/// The event as the allocator sees it (locked row).
#[derive(Debug, Clone, Copy)]
pub struct EventSeats {
    /// Seats in total.
    pub capacity: i32,
    /// Seats confirmed.
    pub reserved: i32,
    /// Per-user cap.
    pub max_per_user: Option<i32>,
    /// Whether the waitlist takes new entries.
    pub waitlist_open: bool,
    /// Cancelled or started: new requests are rejected.
    pub closed: bool,
}

/// A waitlist entry (already counted against its user's cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitEntry {
    /// Row id (FIFO order).
    pub id: i64,
    /// Its request.
    pub request_id: Uuid,
    /// The buyer.
    pub user_id: i64,
    /// Seats still wanted.
    pub seats: i32,
    /// Take part of it.
    pub allow_partial: bool,
}

/// What to do with a waitlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The entry.
    pub entry: WaitEntry,
    /// Seats confirmed now.
    pub confirmed: i32,
}

/// What to do with a new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// Index in the input.
    pub index: usize,
    /// Seats confirmed.
    pub confirmed: i32,
    /// Seats sent to the waitlist.
    pub waitlisted: i32,
    /// Rejection reason, when nothing was confirmed or waitlisted.
    pub reason: Option<Reason>,
}

/// The decisions of one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Waitlist entries that got seats (fully or partly), FIFO order.
    pub served: Vec<Served>,
    /// One decision per new request, input order.
    pub decided: Vec<Decided>,
    /// Seats confirmed in total by this pass.
    pub seats_confirmed: i32,
}

/// One allocation pass. `held` is each user's confirmed + waitlisted seats on the event before
/// the pass (for the cap; waitlist entries are already included).
pub fn allocate(
    event: EventSeats,
    waitlist: &[WaitEntry],
    requests: &[BookingRequest],
    held: &HashMap<i64, i32>,
) -> Plan {
    let mut plan = Plan::default();
    let mut free = (event.capacity - event.reserved).max(0);
    for entry in waitlist {
        if free == 0 {
            break;
        }
        let take = if entry.seats <= free {
            entry.seats
        } else if entry.allow_partial {
            free
        } else {
            continue;
        };
        free -= take;
        plan.seats_confirmed += take;
        plan.served.push(Served {
            entry: entry.clone(),
            confirmed: take,
        });
    }
    let mut held = held.clone();
    for (index, r) in requests.iter().enumerate() {
        let decided = |confirmed, waitlisted, reason| Decided {
            index,
            confirmed,
            waitlisted,
            reason,
        };
        if event.closed {
            plan.decided.push(decided(0, 0, Some(Reason::EventClosed)));
            continue;
        }
        let mine = held.get(&r.user_id).copied().unwrap_or(0);
        if event.max_per_user.is_some_and(|cap| mine + r.seats > cap) {
            plan.decided.push(decided(0, 0, Some(Reason::PerUserLimit)));
            continue;
        }
        let can_wait = event.waitlist_open && r.join_waitlist;
        let (confirmed, waitlisted, reason) = if r.seats <= free {
            (r.seats, 0, None)
        } else if r.allow_partial && free > 0 {
            let rest = r.seats - free;
            (free, if can_wait { rest } else { 0 }, None)
        } else if can_wait {
            (0, r.seats, None)
        } else if r.join_waitlist {
            (0, 0, Some(Reason::WaitlistClosed))
        } else {
            (0, 0, Some(Reason::SoldOut))
        };
        free -= confirmed;
        plan.seats_confirmed += confirmed;
        *held.entry(r.user_id).or_default() += confirmed + waitlisted;
        plan.decided.push(decided(confirmed, waitlisted, reason));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(user: i64, seats: i32) -> BookingRequest {
        BookingRequest {
            request_id: Uuid::new_v4(),
            user_id: user,
            event_id: 1,
            seats,
            allow_partial: false,
            join_waitlist: true,
            idempotency_key: None,
            requested_at: Utc::now(),
        }
    }

    fn wait(id: i64, user: i64, seats: i32, partial: bool) -> WaitEntry {
        WaitEntry {
            id,
            request_id: Uuid::new_v4(),
            user_id: user,
            seats,
            allow_partial: partial,
        }
    }

    fn ev(capacity: i32, reserved: i32) -> EventSeats {
        EventSeats {
            capacity,
            reserved,
            max_per_user: None,
            waitlist_open: true,
            closed: false,
        }
    }

    #[test]
    fn confirms_in_arrival_order_and_waitlists_the_rest() {
        let plan = allocate(
            ev(5, 0),
            &[],
            &[req(1, 2), req(2, 2), req(3, 2)],
            &HashMap::new(),
        );
        let got: Vec<_> = plan
            .decided
            .iter()
            .map(|d| (d.confirmed, d.waitlisted))
            .collect();
        assert_eq!(got, [(2, 0), (2, 0), (0, 2)]);
        assert_eq!(plan.seats_confirmed, 4);
    }

    #[test]
    fn first_fit_lets_a_smaller_request_take_what_a_larger_one_cannot() {
        let plan = allocate(
            ev(3, 0),
            &[],
            &[req(1, 2), req(2, 3), req(3, 1)],
            &HashMap::new(),
        );
        let got: Vec<_> = plan.decided.iter().map(|d| d.confirmed).collect();
        assert_eq!(got, [2, 0, 1]);
        assert_eq!(plan.decided[1].waitlisted, 3);
    }

    #[test]
    fn the_waitlist_is_served_before_new_requests() {
        let waitlist = [
            wait(1, 7, 2, false),
            wait(2, 8, 4, false),
            wait(3, 9, 1, false),
        ];
        let plan = allocate(ev(10, 7), &waitlist, &[req(1, 1)], &HashMap::new());
        // 3 free: entry 1 (2) fits, entry 2 (4) does not and keeps its place, entry 3 (1) fits.
        let served: Vec<_> = plan
            .served
            .iter()
            .map(|s| (s.entry.id, s.confirmed))
            .collect();
        assert_eq!(served, [(1, 2), (3, 1)]);
        assert_eq!(
            plan.decided[0].confirmed, 0,
            "the new request waits behind the waitlist"
        );
        assert_eq!(plan.decided[0].waitlisted, 1);
    }

    #[test]
    fn partial_takes_what_is_left_and_keeps_its_place() {
        let plan = allocate(ev(10, 7), &[wait(1, 7, 5, true)], &[], &HashMap::new());
        assert_eq!(plan.served[0].confirmed, 3);
        let mut r = req(1, 4);
        r.allow_partial = true;
        let plan = allocate(ev(10, 7), &[], &[r], &HashMap::new());
        assert_eq!(
            (plan.decided[0].confirmed, plan.decided[0].waitlisted),
            (3, 1)
        );
    }

    #[test]
    fn rejections_carry_the_right_reason() {
        let mut closed = ev(10, 0);
        closed.closed = true;
        assert_eq!(
            allocate(closed, &[], &[req(1, 1)], &HashMap::new()).decided[0].reason,
            Some(Reason::EventClosed)
        );

        let mut no_wait = ev(2, 2);
        no_wait.waitlist_open = false;
        assert_eq!(
            allocate(no_wait, &[], &[req(1, 1)], &HashMap::new()).decided[0].reason,
            Some(Reason::WaitlistClosed)
        );

        let mut opt_out = req(1, 1);
        opt_out.join_waitlist = false;
        assert_eq!(
            allocate(ev(2, 2), &[], &[opt_out], &HashMap::new()).decided[0].reason,
            Some(Reason::SoldOut)
        );
    }

    #[test]
    fn the_per_user_cap_counts_confirmed_waitlisted_and_this_batch() {
        let mut capped = ev(100, 0);
        capped.max_per_user = Some(4);
        let held = HashMap::from([(1, 2)]);
        let plan = allocate(
            capped,
            &[],
            &[req(1, 2), req(1, 1), req(2, 4), req(2, 1)],
            &held,
        );
        let got: Vec<_> = plan
            .decided
            .iter()
            .map(|d| (d.confirmed, d.reason))
            .collect();
        assert_eq!(
            got,
            [
                (2, None),
                (0, Some(Reason::PerUserLimit)),
                (4, None),
                (0, Some(Reason::PerUserLimit))
            ]
        );
    }

    #[test]
    fn never_confirms_more_than_is_free() {
        // A small exhaustive-ish sweep: random mixes never exceed capacity.
        let mut seed: u64 = 42;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i32
        };
        for _ in 0..500 {
            let capacity = 1 + next().rem_euclid(50);
            let reserved = next().rem_euclid(capacity + 1);
            let waitlist: Vec<_> = (0..next().rem_euclid(5))
                .map(|i| wait(i64::from(i), 9, 1 + next().rem_euclid(10), next() % 2 == 0))
                .collect();
            let requests: Vec<_> = (0..next().rem_euclid(20))
                .map(|_| {
                    let mut r = req(i64::from(next().rem_euclid(5)), 1 + next().rem_euclid(10));
                    r.allow_partial = next() % 2 == 0;
                    r
                })
                .collect();
            let plan = allocate(
                ev(capacity, reserved),
                &waitlist,
                &requests,
                &HashMap::new(),
            );
            let total: i32 = plan.served.iter().map(|s| s.confirmed).sum::<i32>()
                + plan.decided.iter().map(|d| d.confirmed).sum::<i32>();
            assert_eq!(total, plan.seats_confirmed);
            assert!(reserved + total <= capacity);
            for (d, r) in plan.decided.iter().zip(&requests) {
                assert!(d.confirmed + d.waitlisted <= r.seats);
            }
        }
    }
}

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
    /// The price per seat the buyer was shown when they asked (the API's view of the event).
    /// The buyer never pays more (DESIGN invariant 6); absent in messages from older versions,
    /// which pay the price at decision time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_price: Option<i64>,
}

impl BookingRequest {
    /// Why this message can never be decided (a queue message the API did not write, or one
    /// written by a broken client of the queue): checked before any transaction, so one bad
    /// message cannot fail the batch it travels in.
    pub fn defect(&self) -> Option<&'static str> {
        if !SEATS_RANGE.contains(&self.seats) {
            Some("seats out of range")
        } else if self.event_id <= 0 || self.user_id <= 0 {
            Some("event or user id out of range")
        } else if self
            .idempotency_key
            .as_deref()
            .is_some_and(|k| !(1..=255).contains(&k.len()))
        {
            Some("idempotency key longer than 255 characters")
        } else if self.quoted_price.is_some_and(|p| p < 0) {
            Some("negative quoted price")
        } else {
            None
        }
    }
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
    /// It got seats, and every booking it made has since been cancelled (by the buyer, or with
    /// the event). Derived when read, never stored on the request row.
    Cancelled,
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
            Self::Cancelled => "cancelled",
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
            "cancelled" => Self::Cancelled,
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
    /// The buyer's account no longer exists (a token outliving its account). Never stored.
    UnknownUser,
    /// Asked before the event's on-sale time.
    NotOnSale,
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
            Self::UnknownUser => "unknown_user",
            Self::NotOnSale => "not_on_sale",
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
            "not_on_sale" => Self::NotOnSale,
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
            Self::UnknownUser => "your account no longer exists",
            Self::NotOnSale => "the event is not on sale yet",
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
    /// An outcome with nothing confirmed or waitlisted (pending, or rejected before a seat was
    /// looked at).
    pub fn undecided(r: &BookingRequest, status: Status, reason: Option<Reason>) -> Self {
        Self {
            request_id: r.request_id,
            event_id: r.event_id,
            user_id: r.user_id,
            status,
            seats_requested: r.seats,
            seats_confirmed: 0,
            seats_waitlisted: 0,
            booking_id: None,
            cost: 0,
            position: None,
            reason,
            allow_partial: r.allow_partial,
            join_waitlist: r.join_waitlist,
        }
    }

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
    /// Cancelled or started: new requests are rejected and the waitlist is not served
    /// (DESIGN invariant 7).
    pub closed: bool,
    /// Price per seat now.
    pub price: i64,
    /// When bookings open: a request asked before it is rejected `not_on_sale` (by when it was
    /// asked, not when it is decided, so nothing queued early slips in).
    pub on_sale_at: Option<DateTime<Utc>>,
}

impl EventSeats {
    /// What `seats` cost for a buyer quoted `quoted` (None: the price now): the lower of the
    /// two prices (DESIGN invariant 6).
    pub fn cost(&self, seats: i32, quoted: Option<i64>) -> i64 {
        i64::from(seats) * quoted.map_or(self.price, |q| q.min(self.price))
    }
}

/// A waitlist entry (already counted against its user's cap). Entries are in FIFO order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitEntry {
    /// Its request.
    pub request_id: Uuid,
    /// The buyer.
    pub user_id: i64,
    /// Seats still wanted.
    pub seats: i32,
    /// Take part of it.
    pub allow_partial: bool,
    /// Price per seat quoted when the buyer asked.
    pub price_quoted: i64,
}

/// What to do with a waitlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The entry.
    pub entry: WaitEntry,
    /// Seats confirmed now.
    pub confirmed: i32,
    /// What they cost.
    pub cost: i64,
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
    /// What the confirmed seats cost.
    pub cost: i64,
    /// 1-based place in the waitlist after this pass, when waitlisted.
    pub position: Option<i64>,
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

/// One allocation pass. `waitlist` is the event's waitlist in FIFO order (positions count from
/// its start, so pass all of it when new requests may be waitlisted). `held` is each user's
/// confirmed + waitlisted seats on the event before the pass (for the cap; waitlist entries are
/// already included).
pub fn allocate(
    event: EventSeats,
    waitlist: &[WaitEntry],
    requests: &[BookingRequest],
    held: &HashMap<i64, i32>,
) -> Plan {
    let mut plan = Plan::default();
    let mut free = (event.capacity - event.reserved).max(0);
    let mut still_waiting = waitlist.len() as i64;
    for entry in waitlist {
        if free == 0 || event.closed {
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
        if take == entry.seats {
            still_waiting -= 1;
        }
        plan.served.push(Served {
            entry: entry.clone(),
            confirmed: take,
            cost: event.cost(take, Some(entry.price_quoted)),
        });
    }
    let mut held = held.clone();
    for (index, r) in requests.iter().enumerate() {
        let decided = |confirmed, waitlisted, reason| Decided {
            index,
            confirmed,
            waitlisted,
            reason,
            cost: 0,
            position: None,
        };
        if event.closed {
            plan.decided.push(decided(0, 0, Some(Reason::EventClosed)));
            continue;
        }
        if event.on_sale_at.is_some_and(|t| r.requested_at < t) {
            plan.decided.push(decided(0, 0, Some(Reason::NotOnSale)));
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
        let position = (waitlisted > 0).then(|| {
            still_waiting += 1;
            still_waiting
        });
        plan.decided.push(Decided {
            cost: event.cost(confirmed, r.quoted_price),
            position,
            ..decided(confirmed, waitlisted, reason)
        });
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
            quoted_price: None,
        }
    }

    fn wait(id: i64, user: i64, seats: i32, partial: bool) -> WaitEntry {
        WaitEntry {
            request_id: Uuid::from_u128(id as u128),
            user_id: user,
            seats,
            allow_partial: partial,
            price_quoted: 100,
        }
    }

    fn ev(capacity: i32, reserved: i32) -> EventSeats {
        EventSeats {
            capacity,
            reserved,
            max_per_user: None,
            waitlist_open: true,
            closed: false,
            price: 100,
            on_sale_at: None,
        }
    }

    #[test]
    fn a_request_asked_before_the_on_sale_time_is_rejected_even_if_decided_after() {
        let opens = Utc::now();
        let mut event = ev(10, 0);
        event.on_sale_at = Some(opens);
        let mut early = req(1, 2);
        early.requested_at = opens - chrono::Duration::milliseconds(1);
        let mut on_time = req(2, 2);
        on_time.requested_at = opens;

        let plan = allocate(event, &[], &[early, on_time], &HashMap::new());

        assert_eq!(plan.decided[0].reason, Some(Reason::NotOnSale));
        assert_eq!(plan.decided[0].confirmed, 0);
        assert_eq!(plan.decided[1].confirmed, 2);
        assert_eq!(plan.seats_confirmed, 2);
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
            .map(|s| (s.entry.request_id.as_u128(), s.confirmed))
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

    #[test]
    fn waitlist_positions_count_the_entries_still_waiting_once() {
        // Three waiting; one seat frees: the first entry (1 seat) is served, two stay. New
        // requests that wait queue behind them: places 3 and 4.
        let waitlist = [
            wait(1, 7, 1, false),
            wait(2, 8, 5, false),
            wait(3, 9, 5, false),
        ];
        let plan = allocate(
            ev(10, 9),
            &waitlist,
            &[req(1, 2), req(2, 3)],
            &HashMap::new(),
        );
        assert_eq!(plan.served.len(), 1);
        let got: Vec<_> = plan.decided.iter().map(|d| d.position).collect();
        assert_eq!(got, [Some(3), Some(4)]);
        // A partly served entry keeps its place.
        let plan = allocate(
            ev(10, 9),
            &[wait(1, 7, 3, true)],
            &[req(1, 1)],
            &HashMap::new(),
        );
        assert_eq!(plan.served[0].confirmed, 1);
        assert_eq!(plan.decided[0].position, Some(2));
    }

    #[test]
    fn a_closed_event_serves_no_waitlist() {
        let mut started = ev(10, 0);
        started.closed = true;
        let plan = allocate(started, &[wait(1, 7, 2, false)], &[], &HashMap::new());
        assert!(plan.served.is_empty());
        assert_eq!(plan.seats_confirmed, 0);
    }

    #[test]
    fn buyers_pay_the_lower_of_the_quoted_and_the_current_price() {
        let mut event = ev(10, 0);
        event.price = 500;
        // Quoted 100 (the waitlist entry's quote): pays 100 although the price rose to 500.
        let plan = allocate(event, &[wait(1, 7, 2, false)], &[], &HashMap::new());
        assert_eq!(plan.served[0].cost, 200);
        // Quoted 800, price dropped to 500: pays 500. No quote: the price now.
        let mut quoted = req(1, 2);
        quoted.quoted_price = Some(800);
        let plan = allocate(event, &[], &[quoted, req(2, 1)], &HashMap::new());
        let got: Vec<_> = plan.decided.iter().map(|d| d.cost).collect();
        assert_eq!(got, [1000, 500]);
    }

    #[test]
    fn defects_are_found_before_any_transaction() {
        assert_eq!(req(1, 2).defect(), None);
        assert!(req(1, 11).defect().is_some());
        assert!(req(1, 0).defect().is_some());
        let mut long_key = req(1, 1);
        long_key.idempotency_key = Some("k".repeat(256));
        assert!(long_key.defect().is_some());
        let mut bad_user = req(0, 1);
        bad_user.user_id = -3;
        assert!(bad_user.defect().is_some());
    }
}

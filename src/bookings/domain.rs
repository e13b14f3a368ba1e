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

use std::collections::{HashMap, HashSet};

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
    /// The ticket type asked for (`None`: the event's default type; the quoted price is the
    /// default type's). Absent in messages from older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_type_id: Option<i64>,
    /// The waiting-room admission it was made with (events sold through their room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<AdmissionUse>,
}

/// A waiting-room admission as a booking request uses it: each admits one request that takes
/// seats or a waitlist place (a rejected one leaves it unused), decided by the event's writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionUse {
    /// The buyer's rank in the room (unique per event).
    pub rank: u64,
    /// Issued while the room was sold out: it lets its holder join the waitlist, never take
    /// seats that came back (those go to the buyers the room admits next, in order).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waitlist_only: bool,
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
        } else if self.ticket_type_id.is_some_and(|t| t <= 0) {
            Some("ticket type id out of range")
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
    /// Its seats are held until `expiresAt` while the buyer pays (an event in `hold` checkout).
    /// Derived from its booking, like the three below.
    Held,
    /// Its hold ran out unpaid; the seats went back on sale.
    Expired,
    /// Paid, cancelled, and the refund is on its way.
    RefundPending,
    /// Paid, cancelled and refunded.
    Refunded,
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
            Self::Held => "held",
            Self::Expired => "expired",
            Self::RefundPending => "refund_pending",
            Self::Refunded => "refunded",
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
            "held" => Self::Held,
            "expired" => Self::Expired,
            "refund_pending" => Self::RefundPending,
            "refunded" => Self::Refunded,
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
    /// Asked before the event's on-sale time (or the ticket type's sales start).
    NotOnSale,
    /// The ticket type does not exist for this event, or is hidden.
    TicketTypeUnavailable,
    /// The ticket type's sales have ended.
    SalesEnded,
    /// The waiting-room admission was used by an earlier request.
    AdmissionUsed,
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
            Self::TicketTypeUnavailable => "ticket_type_unavailable",
            Self::SalesEnded => "sales_ended",
            Self::AdmissionUsed => "admission_used",
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
            "ticket_type_unavailable" => Self::TicketTypeUnavailable,
            "sales_ended" => Self::SalesEnded,
            "admission_used" => Self::AdmissionUsed,
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
            Self::NotOnSale => "the event (or this ticket type) is not on sale yet",
            Self::TicketTypeUnavailable => "this ticket type is not sold for this event",
            Self::SalesEnded => "sales of this ticket type have ended",
            Self::AdmissionUsed => {
                "your waiting-room admission was used already: join the queue again"
            }
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
    /// The ticket type it bought (resolved: the default type when the request named none).
    #[serde(default)]
    pub ticket_type_id: Option<i64>,
    /// Until when its seats are held (status `held`).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
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
            ticket_type_id: r.ticket_type_id,
            expires_at: None,
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
            && r.ticket_type_id
                .is_none_or(|t| self.ticket_type_id.is_none_or(|mine| mine == t))
    }
}

/// The event as the allocator sees it.
#[derive(Debug, Clone, Copy)]
pub struct EventSeats {
    /// Seats in total.
    pub capacity: i32,
    /// Seats held or confirmed.
    pub reserved: i32,
    /// Per-user cap.
    pub max_per_user: Option<i32>,
    /// Whether the waitlist takes new entries.
    pub waitlist_open: bool,
    /// Cancelled or started: new requests are rejected and the waitlist is not served
    /// (DESIGN invariant 7).
    pub closed: bool,
    /// Price per seat now (the default type's price).
    pub price: i64,
    /// When bookings open: a request asked before it is rejected `not_on_sale` (by when it was
    /// asked, not when it is decided, so nothing queued early slips in).
    pub on_sale_at: Option<DateTime<Utc>>,
}

/// A ticket type as the allocator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketType {
    /// Id.
    pub id: i64,
    /// Price per seat now.
    pub price: i64,
    /// Most seats of this type (held + confirmed); `None`: only the event's capacity.
    pub quota: Option<i32>,
    /// Seats of this type held or confirmed.
    pub sold: i32,
    /// Per-user cap for this type (the event's cap applies too).
    pub max_per_user: Option<i32>,
    /// Sales open at (by when a request was asked).
    pub sales_start: Option<DateTime<Utc>>,
    /// Sales close at.
    pub sales_end: Option<DateTime<Utc>>,
    /// Not sold (hidden by its host).
    pub hidden: bool,
    /// The type a request without `ticketTypeId` buys.
    pub is_default: bool,
}

impl TicketType {
    /// Seats of this type still free under its quota.
    fn left(&self) -> i32 {
        self.quota.map_or(i32::MAX, |q| (q - self.sold).max(0))
    }
}

/// Seats each buyer already has on the event (held, confirmed or waitlisted), for the caps:
/// in total and per ticket type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Per user.
    pub by_user: HashMap<i64, i32>,
    /// Per (user, ticket type).
    pub by_type: HashMap<(i64, i64), i32>,
    /// Waiting-room admissions (ranks) already used on the event.
    pub admissions_used: HashSet<u64>,
}

impl Holdings {
    fn add(&mut self, user: i64, ticket_type: Option<i64>, seats: i32) {
        *self.by_user.entry(user).or_default() += seats;
        if let Some(t) = ticket_type {
            *self.by_type.entry((user, t)).or_default() += seats;
        }
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
    /// The ticket type wanted (`None`: the default type).
    pub ticket_type_id: Option<i64>,
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
    /// The ticket type they are (resolved).
    pub ticket_type_id: Option<i64>,
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
    /// The ticket type (resolved: the default when the request named none; `None` when the
    /// event has no types loaded or the type asked for does not exist).
    pub ticket_type_id: Option<i64>,
    /// The price per seat it was decided at (a waitlisted request's quote).
    pub unit_price: i64,
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
    /// Seats taken per ticket type by this pass.
    pub type_seats: Vec<(i64, i32)>,
}

impl Plan {
    fn take(&mut self, ticket_type: Option<i64>, seats: i32) {
        self.seats_confirmed += seats;
        if let Some(t) = ticket_type {
            match self.type_seats.iter_mut().find(|(id, _)| *id == t) {
                Some((_, n)) => *n += seats,
                None => self.type_seats.push((t, seats)),
            }
        }
    }
}

/// The ticket types of one pass, with the seats each has left as the pass takes them.
struct Catalogue<'a> {
    types: &'a [TicketType],
    left: Vec<i32>,
}

impl<'a> Catalogue<'a> {
    fn new(types: &'a [TicketType]) -> Self {
        Self {
            types,
            left: types.iter().map(TicketType::left).collect(),
        }
    }

    /// The index of the type `wanted` names (`None`: the default type). `Err` when the event
    /// has types and none matches (or it is hidden); `Ok(None)` when the event has none loaded
    /// (the event's price and capacity alone apply).
    fn resolve(&self, wanted: Option<i64>) -> Result<Option<usize>, Reason> {
        if self.types.is_empty() {
            return match wanted {
                None => Ok(None),
                Some(_) => Err(Reason::TicketTypeUnavailable),
            };
        }
        self.types
            .iter()
            .position(|t| wanted.map_or(t.is_default, |w| t.id == w) && !t.hidden)
            .map(Some)
            .ok_or(Reason::TicketTypeUnavailable)
    }

    fn free(&self, ix: Option<usize>, event_free: i32) -> i32 {
        ix.map_or(event_free, |i| event_free.min(self.left[i]))
    }

    fn id(&self, ix: Option<usize>) -> Option<i64> {
        ix.map(|i| self.types[i].id)
    }

    fn price(&self, ix: Option<usize>, event: &EventSeats) -> i64 {
        ix.map_or(event.price, |i| self.types[i].price)
    }
}

/// One allocation pass. `waitlist` is the event's waitlist in FIFO order (positions count from
/// its start, so pass all of it when new requests may be waitlisted). `types` are the event's
/// ticket types (empty: the event's price and capacity alone). `held` is each user's seats on
/// the event before the pass (for the caps; waitlist entries are already included).
pub fn allocate(
    event: EventSeats,
    types: &[TicketType],
    waitlist: &[WaitEntry],
    requests: &[BookingRequest],
    held: &Holdings,
) -> Plan {
    let mut plan = Plan::default();
    let mut free = (event.capacity - event.reserved).max(0);
    let mut catalogue = Catalogue::new(types);
    let mut still_waiting = waitlist.len() as i64;
    for entry in waitlist {
        if free == 0 || event.closed {
            break;
        }
        // An entry whose type went away (hidden) keeps its place until its buyer leaves.
        let Ok(ix) = catalogue.resolve(entry.ticket_type_id) else {
            continue;
        };
        let room = catalogue.free(ix, free);
        let take = if entry.seats <= room {
            entry.seats
        } else if entry.allow_partial && room > 0 {
            room
        } else {
            continue;
        };
        free -= take;
        if let Some(i) = ix {
            catalogue.left[i] -= take;
        }
        let ticket_type_id = catalogue.id(ix);
        plan.take(ticket_type_id, take);
        if take == entry.seats {
            still_waiting -= 1;
        }
        let price = catalogue.price(ix, &event);
        plan.served.push(Served {
            entry: entry.clone(),
            confirmed: take,
            cost: i64::from(take) * entry.price_quoted.min(price),
            ticket_type_id,
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
            ticket_type_id: None,
            unit_price: 0,
        };
        if event.closed {
            plan.decided.push(decided(0, 0, Some(Reason::EventClosed)));
            continue;
        }
        if event.on_sale_at.is_some_and(|t| r.requested_at < t) {
            plan.decided.push(decided(0, 0, Some(Reason::NotOnSale)));
            continue;
        }
        let ix = match catalogue.resolve(r.ticket_type_id) {
            Ok(ix) => ix,
            Err(reason) => {
                plan.decided.push(decided(0, 0, Some(reason)));
                continue;
            }
        };
        if r.admission
            .is_some_and(|a| held.admissions_used.contains(&a.rank))
        {
            plan.decided
                .push(decided(0, 0, Some(Reason::AdmissionUsed)));
            continue;
        }
        let ticket_type_id = catalogue.id(ix);
        let decided = |confirmed, waitlisted, reason| Decided {
            ticket_type_id,
            ..decided(confirmed, waitlisted, reason)
        };
        if let Some(t) = ix.map(|i| &types[i]) {
            if t.sales_start.is_some_and(|s| r.requested_at < s) {
                plan.decided.push(decided(0, 0, Some(Reason::NotOnSale)));
                continue;
            }
            if t.sales_end.is_some_and(|e| r.requested_at >= e) {
                plan.decided.push(decided(0, 0, Some(Reason::SalesEnded)));
                continue;
            }
            let mine = ticket_type_id
                .and_then(|id| held.by_type.get(&(r.user_id, id)).copied())
                .unwrap_or(0);
            if t.max_per_user.is_some_and(|cap| mine + r.seats > cap) {
                plan.decided.push(decided(0, 0, Some(Reason::PerUserLimit)));
                continue;
            }
        }
        let mine = held.by_user.get(&r.user_id).copied().unwrap_or(0);
        if event.max_per_user.is_some_and(|cap| mine + r.seats > cap) {
            plan.decided.push(decided(0, 0, Some(Reason::PerUserLimit)));
            continue;
        }
        // A sold-out admission waits in line: seats that came back are for the buyers the
        // room admits next, in their order.
        let room = if r.admission.is_some_and(|a| a.waitlist_only) {
            0
        } else {
            catalogue.free(ix, free)
        };
        let can_wait = event.waitlist_open && r.join_waitlist;
        let (confirmed, waitlisted, reason) = if r.seats <= room {
            (r.seats, 0, None)
        } else if r.allow_partial && room > 0 {
            let rest = r.seats - room;
            (room, if can_wait { rest } else { 0 }, None)
        } else if can_wait {
            (0, r.seats, None)
        } else if r.join_waitlist {
            (0, 0, Some(Reason::WaitlistClosed))
        } else {
            (0, 0, Some(Reason::SoldOut))
        };
        free -= confirmed;
        if let Some(i) = ix {
            catalogue.left[i] -= confirmed;
        }
        plan.take(ticket_type_id, confirmed);
        held.add(r.user_id, ticket_type_id, confirmed + waitlisted);
        if let Some(a) = r.admission
            && confirmed + waitlisted > 0
        {
            held.admissions_used.insert(a.rank);
        }
        let position = (waitlisted > 0).then(|| {
            still_waiting += 1;
            still_waiting
        });
        // The quote holds for the default type (the price the API showed); another type is
        // sold at its price now.
        let price = catalogue.price(ix, &event);
        let unit_price = match (ix.map(|i| types[i].is_default), r.quoted_price) {
            (None | Some(true), Some(q)) => q.min(price),
            _ => price,
        };
        plan.decided.push(Decided {
            cost: i64::from(confirmed) * unit_price,
            position,
            unit_price,
            ..decided(confirmed, waitlisted, reason)
        });
    }
    plan
}

/// The state of a booking (`bookings.status`). Only the event's writer moves it
/// (`engine_transition` checks each move from the state it was decided on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookingStatus {
    /// Seats held while the buyer pays (`expires_at` set).
    Held,
    /// Seats kept (paid, or nothing to pay).
    Confirmed,
    /// A hold that ran out unpaid: its seats went back on sale.
    Expired,
    /// Cancelled with nothing to refund.
    Cancelled,
    /// Cancelled (or paid too late) with a refund under way.
    RefundPending,
    /// Cancelled and refunded.
    Refunded,
}

impl BookingStatus {
    /// Every state.
    pub const ALL: [Self; 6] = [
        Self::Held,
        Self::Confirmed,
        Self::Expired,
        Self::Cancelled,
        Self::RefundPending,
        Self::Refunded,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::RefundPending => "refund_pending",
            Self::Refunded => "refunded",
        }
    }

    /// The state stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the booking holds its seats (they count in `reserved_seats`).
    pub fn holds_seats(self) -> bool {
        matches!(self, Self::Held | Self::Confirmed)
    }
}

/// What a booking of `cost` starts as: `held` while the buyer pays in an event with `hold`
/// checkout, else (instant checkout, or nothing to pay) `confirmed`.
pub fn booking_status(hold: bool, cost: i64) -> BookingStatus {
    if hold && cost > 0 {
        BookingStatus::Held
    } else {
        BookingStatus::Confirmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(
        event: EventSeats,
        waitlist: &[WaitEntry],
        requests: &[BookingRequest],
        held: &HashMap<i64, i32>,
    ) -> Plan {
        let held = Holdings {
            by_user: held.clone(),
            ..Holdings::default()
        };
        allocate(event, &[], waitlist, requests, &held)
    }

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
            ticket_type_id: None,
            admission: None,
        }
    }

    fn wait(id: i64, user: i64, seats: i32, partial: bool) -> WaitEntry {
        WaitEntry {
            request_id: Uuid::from_u128(id as u128),
            user_id: user,
            seats,
            allow_partial: partial,
            price_quoted: 100,
            ticket_type_id: None,
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
    fn an_admission_books_once_and_a_sold_out_one_only_joins_the_waitlist() {
        let admitted = |user, rank, waitlist_only| BookingRequest {
            admission: Some(AdmissionUse {
                rank,
                waitlist_only,
            }),
            ..req(user, 2)
        };
        // Two requests with one admission in one pass: the second is refused.
        let plan = alloc(
            ev(10, 0),
            &[],
            &[admitted(1, 7, false), admitted(1, 7, false)],
            &HashMap::new(),
        );
        assert_eq!(plan.decided[0].confirmed, 2);
        assert_eq!(plan.decided[1].reason, Some(Reason::AdmissionUsed));
        assert_eq!(plan.decided[1].confirmed + plan.decided[1].waitlisted, 0);
        // Used before (stored): refused.
        let held = Holdings {
            admissions_used: [7].into(),
            ..Holdings::default()
        };
        let plan = allocate(ev(10, 0), &[], &[], &[admitted(2, 7, false)], &held);
        assert_eq!(plan.decided[0].reason, Some(Reason::AdmissionUsed));
        // A rejected request leaves its admission unused: the retry may book.
        let mut closed_waitlist = ev(2, 2);
        closed_waitlist.waitlist_open = false;
        let plan = alloc(
            closed_waitlist,
            &[],
            &[admitted(3, 9, false)],
            &HashMap::new(),
        );
        assert_eq!(plan.decided[0].reason, Some(Reason::WaitlistClosed));
        let plan = alloc(ev(10, 0), &[], &[admitted(3, 9, false)], &HashMap::new());
        assert_eq!(plan.decided[0].confirmed, 2);
        // A sold-out admission joins the waitlist even when seats are free again.
        let plan = alloc(ev(10, 0), &[], &[admitted(4, 11, true)], &HashMap::new());
        assert_eq!(
            (plan.decided[0].confirmed, plan.decided[0].waitlisted),
            (0, 2)
        );
        // Without an admission nothing changes.
        let plan = alloc(ev(10, 0), &[], &[req(5, 2), req(5, 2)], &HashMap::new());
        assert!(plan.decided.iter().all(|d| d.confirmed == 2));
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

        let plan = alloc(event, &[], &[early, on_time], &HashMap::new());

        assert_eq!(plan.decided[0].reason, Some(Reason::NotOnSale));
        assert_eq!(plan.decided[0].confirmed, 0);
        assert_eq!(plan.decided[1].confirmed, 2);
        assert_eq!(plan.seats_confirmed, 2);
    }

    #[test]
    fn confirms_in_arrival_order_and_waitlists_the_rest() {
        let plan = alloc(
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
        let plan = alloc(
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
        let plan = alloc(ev(10, 7), &waitlist, &[req(1, 1)], &HashMap::new());
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
        let plan = alloc(ev(10, 7), &[wait(1, 7, 5, true)], &[], &HashMap::new());
        assert_eq!(plan.served[0].confirmed, 3);
        let mut r = req(1, 4);
        r.allow_partial = true;
        let plan = alloc(ev(10, 7), &[], &[r], &HashMap::new());
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
            alloc(closed, &[], &[req(1, 1)], &HashMap::new()).decided[0].reason,
            Some(Reason::EventClosed)
        );

        let mut no_wait = ev(2, 2);
        no_wait.waitlist_open = false;
        assert_eq!(
            alloc(no_wait, &[], &[req(1, 1)], &HashMap::new()).decided[0].reason,
            Some(Reason::WaitlistClosed)
        );

        let mut opt_out = req(1, 1);
        opt_out.join_waitlist = false;
        assert_eq!(
            alloc(ev(2, 2), &[], &[opt_out], &HashMap::new()).decided[0].reason,
            Some(Reason::SoldOut)
        );
    }

    #[test]
    fn the_per_user_cap_counts_confirmed_waitlisted_and_this_batch() {
        let mut capped = ev(100, 0);
        capped.max_per_user = Some(4);
        let held = HashMap::from([(1, 2)]);
        let plan = alloc(
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
            let plan = alloc(
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
        let plan = alloc(
            ev(10, 9),
            &waitlist,
            &[req(1, 2), req(2, 3)],
            &HashMap::new(),
        );
        assert_eq!(plan.served.len(), 1);
        let got: Vec<_> = plan.decided.iter().map(|d| d.position).collect();
        assert_eq!(got, [Some(3), Some(4)]);
        // A partly served entry keeps its place.
        let plan = alloc(
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
        let plan = alloc(started, &[wait(1, 7, 2, false)], &[], &HashMap::new());
        assert!(plan.served.is_empty());
        assert_eq!(plan.seats_confirmed, 0);
    }

    #[test]
    fn buyers_pay_the_lower_of_the_quoted_and_the_current_price() {
        let mut event = ev(10, 0);
        event.price = 500;
        // Quoted 100 (the waitlist entry's quote): pays 100 although the price rose to 500.
        let plan = alloc(event, &[wait(1, 7, 2, false)], &[], &HashMap::new());
        assert_eq!(plan.served[0].cost, 200);
        // Quoted 800, price dropped to 500: pays 500. No quote: the price now.
        let mut quoted = req(1, 2);
        quoted.quoted_price = Some(800);
        let plan = alloc(event, &[], &[quoted, req(2, 1)], &HashMap::new());
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

    fn tt(id: i64, price: i64, quota: Option<i32>) -> TicketType {
        TicketType {
            id,
            price,
            quota,
            sold: 0,
            max_per_user: None,
            sales_start: None,
            sales_end: None,
            hidden: false,
            is_default: id == 1,
        }
    }

    fn of(user: i64, seats: i32, ticket_type: Option<i64>) -> BookingRequest {
        BookingRequest {
            ticket_type_id: ticket_type,
            ..req(user, seats)
        }
    }

    #[test]
    fn a_type_quota_limits_that_type_and_the_capacity_limits_all() {
        // 10 seats; VIP quota 3. VIP asks 2+2: the second waits although the event has room.
        let types = [tt(1, 100, None), tt(2, 500, Some(3))];
        let requests = [
            of(1, 2, Some(2)),
            of(2, 2, Some(2)),
            of(3, 8, None),
            of(4, 1, Some(2)),
        ];
        let plan = allocate(ev(10, 0), &types, &[], &requests, &Holdings::default());
        let got: Vec<_> = plan
            .decided
            .iter()
            .map(|d| (d.confirmed, d.waitlisted, d.ticket_type_id, d.cost))
            .collect();
        assert_eq!(
            got,
            [
                (2, 0, Some(2), 1000),
                (0, 2, Some(2), 0),
                (8, 0, Some(1), 800),
                (0, 1, Some(2), 0)
            ],
            "VIP gets 2 (and the last VIP seat is not taken by the 2-seat request), GA the 8 left"
        );
        assert_eq!(plan.type_seats, [(2, 2), (1, 8)]);
        assert_eq!(plan.seats_confirmed, 10);
    }

    #[test]
    fn a_served_waitlist_entry_respects_its_type_quota() {
        let mut vip = tt(2, 500, Some(2));
        vip.sold = 2;
        let types = [tt(1, 100, None), vip];
        let mut waiting = wait(1, 7, 1, false);
        waiting.ticket_type_id = Some(2);
        let plan = allocate(
            ev(10, 5),
            &types,
            &[waiting.clone()],
            &[],
            &Holdings::default(),
        );
        assert!(
            plan.served.is_empty(),
            "VIP sold out: the entry keeps waiting"
        );
        let mut freed = types.clone();
        freed[1].sold = 1;
        let plan = allocate(ev(10, 5), &freed, &[waiting], &[], &Holdings::default());
        assert_eq!(plan.served[0].confirmed, 1);
        assert_eq!(
            plan.served[0].cost, 100,
            "the quote (100) is below the price (500)"
        );
        assert_eq!(plan.type_seats, [(2, 1)]);
    }

    #[test]
    fn unknown_hidden_and_out_of_window_types_are_refused_with_their_reason() {
        let now = Utc::now();
        let mut hidden = tt(2, 100, None);
        hidden.hidden = true;
        let mut later = tt(3, 100, None);
        later.sales_start = Some(now + chrono::Duration::hours(1));
        let mut over = tt(4, 100, None);
        over.sales_end = Some(now - chrono::Duration::hours(1));
        let types = [tt(1, 100, None), hidden, later, over];
        let requests = [
            of(1, 1, Some(2)),
            of(1, 1, Some(3)),
            of(1, 1, Some(4)),
            of(1, 1, Some(99)),
        ];
        let plan = allocate(ev(10, 0), &types, &[], &requests, &Holdings::default());
        let got: Vec<_> = plan.decided.iter().map(|d| d.reason).collect();
        assert_eq!(
            got,
            [
                Some(Reason::TicketTypeUnavailable),
                Some(Reason::NotOnSale),
                Some(Reason::SalesEnded),
                Some(Reason::TicketTypeUnavailable)
            ]
        );
        assert_eq!(plan.seats_confirmed, 0);
    }

    #[test]
    fn a_per_type_cap_and_the_event_cap_both_apply() {
        let mut vip = tt(2, 500, None);
        vip.max_per_user = Some(2);
        let mut event = ev(100, 0);
        event.max_per_user = Some(5);
        let types = [tt(1, 100, None), vip];
        let held = Holdings {
            by_user: HashMap::from([(1, 1)]),
            by_type: HashMap::from([((1, 2), 1)]),
            ..Holdings::default()
        };
        let requests = [
            of(1, 2, Some(2)),
            of(1, 1, Some(2)),
            of(1, 3, None),
            of(1, 1, None),
        ];
        let plan = allocate(event, &types, &[], &requests, &held);
        let got: Vec<_> = plan
            .decided
            .iter()
            .map(|d| (d.confirmed, d.reason))
            .collect();
        assert_eq!(
            got,
            [
                (0, Some(Reason::PerUserLimit)),
                (1, None),
                (3, None),
                (0, Some(Reason::PerUserLimit))
            ]
        );
    }

    #[test]
    fn the_quote_holds_for_the_default_type_only() {
        let types = [tt(1, 300, None), tt(2, 500, None)];
        let mut default = of(1, 1, None);
        default.quoted_price = Some(200);
        let mut other = of(2, 1, Some(2));
        other.quoted_price = Some(200);
        let plan = allocate(
            ev(10, 0),
            &types,
            &[],
            &[default, other],
            &Holdings::default(),
        );
        let got: Vec<_> = plan.decided.iter().map(|d| d.cost).collect();
        assert_eq!(got, [200, 500]);
    }

    #[test]
    fn held_seats_need_payment_free_ones_do_not() {
        assert_eq!(booking_status(true, 100), BookingStatus::Held);
        assert_eq!(booking_status(true, 0), BookingStatus::Confirmed);
        assert_eq!(booking_status(false, 100), BookingStatus::Confirmed);
        for s in BookingStatus::ALL {
            assert_eq!(BookingStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(BookingStatus::parse("paid"), None);
    }
}

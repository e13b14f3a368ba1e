//! The waiting room's rules, as pure functions: the provable pre-sale draw, the pace of
//! admission, a buyer's status and the poll interval. No I/O here; [`super::store`] keeps the
//! numbers, [`super::pacer`] and [`super::routes`] apply these rules to them.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Scores at or above this are arrival-order places (after on-sale); below, pre-sale draws.
/// 2^48: every score is an integer a double holds exactly (Redis sorted-set scores).
pub const ARRIVAL_BASE: u64 = 1 << 48;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A fresh secret seed: 32 random bytes, hex.
pub fn new_seed() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex(&bytes)
}

/// The published commitment to `seed`: hex SHA-256 of the seed's text.
pub fn seed_hash(seed: &str) -> String {
    hex(&Sha256::digest(seed.as_bytes()))
}

/// The draw of pre-sale ticket `ticket` (1, 2, …): the first 6 bytes of
/// SHA-1(`seed` ":" `ticket`) as a big-endian integer. Pre-sale joiners are admitted in
/// ascending draw, ties by ticket — anyone can recompute it once the seed is revealed. SHA-1
/// because Redis computes it inside the join script (`redis.sha1hex`); what the draw needs is
/// that nobody can predict it without the seed, which SHA-1 gives (its known weakness is
/// collisions, which do not help here); the seed's commitment is SHA-256.
pub fn draw(seed: &str, ticket: u64) -> u64 {
    let d = sha1::Sha1::digest(format!("{seed}:{ticket}").as_bytes());
    d[..6]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The place key of a ticket: pre-sale tickets by their draw, later ones by arrival.
pub fn score(seed: &str, ticket: Ticket) -> u64 {
    match ticket {
        Ticket::PreSale(n) => draw(seed, n),
        Ticket::Arrival(n) => ARRIVAL_BASE + n,
    }
}

/// A buyer's ticket: its number in one of the two lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ticket {
    /// Joined before on-sale: the `n`-th pre-sale joiner (drawn).
    PreSale(u64),
    /// Joined after on-sale: the `n`-th later joiner (arrival order).
    Arrival(u64),
}

impl Ticket {
    /// The sorted-set member: zero-padded so that equal scores sort by ticket number.
    pub fn member(self) -> String {
        match self {
            Self::PreSale(n) => format!("p{n:012}"),
            Self::Arrival(n) => format!("q{n:012}"),
        }
    }

    /// Parses [`Self::member`].
    pub fn parse(member: &str) -> Option<Self> {
        let n = member.get(1..)?.parse().ok()?;
        match member.as_bytes().first()? {
            b'p' => Some(Self::PreSale(n)),
            b'q' => Some(Self::Arrival(n)),
            _ => None,
        }
    }

    /// The public form: `"pre-17"` or `"17"`.
    pub fn label(self) -> String {
        match self {
            Self::PreSale(n) => format!("pre-{n}"),
            Self::Arrival(n) => n.to_string(),
        }
    }
}

/// The pre-sale order a verifier computes from public data: tickets 1..=`joined` sorted by
/// [`draw`], ties by ticket.
pub fn presale_order(seed: &str, joined: u64) -> Vec<u64> {
    let mut order: Vec<(u64, u64)> = (1..=joined).map(|n| (draw(seed, n), n)).collect();
    order.sort_unstable();
    order.into_iter().map(|(_, n)| n).collect()
}

/// What the pacer knows of a room at one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoomView {
    /// Places taken in all.
    pub joined: u64,
    /// Places admitted so far (the frontier: ranks below it are admitted).
    pub admitted: u64,
    /// The frontier as it was one admission window ago: admissions below it have closed.
    pub closed: u64,
    /// Admitted buyers who booked, in all.
    pub used: u64,
    /// Admitted buyers who booked and whose window is still open.
    pub used_open: u64,
    /// Admitted buyers who booked among those whose window closed.
    pub used_closed: u64,
}

/// What drives the pace besides the room.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Seats left, as the event's writer last committed them.
    pub seats_left: i64,
    /// Seats taken so far.
    pub seats_sold: i64,
    /// Seats an admitted buyer is expected to take before the sale shows its own figure.
    pub seats_per_buyer: f64,
    /// Admitted per expected buyer (≥ 1).
    pub overadmit: f64,
    /// Most admissions this tick by the rate cap (`None`: no cap).
    pub cap: Option<u64>,
    /// Paused by the host.
    pub paused: bool,
}

/// Buyers with evidence behind an observed figure before it replaces the configured guess.
const EVIDENCE: u64 = 20;

/// The frontier to advance to: enough buyers inside to buy what is left, no more.
///
/// Inside = admitted whose window is open and who have not booked yet. Wanted inside = the
/// seats left ÷ (seats per buyer × share of admitted buyers who book) × `overadmit`, from
/// the sale's own figures once `EVIDENCE` buyers back them. With no seats left nobody is
/// admitted (and the room says `sold_out`); if seats come back, admission resumes.
pub fn next_frontier(room: &RoomView, pace: &Pace) -> u64 {
    if pace.paused || pace.seats_left <= 0 {
        return room.admitted;
    }
    let per_buyer = if room.used >= EVIDENCE && pace.seats_sold > 0 {
        (pace.seats_sold as f64 / room.used as f64).clamp(1.0, 10.0)
    } else {
        pace.seats_per_buyer
    };
    let conversion = if room.closed >= EVIDENCE {
        (room.used_closed as f64 / room.closed as f64).clamp(0.05, 1.0)
    } else {
        1.0
    };
    let wanted = (pace.seats_left as f64 / (per_buyer * conversion) * pace.overadmit).ceil();
    let wanted = if wanted.is_finite() { wanted as u64 } else { 0 };
    let inside = (room.admitted - room.closed.min(room.admitted)).saturating_sub(room.used_open);
    let more = wanted.saturating_sub(inside);
    let more = pace.cap.map_or(more, |c| more.min(c));
    (room.admitted + more).min(room.joined)
}

/// A buyer's state in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In line.
    Waiting,
    /// May book until the admission expires.
    Admitted,
    /// Was admitted; the admission window closed.
    Expired,
    /// No seats left for those still in line (the waitlist may be open).
    SoldOut,
}

/// A buyer's place as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Their ticket.
    pub ticket: Ticket,
    /// When they joined, Unix ms.
    pub joined_ms: i64,
    /// Their rank in the admission order (0 = first); only final after on-sale.
    pub rank: u64,
    /// When the frontier passed them, Unix ms.
    pub admitted_ms: Option<i64>,
}

/// The room as a buyer sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shared {
    /// Whether on-sale has passed (ranks are final).
    pub on_sale: bool,
    /// The frontier.
    pub admitted: u64,
    /// Places taken in all.
    pub joined: u64,
    /// The pacer found no seats left.
    pub sold_out: bool,
    /// Admissions per second lately (for the estimate), if known.
    pub admit_rate: Option<f64>,
}

/// A buyer's status at `now_ms`, with the number of people ahead and an estimated wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// The status.
    pub status: Status,
    /// People ahead still waiting (`None` before on-sale: the order is drawn then).
    pub ahead: Option<u64>,
    /// Estimated seconds until admission.
    pub wait_secs: Option<u64>,
    /// When the admission ends (admitted or expired), Unix ms.
    pub admission_ends_ms: Option<i64>,
}

/// Where `place` stands in `room` at `now_ms`, admissions lasting `ttl_ms`.
pub fn standing(place: &Place, room: &Shared, now_ms: i64, ttl_ms: i64) -> Standing {
    let waiting = |status| Standing {
        status,
        ahead: None,
        wait_secs: None,
        admission_ends_ms: None,
    };
    if !room.on_sale {
        return waiting(Status::Waiting);
    }
    if place.rank < room.admitted {
        let ends = place.admitted_ms.unwrap_or(now_ms) + ttl_ms;
        return Standing {
            status: if now_ms < ends {
                Status::Admitted
            } else {
                Status::Expired
            },
            ahead: Some(0),
            wait_secs: Some(0),
            admission_ends_ms: Some(ends),
        };
    }
    if room.sold_out {
        return waiting(Status::SoldOut);
    }
    let ahead = place.rank - room.admitted;
    Standing {
        status: Status::Waiting,
        ahead: Some(ahead),
        wait_secs: room
            .admit_rate
            .filter(|r| *r > 0.0)
            .map(|r| (ahead as f64 / r).ceil() as u64),
        admission_ends_ms: None,
    }
}

/// Seconds a waiting buyer should wait before polling again: the polls of everyone waiting
/// spread so that they stay under `budget_per_sec`, but those about to be admitted poll
/// every second. Between 1 and `max_secs`.
pub fn poll_after(
    waiting: u64,
    ahead: Option<u64>,
    admit_rate: Option<f64>,
    budget_per_sec: u32,
    max_secs: u64,
) -> u64 {
    let spread = waiting.div_ceil(u64::from(budget_per_sec.max(1)));
    let soon = match (ahead, admit_rate) {
        (Some(a), Some(r)) if r > 0.0 => (a as f64 / r).ceil() as u64,
        _ => u64::MAX,
    };
    spread.min(soon.max(1)).clamp(1, max_secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presale_order_is_a_permutation_any_verifier_recomputes() {
        let seed = "00ff".repeat(16);
        let order = presale_order(&seed, 1000);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=1000).collect::<Vec<_>>(), "a permutation");
        assert_ne!(order, sorted, "and not arrival order");
        assert_eq!(order, presale_order(&seed, 1000), "reproducible");
        assert_ne!(
            order,
            presale_order(&"01ff".repeat(16), 1000),
            "the seed decides it"
        );
        // The stored scores sort the same way (members break ties by ticket).
        let mut by_score: Vec<(u64, String)> = (1..=1000)
            .map(|n| {
                (
                    score(&seed, Ticket::PreSale(n)),
                    Ticket::PreSale(n).member(),
                )
            })
            .collect();
        by_score.sort();
        let stored: Vec<u64> = by_score
            .iter()
            .map(|(_, m)| match Ticket::parse(m) {
                Some(Ticket::PreSale(n)) => n,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(stored, order);
        assert!(score(&seed, Ticket::PreSale(1)) < score(&seed, Ticket::Arrival(1)));
        assert_eq!(seed_hash("abc").len(), 64);
    }

    fn room(admitted: u64, closed: u64, used_open: u64) -> RoomView {
        RoomView {
            joined: 10_000,
            admitted,
            closed,
            used: used_open,
            used_open,
            used_closed: 0,
        }
    }

    fn pace(left: i64) -> Pace {
        Pace {
            seats_left: left,
            seats_sold: 0,
            seats_per_buyer: 2.0,
            overadmit: 1.0,
            cap: None,
            paused: false,
        }
    }

    #[test]
    fn admission_follows_the_seats_left_and_stops_when_they_are_gone() {
        // 100 seats, 2 per buyer: 50 buyers inside.
        assert_eq!(next_frontier(&room(0, 0, 0), &pace(100)), 50);
        // 50 inside already: nobody more.
        assert_eq!(next_frontier(&room(50, 0, 0), &pace(100)), 50);
        // 20 of them booked (40 seats gone): 30 wanted, 30 inside → none; 10 more seats
        // returned → 5 more.
        assert_eq!(next_frontier(&room(50, 0, 20), &pace(60)), 50);
        assert_eq!(next_frontier(&room(50, 0, 20), &pace(70)), 55);
        // Sold out: nobody, whatever the room.
        assert_eq!(next_frontier(&room(50, 0, 0), &pace(0)), 50);
        // Paused, or capped.
        let mut p = pace(100);
        p.paused = true;
        assert_eq!(next_frontier(&room(0, 0, 0), &p), 0);
        p.paused = false;
        p.cap = Some(7);
        assert_eq!(next_frontier(&room(0, 0, 0), &p), 7);
        // Never past the people in line.
        let mut small = room(0, 0, 0);
        small.joined = 3;
        assert_eq!(next_frontier(&small, &pace(100)), 3);
    }

    #[test]
    fn observed_conversion_admits_more_when_admitted_buyers_do_not_book() {
        // 100 admitted and closed, only 25 booked: a quarter convert → 4× as many inside.
        let r = RoomView {
            joined: 10_000,
            admitted: 100,
            closed: 100,
            used: 25,
            used_open: 0,
            used_closed: 25,
        };
        let mut p = pace(20);
        p.seats_sold = 50; // 2 per buyer observed
        assert_eq!(next_frontier(&r, &p), 100 + 40);
    }

    #[test]
    fn standing_reads_the_frontier() {
        let place = Place {
            ticket: Ticket::Arrival(9),
            joined_ms: 0,
            rank: 10,
            admitted_ms: None,
        };
        let mut shared = Shared {
            on_sale: false,
            admitted: 0,
            joined: 20,
            sold_out: false,
            admit_rate: Some(2.0),
        };
        assert_eq!(
            standing(&place, &shared, 0, 1000).ahead,
            None,
            "drawn at on-sale"
        );
        shared.on_sale = true;
        let s = standing(&place, &shared, 0, 1000);
        assert_eq!(
            (s.status, s.ahead, s.wait_secs),
            (Status::Waiting, Some(10), Some(5))
        );
        shared.sold_out = true;
        assert_eq!(standing(&place, &shared, 0, 1000).status, Status::SoldOut);
        shared.admitted = 11;
        let admitted = Place {
            admitted_ms: Some(5000),
            ..place
        };
        assert_eq!(
            standing(&admitted, &shared, 5999, 1000).status,
            Status::Admitted
        );
        assert_eq!(
            standing(&admitted, &shared, 6000, 1000).status,
            Status::Expired
        );
    }

    #[test]
    fn polls_spread_with_the_line_but_the_next_in_line_poll_often() {
        assert_eq!(poll_after(100, Some(50), None, 2000, 30), 1);
        assert_eq!(
            poll_after(200_000, Some(150_000), Some(100.0), 2000, 30),
            30
        );
        assert_eq!(poll_after(200_000, Some(100_000), None, 10_000, 30), 20);
        assert_eq!(poll_after(200_000, Some(200), Some(100.0), 2000, 30), 2);
    }
}

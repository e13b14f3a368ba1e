//! Where the waiting rooms live: Redis when `redis.url` is set (shared by every API node and
//! the pacers, surviving restarts; atomic Lua scripts), else this process (the single node).
//! Never PostgreSQL: everyone waiting polls it.
//!
//! Per event, under `<prefix>:room:<id>:`: `meta` (seed, ticket counters, frontier, pause,
//! cap, sold-out), `order` (a sorted set of places: score = [`domain::score`]), `users`
//! (account → ticket and join time), `steps` / `steps_t` (each advance of the frontier, by
//! frontier and by time) and `used` (admitted buyers who booked, by rank). Keys expire
//! `KEEP` after the room's last change.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use deadpool_redis::redis::{self, Script};

use crate::waiting_room::domain::{self, Place, Ticket};

/// How long a room outlives its last change.
const KEEP_MS: u64 = 3 * 24 * 3600 * 1000;

/// Joins `user` unless they hold a place (then reads it as [`PLACE_LUA`] does). A new
/// ticket is the next of its line (`p` pre-sale, `q` arrival); its score is the draw (SHA-1 of
/// `seed:n`, first 48 bits; [`domain::draw`]) or 2^48 + n. KEYS as [`PLACE_TAIL`]; ARGV: user,
/// rate cutoff ms, line, now ms, keep ms. Returns PLACE's answer plus 1 when the place is new.
const JOIN_HEAD: &str = r"
local v = redis.call('HGET', KEYS[2], ARGV[1])
local new = 0
if not v then
  local seed = redis.call('HGET', KEYS[1], 'seed')
  if not seed then return redis.error_reply('no seed') end
  local n = redis.call('HINCRBY', KEYS[1], ARGV[3] .. '_next', 1)
  local member = string.format('%s%012d', ARGV[3], n)
  local score
  if ARGV[3] == 'p' then
    score = tonumber(string.sub(redis.sha1hex(seed .. ':' .. n), 1, 12), 16)
  else
    score = 281474976710656 + n
  end
  redis.call('ZADD', KEYS[3], score, member)
  v = member .. '|' .. ARGV[4]
  redis.call('HSET', KEYS[2], ARGV[1], v)
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
  new = 1
end
";

/// Reads a buyer's place (after [`PLACE_HEAD`] or [`JOIN_HEAD`] set `v` and `new`) and the
/// room's frontier. KEYS: meta, users, order, steps, steps_t (the keys of [`PLACE_PARTS`]).
/// ARGV: user, rate cutoff ms. Returns {ticket|joined or false, rank or -1, admitted,
/// sold_out, joined, admitted_ms or -1, frontier at the cutoff, new}.
const PLACE_TAIL: &str = r"
local admitted = tonumber(redis.call('HGET', KEYS[1], 'admitted') or '0')
local sold = tonumber(redis.call('HGET', KEYS[1], 'sold_out') or '0')
local joined = redis.call('ZCARD', KEYS[3])
local t = redis.call('ZREVRANGEBYSCORE', KEYS[5], ARGV[2], '-inf', 'LIMIT', 0, 1)
local before = 0
if t[1] then before = tonumber(t[1]) end
local rank = -1
local at = -1
if v then
  local member = string.sub(v, 1, string.find(v, '|', 1, true) - 1)
  rank = redis.call('ZRANK', KEYS[3], member) or -1
  if rank >= 0 and rank < admitted then
    local s = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. rank, '+inf', 'LIMIT', 0, 1)
    if s[1] then at = tonumber(string.sub(s[1], 1, string.find(s[1], ':', 1, true) - 1)) end
  end
end
return {v or false, rank, admitted, sold, joined, at, before, new}
";

/// A buyer's place as it stands (see [`PLACE_TAIL`]).
const PLACE_HEAD: &str = r"
local v = redis.call('HGET', KEYS[2], ARGV[1])
local new = 0
";

/// The keys [`PLACE_TAIL`] reads, in order.
const PLACE_PARTS: &[&str] = &["meta", "users", "order", "steps", "steps_t"];

/// The numbers the pacer needs. KEYS: meta, order, steps_t, used. ARGV: closed cutoff ms,
/// rate cutoff ms. Returns {joined, admitted, closed, used, used_open, used_closed, paused,
/// cap, sold_out, frontier at the rate cutoff, pre-sale joined}.
const SUMMARY_LUA: &str = r"
local function at(cut)
  local s = redis.call('ZREVRANGEBYSCORE', KEYS[3], cut, '-inf', 'LIMIT', 0, 1)
  if s[1] then return tonumber(s[1]) end
  return 0
end
local m = redis.call('HMGET', KEYS[1], 'admitted', 'paused', 'cap', 'sold_out', 'p_next')
local closed = at(ARGV[1])
local used = redis.call('ZCARD', KEYS[4])
local used_closed = 0
if closed > 0 then used_closed = redis.call('ZCOUNT', KEYS[4], 0, '(' .. closed) end
return {redis.call('ZCARD', KEYS[2]), tonumber(m[1] or '0'), closed, used,
        used - used_closed, used_closed, tonumber(m[2] or '0'), tonumber(m[3] or '0'),
        tonumber(m[4] or '0'), at(ARGV[2]), tonumber(m[5] or '0')}
";

/// Moves the frontier forward (never back) and records the step; sets the sold-out flag and
/// the expired count seen. KEYS: meta, order, steps, steps_t. ARGV: target, now ms, sold_out,
/// expired, keep ms. Returns {admitted now, newly admitted, newly expired}.
const ADVANCE_LUA: &str = r"
local f = tonumber(redis.call('HGET', KEYS[1], 'admitted') or '0')
local target = math.min(tonumber(ARGV[1]), redis.call('ZCARD', KEYS[2]))
local moved = 0
if target > f then
  redis.call('HSET', KEYS[1], 'admitted', target)
  redis.call('ZADD', KEYS[3], target, ARGV[2] .. ':' .. target)
  redis.call('ZADD', KEYS[4], ARGV[2], target)
  moved = target - f
  f = target
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
end
redis.call('HSET', KEYS[1], 'sold_out', ARGV[3])
local seen = tonumber(redis.call('HGET', KEYS[1], 'expired') or '0')
local expired = tonumber(ARGV[4])
local fresh = 0
if expired > seen then
  redis.call('HSET', KEYS[1], 'expired', expired)
  fresh = expired - seen
end
return {f, moved, fresh}
";

/// What [`Rooms::place`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The buyer's place, if they joined.
    pub place: Option<Place>,
    /// The frontier.
    pub admitted: u64,
    /// Places taken in all.
    pub joined: u64,
    /// The pacer found no seats left.
    pub sold_out: bool,
    /// The frontier at the rate cutoff.
    pub admitted_then: u64,
}

/// The pacer's numbers (see [`domain::RoomView`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Places, the frontier and who booked.
    pub room: domain::RoomView,
    /// Paused by the host.
    pub paused: bool,
    /// Admissions per second cap set by the host (0 = none).
    pub cap: u32,
    /// Sold-out flag.
    pub sold_out: bool,
    /// The frontier at the rate cutoff (for the admission rate).
    pub admitted_then: u64,
    /// Pre-sale places taken.
    pub presale: u64,
}

#[derive(Default)]
struct MemRoom {
    seed: Option<String>,
    /// Pre-sale places `(score, ticket)`; sorted when `sorted`.
    presale: Vec<(u64, u64)>,
    sorted: bool,
    arrivals: u64,
    users: HashMap<i64, (Ticket, i64)>,
    admitted: u64,
    /// `(frontier, ms)` per advance, both increasing.
    steps: Vec<(u64, i64)>,
    used: HashMap<i64, u64>,
    used_ranks: BTreeSet<(u64, i64)>,
    paused: bool,
    cap: u32,
    sold_out: bool,
    expired_seen: u64,
}

impl MemRoom {
    fn joined(&self) -> u64 {
        self.presale.len() as u64 + self.arrivals
    }

    fn rank(&mut self, seed: &str, ticket: Ticket) -> Option<u64> {
        match ticket {
            Ticket::PreSale(n) => {
                if !self.sorted {
                    self.presale.sort_unstable();
                    self.sorted = true;
                }
                let key = (domain::score(seed, ticket), n);
                self.presale.binary_search(&key).ok().map(|i| i as u64)
            }
            Ticket::Arrival(n) => Some(self.presale.len() as u64 + n - 1),
        }
    }

    fn frontier_at(&self, cutoff_ms: i64) -> u64 {
        let i = self.steps.partition_point(|(_, ms)| *ms <= cutoff_ms);
        if i == 0 { 0 } else { self.steps[i - 1].0 }
    }
}

enum Backend {
    Memory(Mutex<HashMap<i64, MemRoom>>),
    Redis {
        conn: redis::aio::ConnectionManager,
        prefix: String,
        join: Script,
        place: Script,
        summary: Script,
        advance: Script,
    },
}

/// Every waiting room this process can reach; cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    backend: Arc<Backend>,
    /// Seeds never change once drawn: read once per process.
    seeds: Arc<Mutex<HashMap<i64, String>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn parse_ticket(v: &str) -> Option<(Ticket, i64)> {
    let mut parts = v.split('|');
    let ticket = Ticket::parse(parts.next()?)?;
    let joined = parts.next()?.parse().ok()?;
    Some((ticket, joined))
}

fn non_neg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// [`Found`] from the numbers the place and join scripts return.
fn found_of(
    v: Option<String>,
    rank: i64,
    admitted: i64,
    sold: i64,
    joined: i64,
    at: i64,
    then: i64,
) -> Found {
    let place = match (v.as_deref().and_then(parse_ticket), rank) {
        (Some((ticket, joined_ms)), r) if r >= 0 => Some(Place {
            ticket,
            joined_ms,
            rank: non_neg(r),
            admitted_ms: (at >= 0).then_some(at),
        }),
        _ => None,
    };
    Found {
        place,
        admitted: non_neg(admitted),
        joined: non_neg(joined),
        sold_out: sold == 1,
        admitted_then: non_neg(then),
    }
}

impl Rooms {
    /// In this process only (single node; places do not survive a restart).
    pub fn memory() -> Self {
        Self {
            backend: Arc::new(Backend::Memory(Mutex::default())),
            seeds: Arc::default(),
        }
    }

    /// In Redis, under `<prefix>:room:`.
    pub fn redis(conn: redis::aio::ConnectionManager, prefix: &str) -> Self {
        Self {
            backend: Arc::new(Backend::Redis {
                conn,
                prefix: format!("{prefix}:room:"),
                join: Script::new(&format!("{JOIN_HEAD}{PLACE_TAIL}")),
                place: Script::new(&format!("{PLACE_HEAD}{PLACE_TAIL}")),
                summary: Script::new(SUMMARY_LUA),
                advance: Script::new(ADVANCE_LUA),
            }),
            seeds: Arc::default(),
        }
    }

    /// `memory` or `redis`.
    pub fn kind(&self) -> &'static str {
        match *self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
        }
    }

    fn key(prefix: &str, event: i64, part: &str) -> String {
        format!("{prefix}{event}:{part}")
    }

    /// `script` invoked on the keys `parts` of `event`'s room, in order.
    fn on_room<'a>(
        script: &'a Script,
        prefix: &str,
        event: i64,
        parts: &[&str],
    ) -> redis::ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for part in parts {
            call.key(Self::key(prefix, event, part));
        }
        call
    }

    /// The event's seed, drawn (and so committed to) on first use.
    pub async fn seed(&self, event: i64) -> anyhow::Result<String> {
        if let Some(s) = lock(&self.seeds).get(&event) {
            return Ok(s.clone());
        }
        let seed = match &*self.backend {
            Backend::Memory(m) => lock(m)
                .entry(event)
                .or_default()
                .seed
                .get_or_insert_with(domain::new_seed)
                .clone(),
            Backend::Redis { conn, prefix, .. } => {
                let mut conn = conn.clone();
                let meta = Self::key(prefix, event, "meta");
                let (_, seed): (i64, String) = redis::pipe()
                    .atomic()
                    .cmd("HSETNX")
                    .arg(&meta)
                    .arg("seed")
                    .arg(domain::new_seed())
                    .cmd("HGET")
                    .arg(&meta)
                    .arg("seed")
                    .query_async(&mut conn)
                    .await?;
                seed
            }
        };
        lock(&self.seeds).insert(event, seed.clone());
        Ok(seed)
    }

    /// Joins `user` — a new ticket in the pre-sale draw (`presale`) or at the back of the
    /// line, or the place they hold — and reads it as [`Self::place`] does. Returns the place
    /// and whether it is new.
    pub async fn join(
        &self,
        event: i64,
        user: i64,
        presale: bool,
        now_ms: i64,
        rate_ms: i64,
    ) -> anyhow::Result<(Found, bool)> {
        let seed = self.seed(event).await?;
        match &*self.backend {
            Backend::Memory(m) => {
                let new = {
                    let mut rooms = lock(m);
                    let room = rooms.entry(event).or_default();
                    if room.users.contains_key(&user) {
                        false
                    } else {
                        let ticket = if presale {
                            let n = room.presale.len() as u64 + 1;
                            let t = Ticket::PreSale(n);
                            room.presale.push((domain::score(&seed, t), n));
                            room.sorted = false;
                            t
                        } else {
                            room.arrivals += 1;
                            Ticket::Arrival(room.arrivals)
                        };
                        room.users.insert(user, (ticket, now_ms));
                        true
                    }
                };
                Ok((self.place(event, user, rate_ms, !presale).await?, new))
            }
            Backend::Redis {
                conn, prefix, join, ..
            } => {
                let mut conn = conn.clone();
                type Row = (Option<String>, i64, i64, i64, i64, i64, i64, i64);
                let row: Row = Self::on_room(join, prefix, event, PLACE_PARTS)
                    .arg(user)
                    .arg(rate_ms)
                    .arg(if presale { "p" } else { "q" })
                    .arg(now_ms)
                    .arg(KEEP_MS)
                    .invoke_async(&mut conn)
                    .await?;
                let new = row.7 == 1;
                Ok((
                    found_of(row.0, row.1, row.2, row.3, row.4, row.5, row.6),
                    new,
                ))
            }
        }
    }

    /// `user`'s place and the room's frontier now and at `rate_ms` (for the admission rate).
    /// Until the draw (`drawn` false: before on-sale) a pre-sale ticket's rank is not final;
    /// in this process it is not computed then (0), so that joins do not sort the line.
    pub async fn place(
        &self,
        event: i64,
        user: i64,
        rate_ms: i64,
        drawn: bool,
    ) -> anyhow::Result<Found> {
        match &*self.backend {
            Backend::Memory(m) => {
                let seed = self.seed(event).await?;
                let mut rooms = lock(m);
                let room = rooms.entry(event).or_default();
                let mut found = Found {
                    place: None,
                    admitted: room.admitted,
                    joined: room.joined(),
                    sold_out: room.sold_out,
                    admitted_then: room.frontier_at(rate_ms),
                };
                let Some((ticket, joined_ms)) = room.users.get(&user).copied() else {
                    return Ok(found);
                };
                let rank = match ticket {
                    Ticket::PreSale(_) if !drawn => Some(0),
                    _ => room.rank(&seed, ticket),
                };
                let Some(rank) = rank else {
                    return Ok(found);
                };
                let admitted_ms = (rank < room.admitted).then(|| {
                    let i = room.steps.partition_point(|(f, _)| *f <= rank);
                    room.steps.get(i).map_or(0, |s| s.1)
                });
                found.place = Some(Place {
                    ticket,
                    joined_ms,
                    rank,
                    admitted_ms,
                });
                Ok(found)
            }
            Backend::Redis {
                conn,
                prefix,
                place,
                ..
            } => {
                let mut conn = conn.clone();
                type Row = (Option<String>, i64, i64, i64, i64, i64, i64, i64);
                let (v, rank, admitted, sold, joined, at, then, _): Row =
                    Self::on_room(place, prefix, event, PLACE_PARTS)
                        .arg(user)
                        .arg(rate_ms)
                        .invoke_async(&mut conn)
                        .await?;
                Ok(found_of(v, rank, admitted, sold, joined, at, then))
            }
        }
    }

    /// The pacer's numbers: admissions before `closed_ms` have closed; `rate_ms` is the start
    /// of the period the admission rate is measured over.
    pub async fn summary(
        &self,
        event: i64,
        closed_ms: i64,
        rate_ms: i64,
    ) -> anyhow::Result<Summary> {
        match &*self.backend {
            Backend::Memory(m) => {
                let mut rooms = lock(m);
                let room = rooms.entry(event).or_default();
                let closed = room.frontier_at(closed_ms);
                let used_closed = room.used_ranks.range(..(closed, i64::MIN)).count() as u64;
                let used = room.used.len() as u64;
                Ok(Summary {
                    room: domain::RoomView {
                        joined: room.joined(),
                        admitted: room.admitted,
                        closed,
                        used,
                        used_open: used - used_closed,
                        used_closed,
                    },
                    paused: room.paused,
                    cap: room.cap,
                    sold_out: room.sold_out,
                    admitted_then: room.frontier_at(rate_ms),
                    presale: room.presale.len() as u64,
                })
            }
            Backend::Redis {
                conn,
                prefix,
                summary,
                ..
            } => {
                let mut conn = conn.clone();
                let v: Vec<i64> = Self::on_room(
                    summary,
                    prefix,
                    event,
                    &["meta", "order", "steps_t", "used"],
                )
                .arg(closed_ms)
                .arg(rate_ms)
                .invoke_async(&mut conn)
                .await?;
                let g = |i: usize| non_neg(v.get(i).copied().unwrap_or(0));
                Ok(Summary {
                    room: domain::RoomView {
                        joined: g(0),
                        admitted: g(1),
                        closed: g(2),
                        used: g(3),
                        used_open: g(4),
                        used_closed: g(5),
                    },
                    paused: g(6) == 1,
                    cap: u32::try_from(g(7)).unwrap_or(u32::MAX),
                    sold_out: g(8) == 1,
                    admitted_then: g(9),
                    presale: g(10),
                })
            }
        }
    }

    /// Moves the frontier to `target` (never back, never past the line) at `now_ms`, sets the
    /// sold-out flag and the count of admissions that closed unused. Returns how many this
    /// call admitted and how many expirations it was first to see (so that metrics count each
    /// once across pacers).
    pub async fn advance(
        &self,
        event: i64,
        target: u64,
        now_ms: i64,
        sold_out: bool,
        expired: u64,
    ) -> anyhow::Result<(u64, u64)> {
        match &*self.backend {
            Backend::Memory(m) => {
                let mut rooms = lock(m);
                let room = rooms.entry(event).or_default();
                let target = target.min(room.joined());
                let mut moved = 0;
                if target > room.admitted {
                    moved = target - room.admitted;
                    room.admitted = target;
                    room.steps.push((target, now_ms));
                }
                room.sold_out = sold_out;
                let fresh = expired.saturating_sub(room.expired_seen);
                room.expired_seen = room.expired_seen.max(expired);
                Ok((moved, fresh))
            }
            Backend::Redis {
                conn,
                prefix,
                advance,
                ..
            } => {
                let mut conn = conn.clone();
                let (_, moved, fresh): (i64, i64, i64) = Self::on_room(
                    advance,
                    prefix,
                    event,
                    &["meta", "order", "steps", "steps_t"],
                )
                .arg(target)
                .arg(now_ms)
                .arg(u8::from(sold_out))
                .arg(expired)
                .arg(KEEP_MS)
                .invoke_async(&mut conn)
                .await?;
                Ok((non_neg(moved), non_neg(fresh)))
            }
        }
    }

    /// Records that `user` (at `rank`) booked with their admission; `true` the first time.
    pub async fn mark_used(&self, event: i64, user: i64, rank: u64) -> anyhow::Result<bool> {
        match &*self.backend {
            Backend::Memory(m) => {
                let mut rooms = lock(m);
                let room = rooms.entry(event).or_default();
                if room.used.contains_key(&user) {
                    return Ok(false);
                }
                room.used.insert(user, rank);
                room.used_ranks.insert((rank, user));
                Ok(true)
            }
            Backend::Redis { conn, prefix, .. } => {
                let mut conn = conn.clone();
                let used = Self::key(prefix, event, "used");
                let (added, _): (i64, i64) = redis::pipe()
                    .cmd("ZADD")
                    .arg(&used)
                    .arg("NX")
                    .arg(rank)
                    .arg(user)
                    .cmd("PEXPIRE")
                    .arg(&used)
                    .arg(KEEP_MS)
                    .query_async(&mut conn)
                    .await?;
                Ok(added == 1)
            }
        }
    }

    /// The host's controls: pause or resume, and the admissions-per-second cap (0 = none).
    pub async fn control(
        &self,
        event: i64,
        paused: Option<bool>,
        cap: Option<u32>,
    ) -> anyhow::Result<()> {
        match &*self.backend {
            Backend::Memory(m) => {
                let mut rooms = lock(m);
                let room = rooms.entry(event).or_default();
                if let Some(p) = paused {
                    room.paused = p;
                }
                if let Some(c) = cap {
                    room.cap = c;
                }
                Ok(())
            }
            Backend::Redis { conn, prefix, .. } => {
                let mut conn = conn.clone();
                let meta = Self::key(prefix, event, "meta");
                let mut pipe = redis::pipe();
                if let Some(p) = paused {
                    pipe.cmd("HSET")
                        .arg(&meta)
                        .arg("paused")
                        .arg(u8::from(p))
                        .ignore();
                }
                if let Some(c) = cap {
                    pipe.cmd("HSET").arg(&meta).arg("cap").arg(c).ignore();
                }
                pipe.cmd("PEXPIRE").arg(&meta).arg(KEEP_MS).ignore();
                pipe.query_async::<()>(&mut conn).await?;
                Ok(())
            }
        }
    }
}

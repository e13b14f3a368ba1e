//! The event cache: event details and availability for the hot read and accept paths.
//!
//! PostgreSQL is the source of truth; the cache holds snapshots of `events` rows. Backends,
//! chosen by configuration:
//!
//! - **Redis** when `redis.url` is set (shared by every API node and worker);
//! - **in-process** when there is no Redis and the queue is in-process (`all`, single node: the
//!   only writers live in this process);
//! - **none** otherwise (scale-out without Redis: an in-process copy would go stale, so every
//!   read goes to PostgreSQL).
//!
//! Rules that keep it correct:
//!
//! - Writes happen after the PostgreSQL commit, as full snapshots carrying `events.version`
//!   (bumped under the row lock by every write). A snapshot is stored only if its version is
//!   newer than the stored one, so writes that arrive out of order never regress it.
//! - A deleted or cancelled event leaves a tombstone (so a late snapshot cannot resurrect it).
//! - Listings come from the cache only while it is *complete* (the `ready` marker, set by a full
//!   rebuild). Any read error or miss falls back to PostgreSQL: an outage costs speed, never a
//!   wrong answer or a 500. A failed write marks the cache dirty; the next reconciliation pass
//!   (which also runs at start-up and on its schedule) rebuilds it in place.
//!
//! - With Redis, each process also keeps the snapshots it read or wrote for
//!   `redis.near_cache_ms` ([`Near`]): the accept path reads its event on every request, so a
//!   hot event would cost a Redis round trip per request. Entries only move forward in version;
//!   this process's own writes and deletions replace them at once (a node reads its own
//!   writes), another node's are seen at most `near_cache_ms` late — as if the request had
//!   come that much earlier. The writer decides on the row, never on a snapshot.
//!
//! Redis keys (all under `redis.key_prefix`, see [`crate::redis::keys`]):
//! `<p>:event:<id>` HASH `{ v: version, json: snapshot | "" (tombstone) }`;
//! `<p>:events:by_start` ZSET id scored by `starts_at` in µs (active events only);
//! `<p>:events:ready` STRING, present while the index is complete.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use tokio::sync::RwLock;

use crate::events::model::{CatalogueCursor, Event};
use crate::redis::keys;

/// How long a tombstone outlives the event (long enough for any in-flight snapshot).
const TOMBSTONE_TTL_SECS: u64 = 3_600;

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A snapshot of the event.
    Hit(Arc<Event>),
    /// The event is known to be deleted or cancelled.
    Gone,
    /// Not in the cache, or the cache is unavailable: ask PostgreSQL.
    Miss,
}

/// Versioned upsert. KEYS[1] = event hash, KEYS[2] = index; ARGV = version, json, member,
/// score, indexed (1/0), expected stored version ('' = only if newer). With an expected
/// version it is a compare-and-set (reconciliation repairing an entry it judged wrong).
/// Returns 1 when written.
const UPSERT_LUA: &str = r"
local stored = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if ARGV[6] ~= '' then
  if stored ~= tonumber(ARGV[6]) then return 0 end
elseif stored >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'json', ARGV[2])
redis.call('PERSIST', KEYS[1])
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
else
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return 1
";

/// Tombstone. KEYS[1] = event hash, KEYS[2] = index; ARGV = member, ttl seconds.
const TOMBSTONE_LUA: &str = r"
redis.call('HSET', KEYS[1], 'v', '9223372036854775807', 'json', '')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
";

/// Inserts into the near cache that trigger a sweep of its expired entries.
const NEAR_SWEEP_EVERY: u64 = 1024;

/// Snapshots this process read from or wrote to Redis, reused for `ttl` (0: off). An entry is
/// `(version, snapshot or None for gone, when kept)`.
struct Near {
    ttl: Duration,
    map: std::sync::Mutex<NearMap>,
}

#[derive(Default)]
struct NearMap {
    entries: HashMap<i64, (i64, Option<Arc<Event>>, Instant)>,
    inserts: u64,
}

impl Near {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: std::sync::Mutex::new(NearMap::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NearMap> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What this process holds for `id`, if kept less than `ttl` ago.
    fn get(&self, id: i64) -> Option<Lookup> {
        if self.ttl.is_zero() {
            return None;
        }
        let m = self.lock();
        let (_, event, at) = m.entries.get(&id)?;
        (at.elapsed() < self.ttl).then(|| match event {
            Some(e) => Lookup::Hit(e.clone()),
            None => Lookup::Gone,
        })
    }

    /// Keeps `event` (None: gone) at `version`, unless a newer version was kept within `ttl`
    /// (a slow read must not undo a write this process made meanwhile).
    fn keep(&self, id: i64, version: i64, event: Option<Arc<Event>>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut m = self.lock();
        if let Some((v, _, at)) = m.entries.get(&id)
            && *v > version
            && at.elapsed() < self.ttl
        {
            return;
        }
        m.inserts += 1;
        if m.inserts.is_multiple_of(NEAR_SWEEP_EVERY) {
            let ttl = self.ttl;
            m.entries.retain(|_, (_, _, at)| at.elapsed() < ttl);
        }
        m.entries.insert(id, (version, event, Instant::now()));
    }

    /// Drops what is kept for `id`: the next read asks Redis.
    fn forget(&self, id: i64) {
        self.lock().entries.remove(&id);
    }

    /// Drops everything (after a rebuild).
    fn clear(&self) {
        self.lock().entries.clear();
    }
}

#[derive(Default)]
struct Memory {
    entries: HashMap<i64, (i64, Option<Arc<Event>>)>,
    index: BTreeSet<(i64, i64)>,
    ready: bool,
}

enum Backend {
    None,
    Memory(RwLock<Memory>),
    Redis {
        pool: deadpool_redis::Pool,
        shared: deadpool_redis::redis::aio::ConnectionManager,
        prefix: String,
        upsert: redis::Script,
        tombstone: redis::Script,
        near: Near,
    },
}

/// The event cache (cheap to clone).
#[derive(Clone)]
pub struct EventCache {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    dirty: AtomicBool,
}

fn score(starts_at: DateTime<Utc>) -> i64 {
    starts_at.timestamp_micros()
}

/// Index member of an event: zero-padded so that Redis's lexicographic order of members with
/// equal scores is the numeric order of ids (keyset pages stay exact on ties).
fn member(id: i64) -> String {
    format!("{id:020}")
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Entries written or repaired.
    pub written: usize,
    /// Stale entries removed.
    pub removed: usize,
    /// Entries cached with a version above the row read: `(id, cached version)`. Either a write
    /// newer than the read, or tampering; [`EventCache::repair`] decides with a fresh read.
    pub ahead: Vec<(i64, i64)>,
}

/// Whether a snapshot belongs in the listing index.
fn listed(e: &Event) -> bool {
    !e.is_cancelled()
}

impl EventCache {
    fn with(backend: Backend) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                dirty: AtomicBool::new(false),
            }),
        }
    }

    /// No cache: every read goes to PostgreSQL.
    pub fn none() -> Self {
        Self::with(Backend::None)
    }

    /// In-process cache (single node).
    pub fn memory() -> Self {
        Self::with(Backend::Memory(RwLock::new(Memory::default())))
    }

    /// Redis cache with keys under `prefix`; snapshots reused in this process for `near`
    /// (zero: every read asks Redis).
    pub fn redis(
        pool: deadpool_redis::Pool,
        shared: deadpool_redis::redis::aio::ConnectionManager,
        prefix: String,
        near: Duration,
    ) -> Self {
        Self::with(Backend::Redis {
            pool,
            shared,
            prefix,
            upsert: redis::Script::new(UPSERT_LUA),
            tombstone: redis::Script::new(TOMBSTONE_LUA),
            near: Near::new(near),
        })
    }

    /// The backend's name (`none`, `memory`, `redis`), for logs and `/ready`.
    pub fn kind(&self) -> &'static str {
        match self.inner.backend {
            Backend::None => "none",
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
        }
    }

    /// Whether a write failed since the last rebuild (the cache may be stale).
    pub fn is_dirty(&self) -> bool {
        self.inner.dirty.load(Ordering::Relaxed)
    }

    fn write_failed(&self, e: &anyhow::Error) {
        self.inner.dirty.store(true, Ordering::Relaxed);
        metrics::counter!("cache_errors_total", "op" => "write").increment(1);
        tracing::warn!(error = %e, "cache write failed; reads fall back to PostgreSQL until the next rebuild");
    }

    fn read_failed(e: &anyhow::Error) {
        metrics::counter!("cache_errors_total", "op" => "read").increment(1);
        tracing::warn!(error = %e, "cache read failed; falling back to PostgreSQL");
    }

    /// Looks an event up.
    pub async fn get(&self, id: i64) -> Lookup {
        match &self.inner.backend {
            Backend::None => Lookup::Miss,
            Backend::Memory(m) => match m.read().await.entries.get(&id) {
                Some((_, Some(e))) => Lookup::Hit(e.clone()),
                Some((_, None)) => Lookup::Gone,
                None => Lookup::Miss,
            },
            Backend::Redis {
                shared,
                prefix,
                near,
                ..
            } => {
                if let Some(found) = near.get(id) {
                    metrics::counter!("cache_lookups_total", "result" => "near").increment(1);
                    return found;
                }
                let json = async {
                    // The hot read: on the shared multiplexed connection, not a pooled one.
                    let mut conn = shared.clone();
                    let json: Option<String> = redis::cmd("HGET")
                        .arg(keys::event(prefix, id))
                        .arg("json")
                        .query_async(&mut conn)
                        .await?;
                    anyhow::Ok(json)
                }
                .await;
                let found = Self::parse(id, json);
                match &found {
                    Lookup::Hit(e) => near.keep(id, e.version, Some(e.clone())),
                    Lookup::Gone => near.keep(id, i64::MAX, None),
                    Lookup::Miss => {}
                }
                found
            }
        }
    }

    /// A lookup from what the backend read (a snapshot's JSON, "" for a tombstone).
    fn parse(id: i64, read: anyhow::Result<Option<String>>) -> Lookup {
        match read {
            Ok(None) => {
                metrics::counter!("cache_lookups_total", "result" => "miss").increment(1);
                Lookup::Miss
            }
            Ok(Some(json)) if json.is_empty() => Lookup::Gone,
            Ok(Some(json)) => match serde_json::from_str::<Event>(&json) {
                Ok(e) if e.id == id => {
                    metrics::counter!("cache_lookups_total", "result" => "hit").increment(1);
                    Lookup::Hit(Arc::new(e))
                }
                // A corrupt or tampered entry is a miss; reconciliation repairs it.
                _ => Lookup::Miss,
            },
            Err(e) => {
                Self::read_failed(&e);
                Lookup::Miss
            }
        }
    }

    /// Stores a snapshot unless a newer one is stored. Errors are logged, never returned:
    /// callers have already committed.
    pub async fn put(&self, event: &Event) {
        if let Err(e) = self.put_inner(event, None).await {
            self.write_failed(&e);
        }
    }

    /// Replaces the entry with `fresh` (a row read just now) if the cache still holds
    /// `cached_version` and that is above the row's version: only tampering gets there.
    pub async fn repair(&self, fresh: &Event, cached_version: i64) -> anyhow::Result<bool> {
        if cached_version <= fresh.version {
            return Ok(false);
        }
        self.put_inner(fresh, Some(cached_version)).await
    }

    async fn put_inner(&self, event: &Event, expected: Option<i64>) -> anyhow::Result<bool> {
        match &self.inner.backend {
            Backend::None => Ok(false),
            Backend::Memory(m) => {
                let mut m = m.write().await;
                let stored = m.entries.get(&event.id).map_or(-1, |(v, _)| *v);
                let allowed = match expected {
                    Some(x) => stored == x,
                    None => stored < event.version,
                };
                if !allowed {
                    return Ok(false);
                }
                if let Some((_, Some(old))) = m.entries.get(&event.id) {
                    let key = (score(old.starts_at), old.id);
                    m.index.remove(&key);
                }
                if listed(event) {
                    m.index.insert((score(event.starts_at), event.id));
                }
                m.entries
                    .insert(event.id, (event.version, Some(Arc::new(event.clone()))));
                Ok(true)
            }
            Backend::Redis {
                pool,
                prefix,
                upsert,
                near,
                ..
            } => {
                // Whatever Redis ends up holding, this process asks it next (a repair, a
                // snapshot older than Redis's) or holds the snapshot it wrote.
                near.forget(event.id);
                let json = serde_json::to_string(event)?;
                let mut conn = pool.get().await?;
                let written: i64 = upsert
                    .key(keys::event(prefix, event.id))
                    .key(keys::events_index(prefix))
                    .arg(event.version)
                    .arg(json)
                    .arg(member(event.id))
                    .arg(score(event.starts_at))
                    .arg(if listed(event) { "1" } else { "0" })
                    .arg(expected.map(|v| v.to_string()).unwrap_or_default())
                    .invoke_async(&mut *conn)
                    .await?;
                if written == 1 && expected.is_none() {
                    near.keep(event.id, event.version, Some(Arc::new(event.clone())));
                }
                Ok(written == 1)
            }
        }
    }

    /// Marks the event gone (deleted or cancelled) and drops it from listings.
    pub async fn remove(&self, id: i64) {
        let result = match &self.inner.backend {
            Backend::None => Ok(()),
            Backend::Memory(m) => {
                let mut m = m.write().await;
                if let Some((_, Some(old))) = m.entries.get(&id) {
                    let key = (score(old.starts_at), old.id);
                    m.index.remove(&key);
                }
                m.entries.insert(id, (i64::MAX, None));
                Ok(())
            }
            Backend::Redis {
                pool,
                prefix,
                tombstone,
                near,
                ..
            } => {
                // Gone for this process at once, whether or not Redis takes the tombstone.
                near.keep(id, i64::MAX, None);
                async {
                    let mut conn = pool.get().await?;
                    let _: i64 = tombstone
                        .key(keys::event(prefix, id))
                        .key(keys::events_index(prefix))
                        .arg(member(id))
                        .arg(TOMBSTONE_TTL_SECS)
                        .invoke_async(&mut *conn)
                        .await?;
                    anyhow::Ok(())
                }
                .await
            }
        };
        if let Err(e) = result {
            self.write_failed(&e);
        }
    }

    /// A page of active events in `(starts_at, id)` order after `cursor`, starting no earlier
    /// than `min_start`. `None` when the cache cannot answer completely (not built, dirty,
    /// unavailable, or an entry is missing): the caller asks PostgreSQL.
    pub async fn list(
        &self,
        cursor: Option<CatalogueCursor>,
        min_start: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Option<Vec<Arc<Event>>> {
        if self.is_dirty() {
            return None;
        }
        let lower = match (cursor, min_start) {
            (Some(c), Some(m)) if score(m) > score(c.starts_at) => (score(m), i64::MIN),
            (Some(c), _) => (score(c.starts_at), c.id),
            (None, Some(m)) => (score(m), i64::MIN),
            (None, None) => (i64::MIN, i64::MIN),
        };
        // With a cursor, the cursor's own event is excluded; with `min_start` the bound is "after".
        let exclusive_lower = cursor.is_some() || min_start.is_some();
        match &self.inner.backend {
            Backend::None => None,
            Backend::Memory(m) => {
                let m = m.read().await;
                if !m.ready {
                    return None;
                }
                let mut out = Vec::with_capacity(limit);
                for key in m.index.range(lower..) {
                    if exclusive_lower && *key == lower {
                        continue;
                    }
                    if min_start.is_some_and(|ms| key.0 <= score(ms)) {
                        continue;
                    }
                    match m.entries.get(&key.1) {
                        Some((_, Some(e))) => out.push(e.clone()),
                        _ => return None,
                    }
                    if out.len() == limit {
                        break;
                    }
                }
                Some(out)
            }
            Backend::Redis { pool, prefix, .. } => {
                let result = async {
                    let mut conn = pool.get().await?;
                    let ready: bool = redis::cmd("EXISTS")
                        .arg(keys::events_ready(prefix))
                        .query_async(&mut *conn)
                        .await?;
                    if !ready {
                        return anyhow::Ok(None);
                    }
                    // Scores can tie: fetch from the lower score inclusive and skip the ties at or
                    // before the cursor; ask for enough extra rows to cover them.
                    let mut out = Vec::with_capacity(limit);
                    let mut offset = 0usize;
                    loop {
                        let ids: Vec<(String, f64)> = redis::cmd("ZRANGE")
                            .arg(keys::events_index(prefix))
                            .arg(if lower.0 == i64::MIN {
                                "-inf".to_owned()
                            } else {
                                lower.0.to_string()
                            })
                            .arg("+inf")
                            .arg("BYSCORE")
                            .arg("LIMIT")
                            .arg(offset)
                            .arg(limit + 1)
                            .arg("WITHSCORES")
                            .query_async(&mut *conn)
                            .await?;
                        if ids.is_empty() {
                            return Ok(Some(out));
                        }
                        offset += ids.len();
                        let wanted: Vec<i64> = ids
                            .iter()
                            .filter_map(|(m, s)| Some((*s as i64, m.parse::<i64>().ok()?)))
                            .filter(|k| !(exclusive_lower && *k <= lower && cursor.is_some()))
                            .filter(|k| min_start.is_none_or(|ms| k.0 > score(ms)))
                            .map(|(_, id)| id)
                            .collect();
                        if !wanted.is_empty() {
                            let mut pipe = redis::pipe();
                            for id in &wanted {
                                pipe.cmd("HGET").arg(keys::event(prefix, *id)).arg("json");
                            }
                            let jsons: Vec<Option<String>> = pipe.query_async(&mut *conn).await?;
                            for (id, json) in wanted.iter().zip(jsons) {
                                let Some(e) = json
                                    .filter(|j| !j.is_empty())
                                    .and_then(|j| serde_json::from_str::<Event>(&j).ok())
                                    .filter(|e| e.id == *id)
                                else {
                                    // An index entry without its event: incomplete, ask PostgreSQL.
                                    return Ok(None);
                                };
                                out.push(Arc::new(e));
                                if out.len() == limit {
                                    return Ok(Some(out));
                                }
                            }
                        }
                    }
                }
                .await;
                match result {
                    Ok(v) => v,
                    Err(e) => {
                        Self::read_failed(&e);
                        None
                    }
                }
            }
        }
    }

    /// Rebuilds the cache in place from `events` (every row, read from PostgreSQL just before):
    /// stores each snapshot unless a newer version is cached, repairs entries whose content
    /// differs at the same version, drops entries of events that no longer exist, then marks the
    /// cache complete. Never empties it first, so no live event is ever missing.
    pub async fn rebuild(&self, events: &[Event]) -> anyhow::Result<RebuildReport> {
        let mut report = RebuildReport::default();
        match &self.inner.backend {
            Backend::None => return Ok(report),
            Backend::Memory(m) => {
                let mut m = m.write().await;
                let live: HashMap<i64, &Event> = events.iter().map(|e| (e.id, e)).collect();
                m.entries.retain(|id, _| {
                    let keep = live.contains_key(id);
                    if !keep {
                        report.removed += 1;
                    }
                    keep
                });
                for e in events {
                    let current = m.entries.get(&e.id).cloned();
                    // A cached version above the row is a write newer than our read: keep it.
                    let stale = match &current {
                        None => true,
                        Some((v, snap)) => {
                            *v < e.version || (*v == e.version && snap.as_deref() != Some(e))
                        }
                    };
                    if stale {
                        if let Some((_, Some(old))) = &current {
                            m.index.remove(&(score(old.starts_at), old.id));
                        }
                        if listed(e) {
                            m.index.insert((score(e.starts_at), e.id));
                        }
                        m.entries
                            .insert(e.id, (e.version, Some(Arc::new(e.clone()))));
                        report.written += 1;
                    }
                }
                let entries = &m.entries;
                let index: BTreeSet<(i64, i64)> = m
                    .index
                    .iter()
                    .copied()
                    .filter(|(_, id)| matches!(entries.get(id), Some((_, Some(e))) if listed(e)))
                    .collect();
                m.index = index;
                m.ready = true;
            }
            Backend::Redis {
                pool, prefix, near, ..
            } => {
                let mut conn = pool.get().await?;
                for e in events {
                    let (v, json): (Option<String>, Option<String>) = redis::cmd("HMGET")
                        .arg(keys::event(prefix, e.id))
                        .arg("v")
                        .arg("json")
                        .query_async(&mut *conn)
                        .await?;
                    let v: i64 = v.and_then(|v| v.parse().ok()).unwrap_or(-1);
                    let same = json
                        .as_deref()
                        .and_then(|j| serde_json::from_str::<Event>(j).ok())
                        .is_some_and(|c| &c == e);
                    let written = if v < e.version {
                        self.put_inner(e, None).await?
                    } else if v == e.version && !same {
                        // Same version, other content: only tampering gets there.
                        self.put_inner(e, Some(v)).await?
                    } else {
                        if v > e.version {
                            report.ahead.push((e.id, v));
                        }
                        false
                    };
                    if written {
                        report.written += 1;
                    }
                }
                // Drop entries of events that no longer exist (tombstones expire on their own).
                let live: std::collections::HashSet<i64> = events.iter().map(|e| e.id).collect();
                let mut cursor: u64 = 0;
                loop {
                    let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(keys::event_pattern(prefix))
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut *conn)
                        .await?;
                    for key in found {
                        let Some(id) = key.rsplit(':').next().and_then(|s| s.parse::<i64>().ok())
                        else {
                            continue;
                        };
                        if live.contains(&id) {
                            continue;
                        }
                        let json: Option<String> = redis::cmd("HGET")
                            .arg(&key)
                            .arg("json")
                            .query_async(&mut *conn)
                            .await?;
                        if json.as_deref() != Some("") {
                            let _: () = redis::cmd("DEL").arg(&key).query_async(&mut *conn).await?;
                            report.removed += 1;
                        }
                    }
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
                let index: Vec<String> = redis::cmd("ZRANGE")
                    .arg(keys::events_index(prefix))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut *conn)
                    .await?;
                let listed_ids: std::collections::HashSet<i64> =
                    events.iter().filter(|e| listed(e)).map(|e| e.id).collect();
                for m in index {
                    let keep = m.parse::<i64>().is_ok_and(|id| listed_ids.contains(&id));
                    if !keep {
                        let _: () = redis::cmd("ZREM")
                            .arg(keys::events_index(prefix))
                            .arg(&m)
                            .query_async(&mut *conn)
                            .await?;
                        report.removed += 1;
                    }
                }
                let _: () = redis::cmd("SET")
                    .arg(keys::events_ready(prefix))
                    .arg(1)
                    .query_async(&mut *conn)
                    .await?;
                // What this process kept (read before or during the rebuild) may be what it
                // repaired.
                near.clear();
            }
        }
        self.inner.dirty.store(false, Ordering::Relaxed);
        Ok(report)
    }
}

impl crate::state::AppState {
    /// The event cache (a part of the state, see [`crate::state`]).
    pub fn event_cache(&self) -> &EventCache {
        self.part()
            .unwrap_or_else(|| crate::state::missing_part("event cache"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, version: i64) -> Arc<Event> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "id": id, "host_id": 1, "name": format!("v{version}"), "description": "",
                "venue": "Hall", "starts_at": "2030-01-01T18:00:00Z",
                "ends_at": "2030-01-01T21:00:00Z", "capacity": 10, "reserved_seats": 0,
                "price": 0, "max_per_user": null, "waitlist_open": true, "status": "active",
                "cancelled_at": null, "version": version, "created_at": "2029-01-01T00:00:00Z"
            }))
            .expect("an event"),
        )
    }

    fn name(found: Option<Lookup>) -> Option<String> {
        match found? {
            Lookup::Hit(e) => Some(e.name.clone()),
            Lookup::Gone => Some("gone".to_owned()),
            Lookup::Miss => None,
        }
    }

    #[test]
    fn near_entries_only_move_forward_within_their_window() {
        let near = Near::new(Duration::from_secs(60));
        near.keep(1, 5, Some(event(1, 5)));
        // A read that started before this process wrote version 5 comes back with 4.
        near.keep(1, 4, Some(event(1, 4)));
        assert_eq!(name(near.get(1)).as_deref(), Some("v5"));
        near.keep(1, 6, Some(event(1, 6)));
        assert_eq!(name(near.get(1)).as_deref(), Some("v6"));
        // Gone outranks any snapshot.
        near.keep(1, i64::MAX, None);
        near.keep(1, 7, Some(event(1, 7)));
        assert_eq!(name(near.get(1)).as_deref(), Some("gone"));
        near.forget(1);
        assert_eq!(name(near.get(1)), None);
    }

    #[test]
    fn near_entries_expire_and_then_take_whatever_redis_holds() {
        let near = Near::new(Duration::from_millis(20));
        near.keep(1, i64::MAX, None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(name(near.get(1)), None, "expired: ask Redis");
        // Redis's answer replaces an expired entry even at a lower version.
        near.keep(1, 3, Some(event(1, 3)));
        assert_eq!(name(near.get(1)).as_deref(), Some("v3"));
    }

    #[test]
    fn a_zero_window_keeps_nothing() {
        let near = Near::new(Duration::ZERO);
        near.keep(1, 1, Some(event(1, 1)));
        assert_eq!(name(near.get(1)), None);
    }

    #[test]
    fn near_sweeps_expired_entries() {
        let near = Near::new(Duration::from_millis(1));
        for id in 0..NEAR_SWEEP_EVERY as i64 - 1 {
            near.keep(id, 1, None);
        }
        std::thread::sleep(Duration::from_millis(5));
        near.keep(-1, 1, None);
        assert_eq!(near.lock().entries.len(), 1);
    }
}

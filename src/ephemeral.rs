//! Short-lived shared facts with an expiry: revoked tokens, failed-login counters, idempotency
//! claims. One interface, two backends chosen like the rate limiter's: Redis when `redis.url`
//! is set (every node sees the same facts), else a map in this process (the single node).
//!
//! Nothing here is the system of record: losing it (a Redis restart) forgets revocations and
//! counters early, never books or charges anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// INCR that starts the key's expiry on its first count. KEYS[1]; ARGV[1] = ttl in ms.
const INCR_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

/// Writes that trigger a sweep of expired entries in the in-process map.
const SWEEP_EVERY: u64 = 1024;

#[derive(Default)]
struct Memory {
    entries: HashMap<String, (String, Instant)>,
    writes: u64,
}

impl Memory {
    fn live(&self, key: &str, now: Instant) -> Option<&String> {
        self.entries
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v)
    }

    fn write(&mut self, key: &str, value: String, until: Instant) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            self.entries.retain(|_, (_, u)| *u > now);
        }
        self.entries.insert(key.to_owned(), (value, until));
    }
}

enum Backend {
    Memory(Mutex<Memory>),
    Redis {
        conn: deadpool_redis::redis::aio::ConnectionManager,
        prefix: String,
        incr: deadpool_redis::redis::Script,
    },
}

/// The store; cheap to clone.
#[derive(Clone)]
pub struct Ephemeral {
    backend: Arc<Backend>,
}

impl std::fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

fn ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Ephemeral {
    /// In this process only.
    pub fn memory() -> Self {
        Self {
            backend: Arc::new(Backend::Memory(Mutex::new(Memory::default()))),
        }
    }

    /// In Redis, under `<prefix>:eph:`, on the shared multiplexed connection.
    pub fn redis(conn: deadpool_redis::redis::aio::ConnectionManager, prefix: &str) -> Self {
        Self {
            backend: Arc::new(Backend::Redis {
                conn,
                prefix: format!("{prefix}:eph:"),
                incr: deadpool_redis::redis::Script::new(INCR_LUA),
            }),
        }
    }

    /// `memory` or `redis`.
    pub fn kind(&self) -> &'static str {
        match *self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
        }
    }

    fn memory_map(m: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets `key` to `value` for `ttl`.
    pub async fn set(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()> {
        match &*self.backend {
            Backend::Memory(m) => {
                Self::memory_map(m).write(key, value.to_owned(), Instant::now() + ttl);
                Ok(())
            }
            Backend::Redis { conn, prefix, .. } => {
                let mut conn = conn.clone();
                deadpool_redis::redis::cmd("SET")
                    .arg(format!("{prefix}{key}"))
                    .arg(value)
                    .arg("PX")
                    .arg(ms(ttl))
                    .query_async::<()>(&mut conn)
                    .await?;
                Ok(())
            }
        }
    }

    /// Sets `key` to `value` for `ttl` unless it is set: `None` when this call set it, else the
    /// value already there.
    pub async fn set_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> anyhow::Result<Option<String>> {
        match &*self.backend {
            Backend::Memory(m) => {
                let mut map = Self::memory_map(m);
                let now = Instant::now();
                if let Some(existing) = map.live(key, now) {
                    return Ok(Some(existing.clone()));
                }
                map.write(key, value.to_owned(), now + ttl);
                Ok(None)
            }
            Backend::Redis { conn, prefix, .. } => {
                let mut conn = conn.clone();
                let key = format!("{prefix}{key}");
                let set: Option<String> = deadpool_redis::redis::cmd("SET")
                    .arg(&key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms(ttl))
                    .query_async(&mut conn)
                    .await?;
                if set.is_some() {
                    return Ok(None);
                }
                let existing: Option<String> = deadpool_redis::redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await?;
                // Expired between the two commands: as good as set by someone else just now.
                Ok(Some(existing.unwrap_or_else(|| value.to_owned())))
            }
        }
    }

    /// The values of `keys`, in order (`None` for absent or expired ones).
    pub async fn get_many(&self, keys: &[String]) -> anyhow::Result<Vec<Option<String>>> {
        match &*self.backend {
            Backend::Memory(m) => {
                let map = Self::memory_map(m);
                let now = Instant::now();
                Ok(keys.iter().map(|k| map.live(k, now).cloned()).collect())
            }
            Backend::Redis { conn, prefix, .. } => {
                let mut conn = conn.clone();
                let mut cmd = deadpool_redis::redis::cmd("MGET");
                for k in keys {
                    cmd.arg(format!("{prefix}{k}"));
                }
                Ok(cmd.query_async(&mut conn).await?)
            }
        }
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .get_many(&[key.to_owned()])
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    /// Adds one to the counter `key` and returns the new count. The first count starts the
    /// counter's `ttl`; later counts do not extend it (a fixed window).
    pub async fn incr(&self, key: &str, ttl: Duration) -> anyhow::Result<u64> {
        match &*self.backend {
            Backend::Memory(m) => {
                let mut map = Self::memory_map(m);
                let now = Instant::now();
                let (count, until) = match map.entries.get(key) {
                    Some((v, until)) if *until > now => (v.parse::<u64>().unwrap_or(0), *until),
                    _ => (0, now + ttl),
                };
                map.write(key, (count + 1).to_string(), until);
                Ok(count + 1)
            }
            Backend::Redis {
                conn, prefix, incr, ..
            } => {
                let mut conn = conn.clone();
                let n: u64 = incr
                    .key(format!("{prefix}{key}"))
                    .arg(ms(ttl))
                    .invoke_async(&mut conn)
                    .await?;
                Ok(n)
            }
        }
    }

    /// Removes `key`.
    pub async fn remove(&self, key: &str) -> anyhow::Result<()> {
        match &*self.backend {
            Backend::Memory(m) => {
                Self::memory_map(m).entries.remove(key);
                Ok(())
            }
            Backend::Redis { conn, prefix, .. } => {
                let mut conn = conn.clone();
                deadpool_redis::redis::cmd("DEL")
                    .arg(format!("{prefix}{key}"))
                    .query_async::<()>(&mut conn)
                    .await?;
                Ok(())
            }
        }
    }

    /// Entries held in this process (0 for Redis): the map does not grow without bound.
    pub fn local_len(&self) -> usize {
        match &*self.backend {
            Backend::Memory(m) => Self::memory_map(m).entries.len(),
            Backend::Redis { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_values_expire_and_counters_keep_their_window() {
        let e = Ephemeral::memory();
        e.set("a", "1", Duration::from_millis(30)).await.unwrap();
        assert_eq!(e.get("a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(
            e.set_if_absent("a", "2", Duration::from_secs(1))
                .await
                .unwrap()
                .as_deref(),
            Some("1")
        );
        assert_eq!(e.incr("n", Duration::from_millis(30)).await.unwrap(), 1);
        assert_eq!(e.incr("n", Duration::from_secs(60)).await.unwrap(), 2);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(e.get("a").await.unwrap(), None);
        assert_eq!(
            e.incr("n", Duration::from_secs(1)).await.unwrap(),
            1,
            "the second count did not extend the first window"
        );
        assert_eq!(
            e.set_if_absent("a", "3", Duration::from_secs(1))
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn memory_map_sweeps_expired_entries() {
        let e = Ephemeral::memory();
        for i in 0..SWEEP_EVERY {
            e.set(&format!("k{i}"), "v", Duration::from_millis(1))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        for i in 0..SWEEP_EVERY {
            e.set(&format!("j{i}"), "v", Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert!(
            e.local_len() <= SWEEP_EVERY as usize + 1,
            "{}",
            e.local_len()
        );
    }
}

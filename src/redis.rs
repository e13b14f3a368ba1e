//! Redis connection pool (deadpool-redis), used when `redis.url` is set: shared cache, rate
//! limits and outcome fan-out across API nodes. Without it the process uses in-process
//! equivalents.
//!
//! Reads `[redis]`: `url`, `password` (env `REDIS_PASSWORD`), `pool_size`, `timeout_ms`.

use std::time::Duration;

/// Every Redis key the application writes, in one place. All keys start with
/// `redis.key_prefix` (default `atomicseats`) so they never collide with other data in a shared
/// Redis.
pub mod keys {
    /// Rate-limit bucket (GCRA theoretical arrival time, ms) of `class` for `who`
    /// (`user:<id>` or `ip:<addr>`). Expires when the bucket is full again.
    pub fn rate_limit(prefix: &str, class: &str, who: &str) -> String {
        format!("{prefix}:rl:{class}:{who}")
    }

    /// Event snapshot: HASH `{ v: version, json: snapshot | "" (tombstone) }`.
    pub fn event(prefix: &str, id: i64) -> String {
        format!("{prefix}:event:{id}")
    }

    /// `SCAN` pattern matching every [`event`] key.
    pub fn event_pattern(prefix: &str) -> String {
        format!("{prefix}:event:*")
    }

    /// Listing index: ZSET of active events, member = zero-padded id, score = `starts_at` µs.
    pub fn events_index(prefix: &str) -> String {
        format!("{prefix}:events:by_start")
    }

    /// Present while the listing index is complete (set by a full rebuild).
    pub fn events_ready(prefix: &str) -> String {
        format!("{prefix}:events:ready")
    }
}

use deadpool_redis::{Config, Pool, Runtime};
use secrecy::ExposeSecret;

use crate::config::RedisSettings;

/// The server URL with the password from `redis.password` filled in.
fn server_url(settings: &RedisSettings) -> anyhow::Result<url::Url> {
    let mut url = url::Url::parse(&settings.url)
        .map_err(|e| anyhow::anyhow!("`redis.url` is not a URL: {e}"))?;
    if let Some(password) = &settings.password {
        let password = password.expose_secret();
        if !password.is_empty() && url.password().is_none() {
            url.set_password(Some(password))
                .map_err(|()| anyhow::anyhow!("`redis.url` cannot carry a password"))?;
        }
    }
    Ok(url)
}

/// One multiplexed connection for the hot paths (cache reads, revocation checks, idempotency
/// claims, rate limits): every concurrent request pipelines on it, where a pool would hand out
/// one connection per request (and check each on return). It connects lazily and reconnects
/// on its own; each command is bounded by `redis.timeout_ms`. `None` without Redis.
pub fn build_shared(
    settings: &RedisSettings,
) -> anyhow::Result<Option<deadpool_redis::redis::aio::ConnectionManager>> {
    if settings.url.trim().is_empty() {
        return Ok(None);
    }
    let timeout = Duration::from_millis(settings.timeout_ms);
    let client = deadpool_redis::redis::Client::open(server_url(settings)?.as_str())
        .map_err(|e| anyhow::anyhow!("`redis.url`: {e}"))?;
    // Reconnect quickly after an outage (from 50 ms, at most a second apart).
    let config = deadpool_redis::redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1));
    let manager =
        deadpool_redis::redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("building the Redis connection: {e}"))?;
    Ok(Some(manager))
}

/// Builds the pool, or `None` when no Redis is configured. Connections open lazily.
pub fn build_pool(settings: &RedisSettings) -> anyhow::Result<Option<Pool>> {
    if settings.url.trim().is_empty() {
        return Ok(None);
    }
    let url = server_url(settings)?;
    let timeout = Duration::from_millis(settings.timeout_ms);
    let mut cfg = Config::from_url(url.as_str());
    cfg.pool = Some(deadpool_redis::PoolConfig {
        max_size: settings.pool_size,
        timeouts: deadpool_redis::Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        },
        ..Default::default()
    });
    let pool = cfg
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|e| anyhow::anyhow!("building the Redis pool: {e}"))?;
    Ok(Some(pool))
}

/// `PING`, bounded by `timeout`.
pub async fn ping(pool: &Pool, timeout: Duration) -> anyhow::Result<()> {
    let fut = async {
        let mut conn = pool.get().await?;
        let pong: String = deadpool_redis::redis::cmd("PING")
            .query_async(&mut *conn)
            .await?;
        anyhow::ensure!(pong == "PONG", "unexpected PING reply");
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {} ms", timeout.as_millis()))?
}

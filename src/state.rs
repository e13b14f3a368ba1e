//! [`AppState`]: everything a role needs, built once per process and cheap to clone.
//!
//! This module is infrastructure: it knows the configuration, the pools, the token keys, the
//! rate limiter and the short-lived store, and nothing of the features. A feature keeps what it
//! needs at run time (the booking queue, the event cache, the mailer…) as a **part**: the
//! composition root ([`crate::app::build_state`], the only constructor) inserts it, and the
//! feature reads it back through an accessor it defines next to its own code
//! (`impl AppState { pub fn booking_queue(&self) -> &BookingQueue }` in `bookings`). So the
//! features depend on the state, never the other way round.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Settings;
use crate::db::PgPool;
use crate::ephemeral::Ephemeral;
use crate::http::auth::TokenKeys;
use crate::http::rate_limit::RateLimiter;

/// Shared dependencies of every role. Clone it freely: the fields live behind one `Arc`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    db: PgPool,
    redis: Option<deadpool_redis::Pool>,
    redis_shared: Option<deadpool_redis::redis::aio::ConnectionManager>,
    tokens: TokenKeys,
    rate_limiter: RateLimiter,
    ephemeral: Ephemeral,
    outbox_signal: tokio::sync::Notify,
    closing: tokio_util::sync::CancellationToken,
    parts: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    /// What the roles of this process report about themselves (`GET /ready` on the metrics
    /// listener): e.g. the booking partitions a worker owns.
    reported: std::sync::RwLock<serde_json::Map<String, serde_json::Value>>,
}

/// An [`AppState`] being assembled: the infrastructure is built, the features add their parts.
pub struct StateBuilder {
    inner: Inner,
}

impl AppState {
    /// The infrastructure for `role` (used in `application_name`): pools are created lazily, so
    /// this succeeds while a dependency is down. Features add their parts to the builder.
    pub fn builder(settings: Settings, role: &str) -> anyhow::Result<StateBuilder> {
        let db = crate::db::build_pool(&settings.database, role)?;
        let redis = crate::redis::build_pool(&settings.redis)?;
        let redis_shared = crate::redis::build_shared(&settings.redis)?;
        let tokens = TokenKeys::from_settings(&settings.auth, settings.environment)?;
        let rate_limiter = RateLimiter::new(
            &settings.rate_limit,
            redis_shared
                .clone()
                .map(|conn| (conn, settings.redis.key_prefix.clone())),
        )?;
        let ephemeral = match &redis_shared {
            Some(conn) => Ephemeral::redis(conn.clone(), &settings.redis.key_prefix),
            None => Ephemeral::memory(),
        };
        Ok(StateBuilder {
            inner: Inner {
                settings,
                db,
                redis,
                redis_shared,
                tokens,
                rate_limiter,
                ephemeral,
                outbox_signal: tokio::sync::Notify::new(),
                closing: tokio_util::sync::CancellationToken::new(),
                parts: HashMap::new(),
                reported: std::sync::RwLock::default(),
            },
        })
    }

    /// The part of type `T` a feature registered, if it did.
    pub fn part<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.inner
            .parts
            .get(&TypeId::of::<T>())
            .and_then(|p| p.downcast_ref::<T>())
    }

    /// The configuration this process runs with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The Postgres pool.
    pub fn db(&self) -> &PgPool {
        &self.inner.db
    }

    /// The token signing keys.
    pub fn tokens(&self) -> &TokenKeys {
        &self.inner.tokens
    }

    /// The rate limiter.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.rate_limiter
    }

    /// Signalled after commits that wrote outbox rows.
    pub fn outbox_signal(&self) -> &tokio::sync::Notify {
        &self.inner.outbox_signal
    }

    /// Cancelled when this process's HTTP server begins to stop: long-lived responses (event
    /// streams) end then, so that they do not hold up the drain of the others.
    pub fn closing(&self) -> &tokio_util::sync::CancellationToken {
        &self.inner.closing
    }

    /// Short-lived shared facts (revoked tokens, login counters, idempotency claims).
    pub fn ephemeral(&self) -> &Ephemeral {
        &self.inner.ephemeral
    }

    /// The Redis pool, when `redis.url` is configured.
    pub fn redis(&self) -> Option<&deadpool_redis::Pool> {
        self.inner.redis.as_ref()
    }

    /// Records what a role reports about itself under `key` (replacing the previous value).
    pub fn report(&self, key: &str, value: serde_json::Value) {
        if let Ok(mut map) = self.inner.reported.write() {
            map.insert(key.to_owned(), value);
        }
    }

    /// Everything the roles of this process reported.
    pub fn reported(&self) -> serde_json::Map<String, serde_json::Value> {
        self.inner
            .reported
            .read()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

impl StateBuilder {
    /// The configuration being built for.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The Redis pool, when configured.
    pub fn redis(&self) -> Option<&deadpool_redis::Pool> {
        self.inner.redis.as_ref()
    }

    /// The shared multiplexed Redis connection, when configured.
    pub fn redis_shared(&self) -> Option<&deadpool_redis::redis::aio::ConnectionManager> {
        self.inner.redis_shared.as_ref()
    }

    /// Adds (or replaces) the part of type `T`.
    #[must_use]
    pub fn with<T: Any + Send + Sync>(mut self, part: T) -> Self {
        self.inner.parts.insert(TypeId::of::<T>(), Box::new(part));
        self
    }

    /// The finished state.
    pub fn build(self) -> AppState {
        AppState {
            inner: Arc::new(self.inner),
        }
    }
}

/// The message of the panic an accessor raises for a part nobody registered: a programming
/// error of the composition root, caught by its test (`app::tests`), never by a request.
pub fn missing_part(name: &str) -> ! {
    unreachable!("the state has no {name}: register it in app::build_state")
}

//! [`AppState`]: everything a role needs, built once per process and cheap to clone.

use std::sync::Arc;

use crate::bookings::BookingQueue;
use crate::bookings::outcomes::OutcomeHub;
use crate::cache::EventCache;
use crate::config::{QueueKind, Settings};
use crate::db::PgPool;
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
    tokens: TokenKeys,
    rate_limiter: RateLimiter,
    event_cache: EventCache,
    booking_queue: BookingQueue,
    outcomes: OutcomeHub,
    mailer: crate::mail::Mailer,
    notification_queue: crate::notifications::NotificationQueue,
    outbox_signal: tokio::sync::Notify,
    ephemeral: crate::ephemeral::Ephemeral,
}

impl AppState {
    /// Builds the state for `role` (used in `application_name`): pools are created lazily, so
    /// this succeeds while a dependency is down.
    pub fn build(settings: Settings, role: &str) -> anyhow::Result<Self> {
        let db = crate::db::build_pool(&settings.database, role)?;
        let redis = crate::redis::build_pool(&settings.redis)?;
        let tokens = TokenKeys::from_settings(&settings.auth, settings.environment)?;
        let rate_limiter = RateLimiter::new(
            &settings.rate_limit,
            redis
                .clone()
                .map(|pool| (pool, settings.redis.key_prefix.clone())),
        )?;
        // Redis when configured; in-process only when every writer lives in this process
        // (in-process queue); otherwise no cache, so nothing can go stale.
        let event_cache = match (&redis, settings.queue.kind) {
            (Some(pool), _) => EventCache::redis(pool.clone(), settings.redis.key_prefix.clone()),
            (None, QueueKind::Memory) => EventCache::memory(),
            (None, QueueKind::Kafka) => EventCache::none(),
        };
        let ephemeral = match &redis {
            Some(pool) => {
                crate::ephemeral::Ephemeral::redis(pool.clone(), &settings.redis.key_prefix)
            }
            None => crate::ephemeral::Ephemeral::memory(),
        };
        let booking_queue = BookingQueue::from_settings(&settings)?;
        let mailer = crate::mail::Mailer::from_settings(&settings.mail)?;
        let notification_queue = crate::notifications::NotificationQueue::from_settings(&settings)?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                db,
                redis,
                tokens,
                rate_limiter,
                event_cache,
                booking_queue,
                outcomes: OutcomeHub::default(),
                mailer,
                notification_queue,
                outbox_signal: tokio::sync::Notify::new(),
                ephemeral,
            }),
        })
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

    /// The event cache.
    pub fn event_cache(&self) -> &EventCache {
        &self.inner.event_cache
    }

    /// The booking queue.
    pub fn booking_queue(&self) -> &BookingQueue {
        &self.inner.booking_queue
    }

    /// The mail sender.
    pub fn mailer(&self) -> &crate::mail::Mailer {
        &self.inner.mailer
    }

    /// Where notification ids go.
    pub fn notification_queue(&self) -> &crate::notifications::NotificationQueue {
        &self.inner.notification_queue
    }

    /// Signalled after commits that wrote outbox rows.
    pub fn outbox_signal(&self) -> &tokio::sync::Notify {
        &self.inner.outbox_signal
    }

    /// Waiters for booking outcomes in this process.
    pub fn outcomes(&self) -> &OutcomeHub {
        &self.inner.outcomes
    }

    /// Short-lived shared facts (revoked tokens, login counters, idempotency claims).
    pub fn ephemeral(&self) -> &crate::ephemeral::Ephemeral {
        &self.inner.ephemeral
    }

    /// The Redis pool, when `redis.url` is configured.
    pub fn redis(&self) -> Option<&deadpool_redis::Pool> {
        self.inner.redis.as_ref()
    }
}

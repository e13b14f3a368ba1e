//! [`AppState`]: everything a role needs, built once per process and cheap to clone.

use std::sync::Arc;

use crate::config::Settings;
use crate::db::PgPool;

/// Shared dependencies of every role. Clone it freely: the fields live behind one `Arc`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    db: PgPool,
    redis: Option<deadpool_redis::Pool>,
}

impl AppState {
    /// Builds the state for `role` (used in `application_name`): pools are created lazily, so
    /// this succeeds while a dependency is down.
    pub fn build(settings: Settings, role: &str) -> anyhow::Result<Self> {
        let db = crate::db::build_pool(&settings.database, role)?;
        let redis = crate::redis::build_pool(&settings.redis)?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                db,
                redis,
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

    /// The Redis pool, when `redis.url` is configured.
    pub fn redis(&self) -> Option<&deadpool_redis::Pool> {
        self.inner.redis.as_ref()
    }
}

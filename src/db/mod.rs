//! PostgreSQL access: the connection pool, the generated schema (and the views, by hand) and
//! embedded migrations.
//!
//! Reads `[database]`: `url`, `pool_size`, `connect_timeout_ms`, `wait_timeout_ms`,
//! `statement_timeout_ms`. Every connection is tagged with `application_name =
//! atomicseats-<role>` and gets the configured `statement_timeout`, so a stuck query in one role
//! is visible in `pg_stat_activity` and cannot hold a lock forever.

pub mod migrate;
pub mod schema;
pub mod sql;
pub mod views;

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{self, Pool};

use crate::config::DatabaseSettings;

diesel::define_sql_function! {
    /// SQL `lower(text)` (matches the `lower(...)` indexes).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The Postgres pool shared by a process.
pub type PgPool = Pool<AsyncPgConnection>;
/// A connection checked out of [`PgPool`].
pub type PgConn = deadpool::Object<AsyncPgConnection>;
/// Why a checkout failed (timeout, connection refused): a 503 at the HTTP boundary.
pub type PoolError = deadpool::PoolError;

/// The URL a role connects with: the configured URL plus `application_name`,
/// `statement_timeout` (through `options`) and `connect_timeout`.
pub fn connection_url(settings: &DatabaseSettings, role: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(&settings.url)
        .map_err(|e| anyhow::anyhow!("`database.url` is not a URL: {e}"))?;
    let connect_timeout_secs = settings.connect_timeout_ms.div_ceil(1000).max(1);
    // Built by hand: tokio-postgres percent-decodes parameters but does not read `+` as a
    // space, which `query_pairs_mut` would write.
    let ours = format!(
        "application_name=atomicseats-{role}&options=-c%20statement_timeout%3D{}&connect_timeout={connect_timeout_secs}",
        settings.statement_timeout_ms
    );
    let query = match url.query() {
        Some(q) if !q.is_empty() => format!("{q}&{ours}"),
        _ => ours,
    };
    url.set_query(Some(&query));
    Ok(url.to_string())
}

/// Builds the pool. Connections are opened lazily, so this succeeds while Postgres is down;
/// `/ready` reports it and requests get 503 until it is back.
pub fn build_pool(settings: &DatabaseSettings, role: &str) -> anyhow::Result<PgPool> {
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new(connection_url(settings, role)?);
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(Duration::from_millis(settings.wait_timeout_ms)))
        .create_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .recycle_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .runtime(::deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| anyhow::anyhow!("building the database pool: {e}"))
}

/// `SELECT 1` through the pool, bounded by `timeout`.
pub async fn ping(pool: &PgPool, timeout: Duration) -> anyhow::Result<()> {
    use diesel_async::RunQueryDsl;
    let fut = async {
        let mut conn = pool.get().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {} ms", timeout.as_millis()))?
}

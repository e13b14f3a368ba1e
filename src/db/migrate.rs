//! Embedded diesel migrations, applied by `atomicseats migrate` and (with
//! `database.migrate_on_start`) when `serve` or `all` starts. Workers never migrate, so they
//! cannot race the API over the schema.

use diesel::Connection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// Every migration under `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

async fn with_sync_conn<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut SyncConn) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let url = url.to_owned();
    // diesel_migrations is synchronous: run it on the blocking pool through the wrapper that
    // drives the async connection from there (as crates.io's `migrate` does).
    tokio::task::spawn_blocking(move || {
        let mut conn = SyncConn::establish(&url)
            .map_err(|e| anyhow::anyhow!("connecting to the database: {e}"))?;
        f(&mut conn)
    })
    .await?
}

/// Applies every pending migration; returns the versions applied.
pub async fn run_pending(url: &str) -> anyhow::Result<Vec<String>> {
    with_sync_conn(url, |conn| {
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))?;
        Ok(applied.iter().map(ToString::to_string).collect())
    })
    .await
}

/// Reverts every applied migration (newest first); returns the versions reverted.
pub async fn revert_all(url: &str) -> anyhow::Result<Vec<String>> {
    with_sync_conn(url, |conn| {
        let reverted = conn
            .revert_all_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("reverting migrations: {e}"))?;
        Ok(reverted.iter().map(ToString::to_string).collect())
    })
    .await
}

/// Versions that are embedded but not yet applied.
pub async fn pending(url: &str) -> anyhow::Result<Vec<String>> {
    with_sync_conn(url, |conn| {
        let pending = conn
            .pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("listing migrations: {e}"))?;
        Ok(pending.iter().map(|m| m.name().to_string()).collect())
    })
    .await
}

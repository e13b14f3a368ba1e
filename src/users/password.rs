//! bcrypt hashing and verification, on the blocking pool (they take ~250 ms at cost 12).

use std::sync::OnceLock;

use crate::telemetry::spawn_blocking_in_span;

/// Hashes `password` at `cost`.
pub async fn hash(password: String, cost: u32) -> anyhow::Result<String> {
    spawn_blocking_in_span(move || bcrypt::hash(password, cost))
        .await?
        .map_err(|e| anyhow::anyhow!("bcrypt hash failed: {e}"))
}

/// Verifies `password` against `hash`. When there is no user (`hash` is `None`), it verifies
/// against a fixed dummy hash of the same cost, so that an unknown user and a wrong password
/// take the same time and give the same answer.
pub async fn verify(password: String, hash: Option<String>, cost: u32) -> anyhow::Result<bool> {
    let known = hash.is_some();
    let hash = match hash {
        Some(h) => h,
        None => dummy_hash(cost).await?,
    };
    let ok =
        spawn_blocking_in_span(move || bcrypt::verify(password, &hash).unwrap_or(false)).await?;
    Ok(ok && known)
}

static DUMMY: OnceLock<(u32, String)> = OnceLock::new();

async fn dummy_hash(cost: u32) -> anyhow::Result<String> {
    if let Some((c, h)) = DUMMY.get()
        && *c == cost
    {
        return Ok(h.clone());
    }
    let h = hash("not-a-real-password-just-timing".to_owned(), cost).await?;
    let _ = DUMMY.set((cost, h.clone()));
    Ok(h)
}

//! Running roles: each is `async fn(AppState, CancellationToken) -> anyhow::Result<()>`;
//! [`run_all`] runs several on one token (the `all` subcommand and `serve`'s side tasks).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// A role's future, boxed so that different roles fit in one list.
pub type RoleFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A named role, ready to run.
pub struct Role {
    /// Name used in logs (`serve`, `work-bookings`, ...).
    pub name: &'static str,
    /// The running role.
    pub future: RoleFuture,
}

impl Role {
    /// Wraps `f(state, token)` as a named role.
    pub fn new<F, Fut>(
        name: &'static str,
        f: F,
        state: &AppState,
        token: &CancellationToken,
    ) -> Self
    where
        F: FnOnce(AppState, CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self {
            name,
            future: Box::pin(f(state.clone(), token.clone())),
        }
    }
}

/// The roles of the single-node install: HTTP API, reconciliation schedule, booking worker,
/// notification worker, the waiting rooms' pacer and the outbox relay.
pub fn single_node(state: &AppState, token: &CancellationToken) -> Vec<Role> {
    vec![
        Role::new("serve", crate::app::serve, state, token),
        Role::new("reconcile", crate::reconcile::run, state, token),
        Role::new("work-bookings", crate::bookings::run_worker, state, token),
        Role::new(
            "work-notify",
            crate::notifications::worker::run,
            state,
            token,
        ),
        Role::new(
            "waiting-room",
            crate::waiting_room::pacer::run,
            state,
            token,
        ),
        Role::new(
            "outbox-relay",
            crate::notifications::worker::run_relay,
            state,
            token,
        ),
    ]
}

/// `roles` plus the internal metrics listener (`metrics.listen`; idle when unset), so that
/// every role, not only the API, can be scraped.
pub fn with_metrics(
    mut roles: Vec<Role>,
    state: &AppState,
    token: &CancellationToken,
) -> Vec<Role> {
    roles.push(Role::new(
        "metrics",
        crate::http::metrics::run_listener,
        state,
        token,
    ));
    roles
}

/// Runs `roles` on `token`. A role that returns before the token is cancelled (with an error or
/// not) is named in the log and cancels the others. After cancellation the rest get `drain` to
/// finish, then are aborted. Returns an error naming every role that failed.
pub async fn run_all(
    roles: Vec<Role>,
    token: CancellationToken,
    drain: Duration,
) -> anyhow::Result<()> {
    let mut set = JoinSet::new();
    for role in roles {
        let name = role.name;
        let fut = role.future;
        set.spawn(async move { (name, fut.await) });
    }
    let mut failed: Vec<String> = Vec::new();

    let mut record =
        |joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
         cancelled: bool| {
            match joined {
                Ok((name, Ok(()))) if cancelled => tracing::info!(role = name, "role stopped"),
                Ok((name, Ok(()))) => {
                    tracing::error!(role = name, "role exited before shutdown was requested");
                    failed.push(format!("{name}: exited unexpectedly"));
                }
                Ok((name, Err(e))) => {
                    tracing::error!(role = name, error = ?e, "role failed");
                    failed.push(format!("{name}: {e:#}"));
                }
                Err(e) => {
                    tracing::error!(error = %e, "role panicked or was aborted");
                    failed.push(format!("a role panicked: {e}"));
                }
            }
        };

    tokio::select! {
        () = token.cancelled() => {}
        Some(first) = set.join_next() => {
            record(first, token.is_cancelled());
            token.cancel();
        }
    }
    let deadline = tokio::time::sleep(drain);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = set.join_next() => match next {
                Some(joined) => record(joined, true),
                None => break,
            },
            () = &mut deadline => {
                tracing::warn!(remaining = set.len(), "drain timeout reached, aborting remaining roles");
                set.abort_all();
                while set.join_next().await.is_some() {}
                failed.push("drain timeout reached".to_owned());
                break;
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failed.join("; "))
    }
}

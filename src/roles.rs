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

/// A process's set of roles, by the subcommand that starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// `all`: every role, the single-node install.
    All,
    /// `serve`: the API, the reconciliation schedule, the relay of batches left by workers.
    Serve,
    /// `work-bookings`: the booking writers, the waiting rooms' pacer (admission follows the
    /// seats the writers leave) and the outbox relay.
    WorkBookings,
    /// `work-notify`: the notifier.
    WorkNotify,
    /// `reconcile --schedule`: reconciliation on its cron schedule.
    Reconcile,
}

/// The roles `process` runs (each list written once, here).
pub fn of(process: Process, state: &AppState, token: &CancellationToken) -> Vec<Role> {
    let role = |name, f: fn(AppState, CancellationToken) -> RoleFuture| Role {
        name,
        future: f(state.clone(), token.clone()),
    };
    let serve = || role("serve", |s, t| Box::pin(crate::app::serve(s, t)));
    let reconcile = || role("reconcile", |s, t| Box::pin(crate::reconcile::run(s, t)));
    let bookings = || {
        role("work-bookings", |s, t| {
            Box::pin(crate::bookings::run_worker(s, t))
        })
    };
    let notify = || {
        role("work-notify", |s, t| {
            Box::pin(crate::notifications::worker::run(s, t))
        })
    };
    let pacer = || {
        role("waiting-room", |s, t| {
            Box::pin(crate::waiting_room::pacer::run(s, t))
        })
    };
    let relay = || {
        role("outbox-relay", |s, t| {
            Box::pin(crate::notifications::worker::run_relay(s, t))
        })
    };
    match process {
        Process::All => vec![serve(), reconcile(), bookings(), notify(), pacer(), relay()],
        Process::Serve => vec![
            serve(),
            reconcile(),
            // Expands only the batches that workers left waiting (not the fresh ones of a sale).
            role("outbox-relay", |s, t| {
                Box::pin(crate::notifications::worker::run_relay_apart(s, t))
            }),
        ],
        Process::WorkBookings => vec![bookings(), pacer(), relay()],
        Process::WorkNotify => vec![notify()],
        Process::Reconcile => vec![reconcile()],
    }
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

//! Tracing subscriber set-up and the helpers that keep spans across threads.
//!
//! Reads `[log]`: `format` (`pretty` | `json`) and `level` (an `EnvFilter` directive that
//! `RUST_LOG` overrides). Never log passwords, tokens, emails or request bodies: identifiers go
//! in fields (`user.id`, `event.id`), not personal data.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Safe to call more than once (later calls do nothing), so
/// tests can call it from every test.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let explicit_actix = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| settings.level.clone())
        .contains("actix_http");
    // tokio-postgres logs statement parameters (password hashes, emails) at debug: never let a
    // verbose RUST_LOG turn them on.
    let mut filter = match "tokio_postgres=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    // actix's connection dispatcher logs a client's malformed request or dropped connection at
    // ERROR ("stream error: …"): a client's mistake, not the server's. Silenced unless the
    // filter names `actix_http` explicitly (then it is what the operator asked for).
    if !explicit_actix && let Ok(directive) = "actix_http::h1::dispatcher=off".parse() {
        filter = filter.add_directive(directive);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    // Err means a subscriber is already installed (a second init in tests): keep it.
    drop(result);
}

/// Runs CPU-bound work (bcrypt) on the blocking pool inside the caller's span.
pub async fn spawn_blocking_in_span<F, R>(f: F) -> anyhow::Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| anyhow::anyhow!("blocking task failed: {e}"))
}

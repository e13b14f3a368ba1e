//! AtomicSeats: a ticket-booking backend that never oversells and stays fast during a flash
//! sale.
//!
//! Crate map (features over a thin infrastructure layer):
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command line: one subcommand per role |
//! | [`config`] | layered, validated [`config::Settings`] |
//! | [`telemetry`] | tracing set-up |
//! | [`shutdown`] | SIGINT/SIGTERM → one cancellation token |
//! | [`state`] | [`state::AppState`], the dependencies every role shares (no feature types) |
//! | [`app`] | the composition root: builds the state with every feature's parts |
//! | [`roles`] | running roles together (`all`) |
//! | [`error`] | the API error type and its JSON envelope |
//! | [`db`] | PostgreSQL pool, schema, migrations |
//! | [`redis`] | Redis pool |
//! | [`kafka`] | Kafka client settings, producer, consumer settings, topics (both queues) |
//! | [`http`] | the actix application, guards, health, metrics, extractors |
//! | [`openapi`] | the OpenAPI document and the reference page |
//! | [`users`] | accounts, tokens, passwords |
//! | [`admin`] | admin-only endpoints |
//! | [`events`] | hosting and listing events |
//! | [`cache`] | the event cache (Redis or in-process) |
//! | [`bookings`] | booking engine and worker, the buyer's history |
//! | [`tickets`] | ticket types: prices, quotas, caps, sales windows |
//! | [`payments`] | paying holds (manual, Stripe), the money ledger, refunds |
//! | [`waiting_room`] | the on-sale queue: draw, pacing by the seats left, admission tokens |
//! | [`analytics`] | admin analytics and per-event stats |
//! | [`notifications`] | outbox relay, email worker, templates |
//! | [`mail`] | SMTP (lettre) or log transport |
//! | [`ephemeral`] | short-lived shared facts (revocations, login counts, idempotency claims) |
//! | [`reconcile`] | reconciliation passes and their schedule |

// The OpenAPI document is one `json!` tree, deeper than the default limit.
#![recursion_limit = "256"]

pub mod admin;
pub mod analytics;
pub mod app;
pub mod bookings;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod ephemeral;
pub mod error;
pub mod events;
pub mod http;
pub mod kafka;
pub mod mail;
pub mod notifications;
pub mod openapi;
pub mod payments;
pub mod reconcile;
pub mod redis;
pub mod roles;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod tickets;
pub mod users;
pub mod waiting_room;
pub mod web;

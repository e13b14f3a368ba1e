//! The one integration-test binary: the real app, real PostgreSQL (and Redis where the code
//! under test talks to it), a private database per test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test set-up fails loudly"
)]

mod helpers;

mod analytics;
mod architecture;
mod booking_rules;
mod bookings;
mod browser;
mod cache;
mod checkout;
mod cli;
mod config;
mod crash;
mod demotion;
mod errors;
mod events;
mod health;
mod history;
mod hostile;
mod legacy;
mod migrations;
mod notifications;
mod openapi;
mod payment_faults;
mod rate_limit;
mod schema;
mod security;
mod shutdown;
mod users;
mod waiting_room;
mod web;

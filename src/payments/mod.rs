//! Payments: paying a hold, and refunds. Money is a ledger (`payments`: one row per capture and
//! per refund, never changed); what a payment does to seats is decided by the booking writer.
//!
//! - **Providers** ([`Provider`]): `manual` (the host or an admin records a bank transfer or
//!   cash: `POST /api/bookings/{id}/mark-paid`) and `stripe` (a Checkout Session created over
//!   Stripe's REST API with an `Idempotency-Key`, [`stripe`]). Free seats need no payment: the
//!   writer confirms them at once.
//! - **Capture**: the webhook ([`stripe::verify`]: `Stripe-Signature`, HMAC-SHA256 over
//!   `timestamp.payload`, tolerance, constant-time comparison; each Stripe event id processed
//!   once) or the host's mark writes the ledger row and marks the payment session `captured`
//!   in one transaction. The event's booking writer applies it on its next sweep
//!   ([`crate::bookings::writer::Writer::sweep`]): it confirms the hold, re-acquires the seats
//!   of a hold that expired if they are free, and otherwise refunds — never an oversell, never
//!   a paid buyer without a ticket or a refund.
//! - **Refunds** travel as outbox rows of kind [`REFUND_JOB`]: the notifier runs them through
//!   the provider ([`refund::execute`]) with the retries and dead letters emails have, then
//!   writes the ledger row and emails the buyer.
//!
//! Routes: `POST /api/bookings/{id}/pay`, `POST /api/bookings/{id}/release`,
//! `POST /api/bookings/{id}/mark-paid`, `POST /api/bookings/{id}/refund`,
//! `POST /api/payments/stripe/webhook`. Reads `[payments]`.

pub mod ledger;
pub mod refund;
pub mod routes;
pub mod stripe;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::http::{rate_limit, resource};

/// The outbox kind of a refund to run through the provider.
pub const REFUND_JOB: &str = crate::notifications::kind::REFUND;

/// Registers the payment routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/bookings/{id}/pay")
            .wrap(from_fn(rate_limit::write))
            .post(routes::pay),
    )
    .service(
        resource("/api/bookings/{id}/release")
            .wrap(from_fn(rate_limit::write))
            .post(routes::release),
    )
    .service(
        resource("/api/bookings/{id}/mark-paid")
            .wrap(from_fn(rate_limit::write))
            .post(routes::mark_paid),
    )
    .service(
        resource("/api/bookings/{id}/refund")
            .wrap(from_fn(rate_limit::write))
            .post(routes::refund),
    )
    .service(
        resource("/api/payments/stripe/webhook")
            .wrap(from_fn(rate_limit::webhook))
            .post(routes::stripe_webhook),
    );
}

/// The payments part of the state: the Stripe client, when Stripe is configured.
pub struct Payments {
    /// `None`: no secret key configured, events cannot take Stripe payments here.
    pub stripe: Option<stripe::Client>,
}

impl Payments {
    /// From `[payments]`.
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        Ok(Self {
            stripe: stripe::Client::from_settings(&settings.payments)?,
        })
    }
}

impl crate::state::AppState {
    /// The payments part.
    pub fn payments(&self) -> &Payments {
        self.part::<Payments>()
            .unwrap_or_else(|| crate::state::missing_part("payments"))
    }
}

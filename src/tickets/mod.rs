//! Ticket types: what a buyer picks (a name, a price, an optional quota, per-buyer cap and
//! sales window). An event's `capacity` stays the shared limit over its types; the booking
//! writer checks quotas, caps and windows in the same pass as capacity
//! ([`crate::bookings::domain::allocate`]) and the database `CHECK`s each type's quota.
//!
//! Every event has a default type (made by the database when the event is inserted, priced at
//! the event's price): a booking without `ticketTypeId` buys it.
//!
//! Routes: `GET /api/events/{id}/ticket-types` (public; its host and admins also see hidden
//! types), `POST` (the event's host or an admin), `PATCH` and `DELETE
//! /api/events/{id}/ticket-types/{typeId}`. A type with sales is never deleted, only hidden.
//! Each write takes the event row and bumps its version, so the writer decides with the new
//! types from its next batch.

pub mod model;
pub mod routes;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::http::{rate_limit, resource};

/// Registers the ticket type routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/events/{id}/ticket-types")
            .wrap(from_fn(rate_limit::read))
            .get(routes::list)
            .post(routes::create),
    )
    .service(
        resource("/api/events/{id}/ticket-types/{type_id}")
            .wrap(from_fn(rate_limit::write))
            .patch(routes::update)
            .delete(routes::delete),
    );
}

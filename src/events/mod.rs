//! Events: hosting, listing with live availability, the event cache's writers.
//!
//! Routes (seed paths): `GET /api/events/all`, `GET /api/events/{id}`,
//! `POST /api/events/create` (host/admin), `POST /api/events/update` and
//! `POST /api/events/delete` (the event's host or an admin). Listings and single reads are
//! public and served from the cache ([`crate::cache`]) when it can answer. Reads `[events]`.

pub mod domain;
pub mod model;
pub mod routes;
pub mod service;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::http::{rate_limit, resource};

/// Registers the `/api/events` routes of this feature.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/events/all")
            .wrap(from_fn(rate_limit::read))
            .get(routes::list_events),
    )
    .service(
        resource("/api/events/create")
            .wrap(from_fn(rate_limit::write))
            .post(routes::create_event),
    )
    .service(
        resource("/api/events/update")
            .wrap(from_fn(rate_limit::write))
            .post(routes::update_event),
    )
    .service(
        resource("/api/events/delete")
            .wrap(from_fn(rate_limit::write))
            .post(routes::delete_event),
    )
    .service(
        resource("/api/events/{id}/stats")
            .wrap(from_fn(rate_limit::read))
            .get(crate::analytics::event_stats),
    )
    .service(
        resource("/api/events/{id}")
            .wrap(from_fn(rate_limit::read))
            .get(routes::get_event),
    );
}

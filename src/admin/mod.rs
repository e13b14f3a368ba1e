//! Admin-only endpoints under `/api/admin`. Every handler re-checks the caller's role in the
//! database (`AuthUser::require_admin`), so a demoted admin's still-valid token does not work.
//!
//! Users: `PATCH /api/admin/users/{id} { role }` promotes or demotes a user.
//! Events: `GET`, `POST`, `PATCH`, `DELETE /api/admin/events`.
//! Analytics: `GET /api/admin/analytics` (in `crate::analytics`).
//! Notifications: `GET /api/admin/notifications?status=failed`,
//! `POST /api/admin/notifications/{id}/retry`.

pub mod events;
pub mod notifications;
pub mod routes;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::http::{rate_limit, resource};

/// Registers the `/api/admin` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/admin/users/{id}")
            .wrap(from_fn(rate_limit::write))
            .patch(routes::set_user_role),
    )
    .service(
        resource("/api/admin/events")
            .wrap(from_fn(rate_limit::write))
            .get(events::list)
            .post(events::create)
            .patch(events::update)
            .delete(events::delete),
    )
    .service(
        resource("/api/admin/analytics")
            .wrap(from_fn(rate_limit::read))
            .get(crate::analytics::admin_analytics),
    )
    .service(
        resource("/api/admin/notifications")
            .wrap(from_fn(rate_limit::read))
            .get(notifications::list),
    )
    .service(
        resource("/api/admin/notifications/{id}/retry")
            .wrap(from_fn(rate_limit::write))
            .post(notifications::retry),
    );
}

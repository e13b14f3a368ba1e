//! The web front (#15): pages for people, rendered on the server from templates compiled into
//! the binary, on top of the same services as the API (the event cache, the catalogue).
//!
//! Routes: `GET /` (the event list, `?q=` to search, `?cursor=` for more), `GET /events/{id}`
//! (one event: availability, ticket types, how checkout works, the booking form),
//! `GET|POST /login`, `POST /logout`, `GET|POST /register`, `POST /events/{id}/book`,
//! `GET|POST /events/{id}/queue` (the waiting room),
//! `GET /me` (my bookings), `POST /me/bookings/{id}/{cancel,pay,release}`,
//! `POST /me/waitlist/{event}/leave`; for hosts and
//! admins `GET /host`, `GET|POST /host/events/new`, `GET /host/events/{id}` (the dashboard),
//! `GET|POST /host/events/{id}/edit`,
//! `GET /host/events/{id}/attendees.csv`, `POST /host/events/{id}/ticket-types`,
//! `GET|POST /host/events/{id}/ticket-types/{type}`, `POST …/ticket-types/{type}/visibility`,
//! `GET|POST /host/events/{id}/cancel`,
//! `POST /host/bookings/{id}/mark-paid`; for admins `GET /admin` (analytics),
//! `GET /admin/users`, `POST /admin/users/{id}/role`, `GET /admin/notifications`,
//! `POST /admin/notifications/{id}/retry`; `GET /static/{file}`. Every form carries a CSRF token
//! ([`csrf`]); the session is the API's (the same httpOnly cookies). Pages
//! work without JavaScript; `static/app.js` only adds countdowns. Every page answers with its
//! own Content-Security-Policy (`'self'` only, no inline script or style) and is escaped by the
//! template engine (autoescape on `.html`). Strings live in one file per language
//! (`strings.en.json`), handed to every template as `t`.
//!
//! Cheap: a rendered public page is kept for `web.page_cache_ms` per worker, so a page served
//! from it does no database or cache I/O at all.

mod admin;
mod buy;
mod charts;
mod csrf;
mod forms;
mod host;
mod pages;
mod render;
mod room;
mod session;
mod types;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::http::rate_limit;

pub use render::Pages;

/// A page's resource: its rate-limit class, then [`session::resume`] (a page session outlives
/// its access token) and [`render::html_errors`] (the refusals of the layers before a page's
/// handler, in words).
macro_rules! page {
    ($path:expr, $limit:expr) => {
        web::resource($path)
            .wrap(from_fn($limit))
            .wrap(from_fn(session::resume))
            .wrap(from_fn(render::html_errors))
    };
}

/// Registers the pages. They are not API operations: not in the OpenAPI document, and not
/// through [`crate::http::resource`] (whose registry the contract test compares with it).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(render::PageCache::default()))
        .service(web::resource("/static/{file}").get(pages::asset))
        .service(page!("/", rate_limit::read).get(pages::events))
        .service(page!("/events/{id}", rate_limit::read).get(pages::event))
        .service(
            page!("/login", rate_limit::write)
                .get(session::form)
                .post(session::submit),
        )
        .service(page!("/logout", rate_limit::write).post(session::logout))
        .service(page!("/events/{id}/book", rate_limit::write).post(buy::book))
        .service(
            page!("/events/{id}/queue", rate_limit::write)
                .get(room::room)
                .post(room::join),
        )
        .service(page!("/me", rate_limit::read).get(buy::mine))
        .service(page!("/me/waitlist/{event}/leave", rate_limit::write).post(buy::leave_waitlist))
        .service(page!("/me/bookings/{id}/cancel", rate_limit::write).post(buy::cancel))
        .service(page!("/me/bookings/{id}/pay", rate_limit::write).post(buy::pay))
        .service(page!("/me/bookings/{id}/release", rate_limit::write).post(buy::release))
        .service(
            page!("/register", rate_limit::write)
                .get(session::register_form)
                .post(session::register_submit),
        )
        .service(page!("/host", rate_limit::read).get(host::events))
        .service(
            page!("/host/events/new", rate_limit::write)
                .get(host::new_form)
                .post(host::create),
        )
        .service(page!("/host/events/{id}", rate_limit::read).get(host::dashboard))
        .service(
            page!("/host/events/{id}/edit", rate_limit::write)
                .get(host::edit_form)
                .post(host::edit),
        )
        .service(
            page!("/host/events/{id}/attendees.csv", rate_limit::read).get(host::attendees_csv),
        )
        .service(
            page!("/host/events/{id}/cancel", rate_limit::write)
                .get(host::cancel_form)
                .post(host::cancel),
        )
        .service(page!("/host/events/{id}/ticket-types", rate_limit::write).post(types::add))
        .service(
            page!(
                "/host/events/{id}/ticket-types/{type_id}",
                rate_limit::write
            )
            .get(types::edit_form)
            .post(types::edit),
        )
        .service(
            page!(
                "/host/events/{id}/ticket-types/{type_id}/visibility",
                rate_limit::write
            )
            .post(types::visibility),
        )
        .service(page!("/host/bookings/{id}/mark-paid", rate_limit::write).post(host::mark_paid))
        .service(page!("/admin", rate_limit::read).get(admin::analytics))
        .service(page!("/admin/users", rate_limit::read).get(admin::users))
        .service(page!("/admin/users/{id}/role", rate_limit::write).post(admin::set_role))
        .service(page!("/admin/notifications", rate_limit::read).get(admin::notifications))
        .service(page!("/admin/notifications/{id}/retry", rate_limit::write).post(admin::retry));
}

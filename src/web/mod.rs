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

/// Registers the pages. They are not API operations: not in the OpenAPI document, and not
/// through [`crate::http::resource`] (whose registry the contract test compares with it).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(render::PageCache::default()))
        .service(web::resource("/static/{file}").get(pages::asset))
        .service(pages_of_people());
}

/// Every page but the static files, under [`session::resume`] (a page session outlives its
/// access token).
fn pages_of_people() -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope("")
        .wrap(from_fn(session::resume))
        .service(
            web::resource("/")
                .wrap(from_fn(rate_limit::read))
                .get(pages::events),
        )
        .service(
            web::resource("/events/{id}")
                .wrap(from_fn(rate_limit::read))
                .get(pages::event),
        )
        .service(
            web::resource("/login")
                .wrap(from_fn(rate_limit::write))
                .get(session::form)
                .post(session::submit),
        )
        .service(
            web::resource("/logout")
                .wrap(from_fn(rate_limit::write))
                .post(session::logout),
        )
        .service(
            web::resource("/events/{id}/book")
                .wrap(from_fn(rate_limit::write))
                .post(buy::book),
        )
        .service(
            web::resource("/events/{id}/queue")
                .wrap(from_fn(rate_limit::write))
                .get(room::room)
                .post(room::join),
        )
        .service(
            web::resource("/me")
                .wrap(from_fn(rate_limit::read))
                .get(buy::mine),
        )
        .service(
            web::resource("/me/waitlist/{event}/leave")
                .wrap(from_fn(rate_limit::write))
                .post(buy::leave_waitlist),
        )
        .service(
            web::resource("/me/bookings/{id}/cancel")
                .wrap(from_fn(rate_limit::write))
                .post(buy::cancel),
        )
        .service(
            web::resource("/me/bookings/{id}/pay")
                .wrap(from_fn(rate_limit::write))
                .post(buy::pay),
        )
        .service(
            web::resource("/me/bookings/{id}/release")
                .wrap(from_fn(rate_limit::write))
                .post(buy::release),
        )
        .service(
            web::resource("/register")
                .wrap(from_fn(rate_limit::write))
                .get(session::register_form)
                .post(session::register_submit),
        )
        .service(
            web::resource("/host")
                .wrap(from_fn(rate_limit::read))
                .get(host::events),
        )
        .service(
            web::resource("/host/events/new")
                .wrap(from_fn(rate_limit::write))
                .get(host::new_form)
                .post(host::create),
        )
        .service(
            web::resource("/host/events/{id}")
                .wrap(from_fn(rate_limit::read))
                .get(host::dashboard),
        )
        .service(
            web::resource("/host/events/{id}/edit")
                .wrap(from_fn(rate_limit::write))
                .get(host::edit_form)
                .post(host::edit),
        )
        .service(
            web::resource("/host/events/{id}/attendees.csv")
                .wrap(from_fn(rate_limit::read))
                .get(host::attendees_csv),
        )
        .service(
            web::resource("/host/events/{id}/cancel")
                .wrap(from_fn(rate_limit::write))
                .get(host::cancel_form)
                .post(host::cancel),
        )
        .service(
            web::resource("/host/events/{id}/ticket-types")
                .wrap(from_fn(rate_limit::write))
                .post(types::add),
        )
        .service(
            web::resource("/host/events/{id}/ticket-types/{type_id}")
                .wrap(from_fn(rate_limit::write))
                .get(types::edit_form)
                .post(types::edit),
        )
        .service(
            web::resource("/host/events/{id}/ticket-types/{type_id}/visibility")
                .wrap(from_fn(rate_limit::write))
                .post(types::visibility),
        )
        .service(
            web::resource("/host/bookings/{id}/mark-paid")
                .wrap(from_fn(rate_limit::write))
                .post(host::mark_paid),
        )
        .service(
            web::resource("/admin")
                .wrap(from_fn(rate_limit::read))
                .get(admin::analytics),
        )
        .service(
            web::resource("/admin/users")
                .wrap(from_fn(rate_limit::read))
                .get(admin::users),
        )
        .service(
            web::resource("/admin/users/{id}/role")
                .wrap(from_fn(rate_limit::write))
                .post(admin::set_role),
        )
        .service(
            web::resource("/admin/notifications")
                .wrap(from_fn(rate_limit::read))
                .get(admin::notifications),
        )
        .service(
            web::resource("/admin/notifications/{id}/retry")
                .wrap(from_fn(rate_limit::write))
                .post(admin::retry),
        )
}

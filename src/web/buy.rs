//! Buying from the pages: the booking form of an event page goes through the same
//! [`crate::bookings::routes::place`] as `POST /api/events/book` (the writer decides it), and
//! "my bookings" shows what `GET /api/user/bookings` shows, with a cancel button for confirmed
//! tickets (the same `cancel_bookings`).

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::forms::{Form, posted, render, see_other, to_login};
use super::render::Pages;
use super::session::describe;
use crate::bookings::routes::{BookBody, Placed, Targets};
use crate::error::ApiError;
use crate::http::auth::AuthUser;
use crate::state::AppState;

/// How long the booking form waits for its decision before showing "being decided".
const WAIT: Duration = Duration::from_secs(10);

fn number(form: &Form, name: &str) -> Result<Option<i64>, ApiError> {
    form.get(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::field(name, "must be a whole number"))
        })
        .transpose()
}

/// `POST /events/{id}/book`: `seats`, `ticketTypeId`, `joinWaitlist`, `key`, `csrf`.
pub async fn book(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (form, user) = match posted(&req, &state, &body, viewer, &format!("/events/{path}")) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let Ok(event_id) = path.parse::<i64>() else {
        return see_other("/");
    };
    let placed = async {
        let ask = crate::bookings::routes::validate(&BookBody {
            event_id: Some(event_id),
            number_of_seats: number(&form, "seats")?,
            allow_partial: Some(form.get("allowPartial").is_some()),
            join_waitlist: Some(form.get("joinWaitlist").is_some()),
            ticket_type_id: number(&form, "ticketTypeId")?,
        })?;
        let key = form.get("key").map(|k| k.chars().take(255).collect());
        crate::bookings::routes::place(&state, user, form.get("admission"), ask, key, Some(WAIT))
            .await
    }
    .await;
    let (status, ctx) = match placed {
        Ok(Placed::Decided(request, outcome)) => {
            let o = serde_json::to_value(&outcome).unwrap_or_default();
            let reason = o["reason"].as_str().map(str::to_owned);
            let status = if reason.is_some() {
                StatusCode::CONFLICT
            } else {
                StatusCode::OK
            };
            (
                status,
                minijinja::context! {
                    outcome => o,
                    reason_text => reason.map(|r| Pages::get().text(&format!("reason.{r}"))),
                    request_id => request.request_id.to_string(),
                },
            )
        }
        Ok(Placed::Pending(request, _)) => (
            StatusCode::ACCEPTED,
            minijinja::context! { pending => true, request_id => request.request_id.to_string() },
        ),
        Err(e) => {
            let resp = actix_web::ResponseError::error_response(&e);
            (resp.status(), minijinja::context! { error => describe(&e) })
        }
    };
    render(
        &req,
        &state,
        Some(&user),
        status,
        "booking.html",
        minijinja::context! { page => "booking", event_id => event_id, ..ctx },
    )
}

/// `GET /me`: the viewer's tickets, holds, waitlist entries and refused requests, newest first.
pub async fn mine(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let Some(user) = viewer else {
        return to_login("/me");
    };
    let page = async {
        let q = crate::bookings::history::parse_query(&query)?;
        let mut conn = state.db().get().await?;
        let mut page = crate::bookings::history::tickets_page(&mut conn, user.id, &q).await?;
        with_places(&mut conn, user.id, &mut page).await?;
        Ok::<_, ApiError>(page)
    }
    .await;
    let (status, ctx) = match page {
        Ok(p) => (
            StatusCode::OK,
            minijinja::context! {
                items => p["items"].clone(),
                next => p["pageInfo"]["nextCursor"].as_str().map(str::to_owned),
            },
        ),
        Err(e) => {
            let resp = actix_web::ResponseError::error_response(&e);
            (resp.status(), minijinja::context! { error => describe(&e) })
        }
    };
    let notice = query
        .get("done")
        .map(|d| Pages::get().text(&format!("done.{d}")));
    render(
        &req,
        &state,
        Some(&user),
        status,
        "me.html",
        minijinja::context! {
            page => "me",
            notice => notice,
            ..ctx
        },
    )
}

/// Adds its place in line (`position`, 1 = next) to each waiting entry of a "my bookings"
/// page, as `GET /api/events/{id}/waitlist/me` counts it.
async fn with_places(
    conn: &mut diesel_async::AsyncPgConnection,
    user: i64,
    page: &mut serde_json::Value,
) -> Result<(), ApiError> {
    let Some(items) = page["items"].as_array_mut() else {
        return Ok(());
    };
    let waiting = |i: &serde_json::Value| i["kind"] == "waitlist" && i["status"] == "waitlisted";
    let mut events: Vec<i64> = items
        .iter()
        .filter(|i| waiting(i))
        .filter_map(|i| i["eventId"].as_i64())
        .collect();
    events.sort_unstable();
    events.dedup();
    if events.is_empty() {
        return Ok(());
    }
    let places: HashMap<String, i64> =
        crate::bookings::routes::waitlist_places(conn, user, &events)
            .await?
            .into_iter()
            .map(|p| (p.request_id.to_string(), p.position))
            .collect();
    for item in items.iter_mut().filter(|i| waiting(i)) {
        if let Some(position) = item["requestId"].as_str().and_then(|r| places.get(r)) {
            item["position"] = (*position).into();
        }
    }
    Ok(())
}

/// `POST /me/waitlist/{event}/leave`: takes the viewer off an event's waitlist (every entry
/// of theirs there), as `DELETE /api/events/{id}/waitlist/me` does.
pub async fn leave_waitlist(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (_, user) = match posted(&req, &state, &body, viewer, "/me") {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let done = match crate::events::routes::path_id(&path) {
        Ok(event) => crate::bookings::routes::leave(&state, user.id, event).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(_) => see_other("/me?done=left_waitlist"),
        Err(e) => failed(&req, &state, &user, &e),
    }
}

/// `POST /me/bookings/{id}/cancel` (`eventId`, `csrf`): cancels one confirmed ticket.
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (form, user) = match posted(&req, &state, &body, viewer, "/me") {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let done = async {
        let booking = booking_path(&path)?;
        let event = number(&form, "eventId")?
            .filter(|e| *e > 0)
            .ok_or_else(|| ApiError::field("eventId", "is required"))?;
        crate::bookings::routes::cancel_bookings(
            &state,
            event,
            user.id,
            Targets::One(booking),
            false,
        )
        .await
    }
    .await;
    match done {
        Ok(_) => see_other("/me?done=cancelled"),
        Err(e) => failed(&req, &state, &user, &e),
    }
}

fn booking_path(path: &str) -> Result<i64, ApiError> {
    path.parse::<i64>()
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| ApiError::field("bookingId", "must be a positive integer"))
}

/// `POST /me/bookings/{id}/pay`: how to pay — Stripe: a link on to its Checkout page (the
/// session made for this hold); manual: the host's way.
pub async fn pay(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (_, user) = match posted(&req, &state, &body, viewer, "/me") {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let how = match booking_path(&path) {
        Ok(id) => crate::payments::routes::how_to_pay(&state, &user, id).await,
        Err(e) => Err(e),
    };
    match how {
        Ok(how) if how["provider"] == "stripe" && how["url"].as_str().is_none() => failed(
            &req,
            &state,
            &user,
            &ApiError::Internal(anyhow::anyhow!("a Stripe session without a url")),
        ),
        // Stripe: a link on to its Checkout page, not a redirect — the pages' policy lets
        // forms lead only to this site (`form-action 'self'`, enforced on redirects too).
        Ok(how) => render(
            &req,
            &state,
            Some(&user),
            StatusCode::OK,
            "pay.html",
            minijinja::context! { page => "pay", pay => how },
        ),
        Err(e) => failed(&req, &state, &user, &e),
    }
}

/// `POST /me/bookings/{id}/release`: gives a hold back (its writer expires it at once).
pub async fn release(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (_, user) = match posted(&req, &state, &body, viewer, "/me") {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let done = match booking_path(&path) {
        Ok(id) => crate::payments::routes::release_hold(&state, &user, id).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(_) => see_other("/me?done=released"),
        Err(e) => failed(&req, &state, &user, &e),
    }
}

/// "My bookings" with the error of an action on it (its status, the API's words).
fn failed(req: &HttpRequest, state: &AppState, user: &AuthUser, e: &ApiError) -> HttpResponse {
    let status = actix_web::ResponseError::error_response(e).status();
    render(
        req,
        state,
        Some(user),
        status,
        "me.html",
        minijinja::context! { page => "me", error => describe(e) },
    )
}

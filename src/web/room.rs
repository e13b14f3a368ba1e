//! The waiting room on the pages: join from the event page, wait on the room page (position and
//! estimated wait; live over the API's SSE stream when JavaScript is on, a "check again" link
//! when it is off), then book with the admission token the room gives (carried by the form).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::forms::{posted, problem, render, see_other, to_login};
use crate::error::ApiError;
use crate::http::auth::AuthUser;
use crate::state::AppState;

/// `POST /events/{id}/queue`: joins the room (or finds the place held), on to the room page.
pub async fn join(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let back = format!("/events/{path}");
    let (_, user) = match posted(&req, &state, &body, viewer, &back) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    match crate::waiting_room::routes::join_room(&state, &user, &path).await {
        Ok(_) => see_other(&format!("/events/{path}/queue")),
        Err(e) => failure(&req, &state, &user, &back, &e),
    }
}

fn failure(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
    back: &str,
    e: &ApiError,
) -> HttpResponse {
    problem(req, state, user, e, (back, "back_to_event"))
}

/// `GET /events/{id}/queue`: my place in the room; once admitted, the booking form.
pub async fn room(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
) -> HttpResponse {
    let back = format!("/events/{path}");
    let Some(user) = viewer else {
        return to_login(&format!("{back}/queue"));
    };
    let standing = crate::waiting_room::routes::standing(&state, &user, &path).await;
    let (standing, _) = match standing {
        Ok(s) => s,
        // Not in this room (yet): the event page offers to join.
        Err(ApiError::NotFound(_)) => return see_other(&back),
        Err(e) => return failure(&req, &state, &user, &back, &e),
    };
    let event =
        match crate::events::service::lookup(&state, standing["eventId"].as_i64().unwrap_or(0))
            .await
        {
            Ok(e) => e.view(chrono::Utc::now()),
            Err(e) => return failure(&req, &state, &user, &back, &e),
        };
    render(
        &req,
        &state,
        Some(&user),
        StatusCode::OK,
        "room.html",
        minijinja::context! { page => "room", r => standing, e => event },
    )
}

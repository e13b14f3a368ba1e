//! `/api/admin/events`: list, create for any host, update and delete any event.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::Utc;

use crate::error::ApiResult;
use crate::events::domain::{self, CreateEventBody, IdBody, UpdateEventBody};
use crate::events::routes::{deleted_response, list_page, parse_list_query};
use crate::events::service;
use crate::http::auth::AuthUser;
use crate::http::extract::ApiJson;
use crate::http::response;
use crate::state::AppState;

/// `GET /api/admin/events`: every event, cancelled ones included (same paging as the catalogue).
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db().get().await?;
    caller.require_admin(&mut conn).await?;
    drop(conn);
    let s = &state.settings().events;
    let mut req = parse_list_query(&query, s.page_size_default, s.page_size_max)?;
    req.filter.include_cancelled = true;
    Ok(response::ok(list_page(&state, &req).await?, "Events found"))
}

/// `POST /api/admin/events { ...event, hostId? }` → 201; `hostId` (default: the admin) must be
/// an existing host or admin.
pub async fn create(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: ApiJson<CreateEventBody>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db().get().await?;
    caller.require_admin(&mut conn).await?;
    drop(conn);
    let body = body.into_inner();
    let host = body.host_id.unwrap_or(caller.id);
    let new = domain::validate_create(&body, host, service::limits(&state), Utc::now())?;
    let event = service::create(&state, new).await?;
    Ok(response::created(
        event.view(Utc::now()),
        "Event created successfully",
    ))
}

/// `PATCH /api/admin/events { id, ...fields }`.
pub async fn update(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: ApiJson<UpdateEventBody>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db().get().await?;
    caller.require_admin(&mut conn).await?;
    drop(conn);
    let event = service::update(&state, &caller, body.into_inner()).await?;
    Ok(response::ok(
        event.view(Utc::now()),
        "Event updated successfully",
    ))
}

/// `DELETE /api/admin/events { id }`.
pub async fn delete(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: ApiJson<IdBody>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db().get().await?;
    caller.require_admin(&mut conn).await?;
    drop(conn);
    let (event, deleted) = service::delete(&state, &caller, body.into_inner().id).await?;
    Ok(deleted_response(&event, deleted))
}

//! `/api/events/*` handlers (seed paths) and the listing logic the admin listing shares.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde_json::json;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::events::domain::{self, CreateEventBody, IdBody, UpdateEventBody};
use crate::events::model::{CatalogueCursor, Event, EventView, ListFilter};
use crate::events::service;
use crate::http::auth::AuthUser;
use crate::http::cursor;
use crate::http::extract::ApiJson;
use crate::http::query;
use crate::http::response;
use crate::state::AppState;
use crate::users::domain::Role;

/// A listing request, parsed.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// Page size.
    pub limit: usize,
    /// Position after the previous page.
    pub cursor: Option<CatalogueCursor>,
    /// Filters.
    pub filter: ListFilter,
}

/// Encodes a catalogue cursor (opaque to clients).
pub fn encode_cursor(c: CatalogueCursor) -> String {
    cursor::encode("e1", &[&c.starts_at.timestamp_micros(), &c.id])
}

/// Decodes a catalogue cursor; any damage is `None`.
pub fn decode_cursor(raw: &str) -> Option<CatalogueCursor> {
    let [micros, id] = cursor::decode::<2>(raw, "e1")?;
    let id = id.parse::<i64>().ok().filter(|id| *id > 0)?;
    Some(CatalogueCursor {
        starts_at: cursor::timestamp(&micros)?,
        id,
    })
}

fn parse_bool(field: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<bool> {
    match raw {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => {
            errors.push(FieldError::new(field, "must be true or false"));
            None
        }
    }
}

/// Parses `limit`, `cursor`, `upcoming`, `hostId`, `q`; anything else is a 400 naming it.
pub fn parse_list_query(
    query: &HashMap<String, String>,
    default_limit: usize,
    max_limit: usize,
) -> ApiResult<ListRequest> {
    let mut errors = Vec::new();
    let mut req = ListRequest {
        limit: default_limit,
        cursor: None,
        filter: ListFilter::default(),
    };
    for (key, value) in query {
        match key.as_str() {
            "limit" => {
                if let Some(n) = query::limit("limit", value, max_limit, &mut errors) {
                    req.limit = n;
                }
            }
            "cursor" => match decode_cursor(value) {
                Some(c) => req.cursor = Some(c),
                None => errors.push(FieldError::new("cursor", "is not a cursor this API issued")),
            },
            "upcoming" => {
                if let Some(b) = parse_bool("upcoming", value, &mut errors) {
                    req.filter.upcoming = b;
                }
            }
            "hostId" => {
                if let Some(n) = query::id("hostId", value, &mut errors) {
                    req.filter.host_id = Some(n);
                }
            }
            "q" => {
                let q = value.trim();
                if q.chars().count() > 100 {
                    errors.push(FieldError::new("q", "must be at most 100 characters"));
                } else if q.contains('\0') {
                    errors.push(FieldError::new("q", "must not contain NUL characters"));
                } else if !q.is_empty() {
                    req.filter.q = Some(q.to_owned());
                }
            }
            other => errors.push(FieldError::new(other, "unknown query parameter")),
        }
    }
    if errors.is_empty() {
        Ok(req)
    } else {
        Err(ApiError::fields(errors))
    }
}

/// One page of the catalogue: from the cache when it can answer completely (no host/name
/// filter, active events only), else from PostgreSQL.
pub async fn list_page(state: &AppState, req: &ListRequest) -> ApiResult<serde_json::Value> {
    let now = Utc::now();
    let fetch = req.limit + 1;
    let cacheable =
        req.filter.host_id.is_none() && req.filter.q.is_none() && !req.filter.include_cancelled;
    let cached = if cacheable {
        state
            .event_cache()
            .list(req.cursor, req.filter.upcoming.then_some(now), fetch)
            .await
    } else {
        None
    };
    let events: Vec<Event> = match cached {
        Some(list) => list.iter().map(|e| (**e).clone()).collect(),
        None => {
            let mut conn = state.db().get().await?;
            Event::list(&mut conn, &req.filter, req.cursor, fetch as i64, now).await?
        }
    };
    let has_more = events.len() > req.limit;
    let page: Vec<&Event> = events.iter().take(req.limit).collect();
    let next_cursor = if has_more {
        page.last().map(|e| {
            encode_cursor(CatalogueCursor {
                starts_at: e.starts_at,
                id: e.id,
            })
        })
    } else {
        None
    };
    let items: Vec<EventView> = page.iter().map(|e| e.view(now)).collect();
    Ok(json!({
        "items": items,
        "pageInfo": { "hasMore": has_more, "nextCursor": next_cursor },
    }))
}

/// `GET /api/events/all`: active events, soonest first, keyset-paginated.
pub async fn list_events(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let s = &state.settings().events;
    let req = parse_list_query(&query, s.page_size_default, s.page_size_max)?;
    let page = list_page(&state, &req).await?;
    Ok(response::ok(page, "Events found"))
}

/// Parses a path id.
pub fn path_id(raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::field("id", "must be a positive integer"))
}

/// `GET /api/events/{id}`: one event with availability; its host and admins also see the
/// seats waited for.
pub async fn get_event(
    state: web::Data<AppState>,
    caller: Option<AuthUser>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&path)?;
    let now = Utc::now();
    let event = service::lookup(&state, id).await?;
    // Its host and admins (as they are now, not as the token says) also see the seats waited
    // for, and the event once cancelled; for the public a cancelled event is gone.
    let mut waitlist = None;
    if let Some(c) = caller
        && (c.role == Role::Admin || c.id == event.host_id)
    {
        let mut conn = state.db().get().await?;
        if c.manages(&mut conn, event.host_id).await? {
            waitlist = Some(Event::waitlist_seats(&mut conn, id).await?);
        }
    }
    if event.is_cancelled() && waitlist.is_none() {
        return Err(ApiError::NotFound(format!("no event with id {id}")));
    }
    let mut view = event.view(now);
    view.waitlist_length = waitlist;
    Ok(response::ok(view, "Event found"))
}

/// `POST /api/events/create` (host or admin) → 201.
pub async fn create_event(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: ApiJson<CreateEventBody>,
) -> ApiResult<HttpResponse> {
    // The token's role first: a guest is turned away without taking a connection.
    caller.require(&[Role::Host, Role::Admin])?;
    caller
        .require_publisher(&mut *state.db().get().await?)
        .await?;
    let body = body.into_inner();
    if body.host_id.is_some_and(|h| h != caller.id) {
        return Err(ApiError::field(
            "hostId",
            "only admins create events for other hosts (POST /api/admin/events)",
        ));
    }
    let new = domain::validate_create(&body, caller.id, service::limits(&state), Utc::now())?;
    let event = service::create(&state, new).await?;
    Ok(response::created(
        event.view(Utc::now()),
        "Event created successfully",
    ))
}

/// `POST /api/events/update { id, ...fields }` (its host or an admin).
pub async fn update_event(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: ApiJson<UpdateEventBody>,
) -> ApiResult<HttpResponse> {
    let event = service::update(&state, &caller, body.into_inner()).await?;
    Ok(response::ok(
        event.view(Utc::now()),
        "Event updated successfully",
    ))
}

/// `POST /api/events/delete { id }` (its host or an admin).
pub async fn delete_event(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: ApiJson<IdBody>,
) -> ApiResult<HttpResponse> {
    let (event, deleted) = service::delete(&state, &caller, body.into_inner().id).await?;
    Ok(deleted_response(&event, deleted))
}

/// The answer of a delete.
pub fn deleted_response(event: &Event, deleted: service::Deleted) -> HttpResponse {
    // Deleting always cancels (the row stays for requests still queued for it).
    let message = "Event cancelled; its bookings are cancelled and ticket holders notified";
    response::ok(
        json!({
            "id": event.id,
            "name": event.name,
            "description": event.description,
            "cancelled": deleted.cancelled,
            "bookingsCancelled": deleted.bookings_cancelled,
            "waitlistCleared": deleted.waitlist_cleared,
        }),
        message,
    )
}

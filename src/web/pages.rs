//! The page handlers: each reads what the API reads (the same services and cache), renders a
//! template, and keeps the result a moment ([`super::render::PageCache`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::forms::{personal, viewer_of};
use super::render::{PageCache, Pages, message};
use crate::error::ApiError;
use crate::events::{routes as catalogue, service};
use crate::http::auth::AuthUser;
use crate::state::AppState;

/// How soon before its start an event on sale is shown as "starting soon".
const STARTING_SOON: chrono::Duration = chrono::Duration::hours(24);

fn ttl(state: &AppState) -> Duration {
    Duration::from_millis(state.settings().web.page_cache_ms)
}

/// A public page from the cache, else rendered by `render` (with `viewer`) and kept (only a
/// 200 is kept). Pages are kept per URL and per viewer role (or none): they name nobody; the
/// browser's CSRF token and a form key are filled in as each is served.
async fn cached<F, Fut>(
    req: &HttpRequest,
    state: &AppState,
    cache: &PageCache,
    viewer: Option<&AuthUser>,
    render: F,
) -> HttpResponse
where
    F: FnOnce(Value) -> Fut,
    Fut: std::future::Future<Output = Result<String, HttpResponse>>,
{
    let key = format!("{}|{}", viewer.map_or("-", |u| u.role.as_str()), req.uri());
    let ttl = ttl(state);
    if !ttl.is_zero()
        && let Some(body) = cache.get(&key, ttl)
    {
        return personal(req, state, StatusCode::OK, &body);
    }
    let viewer = serde_json::to_value(viewer_of(viewer)).unwrap_or_default();
    match render(viewer).await {
        Ok(body) => {
            let body: Arc<str> = Arc::from(body);
            if !ttl.is_zero() {
                cache.put(key, body.clone());
            }
            personal(req, state, StatusCode::OK, &body)
        }
        Err(resp) => resp,
    }
}

/// What a page shows for an API error: the same status and the API's own words.
fn error_page(e: &ApiError) -> HttpResponse {
    let pages = Pages::get();
    match e {
        ApiError::NotFound(_) => message(
            StatusCode::NOT_FOUND,
            &pages.text("not_found_title"),
            &pages.text("not_found"),
        ),
        ApiError::Internal(err) => {
            tracing::error!(error = %err, "a page failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                &pages.text("error_title"),
                &pages.text("error"),
            )
        }
        other => {
            let resp = actix_web::ResponseError::error_response(other);
            message(
                resp.status(),
                &pages.text("error_title"),
                &other.to_string(),
            )
        }
    }
}

fn render_failed(e: &minijinja::Error) -> HttpResponse {
    error_page(&ApiError::Internal(anyhow::anyhow!("template: {e:#}")))
}

/// The badge of an event (its public status, and "starting soon" for one on sale that starts
/// within a day).
fn badge(view: &Value, now: DateTime<Utc>) -> String {
    let status = view["status"].as_str().unwrap_or("on_sale");
    let starts = view["startsAt"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    match (status, starts) {
        ("on_sale", Some(t)) if t.with_timezone(&Utc) - now < STARTING_SOON => {
            "starting_soon".to_owned()
        }
        (s, _) => s.to_owned(),
    }
}

/// `GET /`: the events on sale and coming, soonest first; `q` searches by name.
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    cache: web::Data<PageCache>,
    viewer: Option<AuthUser>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let s = &state.settings().events;
    let parsed = catalogue::parse_list_query(&query, s.page_size_default, s.page_size_max);
    let q = query.get("q").cloned().unwrap_or_default();
    let list = match parsed {
        Ok(list) => list,
        Err(e) => {
            let ctx = minijinja::context! {
                page => "events", q => q, events => Vec::<Value>::new(),
                error => super::session::describe(&e),
            };
            return super::forms::render(
                &req,
                &state,
                viewer.as_ref(),
                StatusCode::BAD_REQUEST,
                "events.html",
                ctx,
            );
        }
    };
    let st = state.clone();
    cached(&req, &state, &cache, viewer.as_ref(), |viewer| async move {
        let state = st;
        let page = catalogue::list_page(&state, &list)
            .await
            .map_err(|e| error_page(&e))?;
        let now = Utc::now();
        let mut events: Vec<Value> = page["items"].as_array().cloned().unwrap_or_default();
        for e in &mut events {
            e["badge"] = Value::from(badge(e, now));
        }
        let ctx = minijinja::context! {
            page => "events",
            viewer => viewer,
            q => q,
            events => events,
            next => page["pageInfo"]["nextCursor"].as_str(),
            currency => super::forms::currency(&state),
        };
        Pages::get()
            .render("events.html", ctx)
            .map_err(|e| render_failed(&e))
    })
    .await
}

/// `GET /events/{id}`: one event with its availability and ticket types.
pub async fn event(
    req: HttpRequest,
    state: web::Data<AppState>,
    cache: web::Data<PageCache>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
) -> HttpResponse {
    let id = match catalogue::path_id(&path) {
        Ok(id) => id,
        Err(_) => return error_page(&ApiError::NotFound(String::new())),
    };
    let st = state.clone();
    cached(&req, &state, &cache, viewer.as_ref(), |viewer| async move {
        let state = st;
        let event = service::lookup(&state, id)
            .await
            .map_err(|e| error_page(&e))?;
        if event.is_cancelled() {
            return Err(error_page(&ApiError::NotFound(String::new())));
        }
        let mut conn = state
            .db()
            .get()
            .await
            .map_err(|e| error_page(&ApiError::from(e)))?;
        let types: Vec<Value> = crate::tickets::model::of_event(&mut conn, id)
            .await
            .map_err(|e| error_page(&ApiError::from(e)))?
            .iter()
            .filter(|t| !t.hidden)
            .map(crate::tickets::model::TicketTypeRow::view)
            .collect();
        drop(conn);
        let now = Utc::now();
        let view = serde_json::to_value(event.view(now))
            .map_err(|e| error_page(&ApiError::Internal(e.into())))?;
        let ctx = minijinja::context! {
            page => "event",
            viewer => viewer,
            badge => badge(&view, now),
            e => view,
            types => types,
            currency => super::forms::currency(&state),
        };
        Pages::get()
            .render("event.html", ctx)
            .map_err(|e| render_failed(&e))
    })
    .await
}

/// `GET /static/{file}`: the stylesheet and the script, compiled in.
pub async fn asset(path: web::Path<String>) -> HttpResponse {
    let (body, kind): (&'static str, &str) = match path.as_str() {
        "app.css" => (include_str!("static/app.css"), "text/css; charset=utf-8"),
        "app.js" => (
            include_str!("static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => {
            let pages = Pages::get();
            return message(
                StatusCode::NOT_FOUND,
                &pages.text("not_found_title"),
                &pages.text("not_found"),
            );
        }
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

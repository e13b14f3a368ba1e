//! Waiting-room handlers: room facts (public), join, my place (poll or stream), host controls.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::events::model::Event;
use crate::http::auth::AuthUser;
use crate::http::extract::ApiJson;
use crate::http::response;
use crate::state::AppState;
use crate::waiting_room::domain::{self, Status};
use crate::waiting_room::store::Found;
use crate::waiting_room::{Settings, issue_token};

/// The window the admission rate is measured over, ms.
const RATE_WINDOW_MS: i64 = 10_000;
/// A comment line every so often keeps idle streams open through proxies.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The room's store failed (Redis down or too slow): 503 with `Retry-After`, never a 500 —
/// the client did nothing wrong and may simply ask again.
fn unavailable(e: anyhow::Error) -> ApiError {
    tracing::warn!(error = %e, "waiting room: the rooms' store failed");
    metrics::counter!("waiting_room_store_errors_total").increment(1);
    ApiError::Unavailable {
        message: "the waiting room is busy; ask again shortly".to_owned(),
        retry_after_secs: 1,
    }
}

fn event_id(path: &str) -> ApiResult<i64> {
    path.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::field("id", "must be a positive integer"))
}

/// The event of the path, when it has a waiting room (else 409 `no_waiting_room`).
async fn room_event(state: &AppState, path: &str) -> ApiResult<Event> {
    let id = event_id(path)?;
    let event = crate::events::service::lookup(state, id).await?;
    if event.is_cancelled() {
        return Err(ApiError::NotFound(format!("no event with id {id}")));
    }
    if !event.waiting_room {
        return Err(ApiError::Conflict {
            code: "no_waiting_room",
            message: "this event has no waiting room: book directly".to_owned(),
        });
    }
    Ok(event)
}

fn ms_time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// A buyer's status as JSON, with the Retry-After a poller should wait (none once admitted).
fn standing_json(
    state: &AppState,
    settings: &Settings,
    event: &Event,
    user: i64,
    found: &Found,
    now: DateTime<Utc>,
) -> ApiResult<(Value, Option<u64>)> {
    let Some(place) = found.place else {
        return Err(ApiError::NotFound(
            "you are not in this event's queue: join it first".to_owned(),
        ));
    };
    let now_ms = now.timestamp_millis();
    let on_sale = event.on_sale_at.is_none_or(|t| t <= now);
    let admit_rate = Some((found.admitted.saturating_sub(found.admitted_then)) as f64 / 10.0)
        .filter(|r| *r > 0.0);
    let shared = domain::Shared {
        on_sale,
        admitted: found.admitted,
        joined: found.joined,
        sold_out: found.sold_out,
        admit_rate,
    };
    let s = domain::standing(&place, &shared, now_ms, settings.ttl_ms);
    let mut token = None;
    let mut ends = s.admission_ends_ms;
    match s.status {
        Status::Admitted => {
            let end = s.admission_ends_ms.unwrap_or(now_ms + settings.ttl_ms);
            token = Some(issue_token(state, event.id, user, &place, end, false)?);
        }
        // Sold out: the token lets the buyer join the waitlist, no more (the writer decides).
        Status::SoldOut if event.waitlist_open => {
            let end = now_ms + settings.ttl_ms;
            token = Some(issue_token(state, event.id, user, &place, end, true)?);
            ends = Some(end);
        }
        _ => {}
    }
    let retry = matches!(s.status, Status::Waiting | Status::SoldOut).then(|| {
        domain::poll_after(
            found.joined.saturating_sub(found.admitted),
            s.ahead,
            admit_rate,
            settings.poll_budget_per_sec,
            settings.max_poll_secs,
        )
    });
    let body = json!({
        "eventId": event.id,
        "status": s.status,
        "ticket": place.ticket.label(),
        "joinedAt": ms_time(place.joined_ms),
        "position": on_sale.then_some(place.rank + 1),
        "ahead": s.ahead,
        "estimatedWaitSecs": s.wait_secs,
        "onSaleAt": event.on_sale_at,
        "admissionToken": token,
        "admissionExpiresAt": ends.and_then(ms_time),
        "waitlistOpen": event.waitlist_open,
        "retryAfterSecs": retry,
    });
    Ok((body, retry))
}

fn with_retry(mut resp: HttpResponse, retry: Option<u64>) -> HttpResponse {
    if let Some(secs) = retry {
        resp.headers_mut().insert(
            RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(secs),
        );
    }
    resp
}

async fn found_now(state: &AppState, event: &Event, user: i64) -> ApiResult<Found> {
    let now = Utc::now();
    let drawn = event.on_sale_at.is_none_or(|t| t <= now);
    let since = now.timestamp_millis() - RATE_WINDOW_MS;
    state
        .rooms()
        .place(event.id, user, since, drawn)
        .await
        .map_err(unavailable)
}

/// `GET /api/events/{id}/queue`: the room's public facts — the seed's hash from the start,
/// the seed itself from on-sale, how many joined before on-sale (tickets `pre-1` …
/// `pre-N`), and how far admission has got.
pub async fn info(state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let event = room_event(&state, &path).await?;
    Ok(response::ok(
        room_facts(&state, &event).await?,
        "Waiting room",
    ))
}

pub(super) async fn room_facts(state: &AppState, event: &Event) -> ApiResult<Value> {
    let settings = &state.waiting_room().settings;
    let rooms = state.rooms();
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let seed = rooms.seed(event.id).await.map_err(unavailable)?;
    let s = rooms
        .summary(event.id, now_ms - settings.ttl_ms, now_ms - RATE_WINDOW_MS)
        .await
        .map_err(unavailable)?;
    let on_sale = event.on_sale_at.is_none_or(|t| t <= now);
    Ok(json!({
        "eventId": event.id,
        "onSaleAt": event.on_sale_at,
        "opensAt": event.on_sale_at.map(|t| t - settings.opens_before),
        "seedHash": domain::seed_hash(&seed),
        "seed": on_sale.then_some(seed),
        "preSaleJoined": s.presale,
        "joined": s.room.joined,
        "admitted": s.room.admitted,
        "waiting": s.room.joined.saturating_sub(s.room.admitted),
        "booked": s.room.used,
        "soldOut": s.sold_out,
        "paused": s.paused,
        "maxAdmitPerSec": (s.cap > 0).then_some(s.cap),
        "drawRule": "pre-sale tickets pre-1..pre-N are admitted in ascending order of the first 6 bytes of SHA-1(seed + \":\" + n) read as a big-endian integer, ties by n; seedHash = SHA-256(seed); later joiners follow in arrival order",
    }))
}

/// `POST /api/events/{id}/queue`: join (201), or the place already held (200).
#[tracing::instrument(name = "queue_join", skip_all, fields(user.id = caller.id))]
pub async fn join(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (body, retry, new) = join_room(&state, &caller, &path).await?;
    let (status, message) = if new {
        (StatusCode::CREATED, "You are in the queue")
    } else {
        (StatusCode::OK, "You already hold this place")
    };
    Ok(with_retry(response::respond(status, body, message), retry))
}

/// Joins the caller to the room of event `raw_id` (or finds the place they hold): their
/// standing, when to ask again, and whether the place is new. The API's join and the event
/// page's "join the queue" both come here.
pub async fn join_room(
    state: &AppState,
    caller: &AuthUser,
    raw_id: &str,
) -> ApiResult<(Value, Option<u64>, bool)> {
    let event = room_event(state, raw_id).await?;
    let id = event.id;
    let settings = &state.waiting_room().settings;
    let now = Utc::now();
    if event.closed_at(now).is_some() {
        return Err(ApiError::Conflict {
            code: "event_closed",
            message: "the event has started; its queue is closed".to_owned(),
        });
    }
    if let Some(opens) = event.on_sale_at.map(|t| t - settings.opens_before)
        && now < opens
    {
        return Err(ApiError::Conflict {
            code: "queue_not_open",
            message: format!("the queue opens at {}", opens.to_rfc3339()),
        });
    }
    let presale = event.on_sale_at.is_some_and(|t| now < t);
    let now_ms = now.timestamp_millis();
    let (found, new) = state
        .rooms()
        .join(id, caller.id, presale, now_ms, now_ms - RATE_WINDOW_MS)
        .await
        .map_err(unavailable)?;
    if new {
        metrics::counter!("waiting_room_joins_total").increment(1);
    }
    let (body, retry) = standing_json(state, settings, &event, caller.id, &found, now)?;
    Ok((body, retry, new))
}

/// `GET /api/events/{id}/queue/me`: my status; while waiting, `Retry-After` says when to
/// ask again.
pub async fn me(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (body, retry) = standing(&state, &caller, &path).await?;
    let mut resp = with_retry(response::ok(body, "Your place"), retry);
    resp.headers_mut().insert(
        CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// The caller's standing in the room of event `raw_id` (404 when they have not joined) and
/// when to ask again. The API's `queue/me` and the room page both come here.
pub async fn standing(
    state: &AppState,
    caller: &AuthUser,
    raw_id: &str,
) -> ApiResult<(Value, Option<u64>)> {
    let event = room_event(state, raw_id).await?;
    let found = found_now(state, &event, caller.id).await?;
    let settings = &state.waiting_room().settings;
    standing_json(state, settings, &event, caller.id, &found, Utc::now())
}

/// `PATCH /api/events/{id}/queue` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControlBody {
    paused: Option<bool>,
    max_admit_per_sec: Option<i64>,
}

/// `PATCH /api/events/{id}/queue`: the host or an admin pauses, resumes or caps admission.
pub async fn control(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    body: ApiJson<ControlBody>,
) -> ApiResult<HttpResponse> {
    let id = event_id(&path)?;
    let body = body.into_inner();
    let cap = match body.max_admit_per_sec {
        None => None,
        Some(n) => Some(
            u32::try_from(n)
                .ok()
                .filter(|n| *n <= 1_000_000)
                .ok_or_else(|| {
                    ApiError::field(
                        "maxAdmitPerSec",
                        "must be an integer from 0 (no cap) to 1000000",
                    )
                })?,
        ),
    };
    if body.paused.is_none() && cap.is_none() {
        return Err(ApiError::field("body", "give paused and/or maxAdmitPerSec"));
    }
    let event = room_event(&state, &path).await?;
    {
        let mut conn = state.db().get().await?;
        if !caller.manages(&mut conn, event.host_id).await? {
            return Err(ApiError::Forbidden(
                "only the event's host or an admin may control its queue".to_owned(),
            ));
        }
    }
    state
        .rooms()
        .control(id, body.paused, cap)
        .await
        .map_err(unavailable)?;
    tracing::info!(event.id = id, paused = ?body.paused, cap = ?cap, "waiting room controlled");
    Ok(response::ok(
        room_facts(&state, &event).await?,
        "Waiting room updated",
    ))
}

fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// `GET /api/events/{id}/queue/me/stream`: my status as Server-Sent Events (`event: status`),
/// sent when it changes; the stream ends once I am admitted or my admission expired.
pub async fn stream(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let event = room_event(&state, &path).await?;
    let id = event.id;
    let mut found = found_now(&state, &event, caller.id).await?;
    let settings = state.waiting_room().settings.clone();
    // Fails here (404) when the caller has not joined.
    let (first, _) = standing_json(&state, &settings, &event, caller.id, &found, Utc::now())?;
    let ip = state.rate_limiter().client_ip(&req);
    let Some(slot) = state.waiting_room().streams.take(
        caller.id,
        ip,
        settings.max_streams_per_user,
        settings.max_streams_per_ip,
    ) else {
        return Err(ApiError::Throttled {
            code: "too_many_streams",
            message: format!(
                "at most {} open status streams per account and {} per address; close one, or poll GET /api/events/{id}/queue/me",
                settings.max_streams_per_user, settings.max_streams_per_ip
            ),
            retry_after_secs: 5,
        });
    };
    let ends = tokio::time::Instant::now() + settings.stream_max;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let mut snapshots = state.waiting_room().hub.subscribe(&state, id);
    let state = state.into_inner();
    metrics::gauge!("waiting_room_streams").increment(1.0);
    let mut event = event;
    let closing = state.closing().clone();
    tokio::spawn(async move {
        let _slot = slot;
        let user = caller.id;
        let mut last = first.clone();
        let mut ranked = event.on_sale_at.is_none_or(|t| t <= Utc::now());
        let _ = tx.send(sse("status", &first)).await;
        loop {
            let status = last.get("status").and_then(Value::as_str).unwrap_or("");
            if matches!(status, "admitted" | "expired") {
                break;
            }
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(HEARTBEAT) => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() { break }
                    continue;
                }
                () = tx.closed() => break,
                () = closing.cancelled() => {
                    // The server is stopping: reconnect in a second (to another node).
                    let _ = tx.send(Bytes::from_static(b"retry: 1000\n\n")).await;
                    break;
                }
                () = tokio::time::sleep_until(ends) => {
                    // A stream lives `stream_max_secs` at most: the browser reconnects.
                    let _ = tx.send(Bytes::from_static(b"retry: 1000\n\n")).await;
                    break;
                }
            }
            let Some(snap) = snapshots.borrow_and_update().clone() else {
                continue;
            };
            // The event as this process last saw it (a host may move the on-sale).
            event.on_sale_at = snap.on_sale_at;
            event.waitlist_open = snap.waitlist_open;
            let now = Utc::now();
            let on_sale = event.on_sale_at.is_none_or(|t| t <= now);
            let passed = found.place.is_some_and(|p| p.rank < snap.admitted);
            // My own place is read again only when the draw fixes it or the frontier passes me.
            if (on_sale && !ranked) || passed {
                match found_now(&state, &event, user).await {
                    Ok(f) => found = f,
                    Err(_) => continue,
                }
                ranked = on_sale;
            } else {
                found.admitted = snap.admitted;
                found.joined = snap.joined;
                found.sold_out = snap.sold_out;
                found.admitted_then = snap.admitted_then;
            }
            let Ok((now_json, _)) = standing_json(&state, &settings, &event, user, &found, now)
            else {
                break;
            };
            let moved = |v: &Value| {
                (
                    v["status"].clone(),
                    v["ahead"].clone(),
                    v["position"].clone(),
                )
            };
            if moved(&now_json) != moved(&last) && tx.send(sse("status", &now_json)).await.is_err()
            {
                break;
            }
            last = now_json;
        }
        metrics::gauge!("waiting_room_streams").decrement(1.0);
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    });
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

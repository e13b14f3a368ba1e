//! The on-sale waiting room: fair admission to a flash sale, paced by the seats left, with
//! signed admission tokens.
//!
//! An event with `waitingRoom: true` sells only to buyers the room admitted:
//!
//! - **Joining** (`POST /api/events/{id}/queue`) opens `waiting_room.opens_before` before
//!   `onSaleAt`. Everyone who joins before on-sale gets a pre-sale ticket; at on-sale they are
//!   ordered by [`domain::draw`] of a seed whose hash was public from the start and which is
//!   revealed at on-sale (`GET /api/events/{id}/queue`), so anyone can check the order.
//!   Later joiners queue behind them in arrival order. One place per account.
//! - **Waiting** (`GET …/queue/me`, or `…/queue/me/stream` as Server-Sent Events) reads only
//!   the room's store ([`store::Rooms`]: Redis or this process), never PostgreSQL.
//! - **Admission** ([`pacer`]) moves a frontier through the order at the pace of the seats the
//!   writers say are left; none when they are gone (`sold_out`), again if seats come back.
//! - **Admission tokens** bind the account, the event and the admission's end; booking such
//!   an event needs one (header `X-Admission-Token`), else 403 with a code of its own.
//!
//! Reads `[waiting_room]`.

pub mod domain;
pub mod hub;
pub mod pacer;
pub mod routes;
pub mod store;

use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::web;
use serde::{Deserialize, Serialize};

use crate::config::parse_duration;
use crate::error::ApiError;
use crate::events::model::Event;
use crate::http::{rate_limit, resource};
use crate::state::AppState;

pub use store::Rooms;

/// The header that carries the admission token.
pub const TOKEN_HEADER: &str = "x-admission-token";

/// The admission token a request carries (`X-Admission-Token`).
pub fn token_of(req: &actix_web::HttpRequest) -> Option<&str> {
    req.headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
}
/// The audience of admission tokens (no other token passes for one).
const AUDIENCE: &str = "atomicseats-admission";

/// `[waiting_room]`, parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long before on-sale joining opens.
    pub opens_before: chrono::Duration,
    /// How long an admission lasts, ms.
    pub ttl_ms: i64,
    /// The pacer's period.
    pub tick: Duration,
    /// Global admissions-per-second cap (0 = none).
    pub max_admit_per_sec: u32,
    /// Expected seats per admitted buyer.
    pub seats_per_buyer: f64,
    /// Admitted per expected buyer.
    pub overadmit: f64,
    /// Polls per second all waiting buyers of an event may make.
    pub poll_budget_per_sec: u32,
    /// Longest Retry-After.
    pub max_poll_secs: u64,
    /// Open streams per account, per process.
    pub max_streams_per_user: usize,
    /// Open streams per client IP, per process.
    pub max_streams_per_ip: usize,
    /// Longest life of a stream.
    pub stream_max: Duration,
}

impl From<&crate::config::Settings> for Settings {
    fn from(s: &crate::config::Settings) -> Self {
        // `Settings::validate` checked both durations.
        let w = &s.waiting_room;
        let opens = parse_duration(&w.opens_before).unwrap_or(Duration::from_secs(3600));
        let ttl = parse_duration(&w.admission_ttl).unwrap_or(Duration::from_secs(600));
        Self {
            opens_before: chrono::Duration::from_std(opens).unwrap_or(chrono::Duration::hours(1)),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(600_000),
            tick: Duration::from_millis(w.tick_ms.max(10)),
            max_admit_per_sec: w.max_admit_per_sec,
            seats_per_buyer: w.seats_per_buyer,
            overadmit: w.overadmit,
            poll_budget_per_sec: w.poll_budget_per_sec,
            max_poll_secs: w.max_poll_secs,
            max_streams_per_user: w.max_streams_per_user as usize,
            max_streams_per_ip: w.max_streams_per_ip as usize,
            stream_max: Duration::from_secs(w.stream_max_secs.max(1)),
        }
    }
}

/// The feature's part of the state: the rooms, the stream hub and the settings.
pub struct WaitingRoom {
    rooms: Rooms,
    hub: hub::Hub,
    settings: Settings,
    streams: hub::StreamSlots,
}

impl WaitingRoom {
    /// Rooms in Redis when `redis` is given, else in this process.
    pub fn new(
        settings: &crate::config::Settings,
        redis: Option<deadpool_redis::redis::aio::ConnectionManager>,
    ) -> Self {
        let rooms = match redis {
            Some(conn) => Rooms::redis(conn, &settings.redis.key_prefix),
            None => Rooms::memory(),
        };
        Self {
            hub: hub::Hub::new(rooms.clone()),
            streams: hub::StreamSlots::default(),
            rooms,
            settings: Settings::from(settings),
        }
    }
}

impl AppState {
    /// The waiting room's part.
    pub fn waiting_room(&self) -> &WaitingRoom {
        self.part::<WaitingRoom>()
            .unwrap_or_else(|| crate::state::missing_part("waiting room"))
    }

    /// The waiting rooms' store.
    pub fn rooms(&self) -> &Rooms {
        &self.waiting_room().rooms
    }
}

/// What an admission token says.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Admission {
    /// The event.
    evt: i64,
    /// The buyer's rank (for the pacer's count of who booked).
    rank: u64,
    /// When they joined, Unix ms.
    jms: i64,
    /// When they were admitted, Unix ms.
    ams: i64,
    /// Issued while the room was sold out: the holder may join the waitlist, not take seats.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    wl: bool,
}

/// A token admitting `user` (at `rank`) to book `event` until `ends_ms` (`waitlist_only`:
/// issued while sold out, it only lets its holder join the waitlist). Either lets one request
/// take seats or a waitlist place; the event's writer refuses a second (`admission_used`).
pub fn issue_token(
    state: &AppState,
    event: i64,
    user: i64,
    place: &domain::Place,
    ends_ms: i64,
    waitlist_only: bool,
) -> anyhow::Result<String> {
    let claims = Admission {
        evt: event,
        rank: place.rank,
        jms: place.joined_ms,
        ams: place.admitted_ms.unwrap_or(ends_ms),
        wl: waitlist_only,
    };
    // Whole seconds until the admission ends (JWT expiry has second precision).
    let now_s = chrono::Utc::now().timestamp();
    let ttl = Duration::from_secs(u64::try_from(ends_ms.div_euclid(1000) - now_s).unwrap_or(0));
    state.tokens().sign_scoped(AUDIENCE, user, claims, ttl)
}

fn denied(code: &'static str, message: &str) -> ApiError {
    metrics::counter!("waiting_room_token_rejected_total", "code" => code).increment(1);
    ApiError::Denied {
        code,
        message: message.to_owned(),
    }
}

/// An admission that let a booking through ([`check_admission`]); [`Admitted::record_use`]
/// tells the pacer once the booking is decided.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    event: i64,
    user: i64,
    claims: Admission,
}

impl Admitted {
    /// What the booking request carries for its writer to decide: the admission's rank (used
    /// once) and whether it only lets its holder join the waitlist.
    pub fn for_request(&self) -> crate::bookings::domain::AdmissionUse {
        crate::bookings::domain::AdmissionUse {
            rank: self.claims.rank,
            waitlist_only: self.claims.wl,
        }
    }

    /// Records that the admitted buyer booked, so that the pacer stops counting them as still
    /// to buy. Called after the decision (in-process) so that the seats they took are already
    /// in the writer's published count, or at the accept (Kafka). Failures only cost the pacer
    /// a count.
    pub async fn record_use(self, state: &AppState) {
        match state
            .rooms()
            .mark_used(self.event, self.user, self.claims.rank)
            .await
        {
            Ok(true) => {
                metrics::counter!("waiting_room_tokens_used_total").increment(1);
                let waited = (self.claims.ams - self.claims.jms).max(0) as f64 / 1000.0;
                metrics::histogram!("waiting_room_wait_seconds").record(waited);
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "waiting room: cannot record an admission's use"),
        }
    }
}

/// The accept path's gate: `Ok(None)` when `event` has no waiting room, `Ok(Some(_))` when
/// `req` carries a valid admission token of `user` for it; else 403 `admission_required`,
/// `admission_invalid`, `admission_not_yours` or `admission_expired`. No I/O.
pub fn check_admission(
    state: &AppState,
    event: &Event,
    user: i64,
    token: Option<&str>,
) -> Result<Option<Admitted>, ApiError> {
    if !event.waiting_room {
        return Ok(None);
    }
    let Some(token) = token else {
        return Err(denied(
            "admission_required",
            "this event sells through its waiting room: join the queue (POST /api/events/{id}/queue) and book with the admission token you get (X-Admission-Token)",
        ));
    };
    let Some((subject, claims, expires)) =
        state.tokens().verify_scoped::<Admission>(AUDIENCE, token)
    else {
        return Err(denied(
            "admission_invalid",
            "the admission token is not one this service issued",
        ));
    };
    if subject != user || claims.evt != event.id {
        return Err(denied(
            "admission_not_yours",
            "this admission token was issued to another account or for another event",
        ));
    }
    if expires <= chrono::Utc::now().timestamp() {
        return Err(denied(
            "admission_expired",
            "your admission has expired: join the queue again",
        ));
    }
    Ok(Some(Admitted {
        event: event.id,
        user,
        claims,
    }))
}

/// The room's public facts and numbers (the host's event stats show them too).
pub async fn facts(state: &AppState, event: &Event) -> Result<serde_json::Value, ApiError> {
    routes::room_facts(state, event).await
}

/// Registers the waiting room's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/events/{id}/queue/me/stream")
            .wrap(from_fn(rate_limit::read))
            .get(routes::stream),
    )
    // Polled at the interval the server sets (Retry-After), from the room's store only.
    .service(
        resource("/api/events/{id}/queue/me")
            .wrap(from_fn(rate_limit::poll))
            .get(routes::me),
    )
    .service(
        resource("/api/events/{id}/queue")
            .route(web::get().to(routes::info).wrap(from_fn(rate_limit::read)))
            .route(web::post().to(routes::join).wrap(from_fn(rate_limit::join)))
            .route(
                web::patch()
                    .to(routes::control)
                    .wrap(from_fn(rate_limit::write)),
            ),
    );
}

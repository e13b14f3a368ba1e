//! The on-sale waiting room (#14): the provable pre-sale draw, one place per account, tokens
//! bound to account, event and time, admission paced by the seats left, sold-out announced,
//! the in-process and Redis shapes, places surviving a restart.

use std::time::Duration;

use atomicseats::users::domain::Role;
use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::bookings::{assert_seat_invariants, book_body};
use crate::helpers::events::event_body;
use crate::helpers::rooms::start_pacer;
use crate::helpers::{TestApp, json_with_status};

/// Where the rooms live.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Memory,
    Redis,
}

macro_rules! both_shapes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(super::Shape::Memory).await;
            }
            #[tokio::test]
            async fn redis() {
                super::$name(super::Shape::Redis).await;
            }
        }
    )*};
}

both_shapes!(
    the_presale_order_is_the_revealed_draw_then_arrival_order,
    admission_tokens_are_bound_to_account_event_and_time,
    pacing_stops_at_sold_out_tells_the_line_and_resumes_when_seats_return,
    a_stream_follows_a_place_until_admission,
    an_admission_books_once_and_a_sold_out_one_only_joins_the_waitlist,
);

async fn app_with(shape: Shape, env: &[(&str, &str)]) -> TestApp {
    let prefix = format!("wr{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut b = TestApp::builder()
        .env("ATOMICSEATS__WAITING_ROOM__TICK_MS", "50")
        .env("ATOMICSEATS__REDIS__KEY_PREFIX", &prefix);
    if let Shape::Redis = shape {
        b = b.env("ATOMICSEATS__REDIS__URL", "redis://127.0.0.1:6379");
    }
    for (k, v) in env {
        b = b.env(k, v);
    }
    let app = b.spawn().await;
    let expected = match shape {
        Shape::Memory => "memory",
        Shape::Redis => "redis",
    };
    assert_eq!(app.state.rooms().kind(), expected);
    app
}

/// An app whose pacer admits one buyer per seat left (1 seat each, no over-admission).
async fn app_admitting_one_per_seat(shape: Shape) -> TestApp {
    app_with(
        shape,
        &[
            ("ATOMICSEATS__WAITING_ROOM__SEATS_PER_BUYER", "1"),
            ("ATOMICSEATS__WAITING_ROOM__OVERADMIT", "1"),
        ],
    )
    .await
}

async fn room_event(app: &TestApp, host: &str, capacity: i64, on_sale_in: Option<Duration>) -> i64 {
    let mut body = event_body("Flash sale", 5, capacity);
    body["waitingRoom"] = json!(true);
    if let Some(d) = on_sale_in {
        body["onSaleAt"] =
            json!((Utc::now() + chrono::Duration::from_std(d).unwrap()).to_rfc3339());
    }
    app.create_event(host, &body).await
}

async fn join(app: &TestApp, token: &str, event: i64) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/events/{event}/queue")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn me(app: &TestApp, token: &str, event: i64) -> Value {
    json_with_status(
        app.get_as(&format!("/api/events/{event}/queue/me"), token)
            .await,
        200,
    )
    .await
}

async fn facts(app: &TestApp, event: i64) -> Value {
    json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{event}/queue")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
}

/// Polls `me` until its status is `want` (panics after `within`).
async fn until_status(
    app: &TestApp,
    token: &str,
    event: i64,
    want: &str,
    within: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let body = me(app, token, event).await;
        if body["data"]["status"] == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never became {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` buyers join the room of `event` in order; the pacer starts; the first `admitted` of
/// them are waited for until admitted. Returns the buyers' tokens and the admission tokens.
async fn line_up(
    app: &TestApp,
    event: i64,
    n: usize,
    admitted: usize,
) -> (Vec<String>, Vec<String>) {
    let mut line = Vec::new();
    for _ in 0..n {
        let token = app.user_unlimited(Role::Guest).await;
        json_with_status(join(app, &token, event).await, 201).await;
        line.push(token);
    }
    start_pacer(app);
    let mut tokens = Vec::new();
    for buyer in &line[..admitted] {
        let got = until_status(app, buyer, event, "admitted", Duration::from_secs(5)).await;
        tokens.push(got["data"]["admissionToken"].as_str().unwrap().to_owned());
    }
    (line, tokens)
}

async fn book_with(
    app: &TestApp,
    token: &str,
    event: i64,
    admission: Option<&str>,
) -> reqwest::Response {
    let mut headers = vec![("prefer", "wait=20")];
    if let Some(t) = admission {
        headers.push(("x-admission-token", t));
    }
    app.book(token, &book_body(event, 1), &headers).await
}

/// Cancels one booking, asserting it was cancelled.
async fn cancel(app: &TestApp, token: &str, event: i64, booking: i64) {
    let resp = app
        .client
        .delete(app.url("/api/events/book"))
        .bearer_auth(token)
        .json(&json!({ "eventId": event, "bookingId": booking }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The order a verifier computes from the public facts, independently of the server's code:
/// pre-sale tickets by the first 6 bytes of SHA-1(seed ":" n), ties by n.
fn verifier_order(seed: &str, n: u64) -> Vec<u64> {
    let mut keyed: Vec<(Vec<u8>, u64)> = (1..=n)
        .map(|i| {
            (
                sha1::Sha1::digest(format!("{seed}:{i}").as_bytes())[..6].to_vec(),
                i,
            )
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, i)| i).collect()
}

async fn the_presale_order_is_the_revealed_draw_then_arrival_order(shape: Shape) {
    let app = app_with(shape, &[]).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = room_event(&app, &host, 100, Some(Duration::from_secs(4))).await;

    let before = facts(&app, event).await;
    let seed_hash = before["data"]["seedHash"].as_str().unwrap().to_owned();
    assert!(
        before["data"]["seed"].is_null(),
        "secret until on-sale: {before}"
    );

    let mut buyers = Vec::new();
    for _ in 0..25 {
        let token = app.user_unlimited(Role::Guest).await;
        let joined = json_with_status(join(&app, &token, event).await, 201).await;
        assert_eq!(joined["data"]["status"], "waiting");
        assert!(
            joined["data"]["position"].is_null(),
            "drawn at on-sale: {joined}"
        );
        let ticket = joined["data"]["ticket"].as_str().unwrap().to_owned();
        buyers.push((token, ticket));
    }
    // One place per account: joining again is the same place.
    let again = json_with_status(join(&app, &buyers[3].0, event).await, 200).await;
    assert_eq!(again["data"]["ticket"], buyers[3].1.as_str());

    let opens = Utc::now() + chrono::Duration::seconds(4);
    tokio::time::sleep((opens - Utc::now()).to_std().unwrap_or_default()).await;
    let mut late = Vec::new();
    for _ in 0..3 {
        let token = app.user_unlimited(Role::Guest).await;
        json_with_status(join(&app, &token, event).await, 201).await;
        late.push(token);
    }

    let after = facts(&app, event).await;
    let seed = after["data"]["seed"].as_str().expect("revealed at on-sale");
    assert_eq!(
        sha256_hex(seed),
        seed_hash,
        "the seed is the one committed to"
    );
    assert_eq!(after["data"]["preSaleJoined"], 25);
    let order = verifier_order(seed, 25);
    assert_ne!(order, (1..=25).collect::<Vec<_>>(), "not arrival order");
    for (token, ticket) in &buyers {
        let n: u64 = ticket.strip_prefix("pre-").unwrap().parse().unwrap();
        let expected = order.iter().position(|t| *t == n).unwrap() as u64 + 1;
        let got = me(&app, token, event).await;
        assert_eq!(got["data"]["position"], expected, "ticket {ticket}: {got}");
    }
    for (i, token) in late.iter().enumerate() {
        let got = me(&app, token, event).await;
        assert_eq!(
            got["data"]["position"],
            26 + i as u64,
            "arrival order after on-sale"
        );
    }
    // Someone who never joined has no place.
    let stranger = app.user_unlimited(Role::Guest).await;
    let resp = app
        .get_as(&format!("/api/events/{event}/queue/me"), &stranger)
        .await;
    assert_eq!(resp.status(), 404);
}

async fn admission_tokens_are_bound_to_account_event_and_time(shape: Shape) {
    let app = app_with(shape, &[("ATOMICSEATS__WAITING_ROOM__ADMISSION_TTL", "4")]).await;
    start_pacer(&app);
    let host = app.user_unlimited(Role::Host).await;
    let event = room_event(&app, &host, 10, None).await;
    let other_event = room_event(&app, &host, 10, None).await;
    let a = app.user_unlimited(Role::Guest).await;
    let b = app.user_unlimited(Role::Guest).await;
    json_with_status(join(&app, &a, event).await, 201).await;
    json_with_status(join(&app, &a, other_event).await, 201).await;
    let admitted = until_status(&app, &a, event, "admitted", Duration::from_secs(5)).await;
    let token = admitted["data"]["admissionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let on_other = until_status(&app, &a, other_event, "admitted", Duration::from_secs(5)).await;
    let other_token = on_other["data"]["admissionToken"]
        .as_str()
        .unwrap()
        .to_owned();

    for (who, admission, code) in [
        (&a, None, "admission_required"),
        (&a, Some("not.a.token"), "admission_invalid"),
        // A valid access token is not an admission.
        (&a, Some(a.as_str()), "admission_invalid"),
        (&b, Some(token.as_str()), "admission_not_yours"),
        (&a, Some(other_token.as_str()), "admission_not_yours"),
    ] {
        let body = json_with_status(book_with(&app, who, event, admission).await, 403).await;
        assert_eq!(body["code"], code, "{body}");
    }
    json_with_status(book_with(&app, &a, event, Some(&token)).await, 201).await;
    // The admission lasts 4 s: then the token is refused and the place says so.
    let expired = until_status(&app, &a, event, "expired", Duration::from_secs(8)).await;
    assert!(expired["data"]["admissionToken"].is_null());
    let body = json_with_status(book_with(&app, &a, event, Some(&token)).await, 403).await;
    assert_eq!(body["code"], "admission_expired");
    // An event without a room needs no token.
    let plain = app.create_event(&host, &event_body("Open", 5, 5)).await;
    json_with_status(book_with(&app, &b, plain, None).await, 201).await;
    // (The recorder is shared by the tests of this process: at least this test's use.)
    let metrics = app.metrics().await;
    let used: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("waiting_room_tokens_used_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(used >= 1.0, "{metrics}");
    assert_seat_invariants(&app).await;
}

async fn pacing_stops_at_sold_out_tells_the_line_and_resumes_when_seats_return(shape: Shape) {
    let app = app_admitting_one_per_seat(shape).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = room_event(&app, &host, 4, None).await;
    // 4 seats, 1 per buyer: the first 4 in line are admitted, nobody else.
    let (line, tokens) = line_up(&app, event, 10, 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(facts(&app, event).await["data"]["admitted"], 4);
    let fifth = me(&app, &line[4], event).await;
    assert_eq!(fifth["data"]["status"], "waiting");
    assert_eq!(fifth["data"]["ahead"], 0);
    assert!(fifth["data"]["retryAfterSecs"].as_u64().unwrap() >= 1);

    let mut booked = Vec::new();
    for (buyer, token) in line[..4].iter().zip(&tokens) {
        let body = json_with_status(book_with(&app, buyer, event, Some(token)).await, 201).await;
        booked.push(body["data"]["bookingId"].as_i64().unwrap());
    }
    // Sold out: everyone still in line is told within a second or two.
    let started = tokio::time::Instant::now();
    for buyer in &line[4..] {
        let got = until_status(&app, buyer, event, "sold_out", Duration::from_secs(2)).await;
        assert_eq!(got["data"]["waitlistOpen"], true);
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        facts(&app, event).await["data"]["admitted"],
        4,
        "none admitted into a sold-out event"
    );

    // A seat comes back: admission resumes for the next in line.
    cancel(&app, &line[0], event, booked[0]).await;
    until_status(&app, &line[4], event, "admitted", Duration::from_secs(5)).await;
    assert_eq!(me(&app, &line[5], event).await["data"]["status"], "waiting");

    // The host pauses the room: nobody more, even with seats.
    let paused = app
        .client
        .patch(app.url(&format!("/api/events/{event}/queue")))
        .bearer_auth(&host)
        .json(&json!({ "paused": true }))
        .send()
        .await
        .unwrap();
    let paused = json_with_status(paused, 200).await;
    assert_eq!(paused["data"]["paused"], true);
    // The host's event stats show the queue.
    let stats = json_with_status(
        app.get_as(&format!("/api/events/{event}/stats"), &host)
            .await,
        200,
    )
    .await;
    assert_eq!(stats["data"]["queue"]["admitted"], 5, "{stats}");
    assert_eq!(stats["data"]["queue"]["joined"], 10);
    assert_eq!(stats["data"]["queue"]["paused"], true);
    let guest = app
        .client
        .patch(app.url(&format!("/api/events/{event}/queue")))
        .bearer_auth(&line[9])
        .json(&json!({ "paused": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(guest.status(), 403);
    assert_seat_invariants(&app).await;
}

async fn a_stream_follows_a_place_until_admission(shape: Shape) {
    use futures_util::StreamExt;

    let app = app_admitting_one_per_seat(shape).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = room_event(&app, &host, 1, None).await;
    let first = app.user_unlimited(Role::Guest).await;
    let second = app.user_unlimited(Role::Guest).await;
    json_with_status(join(&app, &first, event).await, 201).await;
    json_with_status(join(&app, &second, event).await, 201).await;
    start_pacer(&app);
    let admitted = until_status(&app, &first, event, "admitted", Duration::from_secs(5)).await;
    let token = admitted["data"]["admissionToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let resp = app
        .get_as(&format!("/api/events/{event}/queue/me/stream"), &second)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut seen = Vec::<Value>::new();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = text.find("\n\n") {
                let frame: String = text.drain(..end + 2).collect();
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                    seen.push(serde_json::from_str(data).unwrap());
                }
            }
            if seen.len() == 1 {
                // Waiting first; the first buyer gives their seat back: the second is next.
                let booked =
                    json_with_status(book_with(&app, &first, event, Some(&token)).await, 201).await;
                cancel(
                    &app,
                    &first,
                    event,
                    booked["data"]["bookingId"].as_i64().unwrap(),
                )
                .await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("the stream ends after admission");
    let statuses: Vec<&str> = seen.iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.first(), Some(&"waiting"), "{seen:?}");
    assert_eq!(statuses.last(), Some(&"admitted"), "{seen:?}");
    assert!(seen.last().unwrap()["admissionToken"].is_string());
}

/// Redis shape: the places are in Redis, so a new process (an API restart, another node)
/// finds everyone where they were.
#[tokio::test]
async fn places_survive_a_restart_in_redis() {
    let app = app_with(Shape::Redis, &[]).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = room_event(&app, &host, 50, Some(Duration::from_secs(2))).await;
    let mut places = Vec::new();
    for _ in 0..5 {
        let token = app.user_unlimited(Role::Guest).await;
        let joined = json_with_status(join(&app, &token, event).await, 201).await;
        places.push(joined["data"]["ticket"].as_str().unwrap().to_owned());
    }
    // A second process with the same configuration: a fresh state, nothing in memory.
    let restarted =
        atomicseats::app::build_state(app.state.settings().clone(), "restarted").unwrap();
    let now = Utc::now().timestamp_millis();
    let users: Vec<i64> = app
        .db
        .client()
        .await
        .query("SELECT id FROM users WHERE role = 'guest' ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (user, ticket) in users.iter().zip(&places) {
        let found = restarted
            .rooms()
            .place(event, *user, now, false)
            .await
            .unwrap();
        assert_eq!(found.place.unwrap().ticket.label(), *ticket);
    }
    assert_eq!(
        restarted.rooms().seed(event).await.unwrap(),
        app.state.rooms().seed(event).await.unwrap(),
        "the same committed seed"
    );
}

/// Joining is for a room's event, from its opening time, one place per account.
#[tokio::test]
async fn joining_errors_are_clear() {
    let app = app_with(
        Shape::Memory,
        &[("ATOMICSEATS__WAITING_ROOM__OPENS_BEFORE", "60")],
    )
    .await;
    let host = app.user_unlimited(Role::Host).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let plain = app.create_event(&host, &event_body("Open", 5, 5)).await;
    let body = json_with_status(join(&app, &buyer, plain).await, 409).await;
    assert_eq!(body["code"], "no_waiting_room");
    let later = room_event(&app, &host, 5, Some(Duration::from_secs(3600))).await;
    let body = json_with_status(join(&app, &buyer, later).await, 409).await;
    assert_eq!(body["code"], "queue_not_open");
    let resp = app
        .client
        .post(app.url(&format!("/api/events/{later}/queue")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body = json_with_status(join(&app, &buyer, 999_999).await, 404).await;
    assert_eq!(body["code"], "not_found");
    let resp = app
        .client
        .post(app.url("/api/events/abc/queue"))
        .bearer_auth(&buyer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let bad = app
        .client
        .patch(app.url(&format!("/api/events/{later}/queue")))
        .bearer_auth(&host)
        .json(&json!({ "maxAdmitPerSec": -1 }))
        .send()
        .await
        .unwrap();
    let bad = json_with_status(bad, 400).await;
    assert_eq!(bad["errors"][0]["field"], "maxAdmitPerSec");
}

/// A stream does not hold up a graceful stop: it ends with a reconnect hint at once.
#[tokio::test]
async fn streams_end_when_the_server_stops() {
    use futures_util::StreamExt;

    let mut app = app_with(Shape::Memory, &[]).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = room_event(&app, &host, 10, Some(Duration::from_secs(600))).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    json_with_status(join(&app, &buyer, event).await, 201).await;
    let resp = app
        .get_as(&format!("/api/events/{event}/queue/me/stream"), &buyer)
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"waiting\""));
    let asked = tokio::time::Instant::now();
    let (stopped, rest) = tokio::join!(app.stop(), async {
        let mut rest = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        rest
    });
    stopped.unwrap();
    assert!(rest.contains("retry: 1000"), "{rest}");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "the stop waited {:?} (shutdown_timeout is 5 s in test)",
        asked.elapsed()
    );
}

/// Joins are limited per client IP (`rate_limit.queue_join`), whatever the account: one
/// machine cannot take many places with many accounts.
#[tokio::test]
async fn joins_are_rate_limited_per_ip() {
    let app = app_with(
        Shape::Memory,
        &[
            ("ATOMICSEATS__RATE_LIMIT__ENABLED", "true"),
            ("ATOMICSEATS__RATE_LIMIT__QUEUE_JOIN", "2"),
            ("ATOMICSEATS__RATE_LIMIT__WRITE", "100"),
            ("ATOMICSEATS__RATE_LIMIT__READ", "100"),
        ],
    )
    .await;
    let host = app.user_unlimited(Role::Host).await;
    let event = room_event(&app, &host, 10, None).await;
    for _ in 0..2 {
        let token = app.user_unlimited(Role::Guest).await;
        json_with_status(join(&app, &token, event).await, 201).await;
    }
    let third = app.user_unlimited(Role::Guest).await;
    let resp = join(&app, &third, event).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
}

/// Status streams are capped per account (and per address) and end after
/// `waiting_room.stream_max_secs` with a `retry:` for the browser; polling `queue/me` is
/// limited per user (`rate_limit.queue_poll`).
#[tokio::test]
async fn streams_are_capped_and_bounded_and_polls_limited_per_user() {
    use futures_util::StreamExt;

    let app = app_with(
        Shape::Memory,
        &[
            ("ATOMICSEATS__WAITING_ROOM__MAX_STREAMS_PER_USER", "2"),
            ("ATOMICSEATS__WAITING_ROOM__STREAM_MAX_SECS", "2"),
            ("ATOMICSEATS__RATE_LIMIT__ENABLED", "true"),
            ("ATOMICSEATS__RATE_LIMIT__QUEUE_POLL", "3"),
            ("ATOMICSEATS__RATE_LIMIT__QUEUE_JOIN", "100"),
            ("ATOMICSEATS__RATE_LIMIT__WRITE", "100"),
            ("ATOMICSEATS__RATE_LIMIT__READ", "100"),
        ],
    )
    .await;
    let host = app.user_unlimited(Role::Host).await;
    let event = room_event(&app, &host, 10, Some(Duration::from_secs(600))).await;
    let (buyer, other) = (
        app.user_unlimited(Role::Guest).await,
        app.user_unlimited(Role::Guest).await,
    );
    json_with_status(join(&app, &buyer, event).await, 201).await;
    json_with_status(join(&app, &other, event).await, 201).await;
    let path = format!("/api/events/{event}/queue/me/stream");
    let first = app.get_as(&path, &buyer).await;
    let second = app.get_as(&path, &buyer).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = json_with_status(app.get_as(&path, &buyer).await, 429).await;
    assert_eq!(third["code"], "too_many_streams", "{third}");
    // Another account is not held back by this one's streams.
    assert_eq!(app.get_as(&path, &other).await.status(), 200);
    // A stream ends by itself after stream_max_secs, telling the browser to come back; its
    // slot is free again then.
    let started = std::time::Instant::now();
    let mut body = first.bytes_stream();
    let mut text = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("retry: 1000"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(second);
    let start = std::time::Instant::now();
    while app.get_as(&path, &buyer).await.status() != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the slots never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Polling: the per-user limit, not the room's advice, is what a fast poller meets.
    let poll = format!("/api/events/{event}/queue/me");
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(app.get_as(&poll, &buyer).await.status().as_u16());
    }
    assert_eq!(codes, [200, 200, 200, 429, 429]);
    assert_eq!(app.get_as(&poll, &other).await.status(), 200, "per user");
}

/// An admission lets one request take seats: the second with the same token is refused
/// (`admission_used`), by the event's writer. A token given while the room was sold out only
/// lets its holder join the waitlist: when seats come back it does not take them ahead of the
/// buyers the room admits next.
async fn an_admission_books_once_and_a_sold_out_one_only_joins_the_waitlist(shape: Shape) {
    let app = app_admitting_one_per_seat(shape).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = room_event(&app, &host, 2, None).await;
    let (line, tokens) = line_up(&app, event, 4, 2).await;
    json_with_status(
        book_with(&app, &line[0], event, Some(&tokens[0])).await,
        201,
    )
    .await;
    // The same admission again: refused, nothing booked.
    let again = json_with_status(
        book_with(&app, &line[0], event, Some(&tokens[0])).await,
        409,
    )
    .await;
    assert_eq!(again["code"], "admission_used", "{again}");
    json_with_status(
        book_with(&app, &line[1], event, Some(&tokens[1])).await,
        201,
    )
    .await;

    // Sold out: the last in line gets a token that only joins the waitlist.
    let sold_out = until_status(&app, &line[3], event, "sold_out", Duration::from_secs(5)).await;
    let waitlist_only = sold_out["data"]["admissionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // A seat comes back (the host adds one): the sold-out token still only joins the line.
    app.update_event(&host, &json!({ "id": event, "capacity": 3 }))
        .await;
    let waited = json_with_status(
        book_with(&app, &line[3], event, Some(&waitlist_only)).await,
        202,
    )
    .await;
    assert_eq!(waited["data"]["status"], "waitlisted", "{waited}");
    let db = app.db.client().await;
    let used: Vec<(i64, i32)> = db
        .query(
            "SELECT admission_rank, seats_confirmed + seats_waitlisted FROM booking_requests \
              WHERE event_id = $1 AND admission_rank IS NOT NULL ORDER BY admission_rank",
            &[&event],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(used.len(), 3, "one use per admission: {used:?}");
    let confirmed: i64 = db
        .query_one(
            "SELECT coalesce(sum(seats), 0)::int8 FROM bookings WHERE event_id = $1",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(confirmed, 2, "the sold-out token took no seat");
    assert_seat_invariants(&app).await;
}

/// The room in front of the Kafka transport: the token is checked on the accept path, the
/// pacer reads the seats from PostgreSQL (no shared cache without Redis), the writer decides.
#[tokio::test]
async fn a_room_sells_on_the_kafka_transport() {
    let app = crate::helpers::bookings::kafka_builder()
        .env("ATOMICSEATS__WAITING_ROOM__TICK_MS", "50")
        .env("ATOMICSEATS__WAITING_ROOM__SEATS_PER_BUYER", "1")
        .env("ATOMICSEATS__WAITING_ROOM__OVERADMIT", "1")
        .spawn()
        .await;
    start_pacer(&app);
    let host = app.user_unlimited(Role::Host).await;
    let event = room_event(&app, &host, 1, None).await;
    let first = app.user_unlimited(Role::Guest).await;
    let second = app.user_unlimited(Role::Guest).await;
    json_with_status(join(&app, &first, event).await, 201).await;
    json_with_status(join(&app, &second, event).await, 201).await;
    let admitted = until_status(&app, &first, event, "admitted", Duration::from_secs(10)).await;
    let token = admitted["data"]["admissionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(me(&app, &second, event).await["data"]["status"], "waiting");
    let body = json_with_status(book_with(&app, &second, event, Some(&token)).await, 403).await;
    assert_eq!(body["code"], "admission_not_yours");
    json_with_status(book_with(&app, &first, event, Some(&token)).await, 201).await;
    until_status(&app, &second, event, "sold_out", Duration::from_secs(5)).await;
    assert_seat_invariants(&app).await;
}

//! Checkout fixtures shared by the test modules: hold events, decided bookings, payment calls,
//! the ledger and the books-balance check.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::bookings::{WAIT, assert_seat_invariants};
use crate::helpers::events::event_body;
use crate::helpers::stripe::LocalStripe;
use crate::helpers::{TestApp, TestAppBuilder, json_with_status};

/// A `hold` checkout event with `capacity` seats.
pub async fn hold_event(app: &TestApp, host: &str, capacity: i64, extra: Value) -> i64 {
    let mut body = event_body("Checkout", 5, capacity);
    body["checkout"] = json!("hold");
    body["holdSeconds"] = json!(60);
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    app.create_event(host, &body).await
}

/// Adds a ticket type to `event`; returns its id.
pub async fn add_type(app: &TestApp, host: &str, event: i64, body: Value) -> i64 {
    let resp = app
        .client
        .post(app.url(&format!("/api/events/{event}/ticket-types")))
        .bearer_auth(host)
        .json(&body)
        .send()
        .await
        .unwrap();
    json_with_status(resp, 201).await["data"]["id"]
        .as_i64()
        .unwrap()
}

/// Books with `Prefer: wait` and returns the decided outcome (`data`).
pub async fn book_decided(app: &TestApp, token: &str, body: &Value) -> Value {
    let resp = app.book(token, body, &WAIT).await;
    let status = resp.status().as_u16();
    let json: Value = resp.json().await.unwrap();
    assert!(matches!(status, 201 | 202 | 409), "{status}: {json}");
    if status == 409 {
        return json!({ "status": "rejected", "reason": json["code"] });
    }
    json["data"].clone()
}

/// `POST path` with a bearer token and an optional JSON body.
pub async fn post(
    app: &TestApp,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// A booking's status as stored.
pub async fn booking_status(app: &TestApp, booking: i64) -> String {
    app.db
        .client()
        .await
        .query_one("SELECT status FROM bookings WHERE id = $1", &[&booking])
        .await
        .unwrap()
        .get(0)
}

/// Waits until the booking is in `want` (panics after `within`); returns how long it took.
pub async fn until_booking(app: &TestApp, booking: i64, want: &str, within: Duration) -> Duration {
    let start = std::time::Instant::now();
    loop {
        let now = booking_status(app, booking).await;
        if now == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "booking {booking} is {now}, not {want}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ledger and the type counters agree with the bookings (reconciliation finds nothing).
pub async fn assert_books_balance(app: &TestApp) {
    assert_seat_invariants(app).await;
    let report = atomicseats::reconcile::run_once(&app.state).await.unwrap();
    assert!(report.drift.is_empty(), "{:?}", report.drift);
    assert!(report.type_drift.is_empty(), "{:?}", report.type_drift);
    assert!(report.money_drift.is_empty(), "{:?}", report.money_drift);
    assert!(report.stuck.is_empty(), "{:?}", report.stuck);
}

/// The fields a 400 names, in order.
pub fn fields_of(error: &Value) -> Vec<&str> {
    error["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect()
}

/// The ledger rows of a booking (kind, amount), oldest first.
pub async fn ledger(app: &TestApp, booking: i64) -> Vec<(String, i64)> {
    app.db
        .client()
        .await
        .query(
            "SELECT kind, amount FROM payments WHERE booking_id = $1 ORDER BY id",
            &[&booking],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The builder with the app pointed at the local Stripe server.
pub fn with_stripe(builder: TestAppBuilder, stripe: &LocalStripe) -> TestAppBuilder {
    let mut b = builder;
    for (k, v) in stripe.env() {
        b = b.env(k, &v);
    }
    b
}

//! Event fixtures: a valid event body, the event calls, seats given directly.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_with_status};

/// A valid event body starting `days` from now.
pub fn event_body(name: &str, days: i64, capacity: i64) -> Value {
    let start = Utc::now() + Duration::days(days);
    json!({
        "name": name,
        "description": "An evening of music",
        "startsAt": start.to_rfc3339(),
        "endsAt": (start + Duration::hours(3)).to_rfc3339(),
        "venue": "Arena",
        "capacity": capacity,
        "price": 1200,
    })
}

impl TestApp {
    /// `POST /api/events/update` as `token`, asserting 200; returns the answer.
    pub async fn update_event(&self, token: &str, body: &Value) -> Value {
        json_with_status(self.post_as("/api/events/update", token, body).await, 200).await
    }

    pub async fn post_as(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_events(
        &self,
        method: reqwest::Method,
        token: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, self.url("/api/admin/events"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.unwrap()
    }

    /// Creates an event as `token`'s user and returns its id.
    pub async fn create_event(&self, token: &str, body: &Value) -> i64 {
        let resp = self.post_as("/api/events/create", token, body).await;
        json_with_status(resp, 201).await["data"]["id"]
            .as_i64()
            .unwrap()
    }

    /// Every event of the public listing, following cursors with `limit`.
    pub async fn list_all(&self, query: &str, limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("/api/events/all?limit={limit}{query}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let body =
                json_with_status(self.client.get(self.url(&url)).send().await.unwrap(), 200).await;
            out.extend(body["data"]["items"].as_array().unwrap().iter().cloned());
            match body["data"]["pageInfo"]["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => {
                    assert_eq!(body["data"]["pageInfo"]["hasMore"], false);
                    return out;
                }
            }
        }
    }
}

/// Gives `event` `seats` confirmed seats held by `user` (as the booking engine would).
pub async fn book_directly(app: &TestApp, event: i64, user: i64, seats: i32) {
    let c = app.db.client().await;
    let req = uuid::Uuid::new_v4();
    c.execute(
        "INSERT INTO booking_requests (id, user_id, event_id, seats, status, seats_confirmed, requested_at, cost) \
         VALUES ($1, $2, $3, $4, 'confirmed', $4, now(), $4 * 1200)",
        &[&req, &user, &event, &seats],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO bookings (request_id, user_id, event_id, seats, cost) VALUES ($1, $2, $3, $4, $4 * 1200)",
        &[&req, &user, &event, &seats],
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE events SET reserved_seats = reserved_seats + $2, version = version + 1 WHERE id = $1",
        &[&event, &seats],
    )
    .await
    .unwrap();
}

//! The opt-in legacy envelope: a client written against the Node.js system's shapes (payload in
//! `message`, snake_case on create) works unchanged: create an event, read its id where the old
//! client reads it, book, list.

use atomicseats::users::domain::Role;
use serde_json::{Value, json};

use crate::helpers::events::event_body;
use crate::helpers::{PASSWORD, TestApp};

/// The old client: reads what the old system answered, nothing else.
struct OldClient<'a> {
    app: &'a TestApp,
    /// Extra headers (the per-request opt-in), none when the deployment defaults to legacy.
    headers: Vec<(&'static str, &'static str)>,
}

impl OldClient<'_> {
    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self.app.client.post(self.app.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in &self.headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let mut req = self.app.client.get(self.app.url(path)).bearer_auth(token);
        for (k, v) in &self.headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// The old test client's flow (tests/runConcurrencyTest.js): log in, create an event, read
    /// `message.event_id`, book, list.
    async fn flow(&self, host_email: &str) {
        let (status, login) = self
            .post(
                "/api/user/login",
                None,
                &json!({ "email": host_email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, 200, "{login}");
        assert_eq!(login["data"], "User logged in successfully");
        let token = login["message"]["accessToken"].as_str().unwrap().to_owned();
        assert_eq!(login["message"]["user"]["role"], "host");

        let (status, created) = self
            .post(
                "/api/events/create",
                Some(&token),
                &event_body("Old", 3, 10),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let event_id = created["message"]["event_id"]
            .as_i64()
            .expect("message.event_id");
        assert_eq!(created["message"]["event_name"], "Old");
        assert_eq!(created["message"]["reserved_seats"], 0);

        let (status, booked) = self
            .post(
                "/api/events/book",
                Some(&token),
                &json!({ "eventId": event_id, "numberOfSeats": 2 }),
            )
            .await;
        assert!((200..300).contains(&status), "{booked}");
        assert!(booked["data"]["messageId"].is_string(), "{booked}");
        assert_eq!(booked["message"], "Event Booking in process");

        let (status, listed) = self.get("/api/events/all", &token).await;
        assert_eq!(status, 200);
        let events = listed["message"].as_array().expect("message is the list");
        assert!(events.iter().any(|e| e["id"] == event_id), "{listed}");
    }
}

async fn host(app: &TestApp) -> String {
    app.user(Role::Host).await.email
}

#[tokio::test]
async fn an_old_client_works_with_the_per_request_header() {
    let app = TestApp::spawn().await;
    let old = OldClient {
        app: &app,
        headers: vec![("x-atomicseats-envelope", "legacy")],
    };
    old.flow(&host(&app).await).await;
    // Registration in the old shape: the user in an array under `message`.
    let (status, reg) = old
        .post(
            "/api/user/register",
            None,
            &json!({ "username": "oldone", "name": "Old", "email": "old@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(reg["message"][0]["username"], "oldone", "{reg}");
}

#[tokio::test]
async fn a_legacy_deployment_answers_old_clients_and_new_ones_opt_out() {
    let app = TestApp::builder()
        .env("ATOMICSEATS__HTTP__ENVELOPE", "legacy")
        .spawn()
        .await;
    let email = host(&app).await;
    OldClient {
        app: &app,
        headers: vec![],
    }
    .flow(&email)
    .await;

    // A new client says so and gets the documented envelope.
    let new = OldClient {
        app: &app,
        headers: vec![("x-atomicseats-envelope", "standard")],
    };
    let (_, login) = new
        .post(
            "/api/user/login",
            None,
            &json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert!(login["data"]["accessToken"].is_string(), "{login}");
    assert_eq!(login["message"], "User logged in successfully");
}

#[tokio::test]
async fn errors_and_unchanged_routes_keep_their_shape() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::Guest).await;
    let me = app
        .client
        .get(app.url("/api/user/me"))
        .bearer_auth(&user.access)
        .header("x-atomicseats-envelope", "legacy")
        .send()
        .await
        .unwrap();
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["data"]["id"], user.id);
    let bad = app
        .client
        .post(app.url("/api/events/book"))
        .bearer_auth(&user.access)
        .header("x-atomicseats-envelope", "legacy")
        .json(&json!({ "eventId": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["errors"][0]["field"], "numberOfSeats");
}

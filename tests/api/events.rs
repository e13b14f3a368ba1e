//! Events: authorization, validation, listing, cancellation.

use atomicseats::users::domain::Role;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::events::{book_directly, event_body};
use crate::helpers::{TestApp, json_with_status};

fn user_id(app: &TestApp, token: &str) -> i64 {
    app.state.tokens().verify_access(token).unwrap().id
}

#[tokio::test]
async fn who_may_create_update_and_delete() {
    let app = TestApp::spawn().await;
    let guest = app.user_unlimited(Role::Guest).await;
    let host = app.user_unlimited(Role::Host).await;
    let other_host = app.user_unlimited(Role::Host).await;
    let admin = app.user_unlimited(Role::Admin).await;
    let body = event_body("Rock Night", 10, 100);

    json_with_status(app.post_as("/api/events/create", &guest, &body).await, 403).await;
    let anon = app
        .client
        .post(app.url("/api/events/create"))
        .json(&body)
        .send()
        .await
        .unwrap();
    json_with_status(anon, 401).await;
    let id = app.create_event(&host, &body).await;
    app.create_event(&admin, &body).await;

    let rename = json!({ "id": id, "name": "Renamed" });
    json_with_status(
        app.post_as("/api/events/update", &other_host, &rename)
            .await,
        403,
    )
    .await;
    json_with_status(
        app.post_as("/api/events/update", &guest, &rename).await,
        403,
    )
    .await;
    let updated =
        json_with_status(app.post_as("/api/events/update", &host, &rename).await, 200).await;
    assert_eq!(updated["data"]["name"], "Renamed");
    json_with_status(
        app.post_as(
            "/api/events/update",
            &admin,
            &json!({ "id": id, "venue": "Hall" }),
        )
        .await,
        200,
    )
    .await;

    json_with_status(
        app.post_as("/api/events/delete", &other_host, &json!({ "id": id }))
            .await,
        403,
    )
    .await;
    json_with_status(
        app.post_as("/api/events/delete", &guest, &json!({ "id": id }))
            .await,
        403,
    )
    .await;
    json_with_status(
        app.post_as("/api/events/delete", &admin, &json!({ "id": id }))
            .await,
        200,
    )
    .await;
    // Deleting again is harmless: the event stays cancelled.
    json_with_status(
        app.post_as("/api/events/delete", &host, &json!({ "id": id }))
            .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn admin_event_routes_are_for_admins_only() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let guest = app.user_unlimited(Role::Guest).await;
    let admin = app.user_unlimited(Role::Admin).await;
    let host_id = user_id(&app, &host);
    let mut body = event_body("Admin made", 5, 10);
    body["hostId"] = json!(host_id);

    for token in [&host, &guest] {
        json_with_status(
            app.admin_events(reqwest::Method::GET, token, None).await,
            403,
        )
        .await;
        json_with_status(
            app.admin_events(reqwest::Method::POST, token, Some(&body))
                .await,
            403,
        )
        .await;
    }
    let created = json_with_status(
        app.admin_events(reqwest::Method::POST, &admin, Some(&body))
            .await,
        201,
    )
    .await;
    assert_eq!(created["data"]["hostId"], host_id);
    let id = created["data"]["id"].as_i64().unwrap();

    let mut to_guest = event_body("For a guest", 5, 10);
    to_guest["hostId"] = json!(user_id(&app, &guest));
    let body_err = json_with_status(
        app.admin_events(reqwest::Method::POST, &admin, Some(&to_guest))
            .await,
        400,
    )
    .await;
    assert_eq!(body_err["errors"][0]["field"], "hostId");
    let mut to_nobody = event_body("For nobody", 5, 10);
    to_nobody["hostId"] = json!(987_654);
    json_with_status(
        app.admin_events(reqwest::Method::POST, &admin, Some(&to_nobody))
            .await,
        400,
    )
    .await;

    let patched = json_with_status(
        app.admin_events(
            reqwest::Method::PATCH,
            &admin,
            Some(&json!({ "id": id, "capacity": 20 })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(patched["data"]["capacity"], 20);
    json_with_status(
        app.admin_events(
            reqwest::Method::PATCH,
            &host,
            Some(&json!({ "id": id, "capacity": 30 })),
        )
        .await,
        403,
    )
    .await;
    let listed = json_with_status(
        app.admin_events(reqwest::Method::GET, &admin, None).await,
        200,
    )
    .await;
    assert_eq!(listed["data"]["items"].as_array().unwrap().len(), 1);
    json_with_status(
        app.admin_events(reqwest::Method::DELETE, &admin, Some(&json!({ "id": id })))
            .await,
        200,
    )
    .await;
    let again = json_with_status(
        app.admin_events(reqwest::Method::DELETE, &admin, Some(&json!({ "id": id })))
            .await,
        200,
    )
    .await;
    assert_eq!(again["data"]["cancelled"], true);
    // A host may not create for somebody else through the host route.
    json_with_status(app.post_as("/api/events/create", &host, &body).await, 201).await;
    let mut for_other = event_body("Not mine", 5, 10);
    for_other["hostId"] = json!(user_id(&app, &admin));
    json_with_status(
        app.post_as("/api/events/create", &host, &for_other).await,
        400,
    )
    .await;
}

#[tokio::test]
async fn every_validation_rule_names_its_field() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;

    let body = json_with_status(
        app.post_as("/api/events/create", &host, &json!({})).await,
        400,
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "name",
        "description",
        "venue",
        "startsAt",
        "endsAt",
        "capacity",
        "price",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }

    let past = (Utc::now() - Duration::days(1)).to_rfc3339();
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(201) }), "name"),
        (json!({ "venue": "   " }), "venue"),
        (json!({ "startsAt": "next friday" }), "startsAt"),
        (json!({ "startsAt": "2030-01-01" }), "startsAt"),
        (json!({ "startsAt": past }), "startsAt"),
        (
            json!({ "endsAt": (Utc::now() + Duration::days(1)).to_rfc3339() }),
            "endsAt",
        ),
        (json!({ "capacity": 0 }), "capacity"),
        (json!({ "capacity": -5 }), "capacity"),
        (json!({ "capacity": "10" }), "capacity"),
        (json!({ "capacity": 2.5 }), "capacity"),
        (json!({ "capacity": 1_000_001 }), "capacity"),
        (
            json!({ "capacity": 9_223_372_036_854_775_807i64 }),
            "capacity",
        ),
        (json!({ "price": -1 }), "price"),
        (json!({ "price": "12" }), "price"),
        (json!({ "maxPerUser": 0 }), "maxPerUser"),
        (json!({ "waitlistOpen": "false" }), "waitlistOpen"),
        (json!({ "waitlistOpen": 0 }), "waitlistOpen"),
        (json!({ "reservedSeats": 0 }), "reservedSeats"),
        (json!({ "description": "nul\u{0}byte" }), "description"),
        // Bookings must open before the event starts (event_body starts in 10 days).
        (
            json!({ "onSaleAt": (Utc::now() + Duration::days(11)).to_rfc3339() }),
            "onSaleAt",
        ),
        (json!({ "onSaleAt": "tomorrow" }), "onSaleAt"),
    ];
    for (patch, field) in cases {
        let mut body = event_body("Valid", 10, 100);
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp =
            json_with_status(app.post_as("/api/events/create", &host, &body).await, 400).await;
        let named: Vec<&str> = resp["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            named.contains(&field),
            "{patch} should name {field}: {resp}"
        );
    }

    let id = app.create_event(&host, &event_body("Valid", 10, 100)).await;
    for (patch, field) in [
        (json!({ "id": id }), "body"),
        (json!({ "id": id, "reservedSeats": 500 }), "reservedSeats"),
        (json!({ "id": id, "waitlistOpen": "false" }), "waitlistOpen"),
        (
            json!({ "id": id, "endsAt": (Utc::now() + Duration::hours(1)).to_rfc3339() }),
            "endsAt",
        ),
        (json!({ "name": "no id" }), "id"),
    ] {
        let resp =
            json_with_status(app.post_as("/api/events/update", &host, &patch).await, 400).await;
        assert_eq!(resp["errors"][0]["field"], field, "{patch}: {resp}");
    }
    // A real boolean works, and null removes the per-user cap.
    let ok = json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": id, "waitlistOpen": false, "maxPerUser": 4 }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ok["data"]["waitlistOpen"], false);
    assert_eq!(ok["data"]["maxPerUser"], 4);
    let ok = json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": id, "maxPerUser": null }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ok["data"]["maxPerUser"], Value::Null);
    let reserved: i32 = app
        .db
        .client()
        .await
        .query_one("SELECT reserved_seats FROM events WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reserved, 0, "clients never write reservedSeats");
}

#[tokio::test]
async fn capacity_cannot_drop_below_reserved_seats() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let id = app.create_event(&host, &event_body("Small", 10, 10)).await;
    book_directly(&app, id, user_id(&app, &buyer), 5).await;

    let resp = json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": id, "capacity": 4 }),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(resp["code"], "capacity_below_reserved");
    let message = resp["message"].as_str().unwrap();
    assert!(message.contains('4') && message.contains('5'), "{message}");

    let ok = json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": id, "capacity": 5 }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ok["data"]["availableSeats"], 0);
    assert_eq!(ok["data"]["status"], "sold_out");
}

#[tokio::test]
async fn deleting_an_event_without_bookings_hides_it_and_keeps_the_row() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let id = app
        .create_event(&host, &event_body("Gone soon", 10, 10))
        .await;

    let body = json_with_status(
        app.post_as("/api/events/delete", &host, &json!({ "id": id }))
            .await,
        200,
    )
    .await;

    // Cancelled, not removed: requests already queued for it are still decided and stored
    // (engine v2 bug 5).
    assert_eq!(body["data"]["cancelled"], true);
    let status: String = app
        .db
        .client()
        .await
        .query_one("SELECT status FROM events WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "cancelled");
    json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{id}")))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let listed = app.list_all("", 50).await;
    assert!(listed.iter().all(|e| e["id"] != id), "gone from listings");
}

#[tokio::test]
async fn deleting_an_event_with_bookings_cancels_it_and_notifies_holders() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let a = app.user_unlimited(Role::Guest).await;
    let b = app.user_unlimited(Role::Guest).await;
    let waiting = app.user_unlimited(Role::Guest).await;
    let id = app
        .create_event(&host, &event_body("Cancelled show", 10, 10))
        .await;
    book_directly(&app, id, user_id(&app, &a), 4).await;
    book_directly(&app, id, user_id(&app, &b), 6).await;
    let c = app.db.client().await;
    let wreq = uuid::Uuid::new_v4();
    let wuser = user_id(&app, &waiting);
    c.execute(
        "INSERT INTO booking_requests (id, user_id, event_id, seats, status, seats_waitlisted, requested_at, \
                                       waitlist_seq, price_quoted) \
         VALUES ($1, $2, $3, 2, 'waitlisted', 2, now(), nextval('booking_requests_waitlist_seq'), 0)",
        &[&wreq, &wuser, &id],
    )
    .await
    .unwrap();

    let body = json_with_status(
        app.post_as("/api/events/delete", &host, &json!({ "id": id }))
            .await,
        200,
    )
    .await;

    assert_eq!(body["data"]["cancelled"], true);
    assert_eq!(body["data"]["bookingsCancelled"], 2);
    assert_eq!(body["data"]["waitlistCleared"], 1);
    let row = c
        .query_one(
            "SELECT status, reserved_seats FROM events WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "cancelled");
    assert_eq!(row.get::<_, i32>(1), 0);
    let confirmed: i64 = c
        .query_one(
            "SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'confirmed'",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(confirmed, 0);
    let waitlist: i64 = c
        .query_one("SELECT count(*) FROM waitlist WHERE event_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(waitlist, 0);
    let req = c
        .query_one(
            "SELECT status, reject_reason FROM booking_requests WHERE id = $1",
            &[&wreq],
        )
        .await
        .unwrap();
    assert_eq!(req.get::<_, String>(0), "rejected");
    assert_eq!(
        req.get::<_, Option<String>>(1).as_deref(),
        Some("event_closed")
    );
    let notified: Vec<(String, i64)> = c
        .query(
            "SELECT kind, user_id FROM outbox_all WHERE event_id = $1 ORDER BY user_id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(notified.len(), 3, "{notified:?}");
    assert!(notified.contains(&("event_cancelled_waitlist".to_owned(), wuser)));
    // Gone from the public listing and lookups; its host still sees it.
    assert!(app.list_all("", 50).await.is_empty());
    json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{id}")))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let seen = json_with_status(app.get_as(&format!("/api/events/{id}"), &host).await, 200).await;
    assert_eq!(seen["data"]["status"], "cancelled");
    // And it takes no further changes.
    json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": id, "name": "Back" }),
        )
        .await,
        409,
    )
    .await;
}

#[tokio::test]
async fn listing_pages_filters_and_rejects_bad_parameters() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let other = app.user_unlimited(Role::Host).await;
    let mut ids = Vec::new();
    for (i, days) in [5, 1, 3, 2, 4].iter().enumerate() {
        let token = if i % 2 == 0 { &host } else { &other };
        ids.push(
            app.create_event(token, &event_body(&format!("Show {i} Jazz"), *days, 10))
                .await,
        );
    }
    app.create_event(&host, &event_body("Opera gala", 6, 10))
        .await;

    let all = app.list_all("", 2).await;
    let starts: Vec<&str> = all
        .iter()
        .map(|e| e["startsAt"].as_str().unwrap())
        .collect();
    assert_eq!(all.len(), 6);
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "soonest first: {starts:?}"
    );
    assert_eq!(all[0]["availableSeats"], 10);
    assert_eq!(all[0]["status"], "on_sale");

    let mine = app
        .list_all(&format!("&hostId={}", user_id(&app, &host)), 2)
        .await;
    assert_eq!(mine.len(), 4);
    let jazz = app.list_all("&q=jAzZ", 10).await;
    assert_eq!(jazz.len(), 5);
    let percent = app.list_all("&q=%25", 10).await;
    assert!(percent.is_empty(), "LIKE wildcards in q are literal");
    assert_eq!(app.list_all("&upcoming=true", 3).await.len(), 6);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("cursor=garbage", "cursor"),
        ("upcoming=yes", "upcoming"),
        ("hostId=x", "hostId"),
        ("colour=blue", "colour"),
    ] {
        let resp = app
            .client
            .get(app.url(&format!("/api/events/all?{query}")))
            .send()
            .await
            .unwrap();
        let body = json_with_status(resp, 400).await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
    json_with_status(
        app.client
            .get(app.url("/api/events/abc"))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    json_with_status(
        app.client
            .get(app.url("/api/events/999999"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn the_host_sees_the_waitlist_length_and_the_public_does_not() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let id = app.create_event(&host, &event_body("Popular", 3, 10)).await;

    let public = json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{id}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let private =
        json_with_status(app.get_as(&format!("/api/events/{id}"), &host).await, 200).await;

    assert!(public["data"].get("waitlistLength").is_none());
    assert_eq!(private["data"]["waitlistLength"], 0);
}

//! Analytics (`GET /api/admin/analytics`, `GET /api/events/{id}/stats`): figures equal
//! independent SQL aggregates after a mixed workload through the real engine; roles.

use atomicseats::users::domain::Role;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::events::event_body;
use crate::helpers::{TestApp, json_with_status};

const WAIT: [(&str, &str); 1] = [("prefer", "wait=20")];

struct World {
    app: TestApp,
    admin: String,
    host1: String,
    host2: (i64, String),
    events: Vec<i64>,
}

/// Three events of two hosts; 40 buyers book concurrently (some wait), a third of them cancel
/// (which serves waitlists), a few leave a waitlist (rejected, withdrawn).
async fn mixed_workload() -> World {
    let app = TestApp::spawn().await;
    let admin = app.user_unlimited(Role::Admin).await;
    let host1 = app.user_unlimited(Role::Host).await;
    let host2 = app.user(Role::Host).await;
    let mut events = vec![
        app.create_event(&host1, &event_body("A", 5, 30)).await,
        app.create_event(&host1, &event_body("B", 6, 12)).await,
    ];
    let mut c = event_body("C", 7, 8);
    c["price"] = json!(2500);
    events.push(app.create_event(&host2.access, &c).await);
    app.create_event(&host1, &event_body("Empty", 8, 50)).await;

    let buyers = app.many_users(40).await;
    let requests: Vec<(String, Value)> = buyers
        .iter()
        .enumerate()
        .flat_map(|(i, (_, token))| {
            let e1 = events[i % 3];
            let e2 = events[(i + 1) % 3];
            [
                (token.clone(), json!({ "eventId": e1, "numberOfSeats": 1 + i % 4 })),
                (
                    token.clone(),
                    json!({ "eventId": e2, "numberOfSeats": 1 + i % 2, "allowPartial": i % 3 == 0 }),
                ),
            ]
        })
        .collect();
    let statuses: Vec<u16> = futures_util::stream::iter(requests)
        .map(|(token, body)| {
            let app = &app;
            async move { app.book(&token, &body, &WAIT).await.status().as_u16() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 202),
        "{statuses:?}"
    );
    // A third cancel everything on their first event; every fifth leaves its waitlists.
    for (i, (_, token)) in buyers.iter().enumerate() {
        if i % 3 == 0 {
            let resp = app
                .cancel_booking(
                    token,
                    &json!({ "eventId": events[i % 3], "cancelAll": true }),
                )
                .await;
            assert!(matches!(resp.status().as_u16(), 200 | 404));
        }
        if i % 5 == 0 {
            for e in &events {
                let resp = app
                    .client
                    .delete(app.url(&format!("/api/events/{e}/waitlist/me")))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                assert!(matches!(resp.status().as_u16(), 200 | 404));
            }
        }
    }
    World {
        app,
        admin,
        host1,
        host2: (host2.id, host2.access),
        events,
    }
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    app.db
        .client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

/// The flow figures of `body` equal SQL over bookings/requests/waitlist matching `cond`
/// (a predicate on `event_id`).
async fn assert_flows_match(app: &TestApp, data: &Value, cond: &str) {
    let q = |sql: String| async move { scalar(app, &sql).await };
    let b = |status: &str, what: &str| {
        format!(
            "SELECT coalesce({what}, 0)::int8 FROM bookings WHERE status = '{status}' AND {cond}"
        )
    };
    assert_eq!(
        data["totalBookings"]["bookings"],
        q(b("confirmed", "count(*)")).await
    );
    assert_eq!(
        data["totalBookings"]["seats"],
        q(b("confirmed", "sum(seats)")).await
    );
    assert_eq!(
        data["cancellations"]["bookings"],
        q(b("cancelled", "count(*)")).await
    );
    assert_eq!(
        data["cancellations"]["seats"],
        q(b("cancelled", "sum(seats)")).await
    );
    assert_eq!(data["revenue"], q(b("confirmed", "sum(cost)")).await);
    assert_eq!(
        data["waitlist"]["entries"],
        q(format!("SELECT count(*) FROM waitlist WHERE {cond}")).await
    );
    assert_eq!(
        data["waitlist"]["seats"],
        q(format!(
            "SELECT coalesce(sum(seats), 0)::int8 FROM waitlist WHERE {cond}"
        ))
        .await
    );
    for status in ["confirmed", "partial", "waitlisted", "rejected"] {
        assert_eq!(
            data["requestsByOutcome"][status],
            q(format!(
                "SELECT count(*) FROM booking_requests WHERE status = '{status}' AND {cond}"
            ))
            .await,
            "{status}"
        );
    }
    assert_eq!(
        data["requestsByOutcome"]["total"],
        q(format!(
            "SELECT count(*) FROM booking_requests WHERE {cond}"
        ))
        .await
    );
}

#[tokio::test]
async fn analytics_equal_independent_sql_after_a_mixed_workload() {
    let w = mixed_workload().await;
    let app = &w.app;
    // The workload exercised every kind of figure.
    for (what, sql) in [
        (
            "cancelled",
            "SELECT count(*) FROM bookings WHERE status = 'cancelled'",
        ),
        ("waiting", "SELECT count(*) FROM waitlist"),
        (
            "withdrawn",
            "SELECT count(*) FROM booking_requests WHERE reject_reason = 'withdrawn'",
        ),
        (
            "served from the waitlist",
            "SELECT count(*) FROM outbox_all WHERE kind = 'waitlist_confirmed'",
        ),
    ] {
        assert!(scalar(app, sql).await > 0, "workload has no {what} rows");
    }

    let body = json_with_status(app.get_as("/api/admin/analytics", &w.admin).await, 200).await;
    assert_eq!(body["message"], "Admin analytics fetched successfully");
    let data = &body["data"];
    assert_flows_match(app, data, "TRUE").await;

    let reserved = scalar(
        app,
        "SELECT sum(reserved_seats)::int8 FROM events WHERE status = 'active'",
    )
    .await;
    let capacity = scalar(
        app,
        "SELECT sum(capacity)::int8 FROM events WHERE status = 'active'",
    )
    .await;
    assert_eq!(data["overallCapacity"]["totalReserved"], reserved);
    assert_eq!(data["overallCapacity"]["totalCapacity"], capacity);
    let pct = data["overallCapacity"]["utilizationPercent"]
        .as_f64()
        .unwrap();
    assert!(
        (pct - (reserved as f64 * 100.0 / capacity as f64)).abs() < 0.006,
        "{pct}"
    );

    // Top 5 by confirmed seats (= SUM over confirmed bookings), ties by id.
    let c = app.db.client().await;
    let top: Vec<(i64, i64)> = c
        .query(
            "SELECT e.id, coalesce(sum(b.seats), 0)::int8 AS s FROM events e
               LEFT JOIN bookings b ON b.event_id = e.id AND b.status = 'confirmed'
              GROUP BY e.id ORDER BY s DESC, e.id LIMIT 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let body = json_with_status(
        app.get_as("/api/admin/analytics?limit=2", &w.admin).await,
        200,
    )
    .await;
    let got: Vec<(i64, i64)> = body["data"]["mostPopularEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_i64().unwrap(),
                e["confirmedSeats"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, top);

    // Every event once, by utilisation then id, one per page; percentages are numbers.
    let want: Vec<(i64, f64)> = c
        .query(
            "SELECT id, round(reserved_seats * 100.0 / capacity, 2)::float8 FROM events
              ORDER BY reserved_seats::numeric / capacity DESC, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut got = Vec::new();
    let mut cursor = String::new();
    loop {
        let body = json_with_status(
            app.get_as(
                &format!("/api/admin/analytics?perEventLimit=1{cursor}"),
                &w.admin,
            )
            .await,
            200,
        )
        .await;
        for e in body["data"]["perEventUtilization"].as_array().unwrap() {
            got.push((
                e["id"].as_i64().unwrap(),
                e["utilizationPercent"].as_f64().unwrap(),
            ));
        }
        match body["data"]["perEventPageInfo"]["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(got, want);

    // One host's events.
    let (host2, _) = &w.host2;
    let body = json_with_status(
        app.get_as(&format!("/api/admin/analytics?hostId={host2}"), &w.admin)
            .await,
        200,
    )
    .await;
    assert_flows_match(
        app,
        &body["data"],
        &format!("event_id IN (SELECT id FROM events WHERE host_id = {host2})"),
    )
    .await;
    assert_eq!(
        body["data"]["perEventUtilization"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Time windows apply to the flows, not to the current capacity.
    let body = json_with_status(
        app.get_as("/api/admin/analytics?from=2099-01-01", &w.admin)
            .await,
        200,
    )
    .await;
    assert_eq!(body["data"]["totalBookings"]["bookings"], 0);
    assert_eq!(body["data"]["requestsByOutcome"]["total"], 0);
    assert_eq!(body["data"]["overallCapacity"]["totalReserved"], reserved);
    let body = json_with_status(
        app.get_as(
            "/api/admin/analytics?from=2000-01-01&to=2099-12-31",
            &w.admin,
        )
        .await,
        200,
    )
    .await;
    assert_flows_match(app, &body["data"], "TRUE").await;
}

#[tokio::test]
async fn event_stats_are_for_the_host_and_admins_and_equal_sql() {
    let w = mixed_workload().await;
    let app = &w.app;
    let a = w.events[0];
    let url = format!("/api/events/{a}/stats");

    for token in [&w.host1, &w.admin] {
        let body = json_with_status(app.get_as(&url, token).await, 200).await;
        assert_flows_match(app, &body["data"], &format!("event_id = {a}")).await;
        let reserved = scalar(
            app,
            &format!("SELECT reserved_seats::int8 FROM events WHERE id = {a}"),
        )
        .await;
        assert_eq!(body["data"]["event"]["reservedSeats"], reserved);
        assert_eq!(body["data"]["event"]["capacity"], 30);
    }
    // Another host, a guest: 403. No token: 401. No such event: 404.
    let guest = app.user_unlimited(Role::Guest).await;
    for token in [&w.host2.1, &guest] {
        json_with_status(app.get_as(&url, token).await, 403).await;
    }
    let resp = app.client.get(app.url(&url)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    json_with_status(app.get_as("/api/events/999999/stats", &w.admin).await, 404).await;
    // Parameters are checked.
    for (query, field) in [
        ("from=soon", "from"),
        ("x=1", "x"),
        ("from=2026-02-02&to=2026-02-01", "to"),
    ] {
        let body =
            json_with_status(app.get_as(&format!("{url}?{query}"), &w.host1).await, 400).await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
    json_with_status(app.get_as("/api/events/abc/stats", &w.host1).await, 400).await;
}

#[tokio::test]
async fn only_admins_reach_analytics_and_parameters_are_checked() {
    let app = TestApp::spawn().await;
    let admin = app.user_unlimited(Role::Admin).await;
    for role in [Role::Guest, Role::Host] {
        let token = app.user_unlimited(role).await;
        json_with_status(app.get_as("/api/admin/analytics", &token).await, 403).await;
        // The role is checked before the parameters.
        json_with_status(
            app.get_as("/api/admin/analytics?limit=0", &token).await,
            403,
        )
        .await;
    }
    let resp = app
        .client
        .get(app.url("/api/admin/analytics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // An empty system: zeros, not errors or nulls.
    let body = json_with_status(app.get_as("/api/admin/analytics", &admin).await, 200).await;
    assert_eq!(body["data"]["overallCapacity"]["utilizationPercent"], 0.0);
    assert_eq!(body["data"]["totalBookings"]["seats"], 0);
    assert_eq!(body["data"]["mostPopularEvents"], json!([]));
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("perEventLimit=501", "perEventLimit"),
        ("cursor=nope", "cursor"),
        ("hostId=-3", "hostId"),
        ("from=2026-02-30", "from"),
        ("to=tomorrow", "to"),
        ("from=2026-02-02&to=2026-02-01", "to"),
        ("group=event", "group"),
    ] {
        let body = json_with_status(
            app.get_as(&format!("/api/admin/analytics?{query}"), &admin)
                .await,
            400,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
        assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{query}");
    }
}

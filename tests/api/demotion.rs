//! A role change takes effect at once (security #1 and #8): powers are re-read from the
//! database for every decision that grants them, not trusted from the access token, and the
//! last admin cannot be lost to a race.

use atomicseats::users::domain::Role;
use serde_json::json;

use crate::helpers::bookings::{WAIT, book_body};
use crate::helpers::events::event_body;
use crate::helpers::{TestApp, json_with_status};

async fn id_of(app: &TestApp, token: &str) -> i64 {
    app.state.tokens().verify_access(token).unwrap().id
}

async fn set_role(app: &TestApp, id: i64, role: &str) {
    app.db
        .client()
        .await
        .execute("UPDATE users SET role = $2 WHERE id = $1", &[&id, &role])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_powers_everywhere_at_once() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let admin = app.user_unlimited(Role::Admin).await;
    let event = app.create_event(&host, &event_body("Guarded", 5, 10)).await;
    let cancelled = app.create_event(&host, &event_body("Gone", 5, 10)).await;
    let booked =
        json_with_status(app.book(&buyer, &book_body(cancelled, 1), &WAIT).await, 201).await;
    json_with_status(
        app.post_as("/api/events/delete", &host, &json!({ "id": cancelled }))
            .await,
        200,
    )
    .await;
    let theirs = booked["data"]["statusUrl"].as_str().unwrap().to_owned();
    // While an admin, the token works everywhere.
    json_with_status(app.get_as(&theirs, &admin).await, 200).await;
    json_with_status(
        app.get_as(&format!("/api/events/{cancelled}"), &admin)
            .await,
        200,
    )
    .await;

    set_role(&app, id_of(&app, &admin).await, "guest").await;
    // The same (unexpired) token: no admin power left anywhere.
    json_with_status(
        app.post_as(
            "/api/events/update",
            &admin,
            &json!({ "id": event, "price": 99_999 }),
        )
        .await,
        403,
    )
    .await;
    json_with_status(
        app.post_as("/api/events/delete", &admin, &json!({ "id": event }))
            .await,
        403,
    )
    .await;
    json_with_status(app.get_as(&theirs, &admin).await, 404).await;
    json_with_status(
        app.get_as(&format!("/api/events/{cancelled}"), &admin)
            .await,
        404,
    )
    .await;
    json_with_status(
        app.get_as(&format!("/api/events/{event}/stats"), &admin)
            .await,
        403,
    )
    .await;
    json_with_status(app.get_as("/api/admin/events", &admin).await, 403).await;
    // Nothing changed.
    let price: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT price FROM events WHERE id = $1", &[&event])
        .await
        .unwrap()
        .get(0);
    assert_eq!(price, 1200);
}

#[tokio::test]
async fn a_host_demoted_to_guest_no_longer_manages_their_events() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Mine", 5, 10)).await;
    json_with_status(
        app.get_as(&format!("/api/events/{event}/stats"), &host)
            .await,
        200,
    )
    .await;
    set_role(&app, id_of(&app, &host).await, "guest").await;
    json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": event, "name": "Taken" }),
        )
        .await,
        403,
    )
    .await;
    json_with_status(
        app.post_as("/api/events/delete", &host, &json!({ "id": event }))
            .await,
        403,
    )
    .await;
    json_with_status(
        app.get_as(&format!("/api/events/{event}/stats"), &host)
            .await,
        403,
    )
    .await;
    // An admin still manages it.
    let admin = app.user_unlimited(Role::Admin).await;
    json_with_status(
        app.post_as(
            "/api/events/update",
            &admin,
            &json!({ "id": event, "name": "Kept" }),
        )
        .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = TestApp::spawn().await;
    for _ in 0..10 {
        let a = app.user_unlimited(Role::Admin).await;
        let b = app.user_unlimited(Role::Admin).await;
        let (ia, ib) = (id_of(&app, &a).await, id_of(&app, &b).await);
        // Exactly these two are admins.
        app.db
            .client()
            .await
            .execute(
                "UPDATE users SET role = 'guest' WHERE role = 'admin' AND id <> ALL($1)",
                &[&vec![ia, ib]],
            )
            .await
            .unwrap();
        let demote = |token: &str, target: i64| {
            app.client
                .patch(app.url(&format!("/api/admin/users/{target}")))
                .bearer_auth(token)
                .json(&json!({ "role": "guest" }))
                .send()
        };
        let (ra, rb) = tokio::join!(demote(&a, ib), demote(&b, ia));
        let statuses = [ra.unwrap().status().as_u16(), rb.unwrap().status().as_u16()];
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "exactly one demotion wins: {statuses:?}"
        );
        let admins: i64 = app
            .db
            .client()
            .await
            .query_one("SELECT count(*) FROM users WHERE role = 'admin'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(admins, 1);
    }
}

/// The host pages' scope follows the stored role too: an admin demoted to host lists only
/// their own events on `/host`, and one demoted to guest gets a 403 page, with the same token.
#[tokio::test]
async fn the_host_page_lists_by_the_stored_role() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let admin = app.user_unlimited(Role::Admin).await;
    app.create_event(&host, &event_body("Someone else's gala", 5, 10))
        .await;
    app.create_event(&admin, &event_body("The admin's own fair", 5, 10))
        .await;
    let page = |token: String| {
        app.client
            .get(app.url("/host"))
            .header("cookie", format!("accessToken={token}"))
            .send()
    };
    let before = page(admin.clone()).await.unwrap().text().await.unwrap();
    assert!(before.contains("Someone else"), "an admin sees every event");

    let admin_id = id_of(&app, &admin).await;
    set_role(&app, admin_id, "host").await;
    let resp = page(admin.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let after = resp.text().await.unwrap();
    assert!(after.contains("The admin"), "their own events stay listed");
    assert!(
        !after.contains("Someone else"),
        "a demoted admin no longer lists other hosts' events"
    );
    set_role(&app, admin_id, "guest").await;
    assert_eq!(page(admin).await.unwrap().status(), 403);
}

//! The pages in a real browser (headless Chromium through WebDriver, #15): a buyer finds an
//! event, logs in, books, sees the ticket and cancels it; the same core flow with JavaScript
//! off; axe-core on every page (no serious or critical violation); screenshots at desktop and
//! 390 px width in `target/screenshots/`.

use atomicseats::users::domain::Role;
use chrono::{Duration, Utc};
use serde_json::json;

use crate::helpers::events::event_body;
use crate::helpers::webdriver::Browser;
use crate::helpers::{PASSWORD, TestApp};

/// An event with a second ticket type, and one whose sale opens tomorrow.
async fn catalogue(app: &TestApp) -> (i64, i64) {
    let host = app.user_unlimited(Role::Host).await;
    let concert = app
        .create_event(&host, &event_body("Harbour Lights Concert", 3, 120))
        .await;
    let resp = app
        .client
        .post(app.url(&format!("/api/events/{concert}/ticket-types")))
        .bearer_auth(&host)
        .json(&json!({ "name": "Front row", "price": 6500, "quota": 10, "maxPerUser": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let mut later = event_body("Winter Gala", 20, 300);
    later["onSaleAt"] = json!((Utc::now() + Duration::days(1)).to_rfc3339());
    let gala = app.create_event(&host, &later).await;
    (concert, gala)
}

#[tokio::test]
async fn a_buyer_finds_an_event_books_sees_the_ticket_and_cancels_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let (concert, gala) = catalogue(&app).await;
    app.user_named("ada", Role::Guest).await;
    let b = Browser::start("buyer").await;

    b.goto(&app.url("/")).await;
    b.wait_for_text("Harbour Lights Concert").await;
    b.assert_accessible("events").await;
    b.screenshots("01-events").await;

    // The sale that opens tomorrow counts down (the vendored script runs under the CSP).
    b.goto(&app.url(&format!("/events/{gala}"))).await;
    b.wait_for_text("Not on sale yet").await;
    b.wait_for_text("h ").await;
    assert!(b.source().await.contains("class=\"countdown\""));

    b.goto(&app.url("/")).await;
    b.click(&format!("a[href='/events/{concert}']")).await;
    b.wait_for_text("Front row").await;
    b.assert_accessible("event").await;
    b.screenshots("02-event").await;
    // Availability follows the sale while the page is open (the page polls the API).
    let other = app.user_unlimited(Role::Guest).await;
    let resp = app
        .book(
            &other,
            &json!({ "eventId": concert, "numberOfSeats": 5 }),
            &[("prefer", "wait=20")],
        )
        .await;
    assert_eq!(resp.status(), 201);
    b.wait_for_text("115 of 120 seats left").await;

    b.click(&format!("a[href='/login?next=/events/{concert}']"))
        .await;
    b.wait_for_text("Email or username").await;
    b.log_in("ada", "wrong password").await;
    b.wait_for_text("do not match an account").await;
    b.assert_accessible("login-error").await;
    b.screenshots("03-login-error").await;
    b.fill("#password", PASSWORD).await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("Log out").await;
    assert!(b.url().await.ends_with(&format!("/events/{concert}")));

    b.fill("#seats", "2").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("Confirmed: your seats are booked.").await;
    b.assert_accessible("booked").await;
    b.screenshots("04-booked").await;

    b.click("a[href='/me']").await;
    b.wait_for_text("Harbour Lights Concert").await;
    b.assert_accessible("mine").await;
    b.screenshots("05-my-bookings").await;
    b.click("table form button[type=submit]").await;
    b.wait_for_text("The booking was cancelled.").await;
    b.screenshots("06-cancelled").await;
    let status: String = app
        .db
        .client()
        .await
        .query_one(
            "SELECT b.status FROM bookings b JOIN users u ON u.id = b.user_id \
              WHERE b.event_id = $1 AND u.username = 'ada'",
            &[&concert],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "cancelled");

    b.click("header form button[type=submit]").await;
    b.wait_for_text("Log in").await;
    b.close().await;
}

#[tokio::test]
async fn browsing_logging_in_and_booking_work_with_javascript_off() {
    let app = TestApp::spawn().await;
    let (concert, _) = catalogue(&app).await;
    app.user_named("lin", Role::Guest).await;
    let b = Browser::start_with("no-javascript", false).await;

    b.goto(&app.url("/?q=harbour")).await;
    b.wait_for_text("Harbour Lights Concert").await;
    b.click(&format!("a[href='/events/{concert}']")).await;
    b.click(&format!("a[href='/login?next=/events/{concert}']"))
        .await;
    b.log_in("lin", PASSWORD).await;
    b.wait_for_text("Log out").await;
    b.fill("#seats", "1").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("Confirmed: your seats are booked.").await;
    b.screenshots("booked").await;
    let seats: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT COALESCE(SUM(seats), 0) FROM bookings WHERE event_id = $1 AND status = 'confirmed'",
            &[&concert],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seats, 1);
    b.close().await;
}

#[tokio::test]
async fn a_new_buyer_registers_holds_seats_pays_and_the_host_marks_them_paid() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let mut body = event_body("Summer Theatre", 6, 40);
    body["checkout"] = json!("hold");
    body["holdSeconds"] = json!(900);
    let event = app.create_event(&host, &body).await;
    let b = Browser::start("hold").await;

    // Registration: the API's checks, each named next to its field.
    b.goto(&app.url("/register")).await;
    b.fill("#username", "bo").await;
    b.fill("#name", "Bo Berg").await;
    b.fill("#email", "bo@example.com").await;
    b.fill("#password", "short").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("Please correct the following").await;
    let page = b.source().await;
    assert!(page.contains("id=\"username-error\"") && page.contains("id=\"password-error\""));
    assert!(page.contains("aria-invalid=\"true\""));
    b.assert_accessible("register-errors").await;
    b.screenshots("01-register-errors").await;
    b.fill("#username", "bo.berg").await;
    b.fill("#password", "a much longer passphrase 42").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("Check your email").await;

    b.goto(&app.url(&format!("/login?next=/events/{event}")))
        .await;
    b.log_in("bo.berg", "a much longer passphrase 42").await;
    b.wait_for_text("held for 15 minutes").await;
    b.fill("#seats", "2").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("Held: your seats are reserved").await;
    b.assert_accessible("held").await;
    b.screenshots("02-held").await;

    b.click("form[action$='/pay'] button").await;
    b.wait_for_text("How to pay").await;
    b.wait_for_text("24.00 EUR").await;
    b.assert_accessible("pay").await;
    b.screenshots("03-pay").await;

    // The host records the transfer (the host's pages come later; the API meanwhile).
    let booking: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT id FROM bookings WHERE event_id = $1", &[&event])
        .await
        .unwrap()
        .get(0);
    let resp = app
        .client
        .post(app.url(&format!("/api/bookings/{booking}/mark-paid")))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    b.goto(&app.url("/me")).await;
    b.wait_for_text("Confirmed").await;
    b.screenshots("04-paid").await;
    b.close().await;
}

#[tokio::test]
async fn a_host_creates_an_event_with_two_ticket_types_and_watches_the_sale() {
    let app = TestApp::spawn().await;
    app.user_named("hosta", Role::Host).await;
    let b = Browser::start("host").await;
    b.goto(&app.url("/login?next=/host")).await;
    b.log_in("hosta", PASSWORD).await;
    b.wait_for_text("You have no events yet.").await;
    b.assert_accessible("host-events").await;

    b.click("a[href='/host/events/new']").await;
    b.wait_for_text("Create event").await;
    b.fill("#name", "Dockside Festival").await;
    b.fill("#capacity", "none").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("Please correct the following").await;
    b.assert_accessible("new-event-errors").await;
    b.screenshots("01-new-event-errors").await;
    let start = Utc::now() + Duration::days(12);
    // A date-time picker's segments depend on the locale: set its value as the picker would.
    let local = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M").to_string();
    b.fill("#description", "Three stages by the water").await;
    b.fill("#venue", "Old Docks").await;
    for (id, at) in [("startsAt", start), ("endsAt", start + Duration::hours(8))] {
        b.run(
            "document.getElementById(arguments[0]).value = arguments[1];",
            json!([id, local(at)]),
        )
        .await;
    }
    b.fill("#capacity", "200").await;
    b.fill("#price", "35").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("Seats sold over time").await;
    let url = b.url().await;
    let event: i64 = url.rsplit('/').next().unwrap().parse().unwrap();

    b.fill("#tt-name", "VIP").await;
    b.fill("#tt-price", "90").await;
    b.fill("#tt-quota", "20").await;
    b.click("form[action$='/ticket-types'] button").await;
    b.wait_for_text("The ticket type was added.").await;

    // The sale: buyers book both types through the API; the dashboard shows it.
    let types: Vec<i64> = app
        .db
        .client()
        .await
        .query(
            "SELECT id FROM ticket_types WHERE event_id = $1 ORDER BY id",
            &[&event],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(types.len(), 2, "the default type and VIP");
    for (i, t) in [types[0], types[1], types[0], types[0]].iter().enumerate() {
        let buyer = app.user_unlimited(Role::Guest).await;
        let resp = app
            .book(
                &buyer,
                &json!({ "eventId": event, "numberOfSeats": i + 1, "ticketTypeId": t }),
                &[("prefer", "wait=20")],
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    b.goto(&url).await;
    b.wait_for_text("10 of 200").await;
    let page = b.source().await;
    assert!(page.contains("<svg class=\"chart\""), "the sales chart");
    assert!(page.contains("VIP"));
    b.assert_accessible("dashboard").await;
    b.screenshots("02-dashboard").await;

    // Changes the VIP type: a quota below the seats sold is refused on the form, then a new
    // price and quota are saved.
    b.click(&format!(
        "a[href='/host/events/{event}/ticket-types/{}']",
        types[1]
    ))
    .await;
    b.wait_for_text("Change the ticket type: VIP").await;
    b.fill("#quota", "1").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("is below the 2 seats of this type sold")
        .await;
    b.assert_accessible("type-refused").await;
    b.screenshots("03-type-refused").await;
    b.fill("#price", "95.50").await;
    b.fill("#quota", "30").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("The ticket type was changed.").await;
    assert!(b.source().await.contains("95.50"));

    b.click(&format!("a[href='/host/events/{event}/cancel']"))
        .await;
    b.wait_for_text("Cancelling this event will").await;
    b.assert_accessible("cancel-confirm").await;
    b.screenshots("04-cancel-confirm").await;
    b.close().await;
}

#[tokio::test]
async fn an_admin_changes_a_role_and_retries_a_failed_notification() {
    let app = TestApp::spawn().await;
    app.user_named("root", Role::Admin).await;
    let ada = app.user_named("ada", Role::Guest).await;
    let db = app.db.client().await;
    let failed: i64 = db
        .query_one(
            "INSERT INTO outbox (kind, user_id, payload, status, attempts, last_error) \
             VALUES ('verify_email', $1, '{}', 'failed', 5, 'smtp: 550 mailbox unavailable') RETURNING id",
            &[&ada],
        )
        .await
        .unwrap()
        .get(0);
    let host = app.user_unlimited(Role::Host).await;
    for (name, seats) in [("Opera Night", 6), ("Jazz Brunch", 3), ("Folk Evening", 1)] {
        let event = app.create_event(&host, &event_body(name, 5, 40)).await;
        let buyer = app.user_unlimited(Role::Guest).await;
        let resp = app
            .book(
                &buyer,
                &json!({ "eventId": event, "numberOfSeats": seats }),
                &[("prefer", "wait=20")],
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    let b = Browser::start("admin").await;
    b.goto(&app.url("/login?next=/admin")).await;
    b.log_in("root", PASSWORD).await;
    b.wait_for_text("Most popular events").await;
    assert!(
        b.source().await.contains(">Opera Night<"),
        "the chart names the events"
    );
    b.assert_accessible("analytics").await;
    b.screenshots("01-analytics").await;

    b.click("a[href='/admin/users']").await;
    b.wait_for_text("Users and roles").await;
    b.assert_accessible("users").await;
    b.screenshots("02-users").await;
    b.run(
        "document.getElementById(arguments[0]).value = 'host';",
        json!([format!("role-{ada}")]),
    )
    .await;
    b.click(&format!("form[action='/admin/users/{ada}/role'] button"))
        .await;
    b.wait_for_text("The role was changed.").await;
    let role: String = db
        .query_one("SELECT role FROM users WHERE id = $1", &[&ada])
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "host");
    assert!(
        !b.source().await.contains("@example.com"),
        "no email addresses on the admin's pages"
    );

    b.click("a[href='/admin/notifications']").await;
    b.wait_for_text("smtp: 550 mailbox unavailable").await;
    b.assert_accessible("notifications").await;
    b.screenshots("03-failed-notifications").await;
    b.click(&format!(
        "form[action='/admin/notifications/{failed}/retry'] button"
    ))
    .await;
    b.wait_for_text("The notification is queued again.").await;
    let status: String = db
        .query_one("SELECT status FROM outbox WHERE id = $1", &[&failed])
        .await
        .unwrap()
        .get(0);
    assert_ne!(status, "failed");
    b.close().await;
}

#[tokio::test]
async fn a_buyer_books_through_the_waiting_room_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let mut body = event_body("Stadium Tour", 30, 100);
    body["waitingRoom"] = json!(true);
    let event = app.create_event(&host, &body).await;
    crate::helpers::rooms::start_pacer(&app);
    app.user_named("rita", Role::Guest).await;
    let b = Browser::start("waiting-room").await;
    b.goto(&app.url(&format!("/login?next=/events/{event}")))
        .await;
    b.log_in("rita", PASSWORD).await;
    b.wait_for_text("sold through a waiting room").await;
    b.assert_accessible("event-with-room").await;
    b.click(&format!("form[action='/events/{event}/queue'] button"))
        .await;
    // The room page follows the place over SSE and shows the form when it is her turn.
    b.wait_for_text("It is your turn: book now.").await;
    b.assert_accessible("room-admitted").await;
    b.screenshots("01-admitted").await;
    b.fill("#seats", "2").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("Confirmed: your seats are booked.").await;
    let seats: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT COALESCE(SUM(seats), 0) FROM bookings WHERE event_id = $1 AND status = 'confirmed'",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seats, 2);
    b.close().await;
}

/// The whole buyer's journey in one browser: find the event, log in, queue in its waiting
/// room, hold seats, pay them on the payment provider's page (a local server that follows
/// Stripe Checkout), see the ticket confirmed, cancel it and get the money back.
#[tokio::test]
async fn a_buyer_queues_holds_pays_at_the_provider_sees_the_ticket_and_cancels_for_a_refund() {
    let stripe = crate::helpers::stripe::LocalStripe::start().await;
    let port = crate::helpers::free_port().to_string();
    let public = format!("http://127.0.0.1:{port}");
    let app = crate::helpers::checkout::with_stripe(TestApp::builder(), &stripe)
        .env("ATOMICSEATS__HTTP__PORT", &port)
        .env("ATOMICSEATS__HTTP__PUBLIC_URL", &public)
        .spawn()
        .await;
    assert_eq!(app.url(""), public);
    stripe.send_webhooks_to(&public);
    let host = app.user_unlimited(Role::Host).await;
    let mut body = event_body("Festival of Lanterns", 30, 200);
    body["waitingRoom"] = json!(true);
    body["checkout"] = json!("hold");
    body["holdSeconds"] = json!(900);
    body["paymentProvider"] = json!("stripe");
    body["refundUntilHours"] = json!(24);
    let event = app.create_event(&host, &body).await;
    crate::helpers::rooms::start_pacer(&app);
    app.user_named("noor", Role::Guest).await;
    let b = Browser::start("journey").await;

    // Finds it by searching the list, logs in from its page.
    b.goto(&app.url("/?q=lanterns")).await;
    b.click(&format!("a[href='/events/{event}']")).await;
    b.wait_for_text("sold through a waiting room").await;
    b.click(&format!("a[href='/login?next=/events/{event}']"))
        .await;
    b.log_in("noor", PASSWORD).await;
    b.wait_for_text("Log out").await;

    // Queues, is admitted, holds two seats.
    b.click(&format!("form[action='/events/{event}/queue'] button"))
        .await;
    b.wait_for_text("It is your turn: book now.").await;
    b.screenshots("01-admitted").await;
    b.fill("#seats", "2").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("Held: your seats are reserved").await;
    b.assert_accessible("held").await;
    b.screenshots("02-held").await;

    // Pays on the provider's page and comes back to "my bookings", confirmed.
    b.click("form[action$='/pay'] button").await;
    b.wait_for_text("Continue to Stripe to pay").await;
    b.assert_accessible("pay-at-provider").await;
    b.screenshots("03-pay").await;
    b.click("#continue-to-pay").await;
    b.wait_for_text("Local Stripe Checkout").await;
    assert!(b.url().await.starts_with(&stripe.base), "{}", b.url().await);
    b.screenshots("04-provider").await;
    b.click("#pay").await;
    b.wait_for_text("My bookings").await;
    assert!(
        b.url().await.ends_with("/me?done=paid"),
        "{}",
        b.url().await
    );
    let mut confirmed = false;
    for _ in 0..50 {
        b.goto(&app.url("/me")).await;
        if b.source().await.contains(">Confirmed<") {
            confirmed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(confirmed, "paid hold confirmed: {}", b.source().await);
    b.assert_accessible("paid").await;
    b.screenshots("05-ticket").await;

    // Cancels the ticket (inside the refund window): the money goes back through the provider.
    b.click("form[action$='/cancel'] button").await;
    b.wait_for_text("The booking was cancelled.").await;
    b.screenshots("06-cancelled").await;
    let db = app.db.client().await;
    let status: String = db
        .query_one("SELECT status FROM bookings WHERE event_id = $1", &[&event])
        .await
        .unwrap()
        .get(0);
    assert!(
        matches!(status.as_str(), "refund_pending" | "refunded"),
        "{status}"
    );
    let mut refunded = Vec::new();
    for _ in 0..100 {
        refunded = stripe.refunds();
        if !refunded.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(refunded.len(), 1, "one refund at the provider");
    assert_eq!(refunded[0]["amount"], json!(2 * 1200), "{refunded:?}");
    b.close().await;
}

/// The server writes times in UTC; with JavaScript on they read in the viewer's own time zone
/// (the UTC time kept as the title).
#[tokio::test]
async fn times_read_in_the_viewers_time_zone() {
    let app = TestApp::spawn().await;
    let (concert, _) = catalogue(&app).await;
    let b = Browser::start("time-zone").await;
    b.time_zone("Asia/Tokyo").await;
    b.goto(&app.url(&format!("/events/{concert}"))).await;
    b.wait_for_text("GMT+9").await;
    let shown = b
        .run(
            "var t = document.querySelector('time[datetime]'); \
             return [t.getAttribute('datetime'), t.textContent, t.title];",
            json!([]),
        )
        .await;
    let at: chrono::DateTime<Utc> = shown[0].as_str().unwrap().parse().unwrap();
    let tokyo = at + Duration::hours(9);
    let text = shown[1].as_str().unwrap();
    // In the browser's own clock format: 24-hour ("13:08") or 12-hour ("01:08 PM", en-US).
    let (h24, h12) = (
        tokyo.format("%H:%M").to_string(),
        tokyo.format("%I:%M %p").to_string(),
    );
    assert!(
        (text.contains(&h24) || text.contains(&h12)) && text.contains("GMT+9"),
        "{text} for {at}"
    );
    assert!(
        shown[2]
            .as_str()
            .unwrap()
            .contains(&at.format("%H:%M UTC").to_string()),
        "{shown}"
    );
    b.assert_accessible("event-in-tokyo").await;
    b.close().await;
}

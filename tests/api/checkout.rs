//! Checkout (#13): ticket types with quotas and caps, holds that expire through the event's
//! writer, payments (manual, and Stripe against a local server that follows Stripe's API
//! reference), late payments, refunds with retries, the money ledger. Invariants are checked
//! in PostgreSQL afterwards.

use std::time::Duration;

use atomicseats::users::domain::Role;
use serde_json::{Value, json};

use crate::helpers::bookings::{Transport, app_on, both_transports, kafka_builder};
use crate::helpers::checkout::{
    add_type, assert_books_balance, book_decided, booking_status, fields_of, hold_event, ledger,
    post, until_booking, with_stripe,
};
use crate::helpers::events::event_body;
use crate::helpers::stripe::{LocalStripe, WEBHOOK_SECRET};
use crate::helpers::{TestApp, TestAppBuilder, json_with_status};

both_transports!(
    type_quotas_and_caps_hold_under_concurrency,
    a_paid_hold_is_confirmed_and_an_unpaid_one_expires_to_the_waitlist,
    a_late_payment_takes_free_seats_back_or_is_refunded,
    cancelling_an_event_refunds_what_was_paid_and_ends_the_holds,
);

#[tokio::test]
async fn hosts_manage_ticket_types_and_bad_input_names_the_field() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let guest = app.user_unlimited(Role::Guest).await;
    let other_host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Types", 5, 100)).await;
    let path = format!("/api/events/{event}/ticket-types");

    // Every event has its default type at the event's price.
    let list = json_with_status(app.client.get(app.url(&path)).send().await.unwrap(), 200).await;
    let types = list["data"]["ticketTypes"].as_array().unwrap().clone();
    assert_eq!(types.len(), 1);
    assert_eq!(types[0]["isDefault"], true);
    assert_eq!(types[0]["price"], 1200);

    let vip = add_type(
        &app,
        &host,
        event,
        json!({ "name": "VIP", "price": 5000, "quota": 10, "maxPerUser": 2 }),
    )
    .await;
    // Validation names each field; other people are refused.
    let bad = json_with_status(
        post(
            &app,
            &path,
            &host,
            Some(json!({ "name": "", "price": -1, "quota": 0 })),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(fields_of(&bad), ["quota", "name", "price"], "{bad}");
    let wrong_type = post(
        &app,
        &path,
        &host,
        Some(json!({ "name": "X", "price": "free" })),
    )
    .await;
    assert_eq!(wrong_type.status(), 400);
    for stranger in [&guest, &other_host] {
        let body = Some(json!({ "name": "X", "price": 1 }));
        json_with_status(post(&app, &path, stranger, body).await, 403).await;
    }

    // The event's price is the default type's.
    let default_id = types[0]["id"].as_i64().unwrap();
    let patch = |id: i64, body: Value| {
        app.client
            .patch(app.url(&format!("{path}/{id}")))
            .bearer_auth(&host)
            .json(&body)
            .send()
    };
    json_with_status(
        patch(default_id, json!({ "price": 900 })).await.unwrap(),
        200,
    )
    .await;
    let ev = json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{event}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(ev["data"]["price"], 900);
    let hide_default = json_with_status(
        patch(default_id, json!({ "hidden": true })).await.unwrap(),
        409,
    )
    .await;
    assert_eq!(hide_default["code"], "default_ticket_type");

    // Sold seats: the quota cannot go below them, the type cannot be deleted, only hidden.
    let buyer = app.user_unlimited(Role::Guest).await;
    let mut body = crate::helpers::bookings::book_body(event, 2);
    body["ticketTypeId"] = json!(vip);
    let got = book_decided(&app, &buyer, &body).await;
    assert_eq!(got["status"], "confirmed");
    assert_eq!(got["cost"], 10_000);
    assert_eq!(got["ticketTypeId"], vip);
    let below = json_with_status(patch(vip, json!({ "quota": 1 })).await.unwrap(), 409).await;
    assert_eq!(below["code"], "quota_below_sold");
    let del = app
        .client
        .delete(app.url(&format!("{path}/{vip}")))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(del, 409).await["code"],
        "ticket_type_has_sales"
    );
    // The database keeps the rule too.
    let direct = app
        .db
        .client()
        .await
        .execute("DELETE FROM ticket_types WHERE id = $1", &[&vip])
        .await;
    assert!(direct.is_err(), "a type with requests cannot be deleted");
    json_with_status(patch(vip, json!({ "hidden": true })).await.unwrap(), 200).await;
    let public = json_with_status(app.client.get(app.url(&path)).send().await.unwrap(), 200).await;
    assert_eq!(
        public["data"]["ticketTypes"].as_array().unwrap().len(),
        1,
        "hidden from buyers"
    );
    let managed = json_with_status(app.get_as(&path, &host).await, 200).await;
    assert_eq!(
        managed["data"]["ticketTypes"].as_array().unwrap().len(),
        2,
        "shown to its host"
    );
    // A hidden type is not sold; an unknown one neither.
    let other = app.user_unlimited(Role::Guest).await;
    assert_eq!(
        book_decided(&app, &other, &body).await["reason"],
        "ticket_type_unavailable"
    );
    body["ticketTypeId"] = json!(999_999);
    assert_eq!(
        book_decided(&app, &other, &body).await["reason"],
        "ticket_type_unavailable"
    );
    body["ticketTypeId"] = json!(0);
    json_with_status(app.book(&other, &body, &[]).await, 400).await;
    // A type nobody bought can be deleted.
    let spare = add_type(&app, &host, event, json!({ "name": "Spare", "price": 1 })).await;
    let del = app
        .client
        .delete(app.url(&format!("{path}/{spare}")))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    json_with_status(del, 200).await;
    assert_books_balance(&app).await;
}

async fn type_quotas_and_caps_hold_under_concurrency(transport: Transport) {
    let app = app_on(transport).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Quota", 5, 30)).await;
    let vip = add_type(
        &app,
        &host,
        event,
        json!({ "name": "VIP", "price": 5000, "quota": 7, "maxPerUser": 2 }),
    )
    .await;
    let buyers = app.many_users(40).await;
    // Each buyer asks for 2 VIP seats twice (the cap allows 2) and 1 general seat.
    let asks = buyers.iter().flat_map(|(_, token)| {
        let mut vip_body = crate::helpers::bookings::book_body(event, 2);
        vip_body["ticketTypeId"] = json!(vip);
        vip_body["joinWaitlist"] = json!(false);
        let mut ga = crate::helpers::bookings::book_body(event, 1);
        ga["joinWaitlist"] = json!(false);
        [
            (token.clone(), vip_body.clone()),
            (token.clone(), vip_body),
            (token.clone(), ga),
        ]
    });
    let outcomes: Vec<Value> = futures_util::future::join_all(asks.map(|(token, body)| {
        let app = &app;
        async move { book_decided(app, &token, &body).await }
    }))
    .await;
    let vip_seats: i64 = outcomes
        .iter()
        .filter(|o| o["ticketTypeId"] == json!(vip))
        .map(|o| o["seats"].as_i64().unwrap_or(0))
        .sum();
    assert!(vip_seats <= 7, "VIP sold {vip_seats} over its quota of 7");
    assert_eq!(vip_seats, 6, "2-seat asks fill 6 of the 7 VIP seats");
    let c = app.db.client().await;
    let over_cap: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT user_id FROM bookings WHERE ticket_type_id = $1 \
             AND status = 'confirmed' GROUP BY user_id HAVING SUM(seats) > 2) s",
            &[&vip],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(over_cap, 0, "nobody holds more than 2 VIP seats");
    let reasons: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"per_user_limit") || reasons.contains(&"sold_out"));
    let total: i64 = c
        .query_one(
            "SELECT reserved_seats::int8 FROM events WHERE id = $1",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 30, "the event sells out, never over");
    assert_books_balance(&app).await;
}

async fn a_paid_hold_is_confirmed_and_an_unpaid_one_expires_to_the_waitlist(transport: Transport) {
    let app = app_on(transport).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = hold_event(&app, &host, 4, json!({ "holdSeconds": 2 })).await;
    let (payer, idler, waiter) = (
        app.user_unlimited(Role::Guest).await,
        app.user_unlimited(Role::Guest).await,
        app.user_unlimited(Role::Guest).await,
    );

    let paid = book_decided(&app, &payer, &crate::helpers::bookings::book_body(event, 2)).await;
    assert_eq!(paid["status"], "held", "{paid}");
    assert!(paid["expiresAt"].is_string());
    let idle = book_decided(&app, &idler, &crate::helpers::bookings::book_body(event, 2)).await;
    assert_eq!(idle["status"], "held");
    let waiting = book_decided(
        &app,
        &waiter,
        &crate::helpers::bookings::book_body(event, 2),
    )
    .await;
    assert_eq!(
        waiting["status"], "waitlisted",
        "held seats count as reserved"
    );
    let paid_id = paid["bookingId"].as_i64().unwrap();
    let idle_id = idle["bookingId"].as_i64().unwrap();

    // Manual provider: the buyer is told how, the host records the payment.
    let how = json_with_status(
        post(&app, &format!("/api/bookings/{paid_id}/pay"), &payer, None).await,
        200,
    )
    .await;
    assert_eq!(how["data"]["provider"], "manual");
    json_with_status(
        post(
            &app,
            &format!("/api/bookings/{paid_id}/mark-paid"),
            &waiter,
            None,
        )
        .await,
        403,
    )
    .await;
    let marked = json_with_status(
        post(
            &app,
            &format!("/api/bookings/{paid_id}/mark-paid"),
            &host,
            Some(json!({ "reference": "bank 42" })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(marked["data"]["status"], "confirmed");
    let again = json_with_status(
        post(
            &app,
            &format!("/api/bookings/{paid_id}/mark-paid"),
            &host,
            None,
        )
        .await,
        409,
    )
    .await;
    assert_eq!(again["code"], "already_confirmed");
    assert_eq!(ledger(&app, paid_id).await, [("capture".to_owned(), 2400)]);
    let status_url = format!(
        "/api/bookings/requests/{}",
        paid["requestId"].as_str().unwrap()
    );
    assert_eq!(
        json_with_status(app.get_as(&status_url, &payer).await, 200).await["data"]["status"],
        "confirmed"
    );

    // The unpaid hold expires within a few seconds of expiresAt, through the writer, and its
    // seats go to the waitlist (as a hold of its own).
    let expires: chrono::DateTime<chrono::Utc> =
        idle["expiresAt"].as_str().unwrap().parse().unwrap();
    until_booking(&app, idle_id, "expired", Duration::from_secs(10)).await;
    let late_by = chrono::Utc::now() - expires;
    assert!(
        late_by < chrono::Duration::seconds(3),
        "expired {late_by} after expiresAt"
    );
    let idle_url = format!(
        "/api/bookings/requests/{}",
        idle["requestId"].as_str().unwrap()
    );
    assert_eq!(
        json_with_status(app.get_as(&idle_url, &idler).await, 200).await["data"]["status"],
        "expired"
    );
    let waiter_url = format!(
        "/api/bookings/requests/{}",
        waiting["requestId"].as_str().unwrap()
    );
    let served = json_with_status(app.get_as(&waiter_url, &waiter).await, 200).await;
    assert_eq!(served["data"]["status"], "held", "{served}");
    let kinds: Vec<String> = app
        .db
        .client()
        .await
        .query("SELECT kind FROM outbox_all", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for kind in ["booking_held", "booking_paid", "hold_expired"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} email in {kinds:?}"
        );
    }

    // The buyer can give a hold back early; it expires at once.
    let served_id = served["data"]["bookingId"].as_i64().unwrap();
    let released = json_with_status(
        post(
            &app,
            &format!("/api/bookings/{served_id}/release"),
            &waiter,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(released["data"]["status"], "expired");
    json_with_status(
        post(
            &app,
            &format!("/api/bookings/{served_id}/release"),
            &waiter,
            None,
        )
        .await,
        409,
    )
    .await;
    json_with_status(
        post(
            &app,
            &format!("/api/bookings/{paid_id}/release"),
            &waiter,
            None,
        )
        .await,
        404,
    )
    .await;
    assert_books_balance(&app).await;
}

async fn a_late_payment_takes_free_seats_back_or_is_refunded(transport: Transport) {
    let app = app_on(transport).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = hold_event(
        &app,
        &host,
        2,
        json!({ "holdSeconds": 1, "waitlistOpen": false }),
    )
    .await;
    let (a, b) = (
        app.user_unlimited(Role::Guest).await,
        app.user_unlimited(Role::Guest).await,
    );
    // Seats still free when the money arrives: they are taken back.
    let first = book_decided(&app, &a, &crate::helpers::bookings::book_body(event, 2)).await;
    let first_id = first["bookingId"].as_i64().unwrap();
    until_booking(&app, first_id, "expired", Duration::from_secs(10)).await;
    let late = json_with_status(
        post(
            &app,
            &format!("/api/bookings/{first_id}/mark-paid"),
            &host,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(late["data"]["status"], "confirmed", "{late}");

    // Cancelled by its buyer (refund policy: until the start), then someone else takes the
    // seats and lets the hold run out while the first payment of a third booking arrives late:
    let cancelled = json_with_status(
        app.cancel_booking(&a, &json!({ "eventId": event, "bookingId": first_id }))
            .await,
        200,
    )
    .await;
    assert_eq!(cancelled["data"]["refunds"], 1);
    until_booking(&app, first_id, "refunded", Duration::from_secs(10)).await;
    assert_eq!(
        ledger(&app, first_id).await,
        [("capture".to_owned(), 2400), ("refund".to_owned(), 2400)]
    );
    let second = book_decided(&app, &b, &crate::helpers::bookings::book_body(event, 2)).await;
    let second_id = second["bookingId"].as_i64().unwrap();
    until_booking(&app, second_id, "expired", Duration::from_secs(10)).await;
    let taker = app.user_unlimited(Role::Guest).await;
    let taken = book_decided(&app, &taker, &crate::helpers::bookings::book_body(event, 2)).await;
    assert_eq!(taken["status"], "held");
    // No seats for the late payer: the payment is refunded, never an oversell.
    let refused = json_with_status(
        post(
            &app,
            &format!("/api/bookings/{second_id}/mark-paid"),
            &host,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(refused["data"]["status"], "refund_pending", "{refused}");
    until_booking(&app, second_id, "refunded", Duration::from_secs(10)).await;
    assert_eq!(
        ledger(&app, second_id).await,
        [("capture".to_owned(), 2400), ("refund".to_owned(), 2400)]
    );
    assert_books_balance(&app).await;
}

/// Stripe: a Checkout Session per hold, the signed webhook confirms it once; bad signatures,
/// stale timestamps, unknown sessions and replays change nothing.
#[tokio::test]
async fn stripe_webhooks_confirm_once_and_bad_ones_change_nothing() {
    stripe_flow(TestApp::builder()).await;
}

#[tokio::test]
async fn stripe_webhooks_confirm_once_on_the_kafka_transport() {
    stripe_flow(kafka_builder()).await;
}

async fn stripe_flow(builder: TestAppBuilder) {
    let stripe = LocalStripe::start().await;
    let app = with_stripe(builder, &stripe).spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = hold_event(&app, &host, 10, json!({ "paymentProvider": "stripe" })).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let held = book_decided(&app, &buyer, &crate::helpers::bookings::book_body(event, 3)).await;
    let booking = held["bookingId"].as_i64().unwrap();

    let pay = json_with_status(
        post(&app, &format!("/api/bookings/{booking}/pay"), &buyer, None).await,
        200,
    )
    .await;
    assert_eq!(pay["data"]["provider"], "stripe");
    assert_eq!(pay["data"]["amount"], 3600);
    let session = pay["data"]["sessionId"].as_str().unwrap().to_owned();
    assert!(
        pay["data"]["url"]
            .as_str()
            .unwrap()
            .starts_with(&stripe.base)
    );
    // Asking again gives the same session, not a second charge.
    let again = json_with_status(
        post(&app, &format!("/api/bookings/{booking}/pay"), &buyer, None).await,
        200,
    )
    .await;
    assert_eq!(again["data"]["sessionId"], session.as_str());
    let stranger = app.user_unlimited(Role::Guest).await;
    json_with_status(
        post(
            &app,
            &format!("/api/bookings/{booking}/pay"),
            &stranger,
            None,
        )
        .await,
        404,
    )
    .await;

    let now = chrono::Utc::now().timestamp();
    let event_json = stripe.completed_event(&session, "evt_paid_1");
    // Refused: wrong secret, stale timestamp, no header. Nothing recorded.
    for (secret, t) in [("whsec_wrong", now), (WEBHOOK_SECRET, now - 3600)] {
        let resp = stripe.deliver(&app.address, &event_json, secret, t).await;
        assert_eq!(
            json_with_status(resp, 400).await["code"],
            "invalid_signature"
        );
    }
    let unsigned = app
        .client
        .post(app.url("/api/payments/stripe/webhook"))
        .json(&event_json)
        .send()
        .await
        .unwrap();
    json_with_status(unsigned, 400).await;
    assert!(ledger(&app, booking).await.is_empty());
    assert_eq!(booking_status(&app, booking).await, "held");

    // The real one confirms; its replay changes nothing.
    let ok = stripe
        .deliver(&app.address, &event_json, WEBHOOK_SECRET, now)
        .await;
    assert_eq!(ok.status(), 200);
    until_booking(&app, booking, "confirmed", Duration::from_secs(10)).await;
    let replay: Value = stripe
        .deliver(&app.address, &event_json, WEBHOOK_SECRET, now)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replay["duplicate"], true);
    assert_eq!(ledger(&app, booking).await, [("capture".to_owned(), 3600)]);
    // An unknown session: acknowledged, nothing changed.
    let mut unknown = event_json.clone();
    unknown["id"] = json!("evt_unknown");
    unknown["data"]["object"]["id"] = json!("cs_not_ours");
    let body: Value = stripe
        .deliver(&app.address, &unknown, WEBHOOK_SECRET, now)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["ignored"], "unknown_session");
    // Counted by outcome (the recorder is shared by the tests of this binary: presence only).
    let metrics = app.metrics().await;
    for label in [
        "bad_signature",
        "stale_signature",
        "malformed_signature",
        "captured",
        "duplicate",
        "unknown_session",
    ] {
        assert!(
            metrics.contains(&format!("payment_webhooks_total{{result=\"{label}\"}}")),
            "payment_webhooks_total{{result={label}}} missing"
        );
    }
    assert_books_balance(&app).await;
}

/// A refund Stripe fails twice is retried from the outbox and recorded once.
#[tokio::test]
async fn a_failing_refund_is_retried_and_recorded_once() {
    let stripe = LocalStripe::start().await;
    let app = with_stripe(TestApp::builder(), &stripe).spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = hold_event(
        &app,
        &host,
        10,
        json!({ "paymentProvider": "stripe", "refundUntilHours": null }),
    )
    .await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let held = book_decided(&app, &buyer, &crate::helpers::bookings::book_body(event, 1)).await;
    let booking = held["bookingId"].as_i64().unwrap();
    let pay = json_with_status(
        post(&app, &format!("/api/bookings/{booking}/pay"), &buyer, None).await,
        200,
    )
    .await;
    let session = pay["data"]["sessionId"].as_str().unwrap().to_owned();
    let paid = stripe.completed_event(&session, "evt_refund_1");
    stripe
        .deliver(
            &app.address,
            &paid,
            WEBHOOK_SECRET,
            chrono::Utc::now().timestamp(),
        )
        .await;
    until_booking(&app, booking, "confirmed", Duration::from_secs(10)).await;

    // This event refunds nobody who cancels; the host can always refund.
    let refused = json_with_status(
        app.cancel_booking(&buyer, &json!({ "eventId": event }))
            .await,
        409,
    )
    .await;
    assert_eq!(refused["code"], "refund_not_offered");
    json_with_status(
        post(
            &app,
            &format!("/api/bookings/{booking}/refund"),
            &buyer,
            None,
        )
        .await,
        403,
    )
    .await;
    stripe
        .failing_refunds
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let refunded = json_with_status(
        post(
            &app,
            &format!("/api/bookings/{booking}/refund"),
            &host,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(refunded["data"]["refunds"], 1);
    assert_eq!(booking_status(&app, booking).await, "refund_pending");
    until_booking(&app, booking, "refunded", Duration::from_secs(20)).await;
    assert_eq!(
        stripe
            .refund_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        3,
        "two failures, one success"
    );
    assert_eq!(stripe.refunds().len(), 1);
    assert_eq!(
        ledger(&app, booking).await,
        [("capture".to_owned(), 1200), ("refund".to_owned(), 1200)]
    );
    let status_url = format!(
        "/api/bookings/requests/{}",
        held["requestId"].as_str().unwrap()
    );
    assert_eq!(
        json_with_status(app.get_as(&status_url, &buyer).await, 200).await["data"]["status"],
        "refunded"
    );
    // The buyer's history and the host's stats know it.
    let history = json_with_status(
        app.get_as("/api/user/bookings?status=refunded", &buyer)
            .await,
        200,
    )
    .await;
    let items = history["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{history}");
    assert_eq!(items[0]["status"], "refunded");
    let stats = json_with_status(
        app.get_as(&format!("/api/events/{event}/stats"), &host)
            .await,
        200,
    )
    .await;
    let checkout = &stats["data"]["checkout"];
    assert_eq!(
        checkout["payments"],
        json!({ "captured": 1200, "refunded": 1200, "refunds": 1, "net": 0 })
    );
    assert_eq!(checkout["holds"]["paid"], 1);
    assert_eq!(checkout["holds"]["conversionPercent"], 100.0);
    assert_books_balance(&app).await;
}

async fn cancelling_an_event_refunds_what_was_paid_and_ends_the_holds(transport: Transport) {
    let app = app_on(transport).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = hold_event(&app, &host, 4, json!({})).await;
    let (payer, holder, waiter) = (
        app.user_unlimited(Role::Guest).await,
        app.user_unlimited(Role::Guest).await,
        app.user_unlimited(Role::Guest).await,
    );
    let paid = book_decided(&app, &payer, &crate::helpers::bookings::book_body(event, 2)).await;
    let held = book_decided(
        &app,
        &holder,
        &crate::helpers::bookings::book_body(event, 2),
    )
    .await;
    let waiting = book_decided(
        &app,
        &waiter,
        &crate::helpers::bookings::book_body(event, 1),
    )
    .await;
    assert_eq!(
        (&paid["status"], &held["status"], &waiting["status"]),
        (&json!("held"), &json!("held"), &json!("waitlisted"))
    );
    let (paid_id, held_id) = (
        paid["bookingId"].as_i64().unwrap(),
        held["bookingId"].as_i64().unwrap(),
    );
    json_with_status(
        post(
            &app,
            &format!("/api/bookings/{paid_id}/mark-paid"),
            &host,
            None,
        )
        .await,
        200,
    )
    .await;

    let cancelled = json_with_status(
        app.post_as("/api/events/delete", &host, &json!({ "id": event }))
            .await,
        200,
    )
    .await;

    assert_eq!(cancelled["data"]["bookingsCancelled"], 2, "{cancelled}");
    assert_eq!(cancelled["data"]["waitlistCleared"], 1, "{cancelled}");
    // The unpaid hold simply ends; the paid booking is refunded through the provider's job.
    assert_eq!(booking_status(&app, held_id).await, "cancelled");
    until_booking(&app, paid_id, "refunded", Duration::from_secs(20)).await;
    assert_eq!(
        ledger(&app, paid_id).await,
        [("capture".to_owned(), 2400), ("refund".to_owned(), 2400)]
    );
    assert!(ledger(&app, held_id).await.is_empty(), "nothing was paid");
    let status_url = format!(
        "/api/bookings/requests/{}",
        paid["requestId"].as_str().unwrap()
    );
    assert_eq!(
        json_with_status(app.get_as(&status_url, &payer).await, 200).await["data"]["status"],
        "refunded"
    );
    // Nothing is left to expire or apply: a sweep later changes nothing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(booking_status(&app, held_id).await, "cancelled");
    assert_books_balance(&app).await;
}

/// The ledger is append-only, and reconciliation reports a row that does not belong.
#[tokio::test]
async fn the_ledger_check_finds_a_tampered_row() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = hold_event(&app, &host, 10, json!({})).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let held = book_decided(&app, &buyer, &crate::helpers::bookings::book_body(event, 1)).await;
    let booking = held["bookingId"].as_i64().unwrap();
    json_with_status(
        post(
            &app,
            &format!("/api/bookings/{booking}/mark-paid"),
            &host,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_books_balance(&app).await;

    let c = app.db.client().await;
    let update = c.execute("UPDATE payments SET amount = 1", &[]).await;
    assert!(update.is_err(), "the ledger refuses updates");
    c.execute(
        "INSERT INTO payments (event_id, booking_id, kind, amount, provider, reference) \
         VALUES ($1, $2, 'capture', 500, 'manual', 'forged')",
        &[&event, &booking],
    )
    .await
    .unwrap();
    let report = atomicseats::reconcile::run_once(&app.state).await.unwrap();
    assert_eq!(report.money_drift.len(), 1);
    assert_eq!(report.money_drift[0].event_id, event);
    assert_eq!(report.money_drift[0].net, 1700);
    assert_eq!(report.money_drift[0].expected, 1200);
}

/// Instant events and free seats never wait for a payment.
#[tokio::test]
async fn free_seats_are_confirmed_at_once_in_hold_mode() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = hold_event(&app, &host, 10, json!({ "price": 0 })).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let got = book_decided(&app, &buyer, &crate::helpers::bookings::book_body(event, 2)).await;
    assert_eq!(got["status"], "confirmed");
    assert!(got["expiresAt"].is_null());
    let bad = json_with_status(
        app.post_as("/api/events/create", &host, &{
            let mut b = event_body("Bad", 5, 10);
            b["checkout"] = json!("later");
            b["holdSeconds"] = json!(0);
            b
        })
        .await,
        400,
    )
    .await;
    assert_eq!(fields_of(&bad), ["checkout", "holdSeconds"]);
    assert_books_balance(&app).await;
}

//! Money under attack and under faults (#33): two captures of one hold, concurrent payment
//! calls, a payment that does not match its session, and a chore its writer cannot apply.
//! Each test checks the books in PostgreSQL afterwards (seats, ledger, nothing stuck).

use std::time::Duration;

use atomicseats::users::domain::Role;
use serde_json::{Value, json};

use crate::helpers::bookings::{Transport, app_on, book_body, both_transports};
use crate::helpers::checkout::{
    assert_books_balance, book_decided, booking_status, hold_event, ledger, post, until_booking,
    with_stripe,
};
use crate::helpers::stripe::{LocalStripe, WEBHOOK_SECRET};
use crate::helpers::{TestApp, json_with_status};

both_transports!(
    two_captures_of_one_hold_confirm_it_once_and_the_shard_keeps_sweeping,
    a_chore_the_writer_cannot_apply_does_not_hold_back_the_others,
);

/// Waits until the booking's ledger has `n` rows; returns them.
async fn until_ledger(app: &TestApp, booking: i64, n: usize) -> Vec<(String, i64)> {
    let start = std::time::Instant::now();
    loop {
        let rows = ledger(app, booking).await;
        if rows.len() >= n {
            return rows;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "booking {booking}'s ledger is {rows:?}, not {n} rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The hold expires within `slack` of its `expiresAt`.
async fn expires_on_time(app: &TestApp, held: &Value, slack: chrono::Duration) {
    let id = held["bookingId"].as_i64().unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        held["expiresAt"].as_str().unwrap().parse().unwrap();
    until_booking(app, id, "expired", Duration::from_secs(15)).await;
    let late_by = chrono::Utc::now() - expires;
    assert!(
        late_by < slack,
        "hold {id} expired {late_by} after expiresAt"
    );
}

/// Two captured payments of one hold reach the writer in one sweep (what a double click on
/// mark-paid, or mark-paid racing a webhook, left behind before the booking row was locked):
/// one confirms the hold, the other is refunded, and another hold of the same event (so the
/// same shard or partition) still expires on time.
async fn two_captures_of_one_hold_confirm_it_once_and_the_shard_keeps_sweeping(
    transport: Transport,
) {
    let app = app_on(transport).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = hold_event(&app, &host, 10, json!({ "holdSeconds": 4 })).await;
    let (payer, idler) = (
        app.user_unlimited(Role::Guest).await,
        app.user_unlimited(Role::Guest).await,
    );
    let paid = book_decided(&app, &payer, &book_body(event, 2)).await;
    assert_eq!(paid["status"], "held", "{paid}");
    let idle = book_decided(&app, &idler, &book_body(event, 2)).await;
    assert_eq!(idle["status"], "held", "{idle}");
    let paid_id = paid["bookingId"].as_i64().unwrap();

    // Both captures in one statement, so one sweep reads both.
    app.db
        .client()
        .await
        .execute(
            "WITH s AS ( \
                INSERT INTO payment_sessions (booking_id, event_id, user_id, provider, amount, \
                                              state, captured_at) \
                SELECT id, event_id, user_id, 'manual', cost, 'captured', now() \
                  FROM bookings, generate_series(1, 2) WHERE id = $1 \
                RETURNING id, booking_id, event_id, amount) \
             INSERT INTO payments (event_id, booking_id, session_id, kind, amount, provider, \
                                   reference) \
             SELECT event_id, booking_id, id, 'capture', amount, 'manual', 'manual-' || id FROM s",
            &[&paid_id],
        )
        .await
        .unwrap();

    until_booking(&app, paid_id, "confirmed", Duration::from_secs(10)).await;
    expires_on_time(&app, &idle, chrono::Duration::seconds(3)).await;
    let rows = until_ledger(&app, paid_id, 3).await;
    assert_eq!(
        rows,
        [
            ("capture".to_owned(), 2400),
            ("capture".to_owned(), 2400),
            ("refund".to_owned(), 2400)
        ]
    );
    assert_eq!(booking_status(&app, paid_id).await, "confirmed");
    let results: Vec<String> = app
        .db
        .client()
        .await
        .query(
            "SELECT result FROM payment_sessions WHERE booking_id = $1 ORDER BY id",
            &[&paid_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(results, ["confirmed", "refunded"]);
    assert_books_balance(&app).await;
}

/// Four concurrent mark-paid calls by the host record one payment: one 200, the others 409.
/// Two concurrent `pay` calls of the buyer make one Checkout Session. A host's mark and a
/// signed webhook at once confirm the booking once and refund any second capture.
#[tokio::test]
async fn concurrent_payment_calls_capture_once_and_make_one_session() {
    let stripe = LocalStripe::start().await;
    let app = with_stripe(TestApp::builder(), &stripe).spawn().await;
    let host = app.user_unlimited(Role::Host).await;

    // Manual: four marks at once.
    let manual = hold_event(&app, &host, 10, json!({})).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let held = book_decided(&app, &buyer, &book_body(manual, 2)).await;
    let id = held["bookingId"].as_i64().unwrap();
    let path = format!("/api/bookings/{id}/mark-paid");
    let answers =
        futures_util::future::join_all((0..4).map(|_| post(&app, &path, &host, None))).await;
    let mut codes: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    codes.sort_unstable();
    assert_eq!(codes, [200, 409, 409, 409]);
    until_booking(&app, id, "confirmed", Duration::from_secs(10)).await;
    assert_eq!(ledger(&app, id).await, [("capture".to_owned(), 2400)]);

    // Stripe: two `pay` at once, one session.
    let card = hold_event(&app, &host, 10, json!({ "paymentProvider": "stripe" })).await;
    let held = book_decided(&app, &buyer, &book_body(card, 1)).await;
    let id = held["bookingId"].as_i64().unwrap();
    let path = format!("/api/bookings/{id}/pay");
    let (a, b) = tokio::join!(
        post(&app, &path, &buyer, None),
        post(&app, &path, &buyer, None)
    );
    let (a, b) = (
        json_with_status(a, 200).await,
        json_with_status(b, 200).await,
    );
    assert_eq!(a["data"]["sessionId"], b["data"]["sessionId"], "{a} {b}");
    let sessions: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM payment_sessions WHERE booking_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 1);

    // The host's mark and Stripe's webhook 0–30 ms apart.
    let session = a["data"]["sessionId"].as_str().unwrap().to_owned();
    let webhook = stripe.completed_event(&session, "evt_race");
    let now = chrono::Utc::now().timestamp();
    let mark = format!("/api/bookings/{id}/mark-paid");
    let (marked, hooked) = tokio::join!(post(&app, &mark, &host, None), async {
        tokio::time::sleep(Duration::from_millis(15)).await;
        stripe
            .deliver(&app.address, &webhook, WEBHOOK_SECRET, now)
            .await
    });
    assert!(
        matches!(marked.status().as_u16(), 200 | 409),
        "{}",
        marked.status()
    );
    assert_eq!(hooked.status(), 200);
    until_booking(&app, id, "confirmed", Duration::from_secs(10)).await;
    // Every capture but one is refunded.
    let start = std::time::Instant::now();
    loop {
        let rows = ledger(&app, id).await;
        let captures = rows.iter().filter(|(k, _)| k == "capture").count();
        let refunds = rows.iter().filter(|(k, _)| k == "refund").count();
        assert!((1..=2).contains(&captures), "{rows:?}");
        if refunds == captures - 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_books_balance(&app).await;
}

/// A signed webhook whose payment is not the one asked for (less money, another currency,
/// another booking's reference) confirms nothing: the capture is in the ledger and refunded.
#[tokio::test]
async fn a_payment_that_does_not_match_its_session_is_refunded_not_applied() {
    let stripe = LocalStripe::start().await;
    let app = with_stripe(TestApp::builder(), &stripe).spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = hold_event(&app, &host, 10, json!({ "paymentProvider": "stripe" })).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let now = chrono::Utc::now().timestamp();
    // What is changed in the paid session Stripe sends back: (field, value).
    let tamper = [
        ("amount_total", json!(100)),
        ("currency", json!("jpy")),
        ("client_reference_id", json!("999999")),
    ];
    for (i, (what, value)) in tamper.iter().enumerate() {
        let held = book_decided(&app, &buyer, &book_body(event, 1)).await;
        let id = held["bookingId"].as_i64().unwrap();
        let pay = json_with_status(
            post(&app, &format!("/api/bookings/{id}/pay"), &buyer, None).await,
            200,
        )
        .await;
        let session = pay["data"]["sessionId"].as_str().unwrap();
        let mut webhook = stripe.completed_event(session, &format!("evt_tampered_{i}"));
        webhook["data"]["object"][*what] = value.clone();
        let captured = webhook["data"]["object"]["amount_total"].as_i64().unwrap();
        let resp = stripe
            .deliver(&app.address, &webhook, WEBHOOK_SECRET, now)
            .await;
        assert_eq!(resp.status(), 200, "{what}");
        let rows = until_ledger(&app, id, 2).await;
        assert_eq!(
            rows,
            [
                ("capture".to_owned(), captured),
                ("refund".to_owned(), captured)
            ],
            "{what}"
        );
        assert_eq!(booking_status(&app, id).await, "held", "{what}");
    }
    assert_books_balance(&app).await;
}

/// A hold whose expiry the database refuses every time (a trigger stands in for any fault that
/// makes one chore fail): the other hold of the same event still expires on time, the stuck one
/// is reported (an ERROR, `booking_chores_stuck`, reconciliation), and it is applied once the
/// fault is gone.
async fn a_chore_the_writer_cannot_apply_does_not_hold_back_the_others(transport: Transport) {
    let app = app_on(transport).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = hold_event(&app, &host, 10, json!({ "holdSeconds": 2 })).await;
    let (a, b) = (
        app.user_unlimited(Role::Guest).await,
        app.user_unlimited(Role::Guest).await,
    );
    let poisoned = book_decided(&app, &a, &book_body(event, 2)).await;
    let healthy = book_decided(&app, &b, &book_body(event, 2)).await;
    let poisoned_id = poisoned["bookingId"].as_i64().unwrap();
    let db = app.db.client().await;
    db.batch_execute(&format!(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF OLD.id = {poisoned_id} AND NEW.status <> OLD.status THEN \
             RAISE EXCEPTION 'poisoned booking' USING ERRCODE = '40001'; \
           END IF; RETURN NEW; END $$; \
         CREATE TRIGGER poison BEFORE UPDATE ON bookings FOR EACH ROW EXECUTE FUNCTION poison();"
    ))
    .await
    .unwrap();

    expires_on_time(&app, &healthy, chrono::Duration::seconds(3)).await;
    assert_eq!(booking_status(&app, poisoned_id).await, "held");
    // Reported stuck: by the writer once it has failed alone (the gauge), and by reconciliation
    // once it is a minute late (backdated here rather than waited for).
    let start = std::time::Instant::now();
    while !app
        .metrics()
        .await
        .lines()
        .any(|l| l.starts_with("booking_chores_stuck ") && l.split(' ').nth(1) != Some("0"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "booking_chores_stuck never rose"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.execute(
        "UPDATE bookings SET expires_at = now() - interval '2 minutes' WHERE id = $1",
        &[&poisoned_id],
    )
    .await
    .unwrap();
    let report = atomicseats::reconcile::run_once(&app.state).await.unwrap();
    assert!(
        report
            .stuck
            .iter()
            .any(|c| c.booking_id == poisoned_id && c.kind == "hold_overdue"),
        "{:?}",
        report.stuck
    );

    // The fault goes away: the chore is applied on its next try, and the books balance.
    db.batch_execute("DROP TRIGGER poison ON bookings; DROP FUNCTION poison();")
        .await
        .unwrap();
    until_booking(&app, poisoned_id, "expired", Duration::from_secs(30)).await;
    assert_books_balance(&app).await;
}

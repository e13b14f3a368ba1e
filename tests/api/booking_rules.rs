//! Rules the event writer enforces, each found broken in the engine before v2: the price a buyer
//! was quoted, a started event frozen, waitlist places, leaving the waitlist, a request from an
//! account that no longer exists, and `Prefer: wait` parsing.

use atomicseats::users::domain::Role;
use serde_json::json;

use crate::helpers::bookings::{
    Transport, WAIT, assert_seat_invariants, book_body, both_transports, setup,
};
use crate::helpers::json_with_status;

both_transports!(
    a_waitlisted_buyer_pays_the_price_quoted_when_they_asked,
    waitlist_places_count_everyone_still_waiting,
    sold_out_answers_are_stored_with_a_status,
    a_cancelled_booking_reads_cancelled_and_its_replay_says_so,
    idempotency_without_waiting_answers_alike_on_both_transports,
    bookings_open_at_the_on_sale_time,
);

/// Waiting room #14, first step: before `onSaleAt` the writer rejects requests `not_on_sale`
/// (stored, with a status), judged by when they were asked; from it on they are decided.
async fn bookings_open_at_the_on_sale_time(transport: Transport) {
    let (app, host, event) = setup(transport, 5).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let opens = chrono::Utc::now() + chrono::Duration::seconds(2);
    let updated = json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": event, "onSaleAt": opens.to_rfc3339() }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(updated["data"]["status"], "not_on_sale", "{updated}");

    let early = app.book(&buyer, &book_body(event, 1), &WAIT).await;
    let early_id = crate::helpers::bookings::request_id_header(&early);
    let early = json_with_status(early, 409).await;
    assert_eq!(early["code"], "not_on_sale");
    let stored = decided(&app, &buyer, &early_id).await;
    assert_eq!(stored["data"]["reason"], "not_on_sale");

    let wait = (opens - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + std::time::Duration::from_millis(200)).await;
    let on_time = json_with_status(app.book(&buyer, &book_body(event, 2), &WAIT).await, 201).await;
    assert_eq!(on_time["data"]["seats"], 2);
    let shown = json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{event}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(shown["data"]["status"], "on_sale");
    assert!(shown["data"]["onSaleAt"].is_string());
    assert_seat_invariants(&app).await;
}

/// Polls a request's status until it is decided.
async fn decided(app: &crate::helpers::TestApp, token: &str, id: &str) -> serde_json::Value {
    for _ in 0..200 {
        let body = json_with_status(
            app.get_as(&format!("/api/bookings/requests/{id}"), token)
                .await,
            200,
        )
        .await;
        if body["data"]["status"] != "pending" {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("request {id} was never decided");
}

/// Engine v2 bug 5: a sold-out answer (once a shortcut that stored nothing) names its request,
/// whose status and reason can be read back, and it counts in the event's requests.
async fn sold_out_answers_are_stored_with_a_status(transport: Transport) {
    let (app, _, event) = setup(transport, 1).await;
    let a = app.user_unlimited(Role::Guest).await;
    let b = app.user_unlimited(Role::Guest).await;
    json_with_status(app.book(&a, &book_body(event, 1), &WAIT).await, 201).await;
    let mut no_waitlist = book_body(event, 1);
    no_waitlist["joinWaitlist"] = json!(false);

    let resp = app.book(&b, &no_waitlist, &WAIT).await;
    let id = crate::helpers::bookings::request_id_header(&resp);
    let body = json_with_status(resp, 409).await;

    assert_eq!(body["code"], "sold_out");
    let status = decided(&app, &b, &id).await;
    assert_eq!(status["data"]["status"], "rejected");
    assert_eq!(status["data"]["reason"], "sold_out");
    let stored: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM booking_requests WHERE event_id = $1",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 2, "both requests are on record");
}

/// Engine v2 bug 6: after a cancellation the request reads `cancelled`, and replaying the
/// original POST says so instead of "Booking confirmed".
async fn a_cancelled_booking_reads_cancelled_and_its_replay_says_so(transport: Transport) {
    let (app, _, event) = setup(transport, 5).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let key = ("idempotency-key", "cancel-me");
    let first = json_with_status(
        app.book(&buyer, &book_body(event, 2), &[key, WAIT[0]])
            .await,
        201,
    )
    .await;
    let id = first["data"]["requestId"].as_str().unwrap().to_owned();
    json_with_status(
        app.cancel_booking(&buyer, &json!({ "eventId": event }))
            .await,
        200,
    )
    .await;

    let status = decided(&app, &buyer, &id).await;
    let replay = json_with_status(
        app.book(&buyer, &book_body(event, 2), &[key, WAIT[0]])
            .await,
        200,
    )
    .await;

    assert_eq!(status["data"]["status"], "cancelled", "{status}");
    assert_eq!(replay["data"]["status"], "cancelled", "{replay}");
    assert_eq!(replay["data"]["requestId"], id.as_str());
    assert!(
        !replay["message"].as_str().unwrap().contains("confirmed"),
        "{replay}"
    );
    assert_seat_invariants(&app).await;
}

/// Engine v2 bug 7: without `Prefer: wait`, the same key with another body is a 422 and a
/// retry after the decision gets the first outcome — with Kafka as in-process.
async fn idempotency_without_waiting_answers_alike_on_both_transports(transport: Transport) {
    let (app, _, event) = setup(transport, 5).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let key = [("idempotency-key", "no-wait-42")];
    let first = json_with_status(app.book(&buyer, &book_body(event, 2), &key).await, 202).await;
    let id = first["data"]["requestId"].as_str().unwrap().to_owned();

    let reused = json_with_status(app.book(&buyer, &book_body(event, 3), &key).await, 422).await;
    assert_eq!(reused["code"], "idempotency_key_reused");
    decided(&app, &buyer, &id).await;
    let retry = json_with_status(app.book(&buyer, &book_body(event, 2), &key).await, 202).await;

    assert_eq!(retry["data"]["requestId"], id.as_str());
    assert_eq!(
        retry["data"]["status"], "confirmed",
        "the first outcome: {retry}"
    );
    assert_eq!(retry["data"]["seats"], 2);
    let seats: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT coalesce(sum(seats), 0)::bigint FROM bookings WHERE event_id = $1",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seats, 2, "booked once, the reused key's body dropped");
    // Someone else's status URL is not theirs to read while pending or after.
    let other = app.user_unlimited(Role::Guest).await;
    json_with_status(
        app.get_as(&format!("/api/bookings/requests/{id}"), &other)
            .await,
        404,
    )
    .await;
}

/// Security #3: capacity 1, price 1200; A books, B waits; the host raises the price; A cancels;
/// B is confirmed at the price B was quoted, not the new one.
async fn a_waitlisted_buyer_pays_the_price_quoted_when_they_asked(transport: Transport) {
    let (app, host, event) = setup(transport, 1).await;
    let a = app.user_unlimited(Role::Guest).await;
    let b = app.user(Role::Guest).await;
    json_with_status(app.book(&a, &book_body(event, 1), &WAIT).await, 201).await;
    let waiting =
        json_with_status(app.book(&b.access, &book_body(event, 1), &WAIT).await, 202).await;
    assert_eq!(waiting["data"]["status"], "waitlisted");
    json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": event, "price": 99_999 }),
        )
        .await,
        200,
    )
    .await;
    let cancelled = json_with_status(
        app.cancel_booking(&a, &json!({ "eventId": event })).await,
        200,
    )
    .await;
    assert_eq!(cancelled["data"]["waitlistServed"], 1);
    let status = json_with_status(
        app.get_as(waiting["data"]["statusUrl"].as_str().unwrap(), &b.access)
            .await,
        200,
    )
    .await;
    assert_eq!(status["data"]["status"], "confirmed");
    assert_eq!(
        status["data"]["cost"], 1200,
        "charged the quote, not 99,999"
    );
    let cost: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT cost FROM bookings WHERE event_id = $1 AND user_id = $2",
            &[&event, &b.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cost, 1200);
    // A new buyer after the rise pays the new price; a drop benefits everyone quoted more.
    let c = app.user_unlimited(Role::Guest).await;
    json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": event, "capacity": 3 }),
        )
        .await,
        200,
    )
    .await;
    let later = json_with_status(app.book(&c, &book_body(event, 1), &WAIT).await, 201).await;
    assert_eq!(later["data"]["cost"], 99_999);
    assert_seat_invariants(&app).await;
}

/// Bug 1: places are 1-based over everyone still waiting, also after entries were served.
async fn waitlist_places_count_everyone_still_waiting(transport: Transport) {
    let (app, _, event) = setup(transport, 2).await;
    let buyers: Vec<String> =
        futures_util::future::join_all((0..5).map(|_| app.user_unlimited(Role::Guest))).await;
    json_with_status(app.book(&buyers[0], &book_body(event, 2), &WAIT).await, 201).await;
    let mut places = Vec::new();
    for (buyer, seats) in [(&buyers[1], 1), (&buyers[2], 2), (&buyers[3], 1)] {
        let w = json_with_status(app.book(buyer, &book_body(event, seats), &WAIT).await, 202).await;
        places.push(w["data"]["position"].as_i64().unwrap());
    }
    assert_eq!(places, [1, 2, 3]);
    // Two seats free: buyer 1 (1 seat) is served, buyer 2 (2) does not fit and keeps the head,
    // buyer 3 (1) takes the last seat. Buyer 2 is now first; a newcomer queues second.
    json_with_status(
        app.cancel_booking(&buyers[0], &json!({ "eventId": event }))
            .await,
        200,
    )
    .await;
    let newcomer =
        json_with_status(app.book(&buyers[4], &book_body(event, 2), &WAIT).await, 202).await;
    assert_eq!(newcomer["data"]["position"], 2, "{newcomer}");
    let mine = json_with_status(
        app.get_as(&format!("/api/events/{event}/waitlist/me"), &buyers[4])
            .await,
        200,
    )
    .await;
    assert_eq!(mine["data"]["position"], 2);
    let head = json_with_status(
        app.get_as(&format!("/api/events/{event}/waitlist/me"), &buyers[2])
            .await,
        200,
    )
    .await;
    assert_eq!(head["data"]["position"], 1);
    assert_seat_invariants(&app).await;
}

/// Security #4 and DESIGN invariant 7: once an event has started, buyers cannot cancel (409)
/// and its waitlist is never served, not by the reconciliation sweep either.
#[tokio::test]
async fn a_started_event_is_frozen() {
    let (app, _, event) = setup(Transport::Memory, 2).await;
    let a = app.user_unlimited(Role::Guest).await;
    let b = app.user_unlimited(Role::Guest).await;
    json_with_status(app.book(&a, &book_body(event, 1), &WAIT).await, 201).await;
    // B wants 2: one seat is free, B waits (no partial).
    json_with_status(app.book(&b, &book_body(event, 2), &WAIT).await, 202).await;
    // The event starts; then seats free up (capacity raised straight in the database).
    let c = app.db.client().await;
    c.execute(
        "UPDATE events SET starts_at = now() - interval '1 minute', ends_at = now() + interval '2 hours', \
           capacity = 5, version = version + 1 WHERE id = $1",
        &[&event],
    )
    .await
    .unwrap();
    let refused = json_with_status(
        app.cancel_booking(&a, &json!({ "eventId": event })).await,
        409,
    )
    .await;
    assert_eq!(refused["code"], "event_closed");
    let served = atomicseats::bookings::sweep_waitlists(&app.state)
        .await
        .unwrap();
    assert_eq!(served, 0, "the sweep serves no started event");
    atomicseats::bookings::serve_waitlist(&app.state, event)
        .await
        .unwrap();
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM waitlist WHERE event_id = $1), \
                    (SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'confirmed'), \
                    (SELECT reserved_seats FROM events WHERE id = $1)",
            &[&event],
        )
        .await
        .unwrap();
    let (waiting, confirmed, reserved): (i64, i64, i32) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((waiting, confirmed, reserved), (1, 1, 1));
    // A booking for it is refused as closed.
    let late = json_with_status(app.book(&b, &book_body(event, 1), &WAIT).await, 409).await;
    assert_eq!(late["code"], "event_closed");
}

/// Bug 2: leaving the waitlist takes the event row (serialised with the writer), bumps the
/// version so the writer cannot act on the entry it remembers, and tells the buyer by email.
#[tokio::test]
async fn leaving_the_waitlist_goes_through_the_event_row() {
    let (app, _, event) = setup(Transport::Memory, 1).await;
    let a = app.user_unlimited(Role::Guest).await;
    let b = app.user(Role::Guest).await;
    let c = app.user_unlimited(Role::Guest).await;
    json_with_status(app.book(&a, &book_body(event, 1), &WAIT).await, 201).await;
    let waiting =
        json_with_status(app.book(&b.access, &book_body(event, 1), &WAIT).await, 202).await;
    let db = app.db.client().await;
    let before = version(&db, event).await;
    let left = app
        .client
        .delete(app.url(&format!("/api/events/{event}/waitlist/me")))
        .bearer_auth(&b.access)
        .send()
        .await
        .unwrap();
    json_with_status(left, 200).await;
    assert_eq!(version(&db, event).await, before + 1);
    // The writer still remembers B in line: its next decision must not serve B.
    json_with_status(app.book(&c, &book_body(event, 1), &WAIT).await, 202).await;
    json_with_status(
        app.cancel_booking(&a, &json!({ "eventId": event })).await,
        200,
    )
    .await;
    let status = json_with_status(
        app.get_as(waiting["data"]["statusUrl"].as_str().unwrap(), &b.access)
            .await,
        200,
    )
    .await;
    assert_eq!(status["data"]["status"], "rejected");
    assert_eq!(status["data"]["reason"], "withdrawn");
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM bookings WHERE user_id = $1), \
                    (SELECT count(*) FROM outbox_all WHERE kind = 'waitlist_left' AND user_id = $1)",
            &[&b.id],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, 1));
    assert_seat_invariants(&app).await;
}

/// Security #7 / bug 3: a request from an account that no longer exists is answered 401 on its
/// own; the buyers in the same batch are decided as usual.
#[tokio::test]
async fn a_vanished_account_fails_only_its_own_request() {
    let (app, _, event) = setup(Transport::Memory, 100).await;
    let ghost = app
        .state
        .tokens()
        .issue_access(987_654_321, Role::Guest)
        .unwrap()
        .token;
    let buyers = app.many_users(30).await;
    let body = book_body(event, 1);
    let mut calls = Vec::new();
    for (i, (_, token)) in buyers.iter().enumerate() {
        calls.push(app.book(token, &body, &WAIT));
        if i % 10 == 0 {
            calls.push(app.book(&ghost, &body, &WAIT));
        }
    }
    let answers = futures_util::future::join_all(calls).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        30,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "{statuses:?}"
    );
    let stored: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM booking_requests WHERE event_id = $1",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 30);
    assert_seat_invariants(&app).await;
}

/// Security #5: `Prefer: wait` beyond any duration is the cap, not a panic; a value that is not
/// a non-negative number is a 400 naming the header.
#[tokio::test]
async fn prefer_wait_is_parsed_with_checked_conversions() {
    let (app, _, event) = setup(Transport::Memory, 10).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    json_with_status(
        app.book(&buyer, &book_body(event, 1), &[("prefer", "wait=1e20")])
            .await,
        201,
    )
    .await;
    for bad in ["wait=abc", "wait=-1", "wait=NaN", "respond-async, wait=inf"] {
        let body = json_with_status(
            app.book(&buyer, &book_body(event, 1), &[("prefer", bad)])
                .await,
            400,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "Prefer", "{bad}: {body}");
    }
    // Other preferences are ignored.
    json_with_status(
        app.book(
            &buyer,
            &book_body(event, 1),
            &[("prefer", "return=minimal")],
        )
        .await,
        202,
    )
    .await;
}

async fn version(db: &tokio_postgres::Client, event: i64) -> i64 {
    db.query_one("SELECT version FROM events WHERE id = $1", &[&event])
        .await
        .unwrap()
        .get(0)
}

/// Kafka mode keeps a decision's latency bounded: while the booking consumers are more than
/// `kafka.max_lag` requests behind, the API answers 503 with `Retry-After` instead of queueing.
#[tokio::test]
async fn kafka_answers_503_while_the_consumers_are_too_far_behind() {
    let app = crate::helpers::bookings::kafka_builder()
        .env("ATOMICSEATS__KAFKA__MAX_LAG", "5")
        .without_worker()
        .spawn()
        .await;
    atomicseats::kafka::ensure_topics(&app.state.settings().kafka)
        .await
        .unwrap();
    let host = app.user_unlimited(Role::Host).await;
    let event = app
        .create_event(
            &host,
            &crate::helpers::events::event_body("Backlog", 5, 100),
        )
        .await;
    let buyer = app.user_unlimited(Role::Guest).await;
    for _ in 0..8 {
        json_with_status(app.book(&buyer, &book_body(event, 1), &[]).await, 202).await;
    }
    // The lag is read off the request path at most once a second: within a few seconds the
    // eight undecided requests (no consumer runs) exceed the bound of five.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let resp = app.book(&buyer, &book_body(event, 1), &[]).await;
        if resp.status() == 503 {
            assert!(resp.headers().contains_key("retry-after"));
            break;
        }
        assert_eq!(resp.status(), 202);
        assert!(std::time::Instant::now() < deadline, "never answered 503");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// A process that runs no booking writer on the in-process queue (`serve` alone, here the test
/// app without its worker) refuses bookings with 503 instead of answering `pending` for
/// requests nobody would ever decide (they were lost when the process stopped).
#[tokio::test]
async fn no_writer_in_the_process_means_503_not_an_undecided_request() {
    let app = crate::helpers::TestApp::builder()
        .without_worker()
        .spawn()
        .await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app
        .create_event(
            &host,
            &crate::helpers::events::event_body("Nobody decides", 5, 10),
        )
        .await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let resp = app.book(&buyer, &book_body(event, 1), &[]).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let stored: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT COUNT(*) FROM booking_requests", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
}

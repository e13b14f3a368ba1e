//! Notifications against a real SMTP server (aiosmtpd on loopback): every kind arrives with the
//! right recipient, subject and facts; retries after an outage; exactly one copy on redelivery;
//! reconciliation delivers what was never published; dead letters and the admin API.

use std::time::{Duration, Instant};

use atomicseats::users::domain::Role;
use serde_json::json;

use crate::helpers::bookings::{Transport, app_on};
use crate::helpers::events::event_body;
use crate::helpers::smtp::{SmtpSink, plain, with_smtp};
use crate::helpers::{TestApp, json_with_status};

/// A buyer with a known email.
async fn buyer(app: &TestApp, email: &str) -> String {
    let username = email.split('@').next().unwrap().replace('.', "_");
    let user = atomicseats::users::create_from_cli(
        &app.state,
        &username,
        email,
        Some("Ada Buyer"),
        Role::Guest,
        "correct horse battery".to_owned(),
    )
    .await
    .unwrap();
    app.state
        .tokens()
        .issue_access(user.id, Role::Guest)
        .unwrap()
        .token
}

const WAIT: [(&str, &str); 1] = [("prefer", "wait=20")];

async fn every_kind_arrives_with_its_facts(transport: Transport) {
    let sink = SmtpSink::start();
    let base = match transport {
        Transport::Memory => TestApp::builder(),
        Transport::Kafka => crate::helpers::bookings::kafka_builder(),
    };
    let app = with_smtp(base, sink.port).spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let mut body = event_body("Jazz <Night> & Co", 3, 3);
    body["maxPerUser"] = json!(4);
    let event = app.create_event(&host, &body).await;
    let ada = buyer(&app, "ada@example.com").await;
    let bob = buyer(&app, "bob@example.com").await;

    // confirmed (2 seats, 24.00), partial (1 of 3, rest waitlisted), rejected (cap), cancelled,
    // waitlist confirmed (bob gets the freed seats), event cancelled.
    json_with_status(
        app.book(
            &ada,
            &json!({ "eventId": event, "numberOfSeats": 2 }),
            &WAIT,
        )
        .await,
        201,
    )
    .await;
    json_with_status(
        app.book(
            &bob,
            &json!({ "eventId": event, "numberOfSeats": 3, "allowPartial": true }),
            &WAIT,
        )
        .await,
        202,
    )
    .await;
    json_with_status(
        app.book(
            &ada,
            &json!({ "eventId": event, "numberOfSeats": 3 }),
            &WAIT,
        )
        .await,
        409,
    )
    .await;
    json_with_status(
        app.cancel_booking(&ada, &json!({ "eventId": event })).await,
        200,
    )
    .await;
    json_with_status(
        app.post_as("/api/events/delete", &host, &json!({ "id": event }))
            .await,
        200,
    )
    .await;

    let messages = sink.wait_for(6, 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages: Vec<String> = if sink.messages().len() > messages.len() {
        sink.messages()
    } else {
        messages
    };
    let find = |rcpt: &str, subject: &str| -> String {
        messages
            .iter()
            .find(|m| m.starts_with(&format!("RCPT: {rcpt}")) && plain(m).contains(subject))
            .unwrap_or_else(|| panic!("no email to {rcpt} with `{subject}` in {messages:#?}"))
            .clone()
    };
    let confirmed = plain(&find("ada@example.com", "Subject: Booking confirmed"));
    assert!(
        confirmed.contains("Seats:     2")
            && confirmed.contains("24.00")
            && confirmed.contains("Arena"),
        "{confirmed}"
    );
    assert!(
        confirmed.contains("Jazz &lt;Night&gt; &amp; Co"),
        "HTML is escaped: {confirmed}"
    );
    assert!(
        confirmed.contains("From: AtomicSeats <tickets@atomicseats.test>"),
        "{confirmed}"
    );
    let partial = plain(&find("bob@example.com", "Partly confirmed"));
    assert!(
        partial.contains("The other 2 seats stay on the waitlist"),
        "{partial}"
    );
    let rejected = plain(&find("ada@example.com", "Booking not possible"));
    assert!(rejected.contains("limit of seats per buyer"), "{rejected}");
    let cancelled = plain(&find("ada@example.com", "Booking cancelled"));
    assert!(cancelled.contains("is cancelled, as you"), "{cancelled}");
    let served = plain(&find(
        "bob@example.com",
        "Seats confirmed from the waitlist",
    ));
    assert!(
        served.contains("2 seats from your waitlist place"),
        "{served}"
    );
    find("bob@example.com", "Event cancelled");
    // Exactly one email per outbox row.
    let rows: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sink.messages().len() as i64, rows);
    // Each carries a Message-ID derived from its outbox row: one per row, none twice.
    let ids: std::collections::BTreeSet<String> = app
        .db
        .client()
        .await
        .query("SELECT id FROM outbox", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| format!("<notification-{}@atomicseats>", r.get::<_, i64>(0)))
        .collect();
    let seen: std::collections::BTreeSet<String> = sink
        .messages()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .map(|v| v.trim().to_owned())
        })
        .collect();
    assert_eq!(seen, ids);
    let unsent: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM outbox WHERE status <> 'sent'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unsent, 0);
}

#[tokio::test]
async fn every_kind_arrives_with_its_facts_memory() {
    every_kind_arrives_with_its_facts(Transport::Memory).await;
}

#[tokio::test]
async fn every_kind_arrives_with_its_facts_kafka() {
    every_kind_arrives_with_its_facts(Transport::Kafka).await;
}

#[tokio::test]
async fn smtp_down_then_back_delivers_exactly_one_copy() {
    let mut sink = SmtpSink::start();
    sink.stop();
    let app = with_smtp(TestApp::builder(), sink.port).spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Outage", 3, 10)).await;
    let ada = buyer(&app, "ada@example.com").await;
    json_with_status(
        app.book(
            &ada,
            &json!({ "eventId": event, "numberOfSeats": 1 }),
            &WAIT,
        )
        .await,
        201,
    )
    .await;

    // It fails and is retried while the server is down (its outbox row appears once the relay
    // expanded the writer's batch)...
    let c = app.db.client().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempts: i32 = c
            .query_one("SELECT coalesce(max(attempts), 0) FROM outbox", &[])
            .await
            .unwrap()
            .get(0);
        if attempts >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no retries happened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status: String = c
        .query_one("SELECT status FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "pending");

    // ...and delivered once it is back.
    sink.resume();
    let messages = sink.wait_for(1, 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.messages().len(), 1, "{messages:?}");
    let status: String = c
        .query_one("SELECT status FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "sent");
}

#[tokio::test]
async fn redelivering_a_sent_notification_sends_nothing() {
    let sink = SmtpSink::start();
    let app = with_smtp(crate::helpers::bookings::kafka_builder(), sink.port)
        .spawn()
        .await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Replay", 3, 10)).await;
    let ada = buyer(&app, "ada@example.com").await;
    json_with_status(
        app.book(
            &ada,
            &json!({ "eventId": event, "numberOfSeats": 1 }),
            &WAIT,
        )
        .await,
        201,
    )
    .await;
    sink.wait_for(1, 30).await;
    let id: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT id FROM outbox", &[])
        .await
        .unwrap()
        .get(0);

    // Kafka replays the message (and a re-publish races it).
    for _ in 0..3 {
        assert!(app.state.notification_queue().publish(id, None).await);
    }
    atomicseats::notifications::worker::deliver(&app.state, id)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn reconciliation_delivers_a_notification_that_was_never_published() {
    let sink = SmtpSink::start();
    let app = with_smtp(TestApp::builder().without_relay(), sink.port)
        .spawn()
        .await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Crashed", 3, 10)).await;
    let ada = buyer(&app, "ada@example.com").await;
    // The decision commits, then the process "dies" before publishing: no relay runs here.
    json_with_status(
        app.book(
            &ada,
            &json!({ "eventId": event, "numberOfSeats": 2 }),
            &WAIT,
        )
        .await,
        201,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.messages().is_empty());

    let report = atomicseats::reconcile::run_once(&app.state).await.unwrap();

    assert_eq!(report.notifications_republished, 1);
    let m = sink.wait_for(1, 20).await;
    assert!(
        plain(&m[0]).contains("Booking confirmed: Crashed"),
        "{}",
        m[0]
    );
}

#[tokio::test]
async fn notifications_the_queue_refuses_stay_due_at_once() {
    let mut app = TestApp::builder().without_relay().spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Refused", 3, 10)).await;
    let ada = buyer(&app, "ada@example.com").await;
    json_with_status(
        app.book(
            &ada,
            &json!({ "eventId": event, "numberOfSeats": 1 }),
            &WAIT,
        )
        .await,
        201,
    )
    .await;
    // The in-process queue's consumer is gone (as when the notifier stops before the relay).
    app.kill_notifier().await;

    let handed = atomicseats::notifications::worker::publish_due(&app.state)
        .await
        .unwrap();

    assert_eq!(handed, 0, "nothing was handed over");
    let db = app.db.client().await;
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM outbox \
              WHERE status = 'pending'",
            &[],
        )
        .await
        .unwrap();
    let (unpublished, pending): (i64, i64) = (row.get(0), row.get(1));
    assert!(pending >= 1, "the booking wrote a notification");
    assert_eq!(
        unpublished, pending,
        "a refused notification is due again at once, not after republish_after_secs"
    );
    assert!(app.counted("notifications_refused_total").await, "counted");
}

/// The booking writer writes a transaction's notifications as one `outbox_batches` row; the
/// relay expands it into outbox rows in order, written published, and applies what the
/// outbox's foreign keys would: a deleted user's notification is dropped, a deleted event's
/// keeps no event.
#[tokio::test]
async fn the_writers_notifications_are_one_batch_row_that_the_relay_expands() {
    let app = TestApp::builder().without_relay().spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let kept = app.create_event(&host, &event_body("Kept", 10, 10)).await;
    let gone = app.create_event(&host, &event_body("Gone", 10, 10)).await;
    let (ada, bob, cy) = (
        app.user(Role::Guest).await,
        app.user(Role::Guest).await,
        app.user(Role::Guest).await,
    );
    for (who, event) in [(&ada, kept), (&bob, kept), (&cy, gone)] {
        json_with_status(
            app.book(
                &who.access,
                &json!({ "eventId": event, "numberOfSeats": 1 }),
                &WAIT,
            )
            .await,
            201,
        )
        .await;
    }
    let db = app.db.client().await;
    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE kind = 'booking_confirmed'").await,
        0,
        "no outbox row per notification on the writer's path"
    );
    assert_eq!(
        count("SELECT count(*) FROM outbox_batches").await,
        3,
        "one row per writer transaction"
    );
    assert_eq!(
        count("SELECT count(*) FROM outbox_all WHERE kind = 'booking_confirmed'").await,
        3,
        "written with the decisions, visible before the relay ran"
    );
    // Bob leaves for good, and the second event is deleted outright, before the relay runs.
    db.execute("DELETE FROM users WHERE id = $1", &[&bob.id])
        .await
        .unwrap();
    db.execute("DELETE FROM booking_requests WHERE event_id = $1", &[&gone])
        .await
        .unwrap();
    db.execute("DELETE FROM events WHERE id = $1", &[&gone])
        .await
        .unwrap();

    atomicseats::notifications::worker::publish_due(&app.state)
        .await
        .unwrap();

    assert_eq!(count("SELECT count(*) FROM outbox_batches").await, 0);
    let rows: Vec<(i64, Option<i64>, bool)> = db
        .query(
            "SELECT user_id, event_id, published_at IS NOT NULL FROM outbox \
              WHERE kind = 'booking_confirmed' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        [(ada.id, Some(kept), true), (cy.id, None, true)],
        "in order; bob's dropped; the deleted event's kept with no event; written published"
    );
}

/// The relay yields to a busy writer: a pass that began in a pause of a sale stops after its
/// round once the writer commits again, instead of chasing every batch the sale writes until
/// it ends; what it left is handed over in the next pause, nothing lost or written twice.
#[tokio::test]
async fn the_relay_yields_to_a_writer_that_commits_again_instead_of_chasing_it() {
    let app = TestApp::builder()
        .env("ATOMICSEATS__NOTIFY__RELAY_QUIET_MS", "1000")
        .env("ATOMICSEATS__NOTIFY__RELAY_MAX_DELAY_MS", "120000")
        .spawn()
        .await;
    let ada = app.user(Role::Guest).await;
    let db = app.db.client().await;
    // `n` writer transactions of 5 notifications each, committed and signalled as the writer does.
    let commit = |n: i32| {
        let (db, state) = (&db, &app.state);
        async move {
            db.execute(
                "INSERT INTO outbox_batches (kinds, user_ids, event_ids, payloads) \
                 SELECT array_fill('booking_confirmed'::text, ARRAY[5]), array_fill($1::int8, ARRAY[5]), \
                        array_fill(NULL::int8, ARRAY[5]), array_fill('{}'::jsonb, ARRAY[5]) \
                 FROM generate_series(1, $2)",
                &[&ada.id, &n],
            )
            .await
            .unwrap();
            atomicseats::notifications::wake(state);
        }
    };
    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    // A sale's first seconds (a backlog of 4,000 transactions), then a pause the relay starts
    // a pass in (4 batches a round: a thousand rounds)...
    commit(4000).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let at_busy = loop {
        let left = count("SELECT count(*) FROM outbox_batches").await;
        if left < 4000 {
            break left;
        }
        assert!(
            Instant::now() < deadline,
            "the relay began a pass in the pause"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // ...then the writer commits again, every 30 ms for 1.5 s (never quiet for relay_quiet_ms).
    for _ in 0..50 {
        commit(1).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let after_busy = count("SELECT count(*) FROM outbox_batches").await;
    assert!(
        at_busy > 0,
        "the pass was not over when the writer committed again"
    );
    let expanded_while_busy = at_busy + 50 - after_busy;
    assert!(
        expanded_while_busy <= 8,
        "the pass stopped after its round once the writer committed again \
         ({expanded_while_busy} batches expanded while it was busy)"
    );
    assert!(
        app.counted("notification_relay_yields_total").await,
        "the yield is counted"
    );
    // The writer pauses: everything is handed over, each notification once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count("SELECT count(*) FROM outbox_batches").await > 0 {
        assert!(Instant::now() < deadline, "the relay finished in the pause");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE kind = 'booking_confirmed'").await,
        4050 * 5
    );
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_and_an_admin_can_retry_it() {
    let sink = SmtpSink::start();
    let app = with_smtp(TestApp::builder(), sink.port).spawn().await;
    let admin = app.user_unlimited(Role::Admin).await;
    let guest = app.user_unlimited(Role::Guest).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app
        .create_event(&host, &event_body("Dead letters", 3, 10))
        .await;
    let ada = buyer(&app, "ada@example.com").await;
    // An outbox row of a kind without a template cannot be rendered: dead-lettered at once.
    let c = app.db.client().await;
    let ada_id = app.state.tokens().verify_access(&ada).unwrap().id;
    let id: i64 = c
        .query_one(
            "INSERT INTO outbox (kind, user_id, event_id, payload) VALUES ('mystery', $1, $2, '{}') RETURNING id",
            &[&ada_id, &event],
        )
        .await
        .unwrap()
        .get(0);
    atomicseats::notifications::worker::deliver(&app.state, id)
        .await
        .unwrap();
    atomicseats::notifications::worker::deliver(&app.state, id)
        .await
        .unwrap();

    let failed = json_with_status(
        app.get_as("/api/admin/notifications?status=failed", &admin)
            .await,
        200,
    )
    .await;
    let items = failed["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id);
    assert!(
        items[0]["lastError"]
            .as_str()
            .unwrap()
            .contains("no template")
    );
    assert!(
        !failed.to_string().contains("ada@example.com"),
        "no emails in the admin listing"
    );
    json_with_status(
        app.get_as("/api/admin/notifications?status=failed", &guest)
            .await,
        403,
    )
    .await;
    json_with_status(
        app.get_as("/api/admin/notifications?status=bogus", &admin)
            .await,
        400,
    )
    .await;
    let metrics = app.metrics().await;
    assert!(metrics.contains("notifications_failed_total"), "{metrics}");

    // Fix the cause (here: make it a known kind) and retry from the admin API.
    c.execute(
        "UPDATE outbox SET kind = 'booking_rejected', payload = '{\"eventName\":\"Dead letters\",\"seatsRequested\":1,\"reason\":\"sold_out\"}' WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    let retried = app
        .client
        .post(app.url(&format!("/api/admin/notifications/{id}/retry")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    json_with_status(retried, 200).await;
    let m = sink.wait_for(1, 20).await;
    assert!(
        plain(&m[0]).contains("Booking not possible: Dead letters"),
        "{}",
        m[0]
    );
    let again = app
        .client
        .post(app.url(&format!("/api/admin/notifications/{id}/retry")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    json_with_status(again, 409).await;
}

#[tokio::test]
async fn in_process_transport_also_sends() {
    // The same pipeline on the in-process queue, through `app_on` (no SMTP overrides: log only).
    let app = app_on(Transport::Memory).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Logged", 3, 10)).await;
    let ada = buyer(&app, "ada@example.com").await;
    json_with_status(
        app.book(
            &ada,
            &json!({ "eventId": event, "numberOfSeats": 1 }),
            &WAIT,
        )
        .await,
        201,
    )
    .await;
    let c = app.db.client().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: String = c
            .query_one("SELECT coalesce(max(status), '') FROM outbox", &[])
            .await
            .unwrap()
            .get(0);
        if status == "sent" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the log transport never marked it sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The relay of a process with no booking writer (`serve` beside `work-bookings` processes)
/// expands only the writer's batches that have waited `relay_max_delay_ms`: the fresh ones are
/// the writer-side relay's, taken in the writer's pauses, and expanding them during a sale is
/// what that relay avoids. Its snapshot (`outbox::last_batch` with a cut-off), on a database no
/// relay runs on.
#[tokio::test]
async fn a_relay_with_no_writer_beside_it_expands_only_batches_that_waited() {
    use diesel_async::{AsyncConnection, AsyncPgConnection};
    let db = crate::helpers::TestDatabase::migrated().await;
    let c = db.client().await;
    let user: i64 = c
        .query_one(
            "INSERT INTO users (username, name, email, password_hash, role) \
             VALUES ('waiter', 'Waiter', 'waiter@example.com', 'x', 'guest') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // One batch written a minute ago (its writer's relay never got to it), one just now.
    for age in ["1 minute", "0 seconds"] {
        c.execute(
            &format!(
                "INSERT INTO outbox_batches (created_at, kinds, user_ids, event_ids, payloads) \
                 VALUES (now() - interval '{age}', ARRAY['booking_confirmed'], ARRAY[$1::int8], \
                         ARRAY[NULL::int8], ARRAY['{{}}'::jsonb])"
            ),
            &[&user],
        )
        .await
        .unwrap();
    }
    let left = || async {
        c.query_one("SELECT count(*) FROM outbox_batches", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let mut conn = AsyncPgConnection::establish(&db.url()).await.unwrap();
    let cut_off = chrono::Utc::now() - chrono::Duration::seconds(30);
    let apart = atomicseats::notifications::outbox::last_batch(&mut conn, Some(cut_off))
        .await
        .unwrap();
    let (taken, rows) = atomicseats::notifications::outbox::expand(&mut conn, apart)
        .await
        .unwrap();
    assert_eq!((taken, rows.len()), (1, 1), "only the batch that waited");
    assert_eq!(
        left().await,
        1,
        "the fresh batch is left to the writer's relay"
    );
    let upto = atomicseats::notifications::outbox::last_batch(&mut conn, None)
        .await
        .unwrap();
    let (taken, _) = atomicseats::notifications::outbox::expand(&mut conn, upto)
        .await
        .unwrap();
    assert_eq!(taken, 1, "beside a writer, every batch up to the snapshot");
    assert_eq!(left().await, 0);
}

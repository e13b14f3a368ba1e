//! Kafka redelivery and poison messages, and `kill -9` in the middle of a load: every request
//! that got a success answer is decided exactly once, none is lost, nothing is oversold.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atomicseats::bookings::domain::BookingRequest;
use atomicseats::users::domain::Role;
use futures_util::StreamExt;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use crate::helpers::bookings::{Transport, app_on};
use crate::helpers::events::event_body;
use crate::helpers::{TestDatabase, config_dir, json_with_status};

fn broker() -> String {
    std::env::var("KAFKA_BROKER").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("acks", "all")
        .create()
        .unwrap()
}

async fn wait_until<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(app_db: &TestDatabase, sql: &str) -> i64 {
    app_db
        .client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_message_delivered_twice_by_kafka_books_once() {
    let app = app_on(Transport::Kafka).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app
        .create_event(&host, &event_body("Replayed", 3, 10))
        .await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let user = app.state.tokens().verify_access(&buyer).unwrap().id;
    let request = BookingRequest {
        request_id: uuid::Uuid::new_v4(),
        user_id: user,
        event_id: event,
        seats: 3,
        allow_partial: false,
        join_waitlist: true,
        idempotency_key: None,
        requested_at: chrono::Utc::now(),
        quoted_price: None,
        ticket_type_id: None,
        admission: None,
    };
    let topic = format!(
        "booking-requests{}",
        app.state.settings().kafka.topic_suffix
    );
    let payload = serde_json::to_vec(&request).unwrap();
    let p = producer();

    // The same record three times, as a producer retry or a replay would.
    for _ in 0..3 {
        p.send(
            FutureRecord::to(&topic)
                .key(&event.to_string())
                .payload(&payload),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    }

    wait_until("the decision", 30, || async {
        count(&app.db, "SELECT count(*) FROM booking_requests").await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&app.db, "SELECT count(*) FROM bookings").await, 1);
    assert_eq!(
        count(&app.db, "SELECT reserved_seats::BIGINT FROM events").await,
        3
    );
    assert_eq!(
        count(
            &app.db,
            "SELECT count(*) FROM outbox_all WHERE kind = 'booking_confirmed'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_undecodable_message_goes_to_the_dead_letter_topic_without_blocking() {
    let app = app_on(Transport::Kafka).await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app
        .create_event(&host, &event_body("Poisoned", 3, 10))
        .await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let suffix = app.state.settings().kafka.topic_suffix.clone();
    let topic = format!("booking-requests{suffix}");
    let p = producer();
    p.send(
        FutureRecord::to(&topic)
            .key(&event.to_string())
            .payload("{not json"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();

    // A valid request behind it in the same partition is still decided.
    let body = json_with_status(
        app.book(
            &buyer,
            &json!({ "eventId": event, "numberOfSeats": 1 }),
            &[("prefer", "wait=20")],
        )
        .await,
        201,
    )
    .await;
    assert_eq!(body["data"]["status"], "confirmed");

    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", format!("dlq-reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    dlq.subscribe(&[&format!("booking-requests-dlq{suffix}")])
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(30), dlq.recv())
        .await
        .expect("a dead letter")
        .unwrap();
    assert_eq!(msg.payload(), Some(&b"{not json"[..]));
}

/// A child process of the real binary, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(role: &str, envs: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atomicseats"));
    cmd.arg(role)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ATOMICSEATS_CONFIG_DIR", config_dir())
        .env("ATOMICSEATS_ENV", "test")
        .env("ATOMICSEATS__LOG__LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().unwrap())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    wait_until("health", 30, || async {
        client
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
}

/// Sends `n` idempotent bookings from `users`; returns the request ids that got a success
/// answer (2xx) and how many did not.
async fn load(
    base: &str,
    event: i64,
    users: &[(i64, String)],
    n: usize,
    wait: bool,
) -> (HashSet<String>, usize) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let results: Vec<Option<String>> = futures_util::stream::iter((0..n).map(|i| {
        let client = client.clone();
        let token = users[i % users.len()].1.clone();
        let url = format!("{base}/api/events/book");
        async move {
            let mut req = client
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", format!("load-{i}"))
                .json(&json!({ "eventId": event, "numberOfSeats": 1 + i % 4 }));
            if wait {
                req = req.header("prefer", "wait=0");
            }
            let resp = req.send().await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let body: Value = resp.json().await.ok()?;
            body["data"]["requestId"].as_str().map(str::to_owned)
        }
    }))
    .buffer_unordered(32)
    .collect()
    .await;
    let failed = results.iter().filter(|r| r.is_none()).count();
    (results.into_iter().flatten().collect(), failed)
}

async fn assert_exactly_once(db: &TestDatabase, acknowledged: &HashSet<String>) {
    let c = db.client().await;
    let stored: HashSet<String> = c
        .query("SELECT id::text FROM booking_requests", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged requests were lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM booking_requests) - (SELECT count(DISTINCT id) FROM booking_requests), \
                    (SELECT count(*) FROM events WHERE reserved_seats <> \
                       COALESCE((SELECT SUM(seats) FROM bookings b WHERE b.event_id = events.id AND b.status = 'confirmed'), 0)), \
                    (SELECT count(*) FROM events WHERE reserved_seats > capacity), \
                    (SELECT count(*) FROM (SELECT request_id FROM bookings GROUP BY request_id HAVING count(*) > 1) d)",
            &[],
        )
        .await
        .unwrap();
    let (duplicated, drifted, oversold, double_booked): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((duplicated, drifted, oversold, double_booked), (0, 0, 0, 0));
}

async fn seed(
    db: &TestDatabase,
    app_state: &atomicseats::state::AppState,
    capacity: i32,
) -> (i64, Vec<(i64, String)>) {
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO users (username, name, email, password_hash, role) \
         SELECT 'crash' || g, 'B', 'crash' || g || '@example.com', 'x', 'guest' FROM generate_series(1, 200) g; \
         INSERT INTO users (username, name, email, password_hash, role) VALUES ('crashhost', 'H', 'h@example.com', 'x', 'host');",
    )
    .await
    .unwrap();
    let event: i64 = c
        .query_one(
            "INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity, price) \
             SELECT id, 'Crash', '', 'Hall', now() + interval '1 day', now() + interval '2 days', $1, 100 \
             FROM users WHERE username = 'crashhost' RETURNING id",
            &[&capacity],
        )
        .await
        .unwrap()
        .get(0);
    let users = c
        .query("SELECT id FROM users WHERE role = 'guest'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let id: i64 = r.get(0);
            (
                id,
                app_state
                    .tokens()
                    .issue_access(id, Role::Guest)
                    .unwrap()
                    .token,
            )
        })
        .collect();
    (event, users)
}

#[tokio::test]
async fn kill_9_of_the_kafka_booking_worker_loses_and_duplicates_nothing() {
    let db = TestDatabase::migrated().await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let secret = "crash-test-secret-crash-test-secret-xx".to_owned();
    let port = free_port();
    let envs: Vec<(&str, String)> = vec![
        ("DATABASE_URL", db.url()),
        ("PORT", port.to_string()),
        ("ACCESS_TOKEN_SECRET", secret.clone()),
        ("ATOMICSEATS__QUEUE__KIND", "kafka".to_owned()),
        ("KAFKA_BROKER", broker()),
        ("ATOMICSEATS__KAFKA__TOPIC_SUFFIX", format!(".crash{tag}")),
        ("ATOMICSEATS__KAFKA__GROUP_ID", format!("crash-{tag}")),
        ("ATOMICSEATS__BOOKING__BATCH_MAX", "20".to_owned()),
    ];
    let state_for_tokens = {
        let settings =
            crate::helpers::test_settings(&db.url(), &[("ACCESS_TOKEN_SECRET", &secret)]);
        atomicseats::app::build_state(settings, "test").unwrap()
    };
    let (event, users) = seed(&db, &state_for_tokens, 100_000).await;
    let _api = spawn("serve", &envs);
    let mut worker = spawn("work-bookings", &envs);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&reqwest::Client::new(), &base).await;

    // Kill the worker in the middle of the load, then start a new one.
    let killer = async {
        wait_until("some decisions", 60, || async {
            count(&db, "SELECT count(*) FROM booking_requests").await > 50
        })
        .await;
        let _ = worker.0.kill();
        let _ = worker.0.wait();
        tokio::time::sleep(Duration::from_millis(500)).await;
        spawn("work-bookings", &envs)
    };
    let ((acknowledged, _failed), restarted) =
        tokio::join!(load(&base, event, &users, 1500, false), killer);
    let _restarted = restarted;
    wait_until("every acknowledged request decided", 120, || async {
        count(&db, "SELECT count(*) FROM booking_requests").await as usize >= acknowledged.len()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        acknowledged.len() > 1000,
        "the load ran: {}",
        acknowledged.len()
    );
    assert_exactly_once(&db, &acknowledged).await;
}

#[tokio::test]
async fn kill_9_of_atomicseats_all_loses_and_duplicates_nothing() {
    let db = TestDatabase::migrated().await;
    let secret = "crash-test-secret-crash-test-secret-yy".to_owned();
    let port = free_port();
    let envs: Vec<(&str, String)> = vec![
        ("DATABASE_URL", db.url()),
        ("PORT", port.to_string()),
        ("ACCESS_TOKEN_SECRET", secret.clone()),
    ];
    let state_for_tokens = {
        let settings =
            crate::helpers::test_settings(&db.url(), &[("ACCESS_TOKEN_SECRET", &secret)]);
        atomicseats::app::build_state(settings, "test").unwrap()
    };
    let (event, users) = seed(&db, &state_for_tokens, 100_000).await;
    let mut all = spawn("all", &envs);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_healthy(&client, &base).await;

    let killer = async {
        wait_until("some decisions", 60, || async {
            count(&db, "SELECT count(*) FROM booking_requests").await > 200
        })
        .await;
        let _ = all.0.kill();
        let _ = all.0.wait();
    };
    let ((before, failed), ()) = tokio::join!(load(&base, event, &users, 1500, true), killer);
    assert!(failed > 0, "the crash happened during the load");
    assert_exactly_once(&db, &before).await;

    // Restarted, it serves again; retrying with the same keys books nothing twice.
    let _all = spawn("all", &envs);
    wait_healthy(&client, &base).await;
    let (after, _) = load(&base, event, &users, 1500, true).await;
    assert!(
        before.is_subset(&after),
        "a retried request returns the first outcome"
    );
    assert_exactly_once(&db, &after).await;
}

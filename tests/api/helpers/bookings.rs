//! Booking fixtures: the two transports, a test app on each, booking calls and bodies, and the
//! seat invariants checked in PostgreSQL.

use atomicseats::users::domain::Role;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::helpers::events::event_body;

impl TestApp {
    pub async fn book(
        &self,
        token: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/api/events/book"))
            .bearer_auth(token)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    pub async fn cancel_booking(&self, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .delete(self.url("/api/events/book"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Users inserted directly (fast), with access tokens.
    pub async fn many_users(&self, n: usize) -> Vec<(i64, String)> {
        let c = self.db.client().await;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let rows = c
            .query(
                "INSERT INTO users (username, name, email, password_hash, role) \
                 SELECT 'bulk' || $1 || '_' || g, 'Buyer', 'bulk' || $1 || '_' || g || '@example.com', 'x', 'guest' \
                 FROM generate_series(1, $2::int) g RETURNING id",
                &[&tag[..8].to_owned(), &(n as i32)],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                let id: i64 = r.get(0);
                (
                    id,
                    self.state
                        .tokens()
                        .issue_access(id, Role::Guest)
                        .unwrap()
                        .token,
                )
            })
            .collect()
    }
}

pub fn book_body(event: i64, seats: i64) -> Value {
    json!({ "eventId": event, "numberOfSeats": seats })
}

/// Invariant 1 and its companions: reserved_seats = Σ held + confirmed seats ≤ capacity, per
/// event; each ticket type's `sold` = its held + confirmed seats ≤ its quota.
pub async fn assert_seat_invariants(app: &TestApp) {
    let c = app.db.client().await;
    let types = c
        .query(
            "SELECT t.id, t.sold, t.quota, COALESCE((SELECT SUM(seats) FROM bookings b \
                WHERE b.event_id = t.event_id AND b.status IN ('confirmed', 'held') \
                  AND (b.ticket_type_id = t.id OR (b.ticket_type_id IS NULL AND t.is_default))), 0)::INT \
             FROM ticket_types t JOIN events e ON e.id = t.event_id AND e.status = 'active'",
            &[],
        )
        .await
        .unwrap();
    for r in types {
        let (id, sold, quota, booked): (i64, i32, Option<i32>, i32) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert_eq!(
            sold, booked,
            "ticket type {id}: sold must equal its booked seats"
        );
        assert!(
            quota.is_none_or(|q| sold <= q),
            "ticket type {id}: oversold its quota"
        );
    }
    let rows = c
        .query(
            "SELECT e.id, e.capacity, e.reserved_seats, \
                    COALESCE((SELECT SUM(seats) FROM bookings b WHERE b.event_id = e.id AND b.status IN ('confirmed', 'held')), 0)::INT \
             FROM events e",
            &[],
        )
        .await
        .unwrap();
    for r in rows {
        let (id, capacity, reserved, confirmed): (i64, i32, i32, i32) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert_eq!(
            reserved, confirmed,
            "event {id}: reserved_seats must equal confirmed seats"
        );
        assert!(
            reserved <= capacity,
            "event {id}: oversold {reserved} > {capacity}"
        );
    }
}

/// Which queue carries the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Memory,
    Kafka,
}

/// A test app on `transport` (Kafka: the loopback Tansu broker, topics and group of its own).
pub async fn app_on(transport: Transport) -> TestApp {
    match transport {
        Transport::Memory => TestApp::builder().spawn().await,
        Transport::Kafka => kafka_builder().spawn().await,
    }
}

/// A builder for an app on the loopback Kafka broker with topics and groups of its own.
pub fn kafka_builder() -> crate::helpers::TestAppBuilder {
    {
        {
            let tag = uuid::Uuid::new_v4().simple().to_string();
            TestApp::builder()
                .env("ATOMICSEATS__QUEUE__KIND", "kafka")
                .env(
                    "KAFKA_BROKER",
                    &std::env::var("KAFKA_BROKER").unwrap_or_else(|_| "127.0.0.1:9092".to_owned()),
                )
                .env("ATOMICSEATS__KAFKA__TOPIC_SUFFIX", &format!(".t{tag}"))
                .env("ATOMICSEATS__KAFKA__GROUP_ID", &format!("booking-{tag}"))
                .env("ATOMICSEATS__KAFKA__PARTITIONS", "3")
                .env(
                    "ATOMICSEATS__KAFKA__NOTIFY_GROUP_ID",
                    &format!("notify-{tag}"),
                )
        }
    }
}

/// Runs a transport-parametrised test on both transports.
macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(super::Transport::Memory).await;
            }
            #[tokio::test]
            async fn kafka() {
                super::$name(super::Transport::Kafka).await;
            }
        }
    )*};
}
pub(crate) use both_transports;

pub const WAIT: [(&str, &str); 1] = [("prefer", "wait=20")];

pub async fn setup(transport: Transport, capacity: i64) -> (TestApp, String, i64) {
    let app = app_on(transport).await;
    let host = app.user_unlimited(Role::Host).await;
    let id = app
        .create_event(&host, &event_body("Flash sale", 5, capacity))
        .await;
    (app, host, id)
}

/// The request id a booking answer names (header on every answer, rejections included).
pub fn request_id_header(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-booking-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .expect("x-booking-request-id")
}

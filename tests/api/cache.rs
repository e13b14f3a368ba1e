//! Cache coherence (in-process and Redis), Redis outages, and reconciliation repairing the cache.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atomicseats::users::domain::Role;
use deadpool_redis::redis;
use serde_json::{Value, json};

use crate::helpers::events::{book_directly, event_body};
use crate::helpers::{TestApp, json_with_status};

/// A redis-server of this test's own, on a free port, stopped on drop.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Self { port, child: None };
        r.resume();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The public listing as PostgreSQL sees it.
async fn listing_from_sql(app: &TestApp) -> Vec<(i64, String, i32, i32)> {
    app.db
        .client()
        .await
        .query(
            "SELECT id, name, capacity, reserved_seats FROM events WHERE status = 'active' ORDER BY starts_at, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn project(items: &[Value]) -> Vec<(i64, String, i32, i32)> {
    items
        .iter()
        .map(|e| {
            (
                e["id"].as_i64().unwrap(),
                e["name"].as_str().unwrap().to_owned(),
                e["capacity"].as_i64().unwrap() as i32,
                e["reservedSeats"].as_i64().unwrap() as i32,
            )
        })
        .collect()
}

/// After the worker's commit it writes the fresh row to the cache; tests do the same.
async fn refresh_cache(app: &TestApp, id: i64) {
    let mut conn = app.state.db().get().await.unwrap();
    let e = atomicseats::events::model::Event::find(&mut conn, id)
        .await
        .unwrap()
        .unwrap();
    app.state.event_cache().put(&e).await;
}

async fn coherent_after_writes(app: &TestApp) {
    let host = app.user_unlimited(Role::Host).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let buyer_id = app.state.tokens().verify_access(&buyer).unwrap().id;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            app.create_event(&host, &event_body(&format!("E{i}"), 1 + i % 3, 20))
                .await,
        );
    }
    // Build the cache (start-up does this) so listings are served from it.
    atomicseats::reconcile::run_once(&app.state).await.unwrap();
    assert_eq!(
        project(&app.list_all("", 3).await),
        listing_from_sql(app).await
    );

    // Writes through the API keep it coherent.
    app.post_as(
        "/api/events/update",
        &host,
        &json!({ "id": ids[0], "name": "Renamed", "capacity": 30 }),
    )
    .await;
    app.post_as("/api/events/update", &host, &json!({ "id": ids[1], "startsAt": (chrono::Utc::now() + chrono::Duration::days(9)).to_rfc3339(), "endsAt": (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339() })).await;
    app.post_as("/api/events/delete", &host, &json!({ "id": ids[2] }))
        .await;
    book_directly(app, ids[3], buyer_id, 5).await;
    refresh_cache(app, ids[3]).await;
    book_directly(app, ids[4], buyer_id, 2).await;
    refresh_cache(app, ids[4]).await;
    app.post_as("/api/events/delete", &host, &json!({ "id": ids[4] }))
        .await;
    app.create_event(&host, &event_body("Late addition", 2, 5))
        .await;

    let listed = project(&app.list_all("", 2).await);
    assert_eq!(listed, listing_from_sql(app).await);
    assert_eq!(listed.len(), 6);
    let single = json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{}", ids[3])))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(single["data"]["reservedSeats"], 5);
    json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{}", ids[2])))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn in_process_cache_stays_coherent_with_postgres() {
    let app = TestApp::spawn().await;
    assert_eq!(app.state.event_cache().kind(), "memory");
    coherent_after_writes(&app).await;
}

#[tokio::test]
async fn redis_cache_stays_coherent_with_postgres() {
    let redis = PrivateRedis::start();
    let app = TestApp::builder()
        .env("ATOMICSEATS__REDIS__URL", &redis.url())
        .spawn()
        .await;
    assert_eq!(app.state.event_cache().kind(), "redis");
    coherent_after_writes(&app).await;
}

#[tokio::test]
async fn listings_come_from_the_cache_once_it_is_built() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let id = app.create_event(&host, &event_body("Cached", 3, 10)).await;
    atomicseats::reconcile::run_once(&app.state).await.unwrap();
    // Change the row behind the cache's back: the listing still shows the cached snapshot...
    app.db
        .client()
        .await
        .execute(
            "UPDATE events SET name = 'Changed in SQL' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(app.list_all("", 10).await[0]["name"], "Cached");
    // ...until reconciliation repairs it in place.
    let report = atomicseats::reconcile::run_once(&app.state).await.unwrap();
    assert_eq!(report.cache_written, 1);
    assert_eq!(app.list_all("", 10).await[0]["name"], "Changed in SQL");
}

#[tokio::test]
async fn a_stopped_redis_degrades_to_postgres_and_recovers() {
    let mut redis = PrivateRedis::start();
    let app = TestApp::builder()
        .env("ATOMICSEATS__REDIS__URL", &redis.url())
        .env("ATOMICSEATS__REDIS__TIMEOUT_MS", "300")
        .spawn()
        .await;
    let host = app.user_unlimited(Role::Host).await;
    let id = app
        .create_event(&host, &event_body("Resilient", 3, 10))
        .await;
    atomicseats::reconcile::run_once(&app.state).await.unwrap();

    redis.stop();
    // Reads fall back to PostgreSQL, writes still succeed (the cache write fails and is logged).
    assert_eq!(
        project(&app.list_all("", 10).await),
        listing_from_sql(&app).await
    );
    json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{id}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": id, "name": "Changed during outage" }),
        )
        .await,
        200,
    )
    .await;
    let second = app
        .create_event(&host, &event_body("Born during outage", 4, 10))
        .await;
    let during = app.list_all("", 10).await;
    assert_eq!(project(&during), listing_from_sql(&app).await);
    assert!(app.state.event_cache().is_dirty());
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "readiness reports the Redis outage");

    // Back up (empty: it kept nothing): the dirty cache is not trusted until rebuilt.
    redis.resume();
    assert_eq!(
        project(&app.list_all("", 10).await),
        listing_from_sql(&app).await
    );
    atomicseats::reconcile::run_once(&app.state).await.unwrap();
    assert!(!app.state.event_cache().is_dirty());
    let after = project(&app.list_all("", 10).await);
    assert_eq!(after, listing_from_sql(&app).await);
    assert!(after.iter().any(|e| e.0 == second));
}

#[tokio::test]
async fn reconciliation_repairs_tampered_deleted_and_stale_redis_keys() {
    let redis = PrivateRedis::start();
    let prefix = "atomicseats";
    let app = TestApp::builder()
        .env("ATOMICSEATS__REDIS__URL", &redis.url())
        .spawn()
        .await;
    let host = app.user_unlimited(Role::Host).await;
    let a = app.create_event(&host, &event_body("A", 2, 10)).await;
    let b = app.create_event(&host, &event_body("B", 3, 10)).await;
    let c = app.create_event(&host, &event_body("C", 4, 10)).await;
    atomicseats::reconcile::run_once(&app.state).await.unwrap();
    let mut r = redis.conn().await;

    // Tamper with A (wrong seats, even a higher version), delete B's key, plant a stale event.
    let mut forged: Value = serde_json::from_str(
        &redis::cmd("HGET")
            .arg(format!("{prefix}:event:{a}"))
            .arg("json")
            .query_async::<String>(&mut r)
            .await
            .unwrap(),
    )
    .unwrap();
    forged["reserved_seats"] = json!(9);
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}:event:{a}"))
        .arg("v")
        .arg(1000)
        .arg("json")
        .arg(forged.to_string())
        .query_async(&mut r)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}:event:{b}"))
        .query_async(&mut r)
        .await
        .unwrap();
    let mut stale = forged.clone();
    stale["id"] = json!(424_242);
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}:event:424242"))
        .arg("v")
        .arg(1)
        .arg("json")
        .arg(stale.to_string())
        .query_async(&mut r)
        .await
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(format!("{prefix}:events:by_start"))
        .arg(1)
        .arg(format!("{:020}", 424_242))
        .query_async(&mut r)
        .await
        .unwrap();
    // While tampered, the listing notices the missing entry and answers from PostgreSQL.
    assert_eq!(
        project(&app.list_all("", 10).await),
        listing_from_sql(&app).await
    );

    let report = atomicseats::reconcile::run_once(&app.state).await.unwrap();

    assert!(report.cache_written >= 2, "{report:?}");
    assert!(report.cache_removed >= 1, "{report:?}");
    let fixed: Value = serde_json::from_str(
        &redis::cmd("HGET")
            .arg(format!("{prefix}:event:{a}"))
            .arg("json")
            .query_async::<String>(&mut r)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(fixed["reserved_seats"], 0);
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}:event:{b}"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(exists, "B's key is rebuilt");
    let stale_left: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}:event:424242"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(!stale_left, "the stale key is gone");
    let listed = project(&app.list_all("", 10).await);
    assert_eq!(listed, listing_from_sql(&app).await);
    assert_eq!(
        listed.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![a, b, c]
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(
        keys.iter().all(|k| k.starts_with("atomicseats:")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn reconciliation_reports_counter_drift_injected_with_sql() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let buyer_id = app.state.tokens().verify_access(&buyer).unwrap().id;
    let ok = app.create_event(&host, &event_body("Fine", 2, 10)).await;
    let bad = app.create_event(&host, &event_body("Drifted", 3, 10)).await;
    book_directly(&app, ok, buyer_id, 3).await;
    book_directly(&app, bad, buyer_id, 3).await;
    assert!(
        atomicseats::reconcile::run_once(&app.state)
            .await
            .unwrap()
            .drift
            .is_empty()
    );

    app.db
        .client()
        .await
        .execute(
            "UPDATE events SET reserved_seats = 7 WHERE id = $1",
            &[&bad],
        )
        .await
        .unwrap();
    let report = atomicseats::reconcile::run_once(&app.state).await.unwrap();

    assert_eq!(report.drift.len(), 1);
    assert_eq!(report.drift[0].event_id, bad);
    assert_eq!(report.drift[0].reserved_seats, 7);
    assert_eq!(report.drift[0].confirmed_seats, 3);
    let metrics = app.metrics().await;
    assert!(metrics.contains("reconcile_drift_events"), "{metrics}");
}

#[tokio::test]
async fn the_reconcile_command_exits_non_zero_on_drift() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let id = app.create_event(&host, &event_body("Drifted", 3, 10)).await;
    app.db
        .client()
        .await
        .execute("UPDATE events SET reserved_seats = 2 WHERE id = $1", &[&id])
        .await
        .unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_atomicseats"))
        .arg("reconcile")
        .env_clear()
        .env("ATOMICSEATS_CONFIG_DIR", crate::helpers::config_dir())
        .env("DATABASE_URL", app.db.url())
        .env("ATOMICSEATS__LOG__LEVEL", "error")
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "event {id}: reserved_seats = 2, confirmed seats = 0"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn reconciliation_runs_safely_while_events_change() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.create_event(&host, &event_body(&format!("Busy {i}"), 2 + i, 1000))
                .await,
        );
    }
    let writers = async {
        for round in 0..20 {
            for id in &ids {
                let resp = app
                    .post_as("/api/events/update", &host, &json!({ "id": id, "capacity": 1000 + round, "name": format!("Busy {id} r{round}") }))
                    .await;
                assert_eq!(resp.status(), 200);
            }
        }
    };
    let reconciler = async {
        for _ in 0..10 {
            atomicseats::reconcile::run_once(&app.state).await.unwrap();
        }
    };
    tokio::join!(writers, reconciler);
    atomicseats::reconcile::run_once(&app.state).await.unwrap();

    assert_eq!(
        project(&app.list_all("", 2).await),
        listing_from_sql(&app).await
    );
}

/// Rewrites event `id`'s snapshot in Redis behind the process's back (as another node, or
/// tampering, would): `change` edits the JSON; the stored version follows the JSON's.
async fn rewrite_snapshot(redis: &PrivateRedis, id: i64, change: impl FnOnce(&mut Value)) {
    let key = format!("atomicseats:event:{id}");
    let mut r = redis.conn().await;
    let mut snapshot: Value = serde_json::from_str(
        &redis::cmd("HGET")
            .arg(&key)
            .arg("json")
            .query_async::<String>(&mut r)
            .await
            .unwrap(),
    )
    .unwrap();
    change(&mut snapshot);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("v")
        .arg(snapshot["version"].as_i64().unwrap())
        .arg("json")
        .arg(snapshot.to_string())
        .query_async(&mut r)
        .await
        .unwrap();
}

/// `GET /api/events/{id}`'s name.
async fn name_of(app: &TestApp, id: i64) -> String {
    let body = json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{id}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    body["data"]["name"].as_str().unwrap().to_owned()
}

/// A node on a private Redis with `redis.near_cache_ms` = `near_ms`, a host's token and an
/// event named `name` it has read once.
async fn node_with_near_window(near_ms: &str, name: &str) -> (PrivateRedis, TestApp, String, i64) {
    let redis = PrivateRedis::start();
    let app = TestApp::builder()
        .env("ATOMICSEATS__REDIS__URL", &redis.url())
        .env("ATOMICSEATS__REDIS__NEAR_CACHE_MS", near_ms)
        .spawn()
        .await;
    let host = app.user_unlimited(Role::Host).await;
    let id = app.create_event(&host, &event_body(name, 3, 10)).await;
    assert_eq!(name_of(&app, id).await, name);
    (redis, app, host, id)
}

#[tokio::test]
async fn a_node_reuses_its_redis_snapshot_briefly_and_sees_its_own_writes_at_once() {
    let (redis, app, host, id) = node_with_near_window("2000", "Near").await;

    // This node's own write is read back at once, not after the window.
    json_with_status(
        app.post_as(
            "/api/events/update",
            &host,
            &json!({ "id": id, "name": "Renamed here" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(name_of(&app, id).await, "Renamed here");

    // Another node's write (a newer snapshot stored in Redis, as its upsert does): this node
    // keeps answering from the snapshot it holds, without asking Redis...
    rewrite_snapshot(&redis, id, |e| {
        e["version"] = json!(e["version"].as_i64().unwrap() + 1);
        e["name"] = json!("Renamed elsewhere");
    })
    .await;
    let written = Instant::now();
    assert_eq!(name_of(&app, id).await, "Renamed here");
    assert!(
        written.elapsed() < Duration::from_millis(1500),
        "the read above must fall inside the window to mean anything"
    );
    // ...and sees it once the window has passed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(name_of(&app, id).await, "Renamed elsewhere");

    // A deletion on this node is seen at once too.
    app.post_as("/api/events/delete", &host, &json!({ "id": id }))
        .await;
    json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{id}")))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn without_a_near_window_every_read_asks_redis() {
    let (redis, app, _, id) = node_with_near_window("0", "Direct").await;
    rewrite_snapshot(&redis, id, |e| e["name"] = json!("Changed in Redis")).await;
    assert_eq!(name_of(&app, id).await, "Changed in Redis");
}

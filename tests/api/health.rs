//! `/health`, `/ready` and `/metrics`.

use crate::helpers::{TestApp, json_with_status};

#[tokio::test]
async fn health_answers_with_the_seed_body_and_a_request_id() {
    let app = TestApp::spawn().await;

    let resp = app.client.get(app.url("/health")).send().await.unwrap();

    assert!(resp.headers().contains_key("x-request-id"));
    let body = json_with_status(resp, 200).await;
    assert_eq!(body["status"], "OK");
    assert_eq!(body["message"], "AtomicSeats API is running");
    let ts = body["timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
        "timestamp {ts}"
    );
}

#[tokio::test]
async fn ready_is_200_when_postgres_answers() {
    let app = TestApp::spawn().await;

    let resp = app.client.get(app.url("/ready")).send().await.unwrap();

    let body = json_with_status(resp, 200).await;
    assert_eq!(body["statusCode"], 200);
    assert_eq!(body["data"]["checks"]["postgres"], "ok");
    assert_eq!(body["data"]["checks"]["redis"], "not configured");
    // Connections are tagged with the role and carry the statement timeout.
    let pool_conn = app.state.db().get().await.unwrap();
    drop(pool_conn);
    let tagged: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'atomicseats-test' \
             AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(tagged >= 1, "pooled connections carry application_name");
}

#[tokio::test]
async fn ready_is_503_naming_postgres_when_it_is_unreachable() {
    // Port 1 on loopback: nothing listens there.
    let app = TestApp::builder()
        .env(
            "ATOMICSEATS__DATABASE__URL",
            "postgres://postgres@127.0.0.1:1/nothing",
        )
        .env("ATOMICSEATS__DATABASE__CONNECT_TIMEOUT_MS", "500")
        .env("ATOMICSEATS__DATABASE__WAIT_TIMEOUT_MS", "500")
        .spawn()
        .await;

    let resp = app.client.get(app.url("/ready")).send().await.unwrap();

    let body = json_with_status(resp, 503).await;
    assert_eq!(body["code"], "not_ready");
    assert_eq!(body["errors"][0]["field"], "postgres");
    assert!(body["message"].as_str().unwrap().contains("postgres"));
}

#[tokio::test]
async fn ready_checks_redis_when_configured() {
    let ok = TestApp::builder()
        .env("ATOMICSEATS__REDIS__URL", "redis://127.0.0.1:6379")
        .spawn()
        .await;
    let body = json_with_status(ok.client.get(ok.url("/ready")).send().await.unwrap(), 200).await;
    assert_eq!(body["data"]["checks"]["redis"], "ok");

    let down = TestApp::builder()
        .env("ATOMICSEATS__REDIS__URL", "redis://127.0.0.1:1")
        .env("ATOMICSEATS__REDIS__TIMEOUT_MS", "500")
        .spawn()
        .await;
    let body = json_with_status(
        down.client.get(down.url("/ready")).send().await.unwrap(),
        503,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "redis");
    assert_eq!(
        body["data"],
        serde_json::Value::Null,
        "errors use the error envelope"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = TestApp::spawn().await;
    app.client.get(app.url("/health")).send().await.unwrap();
    app.client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();

    let text = app.metrics().await;

    assert!(text.contains("http_requests_total{"), "{text}");
    assert!(text.contains(r#"route="/health""#), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        !text.contains("/no/such/route"),
        "raw paths must not become labels"
    );
}

#[tokio::test]
async fn metrics_on_the_public_port_need_the_metrics_token() {
    let app = TestApp::spawn().await;

    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();

    let body = json_with_status(anonymous, 401).await;
    assert_eq!(body["code"], "unauthorized", "{body}");
    json_with_status(wrong, 401).await;
    assert!(app.metrics().await.contains("http_requests_total"));
}

#[tokio::test]
async fn metrics_without_a_token_are_not_served_on_the_public_port() {
    let app = TestApp::builder()
        .env("ATOMICSEATS__METRICS__TOKEN", "")
        .spawn()
        .await;

    let resp = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("")
        .send()
        .await
        .unwrap();

    let body = json_with_status(resp, 403).await;
    assert!(
        body["message"].as_str().unwrap().contains("metrics.listen"),
        "{body}"
    );
}

#[tokio::test]
async fn every_role_can_serve_metrics_on_the_internal_listener() {
    // A free loopback port for the listener.
    let port = crate::helpers::free_port();
    let listen = format!("127.0.0.1:{port}");
    let app = TestApp::builder()
        .env("ATOMICSEATS__METRICS__LISTEN", &listen)
        .spawn()
        .await;
    // What a worker role runs (`roles::with_metrics`), without the API.
    let listener = tokio::spawn(atomicseats::http::metrics::run_listener(
        app.state.clone(),
        app.shutdown.clone(),
    ));
    app.client.get(app.url("/health")).send().await.unwrap();

    let mut text = String::new();
    for _ in 0..50 {
        if let Ok(resp) = app
            .client
            .get(format!("http://{listen}/metrics"))
            .send()
            .await
        {
            assert_eq!(resp.status(), 200);
            text = resp.text().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let other = app
        .client
        .get(format!("http://{listen}/api/events/all"))
        .send()
        .await
        .unwrap();

    assert!(text.contains("http_requests_total"), "{text}");
    assert_eq!(other.status(), 404, "the listener serves /metrics only");
    app.shutdown.cancel();
    listener.await.unwrap().unwrap();
}

#[tokio::test]
async fn documented_metrics_exist_from_start_up_and_are_in_the_api_reference() {
    use atomicseats::http::metrics::{COUNTERS, GAUGES, HISTOGRAMS};
    let app = TestApp::spawn().await;
    let reference = include_str!("../../docs/api.md");

    let text = app.metrics().await;

    for name in COUNTERS
        .iter()
        .chain(GAUGES)
        .chain(HISTOGRAMS)
        .chain(&["booking_decisions_total"])
    {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} is not exported before first use:\n{text}"
        );
        assert!(
            reference.contains(name),
            "{name} is not documented in docs/api.md"
        );
    }
}

/// Operations #17: a booking worker's listener says which partitions it owns (`GET /ready`)
/// and exports them as `booking_partition_owned`.
#[tokio::test]
async fn a_kafka_worker_reports_the_partitions_it_owns() {
    let port = crate::helpers::free_port();
    let listen = format!("127.0.0.1:{port}");
    let app = crate::helpers::bookings::kafka_builder()
        .env("ATOMICSEATS__METRICS__LISTEN", &listen)
        .spawn()
        .await;
    let listener = tokio::spawn(atomicseats::http::metrics::run_listener(
        app.state.clone(),
        app.shutdown.clone(),
    ));

    let mut owned = Vec::new();
    for _ in 0..200 {
        if let Ok(resp) = app
            .client
            .get(format!("http://{listen}/ready"))
            .send()
            .await
        {
            let body: serde_json::Value = resp.json().await.unwrap();
            owned = body["data"]["bookingPartitions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if owned.len() == 3 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let metrics = app
        .client
        .get(format!("http://{listen}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // The test apps' topics have 3 partitions; the only worker owns them all.
    assert_eq!(owned.len(), 3, "{owned:?}");
    assert!(owned.iter().all(|p| p["lag"].is_u64()), "{owned:?}");
    for p in 0..3 {
        assert!(
            metrics.contains(&format!("booking_partition_owned{{partition=\"{p}\"}} 1")),
            "{metrics}"
        );
    }
    assert!(metrics.contains("booking_partitions_total 3"), "{metrics}");
    app.shutdown.cancel();
    listener.await.unwrap().unwrap();
}

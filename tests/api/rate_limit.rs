//! Rate limits, in-process and on Redis: exactly the limit passes under concurrency, headers
//! are present, buckets are independent, `X-Forwarded-For` only counts from trusted proxies.

use atomicseats::users::domain::Role;
use serde_json::json;

use crate::helpers::{TestApp, TestAppBuilder};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Redis,
}

fn limited(backend: Backend) -> TestAppBuilder {
    let builder = TestApp::builder()
        .env("ATOMICSEATS__RATE_LIMIT__ENABLED", "true")
        .env("ATOMICSEATS__RATE_LIMIT__AUTH", "3")
        .env("ATOMICSEATS__RATE_LIMIT__WRITE", "2");
    match backend {
        Backend::Memory => builder,
        Backend::Redis => builder
            .env("ATOMICSEATS__REDIS__URL", "redis://127.0.0.1:6379")
            // A private key space per test: parallel tests share the one Redis.
            .env(
                "ATOMICSEATS__REDIS__KEY_PREFIX",
                &format!("test-{}", uuid::Uuid::new_v4().simple()),
            ),
    }
}

async fn login_attempt(app: &TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/user/login"))
        .json(&json!({ "email": "nobody@example.com", "password": "whatever-it-is" }));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.unwrap()
}

async fn exactly_the_limit_passes_under_concurrency(backend: Backend) {
    let app = limited(backend).spawn().await;

    let responses =
        futures_util::future::join_all((0..12).map(|_| login_attempt(&app, None))).await;

    let passed = responses.iter().filter(|r| r.status() == 401).count();
    let limited: Vec<_> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(
        passed, 3,
        "{backend:?}: exactly the limit reaches the handler"
    );
    assert_eq!(limited.len(), 9, "{backend:?}");
    for r in &limited {
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=60).contains(&retry),
            "{backend:?}: Retry-After {retry}"
        );
        assert_eq!(r.headers()["ratelimit-limit"], "3");
        assert_eq!(r.headers()["ratelimit-remaining"], "0");
        assert!(r.headers().contains_key("ratelimit-reset"));
    }
    let ok = responses.iter().find(|r| r.status() == 401).unwrap();
    assert_eq!(ok.headers()["ratelimit-limit"], "3");
    let body: serde_json::Value = login_attempt(&app, None).await.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["statusCode"], 429);
}

#[tokio::test]
async fn in_process_limit_holds_under_concurrency() {
    exactly_the_limit_passes_under_concurrency(Backend::Memory).await;
}

#[tokio::test]
async fn redis_limit_holds_under_concurrency() {
    exactly_the_limit_passes_under_concurrency(Backend::Redis).await;
}

#[tokio::test]
async fn redis_limits_are_shared_by_api_nodes() {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let node = |prefix: String| {
        TestApp::builder()
            .env("ATOMICSEATS__RATE_LIMIT__ENABLED", "true")
            .env("ATOMICSEATS__RATE_LIMIT__AUTH", "4")
            .env("ATOMICSEATS__REDIS__URL", "redis://127.0.0.1:6379")
            .env("ATOMICSEATS__REDIS__KEY_PREFIX", &prefix)
            .spawn()
    };
    let a = node(prefix.clone()).await;
    let b = node(prefix).await;

    let mut statuses = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { &a } else { &b };
        statuses.push(login_attempt(app, None).await.status().as_u16());
    }

    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        4,
        "{statuses:?}"
    );
}

async fn buckets_are_independent(backend: Backend) {
    let app = limited(backend).spawn().await;
    let admin = app.user_unlimited(Role::Admin).await;
    let other_admin = app.user_unlimited(Role::Admin).await;
    let guest_id: i64 = {
        let token = app.user_unlimited(Role::Guest).await;
        app.state.tokens().verify_access(&token).unwrap().id
    };
    // Exhaust the auth bucket of this IP.
    for _ in 0..3 {
        login_attempt(&app, None).await;
    }
    assert_eq!(login_attempt(&app, None).await.status(), 429);

    // The write class is a different bucket, and per user.
    let patch = |token: String| {
        let app = &app;
        let id = guest_id;
        async move {
            app.client
                .patch(app.url(&format!("/api/admin/users/{id}")))
                .bearer_auth(token)
                .json(&json!({ "role": "guest" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(patch(admin.clone()).await, 200);
    assert_eq!(patch(admin.clone()).await, 200);
    assert_eq!(
        patch(admin.clone()).await,
        429,
        "{backend:?}: the admin's own write bucket is empty"
    );
    assert_eq!(
        patch(other_admin).await,
        200,
        "{backend:?}: another user's bucket is untouched"
    );
}

#[tokio::test]
async fn in_process_buckets_are_independent() {
    buckets_are_independent(Backend::Memory).await;
}

#[tokio::test]
async fn redis_buckets_are_independent() {
    buckets_are_independent(Backend::Redis).await;
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let untrusted = limited(Backend::Memory).spawn().await;
    for i in 0..3 {
        login_attempt(&untrusted, Some(&format!("203.0.113.{i}"))).await;
    }
    assert_eq!(
        login_attempt(&untrusted, Some("203.0.113.99"))
            .await
            .status(),
        429,
        "a client cannot escape its bucket by inventing X-Forwarded-For"
    );

    let behind_proxy = limited(Backend::Memory)
        .env("ATOMICSEATS__RATE_LIMIT__TRUSTED_PROXIES", "127.0.0.1")
        .spawn()
        .await;
    for _ in 0..3 {
        login_attempt(&behind_proxy, Some("203.0.113.1")).await;
    }
    assert_eq!(
        login_attempt(&behind_proxy, Some("203.0.113.1"))
            .await
            .status(),
        429
    );
    assert_eq!(
        login_attempt(&behind_proxy, Some("198.51.100.7, 203.0.113.2"))
            .await
            .status(),
        401,
        "another client behind the proxy has its own bucket"
    );
}

#[tokio::test]
async fn a_class_with_limit_zero_is_off() {
    let app = limited(Backend::Memory)
        .env("ATOMICSEATS__RATE_LIMIT__AUTH", "0")
        .spawn()
        .await;
    for _ in 0..10 {
        let resp = login_attempt(&app, None).await;
        assert_eq!(resp.status(), 401);
        assert!(!resp.headers().contains_key("ratelimit-limit"));
    }
}

/// Stripe's webhook is limited per client IP (`rate_limit.webhook`): a flood of forged calls
/// is refused with 429 before any signature is computed, and counted.
#[tokio::test]
async fn the_payment_webhook_is_limited_per_client_ip() {
    let stripe = crate::helpers::stripe::LocalStripe::start().await;
    let app = crate::helpers::checkout::with_stripe(limited(Backend::Memory), &stripe)
        .env("ATOMICSEATS__RATE_LIMIT__WEBHOOK", "3")
        .spawn()
        .await;
    let forged = |n: usize| {
        app.client
            .post(app.url("/api/payments/stripe/webhook"))
            .header("content-type", "application/json")
            .header(
                "stripe-signature",
                format!(
                    "t={},{}",
                    chrono::Utc::now().timestamp(),
                    "v1=00,".repeat(n)
                ),
            )
            .body("{}")
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(forged(4).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 429, 429]);
    // Every signature listed is not one more MAC: past the cap the header is malformed.
    let other = crate::helpers::checkout::with_stripe(limited(Backend::Memory), &stripe)
        .spawn()
        .await;
    let resp = other
        .client
        .post(other.url("/api/payments/stripe/webhook"))
        .header(
            "stripe-signature",
            format!(
                "t={},{}",
                chrono::Utc::now().timestamp(),
                "v1=00,".repeat(100)
            ),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    let body = crate::helpers::json_with_status(resp, 400).await;
    assert!(
        body["message"].as_str().unwrap().contains("malformed"),
        "{body}"
    );
}

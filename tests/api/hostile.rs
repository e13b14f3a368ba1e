//! Hostile input and slow clients: every case gets a clear 4xx (never a 5xx), the server stays
//! up, and the protective headers are on every answer.

use std::time::{Duration, Instant};

use atomicseats::http::auth::{ACCESS_AUDIENCE, ISSUER, RoleClaim};
use atomicseats::users::domain::Role;
use jwt_simple::prelude::{Claims, HS512Key, MACLike};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::events::event_body;
use crate::helpers::{TestApp, json_with_status};

async fn slow_handler() -> actix_web::HttpResponse {
    tokio::time::sleep(Duration::from_secs(3)).await;
    actix_web::HttpResponse::Ok().finish()
}

async fn app() -> TestApp {
    TestApp::builder()
        .env("ATOMICSEATS__HTTP__REQUEST_TIMEOUT_MS", "400")
        .env("ATOMICSEATS__HTTP__CLIENT_REQUEST_TIMEOUT_MS", "1000")
        .routes(|cfg| {
            cfg.service(atomicseats::http::resource("/probe/slow").get(slow_handler));
        })
        .spawn()
        .await
}

/// Sends raw bytes on a fresh connection and reads the answer (until close or 3 s).
async fn raw(app: &TestApp, parts: &[(&[u8], Duration)]) -> String {
    let addr = app.address.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    for (bytes, pause) in parts {
        if s.write_all(bytes).await.is_err() {
            break;
        }
        tokio::time::sleep(*pause).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = app().await;
    let token = app.user_unlimited(Role::Guest).await;
    for resp in [
        app.client.get(app.url("/health")).send().await.unwrap(),
        app.client.get(app.url("/nope")).send().await.unwrap(),
        app.get_as("/api/user/bookings?limit=0", &token).await,
        app.client
            .put(app.url("/api/events/all"))
            .send()
            .await
            .unwrap(),
    ] {
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert!(
            h.get("access-control-allow-origin").is_none(),
            "no CORS by default"
        );
    }
}

#[tokio::test]
async fn cors_follows_the_allow_list() {
    let app = TestApp::builder()
        .env(
            "ATOMICSEATS__HTTP__CORS_ALLOWED_ORIGINS",
            "https://shop.example.com",
        )
        .spawn()
        .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/events/book"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    let ok = preflight("https://shop.example.com").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let evil = preflight("https://evil.example.net").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    // A plain request from the allowed origin gets the header and the exposed headers.
    let resp = app
        .client
        .get(app.url("/api/events/all"))
        .header("origin", "https://shop.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert!(
        resp.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("x-request-id")
    );
    // Another origin is served (not an error) but without CORS headers: the browser blocks it.
    let resp = app
        .client
        .get(app.url("/api/events/all"))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn slow_clients_get_408_and_slow_handlers_503() {
    let app = app().await;
    // Slow-loris head: a header line every 300 ms never completes within 1 s.
    let started = Instant::now();
    let head = raw(
        &app,
        &[
            (b"GET /health HTTP/1.1\r\n", Duration::from_millis(300)),
            (b"Host: x\r\n", Duration::from_millis(300)),
            (b"X-A: 1\r\n", Duration::from_millis(300)),
            (b"X-B: 1\r\n", Duration::from_millis(300)),
            (b"X-C: 1\r\n", Duration::from_millis(300)),
            (b"X-D: 1\r\n", Duration::from_millis(300)),
        ],
    )
    .await;
    assert!(
        head.starts_with("HTTP/1.1 408") || head.is_empty(),
        "{head}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // Slow body: the head is complete, the body trickles and stops.
    let body = raw(
        &app,
        &[
            (
                b"POST /api/user/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
                Duration::from_millis(900),
            ),
        ],
    )
    .await;
    assert!(body.starts_with("HTTP/1.1 408"), "{body}");
    assert!(body.contains("request_timeout"), "{body}");
    // A handler past its deadline: 503 with Retry-After, in the envelope.
    let resp = app.client.get(app.url("/probe/slow")).send().await.unwrap();
    let status = resp.status();
    let headers = format!("{:?}", resp.headers());
    assert_eq!(status, 503, "{headers} {}", resp.text().await.unwrap());
    let resp = app.client.get(app.url("/probe/slow")).send().await.unwrap();
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
    // Still serving.
    json_with_status(
        app.client.get(app.url("/health")).send().await.unwrap(),
        200,
    )
    .await;
}

#[tokio::test]
async fn oversized_heads_are_refused_with_a_4xx() {
    let app = app().await;
    // A fresh connection per case: the server closes one after refusing its head.
    let client = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let long_header = client()
        .get(app.url("/health"))
        .header("x-long", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(long_header.status(), 431);
    let body: Value = long_header.json().await.unwrap();
    assert_eq!(body["code"], "headers_too_large");
    // Past actix's own limits (128 KiB head, 96 headers): refused or the connection closed.
    let huge_header = client()
        .get(app.url("/health"))
        .header("x-long", "a".repeat(200 * 1024))
        .send()
        .await;
    if let Ok(resp) = huge_header {
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let mut many = client().get(app.url("/health"));
    for i in 0..200 {
        many = many.header(format!("x-h{i}"), "1");
    }
    if let Ok(resp) = many.send().await {
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let long_uri = client()
        .get(app.url(&format!("/api/events/all?q={}", "a".repeat(10_000))))
        .send()
        .await
        .unwrap();
    assert_eq!(long_uri.status(), 414);
    json_with_status(client().get(app.url("/health")).send().await.unwrap(), 200).await;
}

#[tokio::test]
async fn hostile_json_gets_400s_naming_fields() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Target", 3, 100)).await;
    let post = |path: &'static str, body: String| {
        let app = &app;
        let host = host.clone();
        async move {
            app.client
                .post(app.url(path))
                .bearer_auth(host)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };

    // Deep nesting (within the body limit) and the limit itself.
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let resp = post("/api/events/book", deep).await;
    assert_eq!(resp.status(), 400);
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    assert_eq!(post("/api/events/book", deep_obj).await.status(), 400);
    let huge = format!(
        "{{\"eventId\":{event},\"pad\":\"{}\"}}",
        "x".repeat(200_000)
    );
    assert_eq!(post("/api/events/book", huge).await.status(), 413);

    // Numbers at and past the integer bounds, negative and fractional seats, wrong types.
    for (seats, field) in [
        (json!(0), "numberOfSeats"),
        (json!(-1), "numberOfSeats"),
        (json!(1.5), "numberOfSeats"),
        (json!(2_147_483_648i64), "numberOfSeats"),
        (json!(i64::MAX), "numberOfSeats"),
        (json!(u64::MAX), "numberOfSeats"),
        (json!(1e300), "numberOfSeats"),
        (json!("2"), "numberOfSeats"),
        (json!(null), "numberOfSeats"),
        (json!([2]), "numberOfSeats"),
    ] {
        let resp = post(
            "/api/events/book",
            json!({ "eventId": event, "numberOfSeats": seats }).to_string(),
        )
        .await;
        let body = json_with_status(resp, 400).await;
        assert_eq!(body["errors"][0]["field"], field, "{seats}: {body}");
    }
    for id in [
        json!(i64::MIN),
        json!(0),
        json!(-5),
        json!(9.99e18),
        json!("1"),
    ] {
        let resp = post(
            "/api/events/book",
            json!({ "eventId": id, "numberOfSeats": 1 }).to_string(),
        )
        .await;
        let body = json_with_status(resp, 400).await;
        assert_eq!(body["errors"][0]["field"], "eventId", "{id}: {body}");
    }
    for (field, value) in [
        ("capacity", json!(i64::MAX)),
        ("capacity", json!(2_147_483_648i64)),
        ("capacity", json!(-1)),
        ("price", json!(i64::MAX as f64 * 4.0)),
        ("price", json!(-1)),
        ("price", json!(12.5)),
        ("name", json!(12)),
        ("startsAt", json!(1_700_000_000_000i64)),
        ("endsAt", json!("31/12/2030")),
    ] {
        let mut body = event_body("Bounds", 3, 10);
        body[field] = value.clone();
        let resp = post("/api/events/create", body.to_string()).await;
        let got = json_with_status(resp, 400).await;
        assert_eq!(got["errors"][0]["field"], field, "{field}={value}: {got}");
    }
    // Duplicate keys: ambiguous, refused.
    let dup = format!("{{\"eventId\":{event},\"numberOfSeats\":1,\"numberOfSeats\":9}}");
    let body = json_with_status(post("/api/events/book", dup).await, 400).await;
    assert_eq!(body["errors"][0]["field"], "numberOfSeats", "{body}");

    // NUL bytes (PostgreSQL cannot store them) are a 400, not a 500; other unicode is data.
    let mut nul = event_body("Bad\u{0}name", 3, 10);
    nul["venue"] = json!("Hall");
    let body = json_with_status(post("/api/events/create", nul.to_string()).await, 400).await;
    assert_eq!(body["errors"][0]["field"], "name", "{body}");
    let mut nul_desc = event_body("Fine", 3, 10);
    nul_desc["description"] = json!("a\u{0}b");
    let body = json_with_status(post("/api/events/create", nul_desc.to_string()).await, 400).await;
    assert_eq!(body["errors"][0]["field"], "description", "{body}");
    // Names are single lines the platform emails in its own name (security #11): no line
    // breaks and no direction overrides; other unicode is data.
    for bad in [
        "Gig\r\nVerify your account at evil.example",
        "Spoof \u{202e}gpj.exe",
    ] {
        let body = json_with_status(
            post("/api/events/create", event_body(bad, 3, 10).to_string()).await,
            400,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "name", "{body}");
    }
    let fancy = "Ünïcødé 🎟️ RTL עברית \u{feff}";
    let id = app.create_event(&host, &event_body(fancy, 3, 10)).await;
    let got = json_with_status(
        app.client
            .get(app.url(&format!("/api/events/{id}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(got["data"]["name"], fancy);
    // A NUL in a login or registration is a 400 too.
    let resp = app
        .client
        .post(app.url("/api/user/register"))
        .json(&json!({ "username": "nul\u{0}user", "name": "N", "email": "n@x.io", "password": "p\u{0}ssword123" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = app
        .client
        .post(app.url("/api/user/login"))
        .json(&json!({ "email": "a\u{0}@x.io", "password": "whatever123" }))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(resp.status().as_u16(), 400 | 401),
        "{}",
        resp.status()
    );
}

#[tokio::test]
async fn tokens_of_other_algorithms_are_401() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::Admin).await;
    // The right secret, the wrong algorithm (HS512), and an RS256 header on an HS256 body.
    let claims = Claims::with_custom_claims(
        RoleClaim {
            role: Role::Admin,
            issued_ms: chrono::Utc::now().timestamp_millis(),
        },
        jwt_simple::prelude::Duration::from_mins(5),
    )
    .with_issuer(ISSUER)
    .with_audience(ACCESS_AUDIENCE)
    .with_subject(user.id);
    let hs512 = HS512Key::from_bytes(b"test-access-secret-of-at-least-32-bytes!")
        .authenticate(claims)
        .unwrap();
    let parts: Vec<&str> = user.access.split('.').collect();
    let rs_header = {
        use base64ct::{Base64UrlUnpadded, Encoding};
        Base64UrlUnpadded::encode_string(br#"{"alg":"RS256","typ":"JWT"}"#)
    };
    let rs256 = format!("{rs_header}.{}.{}", parts[1], parts[2]);
    for (name, token) in [("HS512", hs512), ("RS256 header", rs256)] {
        let resp = app.get_as("/api/user/me", &token).await;
        assert_eq!(resp.status(), 401, "{name}");
    }
    json_with_status(app.get_as("/api/user/me", &user.access).await, 200).await;
}

/// Security #6: a forged cursor whose timestamp PostgreSQL cannot hold (before 4714 BC) is a
/// 400 naming `cursor`, on the public catalogue and on a buyer's history — not a 500.
#[tokio::test]
async fn forged_cursors_with_impossible_dates_are_400() {
    let app = TestApp::spawn().await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let ancient = "-300000000000000000";
    let forged = [
        (
            "/api/events/all",
            atomicseats::http::cursor::encode("e1", &[&ancient, &1]),
        ),
        (
            "/api/user/bookings",
            atomicseats::http::cursor::encode("t1", &[&0, &ancient, &1]),
        ),
        (
            "/api/user/bookings?view=summary",
            atomicseats::http::cursor::encode("s1", &[&ancient, &1]),
        ),
    ];
    for (path, cursor) in forged {
        let sep = if path.contains('?') { '&' } else { '?' };
        let resp = app
            .get_as(&format!("{path}{sep}cursor={cursor}"), &buyer)
            .await;
        let body = json_with_status(resp, 400).await;
        assert_eq!(body["errors"][0]["field"], "cursor", "{path}: {body}");
    }
}

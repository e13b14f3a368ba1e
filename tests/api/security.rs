//! Security issue #16, items 9–13: cross-site requests on cookie sessions, account enumeration,
//! the password policy, the per-account login throttle, email verification, single-line names,
//! rate limits on the remaining routes, and revocation on logout and password change.

use atomicseats::users::domain::Role;
use serde_json::{Value, json};

use crate::helpers::events::event_body;
use crate::helpers::smtp::{SmtpSink, plain, with_smtp};
use crate::helpers::{PASSWORD, TestApp, json_with_status};

fn registration(username: &str, email: &str, password: &str) -> Value {
    json!({ "username": username, "name": "Ada Lovelace", "email": email, "password": password })
}

async fn me(app: &TestApp, token: &str) -> u16 {
    app.get_as("/api/user/me", token).await.status().as_u16()
}

#[tokio::test]
async fn cookie_sessions_change_state_only_with_json_or_x_requested_with() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::Guest).await;
    let cookie = format!("accessToken={}", user.access);
    let logout = |content_type: Option<&'static str>,
                  extra: Option<(&'static str, &'static str)>| {
        let mut req = app
            .client
            .post(app.url("/api/user/logout"))
            .header("cookie", cookie.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct).body("");
        }
        if let Some((k, v)) = extra {
            req = req.header(k, v);
        }
        req.send()
    };

    // What a form or a no-cors fetch from a sibling subdomain can send: refused before work.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/vnd.evil+json"),
    ] {
        let body = json_with_status(logout(ct, None).await.unwrap(), 403).await;
        assert_eq!(body["code"], "csrf_rejected", "{ct:?}: {body}");
    }
    assert_eq!(me(&app, &user.access).await, 200, "nothing was logged out");
    // The refresh cookie alike, and the admin retry route.
    let refresh = app
        .client
        .post(app.url("/api/user/refresh"))
        .header("cookie", format!("refreshToken={}", user.refresh))
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(refresh, 403).await["code"],
        "csrf_rejected"
    );
    let admin = app.user(Role::Admin).await;
    let retry = app
        .client
        .post(app.url("/api/admin/notifications/1/retry"))
        .header("cookie", format!("accessToken={}", admin.access))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(retry, 403).await["code"], "csrf_rejected");
    // A percent-encoded path is routed as the API and guarded as the API.
    for path in [
        "/%61pi/user/logout",
        "/%61%70%69/user/logout",
        "/api/user/%6Cogout",
    ] {
        let resp = app
            .client
            .post(app.url(path))
            .header("cookie", cookie.clone())
            .header("content-type", "text/plain")
            .body("")
            .send()
            .await
            .unwrap();
        let body = json_with_status(resp, 403).await;
        assert_eq!(body["code"], "csrf_rejected", "{path}: {body}");
    }

    // A custom header needs a preflight, so it passes; so does exactly application/json.
    json_with_status(
        logout(None, Some(("x-requested-with", "XMLHttpRequest")))
            .await
            .unwrap(),
        200,
    )
    .await;
    let other = app.user(Role::Guest).await;
    let resp = app
        .client
        .post(app.url("/api/user/logout"))
        .header("cookie", format!("accessToken={}", other.access))
        .header("content-type", "application/json; charset=utf-8")
        .body("")
        .send()
        .await
        .unwrap();
    json_with_status(resp, 200).await;
    // Bearer clients are not cookie sessions: no content type needed.
    let third = app.user(Role::Guest).await;
    let resp = app
        .client
        .post(app.url("/api/user/logout"))
        .bearer_auth(&third.access)
        .send()
        .await
        .unwrap();
    json_with_status(resp, 200).await;
}

#[tokio::test]
async fn json_bodies_must_be_exactly_application_json() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(app.url("/api/user/login"))
        .header("content-type", "application/vnd.api+json")
        .body(json!({ "email": "a@b.co", "password": "x" }).to_string())
        .send()
        .await
        .unwrap();
    let body = json_with_status(resp, 415).await;
    assert_eq!(body["code"], "unsupported_media_type");
}

#[tokio::test]
async fn weak_passwords_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    for (password, why) in [
        ("12345678", "at least 15"),
        ("                    ", "repetitive"),
        ("passwordpassword", "common"),
        ("qwertyuiop12345", "common"),
        ("ada_lovelace_1815!", "username"),
    ] {
        let body = json_with_status(
            app.register(&registration("ada_lovelace", "ada@example.com", password))
                .await,
            400,
        )
        .await;
        assert_eq!(
            body["errors"][0]["field"], "password",
            "{password:?}: {body}"
        );
        assert!(
            body["errors"][0]["message"].as_str().unwrap().contains(why),
            "{password:?}: {body}"
        );
    }
    let users: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0);
}

fn device_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("deviceToken="))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

async fn login_with(
    app: &TestApp,
    login: &str,
    password: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/user/login"))
        .json(&json!({ "email": login, "password": password }));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn login_is_throttled_per_account_but_the_owners_device_still_gets_in() {
    let app = TestApp::builder()
        .env("ATOMICSEATS__AUTH__LOGIN_ATTEMPTS", "3")
        .spawn()
        .await;
    let owner = app.user(Role::Guest).await;
    // The owner logged in from this browser before: it holds the device cookie.
    let resp = login_with(&app, &owner.email, PASSWORD, None).await;
    let device = device_cookie(&resp).expect("login sets the device cookie");
    json_with_status(resp, 200).await;

    // Someone guesses from anywhere (the count is per account, not per address).
    for _ in 0..3 {
        json_with_status(
            login_with(&app, &owner.email, "wrong guess number one", None).await,
            401,
        )
        .await;
    }
    let body = json_with_status(login_with(&app, &owner.email, PASSWORD, None).await, 429).await;
    assert_eq!(
        body["code"], "login_throttled",
        "even the right password waits: {body}"
    );
    // The same for a name nobody has: the throttle tells nothing about who exists.
    for _ in 0..3 {
        login_with(&app, "nobody@example.com", "wrong guess number one", None).await;
    }
    let body = json_with_status(login_with(&app, "nobody@example.com", "x", None).await, 429).await;
    assert_eq!(body["code"], "login_throttled");

    // The owner's device is counted on its own: not locked out.
    let resp = login_with(&app, &owner.email, PASSWORD, Some(&device)).await;
    json_with_status(resp, 200).await;
    // A device cookie of another account (the attacker's own, minted by logging in as
    // themselves) counts as no device: the locked account stays locked, guesses and the right
    // password alike.
    let attacker = app.user(Role::Guest).await;
    let attacker_device =
        device_cookie(&login_with(&app, &attacker.email, PASSWORD, None).await).unwrap();
    for password in ["wrong guess number two", PASSWORD] {
        let body = json_with_status(
            login_with(&app, &owner.email, password, Some(&attacker_device)).await,
            429,
        )
        .await;
        assert_eq!(body["code"], "login_throttled", "{body}");
    }
}

/// The count is the account's, whatever name it is logged into by: guesses by email and by
/// username share one budget.
#[tokio::test]
async fn username_and_email_share_one_login_budget() {
    let app = TestApp::builder()
        .env("ATOMICSEATS__AUTH__LOGIN_ATTEMPTS", "3")
        .spawn()
        .await;
    let owner = app.user(Role::Guest).await;
    for login in [&owner.email, &owner.username, &owner.email] {
        json_with_status(login_with(&app, login, "wrong guess", None).await, 401).await;
    }
    let body = json_with_status(login_with(&app, &owner.username, PASSWORD, None).await, 429).await;
    assert_eq!(body["code"], "login_throttled", "{body}");
}

#[tokio::test]
async fn logout_ends_the_access_token_at_once() {
    logout_ends_the_access_token(TestApp::spawn().await).await;
}

/// The same through Redis: two API nodes sharing one Redis see each other's revocations.
#[tokio::test]
async fn a_logout_on_one_node_ends_the_token_on_another() {
    let prefix = format!("sec-{}", uuid::Uuid::new_v4().simple());
    let node = |secret: &'static str| {
        TestApp::builder()
            .env("ATOMICSEATS__REDIS__URL", "redis://127.0.0.1:6379")
            .env("ATOMICSEATS__REDIS__KEY_PREFIX", &prefix)
            .env("ACCESS_TOKEN_SECRET", secret)
    };
    let one = node("shared-access-secret-for-two-nodes-0123456789")
        .spawn()
        .await;
    let two = node("shared-access-secret-for-two-nodes-0123456789")
        .spawn()
        .await;
    // Both nodes verify the same tokens (shared secret); the user lives in node one's database,
    // so node two only checks the token and its revocation (GET /api/events/all needs no row).
    let user = one.user(Role::Guest).await;
    let probe = |app: &TestApp| {
        app.client
            .get(app.url("/api/events/all"))
            .bearer_auth(&user.access)
            .send()
    };
    assert_eq!(probe(&two).await.unwrap().status(), 200);

    let resp = one
        .client
        .post(one.url("/api/user/logout"))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    json_with_status(resp, 200).await;

    assert_eq!(me(&one, &user.access).await, 401);
    let resp = two
        .client
        .post(two.url("/api/events/book"))
        .bearer_auth(&user.access)
        .json(&json!({ "eventId": 1, "numberOfSeats": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "node two sees the revocation made on node one"
    );
}

async fn logout_ends_the_access_token(app: TestApp) {
    let user = app.user(Role::Guest).await;
    let second = json_with_status(app.login(&user.email, PASSWORD).await, 200).await;
    let second = second["data"]["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &user.access).await, 200);

    let resp = app
        .client
        .post(app.url("/api/user/logout"))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    json_with_status(resp, 200).await;

    assert_eq!(
        me(&app, &user.access).await,
        401,
        "the logged-out token is dead"
    );
    assert_eq!(me(&app, &second).await, 200, "another session lives on");
    let resp = app
        .client
        .post(app.url("/api/user/logout?all=true"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    json_with_status(resp, 200).await;
    assert_eq!(
        me(&app, &second).await,
        401,
        "logout everywhere ends every token"
    );
}

#[tokio::test]
async fn changing_the_password_ends_every_session_and_keeps_the_caller_in() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::Guest).await;
    let other = json_with_status(app.login(&user.email, PASSWORD).await, 200).await;
    let other_access = other["data"]["accessToken"].as_str().unwrap().to_owned();
    let other_refresh = other["data"]["refreshToken"].as_str().unwrap().to_owned();
    let change = |current: &str, new: &str| {
        app.client
            .post(app.url("/api/user/password"))
            .bearer_auth(&user.access)
            .json(&json!({ "currentPassword": current, "newPassword": new }))
            .send()
    };

    let body = json_with_status(
        change("not my password at all", "a brand new passphrase")
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_eq!(body["code"], "unauthorized");
    let body = json_with_status(change(PASSWORD, "short").await.unwrap(), 400).await;
    assert_eq!(body["errors"][0]["field"], "newPassword");
    let body = json_with_status(
        change(PASSWORD, "a brand new passphrase").await.unwrap(),
        200,
    )
    .await;
    let fresh = body["data"]["accessToken"].as_str().unwrap().to_owned();

    assert_eq!(
        me(&app, &user.access).await,
        401,
        "the caller's old token ended"
    );
    assert_eq!(
        me(&app, &other_access).await,
        401,
        "every other session ended"
    );
    let refreshed = app
        .client
        .post(app.url("/api/user/refresh"))
        .json(&json!({ "refreshToken": other_refresh }))
        .send()
        .await
        .unwrap();
    json_with_status(refreshed, 401).await;
    assert_eq!(me(&app, &fresh).await, 200, "the new session works");
    json_with_status(app.login(&user.email, PASSWORD).await, 401).await;
    json_with_status(app.login(&user.email, "a brand new passphrase").await, 200).await;
}

#[tokio::test]
async fn an_address_is_confirmed_before_its_owner_hosts_or_is_emailed() {
    let sink = SmtpSink::start();
    let app = with_smtp(TestApp::builder(), sink.port)
        .env("ATOMICSEATS__HTTP__PUBLIC_URL", "https://tickets.example")
        .spawn()
        .await;
    let mut host = registration("hosting_ada", "ada@example.com", PASSWORD);
    host["role"] = json!("host");
    json_with_status(app.register(&host).await, 201).await;
    let session = json_with_status(app.login("ada@example.com", PASSWORD).await, 200).await;
    assert_eq!(session["data"]["user"]["emailVerified"], false);
    let token = session["data"]["accessToken"].as_str().unwrap().to_owned();

    // Not yet confirmed: no events.
    let resp = app
        .post_as("/api/events/create", &token, &event_body("Gig", 3, 10))
        .await;
    assert_eq!(
        json_with_status(resp, 403).await["code"],
        "email_unverified"
    );

    // The confirmation email carries the link (minted at sending time, stored nowhere).
    let mails = sink.wait_for(1, 10).await;
    let text = plain(&mails[0]);
    assert!(text.contains("ada@example.com"), "{text}");
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("https://tickets.example/api/user/verify-email?token="))
        .expect("the link")
        .trim_end_matches(['"', '>', '<'])
        .to_owned();
    let path = link.trim_start_matches("https://tickets.example");
    let stored: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM outbox_all WHERE payload::text LIKE '%token%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "no token in the database");
    let bad = app
        .client
        .get(app.url("/api/user/verify-email?token=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(bad, 400).await["code"],
        "invalid_verification_token"
    );
    let ok = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(
        json_with_status(ok, 200).await["data"]["emailVerified"],
        true
    );

    app.create_event(&token, &event_body("Gig", 3, 10)).await;
    let me = json_with_status(app.get_as("/api/user/me", &token).await, 200).await;
    assert_eq!(me["data"]["emailVerified"], true);
}

#[tokio::test]
async fn unconfirmed_buyers_get_no_email_and_a_taken_address_tells_its_owner() {
    let sink = SmtpSink::start();
    let app = with_smtp(TestApp::builder(), sink.port).spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Quiet", 3, 10)).await;
    json_with_status(
        app.register(&registration("unconfirmed", "guest@example.com", PASSWORD))
            .await,
        201,
    )
    .await;
    sink.wait_for(1, 10).await; // the confirmation email, the one thing an unconfirmed address gets
    let guest = json_with_status(app.login("guest@example.com", PASSWORD).await, 200).await;
    let guest = guest["data"]["accessToken"].as_str().unwrap().to_owned();

    let resp = app
        .client
        .post(app.url("/api/events/book"))
        .bearer_auth(&guest)
        .header("prefer", "wait=10")
        .json(&json!({ "eventId": event, "numberOfSeats": 1 }))
        .send()
        .await
        .unwrap();
    json_with_status(resp, 201).await;
    // The confirmation is dead-lettered as "not verified", never sent.
    let mut status = String::new();
    for _ in 0..100 {
        let row = app
            .db
            .client()
            .await
            .query_opt(
                "SELECT status, coalesce(last_error, '') FROM outbox WHERE kind = 'booking_confirmed'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            let (s, e): (String, String) = (row.get(0), row.get(1));
            if s == "failed" {
                assert!(e.contains("not verified"), "{e}");
                status = s;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "failed");

    // Someone registers with a confirmed user's address: no account, its owner is told.
    let owner = app.user(Role::Guest).await;
    json_with_status(
        app.register(&registration("impostor", &owner.email, PASSWORD))
            .await,
        201,
    )
    .await;
    let mails = sink.wait_for(2, 10).await;
    assert_eq!(mails.len(), 2, "nothing went to the unconfirmed buyer");
    let notice = plain(&mails[1]);
    assert!(notice.contains(&owner.email), "{notice}");
    assert!(notice.contains("already"), "{notice}");
}

#[tokio::test]
async fn me_logout_and_ready_are_rate_limited() {
    let app = TestApp::builder()
        .env("ATOMICSEATS__RATE_LIMIT__ENABLED", "true")
        .env("ATOMICSEATS__RATE_LIMIT__READ", "2")
        .env("ATOMICSEATS__RATE_LIMIT__WRITE", "1")
        .spawn()
        .await;
    let user = app.user_unlimited(Role::Guest).await;
    let statuses = |path: &'static str| {
        let app = &app;
        let user = user.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..3 {
                out.push(app.get_as(path, &user).await.status().as_u16());
            }
            out
        }
    };
    assert_eq!(statuses("/api/user/me").await, [200, 200, 429]);
    let mut ready = Vec::new();
    for _ in 0..3 {
        ready.push(
            app.client
                .get(app.url("/ready"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(ready, [200, 200, 429], "anonymous, keyed by address");
    let mut logout = Vec::new();
    for _ in 0..2 {
        let resp = app
            .client
            .post(app.url("/api/user/logout"))
            .bearer_auth(app.user_unlimited(Role::Guest).await)
            .send()
            .await
            .unwrap();
        logout.push(resp.status().as_u16());
    }
    // Keyed per user: two users, one logout each, both pass; the limit is per caller.
    assert_eq!(logout, [200, 200]);
    let again = app
        .client
        .post(app.url("/api/user/logout"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let twice = app
        .client
        .post(app.url("/api/user/logout"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(
        twice.status(),
        429,
        "the second logout of one user within the window"
    );
}

#[tokio::test]
async fn a_proxy_without_trusted_proxies_is_reported() {
    let app = TestApp::builder()
        .env("ATOMICSEATS__RATE_LIMIT__ENABLED", "true")
        .spawn()
        .await;
    // From loopback (a reverse proxy's address) with X-Forwarded-For, nothing trusted.
    app.client
        .post(app.url("/api/user/login"))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({ "email": "a@b.co", "password": "wrong guess number one" }))
        .send()
        .await
        .unwrap();
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rate_limit_untrusted_proxy_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// A registration for an address that has an account answers as one for a new address — and
/// so does the next registration with the same username: 409 `username_taken` either way, so
/// the username cannot tell whether the address had an account.
#[tokio::test]
async fn the_username_does_not_tell_whether_an_address_has_an_account() {
    let app = TestApp::spawn().await;
    let known = app.user(Role::Guest).await;
    for (username, email) in [
        ("probe_known", known.email.as_str()),
        ("probe_unknown", "nobody-yet@example.com"),
    ] {
        json_with_status(
            app.register(&registration(username, email, "a long passphrase 42"))
                .await,
            201,
        )
        .await;
        let again = json_with_status(
            app.register(&registration(
                username,
                &format!("{username}-other@example.com"),
                "a long passphrase 42",
            ))
            .await,
            409,
        )
        .await;
        assert_eq!(again["code"], "username_taken", "{username}: {again}");
    }
}

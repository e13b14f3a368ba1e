//! Accounts: registration, login, tokens, refresh rotation, logout, roles.

use std::collections::HashSet;

use atomicseats::http::auth::{ACCESS_AUDIENCE, ISSUER, RoleClaim};
use atomicseats::users::domain::Role;
use jwt_simple::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, json_with_status};

const SECRET: &str = "test-access-secret-of-at-least-32-bytes!";

async fn app() -> TestApp {
    TestApp::builder()
        .env("ACCESS_TOKEN_SECRET", SECRET)
        .spawn()
        .await
}

fn registration(username: &str, email: &str) -> Value {
    json!({ "username": username, "name": "Ada Lovelace", "email": email, "password": PASSWORD })
}

fn token_with(key: &HS256Key, user_id: i64, role: Role, valid_for: Duration) -> String {
    let claims = Claims::with_custom_claims(
        RoleClaim {
            role,
            issued_ms: chrono::Utc::now().timestamp_millis(),
        },
        valid_for,
    )
    .with_issuer(ISSUER)
    .with_audience(ACCESS_AUDIENCE)
    .with_subject(user_id)
    .with_jwt_id(uuid::Uuid::new_v4());
    key.authenticate(claims).unwrap()
}

fn b64(v: &Value) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(v.to_string().as_bytes())
}

#[tokio::test]
async fn register_returns_201_with_the_user_and_never_the_hash() {
    let app = app().await;

    let resp = app.register(&registration("ada", "Ada@Example.com")).await;

    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["statusCode"], 201, "{text}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("confirm your email address"),
        "{text}"
    );
    let user = &body["data"];
    assert_eq!(user["username"], "ada");
    assert_eq!(user["email"], "Ada@Example.com");
    assert_eq!(user["role"], "guest");
    assert_eq!(user["emailVerified"], false);
    // No id: the answer must look the same for an address that already has an account.
    assert!(user.get("id").is_none(), "{text}");
    assert!(!text.contains("$2"), "a bcrypt hash leaked: {text}");
    assert!(!text.to_lowercase().contains("password"), "{text}");
    let stored: String = app
        .db
        .client()
        .await
        .query_one(
            "SELECT password_hash FROM users WHERE username = 'ada'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("$2"), "stored as bcrypt");
    assert_ne!(stored, PASSWORD);
}

#[tokio::test]
async fn register_allows_host_and_forbids_admin() {
    let app = app().await;
    let mut host = registration("hosty", "host@example.com");
    host["role"] = json!("host");
    let body = json_with_status(app.register(&host).await, 201).await;
    assert_eq!(body["data"]["role"], "host");

    let mut admin = registration("wannabe", "admin@example.com");
    admin["role"] = json!("admin");
    let body = json_with_status(app.register(&admin).await, 403).await;
    assert_eq!(body["code"], "forbidden");
    let count: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM users WHERE role = 'admin'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn register_validates_every_field_and_names_it() {
    let app = app().await;

    let body = json_with_status(app.register(&json!({})).await, 400).await;
    let fields: HashSet<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        HashSet::from(["username", "name", "email", "password"])
    );

    for (patch, field) in [
        (json!({ "email": "not-an-email" }), "email"),
        (json!({ "password": "1234" }), "password"),
        (json!({ "username": "a b" }), "username"),
        (json!({ "username": "x" }), "username"),
        (json!({ "name": "   " }), "name"),
        (json!({ "role": "superuser" }), "role"),
        (json!({ "role": 5 }), "role"),
        (json!({ "email": ["a@b.co"] }), "email"),
    ] {
        let mut reg = registration("valid_name", "valid@example.com");
        for (k, v) in patch.as_object().unwrap() {
            reg[k] = v.clone();
        }
        let body = json_with_status(app.register(&reg).await, 400).await;
        assert_eq!(body["errors"][0]["field"], field, "{patch}: {body}");
    }
}

#[tokio::test]
async fn a_taken_email_answers_like_a_new_account_and_a_taken_username_is_409() {
    let app = app().await;
    let first = json_with_status(
        app.register(&registration("ada", "ada@example.com")).await,
        201,
    )
    .await;

    // Security #10: the same answer as for a new account, so it tells nothing.
    let again = json_with_status(
        app.register(&registration("other", "ADA@example.com"))
            .await,
        201,
    )
    .await;
    let keys = |v: &Value| {
        v["data"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&first), keys(&again));
    assert_eq!(first["message"], again["message"]);
    let accounts: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM users WHERE lower(email) = 'ada@example.com' OR username = 'other'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(accounts, 1, "no second account");
    // Usernames are public handles: a taken one is named (case-insensitively).
    let body = json_with_status(
        app.register(&registration("ADA", "other@example.com"))
            .await,
        409,
    )
    .await;
    assert_eq!(body["code"], "username_taken");
}

#[tokio::test]
async fn login_by_email_or_username_returns_tokens_and_cookies() {
    let app = app().await;
    json_with_status(
        app.register(&registration("ada", "ada@example.com")).await,
        201,
    )
    .await;

    for login in ["ada@example.com", "ADA@EXAMPLE.COM", "ada", "Ada"] {
        let resp = app.login(login, PASSWORD).await;
        let cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = json_with_status(resp, 200).await;
        assert_eq!(body["message"], "User logged in successfully");
        assert_eq!(body["data"]["user"]["username"], "ada");
        assert!(body["data"]["accessToken"].as_str().unwrap().len() > 20);
        assert!(body["data"]["refreshToken"].as_str().unwrap().len() > 20);
        assert!(body.to_string().find("$2").is_none());
        let access = cookies
            .iter()
            .find(|c| c.starts_with("accessToken="))
            .unwrap();
        let refresh = cookies
            .iter()
            .find(|c| c.starts_with("refreshToken="))
            .unwrap();
        for c in [access, refresh] {
            assert!(c.contains("HttpOnly"), "{c}");
            assert!(c.contains("SameSite=Lax"), "{c}");
            assert!(c.contains("Secure"), "{c}");
        }
        assert!(access.contains("Max-Age=900"), "{access}");
        assert!(refresh.contains("Max-Age=604800"), "{refresh}");
        assert!(refresh.contains("Path=/api/user"), "{refresh}");
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_401() {
    let app = app().await;
    json_with_status(
        app.register(&registration("ada", "ada@example.com")).await,
        201,
    )
    .await;

    let wrong = json_with_status(app.login("ada@example.com", "wrong password!").await, 401).await;
    let unknown = json_with_status(app.login("nobody@example.com", PASSWORD).await, 401).await;

    assert_eq!(wrong, unknown);
    let missing = json_with_status(
        app.client
            .post(app.url("/api/user/login"))
            .json(&json!({ "email": "ada@example.com" }))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(missing["errors"][0]["field"], "password");
}

#[tokio::test]
async fn me_accepts_the_bearer_header_and_the_cookie() {
    let app = app().await;
    let user = app.user(Role::Guest).await;

    let body = json_with_status(app.get_as("/api/user/me", &user.access).await, 200).await;
    assert_eq!(body["data"]["id"], user.id);

    let resp = app
        .client
        .get(app.url("/api/user/me"))
        .header("cookie", format!("accessToken={}", user.access))
        .send()
        .await
        .unwrap();
    let body = json_with_status(resp, 200).await;
    assert_eq!(body["data"]["username"], user.username.as_str());
}

#[tokio::test]
async fn bad_tokens_are_401_never_500() {
    let app = app().await;
    let user = app.user(Role::Admin).await;
    let key = HS256Key::from_bytes(SECRET.as_bytes());
    let other_key = HS256Key::from_bytes(b"some-other-secret-nobody-configured");

    let valid = token_with(&key, user.id, Role::Admin, Duration::from_mins(5));
    let parts: Vec<&str> = valid.split('.').collect();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        parts[1]
    );
    let tampered_payload = format!(
        "{}.{}.{}",
        parts[0],
        b64(
            &json!({ "sub": "1", "role": "admin", "iss": ISSUER, "aud": ACCESS_AUDIENCE, "exp": 9_999_999_999u64 })
        ),
        parts[2]
    );
    let mut expired_claims = Claims::with_custom_claims(
        RoleClaim {
            role: Role::Admin,
            issued_ms: chrono::Utc::now().timestamp_millis(),
        },
        Duration::from_mins(5),
    )
    .with_issuer(ISSUER)
    .with_audience(ACCESS_AUDIENCE)
    .with_subject(user.id)
    .with_jwt_id(uuid::Uuid::new_v4());
    expired_claims.expires_at = Some(Clock::now_since_epoch() - Duration::from_mins(1));
    let expired = key.authenticate(expired_claims).unwrap();

    let cases = [
        ("missing", None),
        ("garbage", Some("not.a.jwt".to_owned())),
        ("alg none", Some(alg_none)),
        (
            "wrong key",
            Some(token_with(
                &other_key,
                user.id,
                Role::Admin,
                Duration::from_mins(5),
            )),
        ),
        ("tampered payload", Some(tampered_payload)),
        ("expired", Some(expired)),
        ("refresh token as access token", Some(user.refresh.clone())),
        ("huge", Some("a".repeat(10_000))),
    ];
    for (name, token) in cases {
        let mut req = app.client.get(app.url("/api/user/me"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{name}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized", "{name}");
    }
    // The control: the same key and claims, untampered, work.
    json_with_status(app.get_as("/api/user/me", &valid).await, 200).await;
}

#[tokio::test]
async fn a_token_of_a_deleted_user_is_401() {
    let app = app().await;
    let user = app.user(Role::Guest).await;
    app.db
        .client()
        .await
        .execute("DELETE FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap();

    let body = json_with_status(app.get_as("/api/user/me", &user.access).await, 401).await;
    assert_eq!(body["code"], "unauthorized");
    let resp = app
        .client
        .post(app.url("/api/user/refresh"))
        .json(&json!({ "refreshToken": user.refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/user/refresh"))
        .json(&json!({ "refreshToken": token }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = app().await;
    let user = app.user(Role::Guest).await;

    let first = json_with_status(refresh(&app, &user.refresh).await, 200).await;
    let rotated = first["data"]["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(rotated, user.refresh);
    let new_access = first["data"]["accessToken"].as_str().unwrap();
    json_with_status(app.get_as("/api/user/me", new_access).await, 200).await;

    // The old token comes back (stolen copy): refused, and the whole login is revoked.
    let reuse = json_with_status(refresh(&app, &user.refresh).await, 401).await;
    assert!(reuse["message"].as_str().unwrap().contains("already used"));
    json_with_status(refresh(&app, &rotated).await, 401).await;

    // Stored hashed, never in clear.
    let c = app.db.client().await;
    let clear: i64 = c
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'",
            &[&rotated],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(clear, 0);
    let live: i64 = c
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0, "the family is revoked");
}

#[tokio::test]
async fn refresh_reads_the_cookie_and_rejects_access_tokens() {
    let app = app().await;
    let user = app.user(Role::Guest).await;

    let resp = app
        .client
        .post(app.url("/api/user/refresh"))
        .header("cookie", format!("refreshToken={}", user.refresh))
        .header("x-requested-with", "test")
        .send()
        .await
        .unwrap();
    json_with_status(resp, 200).await;

    json_with_status(refresh(&app, &user.access).await, 401).await;
    json_with_status(
        app.client
            .post(app.url("/api/user/refresh"))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_and_clears_cookies() {
    let app = app().await;
    let user = app.user(Role::Guest).await;

    let resp = app
        .client
        .post(app.url("/api/user/logout"))
        .bearer_auth(&user.access)
        .json(&json!({ "refreshToken": user.refresh }))
        .send()
        .await
        .unwrap();
    let cleared: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = json_with_status(resp, 200).await;

    assert_eq!(body["data"]["revokedSessions"], 1);
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("accessToken=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    assert!(
        cleared.iter().any(|c| c.starts_with("refreshToken=;")),
        "{cleared:?}"
    );
    json_with_status(refresh(&app, &user.refresh).await, 401).await;
}

#[tokio::test]
async fn logout_all_ends_every_session() {
    let app = app().await;
    let user = app.user(Role::Guest).await;
    let second = json_with_status(app.login(&user.email, PASSWORD).await, 200).await;
    let second_refresh = second["data"]["refreshToken"].as_str().unwrap().to_owned();

    let resp = app
        .client
        .post(app.url("/api/user/logout?all=true"))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    let body = json_with_status(resp, 200).await;

    assert_eq!(body["data"]["revokedSessions"], 2);
    json_with_status(refresh(&app, &user.refresh).await, 401).await;
    json_with_status(refresh(&app, &second_refresh).await, 401).await;
    json_with_status(
        app.client
            .post(app.url("/api/user/logout"))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

async fn set_role(app: &TestApp, token: &str, id: i64, role: &str) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/api/admin/users/{id}")))
        .bearer_auth(token)
        .json(&json!({ "role": role }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn role_matrix_for_account_routes() {
    let app = app().await;
    let guest = app.user(Role::Guest).await;
    let host = app.user(Role::Host).await;
    let admin = app.user(Role::Admin).await;

    // Everyone authenticated reaches their own account routes.
    for u in [&guest, &host, &admin] {
        json_with_status(app.get_as("/api/user/me", &u.access).await, 200).await;
    }
    json_with_status(
        app.client
            .get(app.url("/api/user/me"))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    // Public info needs no token.
    let info = json_with_status(
        app.client.get(app.url("/api/user/")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(info["data"]["name"], "AtomicSeats API");

    // Only admins change roles.
    json_with_status(set_role(&app, &guest.access, host.id, "admin").await, 403).await;
    json_with_status(set_role(&app, &host.access, guest.id, "host").await, 403).await;
    json_with_status(
        app.client
            .patch(app.url(&format!("/api/admin/users/{}", guest.id)))
            .json(&json!({ "role": "host" }))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    let body = json_with_status(set_role(&app, &admin.access, guest.id, "host").await, 200).await;
    assert_eq!(body["data"]["role"], "host");
    assert!(body["data"].get("passwordHash").is_none());

    // Validation and lookups.
    json_with_status(set_role(&app, &admin.access, guest.id, "root").await, 400).await;
    json_with_status(set_role(&app, &admin.access, 999_999, "host").await, 404).await;
    let resp = app
        .client
        .patch(app.url("/api/admin/users/abc"))
        .bearer_auth(&admin.access)
        .json(&json!({ "role": "host" }))
        .send()
        .await
        .unwrap();
    json_with_status(resp, 400).await;
}

#[tokio::test]
async fn a_promotion_reaches_new_tokens_and_a_demotion_stops_admin_access_at_once() {
    let app = app().await;
    let admin = app.user(Role::Admin).await;
    let other = app.user(Role::Guest).await;

    json_with_status(set_role(&app, &admin.access, other.id, "admin").await, 200).await;
    // The old token still says guest; a new login says admin.
    json_with_status(set_role(&app, &other.access, admin.id, "host").await, 403).await;
    let relogin = json_with_status(app.login(&other.email, PASSWORD).await, 200).await;
    let other_admin = relogin["data"]["accessToken"].as_str().unwrap().to_owned();

    // Demote the first admin: its still-valid admin token no longer works on admin routes.
    json_with_status(set_role(&app, &other_admin, admin.id, "guest").await, 200).await;
    json_with_status(set_role(&app, &admin.access, other.id, "guest").await, 403).await;

    // The last admin cannot demote themselves.
    let body = json_with_status(set_role(&app, &other_admin, other.id, "guest").await, 409).await;
    assert_eq!(body["code"], "last_admin");
}

/// A browser (it sends `Sec-Fetch-Site`) gets the refresh token only as its httpOnly cookie,
/// never in the JSON a page script could read; other clients keep it in the body. Refreshing
/// from the cookie answers the browser the same way.
#[tokio::test]
async fn a_browser_gets_the_refresh_token_only_as_a_cookie() {
    let app = TestApp::spawn().await;
    let user = app.user(Role::Guest).await;
    let resp = app
        .client
        .post(app.url("/api/user/login"))
        .header("sec-fetch-site", "same-origin")
        .json(&serde_json::json!({ "email": user.email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let refresh_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("refreshToken="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("the refresh cookie");
    let body = json_with_status(resp, 200).await;
    assert!(body["data"]["refreshToken"].is_null(), "{body}");
    assert!(body["data"]["accessToken"].is_string());
    let refreshed = app
        .client
        .post(app.url("/api/user/refresh"))
        .header("sec-fetch-site", "same-origin")
        .header("x-requested-with", "fetch")
        .header("cookie", refresh_cookie)
        .send()
        .await
        .unwrap();
    let body = json_with_status(refreshed, 200).await;
    assert!(body["data"]["refreshToken"].is_null(), "{body}");
    // Not a browser: the body keeps it (the old system's clients read it there).
    let body = json_with_status(app.login(&user.email, PASSWORD).await, 200).await;
    assert!(body["data"]["refreshToken"].is_string());
}

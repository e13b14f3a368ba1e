//! Users and tokens for tests.

use atomicseats::users::domain::Role;
use serde_json::{Value, json};

use super::{TestApp, json_with_status};

/// The password every fixture user has.
pub const PASSWORD: &str = "correct horse battery";

/// A user created for a test, logged in.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    /// `POST /api/user/register` with `body`.
    pub async fn register(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/user/register"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /api/user/login`.
    pub async fn login(&self, login: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/user/login"))
            // The documented envelope, also on a deployment whose default is the legacy one.
            .header("x-atomicseats-envelope", "standard")
            .json(&json!({ "email": login, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// A new user with `role` (created directly, as `atomicseats users create` does), logged in.
    pub async fn user(&self, role: Role) -> TestUser {
        let username = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let email = format!("{username}@example.com");
        let created = atomicseats::users::create_from_cli(
            &self.state,
            &username,
            &email,
            None,
            role,
            PASSWORD.to_owned(),
        )
        .await
        .unwrap();
        let body = json_with_status(self.login(&email, PASSWORD).await, 200).await;
        TestUser {
            id: created.id,
            username,
            email,
            access: body["data"]["accessToken"].as_str().unwrap().to_owned(),
            refresh: body["data"]["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    /// A new user named `username` (email `<username>@example.com`, password [`PASSWORD`],
    /// address confirmed), as the CLI makes one: for tests that log in through a form.
    pub async fn user_named(&self, username: &str, role: Role) -> i64 {
        atomicseats::users::create_from_cli(
            &self.state,
            username,
            &format!("{username}@example.com"),
            None,
            role,
            PASSWORD.to_owned(),
        )
        .await
        .unwrap()
        .id
    }

    /// A new user with `role` and an access token minted directly (no login request, so no
    /// rate-limit bucket is touched).
    pub async fn user_unlimited(&self, role: Role) -> String {
        let username = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let created = atomicseats::users::create_from_cli(
            &self.state,
            &username,
            &format!("{username}@example.com"),
            None,
            role,
            PASSWORD.to_owned(),
        )
        .await
        .unwrap();
        self.state
            .tokens()
            .issue_access(created.id, role)
            .unwrap()
            .token
    }

    /// `GET path` with a bearer token.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

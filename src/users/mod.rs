//! Accounts: registration, login, token refresh with rotation and reuse detection, logout,
//! and the first admin (`atomicseats users create`).
//!
//! Routes under `/api/user` (seed paths): `GET /`, `POST /register`, `POST /login`,
//! `POST /refresh`, `POST /logout`, `GET /me`, `GET /bookings` (history, in
//! `bookings::history`). Register, login and refresh are in the `auth`
//! rate-limit class (per client IP). Reads `[auth]`.

pub mod access;
pub mod domain;
pub mod model;
pub mod password;
pub mod routes;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::http::{rate_limit, resource};
use crate::notifications;

/// Registers the `/api/user` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/user").get(routes::api_info))
        .service(resource("/api/user/").get(routes::api_info))
        .service(
            resource("/api/user/register")
                .wrap(from_fn(rate_limit::auth))
                .post(routes::register),
        )
        .service(
            resource("/api/user/login")
                .wrap(from_fn(rate_limit::auth))
                .post(routes::login),
        )
        .service(
            resource("/api/user/refresh")
                .wrap(from_fn(rate_limit::auth))
                .post(routes::refresh),
        )
        .service(
            resource("/api/user/logout")
                .wrap(from_fn(rate_limit::write))
                .post(routes::logout),
        )
        .service(
            resource("/api/user/password")
                .wrap(from_fn(rate_limit::auth))
                .post(routes::change_password),
        )
        .service(
            resource("/api/user/verify-email")
                .wrap(from_fn(rate_limit::auth))
                .get(routes::verify_email)
                .post(routes::verify_email),
        )
        .service(
            resource("/api/user/verify-email/resend")
                .wrap(from_fn(rate_limit::auth))
                .post(routes::resend_verification),
        )
        .service(
            resource("/api/user/me")
                .wrap(from_fn(rate_limit::read))
                .get(routes::me),
        )
        .service(
            resource("/api/user/bookings")
                .wrap(from_fn(rate_limit::read))
                .get(crate::bookings::history::list),
        );
}

/// Hashes the password (blocking pool) and inserts the user; validated fields only. A taken
/// email or username (also under a concurrent registration) comes back as a value. `verified`:
/// the address counts as confirmed (an operator created the account).
pub async fn create(
    state: &crate::state::AppState,
    account: &NewAccount<'_>,
    password: String,
    verified: bool,
) -> anyhow::Result<Result<model::User, model::Taken>> {
    let hash = password::hash(password, state.settings().auth.bcrypt_cost).await?;
    let mut conn = state.db().get().await?;
    Ok(account.row(&hash, verified).insert(&mut conn).await?)
}

/// The validated fields of a new account.
#[derive(Debug, Clone, Copy)]
pub struct NewAccount<'a> {
    /// Login name.
    pub username: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Email address.
    pub email: &'a str,
    /// Role.
    pub role: domain::Role,
}

impl NewAccount<'_> {
    fn row<'h>(&'h self, hash: &'h str, verified: bool) -> model::NewUser<'h> {
        model::NewUser {
            username: self.username,
            name: self.name,
            email: self.email,
            password_hash: hash,
            role: self.role.as_str(),
            email_verified_at: verified.then(chrono::Utc::now),
        }
    }
}

/// What a self-registration did. The API answers `Created` and `EmailTaken` the same way, so
/// that registering does not tell whether an address has an account.
#[derive(Debug)]
pub enum Registration {
    /// A new, unverified account; the confirmation email is queued.
    Created(model::User),
    /// The address has an account: nothing was created; its (verified) owner is told by email.
    EmailTaken,
    /// The username is taken (usernames are public handles, so saying so reveals nothing).
    UsernameTaken,
}

/// Self-registration: the account and its confirmation email in one transaction (or, for a
/// taken address, a note to its owner). The password is hashed either way, so both take the
/// same time.
pub async fn register(
    state: &crate::state::AppState,
    account: &NewAccount<'_>,
    password: String,
) -> anyhow::Result<Registration> {
    use diesel_async::AsyncConnection;
    use notifications::outbox::{self, NewNotification};
    let hash = password::hash(password, state.settings().auth.bcrypt_cost).await?;
    let mut conn = state.db().get().await?;
    let row = account.row(&hash, false);
    let email = account.email;
    let done = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let (registration, note) = match row.insert(conn).await? {
                Ok(user) => {
                    let note = NewNotification::new(
                        notifications::kind::Notice::VerifyEmail,
                        user.id,
                        None,
                        serde_json::json!({}),
                    );
                    (Registration::Created(user), Some(note))
                }
                Err(model::Taken::Username) => (Registration::UsernameTaken, None),
                Err(model::Taken::Email) => {
                    // Answered as a created account is: its username is held as one would be.
                    model::hold_username(conn, account.username).await?;
                    let owner = model::User::find_by_login(conn, email).await?;
                    let note = owner.filter(|o| o.email_verified_at.is_some()).map(|o| {
                        NewNotification::new(
                            notifications::kind::Notice::AccountExists,
                            o.id,
                            None,
                            serde_json::json!({}),
                        )
                    });
                    (Registration::EmailTaken, note)
                }
            };
            if let Some(note) = note {
                outbox::enqueue(conn, &[note]).await?;
            }
            Ok(registration)
        })
        .await?;
    notifications::wake(state);
    Ok(done)
}

/// Confirms the address a verification token was issued for: whether it was confirmed now
/// (false when it already was, or the account's address has changed since).
pub async fn verify_email(
    state: &crate::state::AppState,
    token: &str,
) -> Result<bool, crate::error::ApiError> {
    let (user, email) = state.tokens().verify_email_token(token)?;
    let mut conn = state.db().get().await?;
    Ok(model::User::mark_verified(&mut conn, user, &email).await?)
}

/// `atomicseats users verify --email`: confirms an account's address; whether it changed
/// anything (false: already confirmed). An unknown address is an error.
pub async fn verify_from_cli(state: &crate::state::AppState, email: &str) -> anyhow::Result<bool> {
    let mut conn = state.db().get().await?;
    let user = model::User::find_by_login(&mut conn, email.trim())
        .await?
        .filter(|u| u.email.eq_ignore_ascii_case(email.trim()))
        .ok_or_else(|| anyhow::anyhow!("no account with the email address {email}"))?;
    Ok(model::User::mark_verified(&mut conn, user.id, &user.email).await?)
}

/// `atomicseats users create`: creates a user of any role (the way to make the first admin).
/// The password comes from `ATOMICSEATS_NEW_USER_PASSWORD` or the first line of stdin, never
/// from the command line.
pub async fn create_from_cli(
    state: &crate::state::AppState,
    username: &str,
    email: &str,
    name: Option<&str>,
    role: domain::Role,
    password: String,
) -> anyhow::Result<model::User> {
    let username = domain::parse_username(username).map_err(|e| anyhow::anyhow!("username {e}"))?;
    let email = domain::parse_email(email).map_err(|e| anyhow::anyhow!("email {e}"))?;
    let name =
        domain::parse_name(name.unwrap_or(&username)).map_err(|e| anyhow::anyhow!("name {e}"))?;
    let local_part = email.split('@').next().unwrap_or("");
    domain::check_password(&password, &[username.as_str(), local_part])
        .map_err(|e| anyhow::anyhow!("password {e}"))?;
    let account = NewAccount {
        username: &username,
        name: &name,
        email: &email,
        role,
    };
    // An operator vouches for the address.
    match create(state, &account, password, true).await? {
        Ok(user) => Ok(user),
        Err(model::Taken::Email) => anyhow::bail!("a user with this email already exists"),
        Err(model::Taken::Username) => anyhow::bail!("a user with this username already exists"),
    }
}

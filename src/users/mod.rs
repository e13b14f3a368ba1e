//! Accounts: registration, login, token refresh with rotation and reuse detection, logout,
//! and the first admin (`atomicseats users create`).
//!
//! Routes under `/api/user` (seed paths): `GET /`, `POST /register`, `POST /login`,
//! `POST /refresh`, `POST /logout`, `GET /me`, `GET /bookings` (history, in
//! `bookings::history`). Register, login and refresh are in the `auth`
//! rate-limit class (per client IP). Reads `[auth]`.

pub mod domain;
pub mod model;
pub mod password;
pub mod routes;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::http::{rate_limit, resource};

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
        .service(resource("/api/user/logout").post(routes::logout))
        .service(resource("/api/user/me").get(routes::me))
        .service(
            resource("/api/user/bookings")
                .wrap(from_fn(rate_limit::read))
                .get(crate::bookings::history::list),
        );
}

/// Hashes the password (blocking pool) and inserts the user; validated fields only. A taken
/// email or username (also under a concurrent registration) comes back as a value.
pub async fn create(
    state: &crate::state::AppState,
    username: &str,
    name: &str,
    email: &str,
    role: domain::Role,
    password: String,
) -> anyhow::Result<Result<model::User, model::Taken>> {
    let hash = password::hash(password, state.settings().auth.bcrypt_cost).await?;
    let mut conn = state.db().get().await?;
    let new = model::NewUser {
        username,
        name,
        email,
        password_hash: &hash,
        role: role.as_str(),
    };
    Ok(new.insert(&mut conn).await?)
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
    domain::check_password(&password).map_err(|e| anyhow::anyhow!("password {e}"))?;
    match create(state, &username, &name, &email, role, password).await? {
        Ok(user) => Ok(user),
        Err(model::Taken::Email) => anyhow::bail!("a user with this email already exists"),
        Err(model::Taken::Username) => anyhow::bail!("a user with this username already exists"),
    }
}

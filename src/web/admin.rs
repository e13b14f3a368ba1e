//! The admin's pages: analytics with charts (the numbers of `GET /api/admin/analytics`), users
//! and their roles (never an email address), and failed notifications with retry.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::Value;

use super::charts;
use super::forms::{Form, id_in_path, posted, problem, render, see_other, with_role};
use super::render::Pages;
use crate::error::ApiError;
use crate::http::auth::AuthUser;
use crate::state::AppState;
use crate::users::domain::Role;

/// An admin (by the token; each action checks the stored role again), or the page that says
/// why not.
fn admin(
    req: &HttpRequest,
    state: &AppState,
    viewer: Option<AuthUser>,
    back: &str,
) -> Result<AuthUser, Box<HttpResponse>> {
    with_role(req, state, viewer, back, &[Role::Admin], "admin_only")
}

fn failure(req: &HttpRequest, state: &AppState, user: &AuthUser, e: &ApiError) -> HttpResponse {
    problem(req, state, user, e, ("/admin", "nav_admin"))
}

/// `GET /admin`: analytics over every event — bookings, revenue, utilisation, the most
/// popular events as a chart.
pub async fn analytics(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
) -> HttpResponse {
    let user = match admin(&req, &state, viewer, "/admin") {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    let report = crate::analytics::admin_report(&state, &user, &HashMap::new()).await;
    let report = match report {
        Ok(r) => serde_json::Value::Object(r),
        Err(e) => return failure(&req, &state, &user, &e),
    };
    let rows: Vec<(String, f64)> = report["mostPopularEvents"]
        .as_array()
        .map(|top| {
            top.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap_or_default().to_owned(),
                        e["confirmedSeats"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let chart = charts::bars(&Pages::get().text("chart_popular"), &rows, 0.0);
    render(
        &req,
        &state,
        Some(&user),
        StatusCode::OK,
        "admin.html",
        minijinja::context! {
            page => "admin",
            r => report,
            popular_chart => Value::from_safe_string(chart),
        },
    )
}

/// `GET /admin/users?q=&after=`: users by id, 50 a page, with their role.
pub async fn users(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let user = match admin(&req, &state, viewer, "/admin/users") {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    let q = query
        .get("q")
        .map(|s| s.trim().chars().take(100).collect::<String>())
        .filter(|s| !s.is_empty());
    let after = query.get("after").and_then(|a| a.parse::<i64>().ok());
    let listed = async {
        let mut conn = state.db().get().await?;
        user.require_admin(&mut conn).await?;
        Ok::<_, ApiError>(
            crate::users::model::User::page(&mut conn, q.as_deref(), after, 51).await?,
        )
    }
    .await;
    let mut rows = match listed {
        Ok(r) => r,
        Err(e) => return failure(&req, &state, &user, &e),
    };
    let more = rows.len() > 50;
    rows.truncate(50);
    let next = more.then(|| rows.last().map(|u| u.id)).flatten();
    let people: Vec<_> = rows
        .iter()
        .map(|u| {
            minijinja::context! {
                id => u.id, username => &u.username, name => &u.name, role => &u.role,
                verified => u.email_verified_at.is_some(),
            }
        })
        .collect();
    let notice = query
        .get("done")
        .map(|d| Pages::get().text(&format!("done.{d}")));
    render(
        &req,
        &state,
        Some(&user),
        StatusCode::OK,
        "admin_users.html",
        minijinja::context! {
            page => "admin", people => people, q => q, next => next, notice => notice,
        },
    )
}

/// `POST /admin/users/{id}/role` (`role`): the API's role change (never the last admin away).
pub async fn set_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (form, user) = match posted(&req, &state, &body, viewer, "/admin/users") {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let done = async {
        let id = id_in_path(&path)?;
        crate::admin::routes::change_role(&state, &user, id, form.get("role").unwrap_or_default())
            .await
    }
    .await;
    match done {
        Ok(_) => see_other("/admin/users?done=role_changed"),
        Err(e) => failure(&req, &state, &user, &e),
    }
}

/// `GET /admin/notifications`: failed notifications, newest first, each with a retry button.
pub async fn notifications(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let user = match admin(&req, &state, viewer, "/admin/notifications") {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    let listed = async {
        let mut conn = state.db().get().await?;
        user.require_admin(&mut conn).await?;
        Ok::<_, ApiError>(crate::notifications::outbox::list(&mut conn, "failed", None, 100).await?)
    }
    .await;
    let rows = match listed {
        Ok(r) => r,
        Err(e) => return failure(&req, &state, &user, &e),
    };
    let notice = query
        .get("done")
        .map(|d| Pages::get().text(&format!("done.{d}")));
    render(
        &req,
        &state,
        Some(&user),
        StatusCode::OK,
        "admin_notifications.html",
        minijinja::context! { page => "admin", rows => rows, notice => notice },
    )
}

/// `POST /admin/notifications/{id}/retry`: puts a failed notification back in line.
pub async fn retry(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (_, user): (Form, AuthUser) =
        match posted(&req, &state, &body, viewer, "/admin/notifications") {
            Ok(p) => p,
            Err(resp) => return *resp,
        };
    let done = async {
        let id = id_in_path(&path)?;
        crate::admin::notifications::retry_one(&state, &user, id).await
    }
    .await;
    match done {
        Ok(()) => see_other("/admin/notifications?done=retried"),
        Err(e) => failure(&req, &state, &user, &e),
    }
}

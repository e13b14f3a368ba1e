//! Admin handlers.

use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::http::auth::AuthUser;
use crate::http::extract::ApiJson;
use crate::http::response;
use crate::state::AppState;
use crate::users::domain::Role;
use crate::users::model::{PublicUser, User};

/// `PATCH /api/admin/users/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    role: String,
}

/// Sets a user's role. New access tokens carry it at once; existing ones keep the old role
/// until they expire (`auth.access_token_ttl`), except on admin routes, which re-check.
/// The last admin cannot demote themselves out of existence (409).
#[tracing::instrument(name = "set_user_role", skip_all, fields(admin.id = caller.id, user.id = tracing::field::Empty))]
pub async fn set_user_role(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    body: ApiJson<RoleBody>,
) -> ApiResult<HttpResponse> {
    let id = crate::events::routes::path_id(&path)?;
    let user = change_role(&state, &caller, id, &body.into_inner().role).await?;
    Ok(response::ok(PublicUser::from(user), "User role updated"))
}

/// Sets user `id`'s role to `role` (an admin only; never the last admin away). The API's
/// `PATCH /api/admin/users/{id}` and the admin's user page both come here.
pub async fn change_role(
    state: &AppState,
    caller: &AuthUser,
    id: i64,
    role: &str,
) -> ApiResult<User> {
    tracing::Span::current().record("user.id", id);
    let role = Role::parse(role).map_err(|e| ApiError::field("role", e))?;
    let mut conn = state.db().get().await?;
    caller.require_admin(&mut conn).await?;
    // Check and change in one transaction, with every admin row locked: two admins demoting
    // each other at the same moment are serialised, and the second sees one admin left (and
    // that it is no longer an admin itself).
    let user = conn
        .transaction(async |conn| {
            let admins = User::lock_admins(conn).await?;
            if !admins.contains(&caller.id) {
                return Err(ApiError::Forbidden(
                    "this action needs the role admin".to_owned(),
                ));
            }
            let target = User::find(conn, id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no user with id {id}")))?;
            if target.role == Role::Admin.as_str() && role != Role::Admin && admins.len() <= 1 {
                return Err(ApiError::Conflict {
                    code: "last_admin",
                    message: "this is the last admin; promote another user first".to_owned(),
                });
            }
            User::set_role(conn, id, role.as_str())
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no user with id {id}")))
        })
        .await?;
    tracing::info!(user.role = role.as_str(), "user role changed");
    Ok(user)
}

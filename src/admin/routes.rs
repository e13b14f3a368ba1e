//! Admin handlers.

use actix_web::{HttpResponse, web};
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
    tracing::Span::current().record("user.id", id);
    let role = Role::parse(&body.into_inner().role).map_err(|e| ApiError::field("role", e))?;
    let mut conn = state.db().get().await?;
    caller.require_admin(&mut conn).await?;
    let target = User::find(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user with id {id}")))?;
    if target.role == Role::Admin.as_str()
        && role != Role::Admin
        && User::count_admins(&mut conn).await? <= 1
    {
        return Err(ApiError::Conflict {
            code: "last_admin",
            message: "this is the last admin; promote another user first".to_owned(),
        });
    }
    let user = User::set_role(&mut conn, id, role.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user with id {id}")))?;
    tracing::info!(user.role = role.as_str(), "user role changed");
    Ok(response::ok(PublicUser::from(user), "User role updated"))
}

//! `/api/admin/notifications`: the dead letters (and any other status) and their retry.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::auth::AuthUser;
use crate::http::query;
use crate::http::response;
use crate::notifications::outbox;
use crate::state::AppState;

/// `GET /api/admin/notifications?status=failed|pending|sent&limit&before`: newest first.
/// Rows show the kind, recipient user id, facts and last error — never an email address.
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let mut errors = Vec::new();
    let mut status = "failed".to_owned();
    let mut limit = 50i64;
    let mut before = None;
    for (k, v) in query.iter() {
        match k.as_str() {
            "status" if matches!(v.as_str(), "failed" | "pending" | "sent") => status = v.clone(),
            "status" => errors.push(FieldError::new("status", "must be failed, pending or sent")),
            "limit" => {
                if let Some(n) = query::limit("limit", v, 200, &mut errors) {
                    limit = n as i64;
                }
            }
            "before" => before = query::id("before", v, &mut errors).or(before),
            other => errors.push(FieldError::new(other, "unknown query parameter")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let mut conn = state.db().get().await?;
    caller.require_admin(&mut conn).await?;
    let rows = outbox::list(&mut conn, &status, before, limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next = if has_more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(response::ok(
        json!({ "items": rows, "pageInfo": { "hasMore": has_more, "nextBefore": next } }),
        "Notifications",
    ))
}

/// `POST /api/admin/notifications/{id}/retry`: puts a dead letter back in line (409 unless it
/// is `failed`).
pub async fn retry(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = crate::events::routes::path_id(&path)?;
    retry_one(&state, &caller, id).await?;
    Ok(response::ok(
        json!({ "id": id, "status": "pending" }),
        "Notification queued again",
    ))
}

/// Puts dead letter `id` back in line (an admin only; 409 unless it is `failed`). The API's
/// retry and the admin's notifications page both come here.
pub async fn retry_one(state: &AppState, caller: &AuthUser, id: i64) -> ApiResult<()> {
    let mut conn = state.db().get().await?;
    caller.require_admin(&mut conn).await?;
    if !outbox::retry(&mut conn, id).await? {
        return Err(ApiError::Conflict {
            code: "not_failed",
            message: format!("notification {id} is not a failed notification"),
        });
    }
    crate::notifications::wake(state);
    Ok(())
}

//! What an authenticated caller may do **now**: the checks that re-read the caller's row, so a
//! demotion or a deleted account takes effect at once, not when the access token expires. They
//! are the users feature's, on the HTTP layer's [`AuthUser`] (which knows only the token).

use crate::error::ApiError;
use crate::http::auth::{AuthUser, Role};

impl AuthUser {
    /// 403 unless the caller is an admin *now*: re-reads the user, so a demoted or deleted
    /// admin loses access immediately (401 if the user no longer exists).
    pub async fn require_admin(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
    ) -> Result<super::model::User, ApiError> {
        self.require(&[Role::Admin])?;
        let user = self.load(conn).await?;
        if user.role != Role::Admin.as_str() {
            return Err(ApiError::Forbidden(
                "this action needs the role admin".to_owned(),
            ));
        }
        Ok(user)
    }

    /// 403 unless the caller may publish events **now**: a host or an admin (re-read, like
    /// [`Self::require_admin`]) whose email address is confirmed (`email_unverified`
    /// otherwise: the platform sends mail in the host's name to their buyers).
    pub async fn require_publisher(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
    ) -> Result<super::model::User, ApiError> {
        self.require(&[Role::Host, Role::Admin])?;
        let user = self.load(conn).await?;
        let role = Role::parse(&user.role).unwrap_or(Role::Guest);
        if !matches!(role, Role::Host | Role::Admin) {
            return Err(ApiError::Forbidden(
                "this action needs the role host or admin".to_owned(),
            ));
        }
        if user.email_verified_at.is_none() {
            return Err(ApiError::Denied {
                code: "email_unverified",
                message: "confirm your email address first (POST /api/user/verify-email/resend sends the link again)".to_owned(),
            });
        }
        Ok(user)
    }

    /// Whether the caller may manage what `host_id` hosts (an event: change it, cancel it, see
    /// its stats, its waitlist, or it once cancelled) **now**: an admin, or its host while
    /// still a host. The role is re-read from the database — a demotion takes effect at once,
    /// not when the access token expires (a host demoted to guest loses their events to the
    /// admins). A token that could not grant it costs no query.
    pub async fn manages(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        host_id: i64,
    ) -> Result<bool, ApiError> {
        if self.role != Role::Admin && self.id != host_id {
            return Ok(false);
        }
        let role = Role::parse(&self.load(conn).await?.role).unwrap_or(Role::Guest);
        Ok(role == Role::Admin || (self.id == host_id && role == Role::Host))
    }

    /// The caller's row; 401 when the user was deleted after the token was issued.
    pub async fn load(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
    ) -> Result<super::model::User, ApiError> {
        super::model::User::find(conn, self.id)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".to_owned()))
    }
}

//! Tokens and the [`AuthUser`] extractor.
//!
//! Access and refresh tokens are HS256 JWTs (jwt-simple) signed with separate keys
//! (`auth.access_token_secret`, `auth.refresh_token_secret`). Verification checks the
//! signature, expiry (5 s clock tolerance), issuer and audience; the audience differs between
//! the two kinds, so a refresh token is never accepted as an access token or the reverse.
//!
//! Claims: `sub` = user id, `jti` = token id, `role` (custom). The role in an access token is
//! trusted until it expires (`auth.access_token_ttl`, 15 min by default): that is how long a
//! role change takes to reach a session that does not log in again. Admin routes re-read the
//! user from the database ([`AuthUser::require_admin`]), so a demotion or deletion stops admin
//! access at once.

use std::collections::HashSet;
use std::future::{Ready, ready};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use jwt_simple::prelude::*;
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{AuthSettings, Environment, parse_duration};
use crate::error::ApiError;
use crate::users::domain::Role;

/// `iss` of every token.
pub const ISSUER: &str = "atomicseats";
/// `aud` of access tokens.
pub const ACCESS_AUDIENCE: &str = "atomicseats-api";
/// `aud` of refresh tokens.
pub const REFRESH_AUDIENCE: &str = "atomicseats-refresh";
/// Name of the access token cookie (the seed's).
pub const ACCESS_COOKIE: &str = "accessToken";
/// Name of the refresh token cookie (the seed's).
pub const REFRESH_COOKIE: &str = "refreshToken";
/// Clock drift tolerated when checking `exp`/`nbf`.
const TIME_TOLERANCE: Duration = Duration::from_secs(5);
/// Tokens longer than this are rejected before any parsing.
const MAX_TOKEN_LENGTH: usize = 4096;

/// Custom claims of our tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleClaim {
    /// The user's role when the token was issued.
    pub role: Role,
}

/// The signing keys and lifetimes.
#[derive(Clone)]
pub struct TokenKeys {
    access: HS256Key,
    refresh: HS256Key,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Its `jti`.
    pub id: uuid::Uuid,
    /// Its expiry.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Verified claims of a refresh token.
#[derive(Debug, Clone)]
pub struct RefreshClaims {
    /// The user.
    pub user_id: i64,
    /// The token id.
    pub token_id: uuid::Uuid,
}

fn random_key() -> HS256Key {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    HS256Key::from_bytes(&bytes)
}

impl TokenKeys {
    /// Keys from configuration. Outside production a missing secret is replaced by a random
    /// per-process key (tokens then do not survive a restart), with a warning.
    pub fn from_settings(auth: &AuthSettings, env: Environment) -> anyhow::Result<Self> {
        let key = |secret: &Option<secrecy::SecretString>, name: &str| match secret {
            Some(s) if !s.expose_secret().is_empty() => {
                Ok(HS256Key::from_bytes(s.expose_secret().as_bytes()))
            }
            _ if env == Environment::Production => {
                anyhow::bail!("`{name}` is required in production")
            }
            _ => {
                if env == Environment::Local {
                    tracing::warn!(
                        key = name,
                        "no secret configured: using a random key, tokens end with this process"
                    );
                }
                Ok(random_key())
            }
        };
        Ok(Self {
            access: key(&auth.access_token_secret, "auth.access_token_secret")?,
            refresh: key(&auth.refresh_token_secret, "auth.refresh_token_secret")?,
            access_ttl: parse_duration(&auth.access_token_ttl)
                .ok_or_else(|| anyhow::anyhow!("`auth.access_token_ttl` is invalid"))?,
            refresh_ttl: parse_duration(&auth.refresh_token_ttl)
                .ok_or_else(|| anyhow::anyhow!("`auth.refresh_token_ttl` is invalid"))?,
        })
    }

    fn issue(
        key: &HS256Key,
        audience: &str,
        user_id: i64,
        role: Role,
        ttl: Duration,
    ) -> anyhow::Result<IssuedToken> {
        let id = uuid::Uuid::new_v4();
        let claims = Claims::with_custom_claims(RoleClaim { role }, ttl.into())
            .with_issuer(ISSUER)
            .with_audience(audience)
            .with_subject(user_id)
            .with_jwt_id(id);
        let token = key
            .authenticate(claims)
            .map_err(|e| anyhow::anyhow!("signing a token: {e}"))?;
        let expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::minutes(15));
        Ok(IssuedToken {
            token,
            id,
            expires_at,
        })
    }

    /// A new access token for `user_id` with `role`.
    pub fn issue_access(&self, user_id: i64, role: Role) -> anyhow::Result<IssuedToken> {
        Self::issue(
            &self.access,
            ACCESS_AUDIENCE,
            user_id,
            role,
            self.access_ttl,
        )
    }

    /// A new refresh token for `user_id`.
    pub fn issue_refresh(&self, user_id: i64, role: Role) -> anyhow::Result<IssuedToken> {
        Self::issue(
            &self.refresh,
            REFRESH_AUDIENCE,
            user_id,
            role,
            self.refresh_ttl,
        )
    }

    fn options(audience: &str) -> VerificationOptions {
        VerificationOptions {
            allowed_issuers: Some(HashSet::from([ISSUER.to_owned()])),
            allowed_audiences: Some(HashSet::from([audience.to_owned()])),
            time_tolerance: Some(TIME_TOLERANCE.into()),
            max_token_length: Some(MAX_TOKEN_LENGTH),
            ..Default::default()
        }
    }

    fn verify(
        key: &HS256Key,
        audience: &str,
        token: &str,
    ) -> Result<(i64, uuid::Uuid, Role), ApiError> {
        let invalid = || ApiError::Unauthorized("invalid or expired token".to_owned());
        let claims = key
            .verify_token::<RoleClaim>(token, Some(Self::options(audience)))
            .map_err(|_| invalid())?;
        let user_id = claims
            .subject
            .as_deref()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(invalid)?;
        let token_id = claims
            .jwt_id
            .as_deref()
            .and_then(|s| s.parse::<uuid::Uuid>().ok())
            .ok_or_else(invalid)?;
        Ok((user_id, token_id, claims.custom.role))
    }

    /// Verifies an access token.
    pub fn verify_access(&self, token: &str) -> Result<AuthUser, ApiError> {
        let (id, token_id, role) = Self::verify(&self.access, ACCESS_AUDIENCE, token)?;
        Ok(AuthUser { id, role, token_id })
    }

    /// Verifies a refresh token's signature and claims (the database decides if it is live).
    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, ApiError> {
        let (user_id, token_id, _) = Self::verify(&self.refresh, REFRESH_AUDIENCE, token)?;
        Ok(RefreshClaims { user_id, token_id })
    }
}

/// The authenticated caller, from a verified access token (`Authorization: Bearer`, or the
/// `accessToken` cookie). Extracting it fails with 401 when the token is missing or invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// Role at issue time.
    pub role: Role,
    /// The access token's id.
    pub token_id: uuid::Uuid,
}

impl AuthUser {
    /// 403 unless the token's role is one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this action needs the role {}",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )))
        }
    }

    /// 403 unless the caller is an admin *now*: re-reads the user, so a demoted or deleted
    /// admin loses access immediately (401 if the user no longer exists).
    pub async fn require_admin(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
    ) -> Result<crate::users::model::User, ApiError> {
        self.require(&[Role::Admin])?;
        let user = self.load(conn).await?;
        if user.role != Role::Admin.as_str() {
            return Err(ApiError::Forbidden(
                "this action needs the role admin".to_owned(),
            ));
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
    ) -> Result<crate::users::model::User, ApiError> {
        crate::users::model::User::find(conn, self.id)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".to_owned()))
    }
}

/// The access token of a request: the `Authorization: Bearer` header, else the cookie.
pub fn access_token(req: &HttpRequest) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    bearer.or_else(|| req.cookie(ACCESS_COOKIE).map(|c| c.value().to_owned()))
}

/// Verifies the request's access token once and caches the result in the request extensions
/// (the rate limiter and the extractor share it).
pub fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    if let Some(user) = req.extensions().get::<AuthUser>() {
        return Ok(*user);
    }
    let state = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("app state missing")))?;
    let token = access_token(req)
        .ok_or_else(|| ApiError::Unauthorized("authentication required".to_owned()))?;
    let user = state.tokens().verify_access(&token)?;
    req.extensions_mut().insert(user);
    Ok(user)
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

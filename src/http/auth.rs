//! Tokens and the [`AuthUser`] extractor.
//!
//! Access and refresh tokens are HS256 JWTs (jwt-simple) signed with separate keys
//! (`auth.access_token_secret`, `auth.refresh_token_secret`). Verification checks the
//! signature, expiry (5 s clock tolerance), issuer and audience; the audience differs between
//! the two kinds, so a refresh token is never accepted as an access token or the reverse.
//!
//! Claims: `sub` = user id, `jti` = token id, `role` and `iatMs` (custom). The role in an access
//! token only opens doors that do not need it checked again: every decision that depends on
//! being an admin or a host re-reads the user ([`AuthUser::require_admin`],
//! [`AuthUser::manages`]), so a demotion or deletion takes effect at once.
//!
//! **Revocation.** Logout revokes the presented access token (its `jti`) and a password change
//! or `logout?all=true` every access token of the user issued before that moment; the facts
//! live in the [`Ephemeral`](crate::ephemeral::Ephemeral) store (Redis when configured, shared
//! by every node) until the tokens would have expired anyway. The [`AuthUser`] extractor checks
//! them on every request: one lookup in this process, or one `MGET` with Redis. If Redis fails
//! the check fails open (logged, `auth_revocation_check_errors_total`): the signature and
//! expiry still hold, and refresh tokens are revoked in PostgreSQL regardless.

use std::collections::HashSet;
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

/// `iss` of every token.
pub const ISSUER: &str = "atomicseats";
/// `aud` of access tokens.
pub const ACCESS_AUDIENCE: &str = "atomicseats-api";
/// `aud` of refresh tokens.
pub const REFRESH_AUDIENCE: &str = "atomicseats-refresh";
/// `aud` of email verification tokens (signed with the access key; never an access token).
pub const VERIFY_EMAIL_AUDIENCE: &str = "atomicseats-verify-email";
/// `aud` of device tokens (signed with the refresh key).
pub const DEVICE_AUDIENCE: &str = "atomicseats-device";
/// Name of the device cookie: this browser has logged in to this account before.
pub const DEVICE_COOKIE: &str = "deviceToken";
/// How long a device is remembered.
pub const DEVICE_TTL: Duration = Duration::from_secs(180 * 24 * 3600);
/// How long an email verification link works.
pub const VERIFY_EMAIL_TTL: Duration = Duration::from_secs(48 * 3600);
/// Name of the access token cookie (the seed's).
pub const ACCESS_COOKIE: &str = "accessToken";
/// Name of the refresh token cookie (the seed's).
pub const REFRESH_COOKIE: &str = "refreshToken";
/// Name of the pages' session cookie: a refresh token of its own, sent on every path, that
/// renews the access token of a browser using the pages (`crate::web`).
pub const PAGE_SESSION_COOKIE: &str = "asSession";
/// Clock drift tolerated when checking `exp`/`nbf`.
const TIME_TOLERANCE: Duration = Duration::from_secs(5);
/// Tokens longer than this are rejected before any parsing.
const MAX_TOKEN_LENGTH: usize = 4096;
/// Access tokens whose verification one process remembers (see [`VerifiedTokens`]).
const VERIFIED_TOKENS_MAX: usize = 32_768;

/// What a user may do. Stored as text in `users.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Books tickets.
    Guest,
    /// Also publishes and manages their own events.
    Host,
    /// Manages everything.
    Admin,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::Host => "host",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored and wire name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "guest" => Ok(Self::Guest),
            "host" => Ok(Self::Host),
            "admin" => Ok(Self::Admin),
            _ => Err("must be one of guest, host, admin".to_owned()),
        }
    }
}

/// Custom claims of our tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleClaim {
    /// The user's role when the token was issued.
    pub role: Role,
    /// Issue time in Unix milliseconds (the standard `iat` has whole seconds, too coarse to
    /// tell a token issued just before a password change from one issued just after).
    #[serde(default, rename = "iatMs")]
    pub issued_ms: i64,
}

/// Custom claim of email verification tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailClaim {
    /// The address, lower-cased.
    pub email: String,
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
    /// Access tokens verified by this process.
    verified: std::sync::Arc<VerifiedTokens>,
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
    /// When it was issued, Unix milliseconds (the `iatMs` claim).
    pub issued_ms: i64,
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
            verified: std::sync::Arc::new(VerifiedTokens::new(VERIFIED_TOKENS_MAX)),
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
        let issued_ms = chrono::Utc::now().timestamp_millis();
        let claims = Claims::with_custom_claims(RoleClaim { role, issued_ms }, ttl.into())
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
            issued_ms,
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
    ) -> Result<(i64, uuid::Uuid, RoleClaim, i64), ApiError> {
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
        let expires = claims.expires_at.map_or(0, |t| t.as_secs() as i64);
        Ok((user_id, token_id, claims.custom, expires))
    }

    /// Verifies an access token (signature, expiry, audience; revocation is checked by the
    /// extractor). A token this process verified before is not verified again until it
    /// expires ([`VerifiedTokens`]).
    pub fn verify_access(&self, token: &str) -> Result<AuthUser, ApiError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(user) = self.verified.get(token, now) {
            return Ok(user);
        }
        let (id, token_id, claim, expires) = Self::verify(&self.access, ACCESS_AUDIENCE, token)?;
        let user = AuthUser {
            id,
            role: claim.role,
            token_id,
            issued_ms: claim.issued_ms,
            expires_at: expires,
        };
        self.verified.insert(token, user);
        Ok(user)
    }

    /// A token proving that whoever holds it received mail at `email` for `user_id`. Minted when
    /// the verification email is sent (so no token is stored anywhere), valid 48 hours.
    pub fn issue_email_verification(&self, user_id: i64, email: &str) -> anyhow::Result<String> {
        let claim = EmailClaim {
            email: email.to_lowercase(),
        };
        self.sign_scoped(VERIFY_EMAIL_AUDIENCE, user_id, claim, VERIFY_EMAIL_TTL)
    }

    /// A device token: proof that this client logged in to `user_id` before. With it, logins
    /// are throttled per device instead of per account, so that someone guessing the password
    /// from elsewhere cannot lock the owner out.
    pub fn issue_device(&self, user_id: i64) -> anyhow::Result<String> {
        let claims = Claims::create(DEVICE_TTL.into())
            .with_issuer(ISSUER)
            .with_audience(DEVICE_AUDIENCE)
            .with_subject(user_id)
            .with_jwt_id(uuid::Uuid::new_v4());
        self.refresh
            .authenticate(claims)
            .map_err(|e| anyhow::anyhow!("signing a token: {e}"))
    }

    /// The user and device id of a valid device token.
    pub fn verify_device(&self, token: &str) -> Option<(i64, String)> {
        let claims = self
            .refresh
            .verify_token::<NoCustomClaims>(token, Some(Self::options(DEVICE_AUDIENCE)))
            .ok()?;
        let user = claims.subject.as_deref()?.parse().ok()?;
        Some((user, claims.jwt_id?))
    }

    /// The user id and address an email verification token was issued for.
    pub fn verify_email_token(&self, token: &str) -> Result<(i64, String), ApiError> {
        let invalid = || ApiError::BadRequest {
            code: "invalid_verification_token",
            message: "the verification link is invalid or expired; ask for a new one".to_owned(),
        };
        let claims = self
            .access
            .verify_token::<EmailClaim>(token, Some(Self::options(VERIFY_EMAIL_AUDIENCE)))
            .map_err(|_| invalid())?;
        let user = claims
            .subject
            .as_deref()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(invalid)?;
        Ok((user, claims.custom.email))
    }

    /// HMAC-SHA256 of `data` for `purpose` under the access key (e.g. a form's CSRF token
    /// bound to its browser's cookie): unforgeable without the key, different per purpose.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.access.to_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// A token for a feature of its own (e.g. a waiting room's admission): `custom` claims
    /// about `subject`, for `audience`, valid for `ttl`, signed with
    /// the access key. Audiences keep the kinds apart: one never passes for another.
    pub fn sign_scoped<C: Serialize + serde::de::DeserializeOwned>(
        &self,
        audience: &str,
        subject: i64,
        custom: C,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let claims = Claims::with_custom_claims(custom, ttl.into())
            .with_issuer(ISSUER)
            .with_audience(audience)
            .with_subject(subject);
        self.access
            .authenticate(claims)
            .map_err(|e| anyhow::anyhow!("signing a token: {e}"))
    }

    /// The subject, custom claims and expiry (Unix seconds) of a token made by
    /// [`Self::sign_scoped`] for `audience`, whose signature is good. Its expiry is **not**
    /// checked here, so that the caller can tell an expired token from a forged one.
    pub fn verify_scoped<C: Serialize + serde::de::DeserializeOwned>(
        &self,
        audience: &str,
        token: &str,
    ) -> Option<(i64, C, i64)> {
        let options = VerificationOptions {
            time_tolerance: Some(jwt_simple::prelude::Duration::from_days(3650)),
            ..Self::options(audience)
        };
        let claims = self.access.verify_token::<C>(token, Some(options)).ok()?;
        let subject = claims.subject.as_deref()?.parse().ok()?;
        let expires = i64::try_from(claims.expires_at?.as_secs()).ok()?;
        Some((subject, claims.custom, expires))
    }

    /// Verifies a refresh token's signature and claims (the database decides if it is live).
    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, ApiError> {
        let (user_id, token_id, _, _) = Self::verify(&self.refresh, REFRESH_AUDIENCE, token)?;
        Ok(RefreshClaims { user_id, token_id })
    }
}

/// Access tokens this process has verified, with their claims: a client sends the same token
/// with every request until it expires, and checking it again (base64, HMAC-SHA256, JSON) was
/// ~10% of the accept path's CPU in the flash-sale benchmark.
///
/// A hit needs the whole token, byte for byte (a changed signature or claim is a miss, and is
/// verified in full), and is refused once the token has expired (the same tolerance as
/// verification). Revocation is not cached: the extractor checks it on every request. The
/// tokens stay in this process's memory only, at most `max` of them (a full cache is emptied
/// and refills: bounded memory, ~13 MiB at most with 32,768 tokens).
struct VerifiedTokens {
    max: usize,
    tokens: std::sync::Mutex<std::collections::HashMap<Box<str>, AuthUser>>,
}

impl VerifiedTokens {
    fn new(max: usize) -> Self {
        Self {
            max,
            tokens: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The claims of `token` if it was verified and has not expired at `now` (Unix seconds).
    fn get(&self, token: &str, now: i64) -> Option<AuthUser> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let user = *tokens.get(token)?;
        if now > user.expires_at + TIME_TOLERANCE.as_secs() as i64 {
            tokens.remove(token);
            return None;
        }
        Some(user)
    }

    fn insert(&self, token: &str, user: AuthUser) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= self.max {
            tokens.clear();
        }
        tokens.insert(token.into(), user);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tokens.lock().map(|t| t.len()).unwrap_or(0)
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
    /// When the token was issued, Unix milliseconds.
    pub issued_ms: i64,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
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
}

/// The `Authorization: Bearer` token of a request.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
}

/// The access token of a request: the `Authorization: Bearer` header, else the cookie.
pub fn access_token(req: &HttpRequest) -> Option<String> {
    bearer(req).or_else(|| req.cookie(ACCESS_COOKIE).map(|c| c.value().to_owned()))
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

fn revoked_token_key(token: uuid::Uuid) -> String {
    format!("revoked:jti:{token}")
}

fn revoked_user_key(user: i64) -> String {
    format!("revoked:user:{user}")
}

/// Ends the access token `user` was authenticated with, now (logout). Kept until the token
/// would have expired.
pub async fn revoke_token(state: &crate::state::AppState, user: &AuthUser) -> anyhow::Result<()> {
    let left = (user.expires_at - chrono::Utc::now().timestamp()).max(0) as u64;
    state
        .ephemeral()
        .set(
            &revoked_token_key(user.token_id),
            "1",
            Duration::from_secs(left) + TIME_TOLERANCE,
        )
        .await
}

/// Ends every access token of `user_id` issued before now (password change, logout
/// everywhere). Kept for one access-token lifetime, after which they have expired anyway.
pub async fn revoke_user_tokens(
    state: &crate::state::AppState,
    user_id: i64,
) -> anyhow::Result<()> {
    revoke_user_tokens_before(state, user_id, chrono::Utc::now().timestamp_millis()).await
}

/// Ends every access token of `user_id` issued at or before `at_ms` (Unix milliseconds).
pub async fn revoke_user_tokens_before(
    state: &crate::state::AppState,
    user_id: i64,
    at_ms: i64,
) -> anyhow::Result<()> {
    let now = at_ms;
    state
        .ephemeral()
        .set(
            &revoked_user_key(user_id),
            &now.to_string(),
            state.tokens().access_ttl + TIME_TOLERANCE,
        )
        .await
}

/// 401 when the token was revoked (see the module docs; fails open when the store fails).
async fn check_not_revoked(
    state: &crate::state::AppState,
    user: &AuthUser,
) -> Result<(), ApiError> {
    let keys = [revoked_token_key(user.token_id), revoked_user_key(user.id)];
    match state.ephemeral().get_many(&keys).await {
        Ok(found) => {
            let token_revoked = found.first().is_some_and(Option::is_some);
            let user_revoked_at = found
                .get(1)
                .and_then(|v| v.as_deref())
                .and_then(|v| v.parse::<i64>().ok());
            if token_revoked || user_revoked_at.is_some_and(|at| user.issued_ms <= at) {
                return Err(ApiError::Unauthorized(
                    "this session has ended; log in again".to_owned(),
                ));
            }
            Ok(())
        }
        Err(e) => {
            metrics::counter!("auth_revocation_check_errors_total").increment(1);
            tracing::warn!(error = %e, "token revocation check failed; allowing the token");
            Ok(())
        }
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user = authenticate(req);
        let state = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .cloned();
        Box::pin(async move {
            let user = user?;
            if let Some(state) = state {
                check_not_revoked(&state, &user).await?;
            }
            Ok(user)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(verified: std::sync::Arc<VerifiedTokens>) -> TokenKeys {
        TokenKeys {
            access: random_key(),
            refresh: random_key(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
            verified,
        }
    }

    /// `token` with the character at `at` replaced by another base64url character.
    fn altered(token: &str, at: usize) -> String {
        let mut bytes = token.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'Q' { b'R' } else { b'Q' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_verified_token_is_remembered_with_its_claims() {
        let k = keys(std::sync::Arc::new(VerifiedTokens::new(8)));
        let issued = k.issue_access(42, Role::Host).unwrap();
        let first = k.verify_access(&issued.token).unwrap();
        assert_eq!(k.verified.len(), 1);
        assert_eq!(k.verify_access(&issued.token).unwrap(), first);
        assert_eq!(
            (first.id, first.role, first.token_id),
            (42, Role::Host, issued.id)
        );
        assert_eq!(first.issued_ms, issued.issued_ms);
        // The answer comes from the cache: keys that never signed it still see it verified.
        let other = TokenKeys {
            verified: k.verified.clone(),
            ..keys(std::sync::Arc::new(VerifiedTokens::new(8)))
        };
        assert_eq!(other.verify_access(&issued.token).unwrap(), first);
        assert!(
            keys(std::sync::Arc::new(VerifiedTokens::new(8)))
                .verify_access(&issued.token)
                .is_err()
        );
    }

    #[test]
    fn a_token_differing_from_a_remembered_one_is_verified_in_full() {
        let k = keys(std::sync::Arc::new(VerifiedTokens::new(8)));
        let token = k.issue_access(7, Role::Guest).unwrap().token;
        k.verify_access(&token).unwrap();
        let dots: Vec<usize> = token.match_indices('.').map(|(i, _)| i).collect();
        let in_claims = (dots[0] + dots[1]) / 2;
        let in_signature = (dots[1] + token.len()) / 2;
        for at in [in_claims, in_signature] {
            let forged = altered(&token, at);
            assert_ne!(forged, token);
            assert!(k.verify_access(&forged).is_err(), "altered at {at}");
        }
        assert!(k.verify_access(&format!("{token}x")).is_err());
        assert_eq!(k.verified.len(), 1, "refused tokens are not remembered");
    }

    #[test]
    fn a_remembered_token_is_refused_once_expired() {
        let cache = VerifiedTokens::new(8);
        let user = AuthUser {
            id: 1,
            role: Role::Guest,
            token_id: uuid::Uuid::new_v4(),
            issued_ms: 0,
            expires_at: 1_000,
        };
        cache.insert("t", user);
        let tolerance = TIME_TOLERANCE.as_secs() as i64;
        assert_eq!(cache.get("t", 1_000 + tolerance), Some(user));
        assert_eq!(cache.get("t", 1_001 + tolerance), None);
        assert_eq!(cache.len(), 0, "an expired token is forgotten");
        assert_eq!(cache.get("t", 0), None);
    }

    #[test]
    fn the_cache_holds_at_most_its_bound() {
        let k = keys(std::sync::Arc::new(VerifiedTokens::new(4)));
        for user in 0..10 {
            let token = k.issue_access(user, Role::Guest).unwrap().token;
            assert_eq!(k.verify_access(&token).unwrap().id, user);
            assert!(k.verified.len() <= 4);
        }
    }
}

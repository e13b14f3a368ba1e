//! `/api/user/*`: register, login, refresh, logout, me.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::auth::{ACCESS_COOKIE, AuthUser, IssuedToken, REFRESH_COOKIE};
use crate::http::extract::ApiJson;
use crate::http::response;
use crate::state::AppState;
use crate::users::domain::{self, Role};
use crate::users::model::{PublicUser, RefreshToken, Taken, User};
use crate::users::password;

/// Path the refresh cookie is scoped to: only refresh and logout read it.
const REFRESH_COOKIE_PATH: &str = "/api/user";

/// `GET /api/user/`: what this API is and where its endpoints are.
pub async fn api_info() -> HttpResponse {
    response::ok(
        json!({
            "name": "AtomicSeats API",
            "version": env!("CARGO_PKG_VERSION"),
            "endpoints": {
                "register": "POST /api/user/register",
                "login": "POST /api/user/login",
                "refresh": "POST /api/user/refresh",
                "logout": "POST /api/user/logout",
                "me": "GET /api/user/me",
                "bookings": "GET /api/user/bookings",
                "events": "/api/events",
                "admin": "/api/admin",
                "health": "GET /health",
            },
        }),
        "Welcome to AtomicSeats API",
    )
}

/// `POST /api/user/register` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    username: Option<String>,
    name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    role: Option<String>,
}

fn required<'a>(
    value: &'a Option<String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match value.as_deref() {
        Some(v) => Some(v),
        None => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
    }
}

fn collect<T>(
    field: &str,
    result: Option<Result<T, String>>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match result? {
        Ok(v) => Some(v),
        Err(message) => {
            errors.push(FieldError::new(field, message));
            None
        }
    }
}

/// Validates every field and reports all problems at once.
fn validate_registration(body: &RegisterBody) -> ApiResult<(String, String, String, Role)> {
    let mut errors = Vec::new();
    let username = required(&body.username, "username", &mut errors);
    let name = required(&body.name, "name", &mut errors);
    let email = required(&body.email, "email", &mut errors);
    let password = required(&body.password, "password", &mut errors);
    let username = collect(
        "username",
        username.map(domain::parse_username),
        &mut errors,
    );
    let name = collect("name", name.map(domain::parse_name), &mut errors);
    let email = collect("email", email.map(domain::parse_email), &mut errors);
    collect(
        "password",
        password.map(domain::check_password),
        &mut errors,
    );
    let role = match body.role.as_deref() {
        None | Some("") => Some(Role::Guest),
        Some(raw) => collect("role", Some(Role::parse(raw)), &mut errors),
    };
    match (username, name, email, role) {
        (Some(u), Some(n), Some(e), Some(r)) if errors.is_empty() => Ok((u, n, e, r)),
        _ => Err(ApiError::fields(errors)),
    }
}

/// `POST /api/user/register` → 201 with the user (never the hash).
#[tracing::instrument(name = "register", skip_all, fields(user.id = tracing::field::Empty))]
pub async fn register(
    state: web::Data<AppState>,
    body: ApiJson<RegisterBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let (username, name, email, role) = validate_registration(&body)?;
    if role == Role::Admin {
        return Err(ApiError::Forbidden(
            "admin accounts cannot be self-registered; an admin promotes users".to_owned(),
        ));
    }
    let password = body.password.unwrap_or_default();
    match crate::users::create(&state, &username, &name, &email, role, password).await? {
        Ok(user) => {
            tracing::Span::current().record("user.id", user.id);
            tracing::info!("user registered");
            Ok(response::created(
                PublicUser::from(user),
                "User created successfully",
            ))
        }
        Err(taken) => Err(ApiError::Conflict {
            code: "user_exists",
            message: match taken {
                Taken::Email => "a user with this email already exists",
                Taken::Username => "a user with this username already exists",
            }
            .to_owned(),
        }),
    }
}

/// `POST /api/user/login` body: `email` or `username` (either may hold either), `password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age_secs: i64,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time::Duration::seconds(max_age_secs))
        .finish()
}

/// A new pair of tokens for a user.
struct Session {
    user: User,
    access: IssuedToken,
    refresh: IssuedToken,
}

/// Issues an access token and a refresh token in `family` and stores the refresh token's hash.
async fn create_session(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    user: User,
    family: Uuid,
) -> ApiResult<Session> {
    let role = Role::parse(&user.role).map_err(|e| anyhow::anyhow!("stored role: {e}"))?;
    let keys = state.tokens();
    let access = keys.issue_access(user.id, role)?;
    let refresh: IssuedToken = keys.issue_refresh(user.id, role)?;
    RefreshToken {
        id: refresh.id,
        user_id: user.id,
        family_id: family,
        token_hash: sha256(&refresh.token),
        expires_at: refresh.expires_at,
        rotated_at: None,
        revoked_at: None,
    }
    .insert(conn)
    .await?;
    Ok(Session {
        user,
        access,
        refresh,
    })
}

/// The login/refresh answer: tokens in the body and as httpOnly cookies.
fn session_response(state: &AppState, session: Session, message: &str) -> ApiResult<HttpResponse> {
    let Session {
        user,
        access,
        refresh,
    } = session;
    let keys = state.tokens();
    let secure = state.settings().auth.cookie_secure;
    let mut resp = response::ok(
        json!({
            "user": PublicUser::from(user),
            "accessToken": access.token,
            "refreshToken": refresh.token,
            "accessTokenExpiresAt": access.expires_at,
            "refreshTokenExpiresAt": refresh.expires_at,
        }),
        message,
    );
    let access_secs = keys.access_ttl.as_secs() as i64;
    let refresh_secs = keys.refresh_ttl.as_secs() as i64;
    resp.add_cookie(&cookie(
        ACCESS_COOKIE,
        access.token,
        "/",
        access_secs,
        secure,
    ))
    .map_err(|e| anyhow::anyhow!("cookie: {e}"))?;
    resp.add_cookie(&cookie(
        REFRESH_COOKIE,
        refresh.token,
        REFRESH_COOKIE_PATH,
        refresh_secs,
        secure,
    ))
    .map_err(|e| anyhow::anyhow!("cookie: {e}"))?;
    Ok(resp)
}

/// `POST /api/user/login` → 200 `{ user, accessToken, refreshToken }` plus httpOnly cookies.
/// Unknown user and wrong password give the same 401 in the same time.
#[tracing::instrument(name = "login", skip_all, fields(user.id = tracing::field::Empty))]
pub async fn login(
    state: web::Data<AppState>,
    body: ApiJson<LoginBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let login = body
        .email
        .as_deref()
        .or(body.username.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let mut errors = Vec::new();
    if login.is_none() {
        errors.push(FieldError::new("email", "email or username is required"));
    }
    let password = body.password.clone().filter(|p| !p.is_empty());
    if password.is_none() {
        errors.push(FieldError::new("password", "is required"));
    }
    let (Some(login), Some(password)) = (login, password) else {
        return Err(ApiError::fields(errors));
    };
    // Over-long input can never match; answer like a wrong password (after the same work).
    let mut conn = state.db().get().await?;
    let user = if login.len() <= 254 {
        User::find_by_login(&mut conn, login).await?
    } else {
        None
    };
    let cost = state.settings().auth.bcrypt_cost;
    let ok = password::verify(
        password,
        user.as_ref().map(|u| u.password_hash.clone()),
        cost,
    )
    .await?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!("login failed");
        return Err(ApiError::Unauthorized("invalid credentials".to_owned()));
    };
    tracing::Span::current().record("user.id", user.id);
    tracing::info!("user logged in");
    let session = create_session(&state, &mut conn, user, Uuid::new_v4()).await?;
    session_response(&state, session, "User logged in successfully")
}

/// Body of refresh and logout: the refresh token, when not sent as the cookie.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshBody {
    refresh_token: Option<String>,
}

/// Reads an optional JSON body: empty is fine, anything else must be valid.
fn optional_body(bytes: &[u8], req: &HttpRequest) -> ApiResult<RefreshBody> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(RefreshBody::default());
    }
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType(
            "expected `Content-Type: application/json`".to_owned(),
        ));
    }
    crate::http::extract::parse_json(bytes)
}

fn presented_refresh_token(req: &HttpRequest, body: RefreshBody) -> Option<String> {
    body.refresh_token
        .filter(|t| !t.is_empty())
        .or_else(|| req.cookie(REFRESH_COOKIE).map(|c| c.value().to_owned()))
}

/// `POST /api/user/refresh` → new access and refresh tokens. The presented token is rotated;
/// presenting an already-rotated (or revoked) token revokes its whole family.
#[tracing::instrument(name = "refresh", skip_all, fields(user.id = tracing::field::Empty))]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> ApiResult<HttpResponse> {
    let body = optional_body(&bytes, &req)?;
    let token = presented_refresh_token(&req, body).ok_or_else(|| {
        ApiError::Unauthorized(
            "a refresh token is required (body `refreshToken` or cookie)".to_owned(),
        )
    })?;
    let claims = state.tokens().verify_refresh(&token)?;
    let hash = sha256(&token);
    let mut conn = state.db().get().await?;
    let app = state.clone().into_inner();
    let outcome = conn
        .transaction(async |conn| {
            let stored = RefreshToken::find_by_hash(conn, &hash)
                .await?
                .filter(|t| t.id == claims.token_id && t.user_id == claims.user_id)
                .ok_or_else(|| ApiError::Unauthorized("invalid or expired token".to_owned()))?;
            tracing::Span::current().record("user.id", stored.user_id);
            let live = stored.rotated_at.is_none()
                && stored.revoked_at.is_none()
                && stored.expires_at > chrono::Utc::now();
            if !live || !RefreshToken::mark_rotated(conn, stored.id).await? {
                if stored.rotated_at.is_some() || stored.revoked_at.is_none() {
                    // A rotated token came back: someone holds a copy. End that login everywhere.
                    let n = RefreshToken::revoke_family(conn, stored.family_id).await?;
                    tracing::warn!(
                        tokens.revoked = n,
                        "refresh token reuse detected; family revoked"
                    );
                }
                return Ok(Err(ApiError::Unauthorized(
                    "refresh token was already used or revoked; log in again".to_owned(),
                )));
            }
            let Some(user) = User::find(conn, stored.user_id).await? else {
                return Ok(Err(ApiError::Unauthorized(
                    "the account no longer exists".to_owned(),
                )));
            };
            create_session(&app, conn, user, stored.family_id)
                .await
                .map(Ok)
        })
        .await?;
    // A reuse answer is an `Err` inside a committed transaction: the revocation sticks.
    session_response(&state, outcome?, "Token refreshed")
}

/// `POST /api/user/logout[?all=true]` → revokes the presented refresh token (or every session
/// of the user) and clears the cookies.
#[tracing::instrument(name = "logout", skip_all, fields(user.id = user.id))]
pub async fn logout(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    query: web::Query<LogoutQuery>,
    bytes: web::Bytes,
) -> ApiResult<HttpResponse> {
    let body = optional_body(&bytes, &req)?;
    let mut conn = state.db().get().await?;
    user.load(&mut conn).await?;
    let revoked = if query.all.unwrap_or(false) {
        RefreshToken::revoke_all(&mut conn, user.id).await?
    } else if let Some(token) = presented_refresh_token(&req, body) {
        RefreshToken::revoke(&mut conn, user.id, &sha256(&token)).await?
    } else {
        0
    };
    tracing::info!(tokens.revoked = revoked, "user logged out");
    let secure = state.settings().auth.cookie_secure;
    let mut resp = response::ok(
        json!({ "revokedSessions": revoked }),
        "User logged out successfully",
    );
    for (name, path) in [(ACCESS_COOKIE, "/"), (REFRESH_COOKIE, REFRESH_COOKIE_PATH)] {
        let mut c = cookie(name, String::new(), path, 0, secure);
        c.make_removal();
        resp.add_cookie(&c)
            .map_err(|e| anyhow::anyhow!("cookie: {e}"))?;
    }
    Ok(resp)
}

/// `?all=true` on logout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutQuery {
    all: Option<bool>,
}

/// `GET /api/user/me` → the caller.
pub async fn me(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    let mut conn = state.db().get().await?;
    let row = user.load(&mut conn).await?;
    Ok(response::ok(PublicUser::from(row), "Current user"))
}

//! `/api/user/*`: register, login, refresh, logout, me.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::auth::{
    ACCESS_COOKIE, AuthUser, DEVICE_COOKIE, DEVICE_TTL, IssuedToken, PAGE_SESSION_COOKIE,
    REFRESH_COOKIE,
};
use crate::http::extract::ApiJson;
use crate::http::response;
use crate::state::AppState;
use crate::users::Registration;
use crate::users::domain::{self, Role};
use crate::users::model::{PublicUser, RefreshToken, User};
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
    /// Login name.
    pub username: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// `guest` (default) or `host`.
    pub role: Option<String>,
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
    let local_part = email
        .as_deref()
        .and_then(|e| e.split('@').next())
        .unwrap_or("");
    let related = [username.as_deref().unwrap_or(""), local_part];
    collect(
        "password",
        password.map(|p| domain::check_password(p, &related)),
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

/// `POST /api/user/register` → 201 `{ username, name, email, role, emailVerified: false }`
/// and a confirmation email. The same answer when the address already has an account (its
/// owner is told by email instead), so registering does not reveal who has an account; a taken
/// username is a 409 naming `username` (usernames are public handles).
#[tracing::instrument(name = "register", skip_all, fields(user.id = tracing::field::Empty))]
pub async fn register(
    state: web::Data<AppState>,
    body: ApiJson<RegisterBody>,
) -> ApiResult<HttpResponse> {
    let account = sign_up(&state, body.into_inner()).await?;
    Ok(response::created(
        account,
        "Account created: confirm your email address with the link we sent to it, then log in",
    ))
}

/// Validates a registration and creates the account (and its confirmation email); the same
/// answer whether or not the address already had an account. The API's register and the
/// register page both come here.
pub async fn sign_up(state: &AppState, body: RegisterBody) -> ApiResult<serde_json::Value> {
    let (username, name, email, role) = validate_registration(&body)?;
    if role == Role::Admin {
        return Err(ApiError::Forbidden(
            "admin accounts cannot be self-registered; an admin promotes users".to_owned(),
        ));
    }
    let password = body.password.unwrap_or_default();
    let account = crate::users::NewAccount {
        username: &username,
        name: &name,
        email: &email,
        role,
    };
    match crate::users::register(state, &account, password).await? {
        Registration::Created(user) => {
            tracing::Span::current().record("user.id", user.id);
            tracing::info!("user registered");
        }
        Registration::EmailTaken => tracing::info!("registration for a taken address"),
        Registration::UsernameTaken => {
            return Err(ApiError::Conflict {
                code: "username_taken",
                message: "this username is taken; choose another".to_owned(),
            });
        }
    }
    Ok(json!({
        "username": username,
        "name": name,
        "email": email,
        "role": role,
        "emailVerified": false,
    }))
}

/// `token` of the verification link, as a query parameter or a JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailBody {
    token: Option<String>,
}

fn verification_answer(state: &AppState, token: Option<&str>) -> ApiResult<&'static str> {
    let token = token
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 4096)
        .ok_or_else(|| ApiError::field("token", "the verification token is required"))?;
    // Checked here first so that a bad token costs no database work.
    state.tokens().verify_email_token(token)?;
    Ok("Email address confirmed")
}

/// `GET /api/user/verify-email?token=…` (the link in the email) and `POST` with `{ token }`:
/// confirms the address. Repeating it is harmless.
#[tracing::instrument(name = "verify_email", skip_all)]
pub async fn verify_email(
    state: web::Data<AppState>,
    query: web::Query<VerifyEmailBody>,
    bytes: web::Bytes,
) -> ApiResult<HttpResponse> {
    let body: VerifyEmailBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        VerifyEmailBody::default()
    } else {
        crate::http::extract::parse_json(&bytes)?
    };
    let token = body.token.or_else(|| query.into_inner().token);
    let message = verification_answer(&state, token.as_deref())?;
    let changed = crate::users::verify_email(&state, token.as_deref().unwrap_or("")).await?;
    tracing::info!(changed, "email verification");
    Ok(response::ok(json!({ "emailVerified": true }), message))
}

/// `POST /api/user/verify-email/resend` (auth): sends the confirmation email again.
#[tracing::instrument(name = "resend_verification", skip_all, fields(user.id = caller.id))]
pub async fn resend_verification(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> ApiResult<HttpResponse> {
    use crate::notifications::outbox::{self, NewNotification};
    let mut conn = state.db().get().await?;
    let user = caller.load(&mut conn).await?;
    if user.email_verified_at.is_some() {
        return Ok(response::ok(
            json!({ "emailVerified": true }),
            "Your email address is already confirmed",
        ));
    }
    outbox::enqueue(
        &mut conn,
        &[NewNotification::new(
            crate::notifications::kind::Notice::VerifyEmail,
            user.id,
            None,
            json!({}),
        )],
    )
    .await?;
    crate::notifications::wake(&state);
    Ok(response::respond(
        actix_web::http::StatusCode::ACCEPTED,
        json!({ "emailVerified": false }),
        "A new confirmation email is on its way",
    ))
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
pub struct Session {
    /// Who.
    pub user: User,
    access: IssuedToken,
    refresh: IssuedToken,
    /// Opened by a login (not a refresh): the device cookie goes with it.
    fresh_login: bool,
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
        fresh_login: false,
    })
}

/// The login/refresh answer: tokens in the body and as httpOnly cookies. A browser (a request
/// with `Sec-Fetch-Site`, which every current browser sends and no other client does) gets no
/// `refreshToken` in the body: its httpOnly cookie carries it, where page scripts cannot read
/// it. Other clients (apps, the old system's clients) keep it in the body.
fn session_response(
    state: &AppState,
    req: &HttpRequest,
    session: Session,
    message: &str,
) -> ApiResult<HttpResponse> {
    let browser = req.headers().contains_key("sec-fetch-site");
    let mut body = json!({
        "user": PublicUser::from(session.user.clone()),
        "accessToken": session.access.token,
        "accessTokenExpiresAt": session.access.expires_at,
        "refreshTokenExpiresAt": session.refresh.expires_at,
    });
    if !browser {
        body["refreshToken"] = json!(session.refresh.token);
    }
    let mut resp = response::ok(body, message);
    add_session_cookies(state, &mut resp, &session, CookieScope::Api)?;
    Ok(resp)
}

/// Whose cookies a session's refresh token goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieScope {
    /// The API's: `refreshToken` for `/api/user` only, rotated by `POST /api/user/refresh`.
    Api,
    /// The pages': [`PAGE_SESSION_COOKIE`] on every path, which renews the access token
    /// ([`renew_page_session`]) when the browser has dropped it.
    Pages,
}

/// The access token as an httpOnly cookie for every path.
pub fn add_access_cookie(
    state: &AppState,
    resp: &mut HttpResponse,
    access: &IssuedToken,
) -> ApiResult<()> {
    let secs = state.tokens().access_ttl.as_secs() as i64;
    let secure = state.settings().auth.cookie_secure;
    resp.add_cookie(&cookie(
        ACCESS_COOKIE,
        access.token.clone(),
        "/",
        secs,
        secure,
    ))
    .map_err(|e| anyhow::anyhow!("cookie: {e}").into())
}

/// The session's tokens as httpOnly cookies (the access token for every path, the refresh
/// token where `scope` says) and, after a login, the device cookie of the login throttle.
pub fn add_session_cookies(
    state: &AppState,
    resp: &mut HttpResponse,
    session: &Session,
    scope: CookieScope,
) -> ApiResult<()> {
    let secure = state.settings().auth.cookie_secure;
    let refresh_secs = state.tokens().refresh_ttl.as_secs() as i64;
    add_access_cookie(state, resp, &session.access)?;
    let (name, path) = match scope {
        CookieScope::Api => (REFRESH_COOKIE, REFRESH_COOKIE_PATH),
        CookieScope::Pages => (PAGE_SESSION_COOKIE, "/"),
    };
    resp.add_cookie(&cookie(
        name,
        session.refresh.token.clone(),
        path,
        refresh_secs,
        secure,
    ))
    .map_err(|e| anyhow::anyhow!("cookie: {e}"))?;
    if session.fresh_login {
        let device = state.tokens().issue_device(session.user.id)?;
        resp.add_cookie(&cookie(
            DEVICE_COOKIE,
            device,
            "/api/user/login",
            DEVICE_TTL.as_secs() as i64,
            secure,
        ))
        .map_err(|e| anyhow::anyhow!("cookie: {e}"))?;
    }
    Ok(())
}

/// `POST /api/user/login` → 200 `{ user, accessToken, refreshToken }` plus httpOnly cookies.
/// Unknown user and wrong password give the same 401 in the same time.
#[tracing::instrument(name = "login", skip_all, fields(user.id = tracing::field::Empty))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<LoginBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let login = body.email.as_deref().or(body.username.as_deref());
    let session = password_login(&state, &req, login, body.password).await?;
    session_response(&state, &req, session, "User logged in successfully")
}

/// Checks a login name and password (throttled per account; an unknown name costs the same
/// time and gets the same 401) and opens a session. The API's login and the login page both
/// come here.
pub async fn password_login(
    state: &AppState,
    req: &HttpRequest,
    login: Option<&str>,
    password: Option<String>,
) -> ApiResult<Session> {
    let login = login.map(str::trim).filter(|s| !s.is_empty());
    let mut errors = Vec::new();
    if login.is_none() {
        errors.push(FieldError::new("email", "email or username is required"));
    }
    let password = password.filter(|p| !p.is_empty());
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
    let throttle = LoginThrottle::new(state, req, login, user.as_ref().map(|u| u.id));
    throttle.count_attempt().await?;
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
    throttle.succeeded().await;
    tracing::Span::current().record("user.id", user.id);
    tracing::info!("user logged in");
    let mut session = create_session(state, &mut conn, user, Uuid::new_v4()).await?;
    session.fresh_login = true;
    Ok(session)
}

/// Per-account login throttle (NIST SP 800-63B: limit failed attempts without letting an
/// attacker lock the owner out). Attempts are counted per account — by user id, so its
/// username and its email share one count — in a fixed window (`auth.login_attempts` per
/// `auth.login_window`); a name nobody has is counted by name, alike. A client presenting the
/// device cookie of a past login **to that same account** is counted on its own; a device of
/// any other account counts as no device.
struct LoginThrottle<'a> {
    state: &'a AppState,
    key: String,
}

impl<'a> LoginThrottle<'a> {
    fn new(state: &'a AppState, req: &HttpRequest, login: &str, user: Option<i64>) -> Self {
        let device = req
            .cookie(DEVICE_COOKIE)
            .and_then(|c| state.tokens().verify_device(c.value()))
            .filter(|(owner, _)| Some(*owner) == user);
        let key = match (user, device) {
            (Some(user), Some((_, device))) => {
                format!("login:dev:{}", hex(&sha256(&format!("{user}:{device}"))))
            }
            (Some(user), None) => format!("login:user:{user}"),
            (None, _) => format!("login:acct:{}", hex(&sha256(&login.to_lowercase()))),
        };
        Self { state, key }
    }

    /// Counts this attempt; 429 `login_throttled` once over the limit.
    async fn count_attempt(&self) -> ApiResult<()> {
        let auth = &self.state.settings().auth;
        let window = crate::config::parse_duration(&auth.login_window)
            .unwrap_or(std::time::Duration::from_secs(900));
        if auth.login_attempts == 0 {
            return Ok(());
        }
        match self.state.ephemeral().incr(&self.key, window).await {
            Ok(n) if n > u64::from(auth.login_attempts) => {
                metrics::counter!("login_throttled_total").increment(1);
                tracing::warn!("login throttled");
                Err(ApiError::Throttled {
                    code: "login_throttled",
                    message: "too many login attempts for this account; try again later".to_owned(),
                    retry_after_secs: window.as_secs(),
                })
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "login throttle unavailable; allowing the attempt");
                Ok(())
            }
        }
    }

    /// A successful login clears its count.
    async fn succeeded(&self) {
        if let Err(e) = self.state.ephemeral().remove(&self.key).await {
            tracing::warn!(error = %e, "login throttle reset failed");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    if !crate::http::guard::is_json(req.headers()) {
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
            if !stored.is_live(chrono::Utc::now())
                || !RefreshToken::mark_rotated(conn, stored.id).await?
            {
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
    session_response(&state, &req, outcome?, "Token refreshed")
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
    let all = query.all.unwrap_or(false);
    let mut revoked = end_session(&state, &user, presented_refresh_token(&req, body), all).await?;
    if !all && let Some(page) = req.cookie(PAGE_SESSION_COOKIE) {
        revoked += end_page_session(&state, page.value()).await?;
    }
    let mut resp = response::ok(
        json!({ "revokedSessions": revoked }),
        "User logged out successfully",
    );
    clear_session_cookies(&state, &mut resp)?;
    Ok(resp)
}

/// Ends a session: its refresh token (or, with `all`, every one of the user's) is revoked, and
/// the access token ends now too. Returns the refresh tokens revoked.
pub async fn end_session(
    state: &AppState,
    user: &AuthUser,
    refresh_token: Option<String>,
    all: bool,
) -> ApiResult<usize> {
    let mut conn = state.db().get().await?;
    user.load(&mut conn).await?;
    let revoked = if all {
        RefreshToken::revoke_all(&mut conn, user.id).await?
    } else if let Some(token) = refresh_token {
        RefreshToken::revoke(&mut conn, user.id, &sha256(&token)).await?
    } else {
        0
    };
    // The access token ends now too (or every one of the user's, with `all`).
    let ended = if all {
        crate::http::auth::revoke_user_tokens(state, user.id).await
    } else {
        crate::http::auth::revoke_token(state, user).await
    };
    if let Err(e) = ended {
        tracing::warn!(error = %e, "access token revocation failed; it ends at its expiry");
    }
    tracing::info!(tokens.revoked = revoked, "user logged out");
    Ok(revoked)
}

/// A new access token for the page session `token` (the refresh token in
/// [`PAGE_SESSION_COOKIE`]) while its row is neither revoked nor expired and its user exists,
/// with the user's role as stored now. Not rotated: the row is the session, checked on every
/// renewal, so two tabs renewing at once both go on; logging out revokes it.
pub async fn renew_page_session(state: &AppState, token: &str) -> ApiResult<IssuedToken> {
    let ended = || ApiError::Unauthorized("the session has ended; log in again".to_owned());
    let claims = state.tokens().verify_refresh(token)?;
    let mut conn = state.db().get().await?;
    RefreshToken::find_by_hash(&mut conn, &sha256(token))
        .await?
        .filter(|t| {
            t.id == claims.token_id && t.user_id == claims.user_id && t.is_live(chrono::Utc::now())
        })
        .ok_or_else(ended)?;
    let user = User::find(&mut conn, claims.user_id)
        .await?
        .ok_or_else(ended)?;
    let role = Role::parse(&user.role).map_err(|e| anyhow::anyhow!("stored role: {e}"))?;
    Ok(state.tokens().issue_access(user.id, role)?)
}

/// Revokes the page session `token` (a token that does not verify is already no session).
/// Returns the rows revoked.
pub async fn end_page_session(state: &AppState, token: &str) -> ApiResult<usize> {
    let Ok(claims) = state.tokens().verify_refresh(token) else {
        return Ok(0);
    };
    let mut conn = state.db().get().await?;
    Ok(RefreshToken::revoke(&mut conn, claims.user_id, &sha256(token)).await?)
}

/// Removes the session cookies from the browser (the API's and the pages').
pub fn clear_session_cookies(state: &AppState, resp: &mut HttpResponse) -> ApiResult<()> {
    let secure = state.settings().auth.cookie_secure;
    for (name, path) in [
        (ACCESS_COOKIE, "/"),
        (REFRESH_COOKIE, REFRESH_COOKIE_PATH),
        (PAGE_SESSION_COOKIE, "/"),
    ] {
        let mut c = cookie(name, String::new(), path, 0, secure);
        c.make_removal();
        resp.add_cookie(&c)
            .map_err(|e| anyhow::anyhow!("cookie: {e}"))?;
    }
    Ok(())
}

/// `?all=true` on logout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutQuery {
    all: Option<bool>,
}

/// `POST /api/user/password` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
}

/// `POST /api/user/password { currentPassword, newPassword }` → 200 with a new session
/// (tokens and cookies, as login): the password is replaced and every session of the account
/// ends at once — refresh tokens revoked, access tokens revoked. Wrong current password → 401,
/// counted by the login throttle; a new password against the policy → 400 naming
/// `newPassword`.
#[tracing::instrument(name = "change_password", skip_all, fields(user.id = caller.id))]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: AuthUser,
    req: HttpRequest,
    body: ApiJson<PasswordBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let mut errors = Vec::new();
    let current = required(&body.current_password, "currentPassword", &mut errors);
    let new = required(&body.new_password, "newPassword", &mut errors);
    let (Some(current), Some(new)) = (current, new) else {
        return Err(ApiError::fields(errors));
    };
    let mut conn = state.db().get().await?;
    let user = caller.load(&mut conn).await?;
    let local_part = user.email.split('@').next().unwrap_or("");
    domain::check_password(new, &[user.username.as_str(), local_part])
        .map_err(|m| ApiError::field("newPassword", m))?;
    let throttle = LoginThrottle::new(&state, &req, &user.email, Some(user.id));
    throttle.count_attempt().await?;
    let cost = state.settings().auth.bcrypt_cost;
    if !password::verify(current.to_owned(), Some(user.password_hash.clone()), cost).await? {
        return Err(ApiError::Unauthorized(
            "the current password is wrong".to_owned(),
        ));
    }
    throttle.succeeded().await;
    let hash = password::hash(new.to_owned(), cost).await?;
    let app = state.clone().into_inner();
    let session = conn
        .transaction(async |conn| {
            User::set_password(conn, user.id, &hash).await?;
            let revoked = RefreshToken::revoke_all(conn, user.id).await?;
            tracing::info!(tokens.revoked = revoked, "password changed");
            let user = User::find(conn, user.id)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".to_owned()))?;
            create_session(&app, conn, user, Uuid::new_v4()).await
        })
        .await?;
    // Every access token issued before now ends (the new one is issued after this moment's
    // millisecond only if the clock moved: sessions are created above, so revoke up to just
    // before the new token).
    if let Err(e) = revoke_before(&state, user.id, session.access.issued_ms).await {
        tracing::warn!(error = %e, "access token revocation failed; they end at their expiry");
    }
    session_response(
        &state,
        &req,
        session,
        "Password changed; every other session has ended",
    )
}

/// Revokes the user's access tokens issued before `issued_ms` (the new session's).
async fn revoke_before(state: &AppState, user: i64, issued_ms: i64) -> anyhow::Result<()> {
    crate::http::auth::revoke_user_tokens_before(state, user, issued_ms - 1).await
}

/// `GET /api/user/me` → the caller.
pub async fn me(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    let mut conn = state.db().get().await?;
    let row = user.load(&mut conn).await?;
    Ok(response::ok(PublicUser::from(row), "Current user"))
}

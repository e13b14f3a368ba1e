//! Logging in and out from the pages: the same checks and session as `POST /api/user/login`
//! (throttle, one answer for unknown user and wrong password), the tokens as the same httpOnly
//! cookies.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};

use super::csrf;
use super::forms::{Form, forged, local_path, render, see_other};
use super::render::Pages;
use crate::error::ApiError;
use crate::http::auth::{ACCESS_COOKIE, AuthUser, PAGE_SESSION_COOKIE};
use crate::state::AppState;

/// `GET /login?next=`: the form (a signed-in viewer goes straight on).
pub async fn form(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    let next = local_path(query.get("next").map(String::as_str));
    if viewer.is_some() {
        return see_other(&next);
    }
    login_page(&req, &state, StatusCode::OK, &next, "", None)
}

fn login_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    next: &str,
    login: &str,
    error: Option<String>,
) -> HttpResponse {
    render(
        req,
        state,
        None,
        status,
        "login.html",
        minijinja::context! { page => "login", next => next, login => login, error => error },
    )
}

/// `POST /login`: signs in and goes on to `next`; a wrong password, a throttled account or a
/// missing field shows the form again with the API's words and status.
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let form = Form::parse(&req, &body);
    if !csrf::check(&req, &state, form.get("csrf")) {
        return forged();
    }
    let next = local_path(form.get("next"));
    let login = form.get("login").unwrap_or_default().to_owned();
    let session = crate::users::routes::password_login(
        &state,
        &req,
        form.get("login"),
        form.raw("password").map(str::to_owned),
    )
    .await;
    match session {
        Ok(session) => {
            let mut resp = see_other(&next);
            let scope = crate::users::routes::CookieScope::Pages;
            if let Err(e) =
                crate::users::routes::add_session_cookies(&state, &mut resp, &session, scope)
            {
                return error_again(&req, &state, &next, &login, &e);
            }
            resp
        }
        Err(e) => error_again(&req, &state, &next, &login, &e),
    }
}

fn error_again(
    req: &HttpRequest,
    state: &AppState,
    next: &str,
    login: &str,
    e: &ApiError,
) -> HttpResponse {
    let (status, text) = match e {
        ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, Pages::get().text("login_failed")),
        other => {
            let resp = actix_web::ResponseError::error_response(other);
            (resp.status(), describe(other))
        }
    };
    login_page(req, state, status, next, login, Some(text))
}

/// The API's words for an error, with the fields it names.
pub fn describe(e: &ApiError) -> String {
    match e {
        ApiError::Validation { errors, .. } => errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        ApiError::Internal(err) => {
            tracing::error!(error = %err, "a page's request failed");
            Pages::get().text("error")
        }
        other => other.to_string(),
    }
}

/// `POST /logout`: ends the session (the page session's row and the access token, now) and
/// clears the cookies.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    body: web::Bytes,
) -> HttpResponse {
    let form = Form::parse(&req, &body);
    if !csrf::check(&req, &state, form.get("csrf")) {
        return forged();
    }
    let mut resp = see_other("/");
    if let Some(page) = req.cookie(PAGE_SESSION_COOKIE)
        && let Err(e) = crate::users::routes::end_page_session(&state, page.value()).await
    {
        tracing::warn!(error = %e, "revoking a page session failed; the cookies are cleared anyway");
    }
    if let Some(user) = viewer
        && let Err(e) = crate::users::routes::end_session(&state, &user, None, false).await
    {
        tracing::warn!(error = %e, "ending a page session failed; the cookies are cleared anyway");
    }
    if let Err(e) = crate::users::routes::clear_session_cookies(&state, &mut resp) {
        tracing::warn!(error = %e, "clearing the session cookies failed");
    }
    resp
}

/// Middleware on every page: a browser whose access token has run out (the cookie is gone) but
/// whose page session ([`PAGE_SESSION_COOKIE`]) is still live gets a new access token and is
/// sent to the same address again (`307`: a form is posted again, body and CSRF token as they
/// were), so a page session lasts the refresh token's TTL, not the access token's. A session
/// that has ended loses its cookie and the page is served to a visitor; if the database cannot
/// say, the page is served to a visitor and the cookie kept.
pub async fn resume(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let page_session = match req.cookie(PAGE_SESSION_COOKIE) {
        Some(c) if req.cookie(ACCESS_COOKIE).is_none() && !crate::http::guard::is_api(&req) => {
            c.value().to_owned()
        }
        _ => return Ok(next.call(req).await?.map_into_left_body()),
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    match crate::users::routes::renew_page_session(&state, &page_session).await {
        Ok(access) => {
            let mut resp = HttpResponse::TemporaryRedirect()
                .insert_header((header::LOCATION, req.uri().to_string()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
            if let Err(e) = crate::users::routes::add_access_cookie(&state, &mut resp, &access) {
                tracing::warn!(error = %e, "renewing a page session's access cookie failed");
                return Ok(next.call(req).await?.map_into_left_body());
            }
            metrics::counter!("page_sessions_renewed_total").increment(1);
            Ok(req.into_response(resp).map_into_right_body())
        }
        Err(ApiError::Unauthorized(_)) => {
            let mut served = next.call(req).await?;
            let mut gone = actix_web::cookie::Cookie::build(PAGE_SESSION_COOKIE, "")
                .path("/")
                .finish();
            gone.make_removal();
            if let Err(e) = served.response_mut().add_cookie(&gone) {
                tracing::warn!(error = %e, "removing an ended page session's cookie failed");
            }
            Ok(served.map_into_left_body())
        }
        Err(e) => {
            tracing::warn!(error = %e, "a page session could not be renewed now");
            Ok(next.call(req).await?.map_into_left_body())
        }
    }
}

/// `GET /register`: the sign-up form.
pub async fn register_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
) -> HttpResponse {
    if viewer.is_some() {
        return see_other("/");
    }
    register_page(&req, &state, StatusCode::OK, &Form::empty(), &[])
}

fn register_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    form: &Form,
    errors: &[(String, String)],
) -> HttpResponse {
    let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
    render(
        req,
        state,
        None,
        status,
        "register.html",
        minijinja::context! {
            page => "register",
            username => form.get("username").unwrap_or_default(),
            name => form.get("name").unwrap_or_default(),
            email => form.get("email").unwrap_or_default(),
            host => form.get("host").is_some(),
            errors => errors.iter().map(|(f, m)| minijinja::context! { field => f, message => m }).collect::<Vec<_>>(),
            invalid => fields,
        },
    )
}

/// `POST /register`: the API's registration (the same checks, the same answer whether or not
/// the address had an account); each refused field is named next to its input.
pub async fn register_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let form = Form::parse(&req, &body);
    if !csrf::check(&req, &state, form.get("csrf")) {
        return forged();
    }
    let account = crate::users::routes::RegisterBody {
        username: form.get("username").map(str::to_owned),
        name: form.get("name").map(str::to_owned),
        email: form.get("email").map(str::to_owned),
        password: form.raw("password").map(str::to_owned),
        role: Some(
            if form.get("host").is_some() {
                "host"
            } else {
                "guest"
            }
            .to_owned(),
        ),
    };
    match crate::users::routes::sign_up(&state, account).await {
        Ok(_) => {
            let pages = Pages::get();
            render(
                &req,
                &state,
                None,
                StatusCode::CREATED,
                "message.html",
                minijinja::context! {
                    title => pages.text("registered_title"),
                    message => pages.text("registered"),
                    link => "/login", link_text => pages.text("nav_login"),
                },
            )
        }
        Err(ApiError::Validation { errors, .. }) => {
            let errors: Vec<(String, String)> =
                errors.into_iter().map(|e| (e.field, e.message)).collect();
            register_page(&req, &state, StatusCode::BAD_REQUEST, &form, &errors)
        }
        Err(ApiError::Conflict { message, .. }) => register_page(
            &req,
            &state,
            StatusCode::CONFLICT,
            &form,
            &[("username".to_owned(), message)],
        ),
        Err(e) => {
            let status = actix_web::ResponseError::error_response(&e).status();
            register_page(
                &req,
                &state,
                status,
                &form,
                &[("form".to_owned(), describe(&e))],
            )
        }
    }
}

//! What every page with a viewer or a form shares: who is looking, the form body, rendering a
//! personal page with its CSRF token, redirects.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use minijinja::Value;

use super::csrf;
use super::render::{Pages, html, message};
use crate::http::auth::AuthUser;
use crate::state::AppState;

/// A posted form (`application/x-www-form-urlencoded`), last value of each field.
pub struct Form(HashMap<String, String>);

impl Form {
    /// Parses a body; anything that is not a form is an empty one (its fields are then missing).
    pub fn parse(req: &HttpRequest, body: &[u8]) -> Self {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Self(HashMap::new());
        }
        Self(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// No fields (a form not sent yet).
    pub fn empty() -> Self {
        Self(HashMap::new())
    }

    /// A form filled in with `pairs` (a record shown for editing).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    /// A field, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A field as it was sent (passwords are not trimmed).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A `datetime-local` field (`2030-01-01T20:00`, read as UTC) as RFC 3339; anything else as
    /// it came (the API's validation then names the field).
    pub fn utc(&self, name: &str) -> Option<String> {
        self.get(name).map(|r| {
            NaiveDateTime::parse_from_str(r, LOCAL_TIME)
                .map(|t| Utc.from_utc_datetime(&t).to_rfc3339())
                .unwrap_or_else(|_| r.to_owned())
        })
    }

    /// A whole-number field; one that is not is named in `errors`.
    pub fn whole(&self, name: &str, errors: &mut Vec<(String, String)>) -> Option<i64> {
        let raw = self.get(name)?;
        match raw.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push((name.to_owned(), "must be a whole number".to_owned()));
                None
            }
        }
    }

    /// Minor units from a price typed as money (`12`, `12.5`, `12.50`); anything else is named
    /// in `errors`.
    pub fn money(&self, name: &str, errors: &mut Vec<(String, String)>) -> Option<i64> {
        let raw = self.get(name)?;
        let (units, cents) = raw.split_once('.').unwrap_or((raw, "0"));
        let cents = format!("{cents:0<2}");
        match (units.parse::<i64>(), cents.parse::<i64>()) {
            (Ok(u), Ok(c)) if cents.len() == 2 && u >= 0 => Some(u * 100 + c),
            _ => {
                errors.push((name.to_owned(), "must be an amount like 12.50".to_owned()));
                None
            }
        }
    }
}

/// How a `datetime-local` input writes a time.
const LOCAL_TIME: &str = "%Y-%m-%dT%H:%M";

/// A time as a `datetime-local` input shows it (UTC).
pub fn local_time(t: DateTime<Utc>) -> String {
    t.format(LOCAL_TIME).to_string()
}

/// A local path to go back to (`next`); anything else is `/`. Only a path of this site's own
/// characters passes: it starts with one `/` (not `//`) and holds nothing but letters, digits
/// and `-._~/?=&%+,:@!` — no white space or control character a browser would drop (`/\t/host`
/// becomes `//host`) or a header would break on (CR, LF), no backslash (`/\host`).
pub fn local_path(next: Option<&str>) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-._~/?=&%+,:@!".contains(c);
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && p.chars().all(safe) => {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A form posted by a signed-in viewer: parsed and its CSRF token checked (403 otherwise); a
/// viewer who is not signed in is sent to log in, coming back to `back`.
pub fn posted(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
    viewer: Option<AuthUser>,
    back: &str,
) -> Result<(Form, AuthUser), Box<HttpResponse>> {
    let form = Form::parse(req, body);
    if !csrf::check(req, state, form.get("csrf")) {
        return Err(Box::new(forged()));
    }
    match viewer {
        Some(user) => Ok((form, user)),
        None => Err(Box::new(to_login(back))),
    }
}

/// The signed-in viewer if the token's role is one of `roles` (each action checks the stored
/// role again); otherwise the way on: log in first (coming back to `back`), or a 403 page saying
/// `refusal` (a string of `strings.en.json`).
pub fn with_role(
    req: &HttpRequest,
    state: &AppState,
    viewer: Option<AuthUser>,
    back: &str,
    roles: &[crate::users::domain::Role],
    refusal: &str,
) -> Result<AuthUser, Box<HttpResponse>> {
    match viewer {
        None => Err(Box::new(to_login(back))),
        Some(u) if roles.contains(&u.role) => Ok(u),
        Some(u) => Err(Box::new(problem(
            req,
            state,
            &u,
            &crate::error::ApiError::Forbidden(Pages::get().text(refusal)),
            ("/", "back"),
        ))),
    }
}

/// A page saying what went wrong (the API's status and words) with a link on: `(href, the
/// key in `strings.en.json` of its text)`.
pub fn problem(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
    e: &crate::error::ApiError,
    (href, label): (&str, &str),
) -> HttpResponse {
    let status = actix_web::ResponseError::error_response(e).status();
    let pages = Pages::get();
    render(
        req,
        state,
        Some(user),
        status,
        "message.html",
        minijinja::context! {
            title => pages.text("error_title"),
            message => super::session::describe(e),
            link => href,
            link_text => pages.text(label),
        },
    )
}

/// `303 See Other` to `to`.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// To the login page, coming back to `next` afterwards.
pub fn to_login(next: &str) -> HttpResponse {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    see_other(&format!("/login?next={next}"))
}

/// The refusal of a form whose CSRF token does not match (403, saying what to do).
pub fn forged() -> HttpResponse {
    let pages = Pages::get();
    message(
        StatusCode::FORBIDDEN,
        &pages.text("csrf_title"),
        &pages.text("csrf"),
    )
}

/// Fills a page's placeholders for this browser: its CSRF token and a fresh form key (each
/// rendering of a booking form gets its own idempotency key). Sets the CSRF cookie when new.
pub fn personal(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    body: &str,
) -> HttpResponse {
    let token = csrf::for_page(req, state);
    let key = uuid::Uuid::new_v4().to_string();
    let body = body
        .replace(csrf::PLACEHOLDER, &token.token)
        .replace(FORM_KEY, &key);
    let mut resp = html(status, body);
    if let Some(c) = token.cookie
        && let Err(e) = resp.add_cookie(&c)
    {
        tracing::warn!(error = %e, "setting the CSRF cookie failed");
    }
    resp
}

/// Where a booking form holds its idempotency key until served.
pub const FORM_KEY: &str = "<@key@>";

/// Renders a page for `viewer` (its CSRF token filled in).
pub fn render(
    req: &HttpRequest,
    state: &AppState,
    viewer: Option<&AuthUser>,
    status: StatusCode,
    name: &str,
    ctx: Value,
) -> HttpResponse {
    let ctx = minijinja::context! {
        viewer => viewer_of(viewer),
        currency => currency(state),
        ..ctx
    };
    match Pages::get().render(name, ctx) {
        Ok(body) => personal(req, state, status, &body),
        Err(e) => {
            tracing::error!(error = %e, template = name, "rendering a page failed");
            let pages = Pages::get();
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                &pages.text("error_title"),
                &pages.text("error"),
            )
        }
    }
}

/// The currency prices are shown in (`EUR`).
pub fn currency(state: &AppState) -> String {
    state.settings().payments.currency.to_uppercase()
}

/// A path's id (`/host/events/{id}`): a positive integer, or the page is not found.
pub fn id_in_path(raw: &str) -> Result<i64, crate::error::ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| crate::error::ApiError::NotFound(String::new()))
}

/// What the templates know of the viewer: signed in, and the role (no name, no email: the
/// page may be cached for everyone signed in).
pub fn viewer_of(viewer: Option<&AuthUser>) -> Value {
    match viewer {
        Some(u) => minijinja::context! { signedIn => true, role => u.role.as_str() },
        None => minijinja::context! { signedIn => false },
    }
}

#[cfg(test)]
mod local_path_tests {
    use super::local_path;

    #[test]
    fn only_paths_of_this_site_pass() {
        for ok in [
            "/",
            "/me",
            "/events/12?tab=types&x=%2F",
            "/host/events/3/edit",
        ] {
            assert_eq!(local_path(Some(ok)), ok);
        }
        for bad in [
            "//evil.example/",
            "/\t/evil.example/",
            "/\t\t/evil.example",
            "/\r/evil.example",
            "/\n/x",
            "/\\evil.example",
            "/ /evil.example",
            "https://evil.example/",
            "evil.example",
            "/\u{2028}/x",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}

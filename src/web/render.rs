//! Templates, strings, the page micro-cache and the headers every page carries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::Next;
use chrono::{DateTime, Utc};
use minijinja::{Environment, Value};

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        const TEMPLATES: &[(&str, &str)] = &[$(($name, include_str!(concat!("templates/", $name)))),*];
    };
}

templates!(
    "base.html",
    "events.html",
    "event.html",
    "message.html",
    "login.html",
    "booking.html",
    "me.html",
    "register.html",
    "pay.html",
    "host_events.html",
    "host_new.html",
    "host_event.html",
    "host_cancel.html",
    "admin.html",
    "admin_users.html",
    "admin_notifications.html",
    "room.html",
    "form.html",
    "host_type.html",
    "admin_nav.html",
);

const STRINGS_EN: &str = include_str!("strings.en.json");

/// The policy of every page: its own origin only, nothing inline, no framing.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// The compiled templates and the strings of each language.
pub struct Pages {
    env: Environment<'static>,
    strings: Value,
}

impl Pages {
    /// The templates of this binary (parsed once per process).
    pub fn get() -> &'static Pages {
        static PAGES: OnceLock<Pages> = OnceLock::new();
        PAGES.get_or_init(Pages::build)
    }

    fn build() -> Pages {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // A template that does not parse is a bug of this binary, caught by the tests.
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        env.add_filter("money", money);
        env.add_filter("when", when);
        env.add_filter("urlencode", urlencode);
        let strings: serde_json::Value =
            serde_json::from_str(STRINGS_EN).unwrap_or_else(|e| panic!("strings.en.json: {e}"));
        Pages {
            env,
            strings: Value::from_serialize(&strings),
        }
    }

    /// Renders `name` with `ctx` plus `t` (the strings) and `lang`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        let ctx = minijinja::context! { t => self.strings.clone(), lang => "en", ..ctx };
        self.env.get_template(name)?.render(ctx)
    }

    /// A string of the current language by dotted path (`status.sold_out`), for Rust code.
    pub fn text(&self, path: &str) -> String {
        let mut v = self.strings.clone();
        for part in path.split('.') {
            v = v.get_attr(part).unwrap_or_default();
        }
        v.as_str().map_or_else(|| path.to_owned(), str::to_owned)
    }
}

/// `12345` → `123.45`.
fn money(minor: i64) -> String {
    crate::notifications::render::money(minor)
}

/// An RFC 3339 instant as people read it: `Tue 1 Dec 2026, 19:00 UTC`.
fn when(raw: String) -> String {
    DateTime::parse_from_rfc3339(&raw).map_or(raw, |t| {
        t.with_timezone(&Utc)
            .format("%a %-d %b %Y, %H:%M UTC")
            .to_string()
    })
}

fn urlencode(raw: String) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

/// A page as a response: HTML, its policy, cacheable by nobody but the browser for a moment.
pub fn html(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
        .insert_header((header::CACHE_CONTROL, "private, max-age=0, must-revalidate"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(body.into())
}

/// A message page (not found, bad request, an error) with its status.
pub fn message(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    match Pages::get().render(
        "message.html",
        minijinja::context! { title => title, message => text },
    ) {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "rendering the message page failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title>",
            )
        }
    }
}

/// Middleware on every page: the refusals made before a page's handler runs — too many
/// requests (the rate limiter's 429), a body too large (413), a method the page does not take
/// (405) — come from the API's layers as JSON; a person gets them as a page in words, with the
/// same status and headers (`Retry-After`). Paths under `/api/` keep the API's JSON.
pub async fn html_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let api = crate::http::guard::is_api(&req);
    let res = next.call(req).await?;
    let status = res.status();
    let key = match status {
        StatusCode::TOO_MANY_REQUESTS => "too_many",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::METHOD_NOT_ALLOWED => "wrong_method",
        _ => return Ok(res.map_into_left_body()),
    };
    // JSON from the API's layers, or actix's own bare answer (no body, no type).
    let bare_or_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("application/json"));
    if api || !bare_or_json {
        return Ok(res.map_into_left_body());
    }
    let pages = Pages::get();
    let wait = res
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("a few")
        .to_owned();
    let text = pages
        .text(&format!("refused.{key}"))
        .replace("{seconds}", &wait);
    let mut page = message(status, &pages.text("error_title"), &text);
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            page.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let (req, _) = res.into_parts();
    Ok(ServiceResponse::new(req, page).map_into_right_body())
}

/// Rendered public pages by URL, kept a moment (per worker).
#[derive(Default)]
pub struct PageCache {
    pages: Mutex<HashMap<String, (Instant, Arc<str>)>>,
}

/// Most pages one worker keeps (beyond it, the oldest half goes).
const PAGE_CACHE_MAX: usize = 4096;

impl PageCache {
    /// A page rendered less than `ttl` ago.
    pub fn get(&self, key: &str, ttl: Duration) -> Option<Arc<str>> {
        let pages = self.pages.lock().ok()?;
        pages
            .get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, body)| body.clone())
    }

    /// Keeps a rendered page.
    pub fn put(&self, key: String, body: Arc<str>) {
        let Ok(mut pages) = self.pages.lock() else {
            return;
        };
        if pages.len() >= PAGE_CACHE_MAX {
            let mut ages: Vec<Instant> = pages.values().map(|(at, _)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            pages.retain(|_, (at, _)| *at > cut);
        }
        pages.insert(key, (Instant::now(), body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_and_escapes_with_a_minimal_context() {
        let pages = Pages::get();
        for (name, _) in TEMPLATES {
            let out = pages
                .render(
                    name,
                    minijinja::context! {
                        // Every page is rendered with its viewer (`forms::render`).
                        viewer => minijinja::context! { signedIn => true, role => "admin" },
                        title => "<b>x</b>", message => "m", e => minijinja::context! {},
                        outcome => minijinja::context! { status => "confirmed" },
                        pay => minijinja::context! { amount => 100, currency => "eur" },
                        r => serde_json::json!({ "status": "waiting", "position": 3, "ahead": 2 }),
                        f => minijinja::context! {},
                        r => serde_json::json!({
                            "totalBookings": {}, "cancellations": {}, "waitlist": {},
                            "overallCapacity": {}, "checkout": { "payments": { "net": 0 } },
                        }),
                        s => serde_json::json!({
                            "event": { "id": 1, "name": "<b>x</b>", "status": "on_sale" },
                            "totalBookings": { "bookings": 0, "seats": 0 },
                            "cancellations": { "bookings": 0 },
                            "waitlist": { "entries": 0, "seats": 0 },
                            "checkout": {
                                "holds": { "open": 0, "paid": 0, "expired": 0 },
                                "payments": { "net": 0, "captured": 0, "refunded": 0 },
                            },
                        }),
                    },
                )
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(!out.contains("<b>x</b>"), "{name} escapes");
        }
        assert_eq!(pages.text("status.sold_out"), "Sold out");
        assert_eq!(pages.text("no.such.key"), "no.such.key");
    }

    #[test]
    fn dates_and_money_read_as_people_read_them() {
        assert_eq!(
            when("2026-12-01T19:00:00Z".into()),
            "Tue 1 Dec 2026, 19:00 UTC"
        );
        assert_eq!(when("not a date".into()), "not a date");
        assert_eq!(money(4550), "45.50");
    }
}

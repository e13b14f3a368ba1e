//! Cross-site request forgery protection for the pages' forms: a random per-browser cookie
//! (`__Host-asCsrf`: `Secure`, `HttpOnly`, `SameSite=Strict`, path `/`, no domain, so a
//! sibling subdomain cannot set or overwrite it; plain `asCsrf` where `auth.cookie_secure` is
//! off, on a developer's plain-HTTP machine) and, in every form, a token that is the HMAC of
//! that cookie **and the signed-in account** (or "nobody") under the server's key. A form post
//! passes only with both, for the same account, and only when the browser does not say it
//! comes from another site (`Sec-Fetch-Site`). A cookie and token pair an attacker got for
//! their own session (or for none) is worth nothing in anyone else's.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time};
use base64ct::{Base64UrlUnpadded, Encoding};
use rand::RngCore;

use crate::state::AppState;

/// The browser's CSRF cookie where cookies are `Secure` (`__Host-`: host-only, path `/`).
pub const COOKIE: &str = "__Host-asCsrf";
/// Its name on a plain-HTTP development machine (`auth.cookie_secure = false`), where
/// browsers refuse `__Host-` cookies.
pub const PLAIN_COOKIE: &str = "asCsrf";

fn cookie_name(state: &AppState) -> &'static str {
    if state.settings().auth.cookie_secure {
        COOKIE
    } else {
        PLAIN_COOKIE
    }
}

/// The account the request is signed in as (its access token's subject), if any: what a
/// token is bound to.
fn account(req: &HttpRequest) -> Option<i64> {
    crate::http::auth::authenticate(req).ok().map(|u| u.id)
}
/// Where a page's HTML holds the token until it is served (cannot come from escaped data:
/// it starts with `<`).
pub const PLACEHOLDER: &str = "<@csrf@>";

/// The token forms on a page carry, and the cookie to set when the browser had none.
pub struct PageToken {
    /// For the hidden `csrf` field.
    pub token: String,
    /// Set it on the response (a new browser).
    pub cookie: Option<Cookie<'static>>,
}

fn token_for(state: &AppState, cookie: &str, account: Option<i64>) -> String {
    let bound = match account {
        Some(id) => format!("{cookie}:user:{id}"),
        None => format!("{cookie}:nobody"),
    };
    Base64UrlUnpadded::encode_string(&state.tokens().mac("csrf", bound.as_bytes()))
}

/// The token of this browser (a new cookie when it has none).
pub fn for_page(req: &HttpRequest, state: &AppState) -> PageToken {
    let name = cookie_name(state);
    if let Some(c) = req.cookie(name).filter(|c| c.value().len() >= 22) {
        return PageToken {
            token: token_for(state, c.value(), account(req)),
            cookie: None,
        };
    }
    let mut raw = [0u8; 24];
    rand::rng().fill_bytes(&mut raw);
    let value = Base64UrlUnpadded::encode_string(&raw);
    let cookie = Cookie::build(name, value.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings().auth.cookie_secure)
        .max_age(time::Duration::days(365))
        .finish();
    PageToken {
        token: token_for(state, &value, account(req)),
        cookie: Some(cookie),
    }
}

/// Whether a form post carries this browser's token and does not come from another site.
pub fn check(req: &HttpRequest, state: &AppState, presented: Option<&str>) -> bool {
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site" || v == "same-site");
    let ok = !cross_site
        && match (req.cookie(cookie_name(state)), presented) {
            (Some(c), Some(p)) => {
                let want = token_for(state, c.value(), account(req));
                want.len() == p.len()
                    && want
                        .bytes()
                        .zip(p.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }
            _ => false,
        };
    if !ok {
        metrics::counter!("csrf_rejected_total").increment(1);
    }
    ok
}

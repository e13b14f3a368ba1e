//! Protections every request passes: security headers fit for a JSON API, CORS from an
//! allow-list (none by default), and a deadline per request.
//!
//! Deadlines: `http.client_request_timeout_ms` bounds the request head (actix answers 408);
//! [`deadline`] bounds everything after it — reading the body and running the handler — at
//! `http.request_timeout_ms` (`http.booking_timeout_ms` for `POST /api/events/book`, which may
//! wait for its decision). A client still sending its body when the time is up gets 408
//! `request_timeout` (a slow-loris upload is the client's doing); a handler that is still busy
//! gets 503 `unavailable` with `Retry-After`. Either way the work is dropped, not left running.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_cors::Cors;
use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::web::Bytes;
use futures_util::Stream;

use crate::config::HttpSettings;
use crate::error::ApiError;

/// Headers on every response. The API serves JSON only (the reference page sets its own
/// policy): nothing may be framed, sniffed, cached by intermediaries or leak a referrer.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add(("cross-origin-opener-policy", "same-origin"))
        .add(("permissions-policy", "interest-cohort=()"))
}

/// Whether the request's `Content-Type` is exactly `application/json` (parameters such as
/// `charset` allowed). Not `*+json`, not `text/plain`: a cross-site page can send only the
/// CORS-safelisted types without a preflight, and `application/json` is not one of them.
pub fn is_json(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The path as the router matches it: actix decodes percent-encoded characters that need no
/// encoding (`/%61pi/` is routed as `/api/`), so every "is this the API?" decision uses this,
/// never the raw request path.
pub fn routed_path(req: &ServiceRequest) -> &str {
    req.match_info().as_str()
}

/// Whether the request is routed to the API (a path under `/api/`, as the router sees it).
pub fn is_api(req: &ServiceRequest) -> bool {
    routed_path(req).starts_with("/api/")
}

/// Middleware: cross-site request forgery protection for cookie sessions. A state-changing
/// request (anything but GET, HEAD, OPTIONS) that carries a session cookie and no
/// `Authorization` header must be `Content-Type: application/json` or carry an
/// `X-Requested-With` header: both need a CORS preflight, which a foreign origin (a sibling
/// subdomain included) does not pass. Otherwise 403 `csrf_rejected`, before any work is done.
/// Bearer-token clients are not affected: a browser never adds that header on its own. The
/// pages (`crate::web`, every path outside `/api/`) post forms and check their own token.
pub async fn cookie_csrf(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let headers = req.headers();
    let cookie_session = !headers.contains_key(header::AUTHORIZATION)
        && (req.cookie(crate::http::auth::ACCESS_COOKIE).is_some()
            || req.cookie(crate::http::auth::REFRESH_COOKIE).is_some());
    let page = !is_api(&req);
    if safe
        || page
        || !cookie_session
        || is_json(headers)
        || headers.contains_key("x-requested-with")
    {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    metrics::counter!("csrf_rejected_total").increment(1);
    let resp = crate::error::error_response(
        actix_web::http::StatusCode::FORBIDDEN,
        "csrf_rejected",
        "a request authenticated by cookie must be sent as Content-Type: application/json or with an X-Requested-With header",
        &[],
    );
    Ok(req.into_response(resp).map_into_right_body())
}

/// CORS for the configured origins. Requests from other origins are served without CORS
/// headers (the browser then withholds the answer); preflights name what is allowed.
pub fn cors(http: &HttpSettings) -> Cors {
    let mut cors = Cors::default()
        .block_on_origin_mismatch(false)
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-idempotency-key"),
            header::HeaderName::from_static("prefer"),
            header::HeaderName::from_static("x-requested-with"),
        ])
        .expose_headers([
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("x-booking-request-id"),
            header::RETRY_AFTER,
            header::HeaderName::from_static("ratelimit-limit"),
            header::HeaderName::from_static("ratelimit-remaining"),
            header::HeaderName::from_static("ratelimit-reset"),
        ])
        // Cookies carry the session for browser clients.
        .supports_credentials()
        .max_age(http.cors_max_age_secs);
    for origin in &http.cors_allowed_origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Middleware: refuses request heads over the limits (`http.max_header_bytes` summed over
/// names and values → 431, `http.max_uri_bytes` → 414) before any work is done.
pub async fn limit_head(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limits = req.app_data::<HeadLimits>().copied().unwrap_or_default();
    let uri = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    let refused = if uri > limits.uri_bytes {
        Some(crate::error::error_response(
            actix_web::http::StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request URI is longer than {} bytes", limits.uri_bytes),
            &[],
        ))
    } else if headers > limits.header_bytes {
        Some(crate::error::error_response(
            actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!(
                "the request headers are larger than {} bytes",
                limits.header_bytes
            ),
            &[],
        ))
    } else {
        None
    };
    match refused {
        Some(resp) => Ok(req.into_response(resp).map_into_right_body()),
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

/// Request head limits.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Sum of header name and value bytes.
    pub header_bytes: usize,
    /// Request target (path and query) bytes.
    pub uri_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            header_bytes: 16 * 1024,
            uri_bytes: 8 * 1024,
        }
    }
}

/// The two request deadlines (the defaults are those of `config/default.toml`).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Everything but booking.
    pub default: Duration,
    /// `POST /api/events/book`.
    pub booking: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            default: Duration::from_secs(10),
            booking: Duration::from_secs(40),
        }
    }
}

impl Deadlines {
    /// From `[http]`.
    pub fn from_settings(http: &HttpSettings) -> Self {
        Self {
            default: Duration::from_millis(http.request_timeout_ms),
            booking: Duration::from_millis(http.booking_timeout_ms),
        }
    }
}

/// A request body stream that records when it has been read to the end.
struct Tracked {
    inner: Payload,
    done: Arc<AtomicBool>,
}

impl Stream for Tracked {
    type Item = Result<Bytes, actix_web::error::PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.done.store(true, Ordering::Relaxed);
        }
        polled
    }
}

fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// Middleware: the request deadline (see the module docs).
pub async fn deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let deadlines = req.app_data::<Deadlines>().copied().unwrap_or(Deadlines {
        default: Duration::from_secs(10),
        booking: Duration::from_secs(40),
    });
    let limit = if req.method() == Method::POST && routed_path(&req) == "/api/events/book" {
        deadlines.booking
    } else {
        deadlines.default
    };
    // Only a request with a body can be slow to send it; the others skip the wrapper.
    let body_done = Arc::new(AtomicBool::new(true));
    if has_body(&req) {
        body_done.store(false, Ordering::Relaxed);
        let tracked: Pin<Box<dyn Stream<Item = _>>> = Box::pin(Tracked {
            inner: req.take_payload(),
            done: body_done.clone(),
        });
        req.set_payload(Payload::from(tracked));
    }
    let http_req = req.request().clone();
    let err = match tokio::time::timeout(limit, next.call(req)).await {
        Ok(res) => return res.map(ServiceResponse::map_into_left_body),
        Err(_) if !body_done.load(Ordering::Relaxed) => ApiError::RequestTimeout(format!(
            "the request body was not received within {} ms",
            limit.as_millis()
        )),
        Err(_) => {
            tracing::warn!(timeout_ms = limit.as_millis(), "request deadline exceeded");
            ApiError::Unavailable {
                message: format!(
                    "the request did not complete within {} ms",
                    limit.as_millis()
                ),
                retry_after_secs: 1,
            }
        }
    };
    // Answered here, as a response, so the outer middleware (headers, metrics) sees it.
    Ok(ServiceResponse::from_err(err, http_req).map_into_right_body())
}

//! The API's error type and its one JSON envelope.
//!
//! Rule (after crates.io's `util/errors.rs`): models return `diesel::QueryResult`, jobs return
//! `anyhow::Result`, handlers return [`ApiResult`]. Every error a client can see is rendered as
//!
//! ```json
//! { "statusCode": 400, "message": "human text", "code": "validation_failed",
//!   "errors": [ { "field": "numberOfSeats", "message": "must be between 1 and 10" } ] }
//! ```
//!
//! `code` is a stable machine-readable string. Internal errors are logged once with their cause
//! chain and rendered as an opaque 500.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// A problem with one input field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// The field, in the client's naming (`numberOfSeats`, `body`, `query.limit`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error returned by a handler.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON at all.
    #[error("{0}")]
    MalformedJson(String),
    /// 400: the input is well-formed but some fields are wrong.
    #[error("{message}")]
    Validation {
        /// Summary.
        message: String,
        /// One entry per bad field.
        errors: Vec<FieldError>,
    },
    /// 400 with a specific code (e.g. `invalid_cursor`).
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409 with a specific code.
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 408: the client did not send its request (body) in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 413.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 with a specific code.
    #[error("{message}")]
    Unprocessable {
        /// Stable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 429.
    #[error("too many requests, retry in {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until a request would pass.
        retry_after_secs: u64,
    },
    /// 403 with a code of its own (e.g. `email_unverified`).
    #[error("{message}")]
    Denied {
        /// Stable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 429 with a code of its own (e.g. `login_throttled`).
    #[error("{message}")]
    Throttled {
        /// Stable code.
        code: &'static str,
        /// Human text.
        message: String,
        /// Seconds until a request may pass.
        retry_after_secs: u64,
    },
    /// 503: a dependency is down or saturated; the client may retry.
    #[error("{message}")]
    Unavailable {
        /// Human text.
        message: String,
        /// Seconds the client should wait.
        retry_after_secs: u64,
    },
    /// 500: a bug or an unexpected failure. The cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A validation error for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let e = FieldError::new(field, message);
        Self::Validation {
            message: format!("invalid `{}`: {}", e.field, e.message),
            errors: vec![e],
        }
    }

    /// A validation error for several fields (`errors` must not be empty).
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("invalid `{}`: {}", one.field, one.message),
            many => format!(
                "invalid fields: {}",
                many.iter()
                    .map(|e| e.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Self::Validation { message, errors }
    }

    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::Validation { .. } => "validation_failed",
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Throttled { code, .. }
            | Self::Denied { code, .. }
            | Self::Unprocessable { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::RequestTimeout(_) => "request_timeout",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

/// The error envelope.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody<'a> {
    /// The HTTP status, repeated for clients that only see the body.
    pub status_code: u16,
    /// Human text.
    pub message: &'a str,
    /// Stable machine-readable code.
    pub code: &'a str,
    /// Field problems (empty when the error is not about fields).
    pub errors: &'a [FieldError],
}

/// Builds an envelope response.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    errors: &[FieldError],
) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        status_code: status.as_u16(),
        message,
        code,
        errors,
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::Validation { .. } | Self::BadRequest { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Denied { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } | Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let status = self.status_code();
        let message = match self {
            Self::Internal(e) => {
                tracing::error!(error = ?e, "request failed with an internal error");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let errors: &[FieldError] = match self {
            Self::Validation { errors, .. } => errors,
            _ => &[],
        };
        let mut resp = error_response(status, self.code(), &message, errors);
        match self {
            Self::TooManyRequests { retry_after_secs }
            | Self::Throttled {
                retry_after_secs, ..
            }
            | Self::Unavailable {
                retry_after_secs, ..
            } => {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(*retry_after_secs),
                );
            }
            _ => {}
        }
        resp
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => Self::NotFound("not found".to_owned()),
            other => Self::Internal(anyhow::Error::new(other).context("database query failed")),
        }
    }
}

impl From<crate::db::PoolError> for ApiError {
    fn from(e: crate::db::PoolError) -> Self {
        tracing::warn!(error = %e, "database pool checkout failed");
        Self::Unavailable {
            message: "the database is unavailable, retry shortly".to_owned(),
            retry_after_secs: 1,
        }
    }
}

/// The stable code and text for a bare status (actix's own errors, the router's 404/405).
fn status_defaults(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad_request", "bad request"),
        401 => ("unauthorized", "authentication required"),
        403 => ("forbidden", "forbidden"),
        404 => ("not_found", "no such route"),
        405 => ("method_not_allowed", "method not allowed on this route"),
        408 => ("request_timeout", "request timed out"),
        413 => ("payload_too_large", "request body is too large"),
        414 => ("uri_too_long", "request URI is too long"),
        415 => ("unsupported_media_type", "unsupported content type"),
        431 => ("headers_too_large", "request headers are too large"),
        503 => ("unavailable", "service unavailable"),
        s if s >= 500 => ("internal_error", "internal server error"),
        _ => ("error", "request failed"),
    }
}

/// `ErrorHandlers` default: rewrites any error response that is not already JSON or a page (actix's
/// plain-text extractor errors, the 405 of a resource, 413 from the payload limit) into the
/// envelope, so clients always get one shape.
pub fn jsonify_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // JSON errors of the API, and the pages' own error pages (`crate::web`), stay as they are.
    let answered = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if answered {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, message) = status_defaults(status);
    let (req, old) = res.into_parts();
    let mut new = error_response(status, code, message, &[]);
    // Keep headers such as `Allow` (405) and `Retry-After`.
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

/// Default service of every resource: the path exists, the method does not.
pub async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("{} is not allowed on {}", req.method(), req.path()),
        &[],
    )
}

/// Fallback service: unknown routes get a JSON 404 naming the path.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no route for {} {}", req.method(), req.path()),
        &[],
    )
}

//! The success envelope: `{ "statusCode", "data", "message" }`, with `data` the payload and
//! `message` the human text (the seed swapped the two on most endpoints; we do not).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

/// The success envelope.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a, T: Serialize> {
    /// The HTTP status, repeated in the body.
    pub status_code: u16,
    /// The payload.
    pub data: T,
    /// Human text.
    pub message: &'a str,
}

/// A response with `status`, `data` and `message` in the envelope.
pub fn respond<T: Serialize>(status: StatusCode, data: T, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(Envelope {
        status_code: status.as_u16(),
        data,
        message,
    })
}

/// 200 with the envelope.
pub fn ok<T: Serialize>(data: T, message: &str) -> HttpResponse {
    respond(StatusCode::OK, data, message)
}

/// 201 with the envelope.
pub fn created<T: Serialize>(data: T, message: &str) -> HttpResponse {
    respond(StatusCode::CREATED, data, message)
}

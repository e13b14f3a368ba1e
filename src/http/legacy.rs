//! The Node.js system's envelope, opt-in, for clients written against it (a migration aid).
//!
//! The old code passed `ApiResponse(status, data, message)` arguments in the wrong order on most
//! routes: the payload sat in `message` (often snake_case, sometimes in an array) and the text in
//! `data`, while its README documented `data`. Our envelope is the documented one and stays the
//! default. With `http.envelope = "legacy"` (or a request header `X-AtomicSeats-Envelope:
//! legacy`; `standard` in the header overrides a legacy default), the routes whose old shape
//! differs answer in it, so an old client keeps working while it is moved over. Errors and every
//! other route are unchanged (the old error body `{ statusCode, message, errors }` is a subset of
//! ours).
//!
//! | route | old success body (what an old client reads) |
//! |---|---|
//! | `POST /api/user/register` | `data` text, `message` `[user]` |
//! | `POST /api/user/login` | `data` text, `message` `{ user: { username, role }, accessToken, refreshToken }` |
//! | `GET /api/events/all` | `data` text, `message` `[events]` (camelCase) |
//! | `POST /api/events/create`, `POST /api/admin/events` | `data` text, `message` `{ event_id, event_name, description, host_id, venue, starts_at, ends_at, capacity, reserved_seats, price }` |
//! | `POST /api/events/update` | `data` text, `message` the event (camelCase) |
//! | `POST /api/events/delete` | `data` text, `message` `[{ event_name, event_id, event_description }]` |
//! | `DELETE /api/admin/events` | `data` text, `message` `{ id, name, description }` |
//! | `POST /api/events/book` | `data` `{ message, messageId }`, `message` `"Event Booking in process"` |
//! | `DELETE /api/events/book` | `data` text, `message` `{ eventId, seatsFreed, bookingsCancelled }` |

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use serde_json::{Value, json};

/// The request header that picks the envelope per request.
pub const HEADER: &str = "x-atomicseats-envelope";

/// Whether `req` gets the legacy envelope: the header, else the configured default.
fn wants_legacy(req: &ServiceRequest, default_legacy: bool) -> bool {
    match req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        Some(v) if v.eq_ignore_ascii_case("legacy") => true,
        Some(v) if v.eq_ignore_ascii_case("standard") => false,
        _ => default_legacy,
    }
}

/// The old `(data, message)` of a success answer on `method route`, from ours; `None` when the
/// route kept its shape.
pub fn reshape(method: &str, route: &str, body: &Value) -> Option<(Value, Value)> {
    let data = &body["data"];
    let text = |t: &str| Value::String(t.to_owned());
    Some(match (method, route) {
        ("POST", "/api/user/register") => (text("User created successfully"), json!([data])),
        ("POST", "/api/user/login") => (
            text("User logged in successfully"),
            json!({
                "user": { "username": data["user"]["username"], "role": data["user"]["role"] },
                "accessToken": data["accessToken"],
                "refreshToken": data["refreshToken"],
            }),
        ),
        ("GET", "/api/events/all") => (text("Events found (from DB)"), data["items"].clone()),
        ("POST", "/api/events/create" | "/api/admin/events") => (
            text("Event created successfully"),
            json!({
                "event_id": data["id"], "event_name": data["name"],
                "description": data["description"], "host_id": data["hostId"],
                "venue": data["venue"], "starts_at": data["startsAt"], "ends_at": data["endsAt"],
                "capacity": data["capacity"], "reserved_seats": data["reservedSeats"],
                "price": data["price"],
            }),
        ),
        ("POST", "/api/events/update") => (text("Event updated successfully"), data.clone()),
        ("POST", "/api/events/delete") => (
            text("Successfully deleted event."),
            json!([{ "event_name": data["name"], "event_id": data["id"],
                     "event_description": data["description"] }]),
        ),
        ("DELETE", "/api/admin/events") => (
            text("Successfully deleted event."),
            json!({ "id": data["id"], "name": data["name"], "description": data["description"] }),
        ),
        ("POST", "/api/events/book") => {
            let mut old = data.clone();
            old["message"] = text("Booking request received and is being processed.");
            (old, text("Event Booking in process"))
        }
        ("DELETE", "/api/events/book") => (
            text("Booking cancelled successfully"),
            json!({
                "eventId": data["eventId"], "seatsFreed": data["seatsFreed"],
                "bookingsCancelled": data["bookingsCancelled"],
            }),
        ),
        _ => return None,
    })
}

/// Middleware: answers in the legacy envelope when asked to (see the module docs).
pub async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let default_legacy = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .is_some_and(|s| s.settings().http.envelope == crate::config::Envelope::Legacy);
    let legacy = wants_legacy(&req, default_legacy);
    let res = next.call(req).await?.map_into_boxed_body();
    if !legacy || !res.status().is_success() {
        return Ok(res);
    }
    let method = res.request().method().as_str().to_owned();
    let Some(route) = res.request().match_pattern() else {
        return Ok(res);
    };
    let (req, res) = res.into_parts();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = actix_web::body::to_bytes(res.into_body())
        .await
        .unwrap_or_default();
    let reshaped = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|mut body| {
            let (data, message) = reshape(&method, &route, &body)?;
            body["data"] = data;
            body["message"] = message;
            serde_json::to_vec(&body).ok()
        });
    let mut out =
        actix_web::HttpResponse::build(status).body(reshaped.unwrap_or_else(|| bytes.to_vec()));
    for (name, value) in &headers {
        if name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("x-atomicseats-envelope"),
    );
    Ok(ServiceResponse::new(req, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_answers_in_the_old_snake_case_under_message() {
        let ours = json!({ "statusCode": 201, "message": "Event created successfully",
            "data": { "id": 7, "name": "Gig", "description": "d", "hostId": 2, "venue": "Hall",
                      "startsAt": "2030-01-01T20:00:00Z", "endsAt": "2030-01-01T23:00:00Z",
                      "capacity": 10, "reservedSeats": 0, "price": 100 } });
        let (data, message) = reshape("POST", "/api/events/create", &ours).unwrap();
        assert_eq!(data, "Event created successfully");
        assert_eq!(message["event_id"], 7);
        assert_eq!(message["host_id"], 2);
        assert_eq!(message["reserved_seats"], 0);
        assert!(
            reshape("GET", "/api/user/me", &ours).is_none(),
            "unchanged routes stay"
        );
    }
}

//! Request extractors whose errors name the failing field.
//!
//! actix's `web::Json` reports serde errors without the field path ("invalid type: string, expected
//! i32 at line 1 column 20"). [`ApiJson`] deserialises through `serde_path_to_error`, so a wrong
//! type answers 400 naming `numberOfSeats`; malformed JSON is a 400 `malformed_json`; a missing or
//! foreign content type is a 415; a body over `http.body_limit_bytes` is a 413.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// The largest body the JSON extractor reads, stored in app data by the HTTP builder.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body deserialised into `T`, with field-naming errors.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T> ApiJson<T> {
    /// The deserialised value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

fn is_json_content_type(req: &HttpRequest) -> Option<bool> {
    req.headers().get(header::CONTENT_TYPE)?;
    Some(crate::http::guard::is_json(req.headers()))
}

/// Turns a serde error at `path` into the API error, naming the field.
pub(crate) fn deserialize_error(path: &str, err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::MalformedJson(format!("malformed JSON: {err}"))
        }
        Category::Data => {
            let text = err.to_string();
            // Drop serde_json's " at line 1 column 7" suffix: the field name says more.
            let text = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(head, _)| head)
                .to_owned();
            ApiError::fields(vec![FieldError::new(field_name(path, &text), text)])
        }
    }
}

/// The field a serde error is about: the path, or for "missing field `x`" (reported at the
/// parent) the named field.
fn field_name(path: &str, message: &str) -> String {
    let named = message
        .split('`')
        .nth(1)
        .filter(|_| {
            message.starts_with("missing field")
                || message.starts_with("unknown field")
                || message.starts_with("duplicate field")
        })
        .map(str::to_owned);
    let parent = (path != "." && !path.is_empty()).then(|| path.to_owned());
    match (parent, named) {
        // serde_path_to_error already descends into an unknown or duplicate key.
        (Some(p), Some(n)) if p == n || p.ends_with(&format!(".{n}")) => p,
        (Some(p), Some(n)) => format!("{p}.{n}"),
        (None, Some(n)) => n,
        (Some(p), None) => p,
        (None, None) => "body".to_owned(),
    }
}

/// Parses `bytes` as JSON into `T` with field-naming errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::field("body", "a JSON body is required"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| deserialize_error(&e.path().to_string(), e.inner()))?;
    // Trailing garbage after the document is malformed JSON too.
    de.end()
        .map_err(|e| ApiError::MalformedJson(format!("malformed JSON: {e}")))?;
    // PostgreSQL cannot store NUL in text: refuse it here, naming the field, rather than fail
    // later. Only bodies that spell the escape are walked.
    if bytes.windows(6).any(|w| w == br"\u0000")
        && let Ok(raw) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(field) = nul_path(&raw, String::new())
    {
        return Err(ApiError::field(field, "must not contain NUL characters"));
    }
    Ok(value)
}

/// The path of the first string (or key) holding a NUL character.
fn nul_path(v: &serde_json::Value, path: String) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.clone()
        }
    };
    match v {
        serde_json::Value::String(s) if s.contains('\0') => Some(here()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{}[{i}]", here()))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, item)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(p)
            } else {
                nul_path(item, p)
            }
        }),
        _ => None,
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<BodyLimit>()
            .map_or(64 * 1024, |BodyLimit(l)| *l);
        let content_type_ok = is_json_content_type(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| payload_error(&e, limit))?;
            if bytes.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            match content_type_ok {
                Some(true) => {}
                // An empty body without a content type is "missing body", not "wrong type".
                None if bytes.is_empty() => {}
                _ => {
                    return Err(ApiError::UnsupportedMediaType(
                        "expected `Content-Type: application/json`".to_owned(),
                    ));
                }
            }
            parse_json(&bytes).map(ApiJson)
        })
    }
}

fn payload_error(err: &actix_web::Error, limit: usize) -> ApiError {
    if err.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::BadRequest {
            code: "bad_body",
            message: format!("could not read the request body: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct Book {
        event_id: i64,
        number_of_seats: i32,
    }

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::Validation { errors, .. } => errors[0].field.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse_json::<Book>(br#"{"eventId":1,"numberOfSeats":"two"}"#).unwrap_err();
        assert_eq!(field_of(err), "numberOfSeats");
    }

    #[test]
    fn missing_field_names_the_field() {
        let err = parse_json::<Book>(br#"{"eventId":1}"#).unwrap_err();
        assert_eq!(field_of(err), "numberOfSeats");
    }

    #[test]
    fn duplicate_key_is_rejected() {
        let err =
            parse_json::<Book>(br#"{"eventId":1,"eventId":2,"numberOfSeats":2}"#).unwrap_err();
        assert_eq!(field_of(err), "eventId");
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        assert!(matches!(
            parse_json::<Book>(b"{\"eventId\":").unwrap_err(),
            ApiError::MalformedJson(_)
        ));
        assert!(matches!(
            parse_json::<Book>(br#"{"eventId":1,"numberOfSeats":2} trailing"#).unwrap_err(),
            ApiError::MalformedJson(_)
        ));
    }

    #[test]
    fn nul_characters_are_refused_naming_the_field() {
        #[derive(Debug, Deserialize)]
        #[expect(dead_code, reason = "fields exist to be deserialised")]
        struct Named {
            name: String,
            tags: Vec<String>,
        }
        let err = parse_json::<Named>(br#"{"name":"a\u0000b","tags":[]}"#).unwrap_err();
        assert_eq!(field_of(err), "name");
        let err = parse_json::<Named>(br#"{"name":"a","tags":["x","\u0000"]}"#).unwrap_err();
        assert_eq!(field_of(err), "tags[1]");
        // An escaped backslash before "u0000" is not a NUL.
        assert!(parse_json::<Named>(br#"{"name":"a\\u0000","tags":[]}"#).is_ok());
    }

    #[test]
    fn fractions_and_overflow_name_the_field() {
        let err = parse_json::<Book>(br#"{"eventId":1,"numberOfSeats":2.5}"#).unwrap_err();
        assert_eq!(field_of(err), "numberOfSeats");
        let err = parse_json::<Book>(br#"{"eventId":1,"numberOfSeats":99999999999}"#).unwrap_err();
        assert_eq!(field_of(err), "numberOfSeats");
    }
}

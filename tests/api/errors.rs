//! The error envelope for every kind of bad input, including actix's own extractor errors.

use actix_web::HttpResponse;
use serde::Deserialize;

use crate::helpers::{TestApp, json_with_status};
use atomicseats::http::extract::ApiJson;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Probe {
    event_id: i64,
    number_of_seats: i32,
}

async fn echo(body: ApiJson<Probe>) -> HttpResponse {
    let p = body.into_inner();
    HttpResponse::Ok()
        .json(serde_json::json!({ "eventId": p.event_id, "seats": p.number_of_seats }))
}

async fn app() -> TestApp {
    TestApp::builder()
        .env("ATOMICSEATS__HTTP__BODY_LIMIT_BYTES", "1024")
        .routes(|cfg| {
            cfg.service(atomicseats::http::resource("/probe/echo").post(echo));
        })
        .spawn()
        .await
}

fn assert_envelope(body: &serde_json::Value, status: u16, code: &str) {
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["errors"].is_array(), "{body}");
}

async fn post_raw(
    app: &TestApp,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = app.client.post(app.url("/probe/echo")).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn valid_json_reaches_the_handler() {
    let app = app().await;
    let resp = post_raw(
        &app,
        Some("application/json"),
        r#"{"eventId":1,"numberOfSeats":2}"#,
    )
    .await;
    let body = json_with_status(resp, 200).await;
    assert_eq!(body["seats"], 2);
}

#[tokio::test]
async fn malformed_json_is_400_with_the_envelope() {
    let app = app().await;
    let resp = post_raw(&app, Some("application/json"), r#"{"eventId":1,"#).await;
    let body = json_with_status(resp, 400).await;
    assert_envelope(&body, 400, "malformed_json");
}

#[tokio::test]
async fn wrong_types_are_400_naming_the_field() {
    let app = app().await;
    for (payload, field) in [
        (r#"{"eventId":1,"numberOfSeats":"2"}"#, "numberOfSeats"),
        (r#"{"eventId":1,"numberOfSeats":2.5}"#, "numberOfSeats"),
        (r#"{"eventId":"x","numberOfSeats":2}"#, "eventId"),
        (r#"{"eventId":1}"#, "numberOfSeats"),
        (
            r#"{"eventId":1,"numberOfSeats":2,"reservedSeats":9}"#,
            "reservedSeats",
        ),
        (r#"{"eventId":1,"eventId":2,"numberOfSeats":2}"#, "eventId"),
        (
            r#"{"eventId":9223372036854775808,"numberOfSeats":2}"#,
            "eventId",
        ),
    ] {
        let resp = post_raw(&app, Some("application/json"), payload).await;
        let body = json_with_status(resp, 400).await;
        assert_envelope(&body, 400, "validation_failed");
        assert_eq!(
            body["errors"][0]["field"], field,
            "payload {payload}: {body}"
        );
    }
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = app().await;
    let resp = post_raw(
        &app,
        Some("text/plain"),
        r#"{"eventId":1,"numberOfSeats":2}"#,
    )
    .await;
    let body = json_with_status(resp, 415).await;
    assert_envelope(&body, 415, "unsupported_media_type");

    let resp = post_raw(&app, None, r#"{"eventId":1,"numberOfSeats":2}"#).await;
    json_with_status(resp, 415).await;
}

#[tokio::test]
async fn missing_body_is_400_naming_body() {
    let app = app().await;
    let resp = post_raw(&app, Some("application/json"), "").await;
    let body = json_with_status(resp, 400).await;
    assert_eq!(body["errors"][0]["field"], "body");
}

#[tokio::test]
async fn oversize_body_is_413() {
    let app = app().await;
    let big = format!(
        r#"{{"eventId":1,"numberOfSeats":2,"pad":"{}"}}"#,
        "x".repeat(4096)
    );
    let resp = post_raw(&app, Some("application/json"), big).await;
    let body = json_with_status(resp, 413).await;
    assert_envelope(&body, 413, "payload_too_large");
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let app = app().await;
    let resp = app
        .client
        .get(app.url("/api/nothing/here"))
        .send()
        .await
        .unwrap();
    let body = json_with_status(resp, 404).await;
    assert_envelope(&body, 404, "not_found");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/api/nothing/here")
    );
}

#[tokio::test]
async fn wrong_method_is_405_json() {
    let app = app().await;
    let resp = app.client.delete(app.url("/health")).send().await.unwrap();
    let body = json_with_status(resp, 405).await;
    assert_envelope(&body, 405, "method_not_allowed");

    let resp = app.client.get(app.url("/probe/echo")).send().await.unwrap();
    json_with_status(resp, 405).await;
}

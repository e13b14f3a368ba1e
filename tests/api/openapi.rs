//! The API contract: the OpenAPI document describes exactly the routes the app serves, and the
//! reference page renders it with code served by the binary.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{TestApp, json_with_status};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let app = TestApp::spawn().await;
    json_with_status(
        app.client.get(app.url("/health")).send().await.unwrap(),
        200,
    )
    .await;

    let doc = json_with_status(
        app.client
            .get(app.url("/api/openapi.json"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }

    // Probe every registered path with every method, without credentials: a route that does
    // not exist for the method answers 405 from the resource's default service.
    let paths: Vec<String> = atomicseats::http::registered_paths()
        .into_iter()
        .filter(|p| !p.starts_with("/probe"))
        .collect();
    assert!(paths.len() >= 25, "{paths:?}");
    let mut served = BTreeSet::new();
    for path in &paths {
        let concrete = path
            .replace("{id}", "1")
            .replace("{requestId}", "00000000-0000-0000-0000-000000000000");
        for method in METHODS {
            let resp = app
                .client
                .request(method.parse().unwrap(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            assert!(status < 500, "{method} {concrete}: {status}");
            if status != 405 {
                served.insert((method.to_owned(), path.clone()));
            } else {
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["code"], "method_not_allowed");
            }
        }
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(missing.is_empty(), "documented but not served: {missing:?}");
    assert!(
        !served.iter().any(|(m, _)| m == "PUT"),
        "the probe tells methods apart"
    );

    // Every operation documents its errors with the shared error schema, and auth.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for code in ["400", "429", "500", "503"] {
                assert!(responses.contains_key(code), "{method} {path} lacks {code}");
            }
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            }
        }
    }
}

#[tokio::test]
async fn the_reference_page_is_served_with_its_own_script() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/api/docs/app.js">"#));
    assert!(
        !html.contains("https://"),
        "nothing is fetched from elsewhere"
    );
    let js = app
        .client
        .get(app.url("/api/docs/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    let js = js.text().await.unwrap();
    assert!(js.contains("/api/openapi.json"));
    assert!(!js.contains("https://"));
}

//! The web front (#15): pages rendered by the binary from the same services as the API —
//! escaped output, their own Content-Security-Policy, clear error pages, the micro-cache.

use std::time::Duration;

use atomicseats::users::domain::Role;
use serde_json::json;

use crate::events::event_body;
use crate::helpers::TestApp;

async fn page(app: &TestApp, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let resp = app.client.get(app.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().await.unwrap(), headers)
}

#[tokio::test]
async fn the_event_list_shows_what_the_api_lists_escaped_and_under_a_strict_policy() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let concert = app
        .create_event(&host, &event_body("Jazz night", 5, 100))
        .await;
    let hostile = app
        .create_event(
            &host,
            &event_body("<script>alert('x')</script> & \"friends\"", 6, 10),
        )
        .await;

    let (status, body, headers) = page(&app, "/").await;

    assert_eq!(status, 200, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        body.contains(&format!("href=\"/events/{concert}\"")),
        "{body}"
    );
    assert!(body.contains("Jazz night"));
    assert!(body.contains(&format!("href=\"/events/{hostile}\"")));
    assert!(
        body.contains(
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; &quot;friends&quot;"
        ),
        "the name is escaped: {body}"
    );
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(
        !body.contains("style="),
        "no inline style (the policy forbids it)"
    );
    assert!(
        body.contains("On sale") && body.contains("100 seats left"),
        "badge and availability: {body}"
    );
    assert!(
        body.contains("12.00 EUR") || body.contains("12.00"),
        "{body}"
    );

    // Search by name, and a bad query named on the page with a 400.
    let (status, body, _) = page(&app, "/?q=jazz").await;
    assert_eq!(status, 200);
    assert!(body.contains("Jazz night") && !body.contains("&amp; &quot;friends"));
    let (status, body, _) = page(&app, "/?cursor=nonsense").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("role=\"alert\"") && body.contains("cursor"),
        "{body}"
    );
}

#[tokio::test]
async fn an_event_page_shows_availability_and_its_visible_ticket_types() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let mut body = event_body("Opera", 3, 50);
    body["checkout"] = json!("hold");
    body["holdSeconds"] = json!(600);
    let event = app.create_event(&host, &body).await;
    for (name, hidden) in [("Balcony", false), ("Crew only", true)] {
        let resp = app
            .client
            .post(app.url(&format!("/api/events/{event}/ticket-types")))
            .bearer_auth(&host)
            .json(&json!({ "name": name, "price": 4550, "quota": 20, "maxPerUser": 2, "hidden": hidden }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let buyer = app.user_unlimited(Role::Guest).await;
    let resp = app
        .book(
            &buyer,
            &json!({ "eventId": event, "numberOfSeats": 3 }),
            &[("prefer", "wait=20")],
        )
        .await;
    assert_eq!(resp.status(), 201);

    let (status, page_body, headers) = page(&app, &format!("/events/{event}")).await;

    assert_eq!(status, 200, "{page_body}");
    assert!(headers.contains_key("content-security-policy"));
    assert!(page_body.contains("<h1>Opera</h1>"), "{page_body}");
    assert!(
        page_body.contains("47 of 50 seats left"),
        "held seats count as taken: {page_body}"
    );
    assert!(page_body.contains("Balcony") && page_body.contains("45.50"));
    assert!(page_body.contains("at most 2 per buyer"));
    assert!(
        !page_body.contains("Crew only"),
        "hidden types are not shown"
    );
    assert!(page_body.contains("held for 10 minutes"), "{page_body}");
}

#[tokio::test]
async fn missing_and_cancelled_events_get_a_not_found_page() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Gone", 3, 5)).await;
    let resp = app
        .post_as("/api/events/delete", &host, &json!({ "id": event }))
        .await;
    assert_eq!(resp.status(), 200);

    for path in [
        format!("/events/{event}"),
        "/events/999999".to_owned(),
        "/events/abc".to_owned(),
        "/static/nothing.css".to_owned(),
    ] {
        let (status, body, headers) = page(&app, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(body.contains("There is no such page or event."), "{path}");
    }
    let (status, css, headers) = page(&app, "/static/app.css").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.contains(":focus-visible"), "focus stays visible");
}

#[tokio::test]
async fn a_cached_page_is_served_without_reading_again_until_it_is_stale() {
    let app = TestApp::builder()
        .env("ATOMICSEATS__WEB__PAGE_CACHE_MS", "1500")
        .spawn()
        .await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Before", 3, 5)).await;
    let path = format!("/events/{event}");
    let (_, first, _) = page(&app, &path).await;
    assert!(first.contains("Before"));

    // Behind every cache's back: only a page rendered anew can show it.
    let db = app.db.client().await;
    db.execute(
        "UPDATE ticket_types SET name = 'Renamed' WHERE event_id = $1",
        &[&event],
    )
    .await
    .unwrap();
    let (_, again, _) = page(&app, &path).await;
    assert!(!again.contains("Renamed"), "served from the page cache");

    tokio::time::sleep(Duration::from_millis(1700)).await;
    let (_, later, _) = page(&app, &path).await;
    assert!(later.contains("Renamed"), "rendered again once stale");
}

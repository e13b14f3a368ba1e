//! The web front (#15): pages rendered by the binary from the same services as the API —
//! escaped output, their own Content-Security-Policy, clear error pages, the micro-cache.

use std::time::Duration;

use atomicseats::users::domain::Role;
use serde_json::json;

use crate::helpers::TestApp;
use crate::helpers::events::event_body;

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
        page_body.contains(">47</span> of 50 seats left"),
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

/// A browser of its own: keeps the cookies the app sets (by name, any path), sends them back,
/// reads the CSRF token from the last page, posts forms as a page does.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: std::collections::BTreeMap<String, String>,
    csrf: Option<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: Default::default(),
            csrf: None,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, resp: reqwest::Response) -> Page {
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attrs.to_lowercase().contains("max-age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = resp.text().await.unwrap();
        if let Some(at) = body.find("name=\"csrf\" value=\"") {
            let rest = &body[at + 19..];
            self.csrf = Some(rest[..rest.find('"').unwrap()].to_owned());
        }
        Page {
            status,
            location,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .app
            .client
            .get(self.app.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.take(resp).await
    }

    /// A browser logged in through the login form as `username` (password [`PASSWORD`]).
    async fn logged_in(app: &'a TestApp, username: &str) -> Browser<'a> {
        let mut b = Self::new(app);
        b.get("/login").await;
        let page = b
            .post(
                "/login",
                &[("login", username), ("password", crate::helpers::PASSWORD)],
            )
            .await;
        assert_eq!(page.status, 303, "login as {username}: {}", page.body);
        b
    }

    /// Posts `fields` plus the page's CSRF token, as the browser's own form would.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if let Some(t) = &self.csrf {
            form.push(("csrf".to_owned(), t.clone()));
        }
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .app
            .client
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .body(body)
            .send()
            .await
            .unwrap();
        self.take(resp).await
    }
}

#[tokio::test]
async fn a_buyer_logs_in_books_sees_the_ticket_cancels_it_and_logs_out() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Quartet", 4, 3)).await;
    app.user_named("grace", Role::Guest).await;
    let mut b = Browser::new(&app);

    // Not signed in: the event page offers a login that comes back to it.
    let page = b.get(&format!("/events/{event}")).await;
    assert!(
        page.body
            .contains(&format!("href=\"/login?next=/events/{event}\"")),
        "{}",
        page.body
    );
    assert!(
        b.cookies.contains_key("__Host-asCsrf"),
        "a CSRF cookie is set"
    );
    let page = b.get(&format!("/login?next=/events/{event}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<label for=\"login\">"),
        "labelled fields"
    );

    // A wrong password: the form again, the API's status, nothing set.
    let page = b
        .post(
            "/login",
            &[
                ("login", "grace"),
                ("password", "not it at all"),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(page.status, 401);
    assert!(
        page.body.contains("do not match an account"),
        "{}",
        page.body
    );
    assert!(!b.cookies.contains_key("accessToken"));

    let page = b
        .post(
            "/login",
            &[
                ("login", "grace"),
                ("password", crate::helpers::PASSWORD),
                ("next", &format!("/events/{event}")),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some(&*format!("/events/{event}")));
    assert!(
        b.cookies.contains_key("accessToken"),
        "the API's session cookie"
    );

    // The booking form, decided by the writer.
    let page = b.get(&format!("/events/{event}")).await;
    assert!(
        page.body
            .contains(&format!("action=\"/events/{event}/book\""))
    );
    let key_at = page.body.find("name=\"key\" value=\"").unwrap() + 18;
    let key = page.body[key_at..key_at + 36].to_owned();
    let booked = b
        .post(
            &format!("/events/{event}/book"),
            &[("seats", "2"), ("joinWaitlist", "1"), ("key", &key)],
        )
        .await;
    assert_eq!(booked.status, 200, "{}", booked.body);
    assert!(
        booked.body.contains("Confirmed: your seats are booked."),
        "{}",
        booked.body
    );
    // The same form sent twice (a double click, a reload) books once.
    let again = b
        .post(
            &format!("/events/{event}/book"),
            &[("seats", "2"), ("joinWaitlist", "1"), ("key", &key)],
        )
        .await;
    assert_eq!(again.status, 200);
    let db = app.db.client().await;
    let seats: i64 = db
        .query_one(
            "SELECT COALESCE(SUM(seats), 0) FROM bookings WHERE event_id = $1 AND status = 'confirmed'",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seats, 2, "one booking for one form");

    // Over the capacity of 3 without the waitlist: the API's reason, in words, with 409.
    let refused = b
        .post(
            &format!("/events/{event}/book"),
            &[("seats", "2"), ("key", "other")],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("Not booked."), "{}", refused.body);
    // A bad number names the field, 400.
    let bad = b
        .post(
            &format!("/events/{event}/book"),
            &[("seats", "many"), ("key", "k3")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("seats: must be a whole number"),
        "{}",
        bad.body
    );

    // My bookings shows it; cancel it from there.
    let mine = b.get("/me").await;
    assert_eq!(mine.status, 200);
    assert!(
        mine.body.contains("Quartet") && mine.body.contains("Confirmed"),
        "{}",
        mine.body
    );
    let booking: i64 = db
        .query_one("SELECT id FROM bookings WHERE event_id = $1", &[&event])
        .await
        .unwrap()
        .get(0);
    let cancelled = b
        .post(
            &format!("/me/bookings/{booking}/cancel"),
            &[("eventId", &event.to_string())],
        )
        .await;
    assert_eq!(cancelled.status, 303);
    assert_eq!(cancelled.location.as_deref(), Some("/me?done=cancelled"));
    let mine = b.get("/me?done=cancelled").await;
    assert!(mine.body.contains("The booking was cancelled."));
    let status: String = db
        .query_one("SELECT status FROM bookings WHERE id = $1", &[&booking])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "cancelled");

    // Log out: the cookies go, and the old access token no longer works.
    let token = b.cookies["accessToken"].clone();
    let out = b.post("/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(!b.cookies.contains_key("accessToken"));
    let resp = app.get_as("/api/user/me", &token).await;
    assert_eq!(resp.status(), 401, "the access token ended with the logout");
    let page = b.get("/me").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/login?next=%2Fme"));
}

#[tokio::test]
async fn a_form_without_its_token_or_from_another_site_is_refused() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Guarded", 4, 3)).await;
    app.user_named("mallory", Role::Guest).await;
    let b = Browser::logged_in(&app, "mallory").await;

    // No token, a wrong one, another browser's, or a cross-site post: 403, nothing booked.
    let good = b.csrf.clone().unwrap();
    for token in [None, Some("forged"), Some(good.as_str())] {
        let mut form = vec![("seats", "1"), ("key", "k")];
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let cookies = if token == Some(good.as_str()) {
            // The right token, but the browser's CSRF cookie is another one.
            b.cookie_header()
                .replace(&b.cookies["__Host-asCsrf"], "someoneelsescookie0123456789")
        } else {
            b.cookie_header()
        };
        let resp = app
            .client
            .post(app.url(&format!("/events/{event}/book")))
            .header("cookie", cookies)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{token:?}");
        assert!(resp.text().await.unwrap().contains("This form has expired"));
    }
    let resp = app
        .client
        .post(app.url(&format!("/events/{event}/book")))
        .header("cookie", b.cookie_header())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(format!("seats=1&key=k&csrf={good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "a cross-site post");
    // The token is bound to the account: mallory's cookie and token pair, planted in another
    // signed-in browser, is refused there.
    app.user_named("victor", Role::Guest).await;
    let v = Browser::logged_in(&app, "victor").await;
    let planted = format!(
        "accessToken={}; __Host-asCsrf={}",
        v.cookies["accessToken"], b.cookies["__Host-asCsrf"]
    );
    let resp = app
        .client
        .post(app.url(&format!("/events/{event}/book")))
        .header("cookie", planted)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("seats=1&key=k&csrf={good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "another account's token");
    let n: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM booking_requests", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "nothing was booked");

    // `next` never leaves the site.
    let mut other = Browser::new(&app);
    other.get("/login").await;
    let page = other
        .post(
            "/login",
            &[
                ("login", "mallory"),
                ("password", crate::helpers::PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/"));
}

#[tokio::test]
async fn a_hold_is_released_or_paid_at_stripe_from_the_pages() {
    let stripe = crate::helpers::stripe::LocalStripe::start().await;
    let mut builder = TestApp::builder();
    for (k, v) in stripe.env() {
        builder = builder.env(k, &v);
    }
    let app = builder.spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let mut body = event_body("Card sale", 4, 10);
    body["checkout"] = json!("hold");
    body["holdSeconds"] = json!(600);
    body["paymentProvider"] = json!("stripe");
    let event = app.create_event(&host, &body).await;
    app.user_named("cara", Role::Guest).await;
    let mut b = Browser::logged_in(&app, "cara").await;

    let mut held = Vec::new();
    for key in ["one", "two"] {
        b.get(&format!("/events/{event}")).await;
        let page = b
            .post(
                &format!("/events/{event}/book"),
                &[("seats", "1"), ("key", key)],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("Held: your seats are reserved"),
            "{}",
            page.body
        );
        let at = page.body.find("action=\"/me/bookings/").unwrap() + 21;
        let id: i64 = page.body[at..at + page.body[at..].find('/').unwrap()]
            .parse()
            .unwrap();
        held.push(id);
    }

    // Pay: a link on to Stripe's Checkout page (the local server's URL) — not a redirect,
    // which the pages' `form-action 'self'` would stop in the browser.
    let paid = b.post(&format!("/me/bookings/{}/pay", held[0]), &[]).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let link = format!("href=\"{}/pay/", stripe.base).replace('/', "&#x2f;");
    assert!(paid.body.contains(&link), "{}", paid.body);
    // Release: the writer expires it at once; asking again says why not.
    let released = b
        .post(&format!("/me/bookings/{}/release", held[1]), &[])
        .await;
    assert_eq!(released.status, 303);
    assert_eq!(released.location.as_deref(), Some("/me?done=released"));
    let again = b
        .post(&format!("/me/bookings/{}/release", held[1]), &[])
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    let status: String = app
        .db
        .client()
        .await
        .query_one("SELECT status FROM bookings WHERE id = $1", &[&held[1]])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "expired");
    // Someone else's booking is not yours to pay.
    app.user_named("dan", Role::Guest).await;
    let mut d = Browser::logged_in(&app, "dan").await;
    d.get("/me").await;
    let theirs = d.post(&format!("/me/bookings/{}/pay", held[0]), &[]).await;
    assert!(matches!(theirs.status, 403 | 404), "{}", theirs.status);
}

#[tokio::test]
async fn a_host_creates_an_event_sells_records_a_payment_exports_and_cancels_from_the_pages() {
    let app = TestApp::spawn().await;
    app.user_named("hana", Role::Host).await;
    let mut h = Browser::logged_in(&app, "hana").await;
    let page = h.get("/host").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You have no events yet."));

    // The API's validation, each field named; then a good form.
    let start = (chrono::Utc::now() + chrono::Duration::days(9))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let end = (chrono::Utc::now() + chrono::Duration::days(9) + chrono::Duration::hours(3))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    h.get("/host/events/new").await;
    let bad = h
        .post(
            "/host/events/new",
            &[
                ("name", ""),
                ("capacity", "lots"),
                ("price", "12.5.0"),
                ("startsAt", &start),
                ("endsAt", &end),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("id=\"capacity-error\"") && bad.body.contains("must be a whole number")
    );
    assert!(bad.body.contains("id=\"price-error\""), "{}", bad.body);
    let bad = h
        .post(
            "/host/events/new",
            &[
                ("name", "Jazz <b>Club</b>"),
                ("description", "Late"),
                ("venue", "Cellar"),
                ("capacity", "5"),
                ("price", "12.50"),
                ("startsAt", &end),
                ("endsAt", &start),
                ("checkout", "hold"),
                ("paymentProvider", "manual"),
                ("holdMinutes", "30"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "ends before it starts: {}", bad.body);
    assert!(bad.body.contains("endsAt"), "{}", bad.body);
    let made = h
        .post(
            "/host/events/new",
            &[
                ("name", "Jazz <b>Club</b>"),
                ("description", "Late"),
                ("venue", "Cellar"),
                ("capacity", "5"),
                ("price", "12.50"),
                ("startsAt", &start),
                ("endsAt", &end),
                ("checkout", "hold"),
                ("paymentProvider", "manual"),
                ("holdMinutes", "30"),
                ("refundUntilHours", "24"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let dash = made.location.unwrap();
    let event: i64 = dash.rsplit('/').next().unwrap().parse().unwrap();
    let db = app.db.client().await;
    let row = db
        .query_one(
            "SELECT price, capacity, checkout, hold_secs, refund_until_hours FROM events WHERE id = $1",
            &[&event],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1250);
    assert_eq!(row.get::<_, i32>(1), 5);
    assert_eq!(row.get::<_, String>(2), "hold");
    assert_eq!(row.get::<_, i32>(3), 1800);
    assert_eq!(row.get::<_, Option<i32>>(4), Some(24));

    h.get(&dash).await;
    let added = h
        .post(
            &format!("/host/events/{event}/ticket-types"),
            &[
                ("name", "Front, row"),
                ("price", "30"),
                ("quota", "2"),
                ("maxPerUser", "1"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    // Hidden from buyers, then shown again; the default type cannot be hidden.
    let (front, default): (i64, i64) = {
        let rows = db
            .query(
                "SELECT id, is_default FROM ticket_types WHERE event_id = $1 ORDER BY id",
                &[&event],
            )
            .await
            .unwrap();
        let id = |d: bool| {
            rows.iter()
                .find(|r| r.get::<_, bool>(1) == d)
                .unwrap()
                .get(0)
        };
        (id(false), id(true))
    };
    h.get(&dash).await;
    let hidden = h
        .post(
            &format!("/host/events/{event}/ticket-types/{front}/visibility"),
            &[("hidden", "1")],
        )
        .await;
    assert_eq!(hidden.status, 303, "{}", hidden.body);
    let public = h.get(&format!("/events/{event}")).await;
    assert!(!public.body.contains("Front, row"), "hidden from buyers");
    let refused = h
        .post(
            &format!("/host/events/{event}/ticket-types/{default}/visibility"),
            &[("hidden", "1")],
        )
        .await;
    assert!(
        matches!(refused.status, 400 | 409),
        "{}: {}",
        refused.status,
        refused.body
    );
    h.post(
        &format!("/host/events/{event}/ticket-types/{front}/visibility"),
        &[("hidden", "0")],
    )
    .await;
    let public = h.get(&format!("/events/{event}")).await;
    assert!(public.body.contains("Front, row"), "shown again");

    // A buyer holds seats; the dashboard counts them and offers "mark paid".
    let buyer = app.user_unlimited(Role::Guest).await;
    let resp = app
        .book(
            &buyer,
            &json!({ "eventId": event, "numberOfSeats": 2 }),
            &[("prefer", "wait=20")],
        )
        .await;
    assert_eq!(resp.status(), 201);
    let page = h.get(&dash).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Jazz &lt;b&gt;Club&lt;&#x2f;b&gt;"),
        "escaped: {}",
        page.body
    );
    assert!(page.body.contains("2 of 5 (40"), "{}", page.body);
    assert!(page.body.contains("<svg class=\"chart\""), "charts");
    assert!(page.body.contains("Front, row") && page.body.contains("30.00"));
    assert!(
        !page.body.contains("@example.com"),
        "no email addresses on the host's pages"
    );
    let at = page.body.find("action=\"/host/bookings/").unwrap() + 23;
    let booking = &page.body[at..at + page.body[at..].find('/').unwrap()];
    let paid = h
        .post(
            &format!("/host/bookings/{booking}/mark-paid"),
            &[("eventId", &event.to_string())],
        )
        .await;
    assert_eq!(paid.status, 303, "{}", paid.body);
    let page = h.get(&paid.location.unwrap()).await;
    assert!(
        page.body.contains("The payment was recorded"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("25.00 EUR"),
        "net revenue: {}",
        page.body
    );

    // Edit: the form comes filled in; the API's rules hold (not below the seats taken).
    let form = h.get(&format!("/host/events/{event}/edit")).await;
    assert_eq!(form.status, 200);
    assert!(
        form.body.contains("value=\"Cellar\"") && form.body.contains("value=\"12.50\""),
        "{}",
        form.body
    );
    let fields = |capacity: &'static str, venue: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("name", "Jazz <b>Club</b>".into()),
            ("description", "Late".into()),
            ("venue", venue.into()),
            ("capacity", capacity.into()),
            ("price", "12.50".into()),
            ("checkout", "hold".into()),
            ("paymentProvider", "manual".into()),
            ("holdMinutes", "30".into()),
            ("refundUntilHours", "24".into()),
            ("startsAt", start.clone()),
            ("endsAt", end.clone()),
        ]
    };
    let too_small = fields("1", "Cellar");
    let too_small: Vec<(&str, &str)> = too_small.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = h
        .post(&format!("/host/events/{event}/edit"), &too_small)
        .await;
    assert!(
        matches!(refused.status, 400 | 409),
        "{}: {}",
        refused.status,
        refused.body
    );
    assert!(refused.body.contains("capacity"), "{}", refused.body);
    let moved = fields("8", "Harbour Hall");
    let moved: Vec<(&str, &str)> = moved.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = h.post(&format!("/host/events/{event}/edit"), &moved).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let row = db
        .query_one(
            "SELECT venue, capacity FROM events WHERE id = $1",
            &[&event],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1)),
        ("Harbour Hall".to_owned(), 8)
    );

    let csv = app
        .client
        .get(app.url(&format!("/host/events/{event}/attendees.csv")))
        .header("cookie", h.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "\"booking_id\",\"name\",\"username\",\"ticket_type\",\"seats\",\"status\",\"cost\",\"booked_at\""
    );
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].contains(",\"2\",\"confirmed\",\"25.00\","),
        "{text}"
    );
    assert!(!text.contains('@'), "no email addresses: {text}");

    // A guest and another host are turned away.
    app.user_named("gus", Role::Guest).await;
    let mut g = Browser::logged_in(&app, "gus").await;
    assert_eq!(g.get("/host").await.status, 403);
    app.user_named("other", Role::Host).await;
    let mut o = Browser::logged_in(&app, "other").await;
    assert_eq!(o.get(&dash).await.status, 403);
    assert_eq!(
        o.get(&format!("/host/events/{event}/attendees.csv"))
            .await
            .status,
        403
    );

    // Cancel: what it does is spelled out first, then done (the paid booking refunded).
    let confirm = h.get(&format!("/host/events/{event}/cancel")).await;
    assert!(
        confirm.body.contains("cancel its 1 confirmed bookings"),
        "{}",
        confirm.body
    );
    assert!(
        confirm.body.contains("net paid now: 25.00 EUR"),
        "{}",
        confirm.body
    );
    let done = h.post(&format!("/host/events/{event}/cancel"), &[]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let status: String = db
        .query_one("SELECT status FROM events WHERE id = $1", &[&event])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "cancelled");
    let refunding: i64 = db
        .query_one(
            "SELECT count(*) FROM bookings WHERE event_id = $1 AND status IN ('refund_pending', 'refunded')",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refunding, 1);
}

#[tokio::test]
async fn admin_pages_are_for_admins_and_keep_the_last_admin() {
    let app = TestApp::spawn().await;
    let root = app.user_named("root", Role::Admin).await;
    app.user_named("hal", Role::Host).await;
    let mut h = Browser::logged_in(&app, "hal").await;
    for path in ["/admin", "/admin/users", "/admin/notifications"] {
        let page = h.get(path).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(page.body.contains("These pages are for admins."));
    }
    let forged = h
        .post(&format!("/admin/users/{root}/role"), &[("role", "guest")])
        .await;
    assert_eq!(forged.status, 403, "a host cannot change roles");

    let mut a = Browser::logged_in(&app, "root").await;
    let page = a.get("/admin/users?q=ha").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("hal") && !page.body.contains(">root<"),
        "{}",
        page.body
    );
    a.get("/admin/users").await;
    let last = a
        .post(&format!("/admin/users/{root}/role"), &[("role", "guest")])
        .await;
    assert_eq!(last.status, 409, "{}", last.body);
    assert!(last.body.contains("last admin"), "{}", last.body);
    let bad = a
        .post(&format!("/admin/users/{root}/role"), &[("role", "emperor")])
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let none = a.post("/admin/notifications/999999/retry", &[]).await;
    assert_eq!(none.status, 409, "{}", none.body);

    // Every event, whoever hosts it, from the admin's menu.
    let other_host = app.user_unlimited(Role::Host).await;
    let event = app
        .create_event(&other_host, &event_body("Not mine", 5, 10))
        .await;
    assert!(
        a.get("/admin")
            .await
            .body
            .contains("<a href=\"/host\">All events</a>")
    );
    let all = a.get("/host").await;
    assert!(
        all.body.contains("<h1>All events</h1>")
            && all.body.contains(&format!("href=\"/host/events/{event}\"")),
        "{}",
        all.body
    );
    assert_eq!(a.get(&format!("/host/events/{event}")).await.status, 200);
    assert!(
        !h.get("/host").await.body.contains("Not mine"),
        "a host sees their own"
    );
}

#[tokio::test]
async fn a_waiting_room_event_is_booked_only_with_an_admission_from_the_room() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let mut body = event_body("Roomed", 30, 50);
    body["waitingRoom"] = json!(true);
    let event = app.create_event(&host, &body).await;
    crate::helpers::rooms::start_pacer(&app);
    app.user_named("wes", Role::Guest).await;
    let mut b = Browser::logged_in(&app, "wes").await;

    // Not in the room: the room page sends back to the event, which offers to join.
    let page = b.get(&format!("/events/{event}/queue")).await;
    assert_eq!(page.status, 303);
    let page = b.get(&format!("/events/{event}")).await;
    assert!(
        page.body
            .contains(&format!("action=\"/events/{event}/queue\""))
    );
    assert!(
        !page
            .body
            .contains(&format!("action=\"/events/{event}/book\"")),
        "no form without the room"
    );
    // Booking without an admission: the API's refusal, in words.
    let refused = b
        .post(
            &format!("/events/{event}/book"),
            &[("seats", "1"), ("key", "k1")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("waiting room"), "{}", refused.body);

    let joined = b.post(&format!("/events/{event}/queue"), &[]).await;
    assert_eq!(joined.status, 303, "{}", joined.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let room = loop {
        let page = b.get(&format!("/events/{event}/queue")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        if page.body.contains("name=\"admission\"") {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not admitted: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let at = room.body.find("name=\"admission\" value=\"").unwrap() + 24;
    let token = room.body[at..at + room.body[at..].find('"').unwrap()].to_owned();
    let key_at = room.body.find("name=\"key\" value=\"").unwrap() + 18;
    let key = room.body[key_at..key_at + 36].to_owned();
    let booked = b
        .post(
            &format!("/events/{event}/book"),
            &[
                ("seats", "2"),
                ("key", &key),
                ("admission", &token),
                ("joinWaitlist", "1"),
            ],
        )
        .await;
    assert_eq!(booked.status, 200, "{}", booked.body);
    assert!(booked.body.contains("Confirmed"), "{}", booked.body);
    // Someone else's admission is not hers.
    app.user_named("zed", Role::Guest).await;
    let mut z = Browser::logged_in(&app, "zed").await;
    z.get(&format!("/events/{event}")).await;
    let stolen = z
        .post(
            &format!("/events/{event}/book"),
            &[("seats", "1"), ("key", "z1"), ("admission", &token)],
        )
        .await;
    assert_eq!(stolen.status, 403, "{}", stolen.body);
}

#[tokio::test]
async fn a_host_changes_a_ticket_type_from_its_form_under_the_apis_rules() {
    let app = TestApp::spawn().await;
    let host = app.user(Role::Host).await;
    let event = app
        .create_event(&host.access, &event_body("Quartet", 3, 20))
        .await;
    let mut h = Browser::logged_in(&app, &host.username).await;
    let dash = format!("/host/events/{event}");
    h.get(&dash).await;
    // Adding: a price that is not money is named on the type's form.
    let bad = h
        .post(
            &format!("{dash}/ticket-types"),
            &[("name", "Box"), ("price", "ten")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("id=\"price-error\"") && bad.body.contains("aria-invalid=\"true\""),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("value=\"Box\""), "kept: {}", bad.body);
    let added = h
        .post(
            &format!("{dash}/ticket-types"),
            &[("name", "Box"), ("price", "40"), ("quota", "5")],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let db = app.db.client().await;
    let ids = |is_default: bool| {
        let db = &db;
        async move {
            db.query_one(
                "SELECT id FROM ticket_types WHERE event_id = $1 AND is_default = $2",
                &[&event, &is_default],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    let (boxes, default) = (ids(false).await, ids(true).await);
    let buyer = app.user_unlimited(Role::Guest).await;
    let resp = app
        .book(
            &buyer,
            &json!({ "eventId": event, "numberOfSeats": 2, "ticketTypeId": boxes }),
            &[("prefer", "wait=20")],
        )
        .await;
    assert_eq!(resp.status(), 201);

    // The form shows the type as it is, linked from the dashboard.
    let form_path = format!("{dash}/ticket-types/{boxes}");
    assert!(
        h.get(&dash)
            .await
            .body
            .contains(&format!("href=\"{form_path}\""))
    );
    let form = h.get(&form_path).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("value=\"Box\"") && form.body.contains("value=\"40.00\""));
    assert!(
        form.body
            .contains("id=\"quota\" name=\"quota\" type=\"number\" value=\"5\"")
    );
    assert!(
        form.body.contains("min=\"1\""),
        "attributes not escaped: {}",
        form.body
    );

    // The API's rules, each refusal on the form: a quota below the seats sold (409), a sales
    // window that ends before it starts (400, naming salesEnd).
    let refused = h
        .post(
            &form_path,
            &[("name", "Box"), ("price", "40"), ("quota", "1")],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.body.contains("below the 2 seats"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("id=\"quota-error\""),
        "at its field: {}",
        refused.body
    );
    let refused = h
        .post(
            &form_path,
            &[
                ("name", "Box"),
                ("price", "40"),
                ("salesStart", "2031-05-02T10:00"),
                ("salesEnd", "2031-05-01T10:00"),
            ],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("id=\"salesEnd-error\""),
        "{}",
        refused.body
    );
    let row = db
        .query_one(
            "SELECT price, quota FROM ticket_types WHERE id = $1",
            &[&boxes],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, Option<i32>>(1)),
        (4000, Some(5)),
        "nothing changed by a refused form"
    );

    // A good form: new price and quota, the per-buyer cap set, a sales window, hidden.
    let saved = h
        .post(
            &form_path,
            &[
                ("name", "Box seats"),
                ("price", "35.50"),
                ("quota", "8"),
                ("maxPerUser", "2"),
                ("salesStart", "2020-01-01T09:00"),
                ("salesEnd", "2031-05-01T10:00"),
                ("hidden", "1"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(
        saved.location.as_deref(),
        Some(&*format!("{dash}?done=type_changed"))
    );
    let row = db
        .query_one(
            "SELECT name, price, quota, max_per_user, sales_end, hidden FROM ticket_types WHERE id = $1",
            &[&boxes],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Box seats");
    assert_eq!(row.get::<_, i64>(1), 3550);
    assert_eq!(row.get::<_, Option<i32>>(2), Some(8));
    assert_eq!(row.get::<_, Option<i32>>(3), Some(2));
    assert_eq!(
        row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(4)
            .map(|t| t.to_rfc3339()),
        Some("2031-05-01T10:00:00+00:00".to_owned())
    );
    assert!(row.get::<_, bool>(5));
    // Emptied limits are cleared.
    let cleared = h
        .post(&form_path, &[("name", "Box seats"), ("price", "35.50")])
        .await;
    assert_eq!(cleared.status, 303, "{}", cleared.body);
    let row = db
        .query_one(
            "SELECT quota, max_per_user, sales_start, hidden FROM ticket_types WHERE id = $1",
            &[&boxes],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), None);
    assert_eq!(row.get::<_, Option<i32>>(1), None);
    assert!(
        row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(2)
            .is_none()
    );
    assert!(
        !row.get::<_, bool>(3),
        "an unticked box shows the type again"
    );

    // The default type's form has no "hidden" box, and its price is the event's.
    let default_path = format!("{dash}/ticket-types/{default}");
    let form = h.get(&default_path).await;
    assert!(!form.body.contains("name=\"hidden\""), "{}", form.body);
    let saved = h
        .post(&default_path, &[("name", "Standard"), ("price", "12")])
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let price: i64 = db
        .query_one("SELECT price FROM events WHERE id = $1", &[&event])
        .await
        .unwrap()
        .get(0);
    assert_eq!(price, 1200);

    // Another host may not see or change it.
    let other = app.user(Role::Host).await;
    let mut o = Browser::logged_in(&app, &other.username).await;
    assert_eq!(o.get(&form_path).await.status, 403);
    o.get("/host").await;
    let refused = o
        .post(&form_path, &[("name", "Mine"), ("price", "1")])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let name: String = db
        .query_one("SELECT name FROM ticket_types WHERE id = $1", &[&boxes])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Box seats");
}

#[tokio::test]
async fn a_page_session_outlives_its_access_token_until_logging_out_ends_it() {
    let app = TestApp::spawn().await;
    let id = app.user_named("pia", Role::Guest).await;
    let mut b = Browser::logged_in(&app, "pia").await;
    assert!(b.cookies.contains_key("accessToken"));
    let session = b
        .cookies
        .get("asSession")
        .cloned()
        .expect("a page session cookie");
    assert!(
        !b.cookies.contains_key("refreshToken"),
        "the API's rotating refresh cookie is not the page's"
    );

    // The browser drops the access cookie when it runs out: the page session renews it and
    // sends the browser to the same address, a form posted again as it was.
    b.cookies.remove("accessToken");
    let renewed = b.get("/?q=jazz").await;
    assert_eq!(renewed.status, 307, "{}", renewed.body);
    assert_eq!(renewed.location.as_deref(), Some("/?q=jazz"));
    assert!(b.cookies.contains_key("accessToken"), "a new access cookie");
    let me = b.get("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    b.cookies.remove("accessToken");
    let posted = b.post("/logout", &[]).await;
    assert_eq!(posted.status, 307, "a form is sent again: {}", posted.body);
    assert_eq!(posted.location.as_deref(), Some("/logout"));

    // The role is the stored one at each renewal.
    let db = app.db.client().await;
    db.execute("UPDATE users SET role = 'host' WHERE id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(b.get("/host").await.status, 403, "the old token's role");
    b.cookies.remove("accessToken");
    b.get("/host").await;
    assert_eq!(b.get("/host").await.status, 200, "renewed as a host");
    let renewals = app.metrics().await;
    assert!(
        renewals
            .lines()
            .any(|l| l.starts_with("page_sessions_renewed_total") && !l.ends_with(" 0")),
        "{renewals}"
    );

    // Logging out revokes the page session's row: the cookie presented again renews nothing,
    // and is removed.
    b.get("/me").await;
    let out = b.post("/logout", &[]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert!(!b.cookies.contains_key("asSession") && !b.cookies.contains_key("accessToken"));
    let revoked: i64 = db
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NOT NULL",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(revoked, 1);
    b.cookies.insert("asSession".to_owned(), session);
    let page = b.get("/me").await;
    assert_eq!(page.status, 303, "to log in: {}", page.body);
    assert!(page.location.unwrap().starts_with("/login"));
    assert!(
        !b.cookies.contains_key("asSession"),
        "an ended session's cookie is removed"
    );
}

#[tokio::test]
async fn my_bookings_show_my_place_in_line_and_let_me_leave_the_waitlist() {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let event = app.create_event(&host, &event_body("Tiny", 3, 1)).await;
    let first = app.user_unlimited(Role::Guest).await;
    let second = app.user_unlimited(Role::Guest).await;
    let me = app.user(Role::Guest).await;
    for token in [&first, &second, &me.access] {
        let resp = app
            .book(
                token,
                &json!({ "eventId": event, "numberOfSeats": 1 }),
                &[("prefer", "wait=20")],
            )
            .await;
        assert!(
            matches!(resp.status().as_u16(), 201 | 202),
            "{}",
            resp.status()
        );
    }
    let mut b = Browser::logged_in(&app, &me.username).await;
    let page = b.get("/me").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("On the waitlist · place in line 2"),
        "behind the second buyer: {}",
        page.body
    );
    let action = format!("action=\"/me/waitlist/{event}/leave\"");
    assert!(page.body.contains(&action), "{}", page.body);

    let left = b.post(&format!("/me/waitlist/{event}/leave"), &[]).await;
    assert_eq!(left.status, 303, "{}", left.body);
    assert_eq!(left.location.as_deref(), Some("/me?done=left_waitlist"));
    let db = app.db.client().await;
    let mine: i64 = db
        .query_one(
            "SELECT count(*) FROM waitlist WHERE user_id = $1",
            &[&me.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mine, 0, "off the waitlist");
    let page = b.get("/me?done=left_waitlist").await;
    assert!(
        page.body.contains("You left the waitlist."),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&action), "nothing left to leave");
    let again = b.post(&format!("/me/waitlist/{event}/leave"), &[]).await;
    assert_eq!(again.status, 404, "not on it any more: {}", again.body);
}

#[tokio::test]
async fn refusals_before_a_page_runs_are_pages_in_words_and_the_api_keeps_json() {
    let app = TestApp::builder()
        .env("ATOMICSEATS__RATE_LIMIT__ENABLED", "true")
        .env("ATOMICSEATS__RATE_LIMIT__READ", "2")
        .env("ATOMICSEATS__RATE_LIMIT__WINDOW_SECS", "60")
        .spawn()
        .await;
    let mut last = None;
    for _ in 0..3 {
        last = Some(app.client.get(app.url("/")).send().await.unwrap());
    }
    let limited = last.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert!(
        limited.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(limited.headers().contains_key("content-security-policy"));
    let body = limited.text().await.unwrap();
    assert!(
        body.contains("Too many requests from you just now."),
        "{body}"
    );

    // A method a page does not take: a page too; the API's own answers stay JSON.
    let wrong = app.client.delete(app.url("/login")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("does not take that kind of request")
    );
    let api = app
        .client
        .delete(app.url("/api/events"))
        .send()
        .await
        .unwrap();
    assert!(
        api.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        api.headers()
    );
    let unknown = app
        .client
        .get(app.url("/api/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(
        unknown.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

/// After logging in, `next` only ever leads to a path of this site: a TAB a browser would drop
/// (`/\t/evil.example/` → `//evil.example/`), a CR that would break the header, a backslash,
/// another host — each goes to `/`, never a 500.
#[tokio::test]
async fn login_goes_on_only_to_a_path_of_this_site() {
    let app = TestApp::spawn().await;
    app.user_named("walker", Role::Guest).await;
    for next in [
        "/%09/evil.example/",
        "/%0D/evil.example/",
        "/%0A/x",
        "//evil.example/",
        "/%5Cevil.example",
        "https://evil.example/",
    ] {
        let mut b = Browser::new(&app);
        let form = b.get(&format!("/login?next={next}")).await;
        assert_eq!(form.status, 200, "{next}: {}", form.body);
        let decoded: String = url::form_urlencoded::parse(format!("n={next}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        let page = b
            .post(
                "/login",
                &[
                    ("login", "walker"),
                    ("password", crate::helpers::PASSWORD),
                    ("next", decoded.as_str()),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "{next}: {}", page.body);
        assert_eq!(page.location.as_deref(), Some("/"), "{next}");
    }
}

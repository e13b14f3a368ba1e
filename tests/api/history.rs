//! Booking history (`GET /api/user/bookings`): complete keyset pagination over colliding
//! timestamps, filters, the summary view against SQL, and strict parameters.

use std::collections::{BTreeMap, HashSet};

use atomicseats::users::domain::Role;
use serde_json::Value;

use crate::helpers::events::event_body;
use crate::helpers::{TestApp, json_with_status};

/// 1,000 bookings (every fifth cancelled), 20 waitlist entries and 20 rejected requests for
/// `user` over `events`, all at one of three timestamps 1 µs apart.
async fn seed_history(app: &TestApp, user: i64, events: &[i64]) {
    let c = app.db.client().await;
    let base = "'2026-11-20 10:00:00.123456+00'::timestamptz";
    c.batch_execute(&format!(
        "CREATE TEMP TABLE plan AS
           SELECT g, md5('h' || g || '-{user}')::uuid AS rid,
                  (ARRAY[{events}]::int8[])[1 + g % {n}] AS event_id,
                  1 + g % 4 AS seats,
                  {base} + (g % 3) * interval '1 microsecond' AS at
             FROM generate_series(1, 1040) g;
         INSERT INTO booking_requests (id, user_id, event_id, seats, status, seats_confirmed,
                                       seats_waitlisted, reject_reason, requested_at, cost,
                                       decided_at, waitlist_seq, price_quoted)
           SELECT rid, {user}, event_id, seats,
                  CASE WHEN g <= 1000 THEN 'confirmed' WHEN g <= 1020 THEN 'waitlisted' ELSE 'rejected' END,
                  CASE WHEN g <= 1000 THEN seats ELSE 0 END,
                  CASE WHEN g BETWEEN 1001 AND 1020 THEN seats ELSE 0 END,
                  CASE WHEN g > 1020 THEN 'sold_out' END,
                  at, CASE WHEN g <= 1000 THEN seats * 1200 ELSE 0 END,
                  -- waiting requests are the waitlist entries: placed in random order
                  at, CASE WHEN g BETWEEN 1001 AND 1020 THEN nextval('booking_requests_waitlist_seq') END,
                  CASE WHEN g BETWEEN 1001 AND 1020 THEN 1200 END
             FROM plan ORDER BY random();
         INSERT INTO bookings (request_id, user_id, event_id, seats, cost, status, created_at, cancelled_at)
           SELECT rid, {user}, event_id, seats, seats * 1200,
                  CASE WHEN g % 5 = 0 THEN 'cancelled' ELSE 'confirmed' END, at,
                  CASE WHEN g % 5 = 0 THEN at + interval '1 hour' END
             FROM plan WHERE g <= 1000 ORDER BY random();
         ANALYZE bookings; ANALYZE booking_requests;",
        events = events
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        n = events.len(),
    ))
    .await
    .unwrap();
}

/// The history's identity of an item: bookings by id, the rest by request id.
fn identity(item: &Value) -> String {
    match item["kind"].as_str().unwrap() {
        "booking" => format!("b{}", item["id"]),
        "waitlist" => format!("w{}", item["requestId"].as_str().unwrap()),
        "request" => format!("r{}", item["requestId"].as_str().unwrap()),
        other => panic!("unknown kind {other}"),
    }
}

/// The same identities in the documented order, straight from SQL.
async fn sql_order(app: &TestApp, user: i64, filter: &str) -> Vec<String> {
    let rows = app
        .db
        .client()
        .await
        .query(
            &format!(
                "SELECT ident FROM (
                   SELECT 'b' || id AS ident, created_at AS at, 2 AS rank, id AS n, NULL::uuid AS u,
                          event_id, status FROM bookings WHERE user_id = $1
                   UNION ALL
                   SELECT 'w' || request_id, created_at, 1, id, NULL, event_id, 'waitlisted'
                     FROM waitlist WHERE user_id = $1
                   UNION ALL
                   SELECT 'r' || id, requested_at, 0, NULL, id, event_id, 'rejected'
                     FROM booking_requests WHERE user_id = $1 AND status = 'rejected'
                 ) x WHERE TRUE {filter}
                 ORDER BY at DESC, rank DESC, n DESC, u DESC"
            ),
            &[&user],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

impl TestApp {
    /// Follows `nextCursor` through every page of the history.
    async fn history_pages(&self, token: &str, query: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut url = format!("/api/user/bookings?{query}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let body = json_with_status(self.get_as(&url, token).await, 200).await;
            pages += 1;
            items.extend(body["data"]["items"].as_array().unwrap().iter().cloned());
            match body["data"]["pageInfo"]["nextCursor"].as_str() {
                Some(c) => {
                    assert_eq!(body["data"]["pageInfo"]["hasMore"], true);
                    cursor = Some(c.to_owned());
                }
                None => {
                    assert_eq!(body["data"]["pageInfo"]["hasMore"], false);
                    return (items, pages);
                }
            }
        }
    }
}

async fn setup() -> (TestApp, i64, String, Vec<i64>) {
    let app = TestApp::spawn().await;
    let host = app.user_unlimited(Role::Host).await;
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(
            app.create_event(&host, &event_body(&format!("Show {i}"), 5 + i, 100_000))
                .await,
        );
    }
    let buyer = app.user(Role::Guest).await;
    seed_history(&app, buyer.id, &events).await;
    (app, buyer.id, buyer.access, events)
}

#[tokio::test]
async fn paging_returns_every_row_exactly_once_in_order_despite_equal_timestamps() {
    let (app, user, token, events) = setup().await;

    let (items, pages) = app.history_pages(&token, "limit=7").await;

    let got: Vec<String> = items.iter().map(identity).collect();
    assert_eq!(got.len(), 1040);
    assert_eq!(pages, 1040usize.div_ceil(7));
    assert_eq!(
        got.iter().collect::<HashSet<_>>().len(),
        1040,
        "no row twice"
    );
    assert_eq!(
        got,
        sql_order(&app, user, "").await,
        "SQL order, nothing skipped"
    );
    // A ticket carries its event and the documented fields.
    let first = items.iter().find(|i| i["kind"] == "booking").unwrap();
    for field in [
        "id",
        "requestId",
        "eventId",
        "numberOfSeats",
        "cost",
        "status",
        "createdAt",
        "cancelledAt",
    ] {
        assert!(first.get(field).is_some(), "missing {field}: {first}");
    }
    assert!(first["createdAt"].as_str().unwrap().contains(".12345"));
    assert_eq!(first["event"]["venue"], "Arena");
    assert_eq!(first["event"]["price"], 1200);
    let rejected = items.iter().find(|i| i["kind"] == "request").unwrap();
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["rejectReason"], "sold_out");
    assert!(rejected["id"].is_null());

    // Filters, alone and combined, page to exactly the SQL answer.
    let e = events[1];
    for (query, filter) in [
        (
            "status=cancelled".to_owned(),
            "AND status = 'cancelled'".to_owned(),
        ),
        (
            "status=confirmed".to_owned(),
            "AND status = 'confirmed'".to_owned(),
        ),
        (
            "status=waitlisted".to_owned(),
            "AND status = 'waitlisted'".to_owned(),
        ),
        (
            "status=rejected".to_owned(),
            "AND status = 'rejected'".to_owned(),
        ),
        (format!("eventId={e}"), format!("AND event_id = {e}")),
        (
            format!("eventId={e}&status=confirmed"),
            format!("AND event_id = {e} AND status = 'confirmed'"),
        ),
        (
            // One microsecond: the middle timestamp only (inclusive bounds, full precision).
            "from=2026-11-20T10:00:00.123457Z&to=2026-11-20T10:00:00.123457Z".to_owned(),
            "AND at = '2026-11-20 10:00:00.123457+00'".to_owned(),
        ),
        (
            format!("from=2026-11-20T10:00:00.123457Z&eventId={e}&status=rejected"),
            format!(
                "AND at >= '2026-11-20 10:00:00.123457+00' AND event_id = {e} AND status = 'rejected'"
            ),
        ),
        ("to=2026-11-19".to_owned(), "AND FALSE".to_owned()),
    ] {
        let (items, _) = app.history_pages(&token, &format!("limit=9&{query}")).await;
        let got: Vec<String> = items.iter().map(identity).collect();
        let want = sql_order(&app, user, &filter).await;
        assert_eq!(got.len(), want.len(), "{query}");
        assert_eq!(got, want, "{query}");
    }

    // Someone else sees none of it.
    let other = app.user_unlimited(Role::Guest).await;
    let (items, _) = app.history_pages(&other, "").await;
    assert!(items.is_empty());
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    active: i64,
    cancelled: i64,
    waitlisted: i64,
    rejected: i64,
    cost: i64,
}

#[tokio::test]
async fn the_summary_groups_all_rows_by_event_and_equals_sql() {
    let (app, user, token, events) = setup().await;

    let (items, pages) = app.history_pages(&token, "view=summary&limit=1").await;
    assert_eq!(pages, 3, "paginated over events");
    let mut got = BTreeMap::new();
    for i in &items {
        let totals = Totals {
            active: i["activeTickets"].as_i64().unwrap(),
            cancelled: i["cancelledTickets"].as_i64().unwrap(),
            waitlisted: i["waitlistedTickets"].as_i64().unwrap(),
            rejected: i["rejectedRequests"].as_i64().unwrap(),
            cost: i["totalCost"].as_i64().unwrap(),
        };
        assert_eq!(
            i["totalTickets"].as_i64().unwrap(),
            totals.active + totals.cancelled
        );
        assert!(i["event"]["name"].as_str().unwrap().starts_with("Show"));
        assert!(
            got.insert(i["eventId"].as_i64().unwrap(), totals).is_none(),
            "each event once"
        );
    }
    let c = app.db.client().await;
    let mut want = BTreeMap::new();
    for e in &events {
        let row = c
            .query_one(
                "SELECT
                   (SELECT coalesce(sum(seats), 0) FROM bookings WHERE user_id = $1 AND event_id = $2 AND status = 'confirmed')::int8,
                   (SELECT coalesce(sum(seats), 0) FROM bookings WHERE user_id = $1 AND event_id = $2 AND status = 'cancelled')::int8,
                   (SELECT coalesce(sum(seats), 0) FROM waitlist WHERE user_id = $1 AND event_id = $2)::int8,
                   (SELECT count(*) FROM booking_requests WHERE user_id = $1 AND event_id = $2 AND status = 'rejected')::int8,
                   (SELECT coalesce(sum(cost), 0) FROM bookings WHERE user_id = $1 AND event_id = $2 AND status = 'confirmed')::int8",
                &[&user, e],
            )
            .await
            .unwrap();
        want.insert(
            *e,
            Totals {
                active: row.get(0),
                cancelled: row.get(1),
                waitlisted: row.get(2),
                rejected: row.get(3),
                cost: row.get(4),
            },
        );
    }
    assert_eq!(got, want);
    assert!(want.values().all(|t| t.cancelled > 0 && t.active > 0));

    // Filters apply to the groups: only cancelled seats, one event.
    let body = json_with_status(
        app.get_as(
            &format!(
                "/api/user/bookings?view=summary&status=cancelled&eventId={}",
                events[0]
            ),
            &token,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["message"], "Booking history (summary)");
    let items = body["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["activeTickets"], 0);
    assert_eq!(items[0]["cancelledTickets"], want[&events[0]].cancelled);
    assert_eq!(items[0]["totalCost"], 0, "cost counts active seats only");

    // Every status filter works on the summary, also those that leave only the waitlist or only
    // the rejected requests (the fuzzer found `status=waitlisted` answering 500).
    for status in ["confirmed", "cancelled", "waitlisted", "rejected"] {
        let body = json_with_status(
            app.get_as(
                &format!("/api/user/bookings?view=summary&status={status}"),
                &token,
            )
            .await,
            200,
        )
        .await;
        assert!(
            !body["data"]["items"].as_array().unwrap().is_empty(),
            "{status}: {body}"
        );
    }
}

#[tokio::test]
async fn every_invalid_parameter_is_a_400_naming_it() {
    let app = TestApp::spawn().await;
    let buyer = app.user_unlimited(Role::Guest).await;
    let summary_cursor = {
        // A summary cursor is not a tickets cursor (and vice versa).
        let body = json_with_status(
            app.get_as("/api/user/bookings?view=summary", &buyer).await,
            200,
        )
        .await;
        assert!(body["data"]["pageInfo"]["nextCursor"].is_null());
        atomicseats::bookings::history::encode_summary_cursor(chrono::Utc::now(), 1)
    };
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=2.5", "limit"),
        ("cursor=garbage", "cursor"),
        ("cursor=dDE6MjpYOjE", "cursor"),
        (&format!("cursor={summary_cursor}"), "cursor"),
        ("eventId=0", "eventId"),
        ("eventId=abc", "eventId"),
        ("eventId=99999999999999999999", "eventId"),
        ("status=pending", "status"),
        ("status=CONFIRMED", "status"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-11-26&to=2026-11-25", "to"),
        ("view=list", "view"),
        ("sort=asc", "sort"),
    ] {
        let resp = app
            .get_as(&format!("/api/user/bookings?{query}"), &buyer)
            .await;
        let body = json_with_status(resp, 400).await;
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{query}: {body}");
    }
    // A valid summary cursor is accepted by the summary view.
    json_with_status(
        app.get_as(
            &format!("/api/user/bookings?view=summary&cursor={summary_cursor}"),
            &buyer,
        )
        .await,
        200,
    )
    .await;
    // Without a token: 401.
    let resp = app
        .client
        .get(app.url("/api/user/bookings"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

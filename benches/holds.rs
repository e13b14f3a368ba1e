//! Hold expiry benchmark: `--holds` held bookings of one event all expire in the same second
//! while buyers keep booking another event; the real `atomicseats all` binary.
//!
//! ```text
//! cargo bench --bench holds -- [--holds 50000] [--waitlist 10000] [--rate 1000]
//! ```
//!
//! Set-up (straight into PostgreSQL): an event in `hold` checkout whose `--holds` seats are all
//! held, each hold expiring at the same instant T (a few seconds after the server is ready),
//! and `--waitlist` buyers waiting for those seats; a second, instant event. From T − 6 s to the
//! end, an open-loop load books the second event at `--rate` requests/s on 64 keep-alive
//! connections ("before" is T − 5 s to T: the first second warms up). It prints how long the writer took to expire every hold (expiries/s, from T to
//! the last one committed) and to serve the waitlist from the freed seats, the accept latency of
//! the bookings before T and while the holds expired (and the ratio), and checks the
//! invariants in PostgreSQL. Loopback only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly on a broken set-up"
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atomicseats::config::Settings;
use atomicseats::http::auth::TokenKeys;
use atomicseats::users::domain::Role;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod common;

use common::{
    SECRET, admin_url, describe_box, free_port, migrated_database, one_row_commit, percentile, pg,
    read_response, start, wait_ready,
};

struct Args {
    holds: i64,
    waitlist: i64,
    rate: f64,
}

fn args() -> Args {
    let mut a = Args {
        holds: 50_000,
        waitlist: 10_000,
        rate: 1000.0,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.windows(2) {
        match pair[0].as_str() {
            "--holds" => a.holds = pair[1].parse().expect("--holds N"),
            "--waitlist" => a.waitlist = pair[1].parse().expect("--waitlist N"),
            "--rate" => a.rate = pair[1].parse().expect("--rate N"),
            _ => {}
        }
    }
    a
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(a));
}

async fn run(a: Args) {
    println!(
        "holds: {} holds expiring in the same second, {} buyers waiting for them, bookings of another event at {}/s meanwhile",
        a.holds, a.waitlist, a.rate
    );
    println!(
        "box: {}; one-row commit {:.3} ms (synchronous_commit on)",
        describe_box(),
        one_row_commit(&admin_url()).await.as_secs_f64() * 1e3
    );
    if let Ok(page) = std::env::var("ATOMICSEATS__CHECKOUT__SWEEP_PAGE") {
        println!("checkout.sweep_page = {page}");
    }
    let (admin, db, url) = migrated_database("atomicseats_holdbench").await;
    let bin = env!("CARGO_BIN_EXE_atomicseats");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

    let c = pg(&url).await;
    let buyers = a.holds + a.waitlist + 20_000;
    let t0 = Instant::now();
    c.batch_execute(&format!(
        "INSERT INTO users (username, name, email, password_hash, role, email_verified_at) \
           SELECT 'buyer' || g, 'Buyer', 'buyer' || g || '@bench.local', 'x', 'guest', now() FROM generate_series(1, {buyers}) g; \
         INSERT INTO users (username, name, email, password_hash, role) VALUES ('host', 'Host', 'host@bench.local', 'x', 'host'); \
         INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity, price, checkout, hold_secs) \
           SELECT id, 'Held', 'bench', 'Arena', now() + interval '1 day', now() + interval '2 days', {holds}, 5000, 'hold', 3600 \
           FROM users WHERE username = 'host'; \
         INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity, price) \
           SELECT id, 'Open', 'bench', 'Arena', now() + interval '1 day', now() + interval '2 days', 1000000, 5000 \
           FROM users WHERE username = 'host';",
        holds = a.holds
    ))
    .await
    .unwrap();
    let held_event: i64 = c
        .query_one("SELECT id FROM events WHERE name = 'Held'", &[])
        .await
        .unwrap()
        .get(0);
    let open_event: i64 = c
        .query_one("SELECT id FROM events WHERE name = 'Open'", &[])
        .await
        .unwrap()
        .get(0);
    // The holds (expiring far away for now) and the waitlist, as the writer would have made them.
    c.batch_execute(&format!(
        "INSERT INTO booking_requests (id, user_id, event_id, seats, allow_partial, join_waitlist, status, \
                                       seats_confirmed, seats_waitlisted, cost, requested_at) \
           SELECT gen_random_uuid(), u.id, {held_event}, 1, false, true, \
                  CASE WHEN u.n <= {holds} THEN 'confirmed' ELSE 'waitlisted' END, \
                  CASE WHEN u.n <= {holds} THEN 1 ELSE 0 END, CASE WHEN u.n <= {holds} THEN 0 ELSE 1 END, \
                  CASE WHEN u.n <= {holds} THEN 5000 ELSE 0 END, now() \
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM users WHERE role = 'guest') u \
          WHERE u.n <= {holds} + {waitlist}; \
         INSERT INTO bookings (request_id, user_id, event_id, seats, cost, status, expires_at, ticket_type_id) \
           SELECT r.id, r.user_id, r.event_id, 1, 5000, 'held', now() + interval '1 hour', \
                  (SELECT id FROM ticket_types WHERE event_id = {held_event} AND is_default) \
             FROM booking_requests r WHERE r.status = 'confirmed'; \
         INSERT INTO waitlist (request_id, user_id, event_id, seats, allow_partial, price_quoted) \
           SELECT r.id, r.user_id, r.event_id, 1, false, 5000 FROM booking_requests r \
            WHERE r.status = 'waitlisted' ORDER BY r.user_id; \
         UPDATE events SET reserved_seats = {holds} WHERE id = {held_event}; \
         UPDATE ticket_types SET sold = {holds} WHERE event_id = {held_event} AND is_default; \
         ANALYZE;",
        holds = a.holds,
        waitlist = a.waitlist,
    ))
    .await
    .unwrap();
    println!("seeded in {:.1} s", t0.elapsed().as_secs_f64());

    let port = free_port();
    let envs: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.clone()),
        ("PORT".into(), port.to_string()),
        ("ACCESS_TOKEN_SECRET".into(), SECRET.into()),
        ("ATOMICSEATS__RATE_LIMIT__ENABLED".into(), "false".into()),
        ("ATOMICSEATS__DATABASE__POOL_SIZE".into(), "16".into()),
        ("ATOMICSEATS__LOG__LEVEL".into(), "warn".into()),
        ("ATOMICSEATS__MAIL__TRANSPORT".into(), "log".into()),
    ];
    let server = start(bin, config, &envs);
    wait_ready(port).await;

    // Every hold expires at the same instant, 5 s from now.
    let expire_in = Duration::from_secs(5);
    c.execute(
        "UPDATE bookings SET expires_at = date_trunc('second', now()) + $1::int * interval '1 second' WHERE status = 'held'",
        &[&i32::try_from(expire_in.as_secs()).unwrap()],
    )
    .await
    .unwrap();
    let expires_at: chrono::DateTime<chrono::Utc> = c
        .query_one(
            "SELECT min(expires_at) FROM bookings WHERE status = 'held'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let until =
        |t: chrono::DateTime<chrono::Utc>| (t - chrono::Utc::now()).to_std().unwrap_or_default();
    let t_expiry = Instant::now() + until(expires_at);

    // The booking load on the other event: open loop from T − 4 s.
    let settings = Settings::load(
        std::path::Path::new(config),
        &[("ACCESS_TOKEN_SECRET".to_owned(), SECRET.to_owned())].into(),
    )
    .unwrap();
    let keys = TokenKeys::from_settings(&settings.auth, settings.environment).unwrap();
    let users: Vec<i64> = c
        .query(
            "SELECT id FROM users WHERE role = 'guest' ORDER BY id DESC LIMIT 20000",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        users
            .iter()
            .map(|id| {
                let token = keys.issue_access(*id, Role::Guest).unwrap().token;
                let body = format!(r#"{{"eventId":{open_event},"numberOfSeats":1}}"#);
                format!(
                    "POST /api/events/book HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            })
            .collect(),
    );
    // The load starts a second before the "before" window: connections open and the first
    // requests of each warm up outside it.
    let load_start = t_expiry - Duration::from_secs(6);
    let steady = t_expiry - Duration::from_secs(5);
    tokio::time::sleep_until(load_start.into()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let every = Duration::from_secs_f64(1.0 / a.rate);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (stop, next, requests) = (stop.clone(), next.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream.set_nodelay(true).ok();
            let mut buf = Vec::with_capacity(4096);
            let mut out: Vec<(Instant, Duration, u16)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) || i >= requests.len() {
                    break;
                }
                let due = load_start + every * u32::try_from(i).unwrap();
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let status = async {
                    stream.write_all(&requests[i]).await?;
                    read_response(&mut stream, &mut buf).await
                }
                .await
                .unwrap_or(0);
                out.push((sent, sent.elapsed(), status));
            }
            out
        }));
    }

    // Watch the holds go.
    let mut expired_at = None;
    let mut served_at = None;
    let deadline = t_expiry + Duration::from_secs(120);
    while Instant::now() < deadline {
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM bookings WHERE status = 'held' AND expires_at = $1), \
                        (SELECT count(*) FROM waitlist)",
                &[&expires_at],
            )
            .await
            .unwrap();
        let (held, waiting): (i64, i64) = (row.get(0), row.get(1));
        if held == 0 && expired_at.is_none() {
            expired_at = Some(Instant::now());
        }
        if waiting == 0 && served_at.is_none() {
            served_at = Some(Instant::now());
        }
        if expired_at.is_some() && served_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Keep the load one more second after the expiry settled, then stop it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    let expired_at = expired_at.expect("the holds did not all expire within 120 s");
    let took = expired_at.saturating_duration_since(t_expiry);
    let served_took = served_at.map(|s| s.saturating_duration_since(t_expiry));
    let window = |from: Instant, to: Instant| {
        let mut v: Vec<Duration> = samples
            .iter()
            .filter(|(at, _, _)| *at >= from && *at < to)
            .map(|(_, d, _)| *d)
            .collect();
        v.sort();
        v
    };
    let before = window(steady, t_expiry);
    let during = window(
        t_expiry,
        expired_at.max(t_expiry + Duration::from_millis(500)),
    );
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for (_, _, s) in &samples {
        *statuses.entry(*s).or_default() += 1;
    }
    let p = |v: &[Duration], q| percentile(v, q).as_secs_f64() * 1e3;
    println!(
        "expiry: {holds} holds expired {took:.2} s after their expiresAt = {rate:.0} expiries/s (the sweep runs every checkout.sweep_ms = {sweep} ms); the waitlist of {w} served {served}",
        holds = a.holds,
        took = took.as_secs_f64(),
        rate = a.holds as f64 / took.as_secs_f64().max(0.001),
        sweep = settings.checkout.sweep_ms,
        w = a.waitlist,
        served = served_took.map_or("NOT within 120 s".to_owned(), |d| format!(
            "{:.2} s after expiresAt",
            d.as_secs_f64()
        )),
    );
    println!(
        "bookings meanwhile ({}/s on another event): before expiresAt {} requests, accept p50 {:.1} ms, p99 {:.1} ms | while the holds expired {} requests, p50 {:.1} ms, p99 {:.1} ms | p99 during ÷ before: {:.2} | statuses {statuses:?}",
        a.rate,
        before.len(),
        p(&before, 0.5),
        p(&before, 0.99),
        during.len(),
        p(&during, 0.5),
        p(&during, 0.99),
        p(&during, 0.99) / p(&before, 0.99).max(0.001),
    );
    let bad: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM events e WHERE reserved_seats > capacity OR reserved_seats <> \
               (SELECT COALESCE(SUM(seats), 0) FROM bookings b WHERE b.event_id = e.id AND b.status IN ('confirmed', 'held'))) \
             + (SELECT count(*) FROM ticket_types t WHERE t.sold <> \
               (SELECT COALESCE(SUM(seats), 0) FROM bookings b WHERE b.ticket_type_id = t.id AND b.status IN ('confirmed', 'held')) \
               AND t.event_id = $1)",
            &[&held_event],
        )
        .await
        .unwrap()
        .get(0);
    let from_waitlist: i64 = c
        .query_one(
            "SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'held'",
            &[&held_event],
        )
        .await
        .unwrap()
        .get(0);
    println!(
        "invariants: {} (events or ticket types whose counters differ from their bookings: {bad}); waitlisted buyers now holding seats: {from_waitlist} of {}",
        if bad == 0 { "ok" } else { "BROKEN" },
        a.waitlist
    );
    assert_eq!(bad, 0, "invariant broken");
    assert_eq!(
        from_waitlist,
        a.waitlist.min(a.holds),
        "the waitlist was not served in full"
    );
    drop(server);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
}

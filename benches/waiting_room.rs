//! Waiting-room benchmark (#14): a crowd joins before the on-sale, waits (streaming or polling),
//! and buys through the room; the real `atomicseats all` binary, loopback only.
//!
//! ```text
//! cargo bench --bench waiting_room -- [--buyers 200000] [--streams 18000] [--capacity 10000]
//!     [--seats 2] [--redis] [--sale-secs 150] [--nodes 1]
//! ```
//!
//! 1. **Join**: every buyer joins the room of one event before its on-sale, over 512
//!    keep-alive connections as fast as the server answers: joins/s, p50/p99, server CPU, and
//!    the memory the waiting buyers take (the server's RSS, or Redis's `used_memory` with
//!    `--redis`).
//! 2. **Stream**: `--streams` buyers follow their place over Server-Sent Events (held by child
//!    processes of at most 15,000 connections each: one process may open 20,000 files here,
//!    the server included, so more than ~19,900 streams need `--nodes N` API processes, which
//!    share the rooms in Redis); server CPU per 1,000 streaming buyers over 10 s.
//! 3. **Poll**: the others poll `GET …/queue/me` at the `Retry-After` the server sets; server
//!    CPU per 1,000 polling buyers over 10 s, polls/s against `poll_budget_per_sec`, p99.
//! 4. **Sale**: on-sale; admitted buyers book with their admission token (streams at once,
//!    pollers when they next poll): time to sell out, how many were told `sold_out` and how
//!    long after the last seat went, update latency of the streams at on-sale; then the
//!    invariants in PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly on a broken set-up"
)]

mod common;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atomicseats::config::Settings;
use atomicseats::http::auth::TokenKeys;
use atomicseats::users::domain::Role;
use common::{
    SECRET, admin_url, body_of, cpu_secs, db_url, describe_box, free_port, header_of, percentile,
    pg, read_response, rss_mib, start, wait_ready,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const METRICS_TOKEN: &str = "bench-metrics";
/// Streams one child process holds (the per-process open-file limit is 20,000 here).
const STREAMS_PER_CHILD: usize = 15_000;

#[derive(Debug, Clone)]
struct Args {
    buyers: usize,
    streams: usize,
    capacity: i32,
    seats: i32,
    redis: bool,
    sale_secs: u64,
    /// API processes the streams are spread over (more than one needs `--redis`).
    nodes: usize,
}

fn args() -> Args {
    let mut a = Args {
        buyers: 200_000,
        streams: 18_000,
        capacity: 10_000,
        seats: 2,
        redis: false,
        sale_secs: 150,
        nodes: 1,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let v = raw.get(i + 1).cloned().unwrap_or_default();
        match raw[i].as_str() {
            "--buyers" => a.buyers = v.parse().expect("--buyers N"),
            "--streams" => a.streams = v.parse().expect("--streams N"),
            "--capacity" => a.capacity = v.parse().expect("--capacity N"),
            "--seats" => a.seats = v.parse().expect("--seats N"),
            "--sale-secs" => a.sale_secs = v.parse().expect("--sale-secs N"),
            "--nodes" => a.nodes = v.parse().expect("--nodes N"),
            "--redis" => {
                a.redis = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn keys() -> TokenKeys {
    let env: HashMap<String, String> =
        [("ACCESS_TOKEN_SECRET".to_owned(), SECRET.to_owned())].into();
    let settings = Settings::load(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        &env,
    )
    .unwrap();
    TokenKeys::from_settings(&settings.auth, settings.environment).unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn get(path: &str, token: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
}

fn post(path: &str, token: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends one request on a keep-alive connection (reconnecting once), leaving the answer in
/// `buf`.
async fn call(conn: &mut TcpStream, port: u16, req: &[u8], buf: &mut Vec<u8>) -> u16 {
    for _ in 0..2 {
        let r = async {
            conn.write_all(req).await?;
            read_response(conn, buf).await
        }
        .await;
        match r {
            Ok(status) => return status,
            Err(_) => {
                *conn = TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("reconnect");
                conn.set_nodelay(true).ok();
            }
        }
    }
    0
}

/// Books with the admission token; returns (status, seats confirmed).
async fn book(
    conn: &mut TcpStream,
    port: u16,
    event: i64,
    seats: i32,
    token: &str,
    admission: &str,
    buf: &mut Vec<u8>,
) -> (u16, i64) {
    let body = format!(r#"{{"eventId":{event},"numberOfSeats":{seats}}}"#);
    let extra = format!("Prefer: wait=20\r\nX-Admission-Token: {admission}\r\n");
    let status = call(
        conn,
        port,
        &post("/api/events/book", token, &extra, &body),
        buf,
    )
    .await;
    let got = serde_json::from_slice::<Value>(body_of(buf)).ok();
    let confirmed = got
        .as_ref()
        .and_then(|v| v["data"]["seats"].as_i64())
        .unwrap_or(0);
    (status, confirmed)
}

/// A child process holding streams: `--stream-child` with its buyers' ids on stdin; prints
/// one JSON line of what it saw when `deadline` (epoch ms) passes.
async fn stream_child() {
    let port: u16 = std::env::var("BENCH_PORT").unwrap().parse().unwrap();
    // Bookings go to the node that runs the booking writer (the others only serve streams:
    // with the in-process queue a `serve` process has no writer).
    let book_port: u16 = std::env::var("BENCH_BOOK_PORT").unwrap().parse().unwrap();
    let event: i64 = std::env::var("BENCH_EVENT").unwrap().parse().unwrap();
    let seats: i32 = std::env::var("BENCH_SEATS").unwrap().parse().unwrap();
    let source: u8 = std::env::var("BENCH_SOURCE").unwrap().parse().unwrap();
    let deadline: i64 = std::env::var("BENCH_DEADLINE").unwrap().parse().unwrap();
    let users: Vec<i64> = std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let keys = Arc::new(keys());
    let mut tasks = Vec::new();
    let opened = Arc::new(AtomicUsize::new(0));
    for (i, user) in users.into_iter().enumerate() {
        let keys = keys.clone();
        let opened = opened.clone();
        // Spread the source addresses: one address has ~28,000 ports towards one server port.
        let ip =
            std::net::Ipv4Addr::new(127, source, (i / 250 % 250) as u8 + 1, (i % 250) as u8 + 1);
        tasks.push(tokio::spawn(async move {
            let token = keys.issue_access(user, Role::Guest).unwrap().token;
            // Buyers arrive over time (1,000 a second per child), not in one instant; one
            // turned away (503 while the store is busy) comes back a second later.
            tokio::time::sleep(Duration::from_millis(i as u64)).await;
            let started = Instant::now();
            let mut tmp = vec![0u8; 2048];
            let mut text = Vec::new();
            let mut s = None;
            for _ in 0..5 {
                let socket = TcpSocket::new_v4().ok()?;
                socket.bind((ip, 0).into()).ok()?;
                let Ok(mut c) = socket.connect(([127, 0, 0, 1], port).into()).await else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                let path = format!("/api/events/{event}/queue/me/stream");
                c.write_all(&get(&path, &token)).await.ok()?;
                let n = c.read(&mut tmp).await.unwrap_or(0);
                if tmp[..n].starts_with(b"HTTP/1.1 200") {
                    text.extend_from_slice(&tmp[..n]);
                    s = Some(c);
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let mut s = s?;
            let mut seen: Vec<(i64, String, bool)> = Vec::new();
            let mut first_ms = None;
            let mut admission = None;
            // What came with the answer's head is read first.
            let mut pending = true;
            loop {
                let left = deadline - epoch_ms();
                if left <= 0 {
                    break;
                }
                if !pending {
                    let n = match tokio::time::timeout(
                        Duration::from_millis(left as u64),
                        s.read(&mut tmp),
                    )
                    .await
                    {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => break,
                    };
                    text.extend_from_slice(&tmp[..n]);
                }
                pending = false;
                while let Some(p) = text.windows(6).position(|w| w == b"data: ") {
                    let Some(end) = text[p..].iter().position(|b| *b == b'\n') else {
                        break;
                    };
                    let line = text[p + 6..p + end].to_vec();
                    text.drain(..p + end);
                    if first_ms.is_none() {
                        first_ms = Some(ms(started.elapsed()));
                        opened.fetch_add(1, Ordering::Relaxed);
                    }
                    let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    let status = v["status"].as_str().unwrap_or("").to_owned();
                    seen.push((epoch_ms(), status.clone(), v["position"].is_u64()));
                    if status == "admitted" {
                        admission = v["admissionToken"].as_str().map(str::to_owned);
                    }
                }
                if admission.is_some() {
                    break;
                }
            }
            let mut booked = None;
            if let Some(adm) = admission {
                let mut conn = TcpStream::connect(("127.0.0.1", book_port)).await.ok()?;
                let mut buf = Vec::new();
                let (status, n) =
                    book(&mut conn, book_port, event, seats, &token, &adm, &mut buf).await;
                booked = Some((epoch_ms(), status, n));
            }
            Some((first_ms, seen, booked))
        }));
    }
    let mut open_ms = Vec::new();
    let mut positioned = Vec::new();
    let mut sold_out = Vec::new();
    let mut bookings = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await.ok().flatten() {
            Some((first, seen, booked)) => {
                if let Some(f) = first {
                    open_ms.push(f);
                } else {
                    failed += 1;
                }
                if let Some((at, _, _)) = seen.iter().find(|(_, _, p)| *p) {
                    positioned.push(*at);
                }
                if let Some((at, _, _)) = seen.iter().find(|(_, s, _)| s == "sold_out") {
                    sold_out.push(*at);
                }
                if let Some(b) = booked {
                    bookings.push(b);
                }
            }
            None => failed += 1,
        }
    }
    let out = serde_json::json!({
        "openMs": open_ms, "failed": failed, "positioned": positioned,
        "soldOut": sold_out, "bookings": bookings,
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{out}").unwrap();
}

/// Server CPU seconds over `window`.
async fn cpu_over(pids: &[u32], window: Duration) -> f64 {
    let before: f64 = pids.iter().map(|p| cpu_secs(*p)).sum();
    tokio::time::sleep(window).await;
    pids.iter().map(|p| cpu_secs(*p)).sum::<f64>() - before
}

/// The sum of the samples of `/metrics` lines that `pick` accepts.
async fn metric(port: u16, pick: impl Fn(&str) -> bool) -> f64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return 0.0;
    };
    let mut buf = Vec::new();
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {METRICS_TOKEN}\r\n\r\n"
    );
    if call(&mut s, port, req.as_bytes(), &mut buf).await != 200 {
        return 0.0;
    }
    String::from_utf8_lossy(body_of(&buf))
        .lines()
        .filter(|l| pick(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn gauge(port: u16, name: &str) -> f64 {
    metric(port, |l| {
        l.strip_prefix(name).is_some_and(|r| r.starts_with(' '))
    })
    .await
}

/// Answered `GET …/queue/me` polls so far.
async fn gauge_polls(port: u16) -> f64 {
    metric(port, |l| {
        l.starts_with("http_requests_total{") && l.contains("route=\"/api/events/{id}/queue/me\"")
    })
    .await
}

async fn redis_used_memory() -> f64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", 6379)).await else {
        return 0.0;
    };
    let _ = s.write_all(b"INFO memory\r\n").await;
    let mut buf = vec![0u8; 8192];
    let n = s.read(&mut buf).await.unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

struct Polled {
    latencies: Vec<Duration>,
    polls: usize,
    sold_out: Vec<i64>,
    bookings: Vec<(i64, u16, i64)>,
}

/// Pollers: each connection polls its buyers, each at the time the last answer's Retry-After
/// set; an admitted buyer books at once; one told `sold_out` stops.
async fn poll_all(
    port: u16,
    event: i64,
    seats: i32,
    tokens: Arc<Vec<String>>,
    conns: usize,
    until: Instant,
    count_from: Arc<std::sync::Mutex<Instant>>,
) -> Polled {
    let mut tasks = Vec::new();
    for c in 0..conns {
        let tokens = tokens.clone();
        let count_from = count_from.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            conn.set_nodelay(true).ok();
            let mut buf = Vec::new();
            // Each buyer's first poll comes when their join's Retry-After said: spread over the
            // interval the server sets for this many waiting (÷ the poll budget).
            let spread = (tokens.len() as f64 / 2000.0).max(1.0);
            let now = Instant::now();
            let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (c..tokens.len())
                .step_by(conns)
                .map(|i| {
                    let frac = (i as f64 * 0.618_033_988_75).fract();
                    Reverse((now + Duration::from_secs_f64(frac * spread), i))
                })
                .collect();
            let mut out = Polled {
                latencies: Vec::new(),
                polls: 0,
                sold_out: Vec::new(),
                bookings: Vec::new(),
            };
            let path = format!("/api/events/{event}/queue/me");
            while let Some(Reverse((at, i))) = due.pop() {
                if at >= until {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                let t = Instant::now();
                let status = call(&mut conn, port, &get(&path, &tokens[i]), &mut buf).await;
                if t >= *count_from.lock().unwrap() {
                    out.latencies.push(t.elapsed());
                    out.polls += 1;
                }
                if status != 200 {
                    due.push(Reverse((Instant::now() + Duration::from_secs(1), i)));
                    continue;
                }
                let retry: u64 = header_of(&buf, "retry-after")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                let v: Value = serde_json::from_slice(body_of(&buf)).unwrap_or(Value::Null);
                match v["data"]["status"].as_str() {
                    Some("admitted") => {
                        let adm = v["data"]["admissionToken"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned();
                        let (st, n) =
                            book(&mut conn, port, event, seats, &tokens[i], &adm, &mut buf).await;
                        out.bookings.push((epoch_ms(), st, n));
                    }
                    Some("sold_out") => out.sold_out.push(epoch_ms()),
                    Some("expired") => {}
                    _ => due.push(Reverse((Instant::now() + Duration::from_secs(retry), i))),
                }
            }
            out
        }));
    }
    let mut all = Polled {
        latencies: Vec::new(),
        polls: 0,
        sold_out: Vec::new(),
        bookings: Vec::new(),
    };
    for t in tasks {
        let p = t.await.unwrap();
        all.latencies.extend(p.latencies);
        all.polls += p.polls;
        all.sold_out.extend(p.sold_out);
        all.bookings.extend(p.bookings);
    }
    all.latencies.sort_unstable();
    all
}

fn summary(label: &str, sorted: &mut [f64]) -> String {
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return format!("{label}: none");
    }
    let q = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "{label}: n={} p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        sorted.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    )
}

#[allow(clippy::too_many_lines, reason = "one benchmark, its phases in order")]
async fn run(a: Args) {
    println!("box: {}", describe_box());
    println!(
        "buyers {}, streams {}, capacity {} ({} per booking), rooms in {}",
        a.buyers,
        a.streams,
        a.capacity,
        a.seats,
        if a.redis { "Redis" } else { "the process" }
    );
    let db = format!("atomicseats_wrbench_{}", std::process::id());
    let admin = pg(&admin_url()).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let url = db_url(&db);
    let bin = env!("CARGO_BIN_EXE_atomicseats");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let status = Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("ATOMICSEATS_CONFIG_DIR", config)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "migrate failed");
    let c = pg(&url).await;
    c.batch_execute(&format!(
        "INSERT INTO users (username, name, email, password_hash, role, email_verified_at) \
         SELECT 'buyer' || g, 'Buyer', 'buyer' || g || '@bench.local', 'x', 'guest', now() FROM generate_series(1, {}) g; \
         INSERT INTO users (username, name, email, password_hash, role, email_verified_at) VALUES ('host', 'Host', 'host@bench.local', 'x', 'host', now());",
        a.buyers
    ))
    .await
    .unwrap();
    let event: i64 = c
        .query_one(
            "INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity, price, on_sale_at, waiting_room) \
             SELECT id, 'Flash sale', 'bench', 'Arena', now() + interval '1 day', now() + interval '2 days', $1, 5000, now() + interval '30 minutes', true \
             FROM users WHERE username = 'host' RETURNING id",
            &[&a.capacity],
        )
        .await
        .unwrap()
        .get(0);
    let host: i64 = c
        .query_one("SELECT id FROM users WHERE username = 'host'", &[])
        .await
        .unwrap()
        .get(0);
    let users: Vec<i64> = c
        .query("SELECT id FROM users WHERE role = 'guest' ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let prefix = format!("wrbench{}", std::process::id());
    let port = free_port();
    let mut envs: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.clone()),
        ("PORT".into(), port.to_string()),
        ("ACCESS_TOKEN_SECRET".into(), SECRET.into()),
        ("ATOMICSEATS__RATE_LIMIT__ENABLED".into(), "false".into()),
        ("ATOMICSEATS__LOG__LEVEL".into(), "warn".into()),
        ("ATOMICSEATS__MAIL__TRANSPORT".into(), "log".into()),
        ("ATOMICSEATS__METRICS__TOKEN".into(), METRICS_TOKEN.into()),
        ("ATOMICSEATS__REDIS__KEY_PREFIX".into(), prefix.clone()),
    ];
    if a.redis {
        envs.push((
            "ATOMICSEATS__REDIS__URL".into(),
            "redis://127.0.0.1:6379".into(),
        ));
    }
    if let Ok(extra) = std::env::var("ATOMICSEATS_BENCH_ENV") {
        for kv in extra.split_whitespace() {
            if let Some((k, v)) = kv.split_once('=') {
                envs.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    let server = start(bin, config, &envs);
    let pid = server.0.id();
    wait_ready(port).await;
    // More API nodes (scale-out: the rooms in Redis), for the streams only.
    assert!(a.nodes == 1 || a.redis, "--nodes needs --redis");
    let mut ports = vec![port];
    let mut nodes = Vec::new();
    for _ in 1..a.nodes {
        let p = free_port();
        let mut e = envs.clone();
        e.retain(|(k, _)| k != "PORT");
        e.push(("PORT".into(), p.to_string()));
        nodes.push(common::start_role(bin, "serve", config, &e));
        wait_ready(p).await;
        ports.push(p);
    }
    let pids: Vec<u32> = std::iter::once(pid)
        .chain(nodes.iter().map(|n| n.0.id()))
        .collect();

    let keys = keys();
    let tokens: Arc<Vec<String>> = Arc::new(
        users
            .iter()
            .map(|id| keys.issue_access(*id, Role::Guest).unwrap().token)
            .collect(),
    );

    // 1. Join.
    let rss_before = rss_mib(pid);
    let redis_before = if a.redis {
        redis_used_memory().await
    } else {
        0.0
    };
    let cpu_before = cpu_secs(pid);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..512 {
        let next = next.clone();
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            conn.set_nodelay(true).ok();
            let mut buf = Vec::new();
            let mut lat = Vec::new();
            let mut bad = 0usize;
            let path = format!("/api/events/{event}/queue");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= tokens.len() {
                    break;
                }
                let t = Instant::now();
                if call(&mut conn, port, &post(&path, &tokens[i], "", ""), &mut buf).await != 201 {
                    bad += 1;
                }
                lat.push(t.elapsed());
            }
            (lat, bad)
        }));
    }
    let mut lat = Vec::new();
    let mut bad = 0;
    for t in tasks {
        let (l, b) = t.await.unwrap();
        lat.extend(l);
        bad += b;
    }
    let took = started.elapsed();
    lat.sort_unstable();
    let join_cpu = cpu_secs(pid) - cpu_before;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mem_per_buyer = if a.redis {
        (redis_used_memory().await - redis_before) / a.buyers as f64
    } else {
        (rss_mib(pid) - rss_before) * 1024.0 * 1024.0 / a.buyers as f64
    };
    println!(
        "join: {} in {:.1} s = {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, not 201: {bad}; server CPU {:.1} s ({:.2} ms per join); memory per waiting buyer {:.0} bytes ({})",
        lat.len(),
        took.as_secs_f64(),
        lat.len() as f64 / took.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        join_cpu,
        join_cpu * 1000.0 / lat.len() as f64,
        mem_per_buyer,
        if a.redis {
            "Redis used_memory"
        } else {
            "server RSS"
        },
    );

    // 2. Streams, held by child processes.
    let streams = a.streams.min(a.buyers);
    let deadline = epoch_ms() + 60_000 + (a.sale_secs as i64) * 1000 + 60_000;
    let me = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    let per_node = streams.div_ceil(ports.len()).max(1);
    let groups = users[..streams]
        .chunks(per_node)
        .zip(&ports)
        .flat_map(|(node, p)| node.chunks(STREAMS_PER_CHILD).map(move |c| (c, *p)));
    for (k, (chunk, node_port)) in groups.enumerate() {
        let mut child = Command::new(&me)
            .arg("--stream-child")
            .env("BENCH_PORT", node_port.to_string())
            .env("BENCH_BOOK_PORT", port.to_string())
            .env("BENCH_EVENT", event.to_string())
            .env("BENCH_SEATS", a.seats.to_string())
            .env("BENCH_SOURCE", (k + 2).to_string())
            .env("BENCH_DEADLINE", deadline.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        for u in chunk {
            writeln!(stdin, "{u}").unwrap();
        }
        drop(stdin);
        children.push(child);
    }
    let rss_of = |pids: &[u32]| pids.iter().map(|p| rss_mib(*p)).sum::<f64>();
    let rss_before_streams = rss_of(&pids);
    let opening = Instant::now();
    let mut open_now = 0.0;
    while opening.elapsed() < Duration::from_secs(90) {
        open_now = 0.0;
        for p in &ports {
            open_now += gauge(*p, "waiting_room_streams").await;
        }
        if open_now >= streams as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let fds: usize = pids
        .iter()
        .map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).map_or(0, Iterator::count))
        .sum();
    let rss_streams = rss_of(&pids);
    println!(
        "streams: {open_now:.0} of {streams} open on {} API process(es) after {:.1} s (servers hold {fds} files; RSS {rss_streams:.0} MiB, {:.1} KiB per stream)",
        ports.len(),
        opening.elapsed().as_secs_f64(),
        (rss_streams - rss_before_streams) * 1024.0 / open_now.max(1.0)
    );
    let stream_cpu = cpu_over(&pids, Duration::from_secs(10)).await / 10.0;
    println!(
        "  idle with {open_now:.0} streams: server CPU {:.3} core = {:.4} core per 1,000 streaming buyers",
        stream_cpu,
        stream_cpu * 1000.0 / open_now.max(1.0)
    );

    // 3. Pollers for everyone else, at the Retry-After they are told.
    let pollers: Arc<Vec<String>> = Arc::new(tokens[streams..].to_vec());
    let until = Instant::now() + Duration::from_secs(40 + a.sale_secs);
    let count_from = Arc::new(std::sync::Mutex::new(
        Instant::now() + Duration::from_secs(120),
    ));
    let poll_task = tokio::spawn(poll_all(
        port,
        event,
        a.seats,
        pollers.clone(),
        256,
        until,
        count_from.clone(),
    ));
    // The first round of polls spreads out; then measure the steady state for 10 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let polls_before = gauge_polls(port).await;
    let poll_cpu = cpu_over(&pids, Duration::from_secs(10)).await / 10.0;
    let polls = (gauge_polls(port).await - polls_before) / 10.0;
    println!(
        "poll: {} buyers polling at the Retry-After they are told: {polls:.0} polls/s (budget {}), server CPU {:.3} core with streams = {:.4} core per 1,000 polling buyers",
        pollers.len(),
        2000,
        poll_cpu,
        (poll_cpu - stream_cpu).max(0.0) * 1000.0 / pollers.len().max(1) as f64
    );

    // 4. The sale.
    let on_sale = chrono::Utc::now() + chrono::Duration::seconds(3);
    let host_token = keys.issue_access(host, Role::Host).unwrap().token;
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = Vec::new();
    let body = format!(r#"{{"id":{event},"onSaleAt":"{}"}}"#, on_sale.to_rfc3339());
    assert_eq!(
        call(
            &mut conn,
            port,
            &post("/api/events/update", &host_token, "", &body),
            &mut buf
        )
        .await,
        200
    );
    let on_sale_ms = on_sale.timestamp_millis();
    *count_from.lock().unwrap() = Instant::now() + Duration::from_secs(3);
    // Watch for the last seat.
    let watch = pg(&url).await;
    let mut sold_out_ms = None;
    let sale_end = Instant::now() + Duration::from_secs(a.sale_secs);
    while Instant::now() < sale_end {
        let left: i32 = watch
            .query_one(
                "SELECT capacity - reserved_seats FROM events WHERE id = $1",
                &[&event],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 && sold_out_ms.is_none() {
            sold_out_ms = Some(epoch_ms());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let polled = poll_task.await.unwrap();
    let mut child_out = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
            child_out.push(v);
        }
    }
    let nums = |key: &str| -> Vec<f64> {
        child_out
            .iter()
            .flat_map(|v| v[key].as_array().cloned().unwrap_or_default())
            .filter_map(|x| x.as_f64())
            .collect()
    };
    let mut open_ms = nums("openMs");
    let failed: u64 = child_out
        .iter()
        .map(|v| v["failed"].as_u64().unwrap_or(0))
        .sum();
    println!(
        "{}  (opening a stream; {failed} never opened)",
        summary("  stream open", &mut open_ms)
    );
    let mut positioned: Vec<f64> = nums("positioned")
        .iter()
        .map(|t| t - on_sale_ms as f64)
        .collect();
    println!(
        "{}  (on-sale → the stream shows the drawn position)",
        summary("  stream update", &mut positioned)
    );
    let mut plat: Vec<f64> = polled.latencies.iter().map(|d| ms(*d)).collect();
    println!(
        "{}  ({} polls during the sale)",
        summary("  poll answer", &mut plat),
        polled.polls
    );
    let stream_bookings: Vec<(i64, u16, i64)> = child_out
        .iter()
        .flat_map(|v| v["bookings"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| Some((b[0].as_i64()?, b[1].as_u64()? as u16, b[2].as_i64()?)))
        .collect();
    let all_bookings: Vec<&(i64, u16, i64)> = stream_bookings
        .iter()
        .chain(polled.bookings.iter())
        .collect();
    let seats_booked: i64 = all_bookings.iter().map(|b| b.2).sum();
    let by_status = all_bookings
        .iter()
        .fold(HashMap::<u16, usize>::new(), |mut m, b| {
            *m.entry(b.1).or_default() += 1;
            m
        });
    println!(
        "sale: {} bookings through the room ({by_status:?}), {seats_booked} seats; sold out {}",
        all_bookings.len(),
        sold_out_ms.map_or("NOT within the sale window".to_owned(), |t| format!(
            "{:.1} s after on-sale",
            (t - on_sale_ms) as f64 / 1000.0
        )),
    );
    if let Some(last) = sold_out_ms {
        let mut told_streams: Vec<f64> = nums("soldOut")
            .iter()
            .map(|t| (t - last as f64).max(0.0))
            .collect();
        let mut told_polls: Vec<f64> = polled
            .sold_out
            .iter()
            .map(|t| (*t - last).max(0) as f64)
            .collect();
        println!(
            "{}",
            summary(
                "  told sold_out (streams), after the last seat",
                &mut told_streams
            )
        );
        println!(
            "{}",
            summary(
                "  told sold_out (pollers, at their next poll), after the last seat",
                &mut told_polls
            )
        );
    }
    let row = c
        .query_one(
            "SELECT e.capacity, e.reserved_seats, COALESCE((SELECT SUM(seats) FROM bookings b WHERE b.event_id = e.id AND b.status = 'confirmed'), 0)::INT, \
                    (SELECT COUNT(*) FROM booking_requests r WHERE r.event_id = e.id)::INT FROM events e WHERE e.id = $1",
            &[&event],
        )
        .await
        .unwrap();
    let (cap, reserved, confirmed, requests): (i32, i32, i32, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    println!(
        "invariants: capacity {cap}, reserved {reserved}, confirmed seats {confirmed}, requests stored {requests}: {}",
        if reserved <= cap && reserved == confirmed && i64::from(confirmed) <= seats_booked {
            "OK"
        } else {
            "BROKEN"
        }
    );
    assert!(
        reserved <= cap && reserved == confirmed,
        "oversold or drifted"
    );
    drop(conn);
    drop(nodes);
    drop(server);
    if a.redis {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "redis-cli --scan --pattern '{prefix}:*' | xargs -r redis-cli del > /dev/null"
            ))
            .status();
    }
    drop(c);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
}

fn main() {
    let child = std::env::args().any(|a| a == "--stream-child");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if child {
        rt.block_on(stream_child());
    } else {
        rt.block_on(run(args()));
    }
}

//! Pages benchmark (#15): how fast the binary serves the event page and the event list next to
//! `GET /api/events/{id}`, in the same run, on the real `atomicseats all` binary.
//!
//! ```text
//! cargo bench --bench pages -- [--seconds 5] [--connections 64] [--events 200]
//! ```
//!
//! Set-up: `--events` events (a second ticket type on each) straight into PostgreSQL. Each
//! target is loaded in turn, closed loop, on keep-alive connections for `--seconds` after a
//! second of warm-up, anonymous (as people browsing), over the same events round-robin; then
//! the same with `web.page_cache_ms = 0` (every page rendered, its event read from the event
//! cache and its ticket types from PostgreSQL). Prints requests/s, p50/p99 and each page's rate
//! ÷ the API's. Loopback only; the load generator shares the box's cores.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly on a broken set-up"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod common;

use common::{
    SECRET, describe_box, free_port, migrated_database, percentile, pg, read_response, start,
    wait_ready,
};

struct Args {
    seconds: u64,
    connections: usize,
    events: i64,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 5,
        connections: 64,
        events: 200,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.windows(2) {
        match pair[0].as_str() {
            "--seconds" => a.seconds = pair[1].parse().expect("--seconds N"),
            "--connections" => a.connections = pair[1].parse().expect("--connections N"),
            "--events" => a.events = pair[1].parse().expect("--events N"),
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

/// Requests/s and sorted latencies of `paths` (round-robin) for `secs` after a warm-up second.
async fn load(port: u16, paths: Arc<Vec<String>>, conns: usize, secs: u64) -> (f64, Vec<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (stop, measuring, next, paths) =
            (stop.clone(), measuring.clone(), next.clone(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.set_nodelay(true).ok();
            let mut buf = Vec::with_capacity(16384);
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed) % paths.len();
                let req = format!("GET {} HTTP/1.1\r\nHost: bench\r\n\r\n", paths[i]);
                let t = Instant::now();
                s.write_all(req.as_bytes()).await.unwrap();
                let status = read_response(&mut s, &mut buf).await.unwrap();
                assert_eq!(status, 200, "{}", paths[i]);
                if measuring.load(Ordering::Relaxed) {
                    lat.push(t.elapsed());
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    (all.len() as f64 / took.as_secs_f64(), all)
}

async fn run(a: Args) {
    println!(
        "pages: {} events, {} connections, {} s per target (closed loop, anonymous)",
        a.events, a.connections, a.seconds
    );
    println!("box: {}", describe_box());
    let (admin, db, url) = migrated_database("atomicseats_pagesbench").await;
    let bin = env!("CARGO_BIN_EXE_atomicseats");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let c = pg(&url).await;
    c.batch_execute(&format!(
        "INSERT INTO users (username, name, email, password_hash, role) VALUES ('host', 'Host', 'host@bench.local', 'x', 'host'); \
         INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity, price) \
           SELECT u.id, 'Concert ' || g, 'An evening of music number ' || g, 'Arena', \
                  now() + (g || ' hours')::interval, now() + (g || ' hours')::interval + interval '3 hours', 500, 2500 \
             FROM users u, generate_series(1, {n}) g WHERE u.username = 'host'; \
         INSERT INTO ticket_types (event_id, name, price, quota, max_per_user) \
           SELECT id, 'Front row', 6500, 20, 2 FROM events; \
         ANALYZE;",
        n = a.events
    ))
    .await
    .unwrap();
    let ids: Vec<i64> = c
        .query("SELECT id FROM events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let api: Arc<Vec<String>> = Arc::new(ids.iter().map(|i| format!("/api/events/{i}")).collect());
    let page: Arc<Vec<String>> = Arc::new(ids.iter().map(|i| format!("/events/{i}")).collect());
    let list: Arc<Vec<String>> = Arc::new(vec!["/".to_owned()]);
    let api_list: Arc<Vec<String>> = Arc::new(vec!["/api/events/all".to_owned()]);

    for page_cache_ms in ["1000", "0"] {
        let port = free_port();
        let envs: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), url.clone()),
            ("PORT".into(), port.to_string()),
            ("ACCESS_TOKEN_SECRET".into(), SECRET.into()),
            ("ATOMICSEATS__RATE_LIMIT__ENABLED".into(), "false".into()),
            ("ATOMICSEATS__LOG__LEVEL".into(), "warn".into()),
            ("ATOMICSEATS__MAIL__TRANSPORT".into(), "log".into()),
            (
                "ATOMICSEATS__WEB__PAGE_CACHE_MS".into(),
                page_cache_ms.into(),
            ),
        ];
        let server = start(bin, config, &envs);
        wait_ready(port).await;
        println!("web.page_cache_ms = {page_cache_ms}:");
        let mut api_rate = 0.0;
        for (name, paths) in [
            ("GET /api/events/{id}", &api),
            ("GET /events/{id} (page)", &page),
            ("GET /api/events/all", &api_list),
            ("GET / (event list page)", &list),
        ] {
            let (rate, lat) = load(port, paths.clone(), a.connections, a.seconds).await;
            if name.starts_with("GET /api/events/{id}") {
                api_rate = rate;
            }
            println!(
                "  {name:<26} {rate:>9.0} req/s  p50 {:>5.1} ms  p99 {:>5.1} ms  ÷ GET /api/events/{{id}}: {:.2}",
                percentile(&lat, 0.5).as_secs_f64() * 1e3,
                percentile(&lat, 0.99).as_secs_f64() * 1e3,
                rate / api_rate.max(1.0),
            );
        }
        drop(server);
    }
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
}

//! Flash-sale benchmark: one event, many buyers, the real `atomicseats all` binary.
//!
//! ```text
//! cargo bench --bench flash_sale -- [--requests 100000] [--users 20000] [--capacity 50000]
//!     [--seats 2] [--connections 256] [--events 1] [--transport memory|kafka]
//!     [--runs ceiling,batched,hold,old,unbatched] [--old-bin PATH --old-config DIR] [--rate N]
//!     [--retry-503] [--split]
//! ```
//!
//! Each run: a fresh database, 20,000 buyers, `--events` events sharing `--capacity` seats; the
//! server started with rate limits off; 256 keep-alive connections send every request as fast as
//! the server answers (or, with `--rate N`, at N requests/s in total: an open loop). Runs:
//!
//! - `ceiling`: `booking.dry_run` — the accept path alone (HTTP, token, JSON, cache lookup,
//!   channel, reply) with no database work: the most this box can accept;
//! - `batched`: this build as configured;
//! - `hold`: the same with the events in `hold` checkout (each decision that gets seats holds
//!   them for payment: a held booking, its expiry time, the hold email) — checkout's cost;
//! - `old`: the same load against another build's binary (`--old-bin`, e.g. the commit before
//!   engine v2 built in a worktree), with its own migrations: old and new side by side;
//! - `unbatched`: this build with `batch_max = 1` (one transaction per request).
//!
//! With `--transport kafka` the load starts once the worker owns its partitions (its consumer-group
//! join at start-up, printed, is not part of the sale); `--split` runs `serve`, `work-bookings`
//! and `work-notify` as three processes (the scale-out layout) instead of `all`.
//!
//! It prints the box's one-row commit time first, then per run accepted/s, decided/s end-to-end
//! (first request sent → last decision committed), p50/p99 accept latency, p99 decision latency,
//! WAL bytes and PostgreSQL CPU per decision, checks the invariants in PostgreSQL, and finally
//! the ratios. Loopback only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly on a broken set-up"
)]

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atomicseats::config::Settings;
use atomicseats::http::auth::TokenKeys;
use atomicseats::users::domain::Role;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod common;

use common::{
    CpuSplit, SECRET, Server, admin_url, db_url, free_port, one_row_commit, peak_rss_mib,
    percentile, pg, read_response, start, start_role, wait_partitions, wait_ready,
};

#[derive(Debug, Clone)]
struct Args {
    requests: usize,
    users: usize,
    capacity: i32,
    seats: i32,
    connections: usize,
    transport: String,
    runs: Vec<String>,
    events: usize,
    old_bin: Option<String>,
    old_config: Option<String>,
    rate: Option<f64>,
    /// Honour 503 + Retry-After and resend (see `--retry-503`).
    retry_503: bool,
    /// Kafka: `serve`, `work-bookings` and `work-notify` as three processes (see `--split`).
    split: bool,
}

fn args() -> Args {
    let mut a = Args {
        requests: 100_000,
        users: 20_000,
        capacity: 50_000,
        seats: 2,
        connections: 256,
        transport: "memory".to_owned(),
        runs: vec!["batched".to_owned(), "unbatched".to_owned()],
        events: 1,
        old_bin: None,
        old_config: None,
        rate: None,
        retry_503: false,
        split: false,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let v = raw.get(i + 1).cloned().unwrap_or_default();
        match raw[i].as_str() {
            "--requests" => a.requests = v.parse().expect("--requests N"),
            "--users" => a.users = v.parse().expect("--users N"),
            "--capacity" => a.capacity = v.parse().expect("--capacity N"),
            "--seats" => a.seats = v.parse().expect("--seats N"),
            "--connections" => a.connections = v.parse().expect("--connections N"),
            "--transport" => a.transport = v,
            "--runs" => a.runs = v.split(',').map(str::to_owned).collect(),
            "--events" => a.events = v.parse().expect("--events N"),
            "--old-bin" => a.old_bin = Some(v),
            "--old-config" => a.old_config = Some(v),
            "--rate" => a.rate = Some(v.parse().expect("--rate N (requests/s)")),
            // Clients that honour a 503's Retry-After (1 s) and send the same request again,
            // as a real buyer's client does: every request is accepted in the end.
            "--retry-503" => {
                a.retry_503 = true;
                i += 1;
                continue;
            }
            // Kafka: the scale-out layout's roles as separate processes instead of `all`.
            "--split" => {
                a.split = true;
                i += 1;
                continue;
            }
            // `cargo bench` passes --bench; ignore anything we do not know.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// A number of its own for every run of this invocation.
fn run_seq() -> usize {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A process's environment.
type Env = Vec<(String, String)>;

/// The split layout's environments: `serve` gets `envs` without the internal listener; each
/// worker a port of its own, and the booking worker the internal listener on `internal`.
fn envs_split(envs: &[(String, String)], internal: Option<u16>) -> (Env, Vec<(&'static str, Env)>) {
    const LISTEN: &str = "ATOMICSEATS__METRICS__LISTEN";
    let api: Env = envs.iter().filter(|(k, _)| k != LISTEN).cloned().collect();
    let own_port = |mut env: Env| {
        env.retain(|(k, _)| k != "PORT");
        env.push(("PORT".into(), free_port().to_string()));
        env
    };
    let mut bookings = own_port(api.clone());
    if let Some(p) = internal {
        bookings.push((LISTEN.into(), format!("127.0.0.1:{p}")));
    }
    let notify = own_port(api.clone());
    (
        api,
        vec![("work-bookings", bookings), ("work-notify", notify)],
    )
}

struct RunResult {
    accepted_per_sec: f64,
    decided_per_sec: f64,
}

/// What a run measures with.
struct RunSpec<'a> {
    label: &'a str,
    bin: &'a str,
    /// Its configuration directory (an older build refuses keys it does not know).
    config: &'a str,
    batch_max: usize,
    /// Nothing is decided (the accept ceiling): no decisions to wait for or check.
    dry_run: bool,
    /// The events sell in `hold` checkout.
    hold: bool,
}

async fn wal_bytes(c: &tokio_postgres::Client) -> f64 {
    c.query_one("SELECT wal_bytes::float8 FROM pg_stat_wal", &[])
        .await
        .map_or(0.0, |r| r.get(0))
}

async fn run(a: &Args, spec: &RunSpec<'_>) -> RunResult {
    let (label, bin, batch_max) = (spec.label, spec.bin, spec.batch_max);
    let db = format!("atomicseats_bench_{}", std::process::id());
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
    let status = Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("ATOMICSEATS_CONFIG_DIR", spec.config)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "migrate failed");

    // Buyers, a host and the event, straight into PostgreSQL.
    let c = pg(&url).await;
    c.batch_execute(&format!(
        "INSERT INTO users (username, name, email, password_hash, role) \
         SELECT 'buyer' || g, 'Buyer', 'buyer' || g || '@bench.local', 'x', 'guest' FROM generate_series(1, {}) g; \
         INSERT INTO users (username, name, email, password_hash, role) VALUES ('host', 'Host', 'host@bench.local', 'x', 'host'); \
         DO $$ BEGIN IF EXISTS (SELECT 1 FROM information_schema.columns \
           WHERE table_name = 'users' AND column_name = 'email_verified_at') \
         THEN UPDATE users SET email_verified_at = now(); END IF; END $$;",
        a.users
    ))
    .await
    .unwrap();
    let per_event = (a.capacity / a.events.max(1) as i32).max(1);
    let event_ids: Vec<i64> = c
        .query(
            "INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity, price) \
             SELECT id, 'Flash sale ' || g, 'bench', 'Arena', now() + interval '1 day', now() + interval '2 days', $1, 5000 \
             FROM users, generate_series(1, $2::int) g WHERE username = 'host' RETURNING id",
            &[&per_event, &(a.events.max(1) as i32)],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    if spec.hold {
        c.execute(
            "UPDATE events SET checkout = 'hold', hold_secs = 3600, version = version + 1",
            &[],
        )
        .await
        .unwrap();
    }
    let user_ids: Vec<i64> = c
        .query("SELECT id FROM users WHERE role = 'guest' ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();

    let port = free_port();
    let mut envs: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.clone()),
        ("PORT".into(), port.to_string()),
        ("ACCESS_TOKEN_SECRET".into(), SECRET.into()),
        ("ATOMICSEATS__RATE_LIMIT__ENABLED".into(), "false".into()),
        (
            "ATOMICSEATS__BOOKING__BATCH_MAX".into(),
            batch_max.to_string(),
        ),
        ("ATOMICSEATS__DATABASE__POOL_SIZE".into(), "16".into()),
        ("ATOMICSEATS__LOG__LEVEL".into(), "warn".into()),
        ("ATOMICSEATS__MAIL__TRANSPORT".into(), "log".into()),
        // Each run its own Redis keys (when Redis is configured): every run's database is new
        // and its event 1 starts at version 0, so the previous run's cached event 1 (sold out,
        // a higher version) would be read as newer than the database until a reconciliation
        // pass repaired it.
        (
            "ATOMICSEATS__REDIS__KEY_PREFIX".into(),
            format!("bench{}-{}", std::process::id(), run_seq()),
        ),
    ];
    // Experiments: extra server settings for every run, `ATOMICSEATS_BENCH_ENV="K=V K=V"`.
    if let Ok(extra) = std::env::var("ATOMICSEATS_BENCH_ENV") {
        for kv in extra.split_whitespace() {
            if let Some((k, v)) = kv.split_once('=') {
                envs.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    if spec.dry_run {
        envs.push(("ATOMICSEATS__BOOKING__DRY_RUN".into(), "true".into()));
    }
    if a.transport == "kafka" {
        envs.push(("ATOMICSEATS__QUEUE__KIND".into(), "kafka".into()));
        envs.push((
            "KAFKA_BROKER".into(),
            std::env::var("KAFKA_BROKER").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        ));
        envs.push((
            "ATOMICSEATS__KAFKA__TOPIC_SUFFIX".into(),
            format!(".bench{}{label}", std::process::id()),
        ));
    }
    // Kafka: the worker's internal listener tells when it owns its partitions (a dry run
    // decides nothing, so there is nothing to wait for).
    let internal = (a.transport == "kafka" && !spec.dry_run).then(free_port);
    if let Some(p) = internal {
        envs.push((
            "ATOMICSEATS__METRICS__LISTEN".into(),
            format!("127.0.0.1:{p}"),
        ));
    }
    let split = a.split && a.transport == "kafka";
    let mut servers = Vec::new();
    if split {
        // The API first (it applies the migrations), then the workers, each on its own port.
        let (api, workers) = envs_split(&envs, internal);
        servers.push(start_role(bin, "serve", spec.config, &api));
        wait_ready(port).await;
        for (role, env) in workers {
            servers.push(start_role(bin, role, spec.config, &env));
        }
    } else {
        servers.push(start(bin, spec.config, &envs));
        wait_ready(port).await;
    }
    // The sale starts on a running system: the consumer-group join of a worker that has just
    // started (seconds; the broker waits for more members) is not part of any sale.
    if let Some(p) = internal {
        let joined = wait_partitions(p).await;
        println!(
            "  {label}: consumer group joined {:.1} s after the API was ready (before the load; not counted)",
            joined.as_secs_f64()
        );
    }

    // Requests: buyer i % users, each with its own token.
    let env_map: HashMap<String, String> =
        [("ACCESS_TOKEN_SECRET".to_owned(), SECRET.to_owned())].into();
    let settings = Settings::load(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        &env_map,
    )
    .unwrap();
    let keys = TokenKeys::from_settings(&settings.auth, settings.environment).unwrap();
    let tokens: Vec<String> = user_ids
        .iter()
        .map(|id| keys.issue_access(*id, Role::Guest).unwrap().token)
        .collect();
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..a.requests)
            .map(|i| {
                let event = event_ids[i % event_ids.len()];
                let body = format!(r#"{{"eventId":{event},"numberOfSeats":{}}}"#, a.seats);
                format!(
                    "POST /api/events/book HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                    tokens[i % tokens.len()],
                    body.len(),
                    body
                )
                .into_bytes()
            })
            .collect(),
    );

    let next = Arc::new(AtomicUsize::new(0));
    let wal_before = wal_bytes(&c).await;
    let pids: Vec<u32> = servers.iter().map(|s: &Server| s.0.id()).collect();
    let cpu_before = CpuSplit::read(&pids);
    let started = Instant::now();
    // Open loop: request i is due at i / rate seconds, whatever the answers do.
    let interval = a.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let retry_503 = a.retry_503;
    let mut tasks = Vec::new();
    for _ in 0..a.connections {
        let next = next.clone();
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses: HashMap<u16, usize> = HashMap::new();
            let mut stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            stream.set_nodelay(true).ok();
            let mut buf = Vec::with_capacity(4096);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests.len() {
                    break;
                }
                if let Some(every) = interval {
                    tokio::time::sleep_until((started + every * i as u32).into()).await;
                }
                let t = Instant::now();
                let mut result = async {
                    stream.write_all(&requests[i]).await?;
                    read_response(&mut stream, &mut buf).await
                }
                .await;
                if result.is_err() {
                    // Reconnect once (the server closed an idle connection).
                    stream = TcpStream::connect(("127.0.0.1", port))
                        .await
                        .expect("reconnect");
                    stream.set_nodelay(true).ok();
                    result = async {
                        stream.write_all(&requests[i]).await?;
                        read_response(&mut stream, &mut buf).await
                    }
                    .await;
                }
                let mut status = result.unwrap_or(0);
                while retry_503 && status == 503 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    status = async {
                        stream.write_all(&requests[i]).await?;
                        read_response(&mut stream, &mut buf).await
                    }
                    .await
                    .unwrap_or(0);
                }
                latencies.push(t.elapsed());
                *statuses.entry(status).or_default() += 1;
            }
            (latencies, statuses)
        }));
    }
    let mut latencies = Vec::with_capacity(a.requests);
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for t in tasks {
        let (l, s) = t.await.unwrap();
        latencies.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let send_elapsed = started.elapsed();
    let accepted =
        statuses.get(&202).copied().unwrap_or(0) + statuses.get(&201).copied().unwrap_or(0);

    if spec.dry_run {
        let cpu_after = CpuSplit::read(&pids);
        latencies.sort();
        let accepted_per_sec = accepted as f64 / send_elapsed.as_secs_f64();
        println!(
            "{label:>9} [accept path only, booking.dry_run]: {n} requests, {conns} connections | accepted {accepted} ({accepted_per_sec:.0}/s) | accept latency p50 {p50:.1} ms, p99 {p99:.1} ms | statuses {statuses:?}",
            n = a.requests,
            conns = a.connections,
            p50 = percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            p99 = percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        );
        println!(
            "{label:>9} {}",
            cpu_before.describe(&cpu_after, accepted, "accepted request")
        );
        drop(servers);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .unwrap();
        return RunResult {
            accepted_per_sec,
            decided_per_sec: 0.0,
        };
    }
    // Wait until every accepted request is decided (immediate in memory mode).
    let decided_at = loop {
        let n: i64 = c
            .query_one("SELECT count(*) FROM booking_requests", &[])
            .await
            .unwrap()
            .get(0);
        if n as usize >= accepted {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < send_elapsed + Duration::from_secs(600),
            "decisions stalled at {n}/{accepted}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wal_per_decision = (wal_bytes(&c).await - wal_before) / accepted.max(1) as f64;
    let cpu_after = CpuSplit::read(&pids);
    let cpu_per_1000 = (cpu_after.postgres - cpu_before.postgres) / accepted.max(1) as f64 * 1000.0;
    // Notifications are deferred while the writer is busy (notify.relay_*): report when the
    // last one went out, so the deferred work stays visible.
    // Batches the relay has not expanded yet count as pending (`outbox_all`; the code before
    // it has no such view).
    let batched: bool = c
        .query_one("SELECT to_regclass('outbox_all') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    let pending_sql = if batched {
        "SELECT count(*) FROM outbox_all WHERE status = 'pending'"
    } else {
        "SELECT count(*) FROM outbox WHERE status = 'pending'"
    };
    let drained_at = loop {
        let pending: i64 = c.query_one(pending_sql, &[]).await.unwrap().get(0);
        if pending == 0 {
            break started.elapsed();
        }
        if started.elapsed() > decided_at + Duration::from_secs(60) {
            break Duration::MAX;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wal_with_mail = (wal_bytes(&c).await - wal_before) / accepted.max(1) as f64;
    latencies.sort();
    let row = c
        .query_one(
            "SELECT count(*), COUNT(DISTINCT id), \
                    COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM decided_at - requested_at)), 0)::float8, \
                    (SELECT SUM(reserved_seats)::INT FROM events), \
                    (SELECT COALESCE(SUM(seats), 0)::INT FROM bookings WHERE status IN ('confirmed', 'held')), \
                    (SELECT SUM(capacity)::INT FROM events), \
                    (SELECT count(*) FROM waitlist), \
                    (SELECT count(*) FROM events e WHERE reserved_seats > capacity OR reserved_seats <> \
                       (SELECT COALESCE(SUM(seats), 0) FROM bookings b WHERE b.event_id = e.id AND b.status IN ('confirmed', 'held'))) \
             FROM booking_requests",
            &[],
        )
        .await
        .unwrap();
    let bad_events: i64 = row.get(7);
    let (stored, distinct, p99_decision, reserved, confirmed, capacity, waiting): (
        i64,
        i64,
        f64,
        i32,
        i32,
        i32,
        i64,
    ) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
    );
    let peak_mib: f64 = servers.iter().map(peak_rss_mib).sum();
    drop(servers);

    let accepted_per_sec = accepted as f64 / send_elapsed.as_secs_f64();
    let decided_per_sec = stored as f64 / decided_at.as_secs_f64();
    println!(
        "{label:>9} [{transport}{layout}, batch_max={batch_max}, {events} event(s)]: {n} requests, {conns} connections | accepted {accepted} ({accepted_per_sec:.0}/s) | decided {stored} in {dt:.2}s = {decided_per_sec:.0}/s | accept latency p50 {p50:.1} ms, p99 {p99:.1} ms | decision latency p99 {pd:.1} ms | WAL {wal_per_decision:.0} B/decision | PostgreSQL CPU {cpu_per_1000:.3} s per 1,000 decisions | statuses {statuses:?}",
        transport = a.transport,
        layout = if split {
            ", serve + work-bookings + work-notify"
        } else {
            ""
        },
        events = event_ids.len(),
        n = a.requests,
        conns = a.connections,
        dt = decided_at.as_secs_f64(),
        p50 = percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        p99 = percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        pd = p99_decision * 1e3,
    );
    let oversold = i64::from((reserved - capacity).max(0)) + bad_events;
    let lost = accepted as i64 - stored;
    let duplicated = stored - distinct;
    println!(
        "{label:>9} {}",
        cpu_before.describe(&cpu_after, accepted, "decision")
    );
    println!(
        "{label:>9} server peak memory {peak_mib:.0} MiB{processes}; notifications: {out}; WAL with the email bookkeeping {wal_with_mail:.0} B/decision",
        processes = if split {
            " (summed over its 3 processes)"
        } else {
            ""
        },
        out = if drained_at == Duration::MAX {
            "NOT all out 60 s after the last decision".to_owned()
        } else {
            format!(
                "every email out {:.1} s after the first request ({:.1} s after the last decision)",
                drained_at.as_secs_f64(),
                drained_at.saturating_sub(decided_at).as_secs_f64()
            )
        },
    );
    println!(
        "{label:>9} invariants: oversold {oversold}, lost {lost}, duplicated {duplicated}, reserved {reserved} = confirmed {confirmed} ({}), capacity {capacity}, waitlist entries {waiting}",
        if reserved == confirmed {
            "ok"
        } else {
            "MISMATCH"
        }
    );
    assert!(
        oversold == 0 && lost == 0 && duplicated == 0 && reserved == confirmed,
        "invariant broken"
    );
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
    RunResult {
        accepted_per_sec,
        decided_per_sec,
    }
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "flash sale: {} requests of {} seats from {} buyers, capacity {}, {} connections, transport {}, {} cores",
            a.requests,
            a.seats,
            a.users,
            a.capacity,
            a.connections,
            a.transport,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let commit = one_row_commit(&admin_url()).await;
        println!(
            "box: one-row commit {:.3} ms (synchronous_commit on, 300 sequential INSERTs)",
            commit.as_secs_f64() * 1e3
        );
        let this = env!("CARGO_BIN_EXE_atomicseats");
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
        let mut results = HashMap::new();
        for r in &a.runs {
            let spec = match r.as_str() {
                "ceiling" => RunSpec { label: r, bin: this, config, batch_max: 1000, dry_run: true, hold: false },
                "unbatched" => RunSpec { label: r, bin: this, config, batch_max: 1, dry_run: false, hold: false },
                "hold" => RunSpec { label: r, bin: this, config, batch_max: 1000, dry_run: false, hold: true },
                "old" => RunSpec {
                    label: r,
                    bin: a.old_bin.as_deref().expect("--runs old needs --old-bin PATH"),
                    config: a
                        .old_config
                        .as_deref()
                        .expect("--runs old needs --old-config DIR (that build's config/)"),
                    batch_max: 1000,
                    dry_run: false,
                    hold: false,
                },
                _ => RunSpec { label: r, bin: this, config, batch_max: 1000, dry_run: false, hold: false },
            };
            results.insert(r.clone(), run(&a, &spec).await);
        }
        let ratio = |x: &str, y: &str, what: fn(&RunResult) -> f64| {
            if let (Some(b), Some(u)) = (results.get(x), results.get(y)) {
                println!(
                    "{x} ÷ {y}: {:.2}× ({:.0}/s vs {:.0}/s)",
                    what(b) / what(u),
                    what(b),
                    what(u)
                );
            }
        };
        let decided = |r: &RunResult| r.decided_per_sec;
        ratio("batched", "old", decided);
        ratio("hold", "batched", decided);
        ratio("batched", "unbatched", decided);
        if let (Some(b), Some(c)) = (results.get("batched"), results.get("ceiling")) {
            println!(
                "batched decided/s ÷ ceiling accepted/s: {:.2} ({:.0}/s vs {:.0}/s)",
                b.decided_per_sec / c.accepted_per_sec,
                b.decided_per_sec,
                c.accepted_per_sec
            );
        }
    });
}

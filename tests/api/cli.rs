//! The real binary: `--help`, `config`, `migrate`, and `all` starting, answering and stopping on
//! SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{TestDatabase, config_dir, free_port};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atomicseats"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ATOMICSEATS_CONFIG_DIR", config_dir());
    cmd
}

#[test]
fn help_lists_every_subcommand() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in [
        "serve",
        "work-bookings",
        "work-notify",
        "reconcile",
        "all",
        "migrate",
        "config",
    ] {
        assert!(text.contains(sub), "--help does not mention {sub}:\n{text}");
    }
    for sub in [
        "serve",
        "work-bookings",
        "work-notify",
        "reconcile",
        "all",
        "migrate",
        "config",
    ] {
        let out = bin().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help failed");
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn config_prints_the_effective_settings_redacted() {
    let out = bin()
        .arg("config")
        .env("PORT", "4321")
        .env("ACCESS_TOKEN_SECRET", "super-secret-value")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("port = 4321"), "{text}");
    assert!(!text.contains("super-secret-value"), "{text}");
}

#[test]
fn invalid_configuration_fails_at_startup_naming_the_key() {
    let out = bin()
        .arg("serve")
        .env("ATOMICSEATS__RECONCILE__SCHEDULE", "whenever")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("reconcile.schedule"), "{err}");
}

#[tokio::test]
async fn migrate_applies_pending_migrations() {
    let db = TestDatabase::empty().await;
    let out = bin()
        .arg("migrate")
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = bin()
        .args(["migrate", "--status"])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        String::from_utf8(status.stdout)
            .unwrap()
            .contains("0 pending")
    );
}

#[tokio::test]
async fn users_verify_confirms_an_address_the_operator_vouches_for() {
    let db = TestDatabase::migrated().await;
    db.client()
        .await
        .execute(
            "INSERT INTO users (username, name, email, password_hash, role) \
             VALUES ('newhost', 'New Host', 'New.Host@example.com', 'x', 'host')",
            &[],
        )
        .await
        .unwrap();
    let verify = |email: &str| {
        bin()
            .args(["users", "verify", "--email", email])
            .env("DATABASE_URL", db.url())
            .output()
            .unwrap()
    };

    let first = verify("new.host@example.com");
    let again = verify("new.host@example.com");
    let unknown = verify("nobody@example.com");

    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("address confirmed"));
    assert!(String::from_utf8_lossy(&again.stdout).contains("already confirmed"));
    assert!(!unknown.status.success());
    let verified: bool = db
        .client()
        .await
        .query_one("SELECT email_verified_at IS NOT NULL FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert!(verified);
}

#[tokio::test]
async fn all_starts_answers_and_stops_cleanly_on_sigterm() {
    all_stops_cleanly(&[], false).await;
}

#[tokio::test]
async fn all_stops_cleanly_on_sigterm_right_after_a_load() {
    all_stops_cleanly(&[], true).await;
}

#[tokio::test]
async fn all_on_kafka_stops_cleanly_on_sigterm() {
    all_stops_cleanly(&kafka_env(), false).await;
}

/// Operations #17: after a flash sale on Kafka, `all` used to hit its drain timeout on SIGTERM
/// (the relay publishing the sale's notifications one acknowledgement at a time).
#[tokio::test]
async fn all_on_kafka_stops_cleanly_on_sigterm_right_after_a_load() {
    all_stops_cleanly(&kafka_env(), true).await;
}

fn kafka_env() -> Vec<(&'static str, String)> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    vec![
        ("ATOMICSEATS__QUEUE__KIND", "kafka".to_owned()),
        (
            "KAFKA_BROKER",
            std::env::var("KAFKA_BROKER").unwrap_or_else(|_| "127.0.0.1:9092".to_owned()),
        ),
        ("ATOMICSEATS__KAFKA__TOPIC_SUFFIX", format!(".sig{tag}")),
        ("ATOMICSEATS__KAFKA__GROUP_ID", format!("sig-{tag}")),
        (
            "ATOMICSEATS__KAFKA__NOTIFY_GROUP_ID",
            format!("signotify-{tag}"),
        ),
    ]
}

const LOAD_SECRET: &str = "cli-load-access-secret-0123456789abcdef";

/// Waits (30 s at most) until the binary on `port` answers `/health`.
async fn wait_up(port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the binary did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An access token for `user` with `role`, signed with [`LOAD_SECRET`] (what a binary started
/// with `ACCESS_TOKEN_SECRET=LOAD_SECRET` accepts), minted without a login.
fn token_for(db: &TestDatabase, user: i64, role: atomicseats::users::domain::Role) -> String {
    let settings =
        crate::helpers::test_settings(&db.url(), &[("ACCESS_TOKEN_SECRET", LOAD_SECRET)]);
    atomicseats::http::auth::TokenKeys::from_settings(&settings.auth, settings.environment)
        .unwrap()
        .issue_access(user, role)
        .unwrap()
        .token
}

/// 2,000 booking requests from 200 buyers over 32 connections, all answered (a backlog of
/// decisions, outbox rows and notifications behind them).
async fn book_a_load(db: &TestDatabase, base: &str) {
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO users (username, name, email, password_hash, role, email_verified_at) \
         SELECT 'load' || g, 'Load', 'load' || g || '@example.com', 'x', 'guest', now() \
           FROM generate_series(1, 200) g; \
         INSERT INTO users (username, name, email, password_hash, role, email_verified_at) \
           VALUES ('loadhost', 'Host', 'loadhost@example.com', 'x', 'host', now()); \
         INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity, price) \
           SELECT id, 'Load', '', 'Hall', now() + interval '30 days', \
                  now() + interval '30 days 3 hours', 1000, 100 FROM users WHERE username = 'loadhost';",
    )
    .await
    .unwrap();
    let users: Vec<i64> = c
        .query("SELECT id FROM users WHERE role = 'guest'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let event: i64 = c
        .query_one("SELECT id FROM events", &[])
        .await
        .unwrap()
        .get(0);
    let tokens: Vec<String> = users
        .iter()
        .map(|u| token_for(db, *u, atomicseats::users::domain::Role::Guest))
        .collect();
    let client = reqwest::Client::new();
    let requests = (0..2000).map(|i| {
        let client = client.clone();
        let token = tokens[i % tokens.len()].clone();
        let url = format!("{base}/api/events/book");
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({ "eventId": event, "numberOfSeats": 1 }))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    use futures_util::StreamExt;
    let statuses: Vec<u16> = futures_util::stream::iter(requests)
        .buffer_unordered(32)
        .collect()
        .await;
    let accepted = statuses.iter().filter(|s| (200..300).contains(*s)).count();
    assert_eq!(accepted, 2000, "{:?}", &statuses[..20.min(statuses.len())]);
}

async fn all_stops_cleanly(extra: &[(&str, String)], load: bool) {
    let db = TestDatabase::empty().await;
    let port = free_port();
    let mut cmd = bin();
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd
        .arg("all")
        .env("DATABASE_URL", db.url())
        .env("PORT", port.to_string())
        .env("ATOMICSEATS__LOG__LEVEL", "warn")
        .env("ACCESS_TOKEN_SECRET", LOAD_SECRET)
        .env("ATOMICSEATS__RATE_LIMIT__ENABLED", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");

    // It migrates the empty database and comes up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "atomicseats all did not come up");
        assert!(
            child.try_wait().unwrap().is_none(),
            "atomicseats all exited early"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    if load {
        book_a_load(&db, &base).await;
    }

    // SIGTERM at once: every role must stop within the drain time (shutdown_timeout_secs 10 +
    // 5), exit code 0.
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let stopped_by = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < stopped_by,
            "atomicseats all did not stop within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

/// Operations #17: a decision counts once in `booking_decisions_total`; its replays (the same
/// Idempotency-Key again, a reused key) count in `booking_replays_total`. A process of its own,
/// so that no other test's counts mix in.
#[tokio::test]
async fn a_decision_counts_once_and_replays_count_apart() {
    let db = TestDatabase::empty().await;
    let port = free_port();
    let metrics_port = free_port();
    let mut child = bin()
        .arg("all")
        .env("DATABASE_URL", db.url())
        .env("PORT", port.to_string())
        .env("ATOMICSEATS__LOG__LEVEL", "warn")
        .env("ACCESS_TOKEN_SECRET", LOAD_SECRET)
        .env("ATOMICSEATS__RATE_LIMIT__ENABLED", "false")
        .env(
            "ATOMICSEATS__METRICS__LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_up(port).await;
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO users (username, name, email, password_hash, role, email_verified_at) \
           VALUES ('counted', 'C', 'counted@example.com', 'x', 'host', now()); \
         INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity, price) \
           SELECT id, 'Counted', '', 'Hall', now() + interval '30 days', \
                  now() + interval '30 days 3 hours', 10, 100 FROM users;",
    )
    .await
    .unwrap();
    let user: i64 = c
        .query_one("SELECT id FROM users", &[])
        .await
        .unwrap()
        .get(0);
    let event: i64 = c
        .query_one("SELECT id FROM events", &[])
        .await
        .unwrap()
        .get(0);
    let token = token_for(&db, user, atomicseats::users::domain::Role::Host);
    let book = |seats: i64| {
        client
            .post(format!("{base}/api/events/book"))
            .bearer_auth(&token)
            .header("idempotency-key", "count-me-once")
            .header("prefer", "wait=10")
            .json(&serde_json::json!({ "eventId": event, "numberOfSeats": seats }))
            .send()
    };

    assert_eq!(book(2).await.unwrap().status(), 201);
    assert_eq!(book(2).await.unwrap().status(), 201, "the replay");
    assert_eq!(book(3).await.unwrap().status(), 422, "the reused key");
    let metrics = client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{metrics}"))
    };
    assert_eq!(value("booking_decisions_total{status=\"confirmed\"}"), 1.0);
    assert_eq!(value("booking_replays_total"), 2.0);
    assert_eq!(
        value("booking_decision_latency_seconds_count"),
        1.0,
        "the latency of one decision"
    );
}

/// Operations #17: a client's malformed request is the client's mistake, not a server error:
/// nothing at ERROR in the log (actix's dispatcher used to log "stream error" at ERROR).
#[tokio::test]
async fn a_malformed_request_logs_no_error() {
    use std::io::{Read, Write};
    let db = TestDatabase::migrated().await;
    let port = free_port();
    let child = bin()
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("PORT", port.to_string())
        .env("ATOMICSEATS__LOG__LEVEL", "info")
        .env("ATOMICSEATS__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_up(port).await;
    // A header line without a colon, then a request line that is not HTTP at all.
    for raw in [
        "GET /health HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n",
        "\x16\x03\x01 not http at all\r\n\r\n",
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(
            String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.lines().any(|l| l.contains("\"level\":\"ERROR\"")),
        "{log}"
    );
}

#[tokio::test]
async fn logs_never_contain_passwords_hashes_tokens_or_emails() {
    let db = TestDatabase::empty().await;
    let port = free_port();
    let child = bin()
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("PORT", port.to_string())
        .env("ATOMICSEATS_ENV", "test")
        .env("ATOMICSEATS__DATABASE__MIGRATE_ON_START", "true")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_up(port).await;
    let password = "very-secret-passphrase";
    let email = "private.person@example.com";
    let reg = client
        .post(format!("{base}/api/user/register"))
        .json(&serde_json::json!({ "username": "private", "name": "P", "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 201);
    let login: serde_json::Value = client
        .post(format!("{base}/api/user/login"))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["data"]["accessToken"].as_str().unwrap().to_owned();
    let me = client
        .get(format!("{base}/api/user/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let hash: String = db
        .client()
        .await
        .query_one("SELECT password_hash FROM users", &[])
        .await
        .unwrap()
        .get(0);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(logs.contains("user registered"), "the logs were captured");
    for secret in [password, email, hash.as_str(), access.as_str()] {
        assert!(!logs.contains(secret), "`{secret}` appears in the logs");
    }
}

//! Typed, validated configuration.
//!
//! Layers, later ones win:
//! 1. `config/default.toml`: every key with its default and a comment;
//! 2. `config/<env>.toml`, where `<env>` is `ATOMICSEATS_ENV` (`local` by default, also `test` or
//!    `production`); optional;
//! 3. the seed's environment variables, so an existing deployment's env file carries over
//!    (`DATABASE_URL`, `PORT`, `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`, `KAFKA_BROKER`,
//!    `ACCESS_TOKEN_SECRET`, `REFRESH_TOKEN_SECRET`, `ACCESS_TOKEN_EXPIRY`,
//!    `REFRESH_TOKEN_EXPIRY`, `MAIL_USER`, `MAIL_PASS`);
//! 4. `ATOMICSEATS__SECTION__KEY` environment variables (e.g. `ATOMICSEATS__HTTP__PORT=8080`).
//!
//! Secrets (token secrets, passwords) are accepted only from the environment: a file that sets
//! one is rejected. There is no global settings value: callers (and tests) build their own with
//! [`Settings::load`] and pass it down.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// The environment variable that selects the environment file (`config/<env>.toml`).
pub const ENV_SELECTOR: &str = "ATOMICSEATS_ENV";
/// Prefix of the structured environment overrides (`ATOMICSEATS__HTTP__PORT`).
pub const ENV_PREFIX: &str = "ATOMICSEATS";

/// `config/default.toml`, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Keys that hold secrets: accepted only from the environment, redacted when printed.
const SECRET_KEYS: &[&str] = &[
    "auth.access_token_secret",
    "auth.refresh_token_secret",
    "mail.password",
    "redis.password",
    "metrics.token",
    "payments.stripe_secret_key",
    "payments.stripe_webhook_secret",
];

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value that cannot be used.
    #[error("invalid configuration: `{key}`: {reason}")]
    Invalid {
        /// Dotted key, e.g. `reconcile.schedule`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The layered sources could not be read or do not fit the typed tree.
    #[error("invalid configuration: {0}")]
    Load(#[from] config::ConfigError),
}

impl ConfigError {
    fn invalid(key: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Which environment file is layered over the defaults, and which safety rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A developer's machine: pretty logs, generated secrets allowed, cookies without `Secure`.
    Local,
    /// The test suite.
    Test,
    /// Everything else: secrets are required, logs are JSON, cookies are `Secure`.
    Production,
}

impl FromStr for Environment {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" | "development" | "dev" => Ok(Self::Local),
            "test" => Ok(Self::Test),
            "production" | "prod" => Ok(Self::Production),
            other => Err(ConfigError::invalid(
                ENV_SELECTOR,
                format!("`{other}` is not one of local, test, production"),
            )),
        }
    }
}

impl Environment {
    /// The name of the environment file (without `.toml`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Test => "test",
            Self::Production => "production",
        }
    }
}

/// The whole configuration tree.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The environment these settings were loaded for (not read from files).
    #[serde(skip_deserializing, default = "default_environment")]
    pub environment: Environment,
    /// HTTP server.
    pub http: HttpSettings,
    /// PostgreSQL, the system of record.
    pub database: DatabaseSettings,
    /// Redis: shared cache, rate limits and outcome fan-out when several API nodes run.
    pub redis: RedisSettings,
    /// The booking and notification queues.
    pub queue: QueueSettings,
    /// Kafka, when `queue.kind = "kafka"`.
    pub kafka: KafkaSettings,
    /// Tokens and passwords.
    pub auth: AuthSettings,
    /// Outgoing email.
    pub mail: MailSettings,
    /// Reconciliation schedule.
    pub reconcile: ReconcileSettings,
    /// Rate limits per route class.
    pub rate_limit: RateLimitSettings,
    /// Event rules and listing sizes.
    pub events: EventSettings,
    /// The booking engine.
    pub booking: BookingSettings,
    /// Notification delivery.
    pub notify: NotifySettings,
    /// Logging.
    pub log: LogSettings,
    /// Where Prometheus scrapes this process.
    pub metrics: MetricsSettings,
    /// The on-sale waiting room.
    pub waiting_room: WaitingRoomSettings,
    /// Holds and their expiry.
    pub checkout: CheckoutSettings,
    /// Payment providers.
    pub payments: PaymentSettings,
    /// The pages for people.
    pub web: WebSettings,
}

/// `[checkout]`: holds ([`crate::bookings`] decides them, [`crate::payments`] pays them).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutSettings {
    /// A new event's hold length (seconds) when the host gives none.
    pub hold_default_secs: u32,
    /// Shortest hold a host may set.
    pub hold_min_secs: u32,
    /// Longest hold a host may set.
    pub hold_max_secs: u32,
    /// How often the booking writer looks for holds due to expire and payments to apply.
    pub sweep_ms: u64,
    /// Most holds and payments one sweep applies in one transaction.
    pub sweep_page: u32,
}

/// `[web]`: the pages for people (`crate::web`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// How long a rendered public page (event list, event page) is served again as it is, per
    /// worker; 0 renders every request.
    pub page_cache_ms: u64,
}

/// `[payments]`: the providers a hold is paid through ([`crate::payments`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    /// ISO 4217 currency of every price (lower case, as Stripe takes it).
    pub currency: String,
    /// Stripe's API base URL (a local server that follows Stripe's documentation in tests).
    pub stripe_api_base: String,
    /// Stripe secret API key (`sk_…`), environment only; empty: Stripe is not offered.
    #[serde(default, serialize_with = "serialize_secret")]
    pub stripe_secret_key: Option<SecretString>,
    /// Signing secret of the Stripe webhook endpoint (`whsec_…`), environment only.
    #[serde(default, serialize_with = "serialize_secret")]
    pub stripe_webhook_secret: Option<SecretString>,
    /// Oldest webhook timestamp accepted, in seconds (Stripe's libraries use 300).
    pub webhook_tolerance_secs: u64,
    /// Time allowed for one call to the provider.
    pub timeout_ms: u64,
}

/// `[waiting_room]`: the queue in front of an event's sale ([`crate::waiting_room`] reads it).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingRoomSettings {
    /// How long before `onSaleAt` buyers may join (a duration like `1h`).
    pub opens_before: String,
    /// How long an admitted buyer may book with the admission token (`10m`).
    pub admission_ttl: String,
    /// How often the pacer looks at the seats left and admits.
    pub tick_ms: u64,
    /// Most buyers admitted per second per event; 0 = no cap (the host may set a lower one).
    pub max_admit_per_sec: u32,
    /// Seats one admitted buyer is expected to take until the sale shows its own figure.
    pub seats_per_buyer: f64,
    /// Buyers admitted per seat expected, above 1 so that the seats sell when some admitted
    /// buyers do not book.
    pub overadmit: f64,
    /// Status polls per second the waiting buyers of one event may make in all; the
    /// `Retry-After` a poll gets is stretched to keep them under it.
    pub poll_budget_per_sec: u32,
    /// Longest `Retry-After` a poll is told.
    pub max_poll_secs: u64,
    /// Open status streams one account may hold on one API process.
    pub max_streams_per_user: u32,
    /// Open status streams one client IP may hold on one API process.
    pub max_streams_per_ip: u32,
    /// Longest life of one status stream, seconds (then it ends with `retry:` and the browser
    /// reconnects).
    pub stream_max_secs: u64,
}

/// `[metrics]`: `/metrics` carries business volumes, so it is not public. Every role serves it
/// on `listen` (an internal address) when set; on the API's public port it needs
/// `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port` of the internal metrics listener of every role; empty = none.
    pub listen: String,
    /// Bearer token for `/metrics` on the public port (environment only); unset = refused
    /// there.
    #[serde(default, serialize_with = "serialize_secret")]
    pub token: Option<SecretString>,
}

fn default_environment() -> Environment {
    Environment::Local
}

/// Which success envelope the API answers with by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Envelope {
    /// `{ statusCode, data: <payload>, message: <text> }`, as documented.
    Standard,
    /// The old system's swapped shapes on the routes where they differ.
    Legacy,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to bind.
    pub host: String,
    /// The success envelope: `standard` (documented `data`) or `legacy` (the Node.js system's,
    /// for old clients during a migration; see `http::legacy`). A request header
    /// `X-AtomicSeats-Envelope` overrides it.
    pub envelope: Envelope,
    /// The URL buyers reach this service at (links in emails), without a trailing slash.
    pub public_url: String,
    /// Port to bind; 0 picks a free port (tests).
    pub port: u16,
    /// actix worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// How long graceful shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// Time a client has to send its request head (slow-loris protection).
    pub client_request_timeout_ms: u64,
    /// Keep-alive of idle connections.
    pub keep_alive_secs: u64,
    /// Time a request may take from its head to its answer (body upload included); past it 503
    /// `timeout`.
    pub request_timeout_ms: u64,
    /// The same for `POST /api/events/book`, which may wait for its decision (`Prefer: wait`,
    /// up to 30 s).
    pub booking_timeout_ms: u64,
    /// Origins allowed to call the API from a browser (CORS); empty: no cross-origin access.
    pub cors_allowed_origins: Vec<String>,
    /// How long browsers may cache a CORS preflight.
    pub cors_max_age_secs: usize,
    /// Largest request head: header names and values summed; larger → 431.
    pub max_header_bytes: usize,
    /// Longest request target (path and query); longer → 414.
    pub max_uri_bytes: usize,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connection URL (`DATABASE_URL`). Its password, if any, is redacted when printed.
    #[serde(serialize_with = "serialize_url_redacted")]
    pub url: String,
    /// Maximum pooled connections per process.
    pub pool_size: usize,
    /// Time to open a new connection.
    pub connect_timeout_ms: u64,
    /// Time to wait for a free pooled connection before answering 503.
    pub wait_timeout_ms: u64,
    /// `statement_timeout` set on every connection.
    pub statement_timeout_ms: u64,
    /// Apply pending migrations when `serve` or `all` starts.
    pub migrate_on_start: bool,
}

/// `[redis]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`; empty means no Redis (in-process cache and rate limiter).
    pub url: String,
    /// Password (`REDIS_PASSWORD`), environment only.
    #[serde(default, serialize_with = "serialize_secret")]
    pub password: Option<SecretString>,
    /// Maximum pooled connections per process.
    pub pool_size: usize,
    /// Time to wait for a connection or a reply.
    pub timeout_ms: u64,
    /// Prefix of every key we write, so deployments (or test runs) can share one Redis.
    pub key_prefix: String,
    /// How long a process reuses an event snapshot it read from or wrote to Redis (0: every
    /// read asks Redis). Another node's changes are seen at most this late.
    pub near_cache_ms: u64,
}

/// Which transport carries booking requests and notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// In-process bounded channels: the single-node install.
    Memory,
    /// Kafka topics keyed by event id: the scale-out install.
    Kafka,
}

/// `[queue]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// `memory` or `kafka`.
    pub kind: QueueKind,
}

/// `[kafka]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma separated (`KAFKA_BROKER`).
    pub brokers: String,
    /// Topic of booking requests (the seed's name).
    pub topic_bookings: String,
    /// Dead-letter topic for undecodable booking messages.
    pub topic_dead_letter: String,
    /// Topic of notifications (the seed's name).
    pub topic_notifications: String,
    /// Consumer group of `work-notify` (the seed's name).
    pub notify_group_id: String,
    /// Appended to every topic name (isolates test runs sharing one broker).
    pub topic_suffix: String,
    /// Consumer group of `work-bookings` (the seed's name).
    pub group_id: String,
    /// Partitions of the booking topic when it is created.
    pub partitions: u32,
    /// Create missing topics at start-up.
    pub create_topics: bool,
    /// Consumer session timeout.
    pub session_timeout_ms: u64,
    /// Consumer heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// How long a produce may wait for the broker's acknowledgement.
    pub produce_timeout_ms: u64,
    /// Longest a booking consumer's fetch waits at the broker for more data (librdkafka's
    /// `fetch.wait.max.ms`, 500 by default, which a quiet partition pays in latency).
    pub fetch_wait_max_ms: u64,
    /// Consumer group assignment: `cooperative-sticky` (a leaving or joining worker moves only
    /// its own partitions) or `range` (eager: every partition stops during a rebalance).
    pub assignment_strategy: String,
    /// Static group membership (`group.instance.id`): a worker restarting under the same id
    /// within the session timeout gets its partitions back without a rebalance. Empty: off.
    pub instance_id: String,
    /// The API answers 503 with `Retry-After` while the booking consumers are this many
    /// requests behind (0 = never), so a decision's latency stays bounded.
    pub max_lag: u64,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 key for access tokens (`ACCESS_TOKEN_SECRET`), environment only.
    #[serde(default, serialize_with = "serialize_secret")]
    pub access_token_secret: Option<SecretString>,
    /// HS256 key for refresh tokens (`REFRESH_TOKEN_SECRET`), environment only.
    #[serde(default, serialize_with = "serialize_secret")]
    pub refresh_token_secret: Option<SecretString>,
    /// Access token lifetime (`ACCESS_TOKEN_EXPIRY`), e.g. `15m`.
    pub access_token_ttl: String,
    /// Refresh token lifetime (`REFRESH_TOKEN_EXPIRY`), e.g. `7d`.
    pub refresh_token_ttl: String,
    /// bcrypt cost factor.
    pub bcrypt_cost: u32,
    /// Mark the token cookies `Secure` (browsers then send them over HTTPS only).
    pub cookie_secure: bool,
    /// Login attempts per account (or per remembered device) per window before 429
    /// `login_throttled`; 0 = off.
    pub login_attempts: u32,
    /// The login throttle's window, e.g. `15m`.
    pub login_window: String,
}

/// `[booking]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BookingSettings {
    /// Most requests one batch decides.
    pub batch_max: usize,
    /// Extra time a worker waits to fill a batch (0 = take what is queued).
    pub linger_ms: u64,
    /// In-process queue shards (one writer task each).
    pub shards: usize,
    /// Requests each in-process shard holds before the API answers 503.
    pub queue_capacity: usize,
    /// How long the API waits for an in-process decision before answering 202 `pending`.
    pub decision_timeout_secs: u64,
    /// Transactions one writer keeps in flight (each on its own connection): batch N+1 is
    /// decided and written while batch N commits. 1 = one at a time.
    pub pipeline_depth: usize,
    /// Requests an in-process batch gathers before it starts while another transaction is in
    /// flight (it starts at once when none is): a batch of a few would hold a pipeline slot
    /// for a whole commit. 1 = start with what is queued.
    pub overlap_min: usize,
    /// Longest such a batch waits for `overlap_min` requests, in microseconds (it also starts
    /// when the transaction before it commits).
    pub overlap_wait_us: u64,
    /// Benchmarking only: the in-process worker answers every request `pending` at once and
    /// writes nothing, so a run measures the accept path's ceiling (HTTP, token, JSON, cache,
    /// channel). Refused in production.
    #[serde(default)]
    pub dry_run: bool,
}

/// `[notify]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// Delivery attempts before a notification is dead-lettered.
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt.
    pub backoff_base_ms: u64,
    /// Longest retry delay.
    pub backoff_max_ms: u64,
    /// A published but unsent notification is published again after this long.
    pub republish_after_secs: u64,
    /// Notifications sent at the same time by one worker.
    pub concurrency: usize,
    /// The relay hands notifications over once commits have paused this long (a busy booking
    /// writer keeps committing, and the relay's bookkeeping would compete with it)…
    pub relay_quiet_ms: u64,
    /// …but never later than this after the first one waiting (the bounded delay).
    pub relay_max_delay_ms: u64,
}

/// `[events]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// Largest capacity of one event.
    pub max_capacity: i32,
    /// Listing page size when `limit` is absent.
    pub page_size_default: usize,
    /// Largest `limit` a listing accepts.
    pub page_size_max: usize,
}

/// `[rate_limit]`: requests per `window_secs` for each route class; 0 turns a class off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Master switch (benchmarks turn it off).
    pub enabled: bool,
    /// Window length in seconds.
    pub window_secs: u64,
    /// Register, login, refresh: per client IP.
    pub auth: u32,
    /// Booking and cancelling: per user.
    pub booking: u32,
    /// Other writes (events): per user.
    pub write: u32,
    /// Reads: per user.
    pub read: u32,
    /// Joining a waiting room: per client IP.
    pub queue_join: u32,
    /// Payment provider webhooks: per client IP.
    pub webhook: u32,
    /// Polls of one's place in a waiting room (`GET …/queue/me`): per user.
    pub queue_poll: u32,
    /// Proxies whose `X-Forwarded-For` is believed (exact IP addresses).
    pub trusted_proxies: Vec<String>,
}

/// How outgoing mail leaves the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Send over SMTP.
    Smtp,
    /// Log the message instead of sending it (local development only).
    Log,
}

/// Transport security towards the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on loopback, tests).
    None,
}

/// `[mail]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// `smtp` or `log`.
    pub transport: MailTransport,
    /// SMTP server host.
    pub smtp_host: String,
    /// SMTP server port.
    pub smtp_port: u16,
    /// `starttls`, `tls` or `none`.
    pub smtp_tls: SmtpTls,
    /// SMTP user (`MAIL_USER`); empty means no authentication.
    pub username: String,
    /// SMTP password (`MAIL_PASS`), environment only.
    #[serde(default, serialize_with = "serialize_secret")]
    pub password: Option<SecretString>,
    /// From address; empty means the SMTP user.
    pub from: String,
}

/// `[reconcile]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSettings {
    /// Cron expression with a seconds field (`sec min hour day month weekday`); empty disables.
    pub schedule: String,
    /// Run one pass when `serve`/`all` starts.
    pub on_start: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: LogFormat,
    /// An `EnvFilter` directive (`RUST_LOG` overrides it).
    pub level: String,
}

fn serialize_secret<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(secret) if !secret.expose_secret().is_empty() => s.serialize_str("[redacted]"),
        _ => s.serialize_str(""),
    }
}

fn serialize_url_redacted<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(v))
}

/// A URL with its password replaced by `***` (for logs and `atomicseats config`).
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, which `u` can.
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "[unparseable]".to_owned(),
    }
}

/// Parses the seed's duration format (`900`, `90s`, `15m`, `12h`, `7d`) into a [`Duration`].
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3_600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Why a token secret must not sign production tokens: missing, short, a published placeholder
/// (e.g. `.env.example`'s), or too regular to be random. Generate one with
/// `openssl rand -base64 48`.
pub fn secret_weakness(secret: &str) -> Option<&'static str> {
    const PLACEHOLDERS: [&str; 8] = [
        "replace-with",
        "change-me",
        "changeme",
        "placeholder",
        "example",
        "your-secret",
        "insert-",
        "secret-secret",
    ];
    if secret.is_empty() {
        return Some(
            "required in production (set it in the environment; e.g. `openssl rand -base64 48`)",
        );
    }
    if secret.len() < 32 {
        return Some("at least 32 bytes in production (e.g. `openssl rand -base64 48`)");
    }
    let lower = secret.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return Some(
            "is a published placeholder; generate a random one (e.g. `openssl rand -base64 48`)",
        );
    }
    // Shannon entropy per byte: random hex has 4 bits, base64 6; a word or a repeated pattern
    // far less.
    let mut counts = [0u32; 256];
    for b in secret.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = secret.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum();
    let distinct = counts.iter().filter(|c| **c > 0).count();
    if distinct < 12 || entropy < 3.3 {
        return Some("too regular to be random; generate one (e.g. `openssl rand -base64 48`)");
    }
    None
}

/// Maps the seed's environment variable names onto our keys (lower precedence than
/// `ATOMICSEATS__*`). `REDIS_HOST`/`REDIS_PORT` become `redis.url`.
fn seed_overrides(env: &HashMap<String, String>) -> Vec<(&'static str, String)> {
    const DIRECT: &[(&str, &str)] = &[
        ("DATABASE_URL", "database.url"),
        ("PORT", "http.port"),
        ("KAFKA_BROKER", "kafka.brokers"),
        ("ACCESS_TOKEN_SECRET", "auth.access_token_secret"),
        ("REFRESH_TOKEN_SECRET", "auth.refresh_token_secret"),
        ("ACCESS_TOKEN_EXPIRY", "auth.access_token_ttl"),
        ("REFRESH_TOKEN_EXPIRY", "auth.refresh_token_ttl"),
        ("MAIL_USER", "mail.username"),
        ("MAIL_PASS", "mail.password"),
        ("REDIS_PASSWORD", "redis.password"),
    ];
    let mut out = Vec::new();
    for (var, key) in DIRECT {
        if let Some(v) = env.get(*var).filter(|v| !v.is_empty()) {
            out.push((*key, v.clone()));
        }
    }
    if let Some(host) = env.get("REDIS_HOST").filter(|v| !v.is_empty()) {
        let port = env
            .get("REDIS_PORT")
            .filter(|v| !v.is_empty())
            .map_or("6379", String::as_str);
        out.push(("redis.url", format!("redis://{host}:{port}")));
    }
    out
}

impl Settings {
    /// Loads the layered configuration from `config_dir` and the given environment variables
    /// (pass `std::env::vars().collect()` in production; tests pass their own map), then
    /// validates it.
    pub fn load(config_dir: &Path, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let environment: Environment = env
            .get(ENV_SELECTOR)
            .map_or(Ok(Environment::Local), |v| v.parse())?;

        // The defaults are compiled in, so a binary without its config directory still starts;
        // a `default.toml` on disk (an operator's edited copy) replaces them.
        let default_file = config_dir.join("default.toml");
        let builder = config::Config::builder();
        let builder = if default_file.is_file() {
            builder.add_source(config::File::from(default_file))
        } else {
            builder.add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
        };
        let files = builder
            .add_source(
                config::File::from(config_dir.join(format!("{}.toml", environment.as_str())))
                    .required(false),
            )
            .build()?;
        for key in SECRET_KEYS {
            if files.get_string(key).is_ok_and(|v| !v.is_empty()) {
                return Err(ConfigError::invalid(
                    key,
                    "secrets are read only from the environment, remove it from the config file",
                ));
            }
        }

        let mut builder = config::Config::builder().add_source(files);
        for (key, value) in seed_overrides(env) {
            builder = builder.set_override(key, value)?;
        }
        let structured = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("rate_limit.trusted_proxies")
            .with_list_parse_key("http.cors_allowed_origins")
            .source(Some(env.clone().into_iter().collect()));
        // `set_override` wins over sources, so apply the structured variables as overrides too,
        // after the seed names: `ATOMICSEATS__*` has the last word.
        for (key, value) in config::Source::collect(&structured)? {
            builder = builder.set_override(key, value)?;
        }

        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.environment = environment;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: URLs parse, the cron schedule parses, sizes are positive,
    /// secrets exist in production.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let db = url::Url::parse(&self.database.url)
            .map_err(|e| ConfigError::invalid("database.url", e.to_string()))?;
        if !matches!(db.scheme(), "postgres" | "postgresql") {
            return Err(ConfigError::invalid(
                "database.url",
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        if !self.redis.url.is_empty() {
            let r = url::Url::parse(&self.redis.url)
                .map_err(|e| ConfigError::invalid("redis.url", e.to_string()))?;
            if !matches!(r.scheme(), "redis" | "rediss") {
                return Err(ConfigError::invalid(
                    "redis.url",
                    "must be a redis:// or rediss:// URL",
                ));
            }
        }
        if !matches!(
            self.kafka.assignment_strategy.as_str(),
            "cooperative-sticky" | "range" | "roundrobin"
        ) {
            return Err(ConfigError::invalid(
                "kafka.assignment_strategy",
                "must be \"cooperative-sticky\", \"range\" or \"roundrobin\"",
            ));
        }
        if self.queue.kind == QueueKind::Kafka && self.kafka.brokers.trim().is_empty() {
            return Err(ConfigError::invalid(
                "kafka.brokers",
                "required when queue.kind = \"kafka\"",
            ));
        }
        for (key, value) in [
            ("database.pool_size", self.database.pool_size),
            ("redis.pool_size", self.redis.pool_size),
            ("http.body_limit_bytes", self.http.body_limit_bytes),
            ("http.max_header_bytes", self.http.max_header_bytes),
            ("http.max_uri_bytes", self.http.max_uri_bytes),
            ("events.page_size_default", self.events.page_size_default),
            ("booking.batch_max", self.booking.batch_max),
            ("booking.shards", self.booking.shards),
            ("booking.queue_capacity", self.booking.queue_capacity),
            ("booking.pipeline_depth", self.booking.pipeline_depth),
            ("events.page_size_max", self.events.page_size_max),
            (
                "waiting_room.tick_ms",
                usize::try_from(self.waiting_room.tick_ms).unwrap_or(1),
            ),
            (
                "waiting_room.poll_budget_per_sec",
                self.waiting_room.poll_budget_per_sec as usize,
            ),
            (
                "waiting_room.max_poll_secs",
                usize::try_from(self.waiting_room.max_poll_secs).unwrap_or(1),
            ),
            (
                "waiting_room.max_streams_per_user",
                self.waiting_room.max_streams_per_user as usize,
            ),
            (
                "waiting_room.max_streams_per_ip",
                self.waiting_room.max_streams_per_ip as usize,
            ),
            (
                "waiting_room.stream_max_secs",
                usize::try_from(self.waiting_room.stream_max_secs).unwrap_or(1),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if !self.reconcile.schedule.trim().is_empty() {
            cron::Schedule::from_str(&self.reconcile.schedule).map_err(|e| {
                ConfigError::invalid(
                    "reconcile.schedule",
                    format!(
                        "{e} (cron with a seconds field: `sec min hour day month weekday`, e.g. `0 0 * * * *`)"
                    ),
                )
            })?;
        }
        for (key, value) in [
            ("auth.access_token_ttl", &self.auth.access_token_ttl),
            ("auth.refresh_token_ttl", &self.auth.refresh_token_ttl),
            ("auth.login_window", &self.auth.login_window),
            ("waiting_room.opens_before", &self.waiting_room.opens_before),
            (
                "waiting_room.admission_ttl",
                &self.waiting_room.admission_ttl,
            ),
        ] {
            if parse_duration(value).is_none() {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{value}` is not a duration like 900, 15m, 12h or 7d"),
                ));
            }
        }
        for ip in &self.rate_limit.trusted_proxies {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(ConfigError::invalid(
                    "rate_limit.trusted_proxies",
                    format!("`{ip}` is not an IP address"),
                ));
            }
        }
        if url::Url::parse(&self.http.public_url)
            .map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
            || self.http.public_url.ends_with('/')
        {
            return Err(ConfigError::invalid(
                "http.public_url",
                format!(
                    "`{}` is not a URL like https://tickets.example.com (no trailing slash)",
                    self.http.public_url
                ),
            ));
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(ConfigError::invalid(
                "metrics.listen",
                format!(
                    "`{}` is not an address like 127.0.0.1:9464",
                    self.metrics.listen
                ),
            ));
        }
        for origin in &self.http.cors_allowed_origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.path() == "/"
                    && !origin.ends_with('/')
                    && u.query().is_none()
            });
            if !ok {
                return Err(ConfigError::invalid(
                    "http.cors_allowed_origins",
                    format!("`{origin}` is not an origin like https://shop.example.com"),
                ));
            }
        }
        if self.http.booking_timeout_ms < 31_000 || self.http.request_timeout_ms < 100 {
            return Err(ConfigError::invalid(
                if self.http.request_timeout_ms < 100 {
                    "http.request_timeout_ms"
                } else {
                    "http.booking_timeout_ms"
                },
                "request_timeout_ms must be at least 100 and booking_timeout_ms at least 31000 (longer than the longest Prefer: wait)",
            ));
        }
        let c = &self.checkout;
        if c.hold_min_secs == 0
            || c.hold_min_secs > c.hold_max_secs
            || c.hold_max_secs > 86_400
            || !(c.hold_min_secs..=c.hold_max_secs).contains(&c.hold_default_secs)
        {
            return Err(ConfigError::invalid(
                "checkout.hold_default_secs",
                "needs 0 < hold_min_secs <= hold_default_secs <= hold_max_secs <= 86400",
            ));
        }
        if c.sweep_ms == 0 {
            return Err(ConfigError::invalid(
                "checkout.sweep_ms",
                "must be greater than 0",
            ));
        }
        if !(1..=50_000).contains(&c.sweep_page) {
            return Err(ConfigError::invalid(
                "checkout.sweep_page",
                "must be between 1 and 50000",
            ));
        }
        let p = &self.payments;
        if p.currency.len() != 3 || !p.currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(ConfigError::invalid(
                "payments.currency",
                "must be a lower-case ISO 4217 code like eur",
            ));
        }
        if url::Url::parse(&p.stripe_api_base)
            .map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
            || p.stripe_api_base.ends_with('/')
        {
            return Err(ConfigError::invalid(
                "payments.stripe_api_base",
                "must be a URL like https://api.stripe.com (no trailing slash)",
            ));
        }
        if p.webhook_tolerance_secs == 0 || p.timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "payments.webhook_tolerance_secs",
                "webhook_tolerance_secs and timeout_ms must be greater than 0",
            ));
        }
        let w = &self.waiting_room;
        if !(w.seats_per_buyer.is_finite() && (1.0..=10.0).contains(&w.seats_per_buyer)) {
            return Err(ConfigError::invalid(
                "waiting_room.seats_per_buyer",
                "must be from 1 to 10",
            ));
        }
        if !(w.overadmit.is_finite() && (1.0..=10.0).contains(&w.overadmit)) {
            return Err(ConfigError::invalid(
                "waiting_room.overadmit",
                "must be from 1 to 10",
            ));
        }
        if self.events.max_capacity <= 0 {
            return Err(ConfigError::invalid(
                "events.max_capacity",
                "must be greater than 0",
            ));
        }
        if self.events.page_size_default > self.events.page_size_max {
            return Err(ConfigError::invalid(
                "events.page_size_default",
                "must not exceed events.page_size_max",
            ));
        }
        if !(4..=31).contains(&self.auth.bcrypt_cost) {
            return Err(ConfigError::invalid(
                "auth.bcrypt_cost",
                "must be between 4 and 31",
            ));
        }
        if self.environment == Environment::Production {
            for (key, secret) in [
                ("auth.access_token_secret", &self.auth.access_token_secret),
                ("auth.refresh_token_secret", &self.auth.refresh_token_secret),
            ] {
                let value = secret.as_ref().map_or("", |s| s.expose_secret());
                if let Some(why) = secret_weakness(value) {
                    return Err(ConfigError::invalid(key, why));
                }
            }
            if let (Some(a), Some(r)) = (
                &self.auth.access_token_secret,
                &self.auth.refresh_token_secret,
            ) && a.expose_secret() == r.expose_secret()
            {
                return Err(ConfigError::invalid(
                    "auth.refresh_token_secret",
                    "must differ from auth.access_token_secret (a refresh token must never pass as an access token)",
                ));
            }
            if self.mail.transport == MailTransport::Log {
                return Err(ConfigError::invalid(
                    "mail.transport",
                    "`log` only logs mail; production needs `smtp`",
                ));
            }
            if self.booking.dry_run {
                return Err(ConfigError::invalid(
                    "booking.dry_run",
                    "decides nothing (benchmarking only); never in production",
                ));
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        // Serialising plain data to a TOML value cannot fail for this tree; fall back to Debug
        // rather than panicking if a future field breaks that.
        match serde_json::to_value(self) {
            Ok(v) => render_toml(&v),
            Err(_) => "# configuration could not be rendered".to_owned(),
        }
    }
}

/// Renders a two-level JSON object as TOML sections (the shape of [`Settings`]).
fn render_toml(v: &serde_json::Value) -> String {
    let mut top = String::new();
    let mut sections = String::new();
    if let Some(obj) = v.as_object() {
        for (k, v) in obj {
            match v {
                serde_json::Value::Object(inner) => {
                    sections.push_str(&format!("\n[{k}]\n"));
                    for (ik, iv) in inner {
                        sections.push_str(&format!("{ik} = {iv}\n"));
                    }
                }
                other => top.push_str(&format!("{k} = {other}\n")),
            }
        }
    }
    top + &sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_the_seed_format() {
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("3600"), Some(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration("15x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:hunter2@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    }
}

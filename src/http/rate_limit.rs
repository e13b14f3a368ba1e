//! Rate limiting: one interface, two backends chosen by configuration.
//!
//! - **In-process** (governor, GCRA) when `redis.url` is empty: the single-node install.
//! - **Redis** when it is set: the same GCRA in one Lua script per check (atomic; the seed ran
//!   four separate commands), on Redis server time, so every API node shares the limits.
//!
//! Each route class has its own bucket: `auth` (register, login, refresh) keyed by client IP;
//! `booking`, `write` and `read` keyed by user (by IP when the caller is anonymous). A class with
//! limit 0 is off; `rate_limit.enabled = false` turns them all off (benchmarks). Over the limit:
//! 429 with `Retry-After`; every limited response carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the bucket is full again).
//!
//! The client IP is the TCP peer, or the last `X-Forwarded-For` address that is not a trusted
//! proxy when the peer is one (`rate_limit.trusted_proxies`). If Redis fails, the check fails
//! open (logged, counted in `rate_limit_backend_errors_total`): an outage of the limiter must not
//! take the API down.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, ResponseError, web};
use governor::Quota;
use governor::clock::QuantaClock;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

/// A keyed governor limiter that reports its state (for the `RateLimit-*` headers).
type KeyedLimiter = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    QuantaClock,
    StateInformationMiddleware,
>;

use crate::config::RateLimitSettings;
use crate::error::ApiError;
use crate::state::AppState;

/// A class of routes with its own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Register, login, refresh: per client IP.
    Auth,
    /// Booking and cancelling: per user.
    Booking,
    /// Other writes (events): per user.
    Write,
    /// Reads: per user.
    Read,
    /// Joining a waiting room: per client IP (one account cannot be made many).
    Join,
    /// A payment provider's webhook: per client IP (signature checks cost CPU before they
    /// can refuse anything).
    Webhook,
    /// Polling one's place in a waiting room: per user.
    Poll,
}

/// The configured limit of `class`.
fn limit_of(settings: &RateLimitSettings, class: Class) -> u32 {
    match class {
        Class::Auth => settings.auth,
        Class::Booking => settings.booking,
        Class::Write => settings.write,
        Class::Read => settings.read,
        Class::Join => settings.queue_join,
        Class::Webhook => settings.webhook,
        Class::Poll => settings.queue_poll,
    }
}

impl Class {
    /// Name used in keys, metrics and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Booking => "booking",
            Self::Write => "write",
            Self::Join => "queue_join",
            Self::Webhook => "webhook",
            Self::Poll => "queue_poll",
            Self::Read => "read",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may pass.
    pub allowed: bool,
    /// The class's limit per window.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until a request would pass (0 when allowed).
    pub retry_after_secs: u64,
}

/// GCRA on Redis, atomic. KEYS[1] = bucket; ARGV = window in ms, limit. Returns
/// {allowed, remaining, reset_ms, retry_after_ms}. The key expires when the bucket is full.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if now < allow_at then
  local remaining = 0
  return {0, remaining, math.ceil(tat - now), math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
local remaining = math.floor((window - (new_tat - now)) / interval)
return {1, remaining, math.ceil(new_tat - now), 0}
";

enum Backend {
    Memory(Vec<(Class, Arc<KeyedLimiter>)>),
    Redis {
        conn: deadpool_redis::redis::aio::ConnectionManager,
        script: Arc<deadpool_redis::redis::Script>,
        prefix: String,
    },
}

/// The limiter shared by the API workers.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RateLimitSettings,
    backend: Backend,
    trusted: Vec<IpAddr>,
    /// Checks since start, for pruning the in-process state every [`PRUNE_EVERY`] checks.
    checks: std::sync::atomic::AtomicU64,
    /// Whether the "behind a proxy without trusted_proxies" warning was logged.
    warned_proxy: std::sync::atomic::AtomicBool,
}

/// In-process limiters forget the keys whose buckets are full again every this many checks, so
/// their memory does not grow with every address ever seen.
const PRUNE_EVERY: u64 = 4096;

impl RateLimiter {
    /// Builds the limiter: Redis-backed (on the shared multiplexed connection) when `redis` is
    /// given, in-process otherwise.
    pub fn new(
        settings: &RateLimitSettings,
        redis: Option<(deadpool_redis::redis::aio::ConnectionManager, String)>,
    ) -> anyhow::Result<Self> {
        let trusted = settings
            .trusted_proxies
            .iter()
            .map(|s| {
                s.parse::<IpAddr>().map_err(|e| {
                    anyhow::anyhow!("`rate_limit.trusted_proxies`: `{s}` is not an IP: {e}")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let backend = match redis {
            Some((conn, prefix)) => Backend::Redis {
                conn,
                script: Arc::new(deadpool_redis::redis::Script::new(GCRA_LUA)),
                prefix,
            },
            None => {
                let mut limiters = Vec::new();
                for class in [
                    Class::Auth,
                    Class::Booking,
                    Class::Write,
                    Class::Read,
                    Class::Join,
                    Class::Webhook,
                    Class::Poll,
                ] {
                    let limit = limit_of(settings, class);
                    if let Some(burst) = NonZeroU32::new(limit) {
                        let period = Duration::from_secs(settings.window_secs.max(1)) / burst.get();
                        let quota = Quota::with_period(period)
                            .ok_or_else(|| anyhow::anyhow!("rate limit period is zero"))?
                            .allow_burst(burst);
                        limiters.push((
                            class,
                            Arc::new(
                                governor::RateLimiter::keyed(quota)
                                    .with_middleware::<StateInformationMiddleware>(),
                            ),
                        ));
                    }
                }
                Backend::Memory(limiters)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                backend,
                trusted,
                checks: std::sync::atomic::AtomicU64::new(0),
                warned_proxy: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Checks (and counts) one request of `class` for `key`. `None` when the class is off.
    pub async fn check(&self, class: Class, key: &str) -> Option<Decision> {
        let settings = &self.inner.settings;
        let limit = limit_of(settings, class);
        if !settings.enabled || limit == 0 {
            return None;
        }
        let window = Duration::from_secs(settings.window_secs.max(1));
        match &self.inner.backend {
            Backend::Memory(limiters) => {
                let n = self
                    .inner
                    .checks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n % PRUNE_EVERY == PRUNE_EVERY - 1 {
                    self.prune();
                }
                let limiter = limiters.iter().find(|(c, _)| *c == class)?.1.clone();
                let interval = window / limit;
                match limiter.check_key(&key.to_owned()) {
                    Ok(snapshot) => {
                        let remaining = snapshot.remaining_burst_capacity();
                        Some(Decision {
                            allowed: true,
                            limit,
                            remaining,
                            reset_secs: (interval * (limit - remaining)).as_secs_f64().ceil()
                                as u64,
                            retry_after_secs: 0,
                        })
                    }
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(DefaultClock::default().now());
                        Some(Decision {
                            allowed: false,
                            limit,
                            remaining: 0,
                            reset_secs: (interval * limit).as_secs_f64().ceil() as u64,
                            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                        })
                    }
                }
            }
            Backend::Redis {
                conn,
                script,
                prefix,
            } => {
                let redis_key = crate::redis::keys::rate_limit(prefix, class.as_str(), key);
                let result: anyhow::Result<(i64, i64, i64, i64)> = async {
                    let mut conn = conn.clone();
                    let r = script
                        .key(redis_key)
                        .arg(window.as_millis() as u64)
                        .arg(limit)
                        .invoke_async(&mut conn)
                        .await?;
                    Ok(r)
                }
                .await;
                match result {
                    Ok((allowed, remaining, reset_ms, retry_ms)) => Some(Decision {
                        allowed: allowed == 1,
                        limit,
                        remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
                        reset_secs: (reset_ms.max(0) as u64).div_ceil(1000),
                        retry_after_secs: (retry_ms.max(0) as u64)
                            .div_ceil(1000)
                            .max(u64::from(allowed != 1)),
                    }),
                    Err(e) => {
                        metrics::counter!("rate_limit_backend_errors_total").increment(1);
                        tracing::warn!(error = %e, "rate limiter backend failed; allowing the request");
                        None
                    }
                }
            }
        }
    }

    /// Forgets in-process keys whose buckets are full again (nothing to remember about them).
    pub fn prune(&self) {
        if let Backend::Memory(limiters) = &self.inner.backend {
            for (_, limiter) in limiters {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }

    /// Keys the in-process limiters hold (0 with Redis).
    pub fn tracked_keys(&self) -> usize {
        match &self.inner.backend {
            Backend::Memory(limiters) => limiters.iter().map(|(_, l)| l.len()).sum(),
            Backend::Redis { .. } => 0,
        }
    }

    /// The client IP of `req`, honouring `X-Forwarded-For` only from trusted proxies.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.inner.trusted.contains(&peer) {
            self.warn_if_proxied(peer, req);
            return Some(peer);
        }
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // Walk from the right (the hop closest to us): the first address that is not one of our
        // proxies is the client. Anything left of it could be forged.
        let mut client = peer;
        for hop in forwarded.rsplit(',').map(str::trim) {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.inner.trusted.contains(&ip) => client = ip,
                Ok(ip) => return Some(ip),
                Err(_) => break,
            }
        }
        Some(client)
    }
}

impl RateLimiter {
    /// Logs once when requests come through what looks like a reverse proxy (a loopback or
    /// private peer sending `X-Forwarded-For`) while no proxy is trusted: every client then
    /// shares the proxy's bucket (5 logins a minute for the whole site).
    fn warn_if_proxied(&self, peer: IpAddr, req: &HttpRequest) {
        if !self.inner.trusted.is_empty() || !req.headers().contains_key("x-forwarded-for") {
            return;
        }
        let proxy_like = match peer {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local(),
        };
        if proxy_like
            && !self
                .inner
                .warned_proxy
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            metrics::counter!("rate_limit_untrusted_proxy_total").increment(1);
            tracing::warn!(
                peer = %peer,
                "requests arrive through a proxy (X-Forwarded-For from a private address) but \
                 rate_limit.trusted_proxies is empty: every client shares the proxy's rate-limit \
                 bucket; list the proxy's address in rate_limit.trusted_proxies"
            );
        }
    }
}

fn header(res_headers: &mut actix_web::http::header::HeaderMap, name: &'static str, v: u64) {
    res_headers.insert(HeaderName::from_static(name), HeaderValue::from(v));
}

async fn limit(
    class: Class,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let limiter = state.rate_limiter();
    let key = match class {
        Class::Auth | Class::Join | Class::Webhook => None,
        _ => crate::http::auth::authenticate(req.request())
            .ok()
            .map(|u| format!("user:{}", u.id)),
    }
    .or_else(|| {
        limiter
            .client_ip(req.request())
            .map(|ip| format!("ip:{ip}"))
    })
    .unwrap_or_else(|| "ip:unknown".to_owned());

    let Some(decision) = limiter.check(class, &key).await else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if !decision.allowed {
        metrics::counter!("rate_limited_total", "class" => class.as_str()).increment(1);
        let mut resp = ApiError::TooManyRequests {
            retry_after_secs: decision.retry_after_secs,
        }
        .error_response();
        let h = resp.headers_mut();
        header(h, "ratelimit-limit", u64::from(decision.limit));
        header(h, "ratelimit-remaining", 0);
        header(h, "ratelimit-reset", decision.reset_secs);
        return Ok(req.into_response(resp));
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    let h = res.headers_mut();
    header(h, "ratelimit-limit", u64::from(decision.limit));
    header(h, "ratelimit-remaining", u64::from(decision.remaining));
    header(h, "ratelimit-reset", decision.reset_secs);
    Ok(res)
}

/// Middleware: the `auth` class.
pub async fn auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Auth, req, next).await
}

/// Middleware: the `booking` class.
pub async fn booking(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Booking, req, next).await
}

/// Middleware: the `write` class.
pub async fn write(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Write, req, next).await
}

/// Middleware: the `read` class.
pub async fn read(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Read, req, next).await
}

/// Middleware: the `queue_join` class.
pub async fn join(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Join, req, next).await
}

/// Middleware: the `queue_poll` class.
pub async fn poll(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Poll, req, next).await
}

/// Middleware: the `webhook` class.
pub async fn webhook(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    limit(Class::Webhook, req, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(window_secs: u64) -> RateLimitSettings {
        RateLimitSettings {
            enabled: true,
            window_secs,
            auth: 5,
            booking: 5,
            write: 5,
            read: 30,
            queue_join: 5,
            webhook: 5,
            queue_poll: 5,
            trusted_proxies: Vec::new(),
        }
    }

    #[tokio::test]
    async fn in_process_limiter_forgets_addresses_whose_buckets_refilled() {
        let limiter = RateLimiter::new(&settings(1), None).unwrap();
        for i in 0..500 {
            limiter
                .check(Class::Auth, &format!("ip:10.0.{}.{}", i / 256, i % 256))
                .await;
        }
        assert_eq!(limiter.tracked_keys(), 500);
        // One window later every bucket is full again: nothing left worth remembering.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        limiter.prune();
        assert_eq!(limiter.tracked_keys(), 0);
    }
}

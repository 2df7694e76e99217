//! The fleet-wide store of rate limits: the same sliding-window counter as the in-process store,
//! kept in Redis so that every gateway instance of a fleet counts against one limit.
//!
//! One decision is one round trip: a Lua script (run with `EVALSHA`, loaded on first use) reads
//! the previous and current window counters, decides, and counts an allowed request, atomically.
//! Windows follow Redis's clock (`TIME`), so instances need no clock agreement. Counter keys are
//! `<prefix>:rl:<limit>:<hash of the client key>:<window>` and expire after two periods. When Redis
//! errs or does not answer within `timeout`, the configured failure policy decides (allow by
//! default) and the error is counted.

use super::rate_window::{retry_after, Decision};
use crate::config::Problem;
use crate::observability::metrics::metrics;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// `redis:` — the Redis server of fleet-wide limits (standalone, or a primary).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://` for TLS.
    pub url: String,
    /// How long one decision may take before the failure policy applies (default 50ms).
    #[serde(default)]
    pub timeout: Option<String>,
    /// What a decision is when Redis errs or is too slow: `allow` (fail open, the default) or
    /// `deny` (fail closed: 503 with `Retry-After`).
    #[serde(default)]
    pub on_error: FailPolicy,
    /// Prefix of every key the gateway writes (default `mcpgate`).
    #[serde(default)]
    pub key_prefix: Option<String>,
}

/// The decision when the store is unavailable.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailPolicy {
    /// Let the request through (fail open).
    #[default]
    Allow,
    /// Refuse the request with 503 (fail closed).
    Deny,
}

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local index = math.floor(now / period)
local fraction = (now % period) / period
local current_key = KEYS[1] .. ':' .. index
local previous = tonumber(redis.call('GET', KEYS[1] .. ':' .. (index - 1)) or '0')
local current = tonumber(redis.call('GET', current_key) or '0')
local allowed = 0
if previous * (1 - fraction) + current + 1 <= limit then
  allowed = 1
  current = redis.call('INCR', current_key)
  if current == 1 then redis.call('PEXPIRE', current_key, period * 2 + 1000) end
end
return {allowed, current, previous, math.floor(fraction * 1000000)}
"#;

/// A connection to the Redis of fleet-wide limits.
pub struct RedisStore {
    client: redis::Client,
    manager_cfg: ConnectionManagerConfig,
    /// Made on first use, inside the runtime that serves requests (it spawns its driver there).
    connection: std::sync::OnceLock<ConnectionManager>,
    script: redis::Script,
    timeout: Duration,
    /// The failure policy.
    pub on_error: FailPolicy,
    prefix: String,
}

/// Why a decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer in time.
    #[error("redis did not answer within the timeout")]
    Timeout,
    /// Redis answered with an error or the connection failed.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

impl StoreError {
    /// Metric label value.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Timeout => "timeout",
            StoreError::Redis(e) if e.is_timeout() => "timeout",
            StoreError::Redis(e) if e.is_connection_refusal() || e.is_io_error() => "connection",
            StoreError::Redis(_) => "error",
        }
    }
}

impl RedisStore {
    /// Builds the (lazy) connection; nothing is sent until the first decision.
    pub fn compile(cfg: &RedisConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let timeout = match cfg.timeout.as_deref().map(crate::config::parse_duration) {
            None => Duration::from_millis(50),
            Some(Ok(d)) if !d.is_zero() => d,
            Some(Ok(_)) => return Err(vec![Problem::new(format!("{at}.timeout"), "must be > 0")]),
            Some(Err(m)) => return Err(vec![Problem::new(format!("{at}.timeout"), m)]),
        };
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| vec![Problem::new(format!("{at}.url"), e.to_string())])?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        Ok(RedisStore {
            client,
            manager_cfg,
            connection: std::sync::OnceLock::new(),
            script: redis::Script::new(SCRIPT),
            timeout,
            on_error: cfg.on_error,
            prefix: cfg.key_prefix.clone().unwrap_or_else(|| "mcpgate".into()),
        })
    }

    /// The base key of `limit` for a client key (hashed: bounded length, no client bytes).
    pub fn key(&self, limit: &str, client_key: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(client_key);
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:rl:{limit}:{hex}", self.prefix)
    }

    /// One decision: counts the request under `key` if `limit` per `period` allows it.
    pub async fn acquire(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
    ) -> Result<Decision, StoreError> {
        let m = metrics();
        let started = Instant::now();
        let period_ms = (period.as_millis() as u64).max(1);
        let mut conn = match self.connection.get() {
            Some(c) => c.clone(),
            None => {
                let made = ConnectionManager::new_lazy_with_config(
                    self.client.clone(),
                    self.manager_cfg.clone(),
                )
                .map_err(|e| self.failed(StoreError::Redis(e)))?;
                self.connection.get_or_init(|| made).clone()
            }
        };
        let mut call = self.script.key(key);
        call.arg(period_ms).arg(limit);
        let result = tokio::time::timeout(
            self.timeout,
            call.invoke_async::<(u64, u64, u64, u64)>(&mut conn),
        )
        .await;
        m.redis_duration.observe(started.elapsed().as_secs_f64());
        let (allowed, current, previous, ppm) = match result {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(self.failed(StoreError::Redis(e))),
            Err(_) => return Err(self.failed(StoreError::Timeout)),
        };
        let fraction = ppm as f64 / 1_000_000.0;
        let reset = (((1.0 - fraction) * period_ms as f64 / 1000.0).ceil() as u64).max(1);
        let estimate = previous as f64 * (1.0 - fraction) + current as f64;
        Ok(if allowed == 1 {
            Decision {
                allowed: true,
                remaining: (limit as f64 - estimate).max(0.0).floor() as u64,
                retry_after: 0,
                reset,
            }
        } else {
            Decision {
                allowed: false,
                remaining: 0,
                retry_after: retry_after(
                    previous as f64,
                    current as f64,
                    limit,
                    fraction,
                    period_ms,
                ),
                reset,
            }
        })
    }

    fn failed(&self, e: StoreError) -> StoreError {
        metrics().redis_error(e.reason());
        // While Redis is down every decision fails: log one line per 10 s, count them all.
        static LAST_LOG: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
        if let Ok(mut last) = LAST_LOG.lock() {
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                *last = Some(Instant::now());
                tracing::warn!(error = %e, on_error = ?self.on_error, "rate-limit store unavailable (see mcpgate_redis_errors_total)");
            }
        }
        e
    }
}

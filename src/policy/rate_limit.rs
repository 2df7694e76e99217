//! Rate limits: `requests` per `period`, per key (see `limit_key`), in process or fleet-wide on
//! Redis. Several limits may apply to one request; all must allow it. A refused request gets 429
//! with `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit` headers; allowed responses
//! carry the headers of the tightest limit when `headers: true`.
//!
//! Semantics (both stores): a sliding window of one period, estimated from two fixed windows
//! (see `rate_window`). Up to `requests` may arrive at once (the burst is the limit itself); after
//! that, requests are allowed again as the window slides, at `requests` per `period` on average.
//! Refused requests are not counted.

use super::limit_key::{KeyFacts, KeyValue, LimitKey, MissingKey};
use super::rate_window::{Decision, SlidingWindow};
use super::redis_store::{FailPolicy, RedisStore};
use super::tools::Glob;
use crate::config::Problem;
use crate::error::GatewayError;
use crate::observability::metrics::LimitMetrics;
use crate::policy::shared::shared;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// One entry of `rate_limits:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Name, unique per endpoint (a metric label and the policy name in headers).
    pub name: String,
    /// Requests allowed per period (also the most that may arrive at once).
    pub requests: u64,
    /// The period, e.g. `1s`, `1m`, `1h` (at least 1s).
    pub period: String,
    /// What is counted together (default `client_ip`).
    #[serde(default)]
    pub key: LimitKey,
    /// Requests without a value for the key: `reject` (400, the default) or `shared`.
    #[serde(default)]
    pub on_missing_key: MissingKey,
    /// `memory` (this instance, the default) or `redis` (the fleet, through `redis:`).
    #[serde(default)]
    pub store: StoreKind,
    /// About how many keys are active in one period (sizes the in-process counters; default
    /// 4096, at 64 bytes each).
    #[serde(default)]
    pub tracked_keys: Option<usize>,
    /// Send `RateLimit-Policy` / `RateLimit` on allowed responses too (default false).
    #[serde(default)]
    pub headers: bool,
    /// Per-tool limit: applies only to `tools/call` of these tools (names or globs), counting
    /// each tool apart (turns JSON-RPC inspection on).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
}

/// Where the counters live.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// In this process.
    #[default]
    Memory,
    /// In the Redis of `redis:`, shared by the fleet.
    Redis,
}

enum Store {
    Memory(Arc<SlidingWindow>),
    Redis(Arc<RedisStore>),
}

/// One compiled limit.
pub struct RateLimit {
    name: String,
    requests: u64,
    period: Duration,
    key: LimitKey,
    missing: MissingKey,
    store: Store,
    headers: bool,
    tools: Option<Vec<Glob>>,
    metrics: LimitMetrics,
}

/// The rate limits of an endpoint, in config order.
#[derive(Clone, Default)]
pub struct RateLimits {
    limits: Arc<Vec<RateLimit>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.limits.iter().map(|l| l.name.as_str()).collect();
        f.debug_struct("RateLimits")
            .field("limits", &names)
            .finish()
    }
}

/// The quota to report on an allowed response.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    /// `RateLimit-Policy` value.
    pub policy: String,
    /// `RateLimit` value.
    pub state: String,
}

impl Quota {
    /// Adds `RateLimit-Policy` and `RateLimit` to an allowed response.
    pub fn apply(&self, resp: &mut pingora::http::ResponseHeader) -> pingora::Result<()> {
        resp.insert_header("RateLimit-Policy", self.policy.as_str())?;
        resp.insert_header("RateLimit", self.state.as_str())
    }
}

/// What compiling limits needs from the rest of the config.
pub struct LimitContext<'a> {
    /// The endpoint's name (the limiter state is per endpoint).
    pub endpoint: &'a str,
    /// The Redis store, when `redis:` is configured.
    pub redis: Option<Arc<RedisStore>>,
}

impl RateLimits {
    /// Compiles `rate_limits:`; the in-process counters of a limit whose settings did not change
    /// since the last snapshot are kept.
    pub fn compile(
        list: &[RateLimitConfig],
        cx: &LimitContext<'_>,
        at: &str,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut limits = Vec::with_capacity(list.len());
        for (i, cfg) in list.iter().enumerate() {
            let here = format!("{at}[{i}]");
            problems.extend(crate::config::name_used_before(
                list[..i].iter().map(|o| o.name.as_str()),
                &cfg.name,
                &here,
            ));
            match compile_one(cfg, cx, &here) {
                Ok(l) => limits.push(l),
                Err(mut p) => problems.append(&mut p),
            }
        }
        if problems.is_empty() {
            Ok(RateLimits {
                limits: Arc::new(limits),
            })
        } else {
            Err(problems)
        }
    }

    /// Whether any limit is configured.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Whether a limit counts per tool (inspection needed).
    pub fn per_tool(&self) -> bool {
        self.limits.iter().any(|l| l.tools.is_some())
    }

    /// Decides for one request: `Ok(quota to report)` or the refusal. Counts the request in every
    /// limit when all allow it; gives back in-process counts when a later limit refuses.
    pub async fn check(&self, facts: &KeyFacts<'_>) -> Result<Option<Quota>, GatewayError> {
        let mut counted: Vec<(&SlidingWindow, KeyValue)> = Vec::new();
        let mut report: Option<(&RateLimit, Decision)> = None;
        for limit in self.limits.iter() {
            // A limit counts the request once; a per-tool limit once per matching tool called.
            let whole = limit.tools.is_none().then_some(None);
            let per_tool = facts
                .tools
                .iter()
                .filter(|t| {
                    limit
                        .tools
                        .as_ref()
                        .is_some_and(|g| g.iter().any(|g| g.matches(t)))
                })
                .map(|t| Some(*t));
            for tool in whole.into_iter().chain(per_tool) {
                let Some(key) = limit.key.value(facts, limit.missing) else {
                    limit.metrics.limited("missing_key").inc();
                    return give_back(
                        &counted,
                        GatewayError::LimitKeyMissing {
                            limit: limit.name.clone(),
                            key: limit.key.describe(),
                        },
                    );
                };
                // A per-tool limit counts each tool apart.
                let key = match tool {
                    Some(t) => {
                        let mut bytes = t.as_bytes().to_vec();
                        bytes.push(0);
                        bytes.extend_from_slice(key.bytes());
                        KeyValue::Value(bytes)
                    }
                    None => key,
                };
                let decision = match &limit.store {
                    Store::Memory(window) => {
                        let d = window.acquire(&key.bytes(), limit.requests);
                        if d.allowed {
                            counted.push((window, key));
                        }
                        d
                    }
                    Store::Redis(redis) => {
                        let redis_key = redis.key(&limit.name_key(), key.bytes());
                        match redis
                            .acquire(&redis_key, limit.requests, limit.period)
                            .await
                        {
                            Ok(d) => d,
                            Err(_) if redis.on_error == FailPolicy::Allow => continue,
                            Err(_) => {
                                limit.metrics.limited("store_unavailable").inc();
                                return give_back(&counted, GatewayError::LimitStoreUnavailable);
                            }
                        }
                    }
                };
                if !decision.allowed {
                    limit.metrics.limited("rate").inc();
                    return give_back(
                        &counted,
                        GatewayError::RateLimited {
                            retry_after: decision.retry_after,
                            policy: limit.policy_header(),
                            state: limit.state_header(&decision),
                        },
                    );
                }
                let tighter = match &report {
                    Some((_, d)) => decision.remaining < d.remaining,
                    None => true,
                };
                if limit.headers && tighter {
                    report = Some((limit, decision));
                }
            }
        }
        Ok(report.map(|(l, d)| Quota {
            policy: l.policy_header(),
            state: l.state_header(&d),
        }))
    }
}

impl RateLimit {
    fn name_key(&self) -> String {
        format!("{}:{}", self.metrics.endpoint, self.name)
    }

    /// `"name";q=100;w=60` (draft-ietf-httpapi-ratelimit-headers).
    fn policy_header(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name,
            self.requests,
            self.period.as_secs().max(1)
        )
    }

    /// `"name";r=0;t=12`.
    fn state_header(&self, d: &Decision) -> String {
        let t = if d.allowed { d.reset } else { d.retry_after };
        format!("\"{}\";r={};t={}", self.name, d.remaining, t)
    }
}

fn compile_one(
    cfg: &RateLimitConfig,
    cx: &LimitContext<'_>,
    at: &str,
) -> Result<RateLimit, Vec<Problem>> {
    let mut p = Vec::new();
    if cfg.name.is_empty()
        || !cfg
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        p.push(Problem::new(
            format!("{at}.name"),
            "must be non-empty and use only letters, digits, '-', '_' and '.'",
        ));
    }
    if cfg.requests == 0 {
        p.push(Problem::new(format!("{at}.requests"), "must be at least 1"));
    }
    let period = match crate::config::parse_duration(&cfg.period) {
        Ok(d) if d >= Duration::from_secs(1) => Some(d),
        Ok(_) => {
            p.push(Problem::new(format!("{at}.period"), "must be at least 1s"));
            None
        }
        Err(m) => {
            p.push(Problem::new(format!("{at}.period"), m));
            None
        }
    };
    p.extend(cfg.key.check(at));
    let tracked = cfg.tracked_keys.unwrap_or(4096);
    if tracked == 0 || tracked > 1 << 22 {
        p.push(Problem::new(
            format!("{at}.tracked_keys"),
            "must be between 1 and 4194304",
        ));
    }
    let store = match cfg.store {
        StoreKind::Memory => period.map(|period| {
            let state_key = format!(
                "rate:{}:{}:{}:{:?}:{tracked}:{:?}",
                cx.endpoint, cfg.name, cfg.requests, period, cfg.tools
            );
            Store::Memory(shared(state_key, || SlidingWindow::new(period, tracked)))
        }),
        StoreKind::Redis => match &cx.redis {
            Some(r) => Some(Store::Redis(r.clone())),
            None => {
                p.push(Problem::new(
                    format!("{at}.store"),
                    "`redis` needs the top-level `redis:` settings (url)",
                ));
                None
            }
        },
    };
    match (store, period) {
        (Some(store), Some(period)) if p.is_empty() => Ok(RateLimit {
            metrics: LimitMetrics::new(cx.endpoint, &cfg.name),
            name: cfg.name.clone(),
            requests: cfg.requests,
            period,
            key: cfg.key.clone(),
            missing: cfg.on_missing_key,
            store,
            headers: cfg.headers,
            tools: cfg
                .tools
                .as_ref()
                .map(|list| list.iter().map(|g| Glob::new(g)).collect()),
        }),
        _ => Err(p),
    }
}

/// Refuses after giving back what earlier limits counted for this request.
fn give_back(
    counted: &[(&SlidingWindow, KeyValue)],
    e: GatewayError,
) -> Result<Option<Quota>, GatewayError> {
    for (window, key) in counted {
        window.release(&key.bytes());
    }
    Err(e)
}

//! Concurrency limits: how many requests and how many GET streams one key (a client, or the whole
//! endpoint, i.e. the upstream) may have open at once. Requests and streams are counted apart, so
//! a client holding idle SSE streams does not starve its own calls, and cannot hold thousands of
//! streams either. Counts use `pingora-limits`' in-flight counter (fixed memory; a count is
//! released when the request ends, however it ends).

use super::limit_key::{KeyFacts, LimitKey, MissingKey};
use crate::config::Problem;
use crate::error::GatewayError;
use crate::observability::metrics::LimitMetrics;
use crate::policy::shared::shared;
use pingora_limits::inflight::{Guard, Inflight};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One entry of `concurrency:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyConfig {
    /// Name, unique per endpoint (a metric label).
    pub name: String,
    /// What is counted together (default `client_ip`; `endpoint` limits the upstream as a whole).
    #[serde(default)]
    pub key: LimitKey,
    /// Requests without a value for the key: `reject` (400, the default) or `shared`.
    #[serde(default)]
    pub on_missing_key: MissingKey,
    /// Most requests open at once (POST, DELETE: everything but GET streams).
    #[serde(default)]
    pub max_requests: Option<u64>,
    /// Most GET (SSE) streams open at once.
    #[serde(default)]
    pub max_streams: Option<u64>,
}

struct Limit {
    name: String,
    key: LimitKey,
    missing: MissingKey,
    max_requests: Option<u64>,
    max_streams: Option<u64>,
    requests: Arc<Inflight>,
    streams: Arc<Inflight>,
    metrics: LimitMetrics,
}

/// The concurrency limits of an endpoint.
#[derive(Clone, Default)]
pub struct ConcurrencyLimits {
    limits: Arc<Vec<Limit>>,
}

impl std::fmt::Debug for ConcurrencyLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.limits.iter().map(|l| l.name.as_str()).collect();
        f.debug_struct("ConcurrencyLimits")
            .field("limits", &names)
            .finish()
    }
}

/// Counts held by a request until it ends.
#[derive(Default)]
pub struct Held(Vec<Guard>);

impl Held {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ConcurrencyLimits {
    /// Compiles `concurrency:`; counters of unchanged limits survive a reload.
    pub fn compile(
        list: &[ConcurrencyConfig],
        endpoint: &str,
        at: &str,
    ) -> Result<Self, Vec<Problem>> {
        let mut p = Vec::new();
        let mut limits = Vec::with_capacity(list.len());
        for (i, cfg) in list.iter().enumerate() {
            let here = format!("{at}[{i}]");
            p.extend(crate::config::name_used_before(
                list[..i].iter().map(|o| o.name.as_str()),
                &cfg.name,
                &here,
            ));
            if cfg.max_requests.is_none() && cfg.max_streams.is_none() {
                p.push(Problem::new(
                    here.clone(),
                    "set max_requests, max_streams or both",
                ));
            }
            for (field, v) in [
                ("max_requests", cfg.max_requests),
                ("max_streams", cfg.max_streams),
            ] {
                if v == Some(0) {
                    p.push(Problem::new(
                        format!("{here}.{field}"),
                        "must be at least 1",
                    ));
                }
            }
            p.extend(cfg.key.check(&here));
            let state = format!("inflight:{endpoint}:{}:{:?}", cfg.name, cfg.key);
            limits.push(Limit {
                name: cfg.name.clone(),
                key: cfg.key.clone(),
                missing: cfg.on_missing_key,
                max_requests: cfg.max_requests,
                max_streams: cfg.max_streams,
                requests: shared(format!("{state}:requests"), Inflight::new),
                streams: shared(format!("{state}:streams"), Inflight::new),
                metrics: LimitMetrics::new(endpoint, &cfg.name),
            });
        }
        if p.is_empty() {
            Ok(ConcurrencyLimits {
                limits: Arc::new(limits),
            })
        } else {
            Err(p)
        }
    }

    /// Whether any limit is configured.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Counts the request (a stream when `stream`) in every limit, or refuses it; the counts are
    /// released when the returned value is dropped.
    pub fn acquire(&self, facts: &KeyFacts<'_>, stream: bool) -> Result<Held, GatewayError> {
        let mut held = Held(Vec::with_capacity(self.limits.len()));
        for limit in self.limits.iter() {
            let (max, counter) = if stream {
                (limit.max_streams, &limit.streams)
            } else {
                (limit.max_requests, &limit.requests)
            };
            let Some(max) = max else { continue };
            let Some(key) = limit.key.value(facts, limit.missing) else {
                limit.metrics.limited("missing_key").inc();
                return Err(GatewayError::LimitKeyMissing {
                    limit: limit.name.clone(),
                    key: limit.key.describe(),
                });
            };
            let (guard, open) = counter.incr(key.bytes(), 1);
            if open > max as isize {
                limit.metrics.limited("concurrency").inc();
                return Err(GatewayError::ConcurrencyLimited {
                    limit: limit.name.clone(),
                    streams: stream,
                });
            }
            held.0.push(guard);
        }
        Ok(held)
    }
}

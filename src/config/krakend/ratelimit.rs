//! `qos/ratelimit/router` and its Redis form `qos/ratelimit/router/redis` (Enterprise), and the
//! service's `redis.connection_pools` they name.
//!
//! KrakenD limits with token buckets: `max_rate` (or `client_max_rate`) tokens per `every`
//! (at least 1s), holding at most `capacity` (default: the rate per second, at least 1). mcpgate
//! counts `requests` per sliding `period`, with a burst of `requests`: a bucket of capacity `c`
//! refilled at `r` per second becomes `c` requests per `c / r` seconds, the same burst and the
//! same average rate.

use super::inherited::Service;
use super::obj::Obj;
use super::Cx;
use serde_json::{json, Value};

/// `redis.connection_pools` (Enterprise): name -> `redis://` URL.
pub(crate) fn redis_pools(v: &Value, at: &str, cx: &mut Cx) -> Vec<(String, String)> {
    let mut o = Obj::new(v, at, true, cx);
    let pools = o
        .get("connection_pools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    o.unsupported(&["clusters"], true, "mcpgate talks to one Redis server", cx);
    o.finish(true, cx);
    let mut out = Vec::new();
    for (i, p) in pools.iter().enumerate() {
        let pat = format!("{at}.connection_pools[{i}]");
        let mut po = Obj::new(p, &pat, true, cx);
        let name = po.str("name", cx).unwrap_or_default();
        let address = po.str("address", cx).unwrap_or_default();
        if address.is_empty() {
            cx.error(format!("{pat}.address"), "required: host:port");
        }
        let db = po.uint("db", cx);
        let user = po.str("user_name", cx);
        let pass = po.str("password", cx);
        po.accept(&[
            "client_name",
            "pool_size",
            "max_idle_conns",
            "max_retries",
            "dial_timeout",
            "read_timeout",
            "write_timeout",
            "pool_timeout",
            "conn_max_idle_time",
            "conn_max_life_time",
            "min_idle_conns",
            "max_active_conns",
            "min_retry_backoff",
            "max_retry_backoff",
            "opentelemetry",
        ]);
        po.unsupported(
            &["tls"],
            true,
            "use a rediss:// URL in mcpgate's redis.url",
            cx,
        );
        po.finish(true, cx);
        let auth = match (user, pass) {
            (Some(u), Some(p)) => format!("{u}:{p}@"),
            (None, Some(p)) => format!(":{p}@"),
            _ => String::new(),
        };
        let db = db.map(|d| format!("/{d}")).unwrap_or_default();
        out.push((name, format!("redis://{auth}{address}{db}")));
    }
    out
}

/// KrakenD's default bucket capacity for a rate per second: the rate, at least 1.
pub(crate) fn default_capacity(per_second: f64) -> u64 {
    if per_second < 1.0 {
        1
    } else {
        per_second as u64
    }
}

/// A token bucket (`per_second`, `capacity`) as mcpgate's `requests` per `period` text (the
/// period at least 1s: a shorter one is stretched, with as many more requests).
pub(crate) fn bucket(per_second: f64, capacity: u64) -> Option<(u64, String)> {
    if per_second.is_nan() || per_second <= 0.0 || capacity == 0 {
        return None;
    }
    let period_ms = (capacity as f64 * 1000.0 / per_second).round();
    if !(1.0..1e12).contains(&period_ms) {
        return None;
    }
    let period_ms = period_ms as u64;
    let k = 1000u64.div_ceil(period_ms).max(1);
    let (requests, ms) = (capacity.checked_mul(k)?, period_ms.checked_mul(k)?);
    let text = if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    };
    Some((requests, text))
}

/// `qos/ratelimit/router` (or, with `redis`, its Redis form) as `rate_limits` entries.
pub(crate) fn rate_limit(
    v: &Value,
    at: &str,
    redis: bool,
    svc: &mut Service,
    cx: &mut Cx,
) -> Vec<Value> {
    let mut o = Obj::new(v, at, true, cx);
    // KrakenD reads `every` as a Go duration and never goes below one second.
    let mut every_ms = 1000u64;
    if let Some(e) = o.duration("every", cx) {
        let ms = crate::config::parse_duration(&e)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1000);
        if ms < 1000 {
            cx.warn(
                o.path("every"),
                "KrakenD uses at least 1s for `every`, and so does mcpgate",
            );
        } else {
            every_ms = ms;
        }
    }
    let scale = 1000.0 / every_ms as f64;
    let max_rate = o.num("max_rate", cx).map(|r| r * scale);
    let capacity = o.uint("capacity", cx).filter(|c| *c > 0);
    let client_rate = o.num("client_max_rate", cx).map(|r| r * scale);
    let client_capacity = o.uint("client_capacity", cx).filter(|c| *c > 0);
    let strategy = o.str("strategy", cx).map(|s| s.to_ascii_lowercase());
    let key = o.str("key", cx);
    o.accept(&["num_shards", "cleanup_period", "cleanup_threads"]);
    let store_redis = redis && redis_pool(&mut o, at, svc, cx);
    o.finish(true, cx);
    let mp = at.replacen(
        if redis {
            ".extra_config.qos/ratelimit/router/redis"
        } else {
            ".extra_config.qos/ratelimit/router"
        },
        ".policies.rate_limits",
        1,
    );
    let suffix = if redis { "-redis" } else { "" };
    let mut out = Vec::new();
    let mut limit = |name: &str, rate: f64, cap: u64, key: Value, field: &str, cx: &mut Cx| {
        let Some((requests, period)) = bucket(rate, cap) else {
            cx.error(
                format!("{at}.{field}"),
                format!("a bucket of {cap} refilled at {rate}/s cannot be written as requests per period"),
            );
            return;
        };
        let mut l = json!({"name": format!("{name}{suffix}"), "key": key, "requests": requests, "period": period});
        if store_redis {
            l["store"] = json!("redis");
        }
        out.push(l);
    };
    if let Some(r) = max_rate.filter(|r| *r > 0.0) {
        let cap = capacity.unwrap_or_else(|| default_capacity(r));
        limit("endpoint", r, cap, json!("endpoint"), "max_rate", cx);
        cx.note(
            mp.clone(),
            "KrakenD's token bucket as requests per sliding period (same burst and average rate); over the endpoint limit KrakenD answers 503, mcpgate 429",
        );
    }
    if let Some(r) = client_rate.filter(|r| *r > 0.0) {
        // KrakenD's own default for the client bucket looks at `max_rate`, not at the client's.
        let cap = client_capacity.unwrap_or_else(|| {
            if max_rate.unwrap_or(0.0) < 1.0 {
                1
            } else {
                (r as u64).max(1)
            }
        });
        let key = match (strategy.as_deref(), key) {
            (None, _) => {
                cx.warn(
                    format!("{at}.strategy"),
                    "missing: KrakenD would not apply client_max_rate at all; mcpgate limits each client address",
                );
                Some(json!("client_ip"))
            }
            (Some("ip"), None) => Some(json!("client_ip")),
            (Some("ip"), Some(h)) => {
                cx.note(
                    mp.clone(),
                    "strategy ip with a key: counted per value of that header; requests without it share one count (KrakenD falls back to the peer address)",
                );
                Some(json!({"header": h}))
            }
            (Some("header"), Some(h)) => Some(json!({"header": h})),
            (Some("header"), None) => {
                cx.error(
                    format!("{at}.key"),
                    "strategy header needs the header's name in `key`",
                );
                None
            }
            (Some("param"), _) => {
                cx.error(
                    format!("{at}.strategy"),
                    "strategy param: mcpgate endpoints are exact paths and have no parameters",
                );
                None
            }
            (Some(s), _) => {
                cx.error(
                    format!("{at}.strategy"),
                    format!("unknown strategy {s:?} (KrakenD knows ip, header and param)"),
                );
                None
            }
        };
        if let Some(k) = key {
            let shared = k.get("header").is_some() && strategy.as_deref() == Some("ip");
            limit("client", r, cap, k, "client_max_rate", cx);
            if shared {
                if let Some(last) = out.last_mut() {
                    last["on_missing_key"] = json!("shared");
                }
            }
        }
    }
    out
}

/// The Redis pool a limit names (`connection_name`, or the older `connection_pool`), as the
/// service's one Redis URL; `on_failure_allow` (default false: refuse) as its failure policy.
fn redis_pool<'a>(o: &mut Obj<'a>, at: &str, svc: &mut Service, cx: &mut Cx) -> bool {
    let name = o
        .str("connection_name", cx)
        .or_else(|| o.str("connection_pool", cx));
    let allow = o.bool("on_failure_allow", cx).unwrap_or(false);
    svc.redis_fail_open = Some(svc.redis_fail_open.unwrap_or(true) && allow);
    match name.and_then(|n| svc.redis_pools.iter().find(|(p, _)| *p == n).cloned()) {
        Some((_, url)) => {
            if svc.redis_url.as_ref().is_some_and(|u| *u != url) {
                cx.error(
                    at,
                    "mcpgate uses one Redis server for every limit; this one names another",
                );
            }
            svc.redis_url = Some(url);
            true
        }
        None => {
            cx.error(
                o.path("connection_name"),
                "names no pool of the service's extra_config.redis.connection_pools",
            );
            false
        }
    }
}

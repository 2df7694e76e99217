//! CORS, IP filter, payload size, rate limits (in memory and Redis), circuit breaker.

use super::inherited::Service;
use super::obj::Obj;
use super::Cx;
use serde_json::{json, Map, Value};

/// `security/cors` as `policies.cors`.
pub(crate) fn cors(v: &Value, at: &str, cx: &mut Cx) -> Option<Value> {
    let mut o = Obj::new(v, at, true, cx);
    let origins = o
        .strs("allow_origins", cx)
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| vec!["*".into()]);
    let mut c = json!({"allowed_origins": origins});
    if let Some(m) = o.strs("allow_methods", cx) {
        c["allowed_methods"] = json!(m);
    }
    if let Some(h) = o.strs("allow_headers", cx) {
        c["allowed_headers"] = json!(h);
    }
    if let Some(h) = o.strs("expose_headers", cx) {
        c["exposed_headers"] = json!(h);
    }
    if let Some(a) = o.duration("max_age", cx) {
        c["max_age"] = json!(a);
    }
    if let Some(b) = o.bool("allow_credentials", cx) {
        c["allow_credentials"] = json!(b);
    }
    for k in [
        "debug",
        "options_passthrough",
        "options_success_status",
        "allow_private_network",
    ] {
        if o.get(k).is_some() {
            cx.warn(
                o.path(k),
                "mcpgate answers preflights itself (204) and logs every request; skipped",
            );
        }
    }
    o.finish(true, cx);
    Some(c)
}

/// `security/ipfilter` (Enterprise) as `policies.ip_filter`; its client-address settings go to
/// the service's `client_address` (in `root`).
pub(crate) fn ip_filter(
    v: &Value,
    at: &str,
    root: &mut Map<String, Value>,
    cx: &mut Cx,
) -> Option<Value> {
    let mut o = Obj::new(v, at, true, cx);
    let cidrs = o.strs("CIDR", cx).unwrap_or_default();
    let allow = o.bool("allow", cx).unwrap_or(false);
    let headers = o.strs("client_ip_headers", cx).unwrap_or_default();
    let proxies = o.strs("trusted_proxies", cx).unwrap_or_default();
    o.finish(true, cx);
    if cidrs.is_empty() {
        cx.error(format!("{at}.CIDR"), "at least one CIDR is needed");
    }
    if headers.len() > 1 {
        cx.error(
            format!("{at}.client_ip_headers"),
            "mcpgate reads the client address from one header",
        );
    }
    if !proxies.is_empty() || !headers.is_empty() {
        let mut ca = json!({"trusted_proxies": proxies});
        if let Some(h) = headers.first() {
            ca["header"] = json!(h);
        }
        root.insert("client_address".into(), ca);
    }
    Some(if allow {
        json!({"allow": cidrs})
    } else {
        json!({"deny": cidrs})
    })
}

/// The `router` namespace: `max_payload` (Enterprise) in bytes; the rest tunes KrakenD's own
/// router and logging.
pub(crate) fn router(v: &Value, at: &str, cx: &mut Cx) -> Option<u64> {
    let mut o = Obj::new(v, at, true, cx);
    let max = o.uint("max_payload", cx);
    for k in [
        "return_error_msg",
        "disable_access_log",
        "logger_skip_paths",
        "health_path",
        "disable_health",
        "hide_version_header",
        "auto_options",
        "error_body",
        "disable_redirect_trailing_slash",
        "disable_redirect_fixed_path",
        "disable_path_decoding",
        "disable_handle_method_not_allowed",
    ] {
        if o.get(k).is_some() {
            cx.warn(
                o.path(k),
                "KrakenD router or log tuning; mcpgate has no equivalent and skips it",
            );
        }
    }
    o.finish(true, cx);
    max
}

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
        let db = po.uint("db", cx).or_else(|| po.uint("database", cx));
        let user = po.str("username", cx);
        let pass = po.str("password", cx);
        po.accept(&[
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

/// `qos/ratelimit/router` (or its Redis form) as `rate_limits` entries.
pub(crate) fn rate_limit(
    v: &Value,
    at: &str,
    redis: Option<()>,
    svc: &mut Service,
    cx: &mut Cx,
) -> Vec<Value> {
    let mut o = Obj::new(v, at, true, cx);
    let every = o.duration("every", cx).unwrap_or_else(|| "1s".into());
    let max_rate = o.num("max_rate", cx);
    let capacity = o.uint("capacity", cx);
    let client_rate = o.num("client_max_rate", cx);
    let client_capacity = o.uint("client_capacity", cx);
    let strategy = o.str("strategy", cx).unwrap_or_else(|| "ip".into());
    let key = o.str("key", cx);
    o.accept(&["num_shards", "cleanup_period", "cleanup_threads"]);
    let pool = if redis.is_some() {
        let name = o
            .str("connection_name", cx)
            .or_else(|| o.str("connection_pool", cx));
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
    } else {
        false
    };
    o.finish(true, cx);
    let period_ms = crate::config::parse_duration(&every)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1000);
    let suffix = if redis.is_some() { "-redis" } else { "" };
    let mut out = Vec::new();
    let mut limit = |name: &str,
                     rate: f64,
                     cap: Option<u64>,
                     key: Value,
                     field: &str,
                     cx: &mut Cx| {
        if rate <= 0.0 {
            return;
        }
        let Some((requests, period)) = per_period(rate, period_ms) else {
            cx.error(format!("{at}.{field}"), format!("{rate} per {every} cannot be written as whole requests per period of at least 1s"));
            return;
        };
        if cap.is_some_and(|c| c != requests) {
            cx.warn(
                format!("{at}.{field}"),
                "mcpgate allows a burst of the whole period's requests; the KrakenD capacity is skipped",
            );
        }
        let mut l = json!({"name": format!("{name}{suffix}"), "key": key, "requests": requests, "period": period});
        if name == "client" {
            l["on_missing_key"] = json!("shared");
        }
        if pool {
            l["store"] = json!("redis");
        }
        out.push(l);
    };
    if let Some(r) = max_rate {
        limit("endpoint", r, capacity, json!("endpoint"), "max_rate", cx);
    }
    if let Some(r) = client_rate {
        let k = match (strategy.as_str(), key) {
            ("ip", None) => Some(json!("client_ip")),
            ("ip", Some(h)) => Some(json!({"header": h})),
            ("header", Some(h)) => Some(json!({"header": h})),
            ("jwt", Some(c)) => Some(json!({"claim": c})),
            (s, _) => {
                cx.error(
                    format!("{at}.strategy"),
                    format!("strategy {s:?} (with this key) is not supported by mcpgate"),
                );
                None
            }
        };
        if let Some(k) = k {
            limit("client", r, client_capacity, k, "client_max_rate", cx);
        }
    }
    out
}

/// `rate` per `period_ms` as whole requests per period text (at least 1s).
fn per_period(rate: f64, period_ms: u64) -> Option<(u64, String)> {
    for k in 1..=3600u64 {
        let ms = period_ms.checked_mul(k)?;
        let n = rate * k as f64;
        if ms >= 1000 && (n - n.round()).abs() < 1e-9 && n >= 1.0 {
            let text = if ms % 1000 == 0 {
                format!("{}s", ms / 1000)
            } else {
                format!("{ms}ms")
            };
            return Some((n.round() as u64, text));
        }
    }
    None
}

/// `qos/circuit-breaker` as `backend.circuit_breaker`.
pub(crate) fn circuit_breaker(v: &Value, at: &str, cx: &mut Cx) -> Option<Value> {
    let mut o = Obj::new(v, at, true, cx);
    let max_errors = o.uint("max_errors", cx).unwrap_or(1);
    let timeout = o.uint("timeout", cx).unwrap_or(60);
    o.accept(&["interval", "name", "log_status_change"]);
    o.finish(true, cx);
    cx.note(
        at.replacen(".backend[0].extra_config.qos/circuit-breaker", ".backend.circuit_breaker", 1),
        "KrakenD opens after max_errors within `interval`; mcpgate after that many failures in a row, per host, and answers 503 (not 500) while open",
    );
    Some(json!({
        "consecutive_failures": max_errors.max(1),
        "open_for": format!("{}s", timeout.max(1)),
    }))
}

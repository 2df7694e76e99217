//! The root of a KrakenD file: listener, defaults for endpoints, and the service-level
//! `extra_config` namespaces.

use super::inherited::Service;
use super::obj::Obj;
use super::{auth, endpoint, ratelimit, traffic, Cx};
use serde_json::{json, Map, Value};

/// Namespaces that only change logs, docs or debug output: skipped with a warning.
const COSMETIC_NAMESPACES: &[&str] = &[
    "telemetry/logging",
    "telemetry/gelf",
    "telemetry/metrics",
    "telemetry/influx",
    "telemetry/newrelic",
    "telemetry/logstash",
    "telemetry/moesif",
    "documentation/openapi",
];

/// Root keys that tune KrakenD's own HTTP server or debugging: skipped with a warning.
const COSMETIC_ROOT_KEYS: &[&str] = &[
    "name",
    "debug_endpoint",
    "echo_endpoint",
    "read_timeout",
    "write_timeout",
    "idle_timeout",
    "read_header_timeout",
    "cache_ttl",
    "dns_cache_ttl",
    "disable_rest",
    "sequential_start",
    "max_idle_connections",
    "max_idle_connections_per_host",
    "idle_connection_timeout",
    "disable_keep_alives",
    "disable_compression",
    "use_h2c",
    "dialer_fallback_delay",
    "dialer_keep_alive",
    "dialer_timeout",
    "expect_continue_timeout",
    "max_header_bytes",
    "max_shutdown_wait_time",
    "response_header_timeout",
];

pub(crate) fn translate(root: &Value, cx: &mut Cx) -> Value {
    let mut o = Obj::new(root, "", true, cx);
    if let Some(v) = o.get("version") {
        if v.as_u64() != Some(3) {
            cx.error(
                "version",
                format!("KrakenD configuration version {v} is not supported (only 3)"),
            );
        }
    }
    let port = o.uint("port", cx).unwrap_or(8080);
    let ip = o.str("listen_ip", cx).unwrap_or_else(|| "0.0.0.0".into());
    let address = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let mut listen = json!(address);
    if let Some(tls) = o.get("tls") {
        listen = listener_tls(tls, address.clone(), cx);
    }
    let mut svc = Service {
        timeout: o.duration("timeout", cx),
        hosts: o.strs("host", cx),
        output_encoding: o.str("output_encoding", cx),
        name: o.str("name", cx),
        ..Service::default()
    };
    if svc.timeout.is_some() {
        cx.note(
            "endpoints",
            "KrakenD's `timeout` is each backend's idle_timeout here: mcpgate bounds silence, never the total time of a stream",
        );
    }
    for k in COSMETIC_ROOT_KEYS {
        if o.get(k).is_some() && *k != "name" {
            cx.warn(
                o.path(k),
                "KrakenD server tuning or debug setting; mcpgate has no equivalent and skips it",
            );
        }
    }
    o.unsupported(
        &["plugin", "client_tls", "async_agent"],
        true,
        "it would change who may call or what runs",
        cx,
    );
    let mut out = Map::new();
    let extra = o.get("extra_config");
    let endpoints = o.get("endpoints");
    o.finish(true, cx);
    if let Some(extra) = extra {
        service_extra(extra, &mut svc, &mut out, cx);
    }
    out.insert("listen".into(), listen);
    let mut list = Vec::new();
    match endpoints.map(|v| (v, v.as_array())) {
        Some((_, Some(items))) => {
            for (i, item) in items.iter().enumerate() {
                list.push(endpoint::translate(item, i, &mut svc, cx));
            }
        }
        Some((v, None)) => cx.error("endpoints", format!("expected a list, found {v}")),
        None => cx.error("endpoints", "at least one endpoint is needed"),
    }
    if let Some(url) = &svc.redis_url {
        // KrakenD refuses a request when Redis fails unless the limit says on_failure_allow.
        let on_error = if svc.redis_fail_open == Some(true) {
            "allow"
        } else {
            "deny"
        };
        out.insert("redis".into(), json!({"url": url, "on_error": on_error}));
    }
    if !svc.policies.is_empty() {
        out.insert("policies".into(), Value::Object(svc.policies));
    }
    out.insert("endpoints".into(), Value::Array(list));
    Value::Object(out)
}

fn listener_tls(tls: &Value, address: String, cx: &mut Cx) -> Value {
    let mut t = Obj::new(tls, "tls", true, cx);
    let cert = t.str("public_key", cx);
    let key = t.str("private_key", cx);
    if t.bool("disabled", cx) == Some(true) {
        t.finish(true, cx);
        return json!(address);
    }
    t.accept(&["min_version", "max_version"]);
    t.finish(true, cx);
    match (cert, key) {
        (Some(cert), Some(key)) => json!([{"address": address, "tls": {"cert": cert, "key": key}}]),
        _ => {
            cx.error(
                "tls",
                "needs public_key and private_key (mcpgate serves TLS from PEM files)",
            );
            json!(address)
        }
    }
}

fn service_extra(extra: &Value, svc: &mut Service, out: &mut Map<String, Value>, cx: &mut Cx) {
    let Some(map) = extra.as_object() else {
        cx.error("extra_config", format!("expected an object, found {extra}"));
        return;
    };
    // The registries first: endpoints refer to them.
    for (ns, v) in map {
        let at = format!("extra_config.{ns}");
        match ns.as_str() {
            "auth/api-keys" => svc.api_keys = auth::api_key_registry(v, &at, cx),
            "auth/basic" => svc.basic_users = auth::basic_registry(v, &at, cx),
            "redis" => svc.redis_pools = ratelimit::redis_pools(v, &at, cx),
            "security/cors" => {
                if let Some(c) = traffic::cors(v, &at, cx) {
                    svc.policies.insert("cors".into(), c);
                }
            }
            "plugin/http-server" => {
                if let Some(f) = traffic::ip_filter_plugin(v, &at, out, cx) {
                    svc.policies.insert("ip_filter".into(), f);
                }
            }
            "router" => {
                svc.max_payload = traffic::router(v, &at, out, cx);
                if let Some(n) = svc.max_payload {
                    svc.policies
                        .insert("limits".into(), json!({"max_body": n}));
                }
            }
            "telemetry/opentelemetry" => telemetry(v, &at, svc.name.as_deref(), out, cx),
            ns if COSMETIC_NAMESPACES.contains(&ns) => cx.warn(
                at,
                "not supported by mcpgate (logs and metrics come from the access log, /metrics and `tracing:`); skipped",
            ),
            _ => cx.error(
                at,
                "namespace not supported by mcpgate: the gateway would run without it",
            ),
        }
    }
}

/// `telemetry/opentelemetry`: an OTLP/HTTP exporter becomes `tracing:`, a Prometheus exporter
/// the admin listener (which serves `/metrics`).
fn telemetry(
    v: &Value,
    at: &str,
    root_name: Option<&str>,
    out: &mut Map<String, Value>,
    cx: &mut Cx,
) {
    let mut o = Obj::new(v, at, false, cx);
    // KrakenD names the service after the root `name` when `service_name` is unset.
    let service_name = o
        .str("service_name", cx)
        .or_else(|| root_name.map(str::to_string));
    let ratio = o.num("trace_sample_rate", cx);
    o.accept(&[
        "metric_reporting_period",
        "service_version",
        "deploy_env",
        "histograms",
    ]);
    for k in ["layers", "skip_paths"] {
        if o.get(k).is_some() {
            cx.warn(
                o.path(k),
                "span layers and skipped paths are fixed in mcpgate (one server span per request); skipped",
            );
        }
    }
    let exporters = o.get("exporters");
    o.finish(false, cx);
    let Some(exporters) = exporters else {
        cx.warn(at, "no exporters: nothing is reported");
        return;
    };
    let eat = format!("{at}.exporters");
    let mut e = Obj::new(exporters, &eat, false, cx);
    let otlp = e
        .get("otlp")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let prom = e
        .get("prometheus")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    e.finish(false, cx);
    for (i, x) in otlp.iter().enumerate() {
        let xat = format!("{eat}.otlp[{i}]");
        let mut x = Obj::new(x, &xat, false, cx);
        let host = x.str("host", cx).unwrap_or_else(|| "localhost".into());
        let http = x.bool("use_http", cx).unwrap_or(false);
        // 4317 is OTLP/gRPC's port, 4318 OTLP/HTTP's.
        let port = x.uint("port", cx).unwrap_or(if http { 4318 } else { 4317 });
        let no_traces = x.bool("disable_traces", cx).unwrap_or(false);
        x.accept(&["name", "disable_metrics", "custom_metric_reporting_period"]);
        x.finish(false, cx);
        if no_traces {
            continue;
        }
        if !http {
            cx.warn(&xat, "mcpgate exports traces over OTLP/HTTP only (set use_http and the HTTP port); no traces are sent");
            continue;
        }
        if out.contains_key("tracing") {
            cx.warn(
                &xat,
                "mcpgate exports to one OTLP endpoint; this one is skipped",
            );
            continue;
        }
        let base = if host.contains("://") {
            host
        } else {
            format!("http://{host}")
        };
        let mut t = json!({"endpoint": format!("{base}:{port}/v1/traces")});
        if let Some(n) = &service_name {
            t["service_name"] = json!(n);
        }
        if let Some(r) = ratio {
            t["sample_ratio"] = json!(r.min(1.0));
        }
        out.insert("tracing".into(), t);
    }
    for (i, x) in prom.iter().enumerate() {
        let xat = format!("{eat}.prometheus[{i}]");
        let mut x = Obj::new(x, &xat, false, cx);
        let port = x.uint("port", cx).unwrap_or(9090);
        let ip = x
            .str("listen_ip", cx)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "0.0.0.0".into());
        let disabled = x.bool("disable_metrics", cx).unwrap_or(false);
        x.accept(&[
            "name",
            "process_metrics",
            "go_metrics",
            "custom_metric_reporting_period",
        ]);
        x.finish(false, cx);
        if disabled {
            continue;
        }
        if out.contains_key("admin") {
            cx.warn(
                &xat,
                "mcpgate serves /metrics on one admin listener; this one is skipped",
            );
            continue;
        }
        let addr = if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        };
        out.insert("admin".into(), json!(addr));
        cx.note("admin", "KrakenD's Prometheus exporter: mcpgate serves /metrics (and /healthz, /readyz, /reload) here, with its own metric names");
    }
}

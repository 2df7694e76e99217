//! CORS, the IP filter plugin, the router's payload size and client address, circuit breaker.

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
    for (i, origin) in origins.iter().enumerate() {
        // mcpgate's wildcard stands for the first label only (`https://*.example.com`).
        let rest = origin.split_once("://").map(|(_, r)| r).unwrap_or("");
        if origin != "*" && rest.strip_prefix("*.").unwrap_or(rest).contains('*') {
            cx.error(
                format!("{at}.allow_origins[{i}]"),
                format!("{origin:?}: mcpgate accepts `*` alone or as the first label (https://*.example.com)"),
            );
        }
    }
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

/// The IP filter plugin (Enterprise): `plugin/http-server` at the service, or
/// `plugin/req-resp-modifier` at an endpoint, naming `ip-filter` in `name` with its settings
/// under `ip-filter` (or, in the newer layout, `plugins: [{name: ip-filter, config}]`). Any
/// other plugin is refused: it is code mcpgate cannot run. Returns `policies.ip_filter`; the
/// client-address settings go to `client_address` (in `root`).
pub(crate) fn ip_filter_plugin(
    v: &Value,
    at: &str,
    root: &mut Map<String, Value>,
    cx: &mut Cx,
) -> Option<Value> {
    let mut o = Obj::new(v, at, true, cx);
    let mut found: Option<(Value, String)> = None;
    if let Some(names) = o.strs("name", cx) {
        for (i, n) in names.iter().enumerate() {
            if n == "ip-filter" {
                match o.get("ip-filter") {
                    Some(c) => found = Some((c.clone(), o.path("ip-filter"))),
                    None => cx.error(o.path("ip-filter"), "missing: the ip-filter settings"),
                }
            } else {
                cx.error(
                    format!("{at}.name[{i}]"),
                    format!("plugin {n:?} is not supported by mcpgate (ip-filter is)"),
                );
            }
        }
    }
    if let Some(list) = o.get("plugins") {
        for (i, p) in list.as_array().into_iter().flatten().enumerate() {
            let pat = format!("{at}.plugins[{i}]");
            let mut po = Obj::new(p, &pat, true, cx);
            let name = po.str("name", cx).unwrap_or_default();
            let config = po.get("config").cloned();
            po.finish(true, cx);
            match (name.as_str(), config) {
                ("ip-filter", Some(c)) => found = Some((c, format!("{pat}.config"))),
                ("ip-filter", None) => cx.error(format!("{pat}.config"), "missing"),
                (n, _) => cx.error(
                    format!("{pat}.name"),
                    format!("plugin {n:?} is not supported by mcpgate (ip-filter is)"),
                ),
            }
        }
        if !list.is_array() {
            cx.error(o.path("plugins"), "expected a list of {name, config}");
        }
    }
    o.finish(true, cx);
    let (c, cat) = found?;
    ip_filter(&c, &cat, root, cx)
}

/// The `ip-filter` settings: `CIDR`, `allow` (default false: the CIDRs are denied),
/// `client_ip_headers`, `trusted_proxies`.
fn ip_filter(v: &Value, at: &str, root: &mut Map<String, Value>, cx: &mut Cx) -> Option<Value> {
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
    client_address(&proxies, headers.first(), at, root, cx);
    Some(if allow {
        json!({"allow": cidrs})
    } else {
        json!({"deny": cidrs})
    })
}

/// Sets the service's `client_address` (one for the whole gateway in mcpgate).
fn client_address(
    proxies: &[String],
    header: Option<&String>,
    at: &str,
    root: &mut Map<String, Value>,
    cx: &mut Cx,
) {
    if proxies.is_empty() && header.is_none() {
        return;
    }
    let mut ca = json!({"trusted_proxies": proxies});
    if let Some(h) = header {
        ca["header"] = json!(h);
    }
    match root.get("client_address") {
        Some(prev) if *prev != ca => cx.error(
            at,
            "mcpgate has one client_address for the whole gateway; this one differs from another",
        ),
        _ => {
            root.insert("client_address".into(), ca);
        }
    }
    if proxies.is_empty() {
        cx.note(
            "client_address",
            "mcpgate believes the forwarding header only from trusted_proxies (none listed: the peer address is used)",
        );
    }
}

/// The service's `router`: `max_payload` (Enterprise) in bytes, the client address
/// (`forwarded_by_client_ip`, `remote_ip_headers`, `trusted_proxies`); the rest tunes KrakenD's
/// own router and logging.
pub(crate) fn router(
    v: &Value,
    at: &str,
    root: &mut Map<String, Value>,
    cx: &mut Cx,
) -> Option<u64> {
    let mut o = Obj::new(v, at, true, cx);
    let max = o.uint("max_payload", cx).filter(|n| *n > 0);
    let forwarded = o.bool("forwarded_by_client_ip", cx).unwrap_or(false);
    let headers = o.strs("remote_ip_headers", cx).unwrap_or_default();
    let proxies = o.strs("trusted_proxies", cx).unwrap_or_default();
    if forwarded {
        if headers.len() > 1 {
            cx.error(
                o.path("remote_ip_headers"),
                "mcpgate reads the client address from one header",
            );
        }
        client_address(&proxies, headers.first(), at, root, cx);
    }
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
        "remove_extra_slash",
        "max_multipart_memory",
        "disable_gzip",
        "decompress_gzip",
        "app_engine",
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

/// `qos/circuit-breaker` as `backend.circuit_breaker`. For a `no-op` backend (every MCP one)
/// KrakenD counts only connection and gateway errors, never the upstream's status codes.
pub(crate) fn circuit_breaker(v: &Value, at: &str, cx: &mut Cx) -> Option<Value> {
    let mut o = Obj::new(v, at, true, cx);
    let interval = o.uint("interval", cx);
    let timeout = o.uint("timeout", cx);
    let max_errors = o.uint("max_errors", cx);
    o.str("name", cx);
    o.bool("log_status_change", cx);
    o.finish(true, cx);
    for (k, val) in [
        ("interval", interval),
        ("timeout", timeout),
        ("max_errors", max_errors),
    ] {
        if val.is_none() {
            cx.error(format!("{at}.{k}"), "required (a whole number)");
        }
    }
    cx.note(
        at.replacen(".backend[0].extra_config.qos/circuit-breaker", ".backend.circuit_breaker", 1),
        "KrakenD opens after max_errors in a row within `interval`; mcpgate after that many failures in a row (connection errors only, as KrakenD counts for no-op), per host, and answers 503 (not 500) while open",
    );
    Some(json!({
        "consecutive_failures": max_errors.unwrap_or(1).max(1),
        "open_for": format!("{}s", timeout.unwrap_or(1).max(1)),
        "failure_statuses": [],
    }))
}

//! One KrakenD endpoint (and its single backend) as one mcpgate endpoint: same path, its one
//! method, its own policies.

use super::inherited::Service;
use super::obj::Obj;
use super::{auth, cel, martian, ratelimit, traffic, Cx};
use crate::config::DEFAULT_INPUT_HEADERS;
use serde_json::{json, Map, Value};

/// Endpoint-level namespaces that only tune caching, docs or telemetry: skipped with a warning.
const COSMETIC: &[&str] = &[
    "qos/http-cache",
    "telemetry/opentelemetry",
    "documentation/openapi",
    "documentation/postman",
];

pub(crate) fn translate(v: &Value, i: usize, svc: &mut Service, cx: &mut Cx) -> Value {
    let at = format!("endpoints[{i}]");
    let mp = format!("endpoints[{i}]");
    let mut o = Obj::new(v, &at, true, cx);
    let path = o.str("endpoint", cx).unwrap_or_default();
    if path.contains('{') {
        cx.error(
            o.path("endpoint"),
            format!("{path:?} has parameters; mcpgate endpoints are exact paths"),
        );
    }
    if path.is_empty() && o.get("endpoint").is_none() {
        cx.error(o.path("endpoint"), "missing");
    }
    let method = o
        .str("method", cx)
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    let mut ep = Map::new();
    ep.insert("path".into(), json!(path));
    ep.insert("name".into(), json!(format!("{path} {method}")));
    ep.insert("methods".into(), json!([method]));
    let encoding = o
        .str("output_encoding", cx)
        .or_else(|| svc.output_encoding.clone());
    if encoding.as_deref().is_some_and(|e| e != "no-op") {
        cx.warn(
            o.path("output_encoding"),
            "mcpgate always relays MCP bytes unchanged (as `no-op`); other encodings are skipped",
        );
        cx.note(
            format!("{mp}.methods"),
            "KrakenD's output_encoding other than no-op: mcpgate relays bytes unchanged",
        );
    }
    if let Some(list) = o.strs("input_headers", cx) {
        ep.insert("input_headers".into(), json!(input_headers(list)));
        cx.note(
            format!("{mp}.input_headers"),
            "KrakenD's input_headers plus the headers MCP needs (mcpgate always forwards those)",
        );
    }
    if let Some(list) = o.strs("input_query_strings", cx) {
        ep.insert("input_query_strings".into(), json!(list));
    }
    let timeout = o.duration("timeout", cx).or_else(|| svc.timeout.clone());
    for k in ["concurrent_calls", "cache_ttl"] {
        if o.get(k).is_some() {
            cx.warn(
                o.path(k),
                "has no meaning for a relayed MCP stream in mcpgate; skipped",
            );
        }
    }
    let mut policies = Map::new();
    let mut rules: Vec<Value> = Vec::new();
    let mut request_headers: Vec<Value> = Vec::new();
    let mut response_headers: Vec<Value> = Vec::new();
    let extra = o.get("extra_config");
    let backends = o.get("backend");
    o.finish(true, cx);
    if let Some(extra) = extra {
        let Some(map) = extra.as_object() else {
            cx.error(
                format!("{at}.extra_config"),
                format!("expected an object, found {extra}"),
            );
            return Value::Object(ep);
        };
        let mut auth_methods = Map::new();
        let mut limits: Vec<Value> = Vec::new();
        // JWT-based CEL checks run only where `auth/validator` validates a token.
        let cel_cx = cel::Context {
            tag: format!("e{i}"),
            backend: false,
            jwt: map.contains_key("auth/validator"),
        };
        for (ns, nv) in map {
            let nat = format!("{at}.extra_config.{ns}");
            match ns.as_str() {
                "auth/validator" => {
                    if let Some(j) = auth::jwt(nv, &nat, cx) {
                        auth_methods.insert("jwt".into(), j);
                    }
                }
                "auth/api-keys" => {
                    if let Some(k) = auth::api_keys(nv, &nat, svc, cx) {
                        auth_methods.insert("api_keys".into(), k.keys);
                        rules.extend(k.rule);
                        limits.extend(k.limit);
                    }
                }
                "auth/basic" => {
                    if let Some(b) = auth::basic(nv, &nat, svc, cx) {
                        auth_methods.insert("basic".into(), b);
                    }
                }
                "security/cors" => {
                    if let Some(c) = traffic::cors(nv, &nat, cx) {
                        policies.insert("cors".into(), c);
                    }
                }
                "plugin/req-resp-modifier" => {
                    let mut root = Map::new();
                    if let Some(f) = traffic::ip_filter_plugin(nv, &nat, &mut root, cx) {
                        policies.insert("ip_filter".into(), f);
                    }
                    if !root.is_empty() {
                        cx.error(
                            &nat,
                            "client_ip_headers and trusted_proxies are service-wide in mcpgate: set them in the service's plugin/http-server ip-filter",
                        );
                    }
                }
                "qos/ratelimit/router" => {
                    limits.extend(ratelimit::rate_limit(nv, &nat, false, svc, cx))
                }
                "qos/ratelimit/router/redis" => {
                    limits.extend(ratelimit::rate_limit(nv, &nat, true, svc, cx))
                }
                "modifier/martian" => {
                    martian::modifiers(nv, &nat, &mut request_headers, &mut response_headers, cx)
                }
                "validation/cel" => rules.extend(cel::validation(nv, &nat, &cel_cx, cx)),
                "security/policies" => rules.extend(cel::security_policies(nv, &nat, &cel_cx, cx)),
                "proxy" => {
                    // KrakenD checks the service's max_payload first, then the endpoint's.
                    let own = proxy(nv, &nat, cx);
                    let n = match (own, svc.max_payload) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    if let Some(n) = n {
                        policies.insert("limits".into(), json!({"max_body": n}));
                    }
                }
                ns if COSMETIC.contains(&ns) => cx.warn(
                    &nat,
                    "not supported by mcpgate for a relayed MCP endpoint; skipped",
                ),
                _ => cx.error(
                    &nat,
                    "namespace not supported by mcpgate: the endpoint would run without it",
                ),
            }
        }
        if auth_methods.len() > 1 {
            cx.error(
                format!("{at}.extra_config"),
                "several authentication namespaces on one endpoint: mcpgate would accept any one of them, KrakenD requires each",
            );
        }
        if !auth_methods.is_empty() {
            policies.insert("auth".into(), Value::Object(auth_methods));
        }
        if !limits.is_empty() {
            policies.insert("rate_limits".into(), json!(limits));
        }
    }
    let mut backend = json!({"hosts": []});
    match backends.map(|b| (b, b.as_array())) {
        Some((_, Some(list))) if list.len() == 1 => {
            let (b, narrowed) = translate_backend(
                &list[0],
                &format!("{at}.backend[0]"),
                &method,
                svc,
                cx,
                &mut rules,
                &mut request_headers,
                &mut response_headers,
            );
            backend = b;
            // A backend's input_headers narrow what its endpoint forwards.
            if let Some(list) = narrowed {
                let endpoint_list = ep.get("input_headers").and_then(Value::as_array).map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                });
                let kept: Vec<String> = match endpoint_list {
                    Some(e) if !e.iter().any(|h| h == "*") => list
                        .into_iter()
                        .filter(|h| h == "*" || e.iter().any(|x| x.eq_ignore_ascii_case(h)))
                        .flat_map(|h| if h == "*" { e.clone() } else { vec![h] })
                        .collect(),
                    Some(_) => list,
                    // The endpoint forwards no client header, so the backend gets none.
                    None => Vec::new(),
                };
                ep.insert("input_headers".into(), json!(input_headers(kept)));
            }
        }
        Some((_, Some(list))) if list.is_empty() => {
            cx.error(format!("{at}.backend"), "one backend is needed")
        }
        Some((_, Some(_))) => cx.error(
            format!("{at}.backend"),
            "several backends (aggregation) cannot relay MCP; use one backend with several hosts",
        ),
        Some((b, None)) => cx.error(
            format!("{at}.backend"),
            format!("expected a list, found {b}"),
        ),
        None => cx.error(format!("{at}.backend"), "missing"),
    }
    if let Some(t) = timeout {
        backend["idle_timeout"] = json!(t);
        cx.note(
            format!("{mp}.backend.idle_timeout"),
            "from KrakenD's timeout: here it bounds silence, not the total time (SSE streams stay open while events flow)",
        );
    }
    if !rules.is_empty() {
        policies.insert("rules".into(), json!(rules));
    }
    if !request_headers.is_empty() {
        policies.insert("request_headers".into(), json!(request_headers));
    }
    if !response_headers.is_empty() {
        policies.insert("response_headers".into(), json!(response_headers));
    }
    if !policies.is_empty() {
        ep.insert("policies".into(), Value::Object(policies));
    }
    ep.insert("backend".into(), backend);
    Value::Object(ep)
}

/// KrakenD forwards only the listed headers; MCP needs its own too, so they are added.
fn input_headers(list: Vec<String>) -> Vec<String> {
    if list.iter().any(|h| h == "*") {
        return vec!["*".into()];
    }
    let mut out = list;
    for h in DEFAULT_INPUT_HEADERS {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(h)) {
            out.push((*h).to_string());
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn translate_backend(
    v: &Value,
    at: &str,
    method: &str,
    svc: &mut Service,
    cx: &mut Cx,
    rules: &mut Vec<Value>,
    request_headers: &mut Vec<Value>,
    response_headers: &mut Vec<Value>,
) -> (Value, Option<Vec<String>>) {
    let mut o = Obj::new(v, at, true, cx);
    let mut b = Map::new();
    let narrowed = o.strs("input_headers", cx);
    if let Some(q) = o.strs("input_query_strings", cx) {
        if !q.is_empty() {
            cx.warn(
                o.path("input_query_strings"),
                "mcpgate forwards the endpoint's input_query_strings to its backend; skipped",
            );
        }
    }
    let hosts = o.strs("host", cx).or_else(|| svc.hosts.clone());
    match hosts {
        Some(h) if !h.is_empty() => {
            b.insert("hosts".into(), json!(h));
        }
        _ => {
            cx.error(o.path("host"), "at least one host is needed");
            b.insert("hosts".into(), json!([]));
        }
    }
    if let Some(p) = o.str("url_pattern", cx) {
        if p.contains('{') {
            cx.error(
                o.path("url_pattern"),
                format!("{p:?} has parameters; mcpgate relays to one exact path"),
            );
        }
        b.insert("path".into(), json!(p));
    }
    if let Some(m) = o.str("method", cx) {
        if !m.eq_ignore_ascii_case(method) {
            cx.error(o.path("method"), format!("{m:?} differs from the endpoint's {method}: mcpgate relays the client's method"));
        }
    }
    if let Some(e) = o.str("encoding", cx) {
        if e != "no-op" {
            cx.warn(
                o.path("encoding"),
                "mcpgate always relays bytes unchanged (as `no-op`); skipped",
            );
        }
    }
    if let Some(sd) = o.str("sd", cx) {
        if sd != "static" {
            cx.error(
                o.path("sd"),
                format!("service discovery {sd:?} is not supported: list the hosts"),
            );
        }
    }
    o.accept(&["disable_host_sanitize", "sd_scheme"]);
    for k in [
        "is_collection",
        "target",
        "mapping",
        "group",
        "allow",
        "deny",
    ] {
        if o.get(k).is_some() {
            cx.warn(
                o.path(k),
                "response manipulation does not apply to a relayed MCP endpoint; skipped",
            );
        }
    }
    let extra = o.get("extra_config");
    o.finish(true, cx);
    if let Some(extra) = extra.and_then(Value::as_object) {
        for (ns, nv) in extra {
            let nat = format!("{at}.extra_config.{ns}");
            match ns.as_str() {
                "qos/circuit-breaker" => {
                    if let Some(c) = traffic::circuit_breaker(nv, &nat, cx) {
                        b.insert("circuit_breaker".into(), c);
                    }
                }
                "modifier/martian" => {
                    martian::modifiers(nv, &nat, request_headers, response_headers, cx)
                }
                "validation/cel" => {
                    let bcx = cel::Context {
                        tag: "b".into(),
                        backend: true,
                        jwt: false,
                    };
                    rules.extend(cel::validation(nv, &nat, &bcx, cx))
                }
                "backend/http" | "backend/http/client" => cx.warn(
                    &nat,
                    "mcpgate relays the upstream's status and body unchanged; skipped",
                ),
                _ => cx.error(
                    &nat,
                    "namespace not supported by mcpgate: the backend would run without it",
                ),
            }
        }
    } else if let Some(e) = extra {
        cx.error(
            format!("{at}.extra_config"),
            format!("expected an object, found {e}"),
        );
    }
    (Value::Object(b), narrowed)
}

/// The endpoint's `proxy` namespace: `max_payload` (Enterprise) in bytes; the rest combines
/// several backends, which an MCP endpoint does not have.
fn proxy(v: &Value, at: &str, cx: &mut Cx) -> Option<u64> {
    let mut o = Obj::new(v, at, true, cx);
    let max = o.uint("max_payload", cx).filter(|n| *n > 0);
    if o.bool("decompress_gzip", cx) == Some(true) {
        cx.warn(
            o.path("decompress_gzip"),
            "mcpgate relays a gzipped body as it is (max_payload counts its compressed bytes); skipped",
        );
    }
    for k in [
        "sequential",
        "sequential_propagated_params",
        "flatmap_filter",
        "combiner",
        "static",
        "shadow",
    ] {
        if o.get(k).is_some() {
            cx.warn(
                o.path(k),
                "combines several backends; an MCP endpoint has one; skipped",
            );
        }
    }
    o.finish(true, cx);
    max
}

//! Semantic checks of the config file that the JSON Schema cannot express: addresses, URLs,
//! durations, files, duplicates. Every problem is collected; nothing stops at the first.

use super::file::{
    AccessLogSettings, EndpointConfig, FileConfig, Listen, ListenerConfig, ListenerEntry,
    RuntimeModel, ServerSettings,
};
use crate::config::{parse_duration, parse_host_url, Problem};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// Methods an endpoint may list.
const KNOWN_METHODS: &[&str] = &["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"];

/// Runs every semantic check on a structurally valid config.
pub fn check(cfg: &FileConfig, problems: &mut Vec<Problem>) {
    let mut bound = HashSet::new();
    check_listen(&cfg.listen, &mut bound, problems);
    check_admin(cfg.admin.as_deref(), &mut bound, problems);
    check_server(&cfg.server, problems);
    check_per_core_ports(cfg, problems);
    check_access_log(&cfg.access_log, problems);
    duration_field(&cfg.reload.interval, "reload.interval", problems);
    duration_field(&cfg.reload.debounce, "reload.debounce", problems);
    if let Some(t) = &cfg.tracing {
        t.check("tracing", problems);
    }
    if cfg.endpoints.is_empty() {
        problems.push(Problem::new("endpoints", "at least one endpoint is needed"));
    }
    let items: Vec<(usize, &EndpointConfig)> = cfg.endpoints.iter().enumerate().collect();
    check_endpoints(&items, problems);
}

/// Checks every part of a config that deserializes on its own, when the document as a whole
/// does not (so a structural error in one place does not hide problems elsewhere).
pub fn check_leniently(value: &Value, problems: &mut Vec<Problem>) {
    fn part<T: serde::de::DeserializeOwned>(value: &Value, key: &str) -> Option<T> {
        serde_json::from_value(value.get(key)?.clone()).ok()
    }
    let mut bound = HashSet::new();
    if let Some(listen) = part::<Listen>(value, "listen") {
        check_listen(&listen, &mut bound, problems);
    }
    if let Some(admin) = value.get("admin").and_then(Value::as_str) {
        check_admin(Some(admin), &mut bound, problems);
    }
    if let Some(server) = part::<ServerSettings>(value, "server") {
        check_server(&server, problems);
    }
    if let Some(log) = part::<AccessLogSettings>(value, "access_log") {
        check_access_log(&log, problems);
    }
    if let Some(r) = part::<super::file::ReloadSettings>(value, "reload") {
        duration_field(&r.interval, "reload.interval", problems);
        duration_field(&r.debounce, "reload.debounce", problems);
    }
    if let Some(t) = part::<crate::observability::otel::TracingConfig>(value, "tracing") {
        t.check("tracing", problems);
    }
    let parsed: Vec<(usize, EndpointConfig)> = value
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, item)| Some((i, serde_json::from_value(item.clone()).ok()?)))
        .collect();
    let items: Vec<(usize, &EndpointConfig)> = parsed.iter().map(|(i, e)| (*i, e)).collect();
    check_endpoints(&items, problems);
}

fn check_listen(listen: &Listen, bound: &mut HashSet<SocketAddr>, problems: &mut Vec<Problem>) {
    let raw: Vec<(String, &ListenerEntry)> = match listen {
        Listen::One(e) => vec![("listen".to_string(), e)],
        Listen::Many(v) => v
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("listen[{i}]"), e))
            .collect(),
    };
    if raw.is_empty() {
        problems.push(Problem::new("listen", "at least one listener is needed"));
    }
    for (path, entry) in &raw {
        match entry {
            ListenerEntry::Address(a) => check_address(a, path, bound, problems),
            ListenerEntry::Full(l) => check_listener(l, path, bound, problems),
        }
    }
}

fn check_admin(admin: Option<&str>, bound: &mut HashSet<SocketAddr>, problems: &mut Vec<Problem>) {
    let Some(admin) = admin else { return };
    match admin.parse::<SocketAddr>() {
        Ok(a) if !bound.insert(a) => {
            problems.push(Problem::new("admin", format!("{a} is already a listener")))
        }
        Ok(_) => {}
        Err(_) => problems.push(Problem::new("admin", bad_addr(admin))),
    }
}

fn check_server(s: &ServerSettings, problems: &mut Vec<Problem>) {
    if s.threads == Some(0) {
        problems.push(Problem::new("server.threads", "must be at least 1"));
    }
    if s.runtime == Some(RuntimeModel::PerCore) && s.work_stealing.is_some() {
        problems.push(Problem::new(
            "server.work_stealing",
            "applies only to `runtime: work_stealing` (per_core workers never steal)",
        ));
    }
    duration_field(&s.grace_period, "server.grace_period", problems);
    duration_field(
        &s.graceful_shutdown_timeout,
        "server.graceful_shutdown_timeout",
        problems,
    );
    if let Some(t) = &s.header_timeout {
        match parse_duration(t) {
            Ok(d) if d.is_zero() => problems.push(Problem::new(
                "server.header_timeout",
                "must be greater than zero",
            )),
            Ok(_) => {}
            Err(msg) => problems.push(Problem::new("server.header_timeout", msg)),
        }
    }
}

/// Per-core workers each bind their own socket to every listener address: port 0 would give each
/// a different port.
fn check_per_core_ports(cfg: &FileConfig, problems: &mut Vec<Problem>) {
    if cfg.server.runtime_model() != RuntimeModel::PerCore || cfg.server.threads == Some(1) {
        return;
    }
    for (i, l) in cfg.listen.entries().iter().enumerate() {
        if l.address.parse::<SocketAddr>().is_ok_and(|a| a.port() == 0) {
            let path = match cfg.listen {
                Listen::One(_) => "listen".to_string(),
                Listen::Many(_) => format!("listen[{i}]"),
            };
            problems.push(Problem::new(
                path,
                "port 0 cannot be shared by the per-core workers: give a port, or set \
                 `server.runtime: work_stealing`",
            ));
        }
    }
}

fn check_access_log(log: &AccessLogSettings, problems: &mut Vec<Problem>) {
    if log.path == "-" {
        return;
    }
    let p = std::path::Path::new(&log.path);
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
    if parent.is_some_and(|d| !d.is_dir()) {
        problems.push(Problem::new(
            "access_log.path",
            format!("the directory of {:?} does not exist", log.path),
        ));
    }
}

/// The methods an endpoint serves, upper-case (the default when `methods` is not set).
pub fn endpoint_methods(ep: &EndpointConfig) -> Vec<String> {
    match &ep.methods {
        Some(list) => list.iter().map(|m| m.to_ascii_uppercase()).collect(),
        None => DEFAULT_METHODS.iter().map(|m| m.to_string()).collect(),
    }
}

/// The methods of an endpoint without `methods`.
pub const DEFAULT_METHODS: &[&str] = &["POST", "GET", "DELETE"];

fn check_endpoints(items: &[(usize, &EndpointConfig)], problems: &mut Vec<Problem>) {
    // Several endpoints may share a path when their methods differ (each with its own
    // settings); a method served twice on one path is ambiguous.
    let mut served: HashMap<(&str, String), usize> = HashMap::new();
    let mut names = HashSet::new();
    for (i, ep) in items {
        let at = format!("endpoints[{i}]");
        for m in endpoint_methods(ep) {
            if let Some(first) = served.get(&(ep.path.as_str(), m.clone())) {
                problems.push(Problem::new(
                    format!("{at}.methods"),
                    format!(
                        "{m} {:?} is already served by endpoints[{first}] (endpoints may share a path only with different methods)",
                        ep.path
                    ),
                ));
            } else {
                served.insert((ep.path.as_str(), m), *i);
            }
        }
        if let Some(name) = &ep.name {
            if !names.insert(name.as_str()) {
                problems.push(Problem::new(
                    format!("{at}.name"),
                    format!("{name:?} is used by an earlier endpoint"),
                ));
            }
        }
        check_endpoint(ep, &at, problems);
    }
}

fn check_address(
    a: &str,
    path: &str,
    bound: &mut HashSet<SocketAddr>,
    problems: &mut Vec<Problem>,
) {
    match a.parse::<SocketAddr>() {
        Ok(addr) if !bound.insert(addr) => {
            problems.push(Problem::new(path, format!("{addr} is listed twice")))
        }
        Ok(_) => {}
        Err(_) => problems.push(Problem::new(path, bad_addr(a))),
    }
}

fn check_listener(
    l: &ListenerConfig,
    path: &str,
    bound: &mut HashSet<SocketAddr>,
    problems: &mut Vec<Problem>,
) {
    check_address(&l.address, &format!("{path}.address"), bound, problems);
    if let Some(tls) = &l.tls {
        readable_file(&tls.cert, &format!("{path}.tls.cert"), problems);
        readable_file(&tls.key, &format!("{path}.tls.key"), problems);
    }
}

fn check_endpoint(ep: &EndpointConfig, at: &str, problems: &mut Vec<Problem>) {
    if !ep.path.starts_with('/') || ep.path.contains(['?', '#', ' ']) {
        problems.push(Problem::new(
            format!("{at}.path"),
            format!("{:?} must be an absolute path such as \"/mcp\"", ep.path),
        ));
    }
    if let Some(methods) = &ep.methods {
        if methods.is_empty() {
            problems.push(Problem::new(format!("{at}.methods"), "must not be empty"));
        }
        let mut seen = HashSet::new();
        for (j, m) in methods.iter().enumerate() {
            let up = m.to_ascii_uppercase();
            if !KNOWN_METHODS.contains(&up.as_str()) {
                problems.push(Problem::new(
                    format!("{at}.methods[{j}]"),
                    format!(
                        "unknown method {m:?} (use one of {})",
                        KNOWN_METHODS.join(", ")
                    ),
                ));
            } else if !seen.insert(up) {
                problems.push(Problem::new(
                    format!("{at}.methods[{j}]"),
                    format!("{m:?} is listed twice"),
                ));
            }
        }
    }
    for (j, h) in ep.input_headers.iter().flatten().enumerate() {
        let name = h.strip_suffix('*').unwrap_or(h);
        if h != "*" && http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(Problem::new(
                format!("{at}.input_headers[{j}]"),
                format!("{h:?} is not a valid header name"),
            ));
        }
    }
    for (j, q) in ep.input_query_strings.iter().flatten().enumerate() {
        if q.is_empty() || q.contains(['&', '=', '#', ' ']) {
            problems.push(Problem::new(
                format!("{at}.input_query_strings[{j}]"),
                format!("{q:?} is not a valid query parameter name"),
            ));
        }
    }
    match (&ep.backend, &ep.servers) {
        (Some(b), None) => check_backend(b, &format!("{at}.backend"), problems),
        (None, Some(servers)) => super::federation::check_servers(
            servers,
            ep.federation.as_ref(),
            at,
            &check_backend,
            problems,
        ),
        (Some(_), Some(_)) => problems.push(Problem::new(
            at,
            "has both `backend` and `servers`: use one",
        )),
        (None, None) => problems.push(Problem::new(
            format!("{at}.backend"),
            "is required (or `servers` for several MCP servers)",
        )),
    }
    if ep.federation.is_some() && ep.servers.is_none() {
        problems.push(Problem::new(
            format!("{at}.federation"),
            "applies only to an endpoint with `servers`",
        ));
    }
}

/// Checks one backend (of an endpoint, or of a federated server) at `bat`.
fn check_backend(b: &super::file::BackendConfig, bat: &str, problems: &mut Vec<Problem>) {
    if b.hosts.is_empty() {
        problems.push(Problem::new(
            format!("{bat}.hosts"),
            "at least one host is needed",
        ));
    }
    let mut seen = HashSet::new();
    for (j, h) in b.hosts.iter().enumerate() {
        match parse_host_url(h) {
            Ok(u) if !seen.insert((u.host.clone(), u.port)) => problems.push(Problem::new(
                format!("{bat}.hosts[{j}]"),
                format!("{h:?} is listed twice"),
            )),
            Ok(_) => {}
            Err(msg) => problems.push(Problem::new(format!("{bat}.hosts[{j}]"), msg)),
        }
    }
    if let Some(p) = &b.path {
        if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
            problems.push(Problem::new(
                format!("{bat}.path"),
                format!("{p:?} must be an absolute path such as \"/mcp\""),
            ));
        }
    }
    duration_field(
        &b.connect_timeout,
        &format!("{bat}.connect_timeout"),
        problems,
    );
    duration_field(&b.idle_timeout, &format!("{bat}.idle_timeout"), problems);
    duration_field(&b.write_timeout, &format!("{bat}.write_timeout"), problems);
    let hc = &b.health_check;
    let hat = format!("{bat}.health_check");
    duration_field(&hc.interval, &format!("{hat}.interval"), problems);
    duration_field(&hc.timeout, &format!("{hat}.timeout"), problems);
    if let Some(p) = &hc.path {
        if !p.starts_with('/') {
            problems.push(Problem::new(
                format!("{hat}.path"),
                format!("{p:?} must be an absolute path"),
            ));
        }
    }
    for (v, name) in [
        (hc.healthy_threshold, "healthy_threshold"),
        (hc.unhealthy_threshold, "unhealthy_threshold"),
    ] {
        if v == Some(0) {
            problems.push(Problem::new(format!("{hat}.{name}"), "must be at least 1"));
        }
    }
}

fn bad_addr(a: &str) -> String {
    format!("invalid address {a:?} (expected IP:port, e.g. 127.0.0.1:8080 or [::1]:8080)")
}

fn readable_file(path: &str, at: &str, problems: &mut Vec<Problem>) {
    if let Err(e) = std::fs::metadata(path).and_then(|m| {
        if m.is_file() {
            Ok(())
        } else {
            Err(std::io::Error::other("not a regular file"))
        }
    }) {
        problems.push(Problem::new(at, format!("cannot read {path:?}: {e}")));
    }
}

fn duration_field(v: &Option<String>, at: &str, problems: &mut Vec<Problem>) {
    if let Some(s) = v {
        if let Err(msg) = parse_duration(s) {
            problems.push(Problem::new(at, msg));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_timeout_is_a_positive_duration() {
        let check = |v: &str| {
            let text = format!(
                "listen: 127.0.0.1:8080\nserver:\n  header_timeout: {v}\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://127.0.0.1:3000]\n"
            );
            crate::runtime::load::load_str(&text, false, "t").map_err(|e| e.to_string())
        };
        let cfg = check("2s").expect("valid");
        assert_eq!(cfg.server.header_timeout.as_deref(), Some("2s"));
        for bad in ["0s", "soon", "5"] {
            let err = check(bad).expect_err(bad);
            assert!(err.contains("server.header_timeout"), "{bad}: {err}");
        }
    }

    #[test]
    fn runtime_model_and_its_problems() {
        let load = |listen: &str, server: &str| {
            let text = format!(
                "listen: {listen}\nserver:\n{server}endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://127.0.0.1:3000]\n"
            );
            crate::runtime::load::load_str(&text, false, "t").map_err(|e| e.to_string())
        };
        let model = |server: &str| {
            load("127.0.0.1:8080", server)
                .expect("valid")
                .server
                .runtime_model()
        };
        assert_eq!(model("  threads: 2\n"), RuntimeModel::PerCore);
        assert_eq!(model("  runtime: per_core\n"), RuntimeModel::PerCore);
        assert_eq!(
            model("  runtime: work_stealing\n"),
            RuntimeModel::WorkStealing
        );
        assert_eq!(
            model("  runtime: work_stealing\n  work_stealing: false\n"),
            RuntimeModel::WorkStealing
        );
        // `work_stealing` alone: true keeps work stealing, false is what per_core does better.
        assert_eq!(model("  work_stealing: true\n"), RuntimeModel::WorkStealing);
        assert_eq!(model("  work_stealing: false\n"), RuntimeModel::PerCore);

        let err = load(
            "127.0.0.1:8080",
            "  runtime: per_core\n  work_stealing: true\n",
        )
        .expect_err("conflict");
        assert!(err.contains("server.work_stealing: applies only"), "{err}");
        let err = load("127.0.0.1:8080", "  runtime: per_thread\n").expect_err("unknown");
        assert!(err.contains("runtime"), "{err}");
        // Port 0 would give each worker another port: refused unless one worker or work stealing.
        let err = load("127.0.0.1:0", "  threads: 2\n").expect_err("port 0");
        assert!(err.contains("listen: port 0 cannot be shared"), "{err}");
        let err = load("[127.0.0.1:8080, 127.0.0.1:0]", "  threads: 3\n").expect_err("port 0");
        assert!(err.contains("listen[1]: port 0"), "{err}");
        assert!(!err.contains("listen[0]"), "{err}");
        load("127.0.0.1:0", "  threads: 1\n").expect("one worker");
        load("127.0.0.1:0", "  threads: 2\n  runtime: work_stealing\n").expect("shared");
    }

    #[test]
    fn a_path_may_repeat_with_other_methods_only() {
        let ep = |path: &str, methods: Option<&[&str]>| -> EndpointConfig {
            serde_json::from_value(serde_json::json!({
                "path": path,
                "methods": methods,
                "backend": {"hosts": ["http://127.0.0.1:3000"]}
            }))
            .expect("endpoint")
        };
        let list = [
            ep("/mcp", Some(&["POST"])),
            ep("/mcp", Some(&["get", "DELETE"])),
            ep("/other", None),
        ];
        let items: Vec<(usize, &EndpointConfig)> = list.iter().enumerate().collect();
        let mut problems = Vec::new();
        check_endpoints(&items, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");

        let list = [ep("/mcp", Some(&["POST"])), ep("/mcp", None)];
        let items: Vec<(usize, &EndpointConfig)> = list.iter().enumerate().collect();
        check_endpoints(&items, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "endpoints[1].methods");
        assert!(
            problems[0]
                .message
                .contains("POST \"/mcp\" is already served by endpoints[0]"),
            "{problems:?}"
        );
    }
}

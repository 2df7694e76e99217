//! Semantic checks that the JSON Schema cannot express: addresses, URLs, durations, files,
//! duplicates. Every problem is collected; nothing stops at the first.

use super::load::Problem;
use super::{
    AccessLogSettings, EndpointConfig, FileConfig, Listen, ListenerConfig, ListenerEntry,
    ServerSettings,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

/// Methods an endpoint may list.
const KNOWN_METHODS: &[&str] = &["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"];

/// Runs every semantic check on a structurally valid config.
pub fn check(cfg: &FileConfig, problems: &mut Vec<Problem>) {
    let mut bound = HashSet::new();
    check_listen(&cfg.listen, &mut bound, problems);
    check_admin(cfg.admin.as_deref(), &mut bound, problems);
    check_server(&cfg.server, problems);
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
    if let Some(r) = part::<crate::runtime::watch::ReloadSettings>(value, "reload") {
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
    duration_field(&s.grace_period, "server.grace_period", problems);
    duration_field(
        &s.graceful_shutdown_timeout,
        "server.graceful_shutdown_timeout",
        problems,
    );
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
    let b = &ep.backend;
    let bat = format!("{at}.backend");
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

/// A problem at `{at}.name` when `name` was already used by an earlier entry of the same list.
pub fn name_used_before<'a>(
    earlier: impl IntoIterator<Item = &'a str>,
    name: &str,
    at: &str,
) -> Option<Problem> {
    earlier
        .into_iter()
        .any(|n| n == name)
        .then(|| Problem::new(format!("{at}.name"), format!("{name:?} is used twice")))
}

/// Parses `500ms`, `5s`, `2m`, `1h` or a sequence such as `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (use e.g. 500ms, 5s, 2m, 1h)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let d = match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(d);
        rest = &rest[unit..];
    }
    Ok(total)
}

/// An upstream base URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUrl {
    /// `https://`.
    pub tls: bool,
    /// Host name or IP (without brackets).
    pub host: String,
    /// Port (the scheme's default when omitted).
    pub port: u16,
    /// `host[:port]` as it goes into the `Host` header.
    pub authority: String,
}

/// Parses an upstream host URL such as `http://127.0.0.1:3000`.
pub fn parse_host_url(s: &str) -> Result<HostUrl, String> {
    let bad = |why: &str| format!("invalid URL {s:?}: {why}");
    let u = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
    let tls = match u.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(bad(&format!("scheme {other:?} is not http or https"))),
    };
    if !s.contains("://") {
        return Err(bad("expected http://host:port"));
    }
    let host = match u.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(h) => h.to_string(),
        None => return Err(bad("no host")),
    };
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL; use header modifiers",
        ));
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(bad("give the path in backend.path, not in the host URL"));
    }
    let port = u.port_or_known_default().ok_or_else(|| bad("no port"))?;
    let authority = match (u.host(), u.port()) {
        (Some(url::Host::Ipv6(a)), Some(p)) => format!("[{a}]:{p}"),
        (Some(url::Host::Ipv6(a)), None) => format!("[{a}]"),
        (_, Some(p)) => format!("{host}:{p}"),
        (_, None) => host.clone(),
    };
    Ok(HostUrl {
        tls,
        host,
        port,
        authority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "5", "s", "5x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
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

    #[test]
    fn host_urls() {
        let u = parse_host_url("http://127.0.0.1:3000").unwrap();
        assert_eq!(
            (u.tls, u.port, u.authority.as_str()),
            (false, 3000, "127.0.0.1:3000")
        );
        let u = parse_host_url("https://mcp.example.com").unwrap();
        assert_eq!(
            (u.tls, u.port, u.authority.as_str()),
            (true, 443, "mcp.example.com")
        );
        let u = parse_host_url("http://[::1]:9000/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority.as_str()),
            ("::1", "[::1]:9000")
        );
        for bad in [
            "htp:/x",
            "ftp://a",
            "http://a/b",
            "http://u:p@a",
            "127.0.0.1:80",
        ] {
            assert!(parse_host_url(bad).is_err(), "{bad}");
        }
    }
}

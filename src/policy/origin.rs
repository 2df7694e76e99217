//! Host and Origin validation against DNS rebinding (MCP 2025-11-25: an invalid `Origin` gets
//! 403). Requests without `Origin` (non-browser clients) are allowed when their `Host` is.
//!
//! Defaults, secure without configuration: when every listener is on a loopback address only
//! loopback host names (`localhost`, `127.0.0.1`, `[::1]`, any port) are accepted in `Host` and
//! `Origin`; otherwise any `Host` is accepted and an `Origin` must name the same host as `Host`.

use crate::config::Problem;
use crate::error::GatewayError;
use pingora::http::RequestHeader;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Host and Origin checks.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// Accepted `Host` values: `name`, `name:port`, `*.example.com` (subdomains) or `*` (any).
    /// Default: loopback names when every listener is on a loopback address, else any.
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    /// Accepted `Origin` values when a request has one: `https://app.example.com`,
    /// `https://*.example.com`, `null` or `*`. Default: an origin whose host is an accepted host
    /// (or, when any host is accepted, the request's own host).
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
}

/// The compiled check.
#[derive(Debug, Clone)]
pub struct OriginCheck {
    hosts: HostRule,
    origins: OriginRule,
}

#[derive(Debug, Clone)]
enum HostRule {
    Any,
    Loopback,
    List(Vec<HostPattern>),
}

#[derive(Debug, Clone)]
enum OriginRule {
    Any,
    /// The origin's host must pass the host rule (same-origin when that rule is `Any`).
    LikeHost,
    List(Vec<OriginPattern>),
}

#[derive(Debug, Clone)]
struct HostPattern {
    /// Lower-case name, without a leading `*.`.
    name: String,
    wildcard: bool,
    port: Option<u16>,
}

#[derive(Debug, Clone)]
enum OriginPattern {
    Null,
    Exact(String),
    Pattern { scheme: String, host: HostPattern },
}

impl OriginCheck {
    /// Compiles `cfg`; `loopback_listeners` is true when every listener binds a loopback address.
    pub fn compile(
        cfg: &OriginConfig,
        loopback_listeners: bool,
        at: &str,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let hosts = match &cfg.allowed_hosts {
            None if loopback_listeners => HostRule::Loopback,
            None => HostRule::Any,
            Some(list) if list.iter().any(|h| h == "*") => HostRule::Any,
            Some(list) => HostRule::List(
                list.iter()
                    .enumerate()
                    .filter_map(|(i, h)| match parse_host_pattern(h) {
                        Some(p) => Some(p),
                        None => {
                            problems.push(Problem::new(
                                format!("{at}.allowed_hosts[{i}]"),
                                format!("{h:?} is not a host name, host:port or *.domain"),
                            ));
                            None
                        }
                    })
                    .collect(),
            ),
        };
        let origins = match &cfg.allowed_origins {
            None => OriginRule::LikeHost,
            Some(list) if list.iter().any(|o| o == "*") => OriginRule::Any,
            Some(list) => OriginRule::List(
                list.iter()
                    .enumerate()
                    .filter_map(|(i, o)| match parse_origin_pattern(o) {
                        Some(p) => Some(p),
                        None => {
                            problems.push(Problem::new(
                                format!("{at}.allowed_origins[{i}]"),
                                format!(
                                    "{o:?} is not an origin such as \"https://app.example.com\""
                                ),
                            ));
                            None
                        }
                    })
                    .collect(),
            ),
        };
        if problems.is_empty() {
            Ok(OriginCheck { hosts, origins })
        } else {
            Err(problems)
        }
    }

    /// Checks the request's `Host` and `Origin`; an origin for which `also_allowed` is true (the
    /// endpoint's CORS origins) passes too.
    pub fn check(
        &self,
        req: &RequestHeader,
        also_allowed: impl Fn(&str) -> bool,
    ) -> Result<(), GatewayError> {
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()));
        if !matches!(self.hosts, HostRule::Any) {
            let ok = host
                .and_then(split_host_port)
                .is_some_and(|(name, port)| self.host_ok(&name, port));
            if !ok {
                return Err(GatewayError::Forbidden("host_not_allowed"));
            }
        }
        let Some(origin) = req.headers.get(http::header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("").trim();
        let ok = also_allowed(origin)
            || match &self.origins {
                OriginRule::Any => true,
                OriginRule::List(list) => list.iter().any(|p| p.matches(origin)),
                OriginRule::LikeHost => match origin_host(origin) {
                    None => false,
                    Some((name, port)) => match &self.hosts {
                        HostRule::Any => host
                            .and_then(split_host_port)
                            .is_some_and(|(h, _)| h == name),
                        _ => self.host_ok(&name, port),
                    },
                },
            };
        if ok {
            Ok(())
        } else {
            Err(GatewayError::Forbidden("origin_not_allowed"))
        }
    }

    fn host_ok(&self, name: &str, port: Option<u16>) -> bool {
        match &self.hosts {
            HostRule::Any => true,
            HostRule::Loopback => is_loopback_name(name),
            HostRule::List(list) => list.iter().any(|p| p.matches(name, port)),
        }
    }
}

impl HostPattern {
    fn matches(&self, name: &str, port: Option<u16>) -> bool {
        let name_ok = if self.wildcard {
            name.len() > self.name.len() + 1
                && name.ends_with(&self.name)
                && name.as_bytes()[name.len() - self.name.len() - 1] == b'.'
        } else {
            name == self.name
        };
        name_ok && (self.port.is_none() || self.port == port)
    }
}

impl OriginPattern {
    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Null => origin == "null",
            OriginPattern::Exact(o) => origin.eq_ignore_ascii_case(o),
            OriginPattern::Pattern { scheme, host } => {
                let Some((s, rest)) = origin.split_once("://") else {
                    return false;
                };
                s.eq_ignore_ascii_case(scheme)
                    && split_host_port(rest).is_some_and(|(n, p)| host.matches(&n, p))
            }
        }
    }
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `name[:port]` (IPv6 in brackets) -> lower-case name without brackets, port.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((ip.to_ascii_lowercase(), port));
    }
    match s.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => {
            Some((name.to_ascii_lowercase(), Some(port.parse().ok()?)))
        }
        Some(_) => None,
        None => Some((s.to_ascii_lowercase(), None)),
    }
}

/// The host part of an origin such as `http://localhost:3000`.
fn origin_host(origin: &str) -> Option<(String, Option<u16>)> {
    let (_, rest) = origin.split_once("://")?;
    split_host_port(rest.trim_end_matches('/'))
}

fn parse_host_pattern(s: &str) -> Option<HostPattern> {
    let (wildcard, rest) = match s.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (name, port) = split_host_port(rest)?;
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    valid.then_some(HostPattern {
        name,
        wildcard,
        port,
    })
}

fn parse_origin_pattern(s: &str) -> Option<OriginPattern> {
    if s == "null" {
        return Some(OriginPattern::Null);
    }
    let (scheme, rest) = s.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.contains('/') {
        return None;
    }
    if rest.contains('*') {
        return Some(OriginPattern::Pattern {
            scheme: scheme.to_string(),
            host: parse_host_pattern(rest)?,
        });
    }
    parse_host_pattern(rest)?;
    Some(OriginPattern::Exact(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: Option<&str>, origin: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/mcp", None).unwrap();
        if let Some(h) = host {
            r.insert_header("host", h).unwrap();
        }
        if let Some(o) = origin {
            r.insert_header("origin", o).unwrap();
        }
        r
    }

    fn check(cfg: &OriginConfig, loopback: bool, host: Option<&str>, origin: Option<&str>) -> bool {
        OriginCheck::compile(cfg, loopback, "p")
            .unwrap()
            .check(&req(host, origin), |_| false)
            .is_ok()
    }

    #[test]
    fn loopback_default_rejects_rebinding() {
        let d = OriginConfig::default();
        assert!(check(&d, true, Some("127.0.0.1:8080"), None));
        assert!(check(
            &d,
            true,
            Some("localhost:8080"),
            Some("http://localhost:8080")
        ));
        assert!(check(
            &d,
            true,
            Some("[::1]:8080"),
            Some("http://[::1]:8080")
        ));
        assert!(!check(
            &d,
            true,
            Some("evil.example.com"),
            Some("http://evil.example.com")
        ));
        assert!(!check(&d, true, Some("evil.example.com"), None));
        assert!(!check(
            &d,
            true,
            Some("127.0.0.1:8080"),
            Some("http://evil.example.com")
        ));
        assert!(!check(&d, true, Some("127.0.0.1:8080"), Some("null")));
    }

    #[test]
    fn public_default_is_same_origin() {
        let d = OriginConfig::default();
        assert!(check(&d, false, Some("mcp.example.com"), None));
        assert!(check(
            &d,
            false,
            Some("mcp.example.com"),
            Some("https://mcp.example.com")
        ));
        assert!(!check(
            &d,
            false,
            Some("mcp.example.com"),
            Some("https://evil.example.com")
        ));
    }

    #[test]
    fn configured_lists() {
        let cfg = OriginConfig {
            allowed_hosts: Some(vec!["mcp.example.com".into(), "*.internal".into()]),
            allowed_origins: Some(vec![
                "https://app.example.com".into(),
                "https://*.example.org".into(),
            ]),
        };
        assert!(check(
            &cfg,
            false,
            Some("mcp.example.com:443"),
            Some("https://app.example.com")
        ));
        assert!(check(
            &cfg,
            false,
            Some("a.b.internal"),
            Some("https://x.example.org")
        ));
        assert!(!check(&cfg, false, Some("internal"), None));
        assert!(!check(
            &cfg,
            false,
            Some("mcp.example.com"),
            Some("http://app.example.com")
        ));
        assert!(!check(
            &cfg,
            false,
            Some("mcp.example.com"),
            Some("https://example.org")
        ));
    }

    #[test]
    fn bad_patterns_are_reported_with_paths() {
        let cfg = OriginConfig {
            allowed_hosts: Some(vec!["ok.example".into(), "bad host".into()]),
            allowed_origins: Some(vec!["ftp://x".into(), "https://a.example/path".into()]),
        };
        let problems = OriginCheck::compile(&cfg, false, "policies.origin").unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "policies.origin.allowed_hosts[1]",
                "policies.origin.allowed_origins[0]",
                "policies.origin.allowed_origins[1]"
            ]
        );
    }
}

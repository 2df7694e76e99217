//! CORS, answered by the gateway: preflights never reach the upstream, and the upstream's own
//! `Access-Control-*` headers are replaced (never duplicated) on every answer, the gateway's
//! error answers included.

use crate::config::{parse_duration, Problem};
use http::header::{self, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CORS settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call: `https://app.example.com`, `https://*.example.com`, or `*`
    /// (any; not combinable with `allow_credentials`).
    pub allowed_origins: Vec<String>,
    /// Methods allowed (default `GET, POST, DELETE`).
    #[serde(default)]
    pub allowed_methods: Option<Vec<String>>,
    /// Request headers allowed (default: `Content-Type`, `Accept`, `Authorization`,
    /// `Mcp-Session-Id`, `MCP-Protocol-Version`, `Last-Event-ID`, `Mcp-Method`, `Mcp-Name`,
    /// `Mcp-Param-*`). A trailing `*` matches a prefix.
    #[serde(default)]
    pub allowed_headers: Option<Vec<String>>,
    /// Response headers scripts may read (default `Mcp-Session-Id`, `WWW-Authenticate`).
    #[serde(default)]
    pub exposed_headers: Option<Vec<String>>,
    /// Allow credentials (cookies, HTTP auth) (default false).
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight (default `10m`).
    #[serde(default)]
    pub max_age: Option<String>,
}

const DEFAULT_ALLOWED_HEADERS: &[&str] = &[
    "content-type",
    "accept",
    "authorization",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    "mcp-param-*",
];

/// The compiled CORS policy.
#[derive(Debug, Clone)]
pub struct Cors {
    any_origin: bool,
    origins: Vec<(String, Option<String>)>,
    methods: HeaderValue,
    method_list: Vec<String>,
    headers: Vec<String>,
    exposed: HeaderValue,
    credentials: bool,
    max_age: HeaderValue,
}

/// What a preflight gets.
pub enum Preflight {
    /// The headers of a 204 answer.
    Allowed(Vec<(HeaderName, HeaderValue)>),
    /// The origin, method or a header is not allowed (403).
    Refused,
}

impl Cors {
    /// Compiles `cfg` at config path `at`, listing every problem.
    pub fn compile(cfg: &CorsConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let any_origin = cfg.allowed_origins.iter().any(|o| o == "*");
        if any_origin && cfg.allow_credentials {
            problems.push(Problem::new(
                format!("{at}.allowed_origins"),
                "\"*\" cannot be combined with allow_credentials: list the origins",
            ));
        }
        if cfg.allowed_origins.is_empty() {
            problems.push(Problem::new(
                format!("{at}.allowed_origins"),
                "list at least one origin",
            ));
        }
        let mut origins = Vec::new();
        for (i, o) in cfg.allowed_origins.iter().enumerate() {
            if o == "*" {
                continue;
            }
            // A wildcard may only stand for the first label (`https://*.example.com`).
            let valid = o.split_once("://").is_some_and(|(s, rest)| {
                let host = rest.strip_prefix("*.").unwrap_or(rest);
                matches!(s, "http" | "https") && !host.is_empty() && !host.contains(['/', '*'])
            });
            if !valid {
                problems.push(Problem::new(
                    format!("{at}.allowed_origins[{i}]"),
                    format!("{o:?} is not an origin such as \"https://app.example.com\" or \"https://*.example.com\" (a wildcard stands only for the first label)"),
                ));
                continue;
            }
            // `https://*.example.com` -> prefix `https://`, suffix `.example.com`.
            match o.split_once("*.") {
                Some((prefix, suffix)) => origins.push((
                    prefix.to_ascii_lowercase(),
                    Some(format!(".{}", suffix.to_ascii_lowercase())),
                )),
                None => origins.push((o.to_ascii_lowercase(), None)),
            }
        }
        let method_list: Vec<String> = cfg
            .allowed_methods
            .clone()
            .unwrap_or_else(|| vec!["GET".into(), "POST".into(), "DELETE".into()])
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        let headers: Vec<String> = match &cfg.allowed_headers {
            Some(h) => h.iter().map(|h| h.to_ascii_lowercase()).collect(),
            None => DEFAULT_ALLOWED_HEADERS
                .iter()
                .map(|h| h.to_string())
                .collect(),
        };
        let exposed = cfg
            .exposed_headers
            .clone()
            .unwrap_or_else(|| vec!["Mcp-Session-Id".into(), "WWW-Authenticate".into()])
            .join(", ");
        let max_age = match cfg.max_age.as_deref().map(parse_duration) {
            None => 600,
            Some(Ok(d)) => d.as_secs(),
            Some(Err(m)) => {
                problems.push(Problem::new(format!("{at}.max_age"), m));
                0
            }
        };
        let value = |s: &str, key: &str, problems: &mut Vec<Problem>| {
            HeaderValue::from_str(s).unwrap_or_else(|_| {
                problems.push(Problem::new(
                    format!("{at}.{key}"),
                    "contains characters not allowed in a header",
                ));
                HeaderValue::from_static("")
            })
        };
        let methods = value(&method_list.join(", "), "allowed_methods", &mut problems);
        let exposed = value(&exposed, "exposed_headers", &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Cors {
            any_origin,
            origins,
            methods,
            method_list,
            headers,
            exposed,
            credentials: cfg.allow_credentials,
            max_age: HeaderValue::from(max_age),
        })
    }

    /// Whether `origin` may call.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        if self.any_origin {
            return true;
        }
        let o = origin.to_ascii_lowercase();
        self.origins.iter().any(|(prefix, suffix)| match suffix {
            None => o == *prefix,
            Some(suffix) => o.strip_prefix(prefix.as_str()).is_some_and(|authority| {
                let host = authority.split(':').next().unwrap_or("");
                host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            }),
        })
    }

    /// Whether `req` is a CORS preflight.
    pub fn is_preflight(req: &RequestHeader) -> bool {
        req.method == http::Method::OPTIONS
            && req.headers.contains_key(header::ORIGIN)
            && req
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Answers a preflight.
    pub fn preflight(&self, req: &RequestHeader) -> Preflight {
        let origin = req
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let method = req
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !self.origin_allowed(origin) || !self.method_list.iter().any(|m| m == method) {
            return Preflight::Refused;
        }
        let requested: Vec<String> = req
            .headers
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if !requested.iter().all(|h| self.header_allowed(h)) {
            return Preflight::Refused;
        }
        let mut out = self.origin_headers(origin);
        out.push((header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone()));
        if let Ok(v) = HeaderValue::from_str(&requested.join(", ")) {
            if !requested.is_empty() {
                out.push((header::ACCESS_CONTROL_ALLOW_HEADERS, v));
            }
        }
        out.push((header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone()));
        Preflight::Allowed(out)
    }

    fn header_allowed(&self, h: &str) -> bool {
        self.headers.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => h.starts_with(prefix),
            None => a == h || a == "*",
        })
    }

    fn origin_headers(&self, origin: &str) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(4);
        let allow = if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            match HeaderValue::from_str(origin) {
                Ok(v) => v,
                Err(_) => return out,
            }
        };
        out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, allow));
        out.push((header::VARY, HeaderValue::from_static("Origin")));
        if self.credentials {
            out.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        out
    }

    /// Sets the CORS headers of an actual (non-preflight) answer, replacing any the upstream
    /// sent. Nothing is added when the request has no allowed `Origin`.
    pub fn apply(&self, origin: Option<&str>, resp: &mut ResponseHeader) -> pingora::Result<()> {
        for name in [
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_MAX_AGE,
        ] {
            resp.remove_header(&name);
        }
        let Some(origin) = origin.filter(|o| self.origin_allowed(o)) else {
            return Ok(());
        };
        for (name, value) in self.origin_headers(origin) {
            if name == header::VARY {
                resp.append_header(name, value)?;
            } else {
                resp.insert_header(name, value)?;
            }
        }
        resp.insert_header(header::ACCESS_CONTROL_EXPOSE_HEADERS, self.exposed.clone())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors::compile(
            &CorsConfig {
                allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
                allow_credentials: credentials,
                ..Default::default()
            },
            "p",
        )
        .unwrap()
    }

    fn preflight(origin: &str, method: &str, headers: &str) -> RequestHeader {
        let mut r = RequestHeader::build("OPTIONS", b"/mcp", None).unwrap();
        r.insert_header("origin", origin).unwrap();
        r.insert_header("access-control-request-method", method)
            .unwrap();
        if !headers.is_empty() {
            r.insert_header("access-control-request-headers", headers)
                .unwrap();
        }
        r
    }

    #[test]
    fn origins_exact_and_wildcard() {
        let c = cors(&["https://app.example.com", "https://*.example.org"], false);
        assert!(c.origin_allowed("https://app.example.com"));
        assert!(c.origin_allowed("https://a.b.example.org:8443"));
        assert!(!c.origin_allowed("https://example.org"));
        assert!(!c.origin_allowed("http://app.example.com"));
        assert!(!c.origin_allowed("https://evil.com/.example.org"));
    }

    #[test]
    fn preflight_answers() {
        let c = cors(&["https://app.example.com"], true);
        let Preflight::Allowed(h) = c.preflight(&preflight(
            "https://app.example.com",
            "POST",
            "content-type, mcp-session-id, mcp-param-x",
        )) else {
            panic!("refused")
        };
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            get("access-control-allow-origin").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            get("access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert_eq!(get("access-control-max-age").as_deref(), Some("600"));
        assert!(matches!(
            c.preflight(&preflight("https://evil.com", "POST", "")),
            Preflight::Refused
        ));
        assert!(matches!(
            c.preflight(&preflight("https://app.example.com", "PUT", "")),
            Preflight::Refused
        ));
        assert!(matches!(
            c.preflight(&preflight("https://app.example.com", "POST", "x-secret")),
            Preflight::Refused
        ));
    }

    #[test]
    fn upstream_cors_headers_are_replaced() {
        let c = cors(&["https://app.example.com"], false);
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("access-control-allow-origin", "*").unwrap();
        r.insert_header("access-control-expose-headers", "x")
            .unwrap();
        c.apply(Some("https://app.example.com"), &mut r).unwrap();
        assert_eq!(
            r.headers
                .get_all("access-control-allow-origin")
                .iter()
                .count(),
            1
        );
        assert_eq!(
            r.headers["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(
            r.headers["access-control-expose-headers"],
            "Mcp-Session-Id, WWW-Authenticate"
        );
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("access-control-allow-origin", "*").unwrap();
        c.apply(Some("https://evil.com"), &mut r).unwrap();
        assert!(r.headers.get("access-control-allow-origin").is_none());
    }

    #[test]
    fn credentials_with_any_origin_is_an_error() {
        let err = Cors::compile(
            &CorsConfig {
                allowed_origins: vec!["*".into()],
                allow_credentials: true,
                ..Default::default()
            },
            "p.cors",
        )
        .unwrap_err();
        assert_eq!(err[0].path, "p.cors.allowed_origins");
    }

    #[test]
    fn a_wildcard_anywhere_but_the_first_label_is_an_error() {
        let err = Cors::compile(
            &CorsConfig {
                allowed_origins: vec![
                    "https://example.*.com".into(),
                    "https://*.*.example.com".into(),
                    "https://*".into(),
                    "https://*.example.com".into(),
                ],
                ..Default::default()
            },
            "p.cors",
        )
        .unwrap_err();
        let paths: Vec<&str> = err.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "p.cors.allowed_origins[0]",
                "p.cors.allowed_origins[1]",
                "p.cors.allowed_origins[2]"
            ]
        );
    }
}

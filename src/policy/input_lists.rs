//! What of the client's request reaches the upstream: the `input_headers` and
//! `input_query_strings` allow-lists of an endpoint, compiled once per snapshot.

use http::header::{self, HeaderName};

/// Which request headers reach the upstream.
#[derive(Debug, Clone)]
pub struct HeaderAllowList {
    all: bool,
    exact: Vec<HeaderName>,
    prefixes: Vec<String>,
}

/// Headers that are never copied from the client: the gateway sets them itself, or they are
/// hop-by-hop (Pingora frames the body on its own).
const NEVER_COPIED: &[HeaderName] = &[
    header::HOST,
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

impl HeaderAllowList {
    /// Builds the list from config entries (`Name`, `Prefix-*`, or `*`); entries are
    /// validated at load, so an invalid one is skipped here.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        let mut list = HeaderAllowList {
            all: false,
            exact: Vec::new(),
            prefixes: Vec::new(),
        };
        for e in entries {
            let e = e.as_ref();
            if e == "*" {
                list.all = true;
            } else if let Some(prefix) = e.strip_suffix('*') {
                list.prefixes.push(prefix.to_ascii_lowercase());
            } else if let Ok(name) = HeaderName::from_bytes(e.as_bytes()) {
                list.exact.push(name);
            }
        }
        list
    }

    /// Whether a client header named `name` is forwarded. `Authorization` only when listed by
    /// its exact name (no token passthrough by wildcard).
    pub fn allows(&self, name: &HeaderName) -> bool {
        if NEVER_COPIED.contains(name) || is_forwarding_header(name) {
            return false;
        }
        if self.exact.contains(name) {
            return true;
        }
        if name == header::AUTHORIZATION {
            return false;
        }
        self.all || self.prefixes.iter().any(|p| name.as_str().starts_with(p))
    }
}

impl HeaderAllowList {
    /// Whether `name` is listed by its exact name (not by a wildcard).
    pub fn allows_explicitly(&self, name: &HeaderName) -> bool {
        self.exact.contains(name)
    }
}

fn is_forwarding_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("x-forwarded-") || n == "forwarded" || n == "x-real-ip"
}

/// Which query parameters reach the upstream.
#[derive(Debug, Clone)]
pub struct QueryAllowList {
    all: bool,
    names: Vec<String>,
}

impl QueryAllowList {
    /// Builds the list (`*` forwards all).
    pub fn new(entries: &[String]) -> Self {
        QueryAllowList {
            all: entries.iter().any(|e| e == "*"),
            names: entries.to_vec(),
        }
    }

    /// The query string to forward, if any part of `query` is allowed.
    pub fn filter(&self, query: Option<&str>) -> Option<String> {
        let q = query.filter(|q| !q.is_empty())?;
        if self.all {
            return Some(q.to_string());
        }
        if self.names.is_empty() {
            return None;
        }
        let kept: Vec<&str> = q
            .split('&')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or("");
                self.names.iter().any(|n| n == key)
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_INPUT_HEADERS;

    #[test]
    fn default_list_is_what_mcp_needs() {
        let l = HeaderAllowList::new(DEFAULT_INPUT_HEADERS);
        for h in [
            "accept",
            "content-type",
            "mcp-session-id",
            "mcp-protocol-version",
            "last-event-id",
            "mcp-method",
            "mcp-name",
            "mcp-param-region",
        ] {
            assert!(l.allows(&HeaderName::from_static(h)), "{h}");
        }
        for h in [
            "authorization",
            "cookie",
            "host",
            "x-forwarded-for",
            "connection",
            "user-agent",
        ] {
            assert!(!l.allows(&HeaderName::from_static(h)), "{h}");
        }
    }

    #[test]
    fn wildcard_never_forwards_authorization_unless_named() {
        let all = HeaderAllowList::new(&["*"]);
        assert!(all.allows(&HeaderName::from_static("user-agent")));
        assert!(!all.allows(&HeaderName::from_static("authorization")));
        let named = HeaderAllowList::new(&["*", "Authorization"]);
        assert!(named.allows(&HeaderName::from_static("authorization")));
    }

    #[test]
    fn query_filtering() {
        let none = QueryAllowList::new(&[]);
        assert_eq!(none.filter(Some("a=1")), None);
        let some = QueryAllowList::new(&["a".into(), "c".into()]);
        assert_eq!(some.filter(Some("a=1&b=2&c")).as_deref(), Some("a=1&c"));
        assert_eq!(some.filter(Some("b=2")), None);
        let all = QueryAllowList::new(&["*".into()]);
        assert_eq!(all.filter(Some("x=1&y")).as_deref(), Some("x=1&y"));
    }
}

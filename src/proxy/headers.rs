//! Request and response header handling: the `input_headers` / `input_query_strings` allow-lists,
//! `X-Forwarded-*`, `Host`, and hop-by-hop removal on responses.

use http::header::{self, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

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

/// What the gateway knows about the client side of a request, for `X-Forwarded-*`.
pub struct Forwarded<'a> {
    /// Client IP.
    pub client_ip: Option<&'a str>,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The `Host` the client asked for.
    pub host: Option<HeaderValue>,
}

/// Removes the client headers that are not allowed, then sets `Host` and `X-Forwarded-*`.
pub fn prepare_upstream_request(
    req: &mut RequestHeader,
    allow: &HeaderAllowList,
    authority: &HeaderValue,
    fwd: &Forwarded<'_>,
) -> pingora::Result<()> {
    // Most requests carry only allowed headers (and `Host`, replaced below): look before
    // collecting anything to remove.
    let dropped = |name: &HeaderName| {
        name != header::CONTENT_LENGTH && name != header::HOST && !allow.allows(name)
    };
    if req.headers.keys().any(dropped) {
        let drop: Vec<HeaderName> = req.headers.keys().filter(|n| dropped(n)).cloned().collect();
        for name in drop {
            req.remove_header(&name);
        }
    }
    req.insert_header(header::HOST, authority.clone())?;
    if let Some(ip) = fwd.client_ip {
        req.insert_header(X_FORWARDED_FOR, ip)?;
    }
    req.insert_header(X_FORWARDED_PROTO, fwd.proto)?;
    if let Some(h) = &fwd.host {
        req.insert_header(X_FORWARDED_HOST, h.clone())?;
    }
    Ok(())
}

// Names as static strings: Pingora keeps a `&'static str` name without copying it.
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// Rewrites the request for the upstream: path and allowed query, allowed headers, `Host`,
/// `X-Forwarded-*`.
pub fn rewrite_upstream_request(
    session: &pingora::prelude::Session,
    req: &mut RequestHeader,
    ctx: &super::ctx::RequestCtx,
) -> pingora::Result<()> {
    let (Some(endpoint), Some(host_index)) = (ctx.endpoint(), ctx.host) else {
        return pingora::Error::e_explain(pingora::ErrorType::InternalError, "no upstream chosen");
    };
    let Some(host) = endpoint.backend.hosts.get(host_index) else {
        return pingora::Error::e_explain(pingora::ErrorType::InternalError, "no upstream chosen");
    };
    let query = endpoint.input_query.filter(req.uri.query());
    let uri = if ctx.metadata_relay.is_none() && query.is_none() {
        endpoint.backend.uri.clone()
    } else {
        let mut target = String::new();
        if ctx.metadata_relay.is_some() {
            target.push_str(crate::policy::oauth::WELL_KNOWN);
        }
        target.push_str(&endpoint.backend.path);
        if let Some(q) = query {
            target.push('?');
            target.push_str(&q);
        }
        target.parse::<http::Uri>().map_err(|e| {
            pingora::Error::because(pingora::ErrorType::InternalError, "upstream URI", e)
        })?
    };
    req.set_uri(uri);
    let client_ip = ctx.client_ip.map(|ip| ip.to_string());
    let proto = if session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .is_some()
    {
        "https"
    } else {
        "http"
    };
    let host_header = session
        .req_header()
        .headers
        .get(header::HOST)
        .cloned()
        .or_else(|| {
            let a = session.req_header().uri.authority()?;
            HeaderValue::from_str(a.as_str()).ok()
        });
    let fwd = Forwarded {
        client_ip: client_ip.as_deref(),
        proto,
        host: host_header,
    };
    prepare_upstream_request(req, &endpoint.input_headers, &host.authority, &fwd)?;
    if let Some(auth) = &endpoint.policies.auth {
        // The gateway's own credentials never travel on; identity claims may (propagate_claims).
        if let Some(h) = auth.credential_header() {
            if !endpoint.input_headers.allows_explicitly(h) {
                req.remove_header(h);
            }
        }
        for name in auth.propagated_header_names() {
            req.remove_header(name);
        }
        if let Some(identity) = &ctx.identity {
            for (name, value) in auth.propagated_headers(identity) {
                req.insert_header(name, value)?;
            }
        }
    }
    endpoint
        .policies
        .request_headers
        .apply_request(session.req_header(), req)
}

/// Response headers that describe the upstream connection, not the message.
const HOP_BY_HOP_RESPONSE: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes hop-by-hop headers from an upstream response (framing stays with Pingora).
pub fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    // Extension fields nominated by `Connection` are hop-by-hop too.
    let nominated: Vec<String> = resp
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "close" && t != "keep-alive")
        .collect();
    for name in &HOP_BY_HOP_RESPONSE {
        resp.remove_header(name);
    }
    for name in nominated {
        if name != "content-length" && name != "transfer-encoding" {
            resp.remove_header(&name);
        }
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

    #[test]
    fn hop_by_hop_response_headers_go() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("connection", "keep-alive, x-private")
            .unwrap();
        r.insert_header("keep-alive", "timeout=5").unwrap();
        r.insert_header("x-private", "1").unwrap();
        r.insert_header("mcp-session-id", "abc").unwrap();
        strip_hop_by_hop(&mut r);
        assert!(r.headers.get("connection").is_none());
        assert!(r.headers.get("keep-alive").is_none());
        assert!(r.headers.get("x-private").is_none());
        assert_eq!(r.headers.get("mcp-session-id").unwrap(), "abc");
    }
}

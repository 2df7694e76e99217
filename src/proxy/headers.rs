//! The upstream request: path and allowed query, allowed headers (the endpoint's allow-lists),
//! `Host`, `X-Forwarded-*`, the gateway's own credentials removed; and hop-by-hop removal on
//! responses.

use crate::policy::input_lists::HeaderAllowList;
use http::header::{self, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

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
///
/// The header goes upstream as plain `http` parts, without the second map in which Pingora keeps
/// each name's spelling: header names go upstream in lower case (field names are
/// case-insensitive in HTTP/1.1, and lower case in HTTP/2), and room for the added headers is made
/// once instead of both maps growing and rehashing as they are inserted.
pub fn prepare_upstream_request(
    req: &mut RequestHeader,
    allow: &HeaderAllowList,
    authority: &HeaderValue,
    fwd: &Forwarded<'_>,
) -> pingora::Result<()> {
    let client_ip = match fwd.client_ip {
        Some(ip) => Some(HeaderValue::from_str(ip).map_err(|e| {
            pingora::Error::because(pingora::ErrorType::InternalError, "X-Forwarded-For", e)
        })?),
        None => None,
    };
    let end_stream = req.send_end_stream();
    let (empty, ()) = http::Request::new(()).into_parts();
    let mut parts: http::request::Parts = std::mem::replace(req, empty.into()).into();
    let headers = &mut parts.headers;
    // Most requests carry only allowed headers (and `Host`, replaced below): look before
    // collecting anything to remove.
    let dropped = |name: &HeaderName| {
        name != header::CONTENT_LENGTH && name != header::HOST && !allow.allows(name)
    };
    if headers.keys().any(dropped) {
        let drop: Vec<HeaderName> = headers.keys().filter(|n| dropped(n)).cloned().collect();
        for name in drop {
            headers.remove(&name);
        }
    }
    headers.reserve(4);
    headers.insert(header::HOST, authority.clone());
    if let Some(ip) = client_ip {
        headers.insert(X_FORWARDED_FOR, ip);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(fwd.proto));
    if let Some(h) = &fwd.host {
        headers.insert(X_FORWARDED_HOST, h.clone());
    }
    *req = parts.into();
    if let Some(end) = end_stream {
        req.set_send_end_stream(end);
    }
    Ok(())
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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
    let Some(backend) = ctx.backend() else {
        return pingora::Error::e_explain(pingora::ErrorType::InternalError, "no upstream chosen");
    };
    let Some(host) = backend.hosts.get(host_index) else {
        return pingora::Error::e_explain(pingora::ErrorType::InternalError, "no upstream chosen");
    };
    let query = endpoint.input_query.filter(req.uri.query());
    let uri = if ctx.metadata_relay.is_none() && query.is_none() {
        backend.uri.clone()
    } else {
        let mut target = String::new();
        if ctx.metadata_relay.is_some() {
            target.push_str(crate::policy::oauth::WELL_KNOWN);
        }
        target.push_str(&backend.path);
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
        .apply_request(session.req_header(), req)?;
    // A federated server's own headers (its credentials) come last.
    if let (Some(r), Some(f)) = (&ctx.routed, &endpoint.federation) {
        if let Some(server) = f.servers.get(r.server) {
            server
                .request_headers
                .apply_request(session.req_header(), req)?;
        }
    }
    Ok(())
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
    // Most answers carry none: one pass over the names instead of a removal per name.
    if !resp.headers.keys().any(|n| HOP_BY_HOP_RESPONSE.contains(n)) {
        return;
    }
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

//! The fan-out client: one JSON-RPC POST (or a DELETE) to one server of a federated endpoint,
//! with that server's headers, within the fan-out deadline, its answer read whole (bounded).

use crate::mcp::federation::merge;
use crate::mcp::federation::token::ServerSession;
use crate::policy::circuit_breaker::Admission;
use crate::proxy::ctx::RequestCtx;
use crate::runtime::federation::{Federation, Server};
use crate::runtime::snapshot::Endpoint;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use pingora::http::RequestHeader;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The first revision without sessions (2026-07-28).
pub const STATELESS_REVISION: &str = "2026-07-28";

/// The most of a fan-out answer the gateway reads (lists of many tools fit).
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// A server's answer.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// The `Mcp-Session-Id` it gave, if any.
    pub session: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// Why a server gave no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// No connection, or it broke.
    Unreachable,
    /// Not within the deadline.
    Timeout,
    /// A status other than 2xx (404: its session is gone).
    Status(u16),
    /// An answer without the JSON-RPC response expected.
    Invalid,
}

impl Fail {
    /// The metric label (`federation_metrics::MISSING_REASONS`).
    pub fn reason(&self) -> &'static str {
        match self {
            Fail::Unreachable => "unreachable",
            Fail::Timeout => "timeout",
            Fail::Status(_) => "error_status",
            Fail::Invalid => "invalid_answer",
        }
    }
}

/// The index of a host to start a session on: a healthy one whose circuit breaker is not
/// open, round robin; else any whose breaker is not open; else the first.
pub fn pick_host(server: &Server) -> Option<usize> {
    let b = &server.backend;
    let n = b.hosts.len();
    let now = Instant::now();
    let index = |be: &pingora::lb::Backend| be.addr.as_inet().and_then(|a| b.host_index(a));
    let closed = |be: &pingora::lb::Backend| {
        index(be).and_then(|i| b.hosts.get(i)).is_none_or(|h| {
            h.breaker
                .as_ref()
                .is_none_or(|br| br.available(now).is_ok())
        })
    };
    b.balancer
        .select_with(b"", 2 * n + 1, |be, healthy| healthy && closed(be))
        .or_else(|| b.balancer.select_with(b"", 2 * n + 1, |be, _| closed(be)))
        .and_then(|be| index(&be))
        .or((n > 0).then_some(0))
}

/// Sends `method` (`POST` with `body`, or `DELETE`) to `host` of `server`.
pub async fn send(
    server: &Server,
    host: &str,
    method: http::Method,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    deadline: Duration,
) -> Result<Reply, Fail> {
    let url = format!("{}{}", host.trim_end_matches('/'), server.backend.path);
    let mut req = server.client.request(method, url).headers(headers);
    if let Some(body) = body {
        req = req
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            )
            .body(body);
    }
    let exchange = async {
        let mut resp = req.send().await.map_err(|e| {
            tracing::debug!(server = %server.alias, error = %e, "fan-out request failed");
            if e.is_timeout() {
                Fail::Timeout
            } else {
                Fail::Unreachable
            }
        })?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type").unwrap_or_default();
        let session = header("mcp-session-id");
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| Fail::Unreachable)? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(Fail::Invalid);
            }
            body.extend_from_slice(&chunk);
        }
        if !(200..300).contains(&status) {
            return Err(Fail::Status(status));
        }
        Ok(Reply {
            status,
            content_type,
            session,
            body: Bytes::from(body),
        })
    };
    // The host's circuit breaker, as on the relay path: an open one is not asked.
    let host = server.backend.hosts.iter().find(|h| h.url == host);
    let breaker = host.and_then(|h| Some((h, h.breaker.as_ref()?)));
    let admission = match breaker {
        Some((h, b)) => match b.admit(Instant::now(), &h.metrics, &h.url) {
            Admission::No(_) => {
                tracing::debug!(server = %server.alias, host = %h.url, "circuit breaker open: not asked");
                return Err(Fail::Unreachable);
            }
            a => Some(a),
        },
        None => None,
    };
    let out = tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| Fail::Timeout)
        .and_then(|r| r);
    if let (Some((h, b)), Some(a)) = (breaker, admission) {
        let failed = match &out {
            Err(Fail::Unreachable | Fail::Timeout) => true,
            Err(Fail::Status(s)) => b.settings.is_failure_status(*s),
            _ => false,
        };
        b.record(!failed, a, &h.metrics, &h.url);
    }
    out
}

/// The headers of a fan-out request to `server`, as the relay path would send them: the
/// identity claims the endpoint's authentication propagates, the endpoint's and the server's
/// header modifiers (over the client's request), the request span's `traceparent`, then the
/// server's session id and version.
pub fn headers(
    client: &RequestHeader,
    ctx: &RequestCtx,
    ep: &Endpoint,
    server: &Server,
    in_session: Option<&ServerSession>,
) -> HeaderMap {
    let h = RequestHeader::build("POST", b"/", None).map(|mut h| {
        if let (Some(auth), Some(identity)) = (&ep.policies.auth, &ctx.identity) {
            for (name, value) in auth.propagated_headers(identity) {
                let _ = h.insert_header(name, value);
            }
        }
        let _ = ep.policies.request_headers.apply_request(client, &mut h);
        let _ = server.request_headers.apply_request(client, &mut h);
        if let Some(span) = &ctx.span {
            span.inject(&mut h);
        }
        h.headers.clone()
    });
    let mut map = h.unwrap_or_default();
    if let Some(s) = in_session {
        if let Some(id) = s.session.as_deref().and_then(|v| v.parse().ok()) {
            map.insert("mcp-session-id", id);
        }
        if let Ok(v) = s.version.parse() {
            map.insert("mcp-protocol-version", v);
        }
    }
    map
}

/// Sets `Mcp-Method` to the method of `body` (required from 2026-07-28, harmless before).
pub fn mark_method(h: &mut HeaderMap, body: &Value) {
    if let Some(v) = body
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| HeaderValue::from_str(m).ok())
    {
        h.insert("mcp-method", v);
    }
}

/// The request metadata 2026-07-28 asks of every request (SEP-2575), added to a request the
/// gateway makes itself at that revision when it carries none.
fn with_request_meta(body: &Value, version: &str) -> Value {
    let mut body = body.clone();
    if version < STATELESS_REVISION || body.get("method").is_none() {
        return body;
    }
    if let Some(params) = body
        .as_object_mut()
        .map(|o| o.entry("params").or_insert_with(|| serde_json::json!({})))
        .and_then(Value::as_object_mut)
    {
        let meta = params
            .entry("_meta")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.entry("io.modelcontextprotocol/protocolVersion")
                .or_insert_with(|| Value::String(version.to_string()));
            meta.entry("io.modelcontextprotocol/clientCapabilities")
                .or_insert_with(|| serde_json::json!({}));
        }
    }
    body
}

/// Reads the JSON-RPC result of a reply (an error object is an invalid answer here).
pub fn result_of(reply: &Reply, id: &Value) -> Result<Value, Fail> {
    let msg = merge::find_response(&reply.content_type, &reply.body, id).ok_or(Fail::Invalid)?;
    msg.get("result").cloned().ok_or(Fail::Invalid)
}

/// Logs and counts a server missing from an answer.
pub fn missing(fed: &Federation, i: usize, what: &str, fail: Fail) {
    let alias = fed.servers.get(i).map_or("", |s| s.alias.as_str());
    tracing::warn!(server = alias, reason = fail.reason(), status = ?match fail { Fail::Status(s) => Some(s), _ => None }, "federated server left out of {what}");
    fed.metrics.missing(i, fail.reason());
}

/// One JSON-RPC POST to a server of the session; `Ok(None)` for an accepted notification.
pub async fn post(
    (client, ctx): (&RequestHeader, &RequestCtx),
    (ep, fed): (&Endpoint, &Federation),
    s: &ServerSession,
    body: &Value,
) -> Result<Option<Value>, Fail> {
    let (_, server) = fed.server(&s.alias).ok_or(Fail::Unreachable)?;
    post_with(fed, s, headers(client, ctx, ep, server, Some(s)), body).await
}

/// [`post`] with headers made beforehand ([`headers`]).
pub async fn post_with(
    fed: &Federation,
    s: &ServerSession,
    mut h: HeaderMap,
    body: &Value,
) -> Result<Option<Value>, Fail> {
    let (_, server) = fed.server(&s.alias).ok_or(Fail::Unreachable)?;
    mark_method(&mut h, body);
    let body = &with_request_meta(body, &s.version);
    let bytes = serde_json::to_vec(body).map_err(|_| Fail::Invalid)?;
    let reply = send(
        server,
        &s.host,
        http::Method::POST,
        h,
        Some(bytes),
        fed.deadline,
    )
    .await?;
    match body.get("id") {
        Some(id) => result_of(&reply, id).map(Some),
        None => Ok(None),
    }
}

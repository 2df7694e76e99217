//! The fan-out client: one JSON-RPC POST (or a DELETE) to one server of a federated endpoint,
//! with that server's headers, within the fan-out deadline, its answer read whole (bounded).

use crate::mcp::federation::merge;
use crate::mcp::federation::token::ServerSession;
use crate::runtime::federation::{Federation, Server};
use crate::runtime::snapshot::Endpoint;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use pingora::http::RequestHeader;
use serde_json::Value;
use std::time::Duration;

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

/// The index of a host to start a session on: a healthy one, round robin, else the first.
pub fn pick_host(server: &Server) -> Option<usize> {
    let b = &server.backend;
    let n = b.hosts.len();
    b.balancer
        .select_with(b"", 2 * n + 1, |_, healthy| healthy)
        .and_then(|be| be.addr.as_inet().and_then(|a| b.host_index(a)))
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
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| Fail::Timeout)?
}

/// The headers of a fan-out request to `server`: the endpoint's and the server's header
/// modifiers (over the client's request), then the server's session id and version.
pub fn headers(
    client: &RequestHeader,
    ep: &Endpoint,
    server: &Server,
    in_session: Option<&ServerSession>,
) -> HeaderMap {
    let mut h = RequestHeader::build("POST", b"/", None).map(|mut h| {
        let _ = ep.policies.request_headers.apply_request(client, &mut h);
        let _ = server.request_headers.apply_request(client, &mut h);
        h.headers.clone()
    });
    let mut map = h.as_mut().map(std::mem::take).unwrap_or_default();
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
    client: &RequestHeader,
    (ep, fed): (&Endpoint, &Federation),
    s: &ServerSession,
    body: &Value,
) -> Result<Option<Value>, Fail> {
    let (_, server) = fed.server(&s.alias).ok_or(Fail::Unreachable)?;
    let h = headers(client, ep, server, Some(s));
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

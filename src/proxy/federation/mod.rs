//! A federated endpoint in the request flow. Requests that belong to one server (`tools/call`,
//! `prompts/get`, `resources/read`, `resources/subscribe`/`unsubscribe`,
//! `completion/complete`) are relayed on the normal streaming path with the name or URI
//! rewritten in the body and in `Mcp-Name`; the upstream gets its own session id and version.
//! Requests that fan out (initialize, lists, ping, notifications, `logging/setLevel`, DELETE)
//! are answered here (`fanout.rs`), and so is GET: the servers' GET streams merged
//! (`stream_get.rs`). Requests servers send to the client get sealed ids on either stream
//! (`stream_relay.rs` on the relay path); the client's answers are routed back
//! (`stream_answer.rs`). At 2026-07-28 and later, `server/discover` and requests without a
//! session are `stateless.rs`.

pub mod answer;
pub mod calls;
pub mod client;
pub mod fanout;
pub mod resolve;
pub mod stateless;
pub mod stream_answer;
pub mod stream_cancel;
pub mod stream_events;
pub mod stream_get;
pub mod stream_relay;
pub mod template;

use super::ctx::{RequestCtx, Routed};
use crate::error::GatewayError;
use crate::mcp::federation::names;
use crate::mcp::federation::token::{identity_key, Session as FedSession};
use crate::runtime::federation::Federation;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::Session;
use serde_json::Value;

/// The session header (lower case).
const SESSION_HEADER: &str = "mcp-session-id";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn invalid_params(message: &str) -> GatewayError {
    GatewayError::InvalidJsonRpc {
        code: -32602,
        message: message.to_string(),
    }
}

/// The identity key of the request ([`identity_key`]).
pub fn identity(ctx: &RequestCtx) -> String {
    identity_key(
        ctx.identity
            .as_deref()
            .map(|i| (i.method.as_str(), i.subject.as_str())),
    )
}

/// Opens the request's session id. 404 (`SessionNotFound`) when it does not open, has expired,
/// belongs to another identity or names a server no longer configured; 400 without one.
pub fn open_session(
    req: &RequestHeader,
    ctx: &RequestCtx,
    path: &str,
    fed: &Federation,
) -> Result<(FedSession, String), GatewayError> {
    let Some(token) = req
        .headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(GatewayError::InvalidJsonRpc {
            code: -32600,
            message: "a federated endpoint needs the Mcp-Session-Id of an initialize".into(),
        });
    };
    FedSession::open(&fed.sealer, path, token, &identity(ctx), now(), |a| {
        fed.server(a).is_some()
    })
    .map(|s| (s, token.to_string()))
    .map_err(|why| {
        tracing::info!(why = why.as_str(), "federated session id refused");
        GatewayError::SessionNotFound { why: why.as_str() }
    })
}

/// The request phase of a federated endpoint (after every policy): `Ok(true)` when the gateway
/// answered, `Ok(false)` when the request is relayed (to the server in `ctx.routed`).
pub async fn request(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool, GatewayError> {
    let snapshot = ctx.snapshot.clone();
    let Some(ep) = ctx.endpoint.and_then(|i| snapshot.endpoints.get(i)) else {
        return Ok(false);
    };
    let Some(fed) = &ep.federation else {
        return Ok(false);
    };
    let method = session.req_header().method.clone();
    if method == http::Method::DELETE {
        let (s, _) = open_session(session.req_header(), ctx, &ep.path, fed)?;
        fanout::delete(session, ctx, ep, fed, &s).await;
        return Ok(true);
    }
    if method == http::Method::GET {
        let (s, token) = open_session(session.req_header(), ctx, &ep.path, fed)?;
        stream_get::get(session, ctx, (ep, fed), (&s, &token)).await?;
        return Ok(true);
    }
    if method != http::Method::POST {
        return Err(GatewayError::MethodNotAllowed {
            allow: http::HeaderValue::from_static("GET, POST, DELETE"),
        });
    }
    let msg = match &ctx.mcp {
        Some(crate::mcp::inspect::Inspected::Single(m)) => m.clone(),
        Some(_) => {
            return Err(GatewayError::InvalidJsonRpc {
                code: -32600,
                message: "a federated endpoint does not take JSON-RPC batches".into(),
            })
        }
        None => return Err(GatewayError::BadRequest),
    };
    let body: Value =
        serde_json::from_slice(&ctx.body.bytes()).map_err(|_| GatewayError::BadRequest)?;
    let Some(name) = msg.method.clone() else {
        // The client's answer to a request a server sent.
        let (fs, token) = open_session(session.req_header(), ctx, &ep.path, fed)?;
        let routed = stream_answer::route(fed, &ep.path, (&fs, &token), body)?;
        ctx.routed = Some(routed);
        return Ok(false);
    };
    if name == "initialize" {
        fanout::initialize(session, ctx, ep, fed, &body).await?;
        return Ok(true);
    }
    if name == "server/discover" {
        stateless::discover(session, ctx, ep, fed, &body).await?;
        return Ok(true);
    }
    // 2026-07-28 and later: no session, every server.
    let (fs, token) = match stateless::session(session.req_header(), ctx, fed) {
        Some(fs) => (fs, None),
        None => {
            open_session(session.req_header(), ctx, &ep.path, fed).map(|(s, t)| (s, Some(t)))?
        }
    };
    match name.as_str() {
        "ping" => {
            fanout::answer_result(session, ctx, &body, serde_json::json!({})).await;
            Ok(true)
        }
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
            fanout::list(session, ctx, (ep, fed, &fs), &name, &body).await?;
            Ok(true)
        }
        "logging/setLevel" => {
            fanout::broadcast(session, ctx, (ep, fed, &fs), &body, true).await?;
            Ok(true)
        }
        n if msg.id.is_none() && n.starts_with("notifications/") => {
            let to = calls::recipients(fed, token.as_deref(), &fs, &body);
            fanout::broadcast(session, ctx, (ep, fed, &to), &body, false).await?;
            Ok(true)
        }
        "tools/call"
        | "prompts/get"
        | "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | "completion/complete" => {
            let routed = route(session.req_header(), ctx, fed, &fs, &name, body).await?;
            calls::started(fed, token.as_deref(), msg.id.as_ref(), routed.server);
            fed.metrics.routed(routed.server);
            ctx.routed = Some(routed);
            Ok(false)
        }
        _ => Err(GatewayError::InvalidJsonRpc {
            code: -32601,
            message: "method not offered by this federated endpoint".into(),
        }),
    }
}

/// Finds the server a call belongs to and rewrites the body with the server's own name or URI.
async fn route(
    req: &RequestHeader,
    ctx: &RequestCtx,
    fed: &Federation,
    fs: &FedSession,
    method: &str,
    mut body: Value,
) -> Result<Routed, GatewayError> {
    // Where the name or URI sits in `params`.
    let pointer = match method {
        "tools/call" | "prompts/get" => "/params/name",
        "completion/complete" => match body.pointer("/params/ref/type").and_then(Value::as_str) {
            Some("ref/prompt") => "/params/ref/name",
            Some("ref/resource") => "/params/ref/uri",
            _ => return Err(invalid_params("completion/complete needs params.ref")),
        },
        _ => "/params/uri",
    };
    let exposed = body
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("the call names no tool, prompt or resource"))?
        .to_string();
    let (server, own) = if pointer.ends_with("uri") && !fed.prefix {
        resolve::resolve_uri(req, ctx, fed, fs, &exposed).await?
    } else if pointer.ends_with("uri") {
        let (alias, own) =
            names::split_uri(&exposed).ok_or_else(|| invalid_params("unknown resource URI"))?;
        let (i, _) = fed
            .server(alias)
            .filter(|_| fs.server(alias).is_some())
            .ok_or_else(|| invalid_params("unknown resource URI"))?;
        (i, own.to_string())
    } else {
        let list = if method == "tools/call" {
            "tools/list"
        } else {
            "prompts/list"
        };
        resolve::resolve_name(req, ctx, fed, fs, list, &exposed).await?
    };
    let Some(srv) = fed.servers.get(server) else {
        return Err(GatewayError::Internal);
    };
    if method == "tools/call" {
        let allowed = srv
            .tools
            .as_ref()
            .is_none_or(|t| t.allows(&own, ctx.identity.as_deref()));
        if !allowed {
            return Err(GatewayError::ToolDenied { tool: exposed });
        }
    }
    if let Some(slot) = body.pointer_mut(pointer) {
        *slot = Value::String(own.clone());
    }
    let bytes = serde_json::to_vec(&body).map_err(|_| GatewayError::Internal)?;
    let in_session = fs.server(&srv.alias);
    let host =
        match in_session {
            Some(s) => Some(srv.backend.host_by_url(&s.host).ok_or(
                GatewayError::SessionNotFound {
                    why: "session_host_gone",
                },
            )?),
            None => return Err(invalid_params("that server is not part of this session")),
        };
    let mcp_name = req.headers.get("mcp-name").map(|_| own.clone());
    Ok(Routed {
        server,
        host,
        session: in_session.and_then(|s| s.session.clone()),
        version: in_session.map(|s| s.version.clone()),
        body_len: bytes.len(),
        body: Some(Bytes::from(bytes)),
        mcp_name,
    })
}

/// The request body of a routed call: the rewritten body replaces the client's (which Pingora
/// sends from its retry buffer, whole, in one piece).
pub fn request_body(ctx: &mut RequestCtx, body: &mut Option<Bytes>) {
    let Some(r) = ctx.routed.as_mut() else {
        return;
    };
    match r.body.take() {
        Some(rewritten) => *body = Some(rewritten),
        // Anything after the one buffered piece was already part of it.
        None => *body = None,
    }
}

/// The upstream request of a routed call: the server's session id, its version, its name.
pub fn upstream_request(ctx: &RequestCtx, req: &mut RequestHeader) -> pingora::Result<()> {
    let Some(r) = &ctx.routed else {
        return Ok(());
    };
    match &r.session {
        Some(id) => req.insert_header(SESSION_HEADER, id.as_str())?,
        None => {
            req.remove_header(SESSION_HEADER);
        }
    }
    if let Some(v) = &r.version {
        req.insert_header("mcp-protocol-version", v.as_str())?;
    }
    if let Some(n) = &r.mcp_name {
        req.insert_header("mcp-name", n.as_str())?;
    }
    req.remove_header(&http::header::TRANSFER_ENCODING);
    req.insert_header(http::header::CONTENT_LENGTH, r.body_len.to_string())
}

/// The answer of a routed call: the server's own session id never reaches the client.
pub fn upstream_response(ctx: &RequestCtx, resp: &mut ResponseHeader) {
    if ctx.routed.is_some() {
        resp.remove_header(SESSION_HEADER);
    }
}

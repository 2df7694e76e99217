//! A federated endpoint at protocol revision 2026-07-28 and later, where there are no sessions:
//! a request without `Mcp-Session-Id` whose `MCP-Protocol-Version` names such a revision is
//! served against every configured server (each on a host picked for the request), the lists
//! fan out as in a session and a call routes on its name (which `Mcp-Name` mirrors: the header
//! consistency check of the inspection has already refused a mismatch with -32020, and the
//! relay sends the server its own name in both). `server/discover` asks every server in
//! parallel, within the fan-out deadline, and answers what the required ones all support.

use super::client::{self, headers, missing, result_of, Fail, STATELESS_REVISION};
use super::{answer, identity, now};
use crate::error::GatewayError;
use crate::mcp::federation::merge;
use crate::mcp::federation::token::{ServerSession, Session as FedSession};
use crate::proxy::ctx::RequestCtx;
use crate::runtime::federation::Federation;
use crate::runtime::snapshot::Endpoint;
use futures::future::join_all;
use pingora::http::RequestHeader;
use pingora::prelude::Session;
use serde_json::{json, Value};
use std::time::Instant;

/// The metadata key of a server's implementation in a discover result.
const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// The revision the client names in `MCP-Protocol-Version`, when it has no session.
fn revision(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v >= STATELESS_REVISION)
}

/// Whether the request is stateless: no session id, a 2026-07-28 or later revision.
pub fn is_stateless(req: &RequestHeader) -> bool {
    req.headers.get("mcp-session-id").is_none() && revision(req).is_some()
}

/// The per-request view of every configured server (no upstream session, the client's revision,
/// a host picked for this request); `None` when the request is not stateless.
pub fn session(req: &RequestHeader, ctx: &RequestCtx, fed: &Federation) -> Option<FedSession> {
    if req.headers.get("mcp-session-id").is_some() {
        return None;
    }
    let version = revision(req)?;
    let servers = fed
        .servers
        .iter()
        .filter_map(|server| {
            let host = client::pick_host(server).and_then(|i| server.backend.hosts.get(i))?;
            Some(ServerSession {
                alias: server.alias.clone(),
                host: host.url.clone(),
                session: None,
                version: version.to_string(),
            })
        })
        .collect();
    Some(FedSession {
        expires: now(),
        identity: identity(ctx),
        version: version.to_string(),
        servers,
    })
}

/// The versions every answer lists (in the order of the first).
fn common_versions<'a>(answers: impl Iterator<Item = &'a Value>) -> Vec<Value> {
    let mut common: Option<Vec<Value>> = None;
    for a in answers {
        let listed: Vec<Value> = a
            .get("supportedVersions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        common = Some(match common {
            None => listed,
            Some(c) => c.into_iter().filter(|v| listed.contains(v)).collect(),
        });
    }
    common.unwrap_or_default()
}

/// The discover answer of the gateway from the servers' (alias, required, result).
pub fn merge_discover(ep: &Endpoint, joined: &[(&str, bool, Value)]) -> Option<Value> {
    let any_required = joined.iter().any(|(_, r, _)| *r);
    let versions = common_versions(
        joined
            .iter()
            .filter(|(_, r, _)| *r || !any_required)
            .map(|(_, _, v)| v),
    );
    if versions.is_empty() {
        return None;
    }
    let ttl = joined
        .iter()
        .map(|(_, _, v)| v.get("ttlMs").and_then(Value::as_u64).unwrap_or(0))
        .min()
        .unwrap_or(0);
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": versions,
        "capabilities": merge::capabilities(joined.iter().filter_map(|(_, _, r)| r.get("capabilities"))),
        // The gateway filters lists per identity.
        "cacheScope": "private",
        "ttlMs": ttl,
        "_meta": {SERVER_INFO_META: {"name": "mcpgate", "title": ep.name, "version": env!("CARGO_PKG_VERSION")}},
    });
    let texts = joined
        .iter()
        .map(|(alias, _, r)| (*alias, r.get("instructions").and_then(Value::as_str)));
    if let Some(text) = merge::instructions(texts) {
        result["instructions"] = Value::String(text);
    }
    Some(result)
}

/// `server/discover`: every server asked in parallel within the deadline. A required server
/// that fails (or the required servers sharing no version) fails the request with a JSON-RPC
/// error: 400 with -32601 when it does not offer discovery (a 4xx or a JSON-RPC error: an older
/// revision), so the client falls back to `initialize`, else 502; an optional one is left out
/// (logged, counted).
pub async fn discover(
    session: &mut Session,
    ctx: &RequestCtx,
    ep: &Endpoint,
    fed: &Federation,
    body: &Value,
) -> Result<(), GatewayError> {
    let started = Instant::now();
    let id = body.get("id").cloned().unwrap_or(Value::Null);
    let req = session.req_header().clone();
    let version = req
        .headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(STATELESS_REVISION)
        .to_string();
    let bytes = serde_json::to_vec(body).map_err(|_| GatewayError::Internal)?;
    let calls = fed.servers.iter().map(|server| {
        let host = client::pick_host(server).and_then(|i| server.backend.hosts.get(i));
        let as_session = host.map(|h| ServerSession {
            alias: server.alias.clone(),
            host: h.url.clone(),
            session: None,
            version: version.clone(),
        });
        let mut h = headers(&req, ctx, ep, server, as_session.as_ref());
        client::mark_method(&mut h, body);
        let (bytes, id) = (bytes.clone(), &id);
        async move {
            let host = host.ok_or(Fail::Unreachable)?;
            let reply = client::send(
                server,
                &host.url,
                http::Method::POST,
                h,
                Some(bytes),
                fed.deadline,
            )
            .await?;
            // A JSON-RPC error: the server does not offer discovery (an older revision).
            let error = merge::find_response(&reply.content_type, &reply.body, id)
                .is_some_and(|m| m.get("error").is_some());
            if error {
                return Err(Fail::Status(400));
            }
            result_of(&reply, id)
        }
    });
    let results = join_all(calls).await;
    fed.metrics
        .fanout("server/discover", started.elapsed().as_secs_f64());
    // A required server of an older revision (4xx, or a JSON-RPC error): the client falls back
    // to initialize on a 400, as with a server that has no discovery. No server is missing from
    // anything then (the session starts with initialize), so nothing is counted.
    let old_required = fed
        .servers
        .iter()
        .zip(&results)
        .find(|(server, r)| server.required && matches!(r, Err(Fail::Status(400..=499))));
    if let Some((server, _)) = old_required {
        tracing::info!(server = %server.alias, "a required server does not offer server/discover");
        return Err(GatewayError::InvalidJsonRpc {
            code: -32601,
            message: format!(
                "server {} does not offer server/discover; use initialize",
                server.alias
            ),
        });
    }
    let mut joined = Vec::new();
    for (i, (server, r)) in fed.servers.iter().zip(results).enumerate() {
        match r {
            Ok(result) => joined.push((server.alias.as_str(), server.required, result)),
            Err(fail) => {
                missing(fed, i, "server/discover", fail);
                if server.required {
                    return Err(GatewayError::FederatedServerFailed {
                        server: server.alias.clone(),
                    });
                }
            }
        }
    }
    if joined.is_empty() {
        return Err(GatewayError::FederatedServerFailed {
            server: "every server".into(),
        });
    }
    let Some(result) = merge_discover(ep, &joined) else {
        return Err(GatewayError::InvalidJsonRpc {
            code: -32603,
            message: "the federated servers share no protocol version".into(),
        });
    };
    let out = json!({"jsonrpc": "2.0", "id": id, "result": result});
    answer::write(session, ctx, 200, Some(out.to_string().into_bytes()), None).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_those_every_answer_lists() {
        let a = json!({"supportedVersions": ["2025-06-18", "2025-11-25", "2026-07-28"]});
        let b = json!({"supportedVersions": ["2026-07-28", "2025-11-25"]});
        assert_eq!(
            common_versions([&a, &b].into_iter()),
            vec![json!("2025-11-25"), json!("2026-07-28")]
        );
        assert!(common_versions([&a, &json!({})].into_iter()).is_empty());
        assert!(common_versions(std::iter::empty()).is_empty());
    }
}

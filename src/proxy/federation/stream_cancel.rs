//! A client that disconnects a routed call's SSE answer cancels that request on its server: the
//! relay closes the upstream stream with it (which is the cancellation from the 2026-07-28
//! revision on), and for the revisions before it, where a disconnect is not a cancellation, the
//! gateway sends that server `notifications/cancelled` with the request's id.

use super::client;
use crate::mcp::federation::token::ServerSession;
use crate::mcp::inspect::Inspected;
use crate::observability::outcome::End;
use crate::proxy::accounting;
use crate::proxy::ctx::RequestCtx;
use pingora::prelude::Session;
use pingora::Error;

/// The first revision in which closing the stream is itself the cancellation.
const CLOSE_CANCELS: &str = "2026-07-28";

/// From the logging phase: sends `notifications/cancelled` when the client left a routed SSE
/// answer before its end, on a session of an earlier revision.
pub fn on_finished(session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
    let (Some(routed), Some(_)) = (&ctx.routed, &ctx.routed_events) else {
        return;
    };
    if accounting::outcome(session, e, ctx).end != End::ClientClosed {
        return;
    }
    if routed
        .version
        .as_deref()
        .is_some_and(|v| v >= CLOSE_CANCELS)
    {
        return;
    }
    let Some(Inspected::Single(msg)) = &ctx.mcp else {
        return;
    };
    let Some(id) = msg.id.clone() else {
        return;
    };
    let Some(ep) = ctx.endpoint() else {
        return;
    };
    let Some(fed) = &ep.federation else {
        return;
    };
    let Some(srv) = fed.servers.get(routed.server) else {
        return;
    };
    let Some(host) = routed.host.and_then(|h| srv.backend.hosts.get(h)) else {
        return;
    };
    let s = ServerSession {
        alias: srv.alias.clone(),
        host: host.url.clone(),
        session: routed.session.clone(),
        version: routed.version.clone().unwrap_or_default(),
    };
    let headers = client::headers(session.req_header(), ep, srv, Some(&s));
    let body = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": id, "reason": "the client disconnected"}});
    let Ok(bytes) = serde_json::to_vec(&body) else {
        return;
    };
    let (snapshot, endpoint, server) = (ctx.snapshot.clone(), ctx.endpoint, routed.server);
    tokio::spawn(async move {
        let Some(fed) = endpoint
            .and_then(|i| snapshot.endpoints.get(i))
            .and_then(|ep| ep.federation.as_ref())
        else {
            return;
        };
        let Some(srv) = fed.servers.get(server) else {
            return;
        };
        let sent = client::send(
            srv,
            &s.host,
            http::Method::POST,
            headers,
            Some(bytes),
            fed.deadline,
        )
        .await;
        match sent {
            Ok(_) => tracing::debug!(server = %s.alias, "request cancelled after the client left"),
            Err(f) => {
                tracing::info!(server = %s.alias, reason = f.reason(), "could not cancel a request")
            }
        }
    });
}

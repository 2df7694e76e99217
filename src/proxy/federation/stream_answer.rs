//! The client's answer to a request a server sent (a JSON-RPC response, no `method`), POSTed to
//! any instance: its sealed id is opened and checked against the session, the server's own id
//! restored, and the answer relayed to that one server as a routed request (its session id and
//! version; it answers 202). An id that does not open, or was issued in another session, or
//! names a server not in the session, is refused with -32602 and reaches no server.

use crate::error::GatewayError;
use crate::mcp::federation::ids::{session_binding, ServerRequestId};
use crate::mcp::federation::token::Session as FedSession;
use crate::proxy::ctx::Routed;
use crate::runtime::federation::Federation;
use bytes::Bytes;
use serde_json::Value;

fn refused(fed: &Federation, why: &str) -> GatewayError {
    tracing::info!(why, "answer to a server request refused");
    fed.metrics.server_request(usize::MAX, "refused");
    GatewayError::InvalidJsonRpc {
        code: -32602,
        message: format!("this answer is to no request of this session's servers ({why})"),
    }
}

/// The routed request for the client's answer `body` in session `fs` (id `token`).
pub fn route(
    fed: &Federation,
    path: &str,
    (fs, token): (&FedSession, &str),
    mut body: Value,
) -> Result<Routed, GatewayError> {
    if body.get("result").is_none() && body.get("error").is_none() {
        return Err(GatewayError::InvalidJsonRpc {
            code: -32600,
            message: "a message without method must be a response (result or error)".into(),
        });
    }
    let id = body.get("id").cloned().unwrap_or(Value::Null);
    let opened = ServerRequestId::open(&fed.sealer, path, &id, &session_binding(token))
        .map_err(|_| refused(fed, "invalid_id"))?;
    let (server, srv) = fed
        .server(&opened.alias)
        .ok_or_else(|| refused(fed, "server_gone"))?;
    let in_session = fs
        .server(&opened.alias)
        .ok_or_else(|| refused(fed, "server_not_in_session"))?;
    let host = srv
        .backend
        .host_by_url(&in_session.host)
        .ok_or(GatewayError::SessionNotFound {
            why: "session_host_gone",
        })?;
    body["id"] = opened.original;
    let bytes = serde_json::to_vec(&body).map_err(|_| GatewayError::Internal)?;
    fed.metrics.server_request(server, "answered");
    Ok(Routed {
        server,
        host: Some(host),
        session: in_session.session.clone(),
        version: Some(in_session.version.clone()),
        body_len: bytes.len(),
        body: Some(Bytes::from(bytes)),
        mcp_name: None,
    })
}

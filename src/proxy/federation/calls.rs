//! Which server owns a request, for `notifications/cancelled`: a routed call in flight on this
//! process is remembered by (session id, request id) in a small bounded cache
//! (`Federation::calls`); its cancellation goes to that server only, and is forgotten then. A
//! request this process does not know (routed by another instance of a fleet, or no longer
//! kept) is cancelled on every server of the session, as a server ignores a cancellation for a
//! request it does not have. An entry lives at most `CALL_TTL`, the longest a call is expected to
//! run: an entry for a call that ended sends a late cancellation to that one server, which
//! ignores it.

use crate::mcp::federation::token::Session as FedSession;
use crate::runtime::federation::Federation;
use serde_json::Value;
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// How long a call's owner is kept.
pub const CALL_TTL: Duration = Duration::from_secs(600);

fn key(token: &str, id: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut h);
    id.to_string().hash(&mut h);
    h.finish()
}

/// Remembers that the request `id` of the session `token` went to `server`.
pub fn started(fed: &Federation, token: Option<&str>, id: Option<&Value>, server: usize) {
    if let (Some(token), Some(id)) = (token, id) {
        fed.calls.put(&key(token, id), server, Some(CALL_TTL));
    }
}

/// The session's servers a notification goes to: for `notifications/cancelled` of a call this
/// process routed, its server only (and the call is forgotten); else every server.
pub fn recipients(
    fed: &Federation,
    token: Option<&str>,
    fs: &FedSession,
    body: &Value,
) -> FedSession {
    let owner = (body.get("method").and_then(Value::as_str) == Some("notifications/cancelled"))
        .then(|| body.pointer("/params/requestId"))
        .flatten()
        .zip(token)
        .and_then(|(id, token)| {
            let k = key(token, id);
            let owner = fed.calls.get(&k).0?;
            fed.calls.remove(&k);
            Some(owner)
        })
        .and_then(|i| fed.servers.get(i))
        .and_then(|server| fs.server(&server.alias));
    match owner {
        Some(s) => FedSession {
            servers: vec![s.clone()],
            ..fs.clone()
        },
        None => fs.clone(),
    }
}

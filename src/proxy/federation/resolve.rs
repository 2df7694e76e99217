//! Which server a `tools/call` or `prompts/get` name belongs to, and the server's own name. An
//! exposed name is routed only when it is in that server's list, so a name no server has gets
//! -32602 and no call reaches a server. The lists are kept a short while per process
//! (`Federation::names`): a miss lists the server again before refusing, so every instance of a
//! fleet routes alike without sharing anything.

use super::client::{missing, post};
use super::invalid_params;
use crate::error::GatewayError;
use crate::mcp::federation::merge;
use crate::mcp::federation::names;
use crate::mcp::federation::token::{ServerSession, Session as FedSession};
use crate::proxy::ctx::RequestCtx;
use crate::proxy::federation::client::Fail;
use crate::runtime::federation::Federation;
use crate::runtime::snapshot::Endpoint;
use futures::future::join_all;
use pingora::http::RequestHeader;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Pages read from one server when listing its names.
const MAX_LOOKUP_PAGES: usize = 20;
/// How long a server's names are kept.
const NAMES_TTL: Duration = Duration::from_secs(30);

fn key(server: usize, method: &str) -> u64 {
    ((server as u64) << 1) | u64::from(method == "prompts/list")
}

/// Keeps the names of a server's whole list (from a list answer the gateway just merged).
pub fn remember(fed: &Federation, server: usize, method: &str, result: &Value) {
    if method != "tools/list" && method != "prompts/list" {
        return;
    }
    let Some(key_name) = merge::list_key(method) else {
        return;
    };
    let names: Vec<String> = result
        .get(key_name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    fed.names
        .put(&key(server, method), Arc::new(names), Some(NAMES_TTL));
}

/// Every name of one list of one server (bounded in pages), as the server names them.
async fn list_names(
    client: &RequestHeader,
    ep: &Endpoint,
    fed: &Federation,
    s: &ServerSession,
    method: &str,
) -> Result<Arc<Vec<String>>, Fail> {
    let items = merge::list_key(method).ok_or(Fail::Invalid)?;
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_LOOKUP_PAGES {
        let mut req =
            json!({"jsonrpc": "2.0", "id": "mcpgate-lookup", "method": method, "params": {}});
        if let Some(c) = &cursor {
            req["params"]["cursor"] = json!(c);
        }
        let result = post(client, (ep, fed), s, &req)
            .await?
            .ok_or(Fail::Invalid)?;
        for item in result
            .get(items)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = item.get("name").and_then(Value::as_str) {
                out.push(n.to_string());
            }
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let out = Arc::new(out);
    if let Some((i, _)) = fed.server(&s.alias) {
        fed.names.put(&key(i, method), out.clone(), Some(NAMES_TTL));
    }
    Ok(out)
}

/// The server (index) and own name of an exposed tool or prompt name (`method` is the list
/// that holds it). -32602 when no server of the session lists it; 404 when a server's session
/// is gone.
pub async fn resolve_name(
    client: &RequestHeader,
    ctx: &RequestCtx,
    fed: &Federation,
    fs: &FedSession,
    method: &str,
    exposed: &str,
) -> Result<(usize, String), GatewayError> {
    let unknown = || invalid_params("unknown tool or prompt name");
    if !names::is_valid(exposed) {
        return Err(unknown());
    }
    let ep = ctx.endpoint().ok_or(GatewayError::Internal)?;
    // The servers that may have it: the alias's, or every one when names are not prefixed.
    let candidates: Vec<(usize, &ServerSession)> = if fed.prefix {
        let (alias, _) = names::split(exposed).ok_or_else(unknown)?;
        let (i, _) = fed.server(alias).ok_or_else(unknown)?;
        vec![(i, fs.server(alias).ok_or_else(unknown)?)]
    } else {
        fs.servers
            .iter()
            .filter_map(|s| Some((fed.server(&s.alias)?.0, s)))
            .collect()
    };
    let matches = |i: usize, s: &ServerSession, list: &[String]| -> Vec<(usize, String)> {
        list.iter()
            .filter(|n| names::expose(&s.alias, n, fed.prefix) == exposed)
            .map(|n| (i, n.clone()))
            .collect()
    };
    // From the names kept, when every candidate's are.
    let kept: Option<Vec<Arc<Vec<String>>>> = candidates
        .iter()
        .map(|(i, _)| fed.names.get(&key(*i, method)).0)
        .collect();
    if let Some(kept) = kept {
        let found: Vec<(usize, String)> = candidates
            .iter()
            .zip(&kept)
            .flat_map(|((i, s), list)| matches(*i, s, list))
            .collect();
        if found.len() == 1 {
            return found.into_iter().next().ok_or_else(unknown);
        }
    }
    // Listed again (a new tool, an expired entry, a name that is not there).
    let lists = join_all(
        candidates
            .iter()
            .map(|(_, s)| list_names(client, ep, fed, s, method)),
    )
    .await;
    let mut found = Vec::new();
    for ((i, s), r) in candidates.iter().zip(lists) {
        match r {
            Ok(list) => found.extend(matches(*i, s, &list)),
            Err(Fail::Status(404)) => {
                return Err(GatewayError::SessionNotFound {
                    why: "upstream_session_gone",
                })
            }
            Err(f) => missing(fed, *i, "a name lookup", f),
        }
    }
    match found.len() {
        1 => found.into_iter().next().ok_or_else(unknown),
        0 => Err(unknown()),
        _ => Err(invalid_params(
            "a name several servers share (prefix is off)",
        )),
    }
}

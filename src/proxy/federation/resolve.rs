//! Which server a `tools/call` or `prompts/get` name belongs to, and the server's own name; with
//! prefixing off, which server a raw resource URI belongs to (an exact URI of its
//! `resources/list`, else a URI one of its `resources/templates/list` templates describes). An
//! exposed name or URI is routed only when exactly one server lists it, so a name no server has
//! gets -32602 and no call reaches a server. The lists are kept a short while per process
//! (`Federation::names`): a miss lists the servers again before refusing, so every instance of a
//! fleet routes alike without sharing anything.

use super::client::{missing, post};
use super::{invalid_params, template};
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

/// Which entries of a server's list (index, session, names) match: (server, its own name).
type Matches<'a> = dyn Fn(usize, &ServerSession, &[String]) -> Vec<(usize, String)> + Sync + 'a;

/// Pages read from one server when listing its names.
const MAX_LOOKUP_PAGES: usize = 20;
/// How long a server's names are kept.
const NAMES_TTL: Duration = Duration::from_secs(30);

fn key(server: usize, method: &str) -> u64 {
    let kind = merge::LISTS
        .iter()
        .position(|(m, _)| *m == method)
        .unwrap_or_default();
    ((server as u64) << 2) | kind as u64
}

/// The field of a list's items that calls name them by.
pub fn field(method: &str) -> &'static str {
    match method {
        "resources/list" => "uri",
        "resources/templates/list" => "uriTemplate",
        _ => "name",
    }
}

/// The names (or URIs, URI templates) of a list page's items.
fn item_names(method: &str, result: &Value) -> Vec<String> {
    let (Some(items), f) = (merge::list_key(method), field(method)) else {
        return Vec::new();
    };
    result
        .get(items)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get(f).and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Keeps the names of a server's whole list (from a list answer the gateway just merged).
pub fn remember(fed: &Federation, server: usize, method: &str, result: &Value) {
    let names = item_names(method, result);
    fed.names
        .put(&key(server, method), Arc::new(names), Some(NAMES_TTL));
}

/// Every name of one list of one server (bounded in pages), as the server names them.
async fn list_names(
    client: (&RequestHeader, &RequestCtx),
    ep: &Endpoint,
    fed: &Federation,
    s: &ServerSession,
    method: &str,
) -> Result<Arc<Vec<String>>, Fail> {
    merge::list_key(method).ok_or(Fail::Invalid)?;
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
        out.extend(item_names(method, &result));
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
    if let Some(found) = kept(fed, &candidates, method, &matches) {
        if found.len() == 1 {
            return found.into_iter().next().ok_or_else(unknown);
        }
    }
    // Listed again (a new tool, an expired entry, a name that is not there).
    let found = relist((client, ctx), (ep, fed), &candidates, method, &matches).await?;
    match found.len() {
        1 => found.into_iter().next().ok_or_else(unknown),
        0 => Err(unknown()),
        _ => Err(invalid_params(
            "a name several servers share (prefix is off)",
        )),
    }
}

/// Which servers' list entries match, from the lists kept; `None` unless every candidate's is.
fn kept(
    fed: &Federation,
    candidates: &[(usize, &ServerSession)],
    method: &str,
    matches: &Matches<'_>,
) -> Option<Vec<(usize, String)>> {
    let lists: Vec<Arc<Vec<String>>> = candidates
        .iter()
        .map(|(i, _)| fed.names.get(&key(*i, method)).0)
        .collect::<Option<_>>()?;
    Some(
        candidates
            .iter()
            .zip(&lists)
            .flat_map(|((i, s), list)| matches(*i, s, list))
            .collect(),
    )
}

/// Which servers' list entries match, listing every candidate again (in parallel). 404 when a
/// server's session is gone; a server that fails otherwise is left out, logged and counted.
async fn relist(
    client: (&RequestHeader, &RequestCtx),
    (ep, fed): (&Endpoint, &Federation),
    candidates: &[(usize, &ServerSession)],
    method: &str,
    matches: &Matches<'_>,
) -> Result<Vec<(usize, String)>, GatewayError> {
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
    Ok(found)
}

/// The server (index) of a raw resource URI (prefixing off): the one whose `resources/list`
/// has it, else the one with a template that describes it. -32602 unless exactly one server of
/// the session matches; 404 when a server's session is gone. The URI is the server's own.
pub async fn resolve_uri(
    client: &RequestHeader,
    ctx: &RequestCtx,
    fed: &Federation,
    fs: &FedSession,
    uri: &str,
) -> Result<(usize, String), GatewayError> {
    let ep = ctx.endpoint().ok_or(GatewayError::Internal)?;
    let candidates: Vec<(usize, &ServerSession)> = fs
        .servers
        .iter()
        .filter_map(|s| Some((fed.server(&s.alias)?.0, s)))
        .collect();
    let exact = |i: usize, _: &ServerSession, list: &[String]| -> Vec<(usize, String)> {
        list.iter()
            .filter(|u| *u == uri)
            .map(|u| (i, u.clone()))
            .take(1)
            .collect()
    };
    let described = |i: usize, _: &ServerSession, list: &[String]| -> Vec<(usize, String)> {
        if list.iter().any(|t| template::matches(t, uri)) {
            vec![(i, uri.to_string())]
        } else {
            Vec::new()
        }
    };
    let one = |found: Vec<(usize, String)>| -> Result<(usize, String), GatewayError> {
        match found.len() {
            1 => found
                .into_iter()
                .next()
                .ok_or_else(|| invalid_params("unknown resource URI")),
            0 => Err(invalid_params("unknown resource URI")),
            _ => Err(invalid_params(
                "a resource URI several servers have (prefix is off)",
            )),
        }
    };
    const RESOURCES: &str = "resources/list";
    const TEMPLATES: &str = "resources/templates/list";
    // From the lists kept: an exact URI, else a template.
    match kept(fed, &candidates, RESOURCES, &exact) {
        Some(found) if found.len() == 1 => return one(found),
        Some(found) if found.is_empty() => {
            if let Some(found) = kept(fed, &candidates, TEMPLATES, &described) {
                if found.len() == 1 {
                    return one(found);
                }
            }
        }
        _ => {}
    }
    // Listed again.
    let found = relist((client, ctx), (ep, fed), &candidates, RESOURCES, &exact).await?;
    if !found.is_empty() {
        return one(found);
    }
    one(relist((client, ctx), (ep, fed), &candidates, TEMPLATES, &described).await?)
}

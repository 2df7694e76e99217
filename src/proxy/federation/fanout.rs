//! Requests a federated endpoint answers itself, asking its servers in parallel, each within the
//! fan-out deadline: initialize (a session on every server, merged answer, sealed session id),
//! the lists (merged pages, a sealed composite cursor), notifications and `logging/setLevel`
//! (to every server), DELETE (every upstream session ends).

use super::client::{self, headers, missing, post, result_of, Fail};
use super::{answer, identity, invalid_params, now};
use crate::error::GatewayError;
use crate::mcp::federation::merge;
use crate::mcp::federation::token::{Cursor, ServerSession, Session as FedSession};
use crate::proxy::ctx::RequestCtx;
use crate::runtime::federation::Federation;
use crate::runtime::snapshot::Endpoint;
use futures::future::join_all;
use pingora::http::RequestHeader;
use pingora::prelude::Session;
use serde_json::{json, Value};
use std::time::Instant;

/// Answers `{"result": result}` to the request in `body`.
pub async fn answer_result(session: &mut Session, ctx: &RequestCtx, body: &Value, result: Value) {
    let out = json!({"jsonrpc": "2.0", "id": body.get("id").cloned().unwrap_or(Value::Null), "result": result});
    answer::write(session, ctx, 200, Some(out.to_string().into_bytes()), None).await;
}

/// initialize: a session on every server in parallel. A required server that fails fails the
/// whole initialize (the sessions opened meanwhile are ended); an optional one is left out.
pub async fn initialize(
    session: &mut Session,
    ctx: &mut RequestCtx,
    ep: &Endpoint,
    fed: &Federation,
    body: &Value,
) -> Result<(), GatewayError> {
    let started = Instant::now();
    let client_version = body
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("initialize needs params.protocolVersion"))?
        .to_string();
    let id = body.get("id").cloned().unwrap_or(Value::Null);
    let bytes = serde_json::to_vec(body).map_err(|_| GatewayError::Internal)?;
    let client = session.req_header().clone();
    let calls = fed.servers.iter().map(|server| {
        let host = client::pick_host(server).and_then(|i| server.backend.hosts.get(i));
        let h = headers(&client, ctx, ep, server, None);
        let bytes = bytes.clone();
        let id = id.clone();
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
            let result = result_of(&reply, &id)?;
            Ok::<_, Fail>((host.url.clone(), reply.session, result))
        }
    });
    let results = join_all(calls).await;
    fed.metrics
        .fanout("initialize", started.elapsed().as_secs_f64());
    let mut joined = Vec::new();
    let mut failed_required = None;
    for (i, (server, r)) in fed.servers.iter().zip(results).enumerate() {
        match r {
            Ok(ok) => joined.push((i, ok)),
            Err(fail) => {
                missing(fed, i, "initialize", fail);
                if server.required && failed_required.is_none() {
                    failed_required = Some(server.alias.clone());
                }
            }
        }
    }
    let entries: Vec<ServerSession> = joined
        .iter()
        .filter_map(|(i, (host, sid, result))| {
            Some(ServerSession {
                alias: fed.servers.get(*i)?.alias.clone(),
                host: host.clone(),
                session: sid.clone(),
                version: result
                    .get("protocolVersion")
                    .and_then(Value::as_str)
                    .unwrap_or(&client_version)
                    .to_string(),
            })
        })
        .collect();
    let token_session = FedSession {
        expires: now() + fed.session_ttl.as_secs(),
        identity: identity(ctx),
        version: merge::negotiate(
            &client_version,
            &joined
                .iter()
                .zip(&entries)
                .map(|((i, _), e)| {
                    (
                        fed.servers.get(*i).is_some_and(|s| s.required),
                        e.version.as_str(),
                    )
                })
                .collect::<Vec<_>>(),
        ),
        servers: entries,
    };
    if let Some(alias) =
        failed_required.or_else(|| joined.is_empty().then(|| "every server".into()))
    {
        end_sessions((&client, ctx), ep, fed, &token_session).await;
        return Err(GatewayError::FederatedServerFailed { server: alias });
    }
    let Some(token) = token_session.seal(&fed.sealer, &ep.path) else {
        end_sessions((&client, ctx), ep, fed, &token_session).await;
        tracing::error!(endpoint = %ep.name, "could not seal a federated session id");
        return Err(GatewayError::Internal);
    };
    let result = json!({
        "protocolVersion": token_session.version,
        "capabilities": merge::capabilities(joined.iter().filter_map(|(_, (_, _, r))| r.get("capabilities"))),
        "serverInfo": {"name": "mcpgate", "title": ep.name, "version": env!("CARGO_PKG_VERSION")},
    });
    let mut result = result;
    let texts = joined.iter().filter_map(|(i, (_, _, r))| {
        Some((
            fed.servers.get(*i)?.alias.as_str(),
            r.get("instructions").and_then(Value::as_str),
        ))
    });
    if let (Some(text), Some(o)) = (merge::instructions(texts), result.as_object_mut()) {
        o.insert("instructions".into(), Value::String(text));
    }
    fed.metrics.sessions.inc();
    let out = json!({"jsonrpc": "2.0", "id": id, "result": result});
    answer::write(
        session,
        ctx,
        200,
        Some(out.to_string().into_bytes()),
        Some(&token),
    )
    .await;
    Ok(())
}

/// Ends the upstream sessions of `fs` (DELETE to each), within the deadline; outcomes logged.
async fn end_sessions(
    (client, ctx): (&RequestHeader, &RequestCtx),
    ep: &Endpoint,
    fed: &Federation,
    fs: &FedSession,
) -> Vec<Result<(), Fail>> {
    let calls = fs.servers.iter().filter_map(|s| {
        let (_, server) = fed.server(&s.alias)?;
        s.session.as_ref()?;
        let h = headers(client, ctx, ep, server, Some(s));
        Some(async move {
            client::send(server, &s.host, http::Method::DELETE, h, None, fed.deadline)
                .await
                .map(|_| ())
        })
    });
    join_all(calls).await
}

/// DELETE: every server's session ends; 200 (a server that fails is logged and counted).
pub async fn delete(
    session: &mut Session,
    ctx: &RequestCtx,
    ep: &Endpoint,
    fed: &Federation,
    fs: &FedSession,
) {
    let started = Instant::now();
    let client = session.req_header().clone();
    let results = end_sessions((&client, ctx), ep, fed, fs).await;
    fed.metrics
        .fanout("DELETE", started.elapsed().as_secs_f64());
    for r in results {
        if let Err(f) = r {
            tracing::warn!(endpoint = %ep.name, reason = f.reason(), "a server's session did not end cleanly");
        }
    }
    answer::write(session, ctx, 200, None, None).await;
}

/// A server that answered 404 for its session: the whole session is gone.
fn gone(results: &[Result<Option<Value>, Fail>]) -> bool {
    results.iter().any(|r| matches!(r, Err(Fail::Status(404))))
}

/// Notifications (202) and `logging/setLevel` (an empty result) to every server of the session.
pub async fn broadcast(
    session: &mut Session,
    ctx: &RequestCtx,
    (ep, fed, fs): (&Endpoint, &Federation, &FedSession),
    body: &Value,
    has_result: bool,
) -> Result<(), GatewayError> {
    let started = Instant::now();
    let client = session.req_header().clone();
    let results = join_all(
        fs.servers
            .iter()
            .map(|s| post((&client, ctx), (ep, fed), s, body)),
    )
    .await;
    fed.metrics.fanout(
        if has_result { "other" } else { "notification" },
        started.elapsed().as_secs_f64(),
    );
    if gone(&results) {
        return Err(GatewayError::SessionNotFound {
            why: "upstream_session_gone",
        });
    }
    for (s, r) in fs.servers.iter().zip(&results) {
        if let (Err(f), Some((i, _))) = (r, fed.server(&s.alias)) {
            missing(fed, i, "a notification", *f);
        }
    }
    if has_result {
        answer_result(session, ctx, body, json!({})).await;
    } else {
        answer::write(session, ctx, 202, None, None).await;
    }
    Ok(())
}

/// A list method: one page from every server still listing, merged; the servers with more
/// pages go in a sealed composite cursor.
pub async fn list(
    session: &mut Session,
    ctx: &RequestCtx,
    (ep, fed, fs): (&Endpoint, &Federation, &FedSession),
    method: &str,
    body: &Value,
) -> Result<(), GatewayError> {
    let started = Instant::now();
    let who = identity(ctx);
    let key = merge::list_key(method).ok_or(GatewayError::Internal)?;
    // (server session, its cursor) to ask.
    let asks: Vec<(&ServerSession, Option<String>)> =
        match body.pointer("/params/cursor").and_then(Value::as_str) {
            None => fs.servers.iter().map(|s| (s, None)).collect(),
            Some(token) => {
                let c = Cursor::open(&fed.sealer, &ep.path, token, (method, &who), now()).map_err(
                    |why| {
                        tracing::info!(why = why.as_str(), "list cursor refused");
                        invalid_params("invalid cursor")
                    },
                )?;
                c.next
                    .into_iter()
                    .filter_map(|(alias, cur)| Some((fs.server(&alias)?, Some(cur))))
                    .collect()
            }
        };
    let client = session.req_header().clone();
    let calls = asks.iter().map(|(s, cursor)| {
        let mut req = json!({"jsonrpc": "2.0", "id": body.get("id").cloned().unwrap_or(json!(0)), "method": method, "params": {}});
        if let Some(c) = cursor {
            req["params"]["cursor"] = json!(c);
        }
        // The client's request metadata (2026-07-28 carries its revision there).
        if let Some(meta) = body.pointer("/params/_meta") {
            req["params"]["_meta"] = meta.clone();
        }
        let client = &client;
        async move { post((client, ctx), (ep, fed), s, &req).await }
    });
    let results = join_all(calls).await;
    fed.metrics.fanout(method, started.elapsed().as_secs_f64());
    if gone(&results) {
        return Err(GatewayError::SessionNotFound {
            why: "upstream_session_gone",
        });
    }
    let mut items = Vec::new();
    let mut next = Vec::new();
    for ((s, _), r) in asks.iter().zip(results) {
        let Some((i, server)) = fed.server(&s.alias) else {
            continue;
        };
        let result = match r {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(f) => {
                missing(fed, i, method, f);
                continue;
            }
        };
        let page: Vec<Value> = result
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let page: Vec<Value> = page
            .into_iter()
            .filter(|t| {
                method != "tools/list"
                    || server.tools.as_ref().is_none_or(|p| {
                        t.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| p.allows(n, ctx.identity.as_deref()))
                    })
            })
            .collect();
        items.extend(
            merge::expose_items(method, &s.alias, fed.prefix, page)
                .into_iter()
                .map(|v| (i, v)),
        );
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) => next.push((s.alias.clone(), c.to_string())),
            // The server's whole list in one page: its names route calls (`resolve.rs`).
            None if cursor_of(&asks, &s.alias).is_none() => {
                super::resolve::remember(fed, i, method, &result);
            }
            None => {}
        }
    }
    // The endpoint's tool policy, by exposed names, as at call time.
    if method == "tools/list" {
        if let Some(p) = &ep.policies.tools {
            items.retain(|(_, t)| {
                t.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| p.allows(n, ctx.identity.as_deref()))
            });
        }
    }
    if !fed.prefix {
        drop_duplicates(fed, super::resolve::field(method), &mut items);
    }
    let mut result = json!({ key: items.into_iter().map(|(_, v)| v).collect::<Vec<_>>() });
    if !next.is_empty() {
        let cursor = Cursor {
            expires: now() + fed.session_ttl.as_secs(),
            identity: who,
            method: method.to_string(),
            next,
        };
        let token = cursor
            .seal(&fed.sealer, &ep.path)
            .ok_or(GatewayError::Internal)?;
        result["nextCursor"] = json!(token);
    }
    answer_result(session, ctx, body, result).await;
    Ok(())
}

fn cursor_of<'a>(asks: &'a [(&ServerSession, Option<String>)], alias: &str) -> Option<&'a str> {
    asks.iter()
        .find(|(s, _)| s.alias == alias)
        .and_then(|(_, c)| c.as_deref())
}

/// Unprefixed names (or URIs, URI templates: `field`) two servers share are left out (neither
/// could be called by it).
fn drop_duplicates(fed: &Federation, field: &str, items: &mut Vec<(usize, Value)>) {
    let name = |v: &Value| v.get(field).and_then(Value::as_str).map(str::to_string);
    let mut count = std::collections::HashMap::new();
    for (_, v) in items.iter() {
        if let Some(n) = name(v) {
            *count.entry(n).or_insert(0usize) += 1;
        }
    }
    items.retain(|(i, v)| {
        let dup = name(v).is_some_and(|n| count.get(&n).copied().unwrap_or(0) > 1);
        if dup {
            tracing::warn!(name = ?name(v), "a name several federated servers share is left out (prefix is off)");
            fed.metrics.missing(*i, "duplicate_name");
        }
        !dup
    });
}

//! The SSE answer of a routed call on the relay path, rewritten event by event as it streams:
//! requests the server sends to the client get sealed ids ([`ServerRequestId`]), and each
//! event id becomes a sealed [`EventId`] holding the server's own, so that a GET with it as
//! `Last-Event-ID` resumes that server's stream (see `stream_get.rs`).

use super::stream_events::{frame, rewrite, RelayEvents, Rewritten, Splitter};
use crate::mcp::federation::ids::{session_binding, EventId, ServerRequestId};
use crate::proxy::ctx::RequestCtx;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};

/// At the response header of a routed call: an SSE answer is read event by event (its length
/// changes: `Content-Length` goes, HTTP/1.1 answers are chunked).
pub fn response_header(
    req: &RequestHeader,
    ctx: &mut RequestCtx,
    resp: &mut ResponseHeader,
    h2: bool,
) -> pingora::Result<()> {
    let Some(routed) = &ctx.routed else {
        return Ok(());
    };
    if !resp.status.is_success() || !crate::proxy::accounting::is_event_stream(resp) {
        return Ok(());
    }
    let Some(fed) = ctx.endpoint().and_then(|ep| ep.federation.as_ref()) else {
        return Ok(());
    };
    let Some(alias) = fed.servers.get(routed.server).map(|s| s.alias.clone()) else {
        return Ok(());
    };
    let token = req
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    resp.remove_header(&http::header::CONTENT_LENGTH);
    if !h2 {
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    ctx.routed_events = Some(RelayEvents {
        split: Splitter::default(),
        alias,
        last: EventId {
            binding: session_binding(token),
            last: Vec::new(),
        },
    });
    Ok(())
}

/// Each body chunk of a routed SSE answer: the complete events in it, rewritten.
pub fn body(ctx: &mut RequestCtx, body: &mut Option<Bytes>, end: bool) {
    let Some(state) = ctx.routed_events.as_mut() else {
        return;
    };
    let snapshot = ctx.snapshot.clone();
    let Some(ep) = ctx.endpoint.and_then(|i| snapshot.endpoints.get(i)) else {
        return;
    };
    let Some(fed) = &ep.federation else {
        return;
    };
    let mut events = match body.as_ref() {
        Some(chunk) => state.split.push(chunk),
        None => Vec::new(),
    };
    if end {
        events.extend(state.split.finish());
    }
    let mut out = BytesMut::new();
    for event in events {
        let mut seal = |own: &serde_json::Value| {
            ServerRequestId {
                binding: state.last.binding.clone(),
                alias: state.alias.clone(),
                original: own.clone(),
            }
            .seal(&fed.sealer, &ep.path)
        };
        match rewrite(&event, &mut seal) {
            Rewritten::Raw(raw) => out.extend_from_slice(&raw),
            Rewritten::Event { lines, id, request } => {
                if request.is_some() {
                    fed.metrics.server_request(
                        fed.server(&state.alias).map_or(usize::MAX, |(i, _)| i),
                        "sent",
                    );
                }
                let sealed = id.and_then(|id| {
                    state.last.set(&state.alias, &id);
                    state.last.seal(&fed.sealer, &ep.path)
                });
                if !lines.is_empty() || sealed.is_some() {
                    out.extend_from_slice(&frame(&lines, sealed.as_deref()));
                }
            }
        }
    }
    *body = (!out.is_empty()).then(|| out.freeze());
}

//! What a finished request leaves behind: the open-streams gauge when a response starts, the
//! tool-error scan of a `tools/call` answer, how the request ended, and the plain records
//! (metric values, MCP labels, the span's outcome, the access-log line) handed to
//! `observability`, which never sees the request context.

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::observability::access_log::{self, AccessRecord};
use crate::observability::mcp as mcp_metrics;
use crate::observability::metrics;
use crate::observability::outcome::{self, Facts, Outcome};
use memchr::memmem::Finder;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Error;

/// Whether a response header announces an SSE stream.
pub fn is_event_stream(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

/// Called with the upstream's response header.
pub fn response_started(resp: &ResponseHeader, ctx: &mut RequestCtx) {
    ctx.sse = is_event_stream(resp);
    if ctx.sse && !ctx.stream_counted {
        if let Some(ep) = ctx.endpoint() {
            ep.metrics.open_streams.inc();
            ctx.stream_counted = true;
        }
    }
}

/// The final response status sent to the client, if a response header went out (an interim
/// `100 Continue` is not an answer; `101 Switching Protocols` is).
pub fn status_sent(session: &Session) -> Option<u16> {
    session
        .response_written()
        .map(|r| r.status.as_u16())
        .filter(|s| !(100..200).contains(s) || *s == 101)
}

/// How the request ended, from what happened to it.
pub fn outcome(session: &Session, e: Option<&Error>, ctx: &RequestCtx) -> Outcome {
    outcome::classify(&Facts {
        status: status_sent(session),
        sse: ctx.sse,
        drained: super::streams::ended_by_drain(ctx),
        gateway: ctx.error.as_ref(),
        error: e,
    })
}

/// Whether Pingora's own error line should be left out: only real errors are logged.
pub fn quiet_error(session: &Session, e: &Error, ctx: &RequestCtx) -> bool {
    outcome(session, Some(e), ctx).error.is_none()
}

/// Called once per request from the logging phase.
pub fn request_finished(session: &Session, e: Option<&Error>, ctx: &mut RequestCtx) {
    let elapsed = ctx.started.elapsed();
    let sent = status_sent(session);
    // Metrics keep 0 for "no answer" (the `none` status class).
    let status = sent.unwrap_or(0);
    let Outcome { end, error } = outcome(session, e, ctx);
    let req = session.req_header();
    let snapshot = ctx.snapshot.clone();
    let endpoint = ctx.endpoint.and_then(|i| snapshot.endpoints.get(i));
    let em = match endpoint {
        Some(ep) => &ep.metrics,
        None => metrics::unmatched(),
    };
    em.observe(&req.method, status, elapsed.as_secs_f64());
    em.ended(end as usize);
    record_mcp(ctx, status);
    let bytes_in = session.body_bytes_read();
    let bytes_out = session.body_bytes_sent();
    em.request_bytes.inc_by(bytes_in as u64);
    em.response_bytes.inc_by(bytes_out as u64);
    if let Some(t) = ctx.upstream_ttfb {
        em.upstream_ttfb.observe(t.as_secs_f64());
    }
    if ctx.stream_counted {
        em.open_streams.dec();
        ctx.stream_counted = false;
    }
    let backend = match (endpoint, &ctx.routed) {
        (Some(ep), Some(r)) => ep
            .federation
            .as_ref()
            .and_then(|f| f.servers.get(r.server))
            .map(|s| &s.backend),
        (ep, _) => ep.map(|ep| &ep.backend),
    };
    let host = backend.and_then(|b| b.hosts.get(ctx.host?));
    if let Some(span) = ctx.span.take() {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        // What inspection read; else what the client's MCP headers claim (2026-07-28).
        let (mcp_method, tool) = match &ctx.mcp {
            Some(crate::mcp::inspect::Inspected::Single(m)) => (m.method.as_deref(), m.tool()),
            Some(_) => (Some("batch"), None),
            None => {
                let method = header("mcp-method");
                let tool = header("mcp-name").filter(|_| method == Some("tools/call"));
                (method, tool)
            }
        };
        span.end(crate::observability::otel::Outcome {
            endpoint: endpoint.map(|ep| (ep.name.as_str(), ep.path.as_str())),
            mcp_method,
            tool,
            status,
            error: error.as_deref(),
            upstream: host.map(|h| h.url.as_str()),
        });
    }
    if !access_log::enabled() {
        return;
    }
    access_log::log(AccessRecord {
        started: Some(ctx.started_wall),
        client: ctx.client_ip.map(|ip| ip.to_string()),
        method: req.method.to_string(),
        path: req.uri.path().to_string(),
        endpoint: endpoint.map(|ep| ep.name.clone()),
        status: sent,
        end: end.as_str(),
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        upstream_ttfb_ms: ctx.upstream_ttfb.map(|t| t.as_secs_f64() * 1000.0),
        upstream: host.map(|h| h.url.clone()),
        server: routed_alias(ctx).map(str::to_string),
        bytes_in,
        bytes_out,
        sse: ctx.sse,
        mcp_protocol_version: req
            .headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        error: error.map(|e| e.into_owned()),
    });
}

/// The alias of the federated server a request was routed to.
fn routed_alias(ctx: &RequestCtx) -> Option<&str> {
    let server = ctx.routed.as_ref()?.server;
    let fed = ctx.endpoint()?.federation.as_ref()?;
    fed.servers.get(server).map(|s| s.alias.as_str())
}

/// The outcome label of a request.
fn mcp_outcome(ctx: &RequestCtx, status: u16) -> &'static str {
    match &ctx.error {
        Some(
            GatewayError::ToolDenied { .. }
            | GatewayError::ToolChanged { .. }
            | GatewayError::PolicyDenied { .. }
            | GatewayError::Forbidden(_)
            | GatewayError::Unauthorized { .. }
            | GatewayError::InsufficientScope { .. },
        ) => "denied",
        Some(
            GatewayError::RateLimited { .. }
            | GatewayError::ConcurrencyLimited { .. }
            | GatewayError::LimitKeyMissing { .. }
            | GatewayError::LimitStoreUnavailable,
        ) => "limited",
        Some(
            GatewayError::InvalidJsonRpc { .. }
            | GatewayError::HeaderMismatch(_)
            | GatewayError::InspectionTooLarge { .. }
            | GatewayError::BodyTimeout
            | GatewayError::BodyNotAllowed
            | GatewayError::BadRequest
            | GatewayError::PayloadTooLarge,
        ) => "invalid",
        Some(_) => "upstream_error",
        None if status >= 500 || status == 0 => "upstream_error",
        None if status >= 400 => "error",
        None if ctx.tool_error => "tool_error",
        None => "ok",
    }
}

/// Records the inspected messages of a finished request.
fn record_mcp(ctx: &RequestCtx, status: u16) {
    let Some(inspected) = &ctx.mcp else {
        return;
    };
    let Some(ep) = ctx.endpoint() else {
        return;
    };
    let outcome = mcp_outcome(ctx, status);
    let m = metrics::metrics();
    for msg in inspected.messages() {
        let method = match msg.method.as_deref() {
            None => "response",
            Some(n) if n.starts_with("notifications/") => "notification",
            Some(n) => mcp_metrics::METHODS
                .iter()
                .find(|k| **k == n)
                .copied()
                .unwrap_or("other"),
        };
        let registry = &ep.policies.tool_registry;
        if let Some(t) = msg.tool() {
            // The upstream answered this call with a result that is not a tool error: it knows
            // the tool, whichever process relayed the `tools/list` that showed it. (Servers
            // answer an unknown tool with a JSON-RPC error or a tool error.)
            if ctx.tool_result && outcome == "ok" {
                registry.answered(t);
            }
        }
        let tool = msg.tool().map(|t| registry.label(t)).unwrap_or("");
        m.mcp_request(
            &ep.name,
            method,
            tool,
            outcome,
            routed_alias(ctx).unwrap_or(""),
        );
        if method == "tools/call" && ctx.upstream_sent.is_some() {
            m.tool_call(&ep.name, tool, ctx.started.elapsed().as_secs_f64());
        }
    }
}

/// Scans a `tools/call` answer for `"isError":true` outside a string (a tool error) and for a
/// `"result"` member (an answer, not a JSON-RPC error). Each chunk is searched where it lies;
/// only the last few bytes of the previous chunk are kept, so a match split across two chunks
/// is found too.
pub fn scan_tool_error(ctx: &mut RequestCtx, chunk: &[u8]) {
    if ctx.tool_error || !ctx.calls_one_tool() {
        return;
    }
    let tail = std::mem::take(&mut ctx.scan_tail);
    let head = &chunk[..chunk.len().min(mcp_metrics::KEEP)];
    let across: Vec<u8> = tail.iter().chain(head).copied().collect();
    let found = |needles: &[Finder<'static>]| {
        mcp_metrics::has(needles, None, &across)
            || mcp_metrics::has(needles, tail.last().copied(), chunk)
    };
    ctx.tool_result = ctx.tool_result || found(&mcp_metrics::RESULT[..]);
    ctx.tool_error = found(&mcp_metrics::NEEDLES[..]);
    let mut next = tail;
    next.extend_from_slice(&chunk[chunk.len().saturating_sub(mcp_metrics::KEEP)..]);
    let drop = next.len().saturating_sub(mcp_metrics::KEEP);
    next.drain(..drop);
    ctx.scan_tail = next;
}

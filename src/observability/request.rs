//! Per-request bookkeeping: the open-streams gauge when a response starts, and metrics plus the
//! access-log record from the logging phase.

use super::access_log::{self, AccessRecord};
use super::metrics;
use super::outcome::{self, Facts, Outcome};
use crate::proxy::ctx::RequestCtx;
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
        drained: crate::proxy::streams::ended_by_drain(ctx),
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
    em.ended(end);
    super::mcp::record(ctx, status);
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
    let host = endpoint.and_then(|ep| ep.backend.hosts.get(ctx.host?));
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
        span.end(super::otel::Outcome {
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

//! Per-request bookkeeping: the open-streams gauge when a response starts, and metrics plus the
//! access-log record from the logging phase.

use super::access_log::{self, AccessRecord};
use super::metrics;
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

/// Called once per request from the logging phase.
pub fn request_finished(session: &Session, e: Option<&Error>, ctx: &mut RequestCtx) {
    let elapsed = ctx.started.elapsed();
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .unwrap_or(0);
    let req = session.req_header();
    let snapshot = ctx.snapshot.clone();
    let endpoint = ctx.endpoint.and_then(|i| snapshot.endpoints.get(i));
    let em = match endpoint {
        Some(ep) => &ep.metrics,
        None => metrics::unmatched(),
    };
    em.observe(&req.method, status, elapsed.as_secs_f64());
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
    let error = match (&ctx.error, e) {
        (Some(g), _) => Some(g.log_reason()),
        (None, Some(_)) if crate::proxy::streams::ended_by_drain(ctx) => {
            Some("ended_by_drain".to_string())
        }
        (None, Some(e)) => Some(e.etype().as_str().to_string()),
        (None, None) => None,
    };
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
        status,
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
        error,
    });
}

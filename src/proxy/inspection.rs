//! Reading a POST body before the upstream is chosen, for the policies that need its JSON-RPC
//! content (tool lists, per-tool limits, header consistency). Pingora has no phase that sees the
//! body before `upstream_peer`; the body is read here with the session's retry buffering on, and
//! Pingora then forwards exactly those bytes from that buffer. The buffer holds 64 KiB, so larger
//! bodies on an inspecting endpoint are refused (413) before anything is sent: a body the gateway
//! read always reaches the upstream whole, or the request is refused.

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::mcp::inspect::{attributable, inspect, InspectError};
use crate::policy::mcp_headers;
use pingora::prelude::Session;

/// Reads and inspects the body when the endpoint needs it, then applies the body-based checks:
/// attribution (a near-miss method, a call naming no tool, prompt or resource), header
/// consistency and the tool lists (a batch with one refused message is refused as a whole).
pub async fn run(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let snapshot = ctx.snapshot.clone();
    let Some(ep) = ctx.endpoint.and_then(|i| snapshot.endpoints.get(i)) else {
        return Ok(());
    };
    let Some(inspection) = ep.policies.inspection else {
        return Ok(());
    };
    if session.req_header().method != http::Method::POST {
        return match has_body(session.req_header()) {
            true => Err(GatewayError::BodyNotAllowed),
            false => Ok(()),
        };
    }
    let limit = inspection.max_body.min(ep.policies.limits.max_body);
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::InspectionTooLarge { limit });
    }
    // The checks that need no body have passed, and the declared size fits: a client waiting
    // for `100 Continue` may send the body now (a refusal above came instead of it).
    super::http1::send_continue(session).await;
    session.enable_retry_buffering();
    let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(limit) as usize);
    let read = async {
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > limit {
                        return Err(GatewayError::InspectionTooLarge { limit });
                    }
                    ctx.body.push(&chunk, super::errors::ID_SCAN_LIMIT);
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(()),
                Err(_) => return Err(GatewayError::BadRequest),
            }
        }
    };
    // A client that trickles its body holds no more than this.
    tokio::time::timeout(inspection.body_timeout, read)
        .await
        .map_err(|_| GatewayError::BodyTimeout)??;
    ctx.body.complete = true;
    ctx.body_inspected = true;
    let inspected = inspect(&body).map_err(|e| GatewayError::InvalidJsonRpc {
        code: e.code(),
        message: match e {
            InspectError::Parse(m) => format!("parse error: {m}"),
            InspectError::Invalid(m) => format!("invalid request: {m}"),
        },
    })?;
    // Kept before the checks, so refused messages are counted by method and tool too.
    let inspected = &*ctx.mcp.insert(inspected);
    // A call the gateway cannot attribute is refused before any policy reads it.
    attributable(inspected).map_err(|u| GatewayError::InvalidJsonRpc {
        code: u.code,
        message: u.message.to_string(),
    })?;
    let registry = &ep.policies.tool_registry;
    mcp_headers::check(session.req_header(), inspected, &|tool| {
        registry.param_headers(tool)
    })
    .map_err(GatewayError::HeaderMismatch)?;
    for tool in inspected.messages().iter().filter_map(|m| m.tool()) {
        let allowed = ep
            .policies
            .tools
            .as_ref()
            .is_none_or(|t| t.allows(tool, ctx.identity.as_deref()));
        if !allowed {
            return Err(GatewayError::ToolDenied {
                tool: tool.to_string(),
            });
        }
        if registry.blocked(tool) {
            return Err(GatewayError::ToolChanged {
                tool: tool.to_string(),
            });
        }
    }
    Ok(())
}

/// Whether a request declares a body: a non-zero `Content-Length`, or any `Transfer-Encoding`.
fn has_body(req: &pingora::http::RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| {
                v.as_bytes()
                    .iter()
                    .any(|b| !matches!(b, b'0' | b' ' | b'\t'))
            })
}

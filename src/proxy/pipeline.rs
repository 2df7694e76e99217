//! The request phase, step by step: RFC 9728 metadata, routing (404/405), the endpoint's
//! request-header policies in their fixed order, then authentication. The `ProxyHttp` hooks call
//! in here.

use super::ctx::RequestCtx;
use super::errors;
use super::http1;
use super::inspection;
use super::pinning;
use super::routing;
use crate::error::GatewayError;
use crate::policy::limit_key::KeyFacts;
use crate::policy::{cors::Cors, Verdict};
use bytes::Bytes;
use pingora::prelude::Session;
use pingora::{Error, ErrorType};

/// Runs the request phase; `true` when the gateway answered (nothing goes upstream).
pub async fn request(session: &mut Session, ctx: &mut RequestCtx) -> bool {
    if let Some(answered) = metadata(session, ctx).await {
        return answered;
    }
    let mut verdict = match decide(session, ctx) {
        Verdict::Continue => authenticate(session, ctx).await,
        other => other,
    };
    if let Verdict::Continue = verdict {
        verdict = match inspection::run(session, ctx)
            .await
            .and_then(|()| rules(session, ctx))
        {
            Ok(()) => Verdict::Continue,
            Err(e) => Verdict::Refuse(e),
        };
    }
    if let Verdict::Continue = verdict {
        verdict = match limits(session, ctx).await {
            Ok(()) => pinning::open(session.req_header(), ctx),
            Err(e) => Verdict::Refuse(e),
        };
    }
    if let Verdict::Continue = verdict {
        // A federated endpoint answers fan-out requests itself and routes the others.
        match super::federation::request(session, ctx).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => verdict = Verdict::Refuse(e),
        }
    }
    match verdict {
        Verdict::Continue => {
            http1::send_continue(session).await;
            false
        }
        Verdict::Preflight(headers) => {
            errors::answer_preflight(session, headers).await;
            true
        }
        Verdict::Refuse(e) => {
            errors::answer(session, ctx, e).await;
            true
        }
    }
}

/// `/.well-known/oauth-protected-resource[/path]`: the gateway's own metadata, or the
/// upstream's, relayed and rewritten (GET, HEAD; OPTIONS preflights are answered for any origin,
/// the document being public). `None` when the request is something else.
async fn metadata(session: &mut Session, ctx: &mut RequestCtx) -> Option<bool> {
    let (index, ep) = ctx
        .snapshot
        .metadata_endpoint(session.req_header().uri.path())?;
    ctx.endpoint = Some(index);
    let method = session.req_header().method.clone();
    let refusal = match ep.policies.check_ip(ctx.client_ip) {
        Err(e) => Some(e),
        Ok(()) if method == http::Method::OPTIONS => {
            let headers = public_preflight(session.req_header());
            errors::answer_preflight(session, headers).await;
            return Some(true);
        }
        Ok(()) if method != http::Method::GET && method != http::Method::HEAD => {
            Some(GatewayError::MethodNotAllowed {
                allow: http::HeaderValue::from_static("GET, HEAD, OPTIONS"),
            })
        }
        Ok(()) => None,
    };
    if let Some(e) = refusal {
        errors::answer(session, ctx, e).await;
        return Some(true);
    }
    if let Some(meta) = &ep.policies.oauth {
        let doc = meta.document().to_string();
        errors::answer_document(session, &doc).await;
        return Some(true);
    }
    if ep.policies.auth.is_some() {
        // The gateway checks this endpoint's credentials and publishes no metadata for it: the
        // upstream's would name authorization servers whose tokens the gateway does not take.
        errors::answer(session, ctx, GatewayError::NotFound).await;
        return Some(true);
    }
    ctx.metadata_relay = Some(Vec::new());
    Some(false)
}

/// Preflight headers for a public document: any origin, the requested headers.
fn public_preflight(
    req: &pingora::http::RequestHeader,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    use http::header;
    let mut out = vec![
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            http::HeaderValue::from_static("*"),
        ),
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            http::HeaderValue::from_static("GET, HEAD, OPTIONS"),
        ),
        (
            header::ACCESS_CONTROL_MAX_AGE,
            http::HeaderValue::from_static("600"),
        ),
    ];
    if let Some(h) = req.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        out.push((header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
    }
    out
}

/// Routing, then the endpoint's request-header policies. A CORS preflight to an endpoint with
/// CORS is answered even though the endpoint does not list OPTIONS.
fn decide(session: &Session, ctx: &mut RequestCtx) -> Verdict {
    let req = session.req_header();
    let (endpoint, refusal) = routing::route(&ctx.snapshot, req);
    ctx.endpoint = endpoint;
    let Some(ep) = ctx.endpoint() else {
        return Verdict::Refuse(refusal.unwrap_or(GatewayError::NotFound));
    };
    let preflight = Cors::is_preflight(req) && ep.policies.cors.is_some();
    match refusal {
        Some(GatewayError::MethodNotAllowed { .. }) if preflight => {
            ep.policies.check_request(req, ctx.client_ip)
        }
        Some(e) => Verdict::Refuse(e),
        None => ep.policies.check_request(req, ctx.client_ip),
    }
}

async fn authenticate(session: &Session, ctx: &mut RequestCtx) -> Verdict {
    let Some(ep) = ctx.endpoint() else {
        return Verdict::Continue;
    };
    match ep.policies.authenticate(session.req_header()).await {
        Ok(identity) => {
            ctx.identity = identity;
            Verdict::Continue
        }
        Err(e) => Verdict::Refuse(e),
    }
}

/// The endpoint's CEL rules.
fn rules(session: &Session, ctx: &RequestCtx) -> Result<(), GatewayError> {
    let Some(ep) = ctx.endpoint() else {
        return Ok(());
    };
    ep.policies.rules.check(&crate::policy::cel::Facts {
        req: session.req_header(),
        client_ip: ctx.client_ip,
        identity: ctx.identity.as_deref(),
        mcp: ctx.mcp.as_ref(),
    })
}

/// Rate and concurrency limits (after authentication, so they can count by identity).
async fn limits(session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let snapshot = ctx.snapshot.clone();
    let Some(ep) = ctx.endpoint.and_then(|i| snapshot.endpoints.get(i)) else {
        return Ok(());
    };
    let policies = &ep.policies;
    if policies.rate_limits.is_empty() && policies.concurrency.is_empty() {
        return Ok(());
    }
    let req = session.req_header();
    let tools: Vec<&str> = ctx
        .mcp
        .as_ref()
        .map(|m| m.messages().iter().filter_map(|m| m.tool()).collect())
        .unwrap_or_default();
    let facts = KeyFacts {
        req,
        client_ip: ctx.client_ip,
        identity: ctx.identity.as_deref(),
        tools: &tools,
    };
    let stream = req.method == http::Method::GET;
    let (held, quota) = policies.check_limits(&facts, stream).await?;
    ctx.held = held;
    ctx.quota = quota;
    Ok(())
}

/// Each request body chunk: kept (by reference) for error answers, counted against the limit.
pub fn request_body(
    ctx: &mut RequestCtx,
    body: &Option<Bytes>,
    end_of_stream: bool,
) -> pingora::Result<()> {
    if let Some(chunk) = body {
        if !ctx.body_inspected {
            ctx.body.push(chunk, errors::ID_SCAN_LIMIT);
        }
        let limits = ctx.endpoint().map(|ep| ep.policies.limits);
        if let Some(limits) = limits {
            if limits.count(&mut ctx.body_bytes, chunk.len()).is_err() {
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body over the limit");
            }
        }
    }
    ctx.body.complete |= end_of_stream;
    Ok(())
}

//! The request phase, step by step: RFC 9728 metadata, routing (404/405), the endpoint's
//! request-header policies in their fixed order, then authentication. The `ProxyHttp` hooks call
//! in here.

use super::ctx::RequestCtx;
use super::errors::{self, GatewayError};
use super::routing;
use crate::policy::{cors::Cors, Verdict};
use bytes::Bytes;
use pingora::prelude::Session;
use pingora::{Error, ErrorType};

/// Runs the request phase; `true` when the gateway answered (nothing goes upstream).
pub async fn request(session: &mut Session, ctx: &mut RequestCtx) -> bool {
    if let Some(answered) = metadata(session, ctx).await {
        return answered;
    }
    let verdict = match decide(session, ctx) {
        Verdict::Continue => authenticate(session, ctx).await,
        other => other,
    };
    match verdict {
        Verdict::Continue => false,
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

/// `GET /.well-known/oauth-protected-resource[/path]`: the gateway's own metadata, or the
/// upstream's, relayed and rewritten. `None` when the request is something else.
async fn metadata(session: &mut Session, ctx: &mut RequestCtx) -> Option<bool> {
    if session.req_header().method != http::Method::GET {
        return None;
    }
    let (index, ep) = ctx
        .snapshot
        .metadata_endpoint(session.req_header().uri.path())?;
    ctx.endpoint = Some(index);
    if let Err(e) = ep.policies.check_ip(ctx.client_ip) {
        errors::answer(session, ctx, e).await;
        return Some(true);
    }
    if let Some(meta) = &ep.policies.oauth {
        let doc = meta.document().to_string();
        errors::answer_document(session, &doc).await;
        return Some(true);
    }
    ctx.metadata_relay = Some(Vec::new());
    Some(false)
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

/// Each request body chunk: kept (by reference) for error answers, counted against the limit.
pub fn request_body(
    ctx: &mut RequestCtx,
    body: &Option<Bytes>,
    end_of_stream: bool,
) -> pingora::Result<()> {
    if let Some(chunk) = body {
        ctx.body.push(chunk, errors::ID_SCAN_LIMIT);
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

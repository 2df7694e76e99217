//! When the gateway does not authenticate an endpoint and its upstream does, the upstream's
//! OAuth resource metadata is made consistent with the gateway: the `resource_metadata` URL of
//! its `WWW-Authenticate` answers and the `resource` of its RFC 9728 document (relayed from the
//! gateway's well-known path) name the gateway's public URL, not the upstream's.

use super::ctx::RequestCtx;
use crate::policy::oauth::{self, WELL_KNOWN};
use bytes::Bytes;
use http::header;
use pingora::http::ResponseHeader;

/// Largest upstream metadata document rewritten; a larger one passes unchanged.
const MAX_DOCUMENT: usize = 64 * 1024;

fn public_url(ctx: &RequestCtx) -> String {
    crate::runtime::snapshot::public_url(&ctx.snapshot.source)
}

/// Rewrites the upstream's challenge, and prepares a relayed document for rewriting.
pub fn response_header(ctx: &mut RequestCtx, resp: &mut ResponseHeader) -> pingora::Result<()> {
    let Some(ep) = ctx.endpoint() else {
        return Ok(());
    };
    if ep.policies.auth.is_some() {
        return Ok(());
    }
    if ctx.metadata_relay.is_some() {
        if resp.status.is_success() {
            // The body changes length: let Pingora frame it.
            resp.remove_header(&header::CONTENT_LENGTH);
        } else {
            ctx.metadata_relay = None;
        }
        return Ok(());
    }
    if !resp.headers.contains_key(header::WWW_AUTHENTICATE) {
        return Ok(());
    }
    let url = format!("{}{WELL_KNOWN}{}", public_url(ctx), ep.path);
    let rewritten: Vec<String> = resp
        .headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| oauth::rewrite_challenge(v, &url).unwrap_or_else(|| v.to_string()))
        .collect();
    if !rewritten.is_empty() {
        resp.remove_header(&header::WWW_AUTHENTICATE);
        for v in rewritten {
            resp.append_header(header::WWW_AUTHENTICATE, v)?;
        }
    }
    Ok(())
}

/// Collects a relayed metadata document and rewrites it at its end.
pub fn response_body(ctx: &mut RequestCtx, body: &mut Option<Bytes>, end_of_stream: bool) {
    let resource = match ctx.endpoint() {
        Some(ep) if ctx.metadata_relay.is_some() => format!("{}{}", public_url(ctx), ep.path),
        _ => return,
    };
    let Some(buf) = ctx.metadata_relay.as_mut() else {
        return;
    };
    if let Some(chunk) = body.take() {
        buf.extend_from_slice(&chunk);
    }
    if buf.len() > MAX_DOCUMENT || end_of_stream {
        let collected = std::mem::take(buf);
        let out = if end_of_stream {
            oauth::rewrite_document(&collected, &resource).unwrap_or(collected)
        } else {
            collected
        };
        *body = Some(Bytes::from(out));
        ctx.metadata_relay = None;
    }
}

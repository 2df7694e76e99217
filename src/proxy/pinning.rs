//! Session pinning in the request flow (the sealing itself is `mcp::session_pin`): open the
//! client's `Mcp-Session-Id` before a host is chosen, send the upstream its own id, and seal the
//! id of a new session in the response.

use super::ctx::{PinnedSession, RequestCtx};
use crate::error::GatewayError;
use crate::policy::Verdict;
use pingora::http::{RequestHeader, ResponseHeader};

/// The session header (case-insensitive).
pub const SESSION_HEADER: &str = "mcp-session-id";

/// Opens a sealed session id on an endpoint that pins sessions; a request without one is
/// balanced freely. 404 when the id does not open or its host is no longer configured.
pub fn open(req: &RequestHeader, ctx: &mut RequestCtx) -> Verdict {
    let Some(ep) = ctx.endpoint() else {
        return Verdict::Continue;
    };
    let Some(pinning) = &ep.backend.pinning else {
        return Verdict::Continue;
    };
    let Some(value) = req.headers.get(SESSION_HEADER) else {
        return Verdict::Continue;
    };
    let token = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let Some(opened) = pinning.sealer.open(&ep.path, &token) else {
        pinning.metrics.failed("invalid");
        return Verdict::Refuse(GatewayError::SessionNotFound {
            why: "invalid_session_id",
        });
    };
    let Some(host) = ep.backend.host_by_url(&opened.host) else {
        pinning.metrics.failed("host_gone");
        tracing::info!(endpoint = %ep.name, host = %opened.host, "session of a host no longer configured");
        return Verdict::Refuse(GatewayError::SessionNotFound {
            why: "session_host_gone",
        });
    };
    pinning.metrics.routed.inc();
    ctx.pinned = Some(PinnedSession {
        host,
        session: opened.session,
        token,
    });
    Verdict::Continue
}

/// The upstream gets its own session id.
pub fn upstream_request(ctx: &RequestCtx, req: &mut RequestHeader) -> pingora::Result<()> {
    if let Some(p) = &ctx.pinned {
        req.insert_header(SESSION_HEADER, p.session.as_str())?;
    }
    Ok(())
}

/// A session id from the upstream is sealed with the host that sent it (or, when it is the id of
/// the pinned session, given back as the client knows it).
pub fn upstream_response(ctx: &RequestCtx, resp: &mut ResponseHeader) -> pingora::Result<()> {
    let Some(ep) = ctx.endpoint() else {
        return Ok(());
    };
    let Some(pinning) = &ep.backend.pinning else {
        return Ok(());
    };
    let Some(value) = resp.headers.get(SESSION_HEADER) else {
        return Ok(());
    };
    let upstream_id = String::from_utf8_lossy(value.as_bytes()).into_owned();
    if let Some(p) = ctx.pinned.as_ref().filter(|p| p.session == upstream_id) {
        return resp.insert_header(SESSION_HEADER, p.token.as_str());
    }
    let host = ctx.host.and_then(|i| ep.backend.hosts.get(i));
    let sealed = host.and_then(|h| pinning.sealer.seal(&ep.path, &h.url, &upstream_id));
    match sealed {
        Some(token) => {
            pinning.metrics.sessions.inc();
            resp.insert_header(SESSION_HEADER, token)
        }
        None => {
            // Never hand out an id that would not route back: the client gets none and the
            // next request starts over.
            tracing::error!(endpoint = %ep.name, "could not seal a session id");
            resp.remove_header(SESSION_HEADER);
            Ok(())
        }
    }
}

//! Long-lived GET streams and draining: each one is registered with its upstream socket so that
//! a draining process can end it cleanly (see `runtime::drain`). Responses to POSTs, SSE or not,
//! are never ended early: they run to their end within the grace period.

use super::ctx::RequestCtx;
use crate::runtime::drain::{self, UpstreamSocket};
use pingora::prelude::Session;
use pingora::protocols::Digest;
use std::os::fd::RawFd;

/// Called when the request got its upstream connection (new or reused).
pub fn connected(ctx: &mut RequestCtx, fd: RawFd, digest: Option<&Digest>) {
    ctx.upstream_socket = digest
        .and_then(|d| d.socket_digest.clone())
        .map(|s| (fd, s));
}

/// Called with the upstream's response header (after `ctx.sse` is known).
pub fn response_started(session: &Session, ctx: &mut RequestCtx) {
    if !ctx.sse || session.req_header().method != http::Method::GET || ctx.stream.is_some() {
        return;
    }
    let Some((fd, digest)) = &ctx.upstream_socket else {
        return;
    };
    let addr = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
        a.and_then(|a| a.as_inet()).copied()
    };
    if let (Some(local), Some(peer)) = (addr(digest.local_addr()), addr(digest.peer_addr())) {
        ctx.stream = Some(drain::register_stream(UpstreamSocket {
            fd: *fd,
            local,
            peer,
        }));
    }
}

/// Whether a drain ended this request's stream on purpose.
pub fn ended_by_drain(ctx: &RequestCtx) -> bool {
    ctx.stream.as_ref().is_some_and(|s| s.ended_by_drain())
}

/// Finishes the client's response after a drain ended its stream: a proper end of body, so the
/// client sees a complete response and reconnects.
pub async fn finish_drained(session: &mut Session) {
    if let Err(e) = session.as_mut().finish_body().await {
        tracing::debug!(error = %e, "ending a drained stream");
    }
}

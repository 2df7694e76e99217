//! Upstream selection: round robin over healthy hosts, with a retry on another host when a
//! connection cannot be established (never once a request may have reached a server).

use super::ctx::RequestCtx;
use super::errors::NO_HOST;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

/// Chooses the host for this attempt. Runs again after a connect failure, so its only side
/// effects are in `ctx`.
pub fn select(ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    let tried = ctx.tried_hosts;
    let Some(endpoint) = ctx.endpoint() else {
        return Error::e_explain(ErrorType::InternalError, "no endpoint selected");
    };
    let backend = &endpoint.backend;
    let n = backend.hosts.len();
    let untried = |b: &pingora::lb::Backend| {
        b.addr
            .as_inet()
            .and_then(|a| backend.host_index(a))
            .is_some_and(|i| i >= 64 || tried & (1 << i) == 0)
    };
    let choice = backend
        .balancer
        .select_with(b"", 2 * n + 1, |b, healthy| healthy && untried(b))
        // Every host left is marked unhealthy: try them anyway rather than fail outright.
        .or_else(|| {
            backend
                .balancer
                .select_with(b"", 2 * n + 1, |b, _| untried(b))
        });
    let index = choice
        .as_ref()
        .and_then(|b| b.addr.as_inet())
        .and_then(|a| backend.host_index(a));
    let Some((index, host)) = index.and_then(|i| Some((i, backend.hosts.get(i)?))) else {
        let mut e = Error::explain(ErrorType::Custom(NO_HOST), "no upstream host left to try");
        e.as_up();
        return Err(e);
    };
    let peer = Box::new(host.peer.clone());
    ctx.host = Some(index);
    if index < 64 {
        ctx.tried_hosts |= 1 << index;
    }
    Ok(peer)
}

/// After a failed connection: count it, and retry on another host if one is left.
pub fn on_connect_failure(ctx: &RequestCtx, mut e: Box<Error>) -> Box<Error> {
    let Some(endpoint) = ctx.endpoint() else {
        return e;
    };
    let backend = &endpoint.backend;
    if let Some(host) = ctx.host.and_then(|i| backend.hosts.get(i)) {
        host.metrics.connect_failures.inc();
        tracing::warn!(endpoint = %endpoint.name, host = %host.url, error = %e, "upstream connect failed");
    }
    let all_tried = (0..backend.hosts.len().min(64)).all(|i| ctx.tried_hosts & (1 << i) != 0);
    e.set_retry(!all_tried);
    e
}

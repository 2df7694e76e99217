//! Upstream selection: the pinned host of a session, or round robin over healthy hosts whose
//! circuit breaker admits requests, with a retry on another host when a connection cannot be
//! established (never once a request may have reached a server). Outcomes feed the breakers.

use super::ctx::RequestCtx;
use crate::error::{CIRCUIT_OPEN, NO_HOST};
use crate::policy::circuit_breaker::Admission;
use crate::runtime::snapshot::Backend;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::time::{Duration, Instant};

/// Chooses the host for this attempt. Runs again after a connect failure, so its only side
/// effects are in `ctx`.
pub fn select(ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    let snapshot = ctx.snapshot.clone();
    let Some(endpoint) = ctx.endpoint.and_then(|i| snapshot.endpoints.get(i)) else {
        return Error::e_explain(ErrorType::InternalError, "no endpoint selected");
    };
    let backend = match (&ctx.routed, &endpoint.federation) {
        (Some(r), Some(f)) => match f.servers.get(r.server) {
            Some(s) => &s.backend,
            None => return Error::e_explain(ErrorType::InternalError, "no such server"),
        },
        _ => &endpoint.backend,
    };
    let now = Instant::now();
    let mut wait: Option<Duration> = None;
    let pinned_host = ctx
        .pinned
        .as_ref()
        .map(|p| p.host)
        .or(ctx.routed.as_ref().and_then(|r| r.host));
    let chosen = match pinned_host {
        // A session lives on one host: no other host can serve it.
        Some(i) if ctx.tried_hosts & bit(i) == 0 => admit(backend, i, now, &mut wait),
        Some(_) => None,
        None => balance(backend, ctx.tried_hosts, now, &mut wait),
    };
    let Some((index, admission)) = chosen else {
        if let Some(w) = wait.filter(|_| ctx.tried_hosts == 0) {
            ctx.circuit_retry_after = Some(w.as_secs().max(1));
            let mut e = Error::explain(
                ErrorType::Custom(CIRCUIT_OPEN),
                "every circuit breaker is open",
            );
            e.as_up();
            return Err(e);
        }
        let mut e = Error::explain(ErrorType::Custom(NO_HOST), "no upstream host left to try");
        e.as_up();
        return Err(e);
    };
    let Some(host) = backend.hosts.get(index) else {
        return Error::e_explain(ErrorType::InternalError, "host index out of range");
    };
    ctx.host = Some(index);
    ctx.admission = admission;
    ctx.tried_hosts |= bit(index);
    Ok(Box::new(host.peer.clone()))
}

fn bit(i: usize) -> u64 {
    if i < 64 {
        1 << i
    } else {
        0
    }
}

/// Round robin over healthy, untried hosts whose breaker admits a request; when every such host
/// is marked unhealthy, the unhealthy ones are tried rather than failing outright.
fn balance(
    backend: &Backend,
    tried: u64,
    now: Instant,
    wait: &mut Option<Duration>,
) -> Option<(usize, Option<Admission>)> {
    let n = backend.hosts.len();
    let index_of = |b: &pingora::lb::Backend| b.addr.as_inet().and_then(|a| backend.host_index(a));
    let open = |i: usize| {
        backend
            .hosts
            .get(i)
            .and_then(|h| h.breaker.as_ref())
            .is_some_and(|b| b.available(now).is_err())
    };
    let eligible = |b: &pingora::lb::Backend| {
        index_of(b).is_some_and(|i| (i >= 64 || tried & (1 << i) == 0) && !open(i))
    };
    for _ in 0..n.max(1) {
        let choice = backend
            .balancer
            .select_with(b"", 2 * n + 1, |b, healthy| healthy && eligible(b))
            .or_else(|| {
                backend
                    .balancer
                    .select_with(b"", 2 * n + 1, |b, _| eligible(b))
            });
        let Some(i) = choice.as_ref().and_then(index_of) else {
            break;
        };
        if let Some(found) = admit(backend, i, now, wait) {
            return Some(found);
        }
    }
    // Nothing admitted: how long until a breaker lets a probe through.
    for h in &backend.hosts {
        if let Some(Err(d)) = h.breaker.as_ref().map(|b| b.available(now)) {
            *wait = Some(wait.map_or(d, |w| w.min(d)));
        }
    }
    None
}

/// Host `i` if its breaker (if any) admits the request.
fn admit(
    backend: &Backend,
    i: usize,
    now: Instant,
    wait: &mut Option<Duration>,
) -> Option<(usize, Option<Admission>)> {
    let host = backend.hosts.get(i)?;
    let Some(breaker) = &host.breaker else {
        return Some((i, None));
    };
    match breaker.admit(now, &host.metrics, &host.url) {
        Admission::No(d) => {
            *wait = Some(wait.map_or(d, |w| w.min(d)));
            None
        }
        a => Some((i, Some(a))),
    }
}

/// After a failed connection: count it, tell the breaker, and retry on another host if one is
/// left (never for a pinned session).
pub fn on_connect_failure(ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
    let snapshot = ctx.snapshot.clone();
    let Some(endpoint) = ctx.endpoint.and_then(|i| snapshot.endpoints.get(i)) else {
        return e;
    };
    let sticky = ctx.pinned.is_some() || ctx.routed.as_ref().is_some_and(|r| r.host.is_some());
    let routed = ctx.routed.as_ref().map(|r| r.server);
    let backend = match (routed, &endpoint.federation) {
        (Some(i), Some(f)) => match f.servers.get(i) {
            Some(s) => &s.backend,
            None => return e,
        },
        _ => &endpoint.backend,
    };
    if let Some(host) = ctx.host.and_then(|i| backend.hosts.get(i)) {
        host.metrics.connect_failures.inc();
        if let (Some(b), Some(a)) = (&host.breaker, ctx.admission.take()) {
            b.record(false, a, &host.metrics, &host.url);
        }
        tracing::warn!(endpoint = %endpoint.name, host = %host.url, error = %e, "upstream connect failed");
    }
    let all_tried = (0..backend.hosts.len().min(64)).all(|i| ctx.tried_hosts & (1 << i) != 0);
    e.set_retry(!all_tried && !sticky);
    e
}

/// At the end of a request: the outcome for the chosen host's breaker. A failure is an upstream
/// error or a failure status; a request that ended on the client's side says nothing.
pub fn record_outcome(ctx: &mut RequestCtx, error: Option<&Error>) {
    let Some(admission) = ctx.admission.take() else {
        return;
    };
    let Some(host) = ctx.backend().and_then(|b| b.hosts.get(ctx.host?)) else {
        return;
    };
    let Some(breaker) = &host.breaker else {
        return;
    };
    let upstream_error = error.is_some_and(|e| e.esource() == &pingora::ErrorSource::Upstream);
    let failed_status = ctx
        .upstream_status
        .is_some_and(|s| breaker.settings.is_failure_status(s));
    if upstream_error || failed_status {
        breaker.record(false, admission, &host.metrics, &host.url);
    } else if ctx.upstream_status.is_some() {
        breaker.record(true, admission, &host.metrics, &host.url);
    } else {
        breaker.abandon(admission);
    }
}

//! The Pingora `ProxyHttp` implementation. Each hook is a few lines that delegate; the policy
//! order is fixed here, in code.

pub mod accounting;
pub mod ctx;
pub mod errors;
pub mod federation;
pub mod header_deadline;
pub mod headers;
pub mod http1;
pub mod inspection;
pub mod oauth_relay;
pub mod pinning;
pub mod pipeline;
pub mod routing;
pub mod streams;
pub mod tools_filter;
pub mod tools_hooks;
pub mod upstream;

use crate::error::GatewayError;
use crate::observability;
use crate::runtime::store::ConfigStore;
use async_trait::async_trait;
use bytes::Bytes;
use ctx::RequestCtx;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, Result};
use std::sync::Arc;
use std::time::Instant;

/// The gateway: reads the current snapshot once per request.
pub struct Gateway {
    store: Arc<ConfigStore>,
}

impl Gateway {
    /// A gateway serving the snapshots of `store`.
    pub fn new(store: Arc<ConfigStore>) -> Self {
        Gateway { store }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.store.current())
    }

    /// None: Pingora's default installs a disabled compression module that runs on every request.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        http1::header_complete();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.client_ip = ctx
            .snapshot
            .client_address
            .resolve(peer, session.req_header());
        ctx.span = observability::otel::start(session.req_header());
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        Ok(pipeline::request(session, ctx).await)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        pipeline::request_body(ctx, body, end_of_stream)?;
        federation::request_body(ctx, body);
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        upstream::select(ctx)
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        fd: std::os::fd::RawFd,
        digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        streams::connected(ctx, fd, digest);
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        upstream::on_connect_failure(ctx, e)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_sent = Some(Instant::now());
        headers::rewrite_upstream_request(session, upstream_request, ctx)?;
        if let Some(span) = &ctx.span {
            span.inject(upstream_request);
        }
        tools_hooks::on_upstream_request(ctx, upstream_request);
        federation::upstream_request(ctx, upstream_request)?;
        pinning::upstream_request(ctx, upstream_request)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_ttfb = ctx.upstream_sent.map(|t| t.elapsed());
        ctx.upstream_status = Some(upstream_response.status.as_u16());
        headers::strip_hop_by_hop(upstream_response);
        oauth_relay::response_header(ctx, upstream_response)?;
        pinning::upstream_response(ctx, upstream_response)?;
        federation::upstream_response(ctx, upstream_response);
        federation::stream_relay::response_header(
            session.req_header(),
            ctx,
            upstream_response,
            session.is_http2(),
        )?;
        if let Some(quota) = &ctx.quota {
            quota.apply(upstream_response)?;
        }
        tools_hooks::on_response_header(
            ctx,
            session.req_header(),
            upstream_response,
            session.is_http2(),
        )?;
        if let Some(ep) = ctx.endpoint() {
            ep.policies
                .apply_cors(session.req_header(), upstream_response)?;
            ep.policies
                .response_headers
                .apply_response(upstream_response)?;
        }
        accounting::response_started(upstream_response, ctx);
        streams::response_started(session, ctx);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        oauth_relay::response_body(ctx, body, end_of_stream);
        federation::stream_relay::body(ctx, body, end_of_stream);
        tools_hooks::on_body(ctx, body, end_of_stream)?;
        if let Some(chunk) = body {
            accounting::scan_tool_error(ctx, chunk);
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if streams::ended_by_drain(ctx) {
            streams::finish_drained(session).await;
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        // A `100 Continue` sent before does not count as the answer.
        let unanswered = session
            .response_written()
            .is_none_or(|r| r.status.is_informational());
        // After a failed proxy attempt Pingora reuses the client connection only when it could
        // reuse the upstream one, which it never can here: the answer says it closes.
        session.set_keepalive(None);
        let error_code = match GatewayError::from_proxy_error(e).map(|err| err.in_ctx(ctx)) {
            Some(err) if unanswered => errors::answer(session, ctx, err).await,
            _ => 0,
        };
        FailToProxy {
            error_code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, session: &Session, ctx: &RequestCtx, e: &Error) -> bool {
        // Only real errors: a client closing its connection, a stream that a drain or the idle
        // timeout ended, are normal ends (the access log names them).
        accounting::quiet_error(session, e, ctx)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        upstream::record_outcome(ctx, e);
        federation::stream_cancel::on_finished(session, e, ctx);
        ctx.held = Default::default();
        accounting::request_finished(session, e, ctx);
    }
}

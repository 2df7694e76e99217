//! HTTP/1.1 connection hygiene around Pingora's own handling:
//!
//! - the whole-header deadline (`server.header_timeout`, see `header_deadline.rs`): the
//!   connection loop below is ours so that the deadline can be armed before each request;
//! - pipelining: requests a client sends before reading the previous answer are served in order
//!   (Pingora's sequential pipelining, on for every HTTP/1.1 connection), never dropped or
//!   mistaken for an upstream failure;
//! - keep-alive: an idle connection between requests is closed after [`IDLE`] (Pingora would keep
//!   an HTTP/1.1 connection forever once it had served a request); answers the gateway makes
//!   itself keep the connection when the request was read whole;
//! - `Expect: 100-continue`: answered with `100 Continue` once the policies that need no body have
//!   passed, or with the final refusal (and the connection closed, as the body's fate is unknown).
//!
//! HTTP/2 connections are handed to Pingora unchanged.

use super::header_deadline::{DeadlineStream, HeaderClock};
use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::Session;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;

/// How long an idle keep-alive connection waits for its next request, in seconds.
pub const IDLE: u64 = 60;

/// Default `server.header_timeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an answer the gateway makes itself waits for the rest of a request body that is
/// already on its way, to keep the connection.
const FINISH_BODY_WAIT: Duration = Duration::from_millis(50);
/// The most of an unread body read to keep the connection.
const FINISH_BODY_MAX: usize = 64 * 1024;

tokio::task_local! {
    /// The header clock of the connection this task serves (HTTP/1 only).
    static CLOCK: Arc<HeaderClock>;
}

/// The proxy application with our HTTP/1 connection loop.
pub struct Http1App<A> {
    app: Arc<A>,
    header_timeout: Duration,
}

impl<A> Http1App<A> {
    /// Wraps `app`; request headers must arrive whole within `header_timeout`.
    pub fn new(app: A, header_timeout: Duration) -> Self {
        Http1App {
            app: Arc::new(app),
            header_timeout,
        }
    }
}

#[async_trait]
impl<A> ServerApp for Http1App<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.app.process_new(stream, shutdown).await;
        }
        let clock = HeaderClock::new();
        let stream: Stream = Box::new(DeadlineStream::new(
            stream,
            clock.clone(),
            self.header_timeout,
        ));
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive((!*shutdown.borrow()).then_some(IDLE));
        session.set_pipelining_enabled(true);
        loop {
            let served = CLOCK
                .scope(clock.clone(), self.app.process_new_http(session, shutdown))
                .await;
            let (stream, settings) = served?.consume();
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            if session.get_keepalive().is_some() {
                session.set_keepalive(Some(IDLE));
            }
            clock.arm();
        }
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

/// The request header is complete: its deadline no longer applies. Called from
/// `early_request_filter`.
pub fn header_complete() {
    let _ = CLOCK.try_with(|c| c.stop());
}

/// Whether the client waits for `100 Continue` before sending its body (HTTP/1.1 only).
pub fn awaits_continue(session: &Session) -> bool {
    let req = session.req_header();
    req.version == http::Version::HTTP_11
        && req
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Sends `100 Continue` when the client waits for it (once: the expectation is then removed
/// from the request, so it never reaches the upstream either).
pub async fn send_continue(session: &mut Session) {
    if !awaits_continue(session) {
        return;
    }
    session
        .req_header_mut()
        .remove_header(&http::header::EXPECT);
    // Pingora turns keep-alive off for any header written before the body was read, a 1xx one
    // included; the final answer is judged again when it is written.
    let keepalive = session.get_keepalive();
    if let Err(e) = session.write_continue_response().await {
        tracing::debug!(error = %e, "could not send 100 Continue");
        return;
    }
    session.set_keepalive(keepalive);
}

/// Before the gateway writes its own answer: keep the connection when the request was read whole
/// (reading what is left of a body that is already on its way, bounded), close it otherwise.
/// A client still waiting for `100 Continue` has not sent its body: the connection closes.
pub async fn keep_alive_after_answer(session: &mut Session) {
    if session.is_http2() {
        return;
    }
    if awaits_continue(session) {
        session.set_keepalive(None);
        return;
    }
    let mut read = 0usize;
    let finish = async {
        while !session.is_body_done() && read <= FINISH_BODY_MAX {
            match session.read_request_body().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(FINISH_BODY_WAIT, finish).await;
    if !session.is_body_done() {
        session.set_keepalive(None);
    }
}

//! The whole-header deadline (`server.header_timeout`). Pingora bounds each read of a request
//! header (its keep-alive timeout), not the header as a whole, so a client sending one byte every
//! few seconds holds a connection for as long as it likes. Pingora offers no hook for it, so the
//! connection's stream is wrapped: [`DeadlineStream`] passes every byte through unchanged and,
//! while a request header is being read, fails the read once the header has taken longer than
//! the deadline, after writing a `408 Request Timeout` (when part of a header had arrived).
//!
//! The clock is driven from outside through a shared [`HeaderClock`]: the connection loop arms it
//! before each request (see `http1.rs`), and `early_request_filter`, the first hook Pingora calls
//! once a header is parsed, stops it. For the first request of a connection the clock runs from
//! the accept; on a reused connection it starts with the first byte of the next request (idle
//! time between requests is the keep-alive timeout's business).
//!
//! A timer is armed only when it can matter: from the accept (nothing may ever arrive), or when a
//! header did not arrive whole in one read. A header that arrives in one read, the usual case on
//! a reused connection, costs a clock reading and no timer.

use crate::observability::metrics;
use async_trait::async_trait;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Not reading a header: bytes pass through with no deadline.
const OFF: u8 = 0;
/// Waiting for the first byte of the next request header; the clock starts with it.
const ON_FIRST_BYTE: u8 = 1;
/// The clock runs from now (a new connection).
const FROM_NOW: u8 = 2;

/// What the connection loop and the hooks share with the stream.
#[derive(Debug, Default)]
pub struct HeaderClock {
    phase: AtomicU8,
    /// Counts [`Self::arm`] calls, so the stream drops a deadline left from an earlier header.
    epoch: AtomicU32,
}

impl HeaderClock {
    /// A clock for a new connection: it runs from now.
    pub fn new() -> Arc<Self> {
        Arc::new(HeaderClock {
            phase: AtomicU8::new(FROM_NOW),
            epoch: AtomicU32::new(0),
        })
    }

    /// The next request header starts: the clock runs from its first byte.
    pub fn arm(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.phase.store(ON_FIRST_BYTE, Ordering::Relaxed);
    }

    /// The header is complete: no deadline until the next [`Self::arm`].
    pub fn stop(&self) {
        self.phase.store(OFF, Ordering::Relaxed);
    }
}

/// The answer to a header that did not complete in time.
const TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: 104\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{\"error\":{\"status\":408,\"reason\":\"header_timeout\",\"message\":\"the request header did not arrive in time\"}}";

/// A connection's stream with the whole-header deadline.
pub struct DeadlineStream {
    inner: Stream,
    clock: Arc<HeaderClock>,
    limit: Duration,
    /// When the current header started (its first byte, or the accept).
    started: Option<Instant>,
    /// The deadline's timer, made only when needed and dropped once its header is complete.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether `timer` runs for the current header.
    armed: bool,
    /// Bytes of the current header read so far.
    seen: usize,
    /// `Some(n)`: the deadline passed, `n` bytes of the 408 are written.
    expired: Option<usize>,
    /// The clock's epoch the deadline belongs to.
    epoch: u32,
}

impl std::fmt::Debug for DeadlineStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineStream")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}

impl DeadlineStream {
    /// Wraps `inner`; `clock` starts in the state its owner gave it.
    pub fn new(inner: Stream, clock: Arc<HeaderClock>, limit: Duration) -> Self {
        DeadlineStream {
            inner,
            clock,
            limit,
            started: None,
            timer: None,
            armed: false,
            seen: 0,
            expired: None,
            epoch: 0,
        }
    }

    /// Runs the timer until `started + limit`.
    fn arm_timer(&mut self, started: Instant) {
        self.timer = Some(Box::pin(tokio::time::sleep_until(started + self.limit)));
        self.armed = true;
    }

    /// No deadline for now; a timer left registered is dropped so that it wakes nobody.
    fn disarm(&mut self) {
        if self.armed {
            self.timer = None;
            self.armed = false;
        }
        self.started = None;
    }

    /// Writes the 408 (when a header had started), then fails the read.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let written = self.expired.unwrap_or(0);
        if self.seen > 0 && written < TIMED_OUT.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &TIMED_OUT[written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.expired = Some(written + n);
            if written + n < TIMED_OUT.len() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if self.seen > 0 {
            ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request header not complete within server.header_timeout",
        )))
    }

    fn note_expired(&mut self) {
        self.expired = Some(0);
        self.disarm();
        metrics::header_timeouts().inc();
        let peer = self
            .inner
            .get_socket_digest()
            .and_then(|d| d.peer_addr().cloned())
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::warn!(
            client = %peer,
            bytes = self.seen,
            timeout = ?self.limit,
            reason = "header_timeout",
            "request header not complete within server.header_timeout: 408, connection closed"
        );
    }
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.expired.is_some() {
            return this.poll_expired(cx);
        }
        let epoch = this.clock.epoch.load(Ordering::Relaxed);
        if epoch != this.epoch {
            this.epoch = epoch;
            this.disarm();
            this.seen = 0;
        }
        match this.clock.phase.load(Ordering::Relaxed) {
            OFF => {
                if this.started.is_some() {
                    this.disarm();
                }
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            FROM_NOW => {
                // A new connection: nothing may ever arrive, so the timer runs from now.
                this.clock.phase.store(ON_FIRST_BYTE, Ordering::Relaxed);
                this.seen = 0;
                let now = Instant::now();
                this.started = Some(now);
                this.arm_timer(now);
            }
            _ => {}
        }
        // The header started and is read again: it did not arrive whole, the timer runs.
        if let (Some(started), false) = (this.started, this.armed) {
            this.arm_timer(started);
        }
        if this.armed {
            if let Some(timer) = this.timer.as_mut() {
                if timer.as_mut().poll(cx).is_ready() {
                    this.note_expired();
                    return this.poll_expired(cx);
                }
            }
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        if n > 0 {
            if this.started.is_none() {
                this.started = Some(Instant::now());
            }
            this.seen += n;
        }
        Poll::Ready(Ok(()))
    }
}

use std::future::Future;

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for DeadlineStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for DeadlineStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for DeadlineStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for DeadlineStream {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for DeadlineStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for DeadlineStream {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for DeadlineStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_408_declares_its_body_length() {
        let text = std::str::from_utf8(TIMED_OUT).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("header end");
        let declared: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse().ok())
            .expect("content-length");
        assert_eq!(declared, body.len());
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["error"]["status"], 408);
        assert_eq!(v["error"]["reason"], "header_timeout");
    }
}

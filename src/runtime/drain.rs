//! Draining when the process stops (a graceful upgrade hands the sockets to a new process, or
//! SIGTERM): `/readyz` turns 503, open GET SSE streams are ended cleanly so their clients
//! reconnect (to the new process, or to another instance), ordinary in-flight requests run to
//! their end, and the process exits as soon as none is left instead of sleeping out Pingora's
//! whole grace period (which still bounds it).
//!
//! Pingora gives no handle to end a response that is waiting for the upstream. A long-lived
//! stream is ended from its upstream side instead: the connection's socket is shut down, the
//! upstream read ends, and the failure handler finishes the client's response with a proper end
//! of body (`0\r\n\r\n` for chunked HTTP/1.1, END_STREAM for HTTP/2). The socket is identified by
//! its file descriptor and checked against the addresses recorded at connect time, so a
//! descriptor that was closed and reused by another connection is never touched.

use crate::observability::metrics::metrics;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// How often the drain loop looks for new streams to end and for the last request to finish.
const POLL: Duration = Duration::from_millis(50);

/// After the listeners stop, how long a connection accepted just before may take to send its
/// request before Pingora closes it as idle. Without it, a client that connected right before
/// the drain began loses its request.
pub const SETTLE: Duration = Duration::from_secs(1);

struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    next_id: AtomicU64,
    streams: Mutex<HashMap<u64, Stream>>,
}

struct Stream {
    fd: RawFd,
    local: SocketAddr,
    peer: SocketAddr,
    ended: Arc<AtomicBool>,
}

static DRAIN: LazyLock<Drain> = LazyLock::new(|| Drain {
    draining: AtomicBool::new(false),
    in_flight: AtomicUsize::new(0),
    next_id: AtomicU64::new(0),
    streams: Mutex::new(HashMap::new()),
});

/// Whether the process is draining.
pub fn is_draining() -> bool {
    DRAIN.draining.load(Ordering::Relaxed)
}

/// Requests started and not yet finished.
pub fn in_flight() -> usize {
    DRAIN.in_flight.load(Ordering::Relaxed)
}

/// One request in flight, counted until dropped.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    /// Counts a request that starts.
    pub fn start() -> Self {
        DRAIN.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        DRAIN.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The upstream connection of a request, as recorded when it connected.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamSocket {
    /// The socket's descriptor.
    pub fd: RawFd,
    /// Its local address (unique among open connections to one peer).
    pub local: SocketAddr,
    /// The upstream's address.
    pub peer: SocketAddr,
}

/// A long-lived stream that a drain may end; unregistered when dropped.
#[derive(Debug)]
pub struct StreamGuard {
    id: u64,
    ended: Arc<AtomicBool>,
}

impl StreamGuard {
    /// The drain ended this stream (its upstream read failed on purpose).
    pub fn ended_by_drain(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Ok(mut streams) = DRAIN.streams.lock() {
            streams.remove(&self.id);
        }
    }
}

/// Registers a long-lived stream relayed over `socket`, to be ended when the process drains.
pub fn register_stream(socket: UpstreamSocket) -> StreamGuard {
    let id = DRAIN.next_id.fetch_add(1, Ordering::Relaxed);
    let ended = Arc::new(AtomicBool::new(false));
    if let Ok(mut streams) = DRAIN.streams.lock() {
        streams.insert(
            id,
            Stream {
                fd: socket.fd,
                local: socket.local,
                peer: socket.peer,
                ended: ended.clone(),
            },
        );
    }
    StreamGuard { id, ended }
}

/// Ends every registered stream not ended yet; returns how many were ended.
fn end_streams() -> usize {
    let Ok(streams) = DRAIN.streams.lock() else {
        return 0;
    };
    let mut ended = 0;
    for s in streams.values() {
        if s.ended.load(Ordering::Acquire) {
            continue;
        }
        // The guard is registered while its request owns the connection, and unregistering takes
        // this lock: the descriptor is open. Its addresses are checked all the same.
        // SAFETY: the descriptor is only borrowed for the calls below, while the lock is held.
        let fd = unsafe { BorrowedFd::borrow_raw(s.fd) };
        let sock = socket2::SockRef::from(&fd);
        let same = |a: std::io::Result<socket2::SockAddr>, want: SocketAddr| {
            a.ok().and_then(|a| a.as_socket()) == Some(want)
        };
        if !same(sock.local_addr(), s.local) || !same(sock.peer_addr(), s.peer) {
            continue;
        }
        s.ended.store(true, Ordering::Release);
        if let Err(e) = sock.shutdown(std::net::Shutdown::Both) {
            tracing::debug!(error = %e, "ending a stream: shutdown failed");
        }
        ended += 1;
    }
    ended
}

/// Work to do right before the process exits (flush logs and traces).
pub type ExitHook = fn();

/// Waits for the shutdown signal, then drains and exits.
pub struct DrainService {
    /// Run before exiting, in order.
    pub on_exit: Vec<ExitHook>,
}

#[async_trait]
impl BackgroundService for DrainService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        DRAIN.draining.store(true, Ordering::Relaxed);
        metrics().draining.set(1);
        tracing::info!(
            in_flight = in_flight(),
            "draining: not ready, ending open streams, finishing requests in flight"
        );
        let began = std::time::Instant::now();
        let mut streams = 0;
        loop {
            let n = end_streams();
            if n > 0 {
                streams += n;
                metrics().drained_streams.inc_by(n as u64);
            }
            // Connections accepted just before the drain may still bring a request: wait for
            // them (see `Settling`) before deciding that nothing is left.
            if in_flight() == 0 && began.elapsed() > SETTLE + POLL {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        tracing::info!(
            streams_ended = streams,
            "drained: every request finished; exiting"
        );
        for hook in &self.on_exit {
            hook();
        }
        std::process::exit(0);
    }
}

/// A listening service's application whose idle connections are closed only `SETTLE` after
/// the listeners stop, so that requests from connections accepted right before still run.
pub struct Settling<A>(pub Arc<A>);

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Settling<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: pingora::protocols::Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<pingora::protocols::Stream> {
        self.0.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        tokio::time::sleep(SETTLE).await;
        self.0.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn in_flight_counts_until_dropped() {
        // No other unit test counts requests, so the counts are exact.
        let before = in_flight();
        let a = InFlight::start();
        let b = InFlight::start();
        assert_eq!(in_flight(), before + 2);
        drop(a);
        assert_eq!(in_flight(), before + 1);
        drop(b);
        assert_eq!(in_flight(), before);
    }

    #[test]
    fn ends_a_registered_stream_and_skips_a_reused_descriptor() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("c");
        let (mut server_side, _) = listener.accept().expect("accept");
        use std::os::fd::AsRawFd;
        let socket = UpstreamSocket {
            fd: client.as_raw_fd(),
            local: client.local_addr().expect("local"),
            peer: client.peer_addr().expect("peer"),
        };
        // A record whose addresses do not match the descriptor is left alone.
        let stale = register_stream(UpstreamSocket {
            local: "127.0.0.1:1".parse().expect("addr"),
            ..socket
        });
        let live = register_stream(socket);
        assert!(end_streams() >= 1);
        assert!(live.ended_by_drain());
        assert!(!stale.ended_by_drain());
        // The peer sees the connection end.
        let mut buf = [0u8; 1];
        server_side
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        assert_eq!(server_side.read(&mut buf).expect("read"), 0);
        let _ = server_side.write_all(b"x");
        let id = live.id;
        drop(live);
        assert!(!DRAIN.streams.lock().expect("lock").contains_key(&id));
        drop(stale);
    }
}

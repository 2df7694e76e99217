//! The per-request context: the snapshot the request runs on, and what each phase learned.

use crate::error::GatewayError;
use crate::policy::auth::identity::Identity;
use crate::policy::circuit_breaker::Admission;
use crate::policy::concurrency::Held;
use crate::policy::rate_limit::Quota;
use crate::runtime::snapshot::{Endpoint, Snapshot};
use bytes::Bytes;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// State of one request.
pub struct RequestCtx {
    /// The config snapshot this request uses in every phase.
    pub snapshot: Arc<Snapshot>,
    /// When the request started.
    pub started: Instant,
    /// Wall-clock start, for the access log.
    pub started_wall: SystemTime,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// Who the client is, once authenticated.
    pub identity: Option<Arc<Identity>>,
    /// Index of the matched endpoint in the snapshot.
    pub endpoint: Option<usize>,
    /// Index of the upstream host chosen last.
    pub host: Option<usize>,
    /// Hosts already tried (bit i = host i), for connect retries.
    pub tried_hosts: u64,
    /// When the request header went upstream.
    pub upstream_sent: Option<Instant>,
    /// Upstream time to first byte.
    pub upstream_ttfb: Option<Duration>,
    /// Request body bytes counted so far (for the size limit).
    pub body_bytes: u64,
    /// The first bytes of the request body, kept (by reference) for error answers.
    pub body: BodyCapture,
    /// Relaying the upstream's RFC 9728 metadata: the body collected so far (to rewrite).
    pub metadata_relay: Option<Vec<u8>>,
    /// The response is an SSE stream.
    pub sse: bool,
    /// This request holds one count of the open-streams gauge.
    pub stream_counted: bool,
    /// The answer the gateway made itself, if any.
    pub error: Option<GatewayError>,
    /// Concurrency counts held until the request ends.
    pub held: Held,
    /// The rate-limit quota to report on the response.
    pub quota: Option<Quota>,
    /// How the chosen host's circuit breaker admitted this attempt (`None`: no breaker, or the
    /// outcome is recorded).
    pub admission: Option<Admission>,
    /// The session this request belongs to, when its id was a sealed one.
    pub pinned: Option<PinnedSession>,
    /// The upstream's response status.
    pub upstream_status: Option<u16>,
    /// Every host's breaker is open: seconds until one lets a probe through.
    pub circuit_retry_after: Option<u64>,
    /// The inspected JSON-RPC body, on endpoints that inspect.
    pub mcp: Option<crate::mcp::inspect::Inspected>,
    /// The body was read by inspection (the capture is complete; do not capture it again).
    pub body_inspected: bool,
    /// The `tools/list` filter's state while the response streams.
    pub tools_filter: Option<crate::proxy::tools_filter::ToolsFilter>,
    /// The last bytes scanned (a match may span chunks).
    pub scan_tail: Vec<u8>,
    /// The tool call's answer reported a tool error.
    pub tool_error: bool,
    /// The tool call's answer carries a JSON-RPC result (the upstream knows the tool).
    pub tool_result: bool,
    /// Counts this request as in flight until it ends (a draining process waits for it).
    pub in_flight: crate::runtime::drain::InFlight,
    /// The upstream connection's descriptor and addresses.
    pub upstream_socket: Option<(std::os::fd::RawFd, Arc<pingora::protocols::SocketDigest>)>,
    /// A long-lived GET stream, registered so a drain can end it.
    pub stream: Option<crate::runtime::drain::StreamGuard>,
    /// The request's trace span, when tracing is on.
    pub span: Option<Box<crate::observability::otel::RequestSpan>>,
    /// On a federated endpoint, the one server this request is relayed to.
    pub routed: Option<Routed>,
    /// The SSE answer of a routed request, read event by event to seal the ids of the requests
    /// its server sends to the client (`proxy::federation::stream_relay`).
    pub routed_events: Option<crate::proxy::federation::stream_events::RelayEvents>,
}

/// A request relayed to one server of a federated endpoint.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The server's index in the federation.
    pub server: usize,
    /// The host that holds the session, when there is one.
    pub host: Option<usize>,
    /// The server's own session id.
    pub session: Option<String>,
    /// The version negotiated with the server.
    pub version: Option<String>,
    /// The body with the server's own name (sent instead of the client's).
    pub body: Option<Bytes>,
    /// Its length, for `Content-Length`.
    pub body_len: usize,
    /// `Mcp-Name` for the server, when the client sent one.
    pub mcp_name: Option<String>,
}

/// A request of a pinned session.
#[derive(Debug, Clone)]
pub struct PinnedSession {
    /// The host that holds the session.
    pub host: usize,
    /// The upstream's own session id.
    pub session: String,
    /// The id the client sent (given back when the upstream repeats its id).
    pub token: String,
}

impl RequestCtx {
    /// A fresh context on `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        RequestCtx {
            snapshot,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            client_ip: None,
            identity: None,
            endpoint: None,
            host: None,
            tried_hosts: 0,
            upstream_sent: None,
            upstream_ttfb: None,
            body_bytes: 0,
            body: BodyCapture::default(),
            metadata_relay: None,
            sse: false,
            stream_counted: false,
            error: None,
            held: Held::default(),
            quota: None,
            admission: None,
            pinned: None,
            upstream_status: None,
            circuit_retry_after: None,
            mcp: None,
            body_inspected: false,
            tools_filter: None,
            scan_tail: Vec::new(),
            tool_error: false,
            tool_result: false,
            in_flight: crate::runtime::drain::InFlight::start(),
            upstream_socket: None,
            stream: None,
            span: None,
            routed: None,
            routed_events: None,
        }
    }

    /// The backend this request goes to: its federated server's, or the endpoint's.
    pub fn backend(&self) -> Option<&crate::runtime::snapshot::Backend> {
        let ep = self.endpoint()?;
        match (&self.routed, &ep.federation) {
            (Some(r), Some(f)) => f.servers.get(r.server).map(|s| &s.backend),
            _ => Some(&ep.backend),
        }
    }

    /// The matched endpoint.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.snapshot.endpoints.get(self.endpoint?)
    }

    /// The inspected body holds a `tools/list` request (its answer is read and filtered).
    pub fn lists_tools(&self) -> bool {
        self.mcp.as_ref().is_some_and(|m| {
            m.messages()
                .iter()
                .any(|m| m.method.as_deref() == Some("tools/list"))
        })
    }

    /// The inspected body is one `tools/call` (its answer is scanned for a tool error).
    pub fn calls_one_tool(&self) -> bool {
        matches!(&self.mcp, Some(crate::mcp::inspect::Inspected::Single(m)) if m.tool().is_some())
    }
}

/// Up to a bound, the request body chunks seen so far (reference-counted, never copied).
#[derive(Default)]
pub struct BodyCapture {
    chunks: Vec<Bytes>,
    len: usize,
    /// The whole body was seen.
    pub complete: bool,
    /// The body was longer than the bound.
    pub truncated: bool,
}

impl BodyCapture {
    /// Keeps `chunk` if the bound allows.
    pub fn push(&mut self, chunk: &Bytes, limit: usize) {
        // Once a chunk did not fit, later ones are not kept either: the bytes kept are always
        // the body's beginning, never a beginning and an end glued together.
        if self.truncated {
            return;
        }
        if self.len + chunk.len() <= limit {
            self.len += chunk.len();
            self.chunks.push(chunk.clone());
        } else {
            self.truncated = true;
        }
    }

    /// Bytes kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The kept bytes, contiguous.
    pub fn bytes(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_keeps_only_the_beginning_of_a_long_body() {
        let mut c = BodyCapture::default();
        c.push(&Bytes::from_static(br#"{"id":1,"text":"aaaa"#), 24);
        c.push(&Bytes::from_static(b"bbbbbbbbbbbbbbbbbbbbbb"), 24);
        // Fits in what is left of the bound, but follows a chunk that was dropped.
        c.push(&Bytes::from_static(br#""}"#), 24);
        assert!(c.truncated);
        assert_eq!(c.bytes(), br#"{"id":1,"text":"aaaa"#.to_vec());
        assert_eq!(c.len(), 20);
    }
}

//! The compiled backend of an endpoint or of a federated server: its hosts, their balancer and
//! health checks, and session pinning.

use super::host::Host;
use crate::mcp::session_pin::Sealer;
use crate::observability::metrics::PinningMetrics;
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The compiled backend of an endpoint.
pub struct Backend {
    /// Upstream request path.
    pub path: String,
    /// The same path as a URI, parsed once: the upstream request's URI when no query is
    /// forwarded (cloning it shares the bytes).
    pub uri: http::Uri,
    /// The hosts, in config order.
    pub hosts: Vec<Host>,
    /// Round-robin selection over healthy hosts.
    pub balancer: Arc<LoadBalancer<RoundRobin>>,
    /// Health checks enabled.
    pub health_checks: bool,
    /// Time between health checks.
    pub health_interval: Duration,
    /// Session pinning, on endpoints with several hosts.
    pub pinning: Option<Pinning>,
}

/// How an endpoint pins sessions to hosts.
pub struct Pinning {
    /// Seals and opens session ids.
    pub sealer: Sealer,
    /// Metric children.
    pub metrics: PinningMetrics,
}

impl Backend {
    /// The index of the host at `addr`.
    pub fn host_index(&self, addr: &SocketAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.addr == *addr)
    }

    /// The index of the host configured as `url`.
    pub fn host_by_url(&self, url: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.url == url)
    }
}

//! One upstream host as compiled (address, `Host` header, peer template, metric children,
//! circuit breaker), and the active health check of an endpoint's hosts (a TCP connect, or an
//! HTTP GET of a path) that the endpoint's balancer runs; `health.rs` drives it.

use crate::observability::metrics::HostMetrics;
use crate::policy::circuit_breaker::Breaker;
use async_trait::async_trait;
use http::HeaderValue;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck};
use pingora::lb::Backend;
use pingora::upstreams::peer::HttpPeer;
use pingora_prometheus::prometheus::IntGauge;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One upstream host.
pub struct Host {
    /// The URL as configured (a metric label and log field).
    pub url: String,
    /// Resolved address.
    pub addr: SocketAddr,
    /// The `Host` header value sent upstream.
    pub authority: HeaderValue,
    /// The peer template (address, TLS, SNI, timeouts); cloned per request.
    pub peer: HttpPeer,
    /// Metric children.
    pub metrics: HostMetrics,
    /// The circuit breaker, when configured (kept across reloads while its settings stay).
    pub breaker: Option<Arc<Breaker>>,
}

/// The health check of one endpoint's hosts.
pub struct HostHealthCheck {
    probes: HashMap<SocketAddr, Probe>,
    timeout: Duration,
    healthy_threshold: usize,
    unhealthy_threshold: usize,
}

struct Probe {
    url: String,
    healthy: IntGauge,
    http: Option<HttpHealthCheck>,
}

impl HostHealthCheck {
    /// A check for `hosts`: HTTP GET `path` (healthy below 500) when given, else TCP connect.
    pub fn new(
        hosts: &[Host],
        timeout: Duration,
        path: Option<String>,
        healthy_threshold: usize,
        unhealthy_threshold: usize,
    ) -> Self {
        let probes = hosts
            .iter()
            .map(|h| {
                let http = path.as_deref().and_then(|p| {
                    let authority = h.authority.to_str().ok()?;
                    let mut hc = HttpHealthCheck::new(authority, h.peer.is_tls());
                    hc.peer_template = h.peer.clone();
                    hc.peer_template.options.connection_timeout = Some(timeout);
                    hc.peer_template.options.read_timeout = Some(timeout);
                    hc.req.set_uri(p.parse().ok()?);
                    hc.validator = Some(Box::new(|resp| {
                        if resp.status.as_u16() < 500 {
                            Ok(())
                        } else {
                            pingora::Error::e_explain(
                                pingora::ErrorType::CustomCode("unhealthy", resp.status.as_u16()),
                                "health check status",
                            )
                        }
                    }));
                    Some(hc)
                });
                (
                    h.addr,
                    Probe {
                        url: h.url.clone(),
                        healthy: h.metrics.healthy.clone(),
                        http,
                    },
                )
            })
            .collect();
        HostHealthCheck {
            probes,
            timeout,
            healthy_threshold,
            unhealthy_threshold,
        }
    }
}

#[async_trait]
impl HealthCheck for HostHealthCheck {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let probe = target.addr.as_inet().and_then(|a| self.probes.get(a));
        if let Some(hc) = probe.and_then(|p| p.http.as_ref()) {
            return hc.check(target).await;
        }
        let Some(addr) = target.addr.as_inet() else {
            return pingora::Error::e_explain(
                pingora::ErrorType::ConnectError,
                "not an IP address",
            );
        };
        match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                pingora::Error::e_because(pingora::ErrorType::ConnectError, "health check", e)
            }
            Err(_) => {
                pingora::Error::e_explain(pingora::ErrorType::ConnectTimedout, "health check")
            }
        }
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        if let Some(p) = target.addr.as_inet().and_then(|a| self.probes.get(a)) {
            p.healthy.set(i64::from(healthy));
            if healthy {
                tracing::info!(host = %p.url, "upstream host is healthy again");
            } else {
                tracing::warn!(host = %p.url, "upstream host failed its health check");
            }
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.healthy_threshold
        } else {
            self.unhealthy_threshold
        }
    }
}

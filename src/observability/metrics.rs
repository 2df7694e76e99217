//! Every Prometheus metric of mcpgate, by name, in one place.
//!
//! Metrics are registered in the default registry through `pingora-prometheus`'s re-export of
//! `prometheus`, so the tree has one `prometheus` version. Label values are bounded: endpoint
//! names and host URLs come from the config, methods and status classes from fixed lists.
//! Per-endpoint and per-host children are resolved once when a snapshot is compiled, so the
//! request path never looks a label set up.

use pingora_prometheus::prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};
use std::sync::LazyLock;

/// The metric families.
pub struct Metrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_ttfb: HistogramVec,
    request_bytes: IntCounterVec,
    response_bytes: IntCounterVec,
    open_streams: IntGaugeVec,
    connect_failures: IntCounterVec,
    host_healthy: IntGaugeVec,
    /// Access-log lines dropped because the writer could not keep up.
    pub access_log_dropped: IntCounter,
    /// Constant 1 with the version as a label.
    pub build_info: IntGaugeVec,
    /// Generation of the config snapshot in use.
    pub config_generation: IntGauge,
}

/// Names, so tests and docs can refer to them.
pub mod names {
    /// Requests by endpoint, HTTP method and status class.
    pub const REQUESTS: &str = "mcpgate_requests_total";
    /// Request duration from the first byte read to the last byte written.
    pub const DURATION: &str = "mcpgate_request_duration_seconds";
    /// Time from sending the request upstream to the upstream's response header.
    pub const UPSTREAM_TTFB: &str = "mcpgate_upstream_ttfb_seconds";
    /// Request body bytes received from clients.
    pub const REQUEST_BYTES: &str = "mcpgate_request_body_bytes_total";
    /// Response body bytes sent to clients.
    pub const RESPONSE_BYTES: &str = "mcpgate_response_body_bytes_total";
    /// SSE responses currently streaming to clients.
    pub const OPEN_STREAMS: &str = "mcpgate_open_streams";
    /// Failed connection attempts to an upstream host.
    pub const CONNECT_FAILURES: &str = "mcpgate_upstream_connect_failures_total";
    /// 1 when the host passes its health check, else 0.
    pub const HOST_HEALTHY: &str = "mcpgate_upstream_healthy";
    /// Access-log lines dropped.
    pub const ACCESS_LOG_DROPPED: &str = "mcpgate_access_log_dropped_total";
    /// Build information.
    pub const BUILD_INFO: &str = "mcpgate_build_info";
    /// Config generation in use.
    pub const CONFIG_GENERATION: &str = "mcpgate_config_generation";
}

const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 1800.0,
];

/// HTTP methods as metric label values; anything else is `other`.
pub const METHODS: [&str; 5] = ["GET", "POST", "DELETE", "OPTIONS", "other"];
/// Status classes as label values; `none` when no response could be sent.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::register);

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    #[allow(clippy::expect_used)] // startup only: a name clash is a programming error
    fn register() -> Self {
        use names::*;
        let m = Metrics {
            requests: register_int_counter_vec!(
                REQUESTS,
                "Requests by endpoint, HTTP method and status class.",
                &["endpoint", "method", "status_class"]
            )
            .expect("register"),
            duration: register_histogram_vec!(
                DURATION,
                "Request duration in seconds, from the request to the last response byte (streams included).",
                &["endpoint", "method"],
                DURATION_BUCKETS.to_vec()
            )
            .expect("register"),
            upstream_ttfb: register_histogram_vec!(
                UPSTREAM_TTFB,
                "Seconds from sending the request upstream to receiving the response header.",
                &["endpoint"],
                DURATION_BUCKETS.to_vec()
            )
            .expect("register"),
            request_bytes: register_int_counter_vec!(
                REQUEST_BYTES,
                "Request body bytes received from clients.",
                &["endpoint"]
            )
            .expect("register"),
            response_bytes: register_int_counter_vec!(
                RESPONSE_BYTES,
                "Response body bytes sent to clients.",
                &["endpoint"]
            )
            .expect("register"),
            open_streams: register_int_gauge_vec!(
                OPEN_STREAMS,
                "SSE responses currently streaming to clients.",
                &["endpoint"]
            )
            .expect("register"),
            connect_failures: register_int_counter_vec!(
                CONNECT_FAILURES,
                "Failed connection attempts to upstream hosts.",
                &["endpoint", "host"]
            )
            .expect("register"),
            host_healthy: register_int_gauge_vec!(
                HOST_HEALTHY,
                "1 when the upstream host passes its health check, 0 when it does not.",
                &["endpoint", "host"]
            )
            .expect("register"),
            access_log_dropped: register_int_counter!(
                ACCESS_LOG_DROPPED,
                "Access-log lines dropped because the writer could not keep up."
            )
            .expect("register"),
            build_info: register_int_gauge_vec!(
                BUILD_INFO,
                "Build information; the value is always 1.",
                &["version"]
            )
            .expect("register"),
            config_generation: register_int_gauge!(
                CONFIG_GENERATION,
                "Generation of the config snapshot in use (1 at start, +1 per applied reload)."
            )
            .expect("register"),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }
}

/// The metric children of one endpoint, resolved once per snapshot.
pub struct EndpointMetrics {
    requests: Vec<IntCounter>,
    duration: Vec<Histogram>,
    /// Upstream time to first byte.
    pub upstream_ttfb: Histogram,
    /// Request body bytes.
    pub request_bytes: IntCounter,
    /// Response body bytes.
    pub response_bytes: IntCounter,
    /// Open SSE streams.
    pub open_streams: IntGauge,
}

impl EndpointMetrics {
    /// Resolves the children for endpoint `name`.
    pub fn new(name: &str) -> Self {
        let m = metrics();
        let mut requests = Vec::with_capacity(METHODS.len() * STATUS_CLASSES.len());
        for method in METHODS {
            for class in STATUS_CLASSES {
                requests.push(m.requests.with_label_values(&[name, method, class]));
            }
        }
        EndpointMetrics {
            requests,
            duration: METHODS
                .iter()
                .map(|method| m.duration.with_label_values(&[name, method]))
                .collect(),
            upstream_ttfb: m.upstream_ttfb.with_label_values(&[name]),
            request_bytes: m.request_bytes.with_label_values(&[name]),
            response_bytes: m.response_bytes.with_label_values(&[name]),
            open_streams: m.open_streams.with_label_values(&[name]),
        }
    }

    /// Counts one finished request.
    pub fn observe(&self, method: &http::Method, status: u16, seconds: f64) {
        let mi = method_index(method);
        let ci = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        if let Some(c) = self.requests.get(mi * STATUS_CLASSES.len() + ci) {
            c.inc();
        }
        if let Some(h) = self.duration.get(mi) {
            h.observe(seconds);
        }
    }
}

fn method_index(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::POST => 1,
        http::Method::DELETE => 2,
        http::Method::OPTIONS => 3,
        _ => 4,
    }
}

/// The metric children of one upstream host.
pub struct HostMetrics {
    /// Failed connection attempts.
    pub connect_failures: IntCounter,
    /// Health state.
    pub healthy: IntGauge,
}

impl HostMetrics {
    /// Resolves the children for `host` of `endpoint`.
    pub fn new(endpoint: &str, host: &str) -> Self {
        let m = metrics();
        HostMetrics {
            connect_failures: m.connect_failures.with_label_values(&[endpoint, host]),
            healthy: m.host_healthy.with_label_values(&[endpoint, host]),
        }
    }
}

/// Requests that matched no endpoint are counted under this endpoint label.
pub const UNMATCHED: &str = "none";

static UNMATCHED_METRICS: LazyLock<EndpointMetrics> =
    LazyLock::new(|| EndpointMetrics::new(UNMATCHED));

/// The children for requests that matched no endpoint.
pub fn unmatched() -> &'static EndpointMetrics {
    &UNMATCHED_METRICS
}

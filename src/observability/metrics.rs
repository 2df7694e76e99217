//! Every Prometheus metric of mcpgate, by name, in one place.
//!
//! Metrics are registered in the default registry through `pingora-prometheus`'s re-export of
//! `prometheus`, so the tree has one `prometheus` version. Label values are bounded: endpoint
//! names and host URLs come from the config, methods and status classes from fixed lists.
//! Per-endpoint and per-host children are resolved once when a snapshot is compiled, so the
//! request path never looks a label set up.

use pingora_prometheus::prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec,
};
use std::sync::LazyLock;

/// The metric families.
pub struct Metrics {
    requests: IntCounterVec,
    request_ends: IntCounterVec,
    duration: HistogramVec,
    upstream_ttfb: HistogramVec,
    request_bytes: IntCounterVec,
    response_bytes: IntCounterVec,
    open_streams: IntGaugeVec,
    connect_failures: IntCounterVec,
    host_healthy: IntGaugeVec,
    limited: IntCounterVec,
    redis_errors: IntCounterVec,
    /// Time of one Redis limit decision.
    pub redis_duration: Histogram,
    breaker_state: IntGaugeVec,
    breaker_transitions: IntCounterVec,
    pinned_sessions: IntCounterVec,
    pinned_requests: IntCounterVec,
    pinning_failures: IntCounterVec,
    reloads: IntCounterVec,
    tool_changes: IntCounterVec,
    filter_refused: IntCounterVec,
    mcp_requests: IntCounterVec,
    tool_duration: HistogramVec,
    /// Access-log lines dropped because the writer could not keep up.
    pub access_log_dropped: IntCounter,
    /// Constant 1 with the version as a label.
    pub build_info: IntGaugeVec,
    /// Generation of the config snapshot in use.
    pub config_generation: IntGauge,
    /// 1 when the last reload attempt applied, 0 when it was refused.
    pub last_reload_successful: IntGauge,
    /// 1 while the process drains (upgrade hand-over or stop).
    pub draining: IntGauge,
    /// Long-lived streams ended so their clients reconnect elsewhere.
    pub drained_streams: IntCounter,
    /// Spans that could not be exported.
    pub trace_export_errors: IntCounter,
}

/// Names, so tests and docs can refer to them.
pub mod names {
    /// Requests by endpoint, HTTP method and status class.
    pub const REQUESTS: &str = "mcpgate_requests_total";
    /// Requests by endpoint and how they ended (`REQUEST_ENDS`).
    pub const REQUEST_ENDS: &str = "mcpgate_request_ends_total";
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
    /// Requests refused by a rate or concurrency limit, by endpoint, limit and reason.
    pub const LIMITED: &str = "mcpgate_limited_requests_total";
    /// Failed Redis limit decisions by reason (the failure policy decided instead).
    pub const REDIS_ERRORS: &str = "mcpgate_redis_errors_total";
    /// Time of one Redis limit decision.
    pub const REDIS_DURATION: &str = "mcpgate_redis_request_duration_seconds";
    /// Circuit breaker state per host: 0 closed, 1 open, 2 half-open.
    pub const BREAKER_STATE: &str = "mcpgate_circuit_breaker_state";
    /// Circuit breaker state changes per host, by the state entered.
    pub const BREAKER_TRANSITIONS: &str = "mcpgate_circuit_breaker_transitions_total";
    /// Sessions whose id the gateway sealed with their host.
    pub const PINNED_SESSIONS: &str = "mcpgate_pinned_sessions_total";
    /// Requests routed to a host by their session id.
    pub const PINNED_REQUESTS: &str = "mcpgate_pinned_requests_total";
    /// Session ids that could not be routed (answered 404), by reason.
    pub const PINNING_FAILURES: &str = "mcpgate_session_pinning_failures_total";
    /// Tool definitions seen changed, by endpoint.
    pub const TOOL_CHANGES: &str = "mcpgate_tool_definition_changes_total";
    /// Filtered answers refused as unreadable, by endpoint and reason.
    pub const FILTER_REFUSED: &str = "mcpgate_response_filter_refused_total";
    /// MCP requests by endpoint, MCP method, tool, outcome and federated server (`""` when the
    /// endpoint has one backend, or the request fanned out).
    pub const MCP_REQUESTS: &str = "mcpgate_mcp_requests_total";
    /// Duration of tool calls by endpoint and tool.
    pub const TOOL_DURATION: &str = "mcpgate_tool_call_duration_seconds";
    /// Config reload attempts by result (success, failure).
    pub const RELOADS: &str = "mcpgate_config_reload_total";
    /// 1 when the last reload attempt applied, 0 when it was refused.
    pub const LAST_RELOAD_OK: &str = "mcpgate_config_last_reload_successful";
    /// 1 while the process drains (after an upgrade hand-over, or on SIGTERM).
    pub const DRAINING: &str = "mcpgate_draining";
    /// Open streams ended by a drain so their clients reconnect to another process.
    pub const DRAINED_STREAMS: &str = "mcpgate_drained_streams_total";
    /// Trace export failures (the spans are dropped).
    pub const TRACE_EXPORT_ERRORS: &str = "mcpgate_trace_export_errors_total";
    /// Access-log lines dropped.
    pub const ACCESS_LOG_DROPPED: &str = "mcpgate_access_log_dropped_total";
    /// Build information.
    pub const BUILD_INFO: &str = "mcpgate_build_info";
    /// Config generation in use.
    pub const CONFIG_GENERATION: &str = "mcpgate_config_generation";
    /// Federated fan-out requests (initialize, lists, ping, DELETE) by endpoint and method.
    pub const FEDERATION_FANOUT: &str = "mcpgate_federation_fanout_duration_seconds";
    /// Servers left out of a federated session or answer, by endpoint, server and reason.
    pub const FEDERATION_MISSING: &str = "mcpgate_federation_servers_missing_total";
    /// Federated sessions started, by endpoint.
    pub const FEDERATION_SESSIONS: &str = "mcpgate_federation_sessions_total";
    /// Federated requests routed to one server, by endpoint and server.
    pub const FEDERATION_ROUTED: &str = "mcpgate_federation_routed_requests_total";
    /// Requests federated servers sent to clients, by endpoint, server and outcome.
    pub const FEDERATION_SERVER_REQUESTS: &str = "mcpgate_federation_server_requests_total";
    /// Federated GET streams opened with a `Last-Event-ID`, by endpoint and outcome.
    pub const FEDERATION_STREAM_RESUMES: &str = "mcpgate_federation_stream_resumes_total";
}

const REDIS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
];

/// Reasons a limit refuses a request (label values).
pub const LIMIT_REASONS: [&str; 4] = ["rate", "concurrency", "missing_key", "store_unavailable"];
/// Reasons a session id cannot be routed (label values).
pub const PINNING_REASONS: [&str; 2] = ["invalid", "host_gone"];

const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 1800.0,
];

/// HTTP methods as metric label values; anything else is `other`.
pub const METHODS: [&str; 5] = ["GET", "POST", "DELETE", "OPTIONS", "other"];
/// Status classes as label values; `none` when no response could be sent.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];
/// How a request ended (label values; the order of `observability::outcome::End`).
pub const REQUEST_ENDS: [&str; 9] = [
    "complete",
    "upstream_closed",
    "client_closed",
    "client_timeout",
    "idle_timeout",
    "drained",
    "refused",
    "upstream_error",
    "gateway_error",
];

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
            request_ends: register_int_counter_vec!(
                REQUEST_ENDS,
                "Requests by endpoint and how they ended (complete, upstream_closed, client_closed, client_timeout, idle_timeout, drained, refused, upstream_error, gateway_error).",
                &["endpoint", "end"]
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
            limited: register_int_counter_vec!(
                LIMITED,
                "Requests refused by a rate or concurrency limit.",
                &["endpoint", "limit", "reason"]
            )
            .expect("register"),
            redis_errors: register_int_counter_vec!(
                REDIS_ERRORS,
                "Redis limit decisions that failed (timeout, connection, error); the failure policy decided.",
                &["reason"]
            )
            .expect("register"),
            redis_duration: register_histogram!(
                REDIS_DURATION,
                "Seconds one Redis limit decision took (failures included).",
                REDIS_BUCKETS.to_vec()
            )
            .expect("register"),
            breaker_state: register_int_gauge_vec!(
                BREAKER_STATE,
                "Circuit breaker state of the upstream host: 0 closed, 1 open, 2 half-open.",
                &["endpoint", "host"]
            )
            .expect("register"),
            breaker_transitions: register_int_counter_vec!(
                BREAKER_TRANSITIONS,
                "Circuit breaker state changes, by the state entered.",
                &["endpoint", "host", "state"]
            )
            .expect("register"),
            pinned_sessions: register_int_counter_vec!(
                PINNED_SESSIONS,
                "MCP sessions whose id was sealed together with their upstream host.",
                &["endpoint"]
            )
            .expect("register"),
            pinned_requests: register_int_counter_vec!(
                PINNED_REQUESTS,
                "Requests routed to their session's upstream host.",
                &["endpoint"]
            )
            .expect("register"),
            pinning_failures: register_int_counter_vec!(
                PINNING_FAILURES,
                "Session ids that could not be routed and were answered 404, by reason.",
                &["endpoint", "reason"]
            )
            .expect("register"),
            tool_changes: register_int_counter_vec!(
                TOOL_CHANGES,
                "Tool definitions seen in tools/list that differ from the approved one.",
                &["endpoint"]
            )
            .expect("register"),
            filter_refused: register_int_counter_vec!(
                FILTER_REFUSED,
                "Filtered answers (tools/list) refused because they could not be read exactly, by endpoint and reason.",
                &["endpoint", "reason"]
            )
            .expect("register"),
            mcp_requests: register_int_counter_vec!(
                MCP_REQUESTS,
                "MCP messages by endpoint, MCP method, tool (configured or seen in tools/list, else other) and outcome.",
                &["endpoint", "mcp_method", "tool", "outcome", "server"]
            )
            .expect("register"),
            tool_duration: register_histogram_vec!(
                TOOL_DURATION,
                "Seconds from a tools/call request to the end of its answer.",
                &["endpoint", "tool"],
                DURATION_BUCKETS.to_vec()
            )
            .expect("register"),
            reloads: register_int_counter_vec!(
                RELOADS,
                "Config reload attempts by result (success, failure).",
                &["result"]
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
            last_reload_successful: register_int_gauge!(
                LAST_RELOAD_OK,
                "1 when the last reload attempt applied, 0 when it was refused."
            )
            .expect("register"),
            draining: register_int_gauge!(
                DRAINING,
                "1 while the process drains after an upgrade hand-over or SIGTERM."
            )
            .expect("register"),
            drained_streams: register_int_counter!(
                DRAINED_STREAMS,
                "Open streams ended by a drain so their clients reconnect to another process."
            )
            .expect("register"),
            trace_export_errors: register_int_counter!(
                TRACE_EXPORT_ERRORS,
                "Trace exports that failed (their spans are dropped)."
            )
            .expect("register"),
        };
        m.last_reload_successful.set(1);
        // Both results exist from the start, so rate() and increase() see the first one.
        for result in ["success", "failure"] {
            m.reloads.with_label_values(&[result]).inc_by(0);
        }
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }
}

/// The metric children of one endpoint, resolved once per snapshot.
pub struct EndpointMetrics {
    requests: Vec<IntCounter>,
    ends: Vec<IntCounter>,
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
            ends: REQUEST_ENDS
                .iter()
                .map(|end| m.request_ends.with_label_values(&[name, end]))
                .collect(),
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

    /// Counts how a finished request ended (`end`: `outcome::End as usize`, its index in
    /// `REQUEST_ENDS`).
    pub fn ended(&self, end: usize) {
        if let Some(c) = self.ends.get(end) {
            c.inc();
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

impl Metrics {
    /// Counts a changed tool definition.
    pub fn tool_definition_changed(&self, endpoint: &str) {
        self.tool_changes.with_label_values(&[endpoint]).inc();
    }

    /// Counts a filtered answer refused as unreadable (`reason`: a fixed word).
    pub fn response_filter_refused(&self, endpoint: &str, reason: &str) {
        self.filter_refused
            .with_label_values(&[endpoint, reason])
            .inc();
    }

    /// Counts one MCP message (labels already bounded by the caller).
    pub fn mcp_request(
        &self,
        endpoint: &str,
        method: &str,
        tool: &str,
        outcome: &str,
        server: &str,
    ) {
        self.mcp_requests
            .with_label_values(&[endpoint, method, tool, outcome, server])
            .inc();
    }

    /// Records a tool call's duration.
    pub fn tool_call(&self, endpoint: &str, tool: &str, seconds: f64) {
        self.tool_duration
            .with_label_values(&[endpoint, tool])
            .observe(seconds);
    }

    /// Drops the state gauges of a host that a reload removed (so no alert keeps firing on a
    /// host that is gone); its counters stay, as counters do.
    pub fn forget_host(&self, endpoint: &str, host: &str) {
        let _ = self.host_healthy.remove_label_values(&[endpoint, host]);
        let _ = self.breaker_state.remove_label_values(&[endpoint, host]);
    }

    /// Counts a reload (`success` or `failure`).
    pub fn reload(&self, result: &str) {
        self.reloads.with_label_values(&[result]).inc();
        self.last_reload_successful
            .set(i64::from(result == "success"));
    }

    /// Counts a failed Redis decision.
    pub fn redis_error(&self, reason: &str) {
        self.redis_errors.with_label_values(&[reason]).inc();
    }
}

/// The metric children of one rate or concurrency limit.
pub struct LimitMetrics {
    /// The endpoint's name.
    pub endpoint: String,
    limited: Vec<IntCounter>,
}

impl LimitMetrics {
    /// Resolves the children of limit `limit` of `endpoint`.
    pub fn new(endpoint: &str, limit: &str) -> Self {
        let m = metrics();
        LimitMetrics {
            endpoint: endpoint.to_string(),
            limited: LIMIT_REASONS
                .iter()
                .map(|r| m.limited.with_label_values(&[endpoint, limit, r]))
                .collect(),
        }
    }

    /// The counter of refusals for `reason` (one of `LIMIT_REASONS`).
    pub fn limited(&self, reason: &str) -> &IntCounter {
        let i = LIMIT_REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        &self.limited[i]
    }
}

/// The metric children of session pinning on one endpoint.
pub struct PinningMetrics {
    /// Sessions sealed.
    pub sessions: IntCounter,
    /// Requests routed by session.
    pub routed: IntCounter,
    failures: Vec<IntCounter>,
}

impl PinningMetrics {
    /// Resolves the children for `endpoint`.
    pub fn new(endpoint: &str) -> Self {
        let m = metrics();
        PinningMetrics {
            sessions: m.pinned_sessions.with_label_values(&[endpoint]),
            routed: m.pinned_requests.with_label_values(&[endpoint]),
            failures: PINNING_REASONS
                .iter()
                .map(|r| m.pinning_failures.with_label_values(&[endpoint, r]))
                .collect(),
        }
    }

    /// Counts a failure for `reason` (one of `PINNING_REASONS`).
    pub fn failed(&self, reason: &str) {
        let i = PINNING_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        if let Some(c) = self.failures.get(i) {
            c.inc();
        }
    }
}

/// The metric children of one upstream host.
pub struct HostMetrics {
    /// Failed connection attempts.
    pub connect_failures: IntCounter,
    /// Health state.
    pub healthy: IntGauge,
    /// Circuit breaker state (0 closed, 1 open, 2 half-open).
    pub breaker_state: IntGauge,
    breaker_transitions: [IntCounter; 3],
}

impl HostMetrics {
    /// Resolves the children for `host` of `endpoint`.
    pub fn new(endpoint: &str, host: &str) -> Self {
        let m = metrics();
        HostMetrics {
            connect_failures: m.connect_failures.with_label_values(&[endpoint, host]),
            healthy: m.host_healthy.with_label_values(&[endpoint, host]),
            breaker_state: m.breaker_state.with_label_values(&[endpoint, host]),
            breaker_transitions: ["closed", "open", "half_open"].map(|s| {
                m.breaker_transitions
                    .with_label_values(&[endpoint, host, s])
            }),
        }
    }

    /// Records a breaker state change (0 closed, 1 open, 2 half-open).
    pub fn breaker_entered(&self, state: usize) {
        self.breaker_state.set(state as i64);
        if let Some(c) = self.breaker_transitions.get(state) {
            c.inc();
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

/// Connections whose request header did not complete within `server.header_timeout` (closed,
/// with a 408 when part of a header had arrived).
pub const HEADER_TIMEOUTS: &str = "mcpgate_header_timeouts_total";

static HEADER_TIMEOUT_COUNTER: LazyLock<IntCounter> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // startup only: a name clash is a programming error
    register_int_counter!(
        HEADER_TIMEOUTS,
        "Connections closed because a request header did not complete within server.header_timeout."
    )
    .expect("register")
});

/// The counter of [`HEADER_TIMEOUTS`].
pub fn header_timeouts() -> &'static IntCounter {
    &HEADER_TIMEOUT_COUNTER
}

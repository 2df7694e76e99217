//! The metric children of a federated endpoint (names in `metrics::names`): fan-out duration by
//! method, servers missing from sessions and answers by reason, sessions, routed requests,
//! requests servers send to clients by outcome, GET streams resumed with `Last-Event-ID`.

use super::metrics::names;
use pingora_prometheus::prometheus::{
    register_histogram_vec, register_int_counter_vec, Histogram, HistogramVec, IntCounter,
    IntCounterVec,
};
use std::sync::LazyLock;

/// Fan-out methods (label values); anything else is `other`.
pub const FANOUT_METHODS: [&str; 9] = [
    "initialize",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "ping",
    "notification",
    "DELETE",
    "other",
];

/// Why a server is missing from a session or an answer (label values).
pub const MISSING_REASONS: [&str; 5] = [
    "unreachable",
    "timeout",
    "error_status",
    "invalid_answer",
    "duplicate_name",
];

/// What became of a request a server sent to the client (label values): `sent` (to the client,
/// with a sealed id), `answered` (the client's answer relayed to the server), `refused` (an
/// answer whose id does not open in the session; counted with `server=""`).
pub const SERVER_REQUEST_OUTCOMES: [&str; 3] = ["sent", "answered", "refused"];

/// How a GET stream with `Last-Event-ID` went (label values): `resumed`, or `refused` (the id
/// does not open in the session).
pub const RESUME_OUTCOMES: [&str; 2] = ["resumed", "refused"];

struct Families {
    fanout: HistogramVec,
    missing: IntCounterVec,
    sessions: IntCounterVec,
    routed: IntCounterVec,
    server_requests: IntCounterVec,
    resumes: IntCounterVec,
}

#[allow(clippy::expect_used)] // startup only: a name clash is a programming error
static FAMILIES: LazyLock<Families> = LazyLock::new(|| Families {
    fanout: register_histogram_vec!(
        names::FEDERATION_FANOUT,
        "Federated fan-out requests by endpoint and method",
        &["endpoint", "method"],
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("register fan-out histogram"),
    missing: register_int_counter_vec!(
        names::FEDERATION_MISSING,
        "Servers left out of a federated session or answer, by reason",
        &["endpoint", "server", "reason"]
    )
    .expect("register missing counter"),
    sessions: register_int_counter_vec!(
        names::FEDERATION_SESSIONS,
        "Federated sessions started",
        &["endpoint"]
    )
    .expect("register sessions counter"),
    routed: register_int_counter_vec!(
        names::FEDERATION_ROUTED,
        "Federated requests routed to one server",
        &["endpoint", "server"]
    )
    .expect("register routed counter"),
    server_requests: register_int_counter_vec!(
        names::FEDERATION_SERVER_REQUESTS,
        "Requests federated servers sent to clients, by outcome",
        &["endpoint", "server", "outcome"]
    )
    .expect("register server requests counter"),
    resumes: register_int_counter_vec!(
        names::FEDERATION_STREAM_RESUMES,
        "Federated GET streams opened with a Last-Event-ID, by outcome",
        &["endpoint", "outcome"]
    )
    .expect("register stream resumes counter"),
});

/// The children of one federated endpoint.
pub struct FederationMetrics {
    fanout: Vec<Histogram>,
    /// Per server (config order): missing counters by reason, and routed requests.
    servers: Vec<(Vec<IntCounter>, IntCounter)>,
    /// Sessions started.
    pub sessions: IntCounter,
    /// Per server (config order), then one for `server=""`: server requests by outcome.
    server_requests: Vec<Vec<IntCounter>>,
    /// Resumed streams by outcome.
    resumes: Vec<IntCounter>,
}

impl FederationMetrics {
    /// Resolves the children of `endpoint` with its servers' aliases.
    pub fn new<'a>(endpoint: &str, aliases: impl Iterator<Item = &'a str> + Clone) -> Self {
        let f = &*FAMILIES;
        let server_requests = aliases
            .clone()
            .chain(std::iter::once(""))
            .map(|a| {
                SERVER_REQUEST_OUTCOMES
                    .iter()
                    .map(|o| f.server_requests.with_label_values(&[endpoint, a, o]))
                    .collect()
            })
            .collect();
        FederationMetrics {
            server_requests,
            resumes: RESUME_OUTCOMES
                .iter()
                .map(|o| f.resumes.with_label_values(&[endpoint, o]))
                .collect(),
            fanout: FANOUT_METHODS
                .iter()
                .map(|m| f.fanout.with_label_values(&[endpoint, m]))
                .collect(),
            servers: aliases
                .map(|a| {
                    let missing = MISSING_REASONS
                        .iter()
                        .map(|r| f.missing.with_label_values(&[endpoint, a, r]))
                        .collect();
                    (missing, f.routed.with_label_values(&[endpoint, a]))
                })
                .collect(),
            sessions: f.sessions.with_label_values(&[endpoint]),
        }
    }

    /// Observes one fan-out of `method`.
    pub fn fanout(&self, method: &str, seconds: f64) {
        let i = FANOUT_METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(FANOUT_METHODS.len() - 1);
        if let Some(h) = self.fanout.get(i) {
            h.observe(seconds);
        }
    }

    /// Counts server `server` (config index) missing for `reason` (one of `MISSING_REASONS`).
    pub fn missing(&self, server: usize, reason: &str) {
        let i = MISSING_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        if let Some(c) = self.servers.get(server).and_then(|(m, _)| m.get(i)) {
            c.inc();
        }
    }

    /// Counts one request routed to server `server`.
    pub fn routed(&self, server: usize) {
        if let Some((_, c)) = self.servers.get(server) {
            c.inc();
        }
    }

    /// Counts a request server `server` (config index; out of range: `server=""`) sent to the
    /// client, by `outcome` (one of `SERVER_REQUEST_OUTCOMES`).
    pub fn server_request(&self, server: usize, outcome: &str) {
        let row = self
            .server_requests
            .get(server)
            .or(self.server_requests.last());
        let i = SERVER_REQUEST_OUTCOMES.iter().position(|o| *o == outcome);
        if let Some(c) = row.zip(i).and_then(|(r, i)| r.get(i)) {
            c.inc();
        }
    }

    /// Counts a GET stream opened with a `Last-Event-ID`, by `outcome` (`RESUME_OUTCOMES`).
    pub fn resume(&self, outcome: &str) {
        let i = RESUME_OUTCOMES.iter().position(|o| *o == outcome);
        if let Some(c) = i.and_then(|i| self.resumes.get(i)) {
            c.inc();
        }
    }
}

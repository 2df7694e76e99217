//! The config file's schema (serde + JSON Schema): listeners, server settings, the access log,
//! reload, endpoints and their backends. A feature's section is the feature's own type
//! (policies, Redis, tracing, sessions, circuit breaker), so this one place that names them all
//! sits above them. `load.rs` reads it, `validate.rs` checks it, `snapshot.rs` compiles it.

use crate::policy::{ClientAddressConfig, PoliciesConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where clients connect: one address (`127.0.0.1:8080`), or a list of addresses and
    /// listener objects (`{address, tls: {cert, key}}`).
    pub listen: Listen,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`), e.g. `127.0.0.1:9090`. Omit it to
    /// run without one.
    #[serde(default)]
    pub admin: Option<String>,
    /// Pingora server settings: threads, grace periods, upgrade socket, pid file.
    #[serde(default)]
    pub server: ServerSettings,
    /// The JSON access log (one line per request, written off the request path).
    #[serde(default)]
    pub access_log: AccessLogSettings,
    /// The gateway's public base URL, e.g. `https://mcp.example.com` (default: `http://` plus the
    /// first listener's address). OAuth resource identifiers and metadata URLs derive from it.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Where the client address comes from (trusted proxies and their forwarding header).
    #[serde(default)]
    pub client_address: ClientAddressConfig,
    /// Service-wide policy settings; an endpoint's `policies` replace them one policy at a time.
    #[serde(default)]
    pub policies: PoliciesConfig,
    /// Bearer token for the admin listener's changing requests (`POST /reload`,
    /// `POST /tools/accept`), at least 16 characters. Without it, those requests are accepted
    /// from loopback clients only.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Redis for fleet-wide rate limits (`store: redis`).
    #[serde(default)]
    pub redis: Option<crate::policy::redis_store::RedisConfig>,
    /// OpenTelemetry tracing over OTLP/HTTP (off unless set).
    #[serde(default)]
    pub tracing: Option<crate::observability::otel::TracingConfig>,
    /// Hot reload: watch the config file and reload when it changes (SIGHUP and
    /// `POST /reload` always work).
    #[serde(default)]
    pub reload: ReloadSettings,
    /// Sealing of session ids for endpoints that pin sessions to hosts.
    #[serde(default)]
    pub sessions: crate::mcp::session_pin::SessionsConfig,
    /// The MCP endpoints the gateway serves.
    pub endpoints: Vec<EndpointConfig>,
}

/// One listener address or several.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Listen {
    /// A single listener.
    One(ListenerEntry),
    /// Several listeners.
    Many(Vec<ListenerEntry>),
}

impl Listen {
    /// The listeners as a list.
    pub fn entries(&self) -> Vec<ListenerConfig> {
        let list: Vec<&ListenerEntry> = match self {
            Listen::One(e) => vec![e],
            Listen::Many(v) => v.iter().collect(),
        };
        list.into_iter()
            .map(|e| match e {
                ListenerEntry::Address(a) => ListenerConfig {
                    address: a.clone(),
                    tls: None,
                },
                ListenerEntry::Full(l) => l.clone(),
            })
            .collect()
    }
}

/// A listener given as an address string or as an object.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ListenerEntry {
    /// `host:port`.
    Address(String),
    /// An address with optional TLS.
    Full(ListenerConfig),
}

/// A listener with optional TLS.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `host:port` to bind, e.g. `0.0.0.0:8443` or `[::1]:8080`.
    pub address: String,
    /// Serve TLS on this listener.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
}

/// Certificate and key (PEM files) for a TLS listener.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM certificate chain file.
    pub cert: String,
    /// PEM private key file.
    pub key: String,
}

/// Pingora server settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Worker threads of the proxy service (default: the number of CPUs).
    #[serde(default)]
    pub threads: Option<usize>,
    /// How the proxy's worker threads are organised (default `per_core`): one proxy per thread,
    /// each with its own single-threaded runtime, upstream pool and `SO_REUSEPORT` listening
    /// socket; or `work_stealing`, one proxy whose threads share tasks and one pool.
    #[serde(default)]
    pub runtime: Option<RuntimeModel>,
    /// With `runtime: work_stealing` only: `false` runs the one proxy on single-threaded
    /// runtimes without stealing (upstream connections are then reused less often, see
    /// benches/RESULTS.md). Set alone, `true` means `runtime: work_stealing` and `false` means
    /// `per_core`.
    #[serde(default)]
    pub work_stealing: Option<bool>,
    /// After a graceful upgrade or SIGQUIT: how long the old process keeps serving in-flight
    /// requests, e.g. `30s` (default `30s`).
    #[serde(default)]
    pub grace_period: Option<String>,
    /// After the grace period: how long to wait for the runtime to stop (default `5s`).
    #[serde(default)]
    pub graceful_shutdown_timeout: Option<String>,
    /// The Unix socket used to hand listening sockets to a new process on upgrade
    /// (default `/tmp/mcpgate_upgrade.sock`).
    #[serde(default)]
    pub upgrade_sock: Option<String>,
    /// The pid file (default `/tmp/mcpgate.pid`).
    #[serde(default)]
    pub pid_file: Option<String>,
    /// Where a daemonized process writes its log (default: stderr).
    #[serde(default)]
    pub error_log: Option<String>,
    /// Idle upstream connections kept for reuse, across all hosts (default 256).
    #[serde(default)]
    pub upstream_keepalive_pool_size: Option<usize>,
    /// How long a client may take to send a whole HTTP/1.1 request header, e.g. `10s` (default
    /// `10s`); from the accept for a connection's first request, from the first byte for later
    /// ones. A late header gets 408 and the connection is closed.
    #[serde(default)]
    pub header_timeout: Option<String>,
}

/// `server.runtime`: how the proxy's worker threads are organised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeModel {
    /// One proxy service per worker thread: a single-threaded runtime, its own upstream
    /// connection pool, its own `SO_REUSEPORT` socket on every listener (nginx's model).
    PerCore,
    /// One proxy service whose threads share a work-stealing runtime and one upstream pool.
    WorkStealing,
}

impl ServerSettings {
    /// The model in effect: `runtime`, else what `work_stealing` alone asks for, else per core.
    pub fn runtime_model(&self) -> RuntimeModel {
        match (self.runtime, self.work_stealing) {
            (Some(m), _) => m,
            (None, Some(true)) => RuntimeModel::WorkStealing,
            (None, _) => RuntimeModel::PerCore,
        }
    }
}

/// The access log.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSettings {
    /// Write one JSON line per request (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `-` for standard output (default), or a file path to append to.
    #[serde(default = "dash")]
    pub path: String,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "-".into(),
        }
    }
}

fn yes() -> bool {
    true
}

fn dash() -> String {
    "-".into()
}

/// One MCP endpoint: a path on the gateway relayed to a backend.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// The exact request path, e.g. `/mcp`.
    pub path: String,
    /// A name for metrics and logs (default: the path).
    #[serde(default)]
    pub name: Option<String>,
    /// Allowed HTTP methods (default `[POST, GET, DELETE]`).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Request headers forwarded to the upstream. A trailing `*` matches a prefix; `"*"` alone
    /// forwards every end-to-end header. `Authorization` is forwarded only when listed by name.
    /// Default: the headers MCP needs (Accept, Content-Type, Mcp-Session-Id,
    /// MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name, Mcp-Param-*).
    #[serde(default)]
    pub input_headers: Option<Vec<String>>,
    /// Query-string parameters forwarded to the upstream (default: none; `"*"` forwards all).
    #[serde(default)]
    pub input_query_strings: Option<Vec<String>>,
    /// Policy settings of this endpoint (each replaces the service-wide one of the same name).
    #[serde(default)]
    pub policies: Option<PoliciesConfig>,
    /// Where requests go (one MCP server, on one or more hosts). An endpoint has either
    /// `backend` or `servers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "BackendConfig")]
    pub backend: Option<BackendConfig>,
    /// Several MCP servers behind this one endpoint (federation), each with an alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Vec<ServerConfig>")]
    pub servers: Option<Vec<ServerConfig>>,
    /// Settings of a federated endpoint (with `servers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "FederationSettings")]
    pub federation: Option<FederationSettings>,
}

/// The upstream MCP server(s) of an endpoint.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Upstream base URLs (`http://` or `https://`, host and port, no path), e.g.
    /// `http://127.0.0.1:3000`. Several hosts are balanced round robin.
    pub hosts: Vec<String>,
    /// The upstream request path (default: the endpoint's path).
    #[serde(default)]
    pub path: Option<String>,
    /// Time allowed to establish a connection, e.g. `5s` (default `5s`).
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// The longest silence allowed while waiting for or reading a response, e.g. `300s`
    /// (default `300s`). There is no total-time cap: a stream lives as long as it is not silent
    /// for longer than this.
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// Time allowed for one write to the upstream (default `30s`).
    #[serde(default)]
    pub write_timeout: Option<String>,
    /// TLS settings for `https://` hosts.
    #[serde(default)]
    pub tls: UpstreamTls,
    /// Active health checks (default: a TCP connect every `5s`).
    #[serde(default)]
    pub health_check: HealthCheckConfig,
    /// Per-host circuit breaker (off unless set).
    #[serde(default)]
    pub circuit_breaker: Option<crate::policy::circuit_breaker::CircuitBreakerConfig>,
    /// Pin MCP sessions to the host that created them (default true; only endpoints with more
    /// than one host pin).
    #[serde(default)]
    pub session_pinning: Option<bool>,
}

/// One MCP server of a federated endpoint.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Short name of the server (`[a-z][a-z0-9-]*`, at most 20 characters, no `_`): tools and
    /// prompts are exposed as `{alias}_{name}`, resource URIs as `{alias}+{uri}`.
    pub alias: String,
    /// A required server that fails makes `initialize` fail; an optional one is left out of
    /// that session (default true).
    #[serde(default = "yes")]
    pub required: bool,
    /// Where this server is: hosts, path, timeouts, TLS, health checks, circuit breaker.
    pub backend: BackendConfig,
    /// Headers set on every request to this server (e.g. its own credentials), after the
    /// endpoint's `request_headers`.
    #[serde(default)]
    pub request_headers: Vec<crate::policy::header_modifiers::HeaderOp>,
    /// Which of this server's tools are exposed and callable, by the server's own names.
    #[serde(default)]
    pub tools: Option<crate::policy::tools::ToolsConfig>,
}

/// `federation:` settings of an endpoint with `servers:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FederationSettings {
    /// Expose tool and prompt names as `{alias}_{name}` (default true, also with one server, so
    /// adding a server renames nothing). `false` exposes the servers' own names; a name two
    /// servers share is then left out of lists (logged and counted) and cannot be called.
    #[serde(default = "yes")]
    pub prefix: bool,
    /// Time each server has to answer a fan-out request (initialize, lists, ping, DELETE),
    /// e.g. `10s` (default `10s`).
    #[serde(default)]
    pub deadline: Option<String>,
    /// How long a federated session id stays valid, e.g. `24h` (default `24h`).
    #[serde(default)]
    pub session_ttl: Option<String>,
}

impl Default for FederationSettings {
    fn default() -> Self {
        FederationSettings {
            prefix: true,
            deadline: None,
            session_ttl: None,
        }
    }
}

/// TLS to the upstream.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Verify the upstream's certificate chain and host name (default true).
    #[serde(default = "yes")]
    pub verify: bool,
    /// The SNI and expected certificate name (default: the host of the URL).
    #[serde(default)]
    pub sni: Option<String>,
    /// PEM file of the CA certificates to trust (default: the system store). Read again on
    /// every reload.
    #[serde(default)]
    pub ca: Option<String>,
    /// PEM certificate chain to present to the upstream (mutual TLS); needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<String>,
}

impl Default for UpstreamTls {
    fn default() -> Self {
        Self {
            verify: true,
            sni: None,
            ca: None,
            client_cert: None,
            client_key: None,
        }
    }
}

/// Active health checks of the backend hosts.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Run health checks (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Time between checks (default `5s`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Time allowed for one check (default `1s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// When set, an HTTP GET of this path that answers with a status below 500 is healthy;
    /// otherwise a TCP connect is the check.
    #[serde(default)]
    pub path: Option<String>,
    /// Consecutive successes that make an unhealthy host healthy (default 1).
    #[serde(default)]
    pub healthy_threshold: Option<usize>,
    /// Consecutive failures that make a healthy host unhealthy (default 1).
    #[serde(default)]
    pub unhealthy_threshold: Option<usize>,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: None,
            timeout: None,
            path: None,
            healthy_threshold: None,
            unhealthy_threshold: None,
        }
    }
}

/// Reload settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReloadSettings {
    /// Reload when the config file changes (default false; SIGHUP and `POST /reload` always
    /// work).
    #[serde(default)]
    pub watch: bool,
    /// How often the file is checked (default `1s`).
    #[serde(default)]
    pub interval: Option<String>,
    /// How long a changed file must stay unchanged before it is read (default `500ms`).
    #[serde(default)]
    pub debounce: Option<String>,
}

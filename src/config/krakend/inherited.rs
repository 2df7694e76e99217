//! What a KrakenD file's endpoints inherit from its service level, filled by `service.rs` and
//! read by the endpoint, auth and traffic translations.

use serde_json::{Map, Value};

/// What endpoints inherit from the service.
#[derive(Default)]
pub(crate) struct Service {
    /// `timeout`, as mcpgate duration text.
    pub timeout: Option<String>,
    /// `host`: the default backend hosts.
    pub hosts: Option<Vec<String>>,
    /// `output_encoding`: the default encoding of endpoints.
    pub output_encoding: Option<String>,
    /// The API keys declared under `auth/api-keys`.
    pub api_keys: Option<ApiKeys>,
    /// The users declared under `auth/basic`.
    pub basic_users: Option<Vec<Value>>,
    /// `redis.connection_pools`: name -> redis URL.
    pub redis_pools: Vec<(String, String)>,
    /// The Redis URL the translated limits use (mcpgate has one Redis).
    pub redis_url: Option<String>,
    /// Whether every Redis limit says `on_failure_allow: true` (KrakenD's default is to refuse
    /// when Redis fails; one limit refusing makes mcpgate's one Redis refuse).
    pub redis_fail_open: Option<bool>,
    /// The root `name` (the default OpenTelemetry service name).
    pub name: Option<String>,
    /// `router.max_payload` of the service, in bytes.
    pub max_payload: Option<u64>,
    /// The service-wide policies (mcpgate `policies:`).
    pub policies: Map<String, Value>,
}

/// The keys declared at the service's `auth/api-keys`.
pub(crate) struct ApiKeys {
    pub(crate) keys: Vec<Value>,
    pub(crate) header: Option<String>,
}

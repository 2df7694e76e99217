//! Federated endpoints (several MCP servers behind one path): the `servers:` and `federation:`
//! config of an endpoint, their checks, and their compiled form. The protocol facts (names,
//! tokens, merging) are `mcp::federation`; the fan-out and routing are `proxy::federation`.

use super::backend::Backend;
use super::file::{BackendConfig, FederationSettings, ServerConfig};
use crate::config::{parse_duration, Problem};
use crate::mcp::session_pin::Sealer;
use crate::observability::federation_metrics::FederationMetrics;
use crate::policy::header_modifiers::HeaderModifiers;
use crate::policy::tools::ToolPolicy;
use std::collections::HashSet;
use std::time::Duration;

/// The most routed calls whose server is kept (for `notifications/cancelled`).
pub const MAX_CALLS: usize = 4096;

/// Longest alias: names stay readable and leave room under the 64-character tool-name rule.
pub const MAX_ALIAS: usize = 20;

/// Whether `alias` is a valid alias.
pub fn valid_alias(alias: &str) -> bool {
    let b = alias.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_ALIAS
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Checks `servers:` (structure only; each backend is checked like an endpoint's).
pub fn check_servers(
    servers: &[ServerConfig],
    settings: Option<&FederationSettings>,
    at: &str,
    check_backend: &dyn Fn(&BackendConfig, &str, &mut Vec<Problem>),
    problems: &mut Vec<Problem>,
) {
    if servers.is_empty() {
        problems.push(Problem::new(
            format!("{at}.servers"),
            "at least one server is needed",
        ));
    }
    let mut seen = HashSet::new();
    for (i, s) in servers.iter().enumerate() {
        let sat = format!("{at}.servers[{i}]");
        if !valid_alias(&s.alias) {
            problems.push(Problem::new(
                format!("{sat}.alias"),
                format!(
                    "{:?} must be 1 to {MAX_ALIAS} characters of [a-z0-9-], starting with a letter (no `_`: names are split at the first `_`)",
                    s.alias
                ),
            ));
        } else if !seen.insert(s.alias.as_str()) {
            problems.push(Problem::new(
                format!("{sat}.alias"),
                format!("{:?} is used twice", s.alias),
            ));
        }
        check_backend(&s.backend, &format!("{sat}.backend"), problems);
        if let Err(mut p) =
            HeaderModifiers::compile(&s.request_headers, &format!("{sat}.request_headers"))
        {
            problems.append(&mut p);
        }
        if let Some(t) = &s.tools {
            if let Err(mut p) = ToolPolicy::compile(t, &format!("{sat}.tools")) {
                problems.append(&mut p);
            }
        }
    }
    if let Some(f) = settings {
        for (v, name) in [(&f.deadline, "deadline"), (&f.session_ttl, "session_ttl")] {
            if let Some(text) = v {
                match parse_duration(text) {
                    Ok(d) if !d.is_zero() => {}
                    Ok(_) => problems.push(Problem::new(
                        format!("{at}.federation.{name}"),
                        "must be more than zero",
                    )),
                    Err(e) => problems.push(Problem::new(format!("{at}.federation.{name}"), e)),
                }
            }
        }
    }
}

/// A compiled server of a federated endpoint.
pub struct Server {
    /// Its alias.
    pub alias: String,
    /// Required at initialize.
    pub required: bool,
    /// Its hosts, balancer, breakers, pinning-free.
    pub backend: Backend,
    /// Headers set on requests to it.
    pub request_headers: HeaderModifiers,
    /// Its own tool lists (by its own names).
    pub tools: Option<ToolPolicy>,
    /// The fan-out client for this server (its TLS settings, pooled connections).
    pub client: reqwest::Client,
}

/// The compiled federation of an endpoint.
pub struct Federation {
    /// The servers, in config order.
    pub servers: Vec<Server>,
    /// Names are `{alias}_{name}`.
    pub prefix: bool,
    /// Time each server has to answer a fan-out request.
    pub deadline: Duration,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Seals session ids and cursors (the fleet's `sessions` keys).
    pub sealer: Sealer,
    /// Metric children.
    pub metrics: FederationMetrics,
    /// The servers' own tool and prompt names, as last listed (see `proxy::federation::resolve`).
    pub names: pingora_memory_cache::MemoryCache<u64, std::sync::Arc<Vec<String>>>,
    /// The server of each routed call in flight, by session and request id (see
    /// `proxy::federation::calls`).
    pub calls: pingora_memory_cache::MemoryCache<u64, usize>,
}

impl Federation {
    /// The server called `alias`.
    pub fn server(&self, alias: &str) -> Option<(usize, &Server)> {
        self.servers
            .iter()
            .enumerate()
            .find(|(_, s)| s.alias == alias)
    }
}

/// Compiles one backend: (its config, the metric scope, the config path).
pub type CompileBackend<'a> =
    &'a dyn Fn(&BackendConfig, &str, &str) -> Result<Backend, Vec<Problem>>;

/// Compiles `servers:`; `compile_backend` is the endpoint backend compiler (no pinning).
pub fn compile(
    servers: &[ServerConfig],
    settings: &FederationSettings,
    (endpoint, sealer): (&str, Option<&Sealer>),
    at: &str,
    compile_backend: CompileBackend<'_>,
) -> Result<Federation, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(servers.len());
    for (i, s) in servers.iter().enumerate() {
        let sat = format!("{at}.servers[{i}]");
        let scope = format!("{endpoint}/{}", s.alias);
        let backend = compile_backend(&s.backend, &scope, &format!("{sat}.backend"));
        let headers =
            HeaderModifiers::compile(&s.request_headers, &format!("{sat}.request_headers"));
        let tools = s
            .tools
            .as_ref()
            .map(|t| ToolPolicy::compile(t, &format!("{sat}.tools")))
            .transpose();
        let client = client(&s.backend, &format!("{sat}.backend.tls"));
        match (backend, headers, tools, client) {
            (Ok(backend), Ok(request_headers), Ok(tools), Ok(client)) => out.push(Server {
                alias: s.alias.clone(),
                required: s.required,
                backend,
                request_headers,
                tools,
                client,
            }),
            (b, h, t, c) => {
                problems.extend(b.err().unwrap_or_default());
                problems.extend(h.err().unwrap_or_default());
                problems.extend(t.err().unwrap_or_default());
                problems.extend(c.err().unwrap_or_default());
            }
        }
    }
    let Some(sealer) = sealer else {
        problems.push(Problem::new("sessions", "no sealing key"));
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let dur = |v: &Option<String>, d: Duration| {
        v.as_deref()
            .and_then(|t| parse_duration(t).ok())
            .unwrap_or(d)
    };
    Ok(Federation {
        metrics: FederationMetrics::new(endpoint, servers.iter().map(|s| s.alias.as_str())),
        servers: out,
        prefix: settings.prefix,
        deadline: dur(&settings.deadline, Duration::from_secs(10)),
        session_ttl: dur(&settings.session_ttl, Duration::from_secs(24 * 3600)),
        sealer: sealer.clone(),
        names: pingora_memory_cache::MemoryCache::new(64 * servers.len().max(1)),
        calls: pingora_memory_cache::MemoryCache::new(MAX_CALLS),
    })
}

/// The fan-out HTTP client of one server: its TLS settings, no redirects, pooled connections.
fn client(b: &BackendConfig, at: &str) -> Result<reqwest::Client, Vec<Problem>> {
    let connect = b
        .connect_timeout
        .as_deref()
        .and_then(|t| parse_duration(t).ok())
        .unwrap_or(Duration::from_secs(5));
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect)
        .pool_idle_timeout(Duration::from_secs(60))
        .danger_accept_invalid_certs(!b.tls.verify)
        .danger_accept_invalid_hostnames(!b.tls.verify);
    let mut problems = Vec::new();
    if let Some(ca) = &b.tls.ca {
        match std::fs::read(ca)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string()))
        {
            Ok(cert) => builder = builder.add_root_certificate(cert),
            Err(e) => problems.push(Problem::new(format!("{at}.ca"), e)),
        }
    }
    if let (Some(cert), Some(key)) = (&b.tls.client_cert, &b.tls.client_key) {
        let id = std::fs::read(cert)
            .and_then(|c| std::fs::read(key).map(|k| (c, k)))
            .map_err(|e| e.to_string())
            .and_then(|(c, k)| {
                reqwest::Identity::from_pkcs8_pem(&c, &k).map_err(|e| e.to_string())
            });
        match id {
            Ok(id) => builder = builder.identity(id),
            Err(e) => problems.push(Problem::new(
                format!("{at}.client_cert"),
                format!("{e} (federated servers take a PKCS#8 PEM key)"),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    builder
        .build()
        .map_err(|e| vec![Problem::new(at, e.to_string())])
}

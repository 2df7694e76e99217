//! The compiled, immutable form of a config. One `Arc<Snapshot>` serves a request from start to
//! end; a reload builds a whole new one.

use super::file::{self, FileConfig};
use super::host::{Host, HostHealthCheck};
use crate::config::{self, Problem, DEFAULT_INPUT_HEADERS};
use crate::mcp::session_pin::Sealer;
use crate::observability::metrics::PinningMetrics;
use crate::observability::metrics::{EndpointMetrics, HostMetrics};
use crate::policy::circuit_breaker::{Breaker, Settings as BreakerSettings};
use crate::policy::input_lists::{HeaderAllowList, QueryAllowList};
use crate::policy::ip_filter::ClientAddress;
use crate::policy::redis_store::RedisStore;
use crate::policy::shared::{shared, shared_try};
use crate::policy::PoliciesConfig;
use crate::policy::{Policies, ServiceFacts};
use http::{HeaderValue, Method};
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Everything a request needs, compiled from one config.
pub struct Snapshot {
    /// 1 for the first config, +1 per applied reload.
    pub generation: u64,
    /// The endpoints, in config order.
    pub endpoints: Vec<Endpoint>,
    /// Request path -> the endpoints serving it (in config order; their methods differ).
    routes: HashMap<String, Vec<usize>>,
    /// How the client address is found.
    pub client_address: ClientAddress,
    /// Certificates of the TLS listeners (read at each handshake).
    pub listener_certs: Vec<super::tls::ListenerCert>,
    /// The config it was compiled from (for listeners, server settings and reload diffs).
    pub source: FileConfig,
}

/// One compiled endpoint.
pub struct Endpoint {
    /// Name for metrics and logs.
    pub name: String,
    /// Exact request path.
    pub path: String,
    methods: Vec<Method>,
    /// The `Allow` header value for 405 answers: the methods of every endpoint on this path.
    pub allow: HeaderValue,
    /// Request headers forwarded upstream.
    pub input_headers: HeaderAllowList,
    /// Query parameters forwarded upstream.
    pub input_query: QueryAllowList,
    /// The compiled policies.
    pub policies: Policies,
    /// Where requests go.
    pub backend: Backend,
    /// Metric children.
    pub metrics: EndpointMetrics,
    /// Several MCP servers behind this endpoint (its `backend` then has no hosts).
    pub federation: Option<super::federation::Federation>,
}

impl Endpoint {
    /// Every backend of the endpoint: its own, and its federated servers'.
    pub fn backends(&self) -> impl Iterator<Item = &Backend> {
        std::iter::once(&self.backend).chain(
            self.federation
                .iter()
                .flat_map(|f| f.servers.iter().map(|s| &s.backend)),
        )
    }

    /// Whether `m` is allowed here.
    pub fn allows(&self, m: &Method) -> bool {
        self.methods.contains(m)
    }
}

pub use super::backend::{Backend, Pinning};

impl Snapshot {
    /// Compiles a validated config. Fails (with paths) on what only compiling can find, such as
    /// host names that do not resolve.
    pub fn compile(source: FileConfig, generation: u64) -> Result<Snapshot, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut endpoints = Vec::with_capacity(source.endpoints.len());
        let mut routes = HashMap::new();
        let redis = match &source.redis {
            None => None,
            Some(r) => match shared_try(format!("redis:{r:?}"), || RedisStore::compile(r, "redis"))
            {
                Ok(store) => Some(store),
                Err(mut p) => {
                    problems.append(&mut p);
                    None
                }
            },
        };
        if source
            .admin_token
            .as_ref()
            .is_some_and(|t| t.chars().count() < 16)
        {
            problems.push(Problem::new(
                "admin_token",
                "must be at least 16 characters",
            ));
        }
        let needs_pinning = source.endpoints.iter().any(|e| {
            e.servers.is_some()
                || e.backend
                    .as_ref()
                    .is_some_and(|b| b.hosts.len() > 1 && b.session_pinning.unwrap_or(true))
        });
        let sealer = match Sealer::compile(&source.sessions, "sessions") {
            Ok(s) => Some(s),
            Err(mut p) => {
                problems.append(&mut p);
                None
            }
        };
        if needs_pinning && source.sessions.key.is_none() {
            tracing::warn!("sessions.key is not set: pinned session ids are sealed with a key of this process only (sessions end on restart and do not move between instances)");
        }
        let facts = ServiceFacts {
            redis,
            sealer,
            public_url: public_url(&source),
            loopback_listeners: source.listen.entries().iter().all(|l| {
                l.address
                    .parse::<SocketAddr>()
                    .is_ok_and(|a| a.ip().is_loopback())
            }),
        };
        let mut per_path: HashMap<&str, usize> = HashMap::new();
        for ep in &source.endpoints {
            *per_path.entry(ep.path.as_str()).or_default() += 1;
        }
        for (i, ep) in source.endpoints.iter().enumerate() {
            let shared_path = per_path.get(ep.path.as_str()).is_some_and(|&n| n > 1);
            let at = format!("endpoints[{i}]");
            match compile_endpoint(ep, shared_path, &source.policies, &facts, &at) {
                Ok(e) => {
                    routes
                        .entry(e.path.clone())
                        .or_insert_with(Vec::new)
                        .push(endpoints.len());
                    endpoints.push(e);
                }
                Err(mut p) => problems.append(&mut p),
            }
        }
        union_allow(&routes, &mut endpoints);
        let client_address = ClientAddress::compile(&source.client_address, "client_address")
            .map_err(|mut p| problems.append(&mut p))
            .unwrap_or_default();
        let listener_certs = super::tls::listener_certs(&source.listen, &mut problems);
        if problems.is_empty() {
            Ok(Snapshot {
                generation,
                endpoints,
                routes,
                client_address,
                listener_certs,
                source,
            })
        } else {
            Err(problems)
        }
    }

    /// The endpoint whose RFC 9728 metadata lives at `path` (`/.well-known/...[/endpoint]`):
    /// for the bare path, the first endpoint with its own metadata, else the first endpoint.
    pub fn metadata_endpoint(&self, path: &str) -> Option<(usize, &Endpoint)> {
        let rest = path.strip_prefix(crate::policy::oauth::WELL_KNOWN)?;
        if rest.is_empty() || rest == "/" {
            return self
                .endpoints
                .iter()
                .enumerate()
                .find(|(_, e)| e.policies.oauth.is_some())
                .or_else(|| self.endpoints.first().map(|e| (0, e)));
        }
        self.route(rest)
    }

    /// The first endpoint serving `path`, if any.
    pub fn route(&self, path: &str) -> Option<(usize, &Endpoint)> {
        self.routes(path).into_iter().next()
    }

    /// Every endpoint serving `path`, in config order.
    pub fn routes(&self, path: &str) -> Vec<(usize, &Endpoint)> {
        self.routes
            .get(path)
            .into_iter()
            .flatten()
            .filter_map(|&i| Some((i, self.endpoints.get(i)?)))
            .collect()
    }
}

/// Gives every endpoint of a shared path the `Allow` value listing the methods of all of them.
fn union_allow(routes: &HashMap<String, Vec<usize>>, endpoints: &mut [Endpoint]) {
    for group in routes.values().filter(|g| g.len() > 1) {
        let mut methods: Vec<Method> = Vec::new();
        for &i in group {
            for m in endpoints
                .get(i)
                .map(|e| e.methods.as_slice())
                .unwrap_or(&[])
            {
                if !methods.contains(m) {
                    methods.push(m.clone());
                }
            }
        }
        let text = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(allow) = HeaderValue::from_str(&text) {
            for &i in group {
                if let Some(e) = endpoints.get_mut(i) {
                    e.allow = allow.clone();
                }
            }
        }
    }
}

/// The gateway's public base URL: `public_url`, or the first listener's address.
pub fn public_url(source: &FileConfig) -> String {
    if let Some(u) = &source.public_url {
        return u.trim_end_matches('/').to_string();
    }
    match source.listen.entries().first() {
        Some(l) => format!(
            "{}://{}",
            if l.tls.is_some() { "https" } else { "http" },
            l.address
        ),
        None => "http://localhost".to_string(),
    }
}

fn duration(v: &Option<String>, default: Duration) -> Duration {
    v.as_deref()
        .and_then(|s| config::parse_duration(s).ok())
        .unwrap_or(default)
}

/// Compiles one endpoint. Without a `name`, an endpoint is named by its path, plus its methods
/// when other endpoints share the path (so their metrics and limiter state stay apart).
fn compile_endpoint(
    ep: &file::EndpointConfig,
    shared_path: bool,
    defaults: &PoliciesConfig,
    facts: &ServiceFacts,
    at: &str,
) -> Result<Endpoint, Vec<Problem>> {
    let name = match &ep.name {
        Some(n) => n.clone(),
        None if shared_path => format!(
            "{} {}",
            ep.path,
            super::validate::endpoint_methods(ep).join(",")
        ),
        None => ep.path.clone(),
    };
    let policies = match &ep.policies {
        Some(own) => Policies::compile(
            &own.over(defaults),
            facts,
            (&name, &ep.path),
            &format!("{at}.policies"),
        ),
        None => Policies::compile(defaults, facts, (&name, &ep.path), "policies"),
    };
    let methods: Vec<Method> = match &ep.methods {
        Some(list) => list
            .iter()
            .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .collect(),
        None => vec![Method::POST, Method::GET, Method::DELETE],
    };
    let allow_text = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let allow = HeaderValue::from_str(&allow_text)
        .map_err(|e| vec![Problem::new(format!("{at}.methods"), e.to_string())])?;
    let input_headers = match &ep.input_headers {
        Some(list) => HeaderAllowList::new(list),
        None => HeaderAllowList::new(DEFAULT_INPUT_HEADERS),
    };
    let input_query = QueryAllowList::new(ep.input_query_strings.as_deref().unwrap_or(&[]));
    let mut federation = None;
    let backend = match (&ep.backend, &ep.servers) {
        (Some(b), _) => compile_backend(
            b,
            (&name, &ep.path),
            facts.sealer.as_ref(),
            &format!("{at}.backend"),
        ),
        (None, Some(servers)) => {
            let compiled = super::federation::compile(
                servers,
                &ep.federation.clone().unwrap_or_default(),
                (&name, facts.sealer.as_ref()),
                at,
                &|b, scope, bat| compile_backend(b, (scope, &ep.path), None, bat),
            );
            match compiled {
                Ok(f) => {
                    federation = Some(f);
                    empty_backend(&ep.path, &format!("{at}.servers"))
                }
                Err(p) => Err(p),
            }
        }
        (None, None) => Err(vec![Problem::new(format!("{at}.backend"), "is required")]),
    };
    // Report the problems of both halves at once.
    let (mut policies, backend) = match (policies, backend) {
        (Ok(p), Ok(b)) => (p, b),
        (p, b) => {
            let mut problems = p.err().unwrap_or_default();
            problems.extend(b.err().unwrap_or_default());
            return Err(problems);
        }
    };
    if federation.is_some() && policies.inspection.is_none() {
        // Routing a federated request needs its JSON-RPC content.
        policies.inspection =
            crate::policy::mcp_headers::Inspection::compile(&Default::default(), at).ok();
    }
    Ok(Endpoint {
        federation,
        metrics: EndpointMetrics::new(&name),
        path: ep.path.clone(),
        name,
        methods,
        allow,
        input_headers,
        input_query,
        policies,
        backend,
    })
}

/// The hostless backend of a federated endpoint (its servers have the hosts).
fn empty_backend(path: &str, at: &str) -> Result<Backend, Vec<Problem>> {
    let balancer = LoadBalancer::<RoundRobin>::try_from_iter(std::iter::empty::<SocketAddr>())
        .map_err(|e| vec![Problem::new(at, e.to_string())])?;
    Ok(Backend {
        path: path.to_string(),
        uri: path.parse().unwrap_or_default(),
        hosts: Vec::new(),
        balancer: Arc::new(balancer),
        health_checks: false,
        health_interval: Duration::from_secs(5),
        pinning: None,
    })
}

fn compile_backend(
    b: &file::BackendConfig,
    (endpoint, endpoint_path): (&str, &str),
    sealer: Option<&Sealer>,
    at: &str,
) -> Result<Backend, Vec<Problem>> {
    let breaker_settings = match &b.circuit_breaker {
        Some(cb) => Some(BreakerSettings::compile(
            cb,
            &format!("{at}.circuit_breaker"),
        )?),
        None => None,
    };
    let connect_timeout = duration(&b.connect_timeout, Duration::from_secs(5));
    let idle_timeout = duration(&b.idle_timeout, Duration::from_secs(300));
    let write_timeout = duration(&b.write_timeout, Duration::from_secs(30));
    let mut problems = Vec::new();
    let tls = super::tls::UpstreamTlsMaterial::compile(&b.tls, &format!("{at}.tls"))
        .map_err(|mut p| problems.append(&mut p))
        .unwrap_or_default();
    let mut hosts = Vec::with_capacity(b.hosts.len());
    for (j, url) in b.hosts.iter().enumerate() {
        let hat = format!("{at}.hosts[{j}]");
        let parsed = match config::parse_host_url(url) {
            Ok(p) => p,
            Err(m) => {
                problems.push(Problem::new(hat, m));
                continue;
            }
        };
        // Resolved here, off the request path (a blocking lookup for names).
        let addr = match (parsed.host.as_str(), parsed.port).to_socket_addrs() {
            Ok(mut it) => match it.next() {
                Some(a) => a,
                None => {
                    problems.push(Problem::new(
                        hat,
                        format!("{:?} has no address", parsed.host),
                    ));
                    continue;
                }
            },
            Err(e) => {
                problems.push(Problem::new(
                    hat,
                    format!("cannot resolve {:?}: {e}", parsed.host),
                ));
                continue;
            }
        };
        let sni = b.tls.sni.clone().unwrap_or_else(|| parsed.host.clone());
        let mut peer = HttpPeer::new(
            addr,
            parsed.tls,
            if parsed.tls { sni } else { String::new() },
        );
        peer.options.connection_timeout = Some(connect_timeout);
        peer.options.read_timeout = Some(idle_timeout);
        peer.options.write_timeout = Some(write_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        peer.options.verify_cert = b.tls.verify;
        peer.options.verify_hostname = b.tls.verify;
        if parsed.tls {
            peer.options.ca = tls.ca.clone();
            peer.client_cert_key = tls.client.clone();
        }
        let authority = match HeaderValue::from_str(&parsed.authority) {
            Ok(v) => v,
            Err(e) => {
                problems.push(Problem::new(hat, e.to_string()));
                continue;
            }
        };
        let metrics = HostMetrics::new(endpoint, url);
        let breaker = breaker_settings.as_ref().map(|settings| {
            let key = format!("breaker:{endpoint}:{url}:{settings:?}");
            shared(key, || Breaker::new(settings.clone()))
        });
        if breaker.is_none() {
            metrics.breaker_state.set(0);
        }
        hosts.push(Host {
            metrics,
            breaker,
            url: url.clone(),
            addr,
            authority,
            peer,
        });
    }
    let path = b.path.clone().unwrap_or_else(|| endpoint_path.to_string());
    let uri = match path.parse::<http::Uri>() {
        Ok(u) if u.scheme().is_none() && u.path().starts_with('/') => u,
        _ => {
            let whose = if b.path.is_some() {
                ""
            } else {
                " (the endpoint's path, used upstream when backend.path is not set)"
            };
            problems.push(Problem::new(
                format!("{at}.path"),
                format!("{path:?}{whose} is not a valid URI path, such as \"/mcp\""),
            ));
            http::Uri::default()
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    // The balancer holds the health state: kept across reloads while the hosts (as resolved),
    // the health check settings and the TLS material are the same, so a host that is down stays
    // out of rotation through a reload.
    let hc = &b.health_check;
    let addrs: Vec<SocketAddr> = hosts.iter().map(|h| h.addr).collect();
    let key = format!(
        "balancer:{endpoint}:{:?}:{addrs:?}:{}:{}",
        b.hosts,
        serde_json::to_string(hc).unwrap_or_default(),
        tls.fingerprint
    );
    let balancer = shared_try(key, || {
        let mut balancer = LoadBalancer::<RoundRobin>::try_from_iter(addrs.iter().copied())
            .map_err(|e| vec![Problem::new(format!("{at}.hosts"), e.to_string())])?;
        if hc.enabled {
            balancer.set_health_check(Box::new(HostHealthCheck::new(
                &hosts,
                duration(&hc.timeout, Duration::from_secs(1)),
                hc.path.clone(),
                hc.healthy_threshold.unwrap_or(1),
                hc.unhealthy_threshold.unwrap_or(1),
            )));
        }
        for h in &hosts {
            h.metrics.healthy.set(1);
        }
        Ok::<_, Vec<Problem>>(balancer)
    })?;
    let pinning = match (b.session_pinning.unwrap_or(true), hosts.len() > 1, sealer) {
        (true, true, Some(sealer)) => Some(Pinning {
            sealer: sealer.clone(),
            metrics: PinningMetrics::new(endpoint),
        }),
        _ => None,
    };
    Ok(Backend {
        pinning,
        path,
        uri,
        hosts,
        balancer,
        health_checks: hc.enabled,
        health_interval: duration(&hc.interval, Duration::from_secs(5)),
    })
}

//! The admin listener: `/metrics` (Prometheus text format), `/healthz` (the process is alive),
//! `/readyz` (a config is loaded and the process is not draining), `GET /reload` (the generation
//! and the last reload attempt with its problems), `POST /reload` (read the config file again;
//! 400 with every problem when it is invalid), `GET /tools` and `POST /tools/accept`.

use crate::runtime::drain;
use crate::runtime::reload::{ReloadError, Reloader, Trigger};
use crate::runtime::store::ConfigStore;
use async_trait::async_trait;
use http::{header, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora_prometheus::prometheus::{self, Encoder, TextEncoder};
use std::sync::Arc;

/// The admin HTTP application.
pub struct AdminApp {
    store: Arc<ConfigStore>,
    reloader: Option<Arc<Reloader>>,
}

impl AdminApp {
    /// An admin app reporting on `store`, reloading with `reloader`.
    pub fn new(store: Arc<ConfigStore>, reloader: Option<Arc<Reloader>>) -> Self {
        AdminApp { store, reloader }
    }

    /// The refusal of a changing request, if any: it needs the `admin_token` (as a bearer token)
    /// when one is configured, and a loopback client otherwise.
    fn refuse_change(&self, session: &ServerSession) -> Option<Response<Vec<u8>>> {
        use subtle::ConstantTimeEq;
        let snapshot = self.store.current();
        match &snapshot.source.admin_token {
            Some(token) => {
                let sent = session
                    .req_header()
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if bool::from(sent.as_bytes().ct_eq(token.as_bytes())) {
                    return None;
                }
                let mut r = json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "this request needs the admin token (Authorization: Bearer ...)"}),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"mcpgate-admin\""),
                );
                Some(r)
            }
            None => {
                let loopback = session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .is_some_and(|a| a.ip().is_loopback());
                (!loopback).then(|| {
                    json(
                        StatusCode::FORBIDDEN,
                        serde_json::json!({"error": "set admin_token to allow changes from other hosts"}),
                    )
                })
            }
        }
    }

    /// The tools each endpoint has seen in `tools/list` answers, with their definition hashes.
    fn tools(&self) -> Response<Vec<u8>> {
        let snapshot = self.store.current();
        let mut out = serde_json::Map::new();
        for ep in &snapshot.endpoints {
            let tools: serde_json::Map<String, serde_json::Value> = ep
                .policies
                .tool_registry
                .snapshot()
                .into_iter()
                .map(|(name, r)| {
                    let changed = r.changed();
                    (
                        name,
                        serde_json::json!({"approved": r.approved, "seen": r.seen, "changed": changed}),
                    )
                })
                .collect();
            out.insert(ep.name.clone(), serde_json::Value::Object(tools));
        }
        json(StatusCode::OK, serde_json::json!({"endpoints": out}))
    }

    /// `POST /tools/accept?endpoint=NAME&tool=TOOL`: approves the definition last seen.
    fn accept_tool(&self, query: &str) -> Response<Vec<u8>> {
        let params: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        let (Some(endpoint), Some(tool)) = (params.get("endpoint"), params.get("tool")) else {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "give ?endpoint=NAME&tool=TOOL"}),
            );
        };
        let snapshot = self.store.current();
        let Some(ep) = snapshot.endpoints.iter().find(|e| &e.name == endpoint) else {
            return json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "no such endpoint", "endpoint": endpoint}),
            );
        };
        if ep.policies.tool_registry.accept(tool) {
            tracing::info!(endpoint = %endpoint, tool = %tool, "tool definition accepted");
            json(
                StatusCode::OK,
                serde_json::json!({"status": "accepted", "endpoint": endpoint, "tool": tool}),
            )
        } else {
            json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "tool not seen on this endpoint", "tool": tool}),
            )
        }
    }

    async fn reload(&self) -> Response<Vec<u8>> {
        let Some(r) = &self.reloader else {
            return json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "this process has no config file to reload"}),
            );
        };
        match r.reload(Trigger::Admin).await {
            Ok(report) => json(
                StatusCode::OK,
                serde_json::json!({"status": "reloaded", "generation": report.generation,
                    "restart_required": report.restart_required}),
            ),
            Err(ReloadError::Invalid(e)) => {
                let problems: Vec<_> = e
                    .problems
                    .iter()
                    .map(|p| serde_json::json!({"path": p.path, "message": p.message}))
                    .collect();
                json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "invalid config; the running one is kept",
                        "source": e.source_name, "problems": problems}),
                )
            }
            Err(e) => json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": e.to_string()}),
            ),
        }
    }

    /// `GET /reload`: the generation in use and the last reload attempt, with its problems.
    fn reload_status(&self) -> Response<Vec<u8>> {
        let snapshot = self.store.current();
        let (config_file, last) = match &self.reloader {
            Some(r) => (
                Some(r.path().display().to_string()),
                r.last_attempt()
                    .and_then(|a| serde_json::to_value(a).ok())
                    .unwrap_or_default(),
            ),
            None => (None, serde_json::Value::Null),
        };
        json(
            StatusCode::OK,
            serde_json::json!({
                "config_file": config_file,
                "generation": snapshot.generation,
                "watch": snapshot.source.reload.watch,
                "last_attempt": last,
            }),
        )
    }

    fn metrics(&self) -> Response<Vec<u8>> {
        let encoder = TextEncoder::new();
        let mut body = Vec::new();
        if let Err(e) = encoder.encode(&prometheus::gather(), &mut body) {
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": e.to_string()}),
            );
        }
        respond(StatusCode::OK, encoder.format_type(), body)
    }

    /// Readiness, with each endpoint's hosts and healthy hosts; a federated endpoint counts its
    /// servers' hosts, lists each server and says `ready: false` while a required server has
    /// no healthy host (it cannot start a session then). The status is 503 only while draining:
    /// an upstream that is down is down for every instance of a fleet alike, and the gateway
    /// answers its clients with a clear JSON-RPC error meanwhile.
    fn ready(&self) -> Response<Vec<u8>> {
        let snapshot = self.store.current();
        let endpoints: Vec<_> = snapshot
            .endpoints
            .iter()
            .map(|ep| match &ep.federation {
                Some(fed) => {
                    let counts: Vec<(usize, usize)> = fed
                        .servers
                        .iter()
                        .map(|s| (s.backend.hosts.len(), healthy_hosts(&s.backend)))
                        .collect();
                    let servers: Vec<_> = fed
                        .servers
                        .iter()
                        .zip(&counts)
                        .map(|(s, (hosts, healthy))| {
                            serde_json::json!({"alias": s.alias, "required": s.required,
                                "hosts": hosts, "healthy_hosts": healthy})
                        })
                        .collect();
                    let ready = fed
                        .servers
                        .iter()
                        .zip(&counts)
                        .all(|(s, (_, healthy))| !s.required || *healthy > 0);
                    serde_json::json!({"name": ep.name,
                        "hosts": counts.iter().map(|c| c.0).sum::<usize>(),
                        "healthy_hosts": counts.iter().map(|c| c.1).sum::<usize>(),
                        "ready": ready, "servers": servers})
                }
                None => serde_json::json!({"name": ep.name, "hosts": ep.backend.hosts.len(),
                    "healthy_hosts": healthy_hosts(&ep.backend)}),
            })
            .collect();
        let draining = drain::is_draining();
        let status = if draining {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        json(
            status,
            serde_json::json!({
                "status": if draining { "shutting_down" } else { "ready" },
                "config_generation": snapshot.generation,
                "endpoints": endpoints,
            }),
        )
    }
}

/// The hosts of a backend its health checks count healthy.
fn healthy_hosts(b: &crate::runtime::backend::Backend) -> usize {
    b.hosts
        .iter()
        .filter(|h| h.metrics.healthy.get() == 1)
        .count()
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let changing = req.method == http::Method::POST
            && matches!(req.uri.path(), "/reload" | "/tools/accept");
        if changing {
            if let Some(refusal) = self.refuse_change(session) {
                return refusal;
            }
        }
        let req = session.req_header();
        if req.uri.path() == "/tools/accept" && req.method == http::Method::POST {
            return self.accept_tool(req.uri.query().unwrap_or_default());
        }
        if req.uri.path() == "/reload" {
            match req.method {
                http::Method::POST => return self.reload().await,
                http::Method::GET | http::Method::HEAD => return self.reload_status(),
                _ => {
                    let mut r = json(
                        StatusCode::METHOD_NOT_ALLOWED,
                        serde_json::json!({"error": "use GET (status) or POST (reload)"}),
                    );
                    r.headers_mut().insert(
                        header::ALLOW,
                        header::HeaderValue::from_static("GET, HEAD, POST"),
                    );
                    return r;
                }
            }
        }
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            let mut r = json(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({"error": "use GET"}),
            );
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match req.uri.path() {
            "/metrics" => self.metrics(),
            "/healthz" => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
            "/readyz" => self.ready(),
            "/tools" => self.tools(),
            _ => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "not found", "paths": ["/metrics", "/healthz", "/readyz", "/reload", "/tools", "/tools/accept"]}),
            ),
        }
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", v.to_string().into_bytes())
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    let len = r.body().len();
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    r
}

//! Policies, one file each. Users configure them (service-wide under `policies:`, overridden per
//! endpoint under `endpoints[].policies:`, one whole policy at a time); they do not order them.
//! The order is fixed in code (here and in `proxy::pipeline`): IP filter, CORS preflight, Origin
//! check, body-size check, authentication, MCP inspection (tool lists, pinned tools), CEL rules,
//! rate and concurrency limits, session pinning, header modifiers.

pub mod auth;
pub mod body_limit;
pub mod cel;
pub mod circuit_breaker;
pub mod concurrency;
pub mod cors;
pub mod header_modifiers;
pub mod input_lists;
pub mod ip_filter;
pub mod limit_key;
pub mod mcp_headers;
pub mod oauth;
pub mod origin;
pub mod rate_limit;
pub mod rate_window;
pub mod redis_store;
pub mod shared;
pub mod tools;

pub use auth::AuthConfig;
pub use body_limit::LimitsConfig;
pub use cors::CorsConfig;
pub use header_modifiers::HeaderOp;
pub use ip_filter::{ClientAddressConfig, IpFilterConfig};
pub use oauth::OAuthConfig;
pub use origin::OriginConfig;

use crate::config::Problem;
use crate::error::GatewayError;
use pingora::http::{RequestHeader, ResponseHeader};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;

/// The policy settings, service-wide or of one endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoliciesConfig {
    /// CIDR allow and deny lists (403).
    #[serde(default)]
    pub ip_filter: Option<IpFilterConfig>,
    /// CORS, answered by the gateway.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    /// Host and Origin validation against DNS rebinding (403).
    #[serde(default)]
    pub origin: Option<OriginConfig>,
    /// Body and header size limits (413, 431).
    #[serde(default)]
    pub limits: Option<LimitsConfig>,
    /// Authentication (401 / 403).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// OAuth 2.1 protected-resource metadata (RFC 9728) for clients to discover how to get a
    /// token.
    #[serde(default)]
    pub oauth: Option<OAuthConfig>,
    /// Header operations on the request sent upstream (after the `input_headers` allow-list).
    #[serde(default)]
    pub request_headers: Option<Vec<HeaderOp>>,
    /// Header operations on the response sent to the client.
    #[serde(default)]
    pub response_headers: Option<Vec<HeaderOp>>,
    /// Rate limits; all must allow a request (429).
    #[serde(default)]
    pub rate_limits: Option<Vec<rate_limit::RateLimitConfig>>,
    /// Concurrency limits on open requests and streams (429).
    #[serde(default)]
    pub concurrency: Option<Vec<concurrency::ConcurrencyConfig>>,
    /// JSON-RPC inspection settings (header consistency, inspection bound).
    #[serde(default)]
    pub mcp: Option<mcp_headers::McpConfig>,
    /// Tool allow and deny lists (403 for denied calls; `tools/list` filtered).
    #[serde(default)]
    pub tools: Option<tools::ToolsConfig>,
    /// CEL rules over the request, the identity and the MCP message; the first match decides.
    #[serde(default)]
    pub rules: Option<Vec<cel::RuleConfig>>,
    /// Tool-definition pinning: changed tool definitions are logged, counted and optionally
    /// blocked until accepted.
    #[serde(default)]
    pub tool_pinning: Option<crate::mcp::tool_registry::ToolPinningConfig>,
}

impl PoliciesConfig {
    /// The endpoint's settings over the service-wide ones: a policy set on the endpoint replaces
    /// the service-wide one as a whole.
    pub fn over(&self, defaults: &PoliciesConfig) -> PoliciesConfig {
        fn pick<T: Clone>(own: &Option<T>, default: &Option<T>) -> Option<T> {
            own.clone().or_else(|| default.clone())
        }
        PoliciesConfig {
            ip_filter: pick(&self.ip_filter, &defaults.ip_filter),
            cors: pick(&self.cors, &defaults.cors),
            origin: pick(&self.origin, &defaults.origin),
            limits: pick(&self.limits, &defaults.limits),
            auth: pick(&self.auth, &defaults.auth),
            oauth: pick(&self.oauth, &defaults.oauth),
            request_headers: pick(&self.request_headers, &defaults.request_headers),
            response_headers: pick(&self.response_headers, &defaults.response_headers),
            rate_limits: pick(&self.rate_limits, &defaults.rate_limits),
            concurrency: pick(&self.concurrency, &defaults.concurrency),
            mcp: pick(&self.mcp, &defaults.mcp),
            tools: pick(&self.tools, &defaults.tools),
            rules: pick(&self.rules, &defaults.rules),
            tool_pinning: pick(&self.tool_pinning, &defaults.tool_pinning),
        }
    }
}

/// Facts about the whole service that policies need when compiled.
pub struct ServiceFacts {
    /// Every listener binds a loopback address.
    pub loopback_listeners: bool,
    /// The gateway's public base URL (no trailing slash).
    pub public_url: String,
    /// The store of fleet-wide limits, when `redis:` is set.
    pub redis: Option<std::sync::Arc<redis_store::RedisStore>>,
    /// The sealer of pinned session ids.
    pub sealer: Option<crate::mcp::session_pin::Sealer>,
}

/// The compiled policies of one endpoint.
#[derive(Debug, Clone)]
pub struct Policies {
    ip_filter: ip_filter::IpFilter,
    /// CORS, when configured.
    pub cors: Option<cors::Cors>,
    origin: origin::OriginCheck,
    /// Size limits.
    pub limits: body_limit::Limits,
    /// Authentication, when configured.
    pub auth: Option<auth::Authenticator>,
    /// Protected-resource metadata, when configured.
    pub oauth: Option<oauth::OAuthMetadata>,
    /// Request header operations.
    pub request_headers: header_modifiers::HeaderModifiers,
    /// Response header operations.
    pub response_headers: header_modifiers::HeaderModifiers,
    /// Rate limits.
    pub rate_limits: rate_limit::RateLimits,
    /// Concurrency limits.
    pub concurrency: concurrency::ConcurrencyLimits,
    /// JSON-RPC inspection of POST bodies, when some setting needs it.
    pub inspection: Option<mcp_headers::Inspection>,
    /// Tool allow and deny lists.
    pub tools: Option<tools::ToolPolicy>,
    /// CEL rules.
    pub rules: cel::Rules,
    /// The endpoint's tools as seen in `tools/list` answers (labels, pinning).
    pub tool_registry: std::sync::Arc<crate::mcp::tool_registry::ToolRegistry>,
}

/// What the request-header policies decided.
pub enum Verdict {
    /// Go on to the upstream.
    Continue,
    /// A CORS preflight: answer 204 with these headers.
    Preflight(Vec<(http::HeaderName, http::HeaderValue)>),
    /// Refuse.
    Refuse(GatewayError),
}

/// Tool names written out in the config (no globs): always valid metric labels.
fn configured_tools(cfg: &PoliciesConfig) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if let Some(t) = &cfg.tools {
        names.extend(t.allow.iter().flatten().cloned());
        names.extend(t.deny.iter().cloned());
        for r in t.roles.values() {
            names.extend(r.allow.iter().chain(&r.deny).cloned());
        }
    }
    for l in cfg.rate_limits.iter().flatten() {
        names.extend(l.tools.iter().flatten().cloned());
    }
    if let Some(p) = &cfg.tool_pinning {
        names.extend(p.pinned.keys().cloned());
    }
    names.retain(|n| !n.contains(['*', '?']));
    names.sort();
    names.dedup();
    names
}

fn collect<T>(r: Result<T, Vec<Problem>>, problems: &mut Vec<Problem>) -> Option<T> {
    r.map_err(|mut p| problems.append(&mut p)).ok()
}

impl Policies {
    /// Compiles merged settings; `at` is the config path they came from (for errors).
    pub fn compile(
        cfg: &PoliciesConfig,
        facts: &ServiceFacts,
        (name, path): (&str, &str),
        at: &str,
    ) -> Result<Self, Vec<Problem>> {
        let mut p = Vec::new();
        let limit_cx = rate_limit::LimitContext {
            endpoint: name,
            redis: facts.redis.clone(),
        };
        let rate_limits = collect(
            rate_limit::RateLimits::compile(
                cfg.rate_limits.as_deref().unwrap_or(&[]),
                &limit_cx,
                &format!("{at}.rate_limits"),
            ),
            &mut p,
        );
        let inspection = collect(
            mcp_headers::Inspection::compile(
                &cfg.mcp.clone().unwrap_or_default(),
                &format!("{at}.mcp"),
            ),
            &mut p,
        );
        let rules = collect(
            cel::Rules::compile(cfg.rules.as_deref().unwrap_or(&[]), &format!("{at}.rules")),
            &mut p,
        );
        if let Some(tp) = &cfg.tool_pinning {
            p.extend(crate::mcp::tool_registry::check(
                tp,
                &format!("{at}.tool_pinning"),
            ));
        }
        let tools = match &cfg.tools {
            Some(t) => collect(
                tools::ToolPolicy::compile(t, &format!("{at}.tools")),
                &mut p,
            ),
            None => None,
        };
        let concurrency = collect(
            concurrency::ConcurrencyLimits::compile(
                cfg.concurrency.as_deref().unwrap_or(&[]),
                name,
                &format!("{at}.concurrency"),
            ),
            &mut p,
        );
        let resource = cfg
            .oauth
            .as_ref()
            .and_then(|o| o.resource.clone())
            .unwrap_or_else(|| format!("{}{path}", facts.public_url));
        let auth = match &cfg.auth {
            Some(a) => collect(
                auth::Authenticator::compile(a, &resource, &format!("{at}.auth")),
                &mut p,
            )
            .map(Some),
            None => Some(None),
        };
        let required_scopes = auth
            .as_ref()
            .and_then(|a| a.as_ref())
            .map(|a| a.required_scopes().to_vec())
            .unwrap_or_default();
        let oauth = match &cfg.oauth {
            Some(o) => collect(
                oauth::OAuthMetadata::compile(
                    o,
                    &facts.public_url,
                    path,
                    &required_scopes,
                    &format!("{at}.oauth"),
                ),
                &mut p,
            )
            .map(Some),
            None => Some(None),
        };
        let ip_filter = collect(
            ip_filter::IpFilter::compile(
                &cfg.ip_filter.clone().unwrap_or_default(),
                &format!("{at}.ip_filter"),
            ),
            &mut p,
        );
        let cors = match &cfg.cors {
            Some(c) => collect(cors::Cors::compile(c, &format!("{at}.cors")), &mut p).map(Some),
            None => Some(None),
        };
        let origin = collect(
            origin::OriginCheck::compile(
                &cfg.origin.clone().unwrap_or_default(),
                facts.loopback_listeners,
                &format!("{at}.origin"),
            ),
            &mut p,
        );
        let limits = collect(
            body_limit::Limits::compile(
                &cfg.limits.clone().unwrap_or_default(),
                &format!("{at}.limits"),
            ),
            &mut p,
        );
        let request_headers = collect(
            header_modifiers::HeaderModifiers::compile(
                cfg.request_headers.as_deref().unwrap_or(&[]),
                &format!("{at}.request_headers"),
            ),
            &mut p,
        );
        let response_headers = collect(
            header_modifiers::HeaderModifiers::compile(
                cfg.response_headers.as_deref().unwrap_or(&[]),
                &format!("{at}.response_headers"),
            ),
            &mut p,
        );
        match (
            ip_filter,
            cors,
            origin,
            limits,
            request_headers,
            response_headers,
            auth,
            oauth,
        ) {
            (
                Some(ip_filter),
                Some(cors),
                Some(origin),
                Some(limits),
                Some(request_headers),
                Some(response_headers),
                Some(auth),
                Some(oauth),
            ) if p.is_empty() => Ok(Policies {
                inspection: inspection.filter(|i| {
                    i.forced
                        || tools.is_some()
                        || rate_limits.as_ref().is_some_and(|r| r.per_tool())
                        || rules.as_ref().is_some_and(|r| r.uses_mcp)
                        || cfg.tool_pinning.is_some()
                }),
                // Keyed by the pinning settings only: a reload that changes the tool lists
                // keeps what was seen (labels, approved definitions).
                tool_registry: {
                    let registry = crate::policy::shared::shared(
                        format!("tools:{name}:{:?}", cfg.tool_pinning),
                        || {
                            crate::mcp::tool_registry::ToolRegistry::new(
                                cfg.tool_pinning.as_ref(),
                                configured_tools(cfg),
                            )
                        },
                    );
                    registry.configure(configured_tools(cfg));
                    registry
                },
                rules: rules.unwrap_or_default(),
                tools,
                rate_limits: rate_limits.unwrap_or_default(),
                concurrency: concurrency.unwrap_or_default(),
                ip_filter,
                cors,
                origin,
                limits,
                auth,
                oauth,
                request_headers,
                response_headers,
            }),
            _ => Err(p),
        }
    }

    /// The IP filter alone (for the public metadata documents).
    pub fn check_ip(&self, client: Option<IpAddr>) -> Result<(), GatewayError> {
        self.ip_filter.check(client)
    }

    /// Runs the request-header policies in their fixed order: IP filter, CORS preflight,
    /// Origin check, size limits. (Authentication follows, in the proxy.)
    pub fn check_request(&self, req: &RequestHeader, client: Option<IpAddr>) -> Verdict {
        if let Err(e) = self.ip_filter.check(client) {
            return Verdict::Refuse(e);
        }
        if let Some(cors) = &self.cors {
            if cors::Cors::is_preflight(req) {
                return match cors.preflight(req) {
                    cors::Preflight::Allowed(h) => Verdict::Preflight(h),
                    cors::Preflight::Refused => {
                        Verdict::Refuse(GatewayError::Forbidden("cors_not_allowed"))
                    }
                };
            }
        }
        let cors_allowed = |o: &str| self.cors.as_ref().is_some_and(|c| c.origin_allowed(o));
        if let Err(e) = self.origin.check(req, cors_allowed) {
            return Verdict::Refuse(e);
        }
        if let Err(e) = self.limits.check_request(req) {
            return Verdict::Refuse(e);
        }
        Verdict::Continue
    }

    /// Authenticates the request when the endpoint requires it: `Ok(None)` when it does not.
    pub async fn authenticate(
        &self,
        req: &RequestHeader,
    ) -> Result<Option<Arc<auth::identity::Identity>>, GatewayError> {
        let Some(authenticator) = &self.auth else {
            return Ok(None);
        };
        match authenticator.authenticate(req).await {
            Ok(identity) => Ok(Some(identity)),
            Err(e) => Err(self.refusal(authenticator, &e)),
        }
    }

    fn refusal(&self, a: &auth::Authenticator, e: &auth::identity::AuthError) -> GatewayError {
        use auth::identity::AuthError;
        let key_header = a
            .credential_header()
            .filter(|h| *h != http::header::AUTHORIZATION);
        let challenge = oauth::challenge(
            e,
            self.oauth.as_ref(),
            a.accepts_bearer(),
            a.basic_challenge().as_deref(),
            key_header.map(|h| h.as_str()),
            a.required_scopes(),
        );
        match e {
            AuthError::KeysUnavailable => GatewayError::AuthUnavailable,
            AuthError::InsufficientScope { .. } | AuthError::Forbidden => {
                GatewayError::InsufficientScope { challenge }
            }
            AuthError::Missing => GatewayError::Unauthorized {
                challenge,
                reason: "missing_credentials",
            },
            AuthError::Invalid(why) => GatewayError::Unauthorized {
                challenge,
                reason: why,
            },
        }
    }

    /// Rate limits, then concurrency limits: the counts the request holds and the quota to report,
    /// or the refusal.
    pub async fn check_limits(
        &self,
        facts: &limit_key::KeyFacts<'_>,
        stream: bool,
    ) -> Result<(concurrency::Held, Option<rate_limit::Quota>), GatewayError> {
        let quota = if self.rate_limits.is_empty() {
            None
        } else {
            self.rate_limits.check(facts).await?
        };
        let held = if self.concurrency.is_empty() {
            concurrency::Held::default()
        } else {
            self.concurrency.acquire(facts, stream)?
        };
        Ok((held, quota))
    }

    /// CORS headers for an answer to a request with `origin` (gateway-made or relayed).
    pub fn apply_cors(
        &self,
        req: &RequestHeader,
        resp: &mut ResponseHeader,
    ) -> pingora::Result<()> {
        match &self.cors {
            Some(cors) => {
                let origin = req
                    .headers
                    .get(http::header::ORIGIN)
                    .and_then(|v| v.to_str().ok());
                cors.apply(origin, resp)
            }
            None => Ok(()),
        }
    }
}

//! Authentication: JWT bearer tokens, API keys and HTTP Basic, and the identity they produce.
//! Which method applies is decided by what the request carries, never by a client's claim:
//! `Authorization: Bearer` goes to JWT (or to API keys when their header is `Authorization`),
//! `Authorization: Basic` to Basic, the API-key header to API keys.

pub mod api_key;
pub mod basic;
pub mod identity;
pub mod jwt;

use crate::config::Problem;
use identity::{AuthError, Identity};
use pingora::http::RequestHeader;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Authentication of an endpoint: any configured method may authenticate a request.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// JWT bearer tokens (JWKS URL, JWKS file or shared secret).
    #[serde(default)]
    pub jwt: Option<jwt::JwtConfig>,
    /// API keys, stored as SHA-256 hashes (`mcpgate hash-key`).
    #[serde(default)]
    pub api_keys: Option<api_key::ApiKeyConfig>,
    /// HTTP Basic with bcrypt-hashed passwords.
    #[serde(default)]
    pub basic: Option<basic::BasicAuthConfig>,
}

/// Bcrypt checks allowed at once (each takes a blocking thread for tens of milliseconds).
const BCRYPT_CONCURRENCY: usize = 4;

/// The compiled authentication of an endpoint.
#[derive(Clone)]
pub struct Authenticator {
    jwt: Option<Arc<jwt::JwtVerifier>>,
    api_keys: Option<api_key::ApiKeys>,
    basic: Option<Arc<basic::BasicAuth>>,
    bcrypt_slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("jwt", &self.jwt.is_some())
            .field("api_keys", &self.api_keys)
            .field("basic", &self.basic)
            .finish()
    }
}

impl Authenticator {
    /// Compiles `cfg` at `at`; `resource` is the endpoint's public resource URL (the JWT
    /// audience by default).
    pub fn compile(cfg: &AuthConfig, resource: &str, at: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        if cfg.jwt.is_none() && cfg.api_keys.is_none() && cfg.basic.is_none() {
            problems.push(Problem::new(
                at,
                "configure at least one of jwt, api_keys, basic",
            ));
        }
        let jwt = cfg.jwt.as_ref().and_then(|c| {
            jwt::JwtVerifier::new(c, Some(resource), &format!("{at}.jwt"))
                .map_err(|mut p| problems.append(&mut p))
                .ok()
                .map(Arc::new)
        });
        let api_keys = cfg.api_keys.as_ref().and_then(|c| {
            api_key::ApiKeys::new(c, &format!("{at}.api_keys"))
                .map_err(|mut p| problems.append(&mut p))
                .ok()
        });
        let basic = cfg.basic.as_ref().and_then(|c| {
            basic::BasicAuth::new(c, &format!("{at}.basic"))
                .map_err(|mut p| problems.append(&mut p))
                .ok()
                .map(Arc::new)
        });
        if let (Some(_), Some(keys)) = (&jwt, &api_keys) {
            if keys.header() == http::header::AUTHORIZATION {
                problems.push(Problem::new(
                    format!("{at}.api_keys.header"),
                    "Authorization carries JWT bearer tokens on this endpoint: read API keys from another header",
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Authenticator {
            jwt,
            api_keys,
            basic,
            bcrypt_slots: Arc::new(tokio::sync::Semaphore::new(BCRYPT_CONCURRENCY)),
        })
    }

    /// Authenticates a request.
    pub async fn authenticate(&self, req: &RequestHeader) -> Result<Arc<Identity>, AuthError> {
        let mut all = req.headers.get_all(http::header::AUTHORIZATION).iter();
        let authorization = all.next().map(|v| v.as_bytes());
        if all.next().is_some() {
            // Which one would count is ambiguous (and a proxy in between may pick another).
            return Err(AuthError::Invalid("repeated authorization header"));
        }
        if let Some(value) = authorization {
            if let Some(token) = strip_scheme(value, b"bearer ") {
                if let Some(keys) = self
                    .api_keys
                    .as_ref()
                    .filter(|k| k.header() == http::header::AUTHORIZATION)
                {
                    return keys.check(token);
                }
                if let Some(jwt) = &self.jwt {
                    let token = std::str::from_utf8(token)
                        .map_err(|_| AuthError::Invalid("malformed token"))?;
                    return jwt.verify(token.trim()).await;
                }
            } else if strip_scheme(value, b"basic ").is_some() {
                if let Some(basic) = &self.basic {
                    return self.check_basic(basic, value).await;
                }
            }
        }
        if let Some(keys) = self
            .api_keys
            .as_ref()
            .filter(|k| k.header() != http::header::AUTHORIZATION)
        {
            if req.headers.contains_key(keys.header()) {
                return keys.check_headers(&req.headers);
            }
        }
        if authorization.is_some() {
            return Err(AuthError::Invalid("unsupported authorization scheme"));
        }
        Err(AuthError::Missing)
    }

    async fn check_basic(
        &self,
        basic: &Arc<basic::BasicAuth>,
        value: &[u8],
    ) -> Result<Arc<Identity>, AuthError> {
        if let Some(cached) = basic.check_cached(value) {
            return cached.map(Arc::new);
        }
        // bcrypt is slow on purpose: run it on the blocking pool, a few at a time.
        let _slot = self
            .bcrypt_slots
            .acquire()
            .await
            .map_err(|_| AuthError::Invalid("shutting down"))?;
        let basic = basic.clone();
        let value = value.to_vec();
        tokio::task::spawn_blocking(move || basic.check(&value))
            .await
            .unwrap_or(Err(AuthError::Invalid("verification failed")))
            .map(Arc::new)
    }

    /// Request headers to set upstream from the identity (JWT `propagate_claims`).
    pub fn propagated_headers(
        &self,
        identity: &Identity,
    ) -> Vec<(http::HeaderName, http::HeaderValue)> {
        match &self.jwt {
            Some(jwt) if identity.method == identity::AuthMethod::Jwt => {
                jwt.propagated_headers(identity)
            }
            _ => Vec::new(),
        }
    }

    /// The upstream header names `propagate_claims` sets: client-sent values under these names
    /// are always dropped.
    pub fn propagated_header_names(&self) -> &[http::HeaderName] {
        self.jwt
            .as_ref()
            .map_or(&[], |j| j.propagated_header_names())
    }

    /// Headers that carry credentials to the gateway and are never forwarded (the API-key header).
    pub fn credential_header(&self) -> Option<&http::HeaderName> {
        self.api_keys.as_ref().map(|k| k.header())
    }

    /// The scopes the JWT method requires.
    pub fn required_scopes(&self) -> &[String] {
        self.jwt.as_ref().map_or(&[], |j| j.required_scopes())
    }

    /// The `WWW-Authenticate` challenges for a 401, besides the Bearer one.
    pub fn basic_challenge(&self) -> Option<String> {
        self.basic.as_ref().map(|b| b.challenge())
    }

    /// Whether bearer tokens (JWT) are accepted.
    pub fn accepts_bearer(&self) -> bool {
        self.jwt.is_some()
    }
}

fn strip_scheme<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    (value.len() >= scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme))
        .then(|| &value[scheme.len()..])
}

//! JWT bearer authentication: keys from a JWKS URL, a JWKS file or a shared secret; pinned
//! algorithms; `exp`/`nbf` with leeway, `iss`, `aud`; required roles and scopes; verified tokens
//! cached (by a SHA-256 of the token, until its `exp`) so a repeated token costs no signature
//! check; claims copied to upstream headers.
//!
//! Algorithm confusion is impossible by construction: HS* algorithms verify only with `secret`,
//! asymmetric ones only with JWKS keys, a key verifies only its own family (and curve), a JWKS
//! key's own `alg` must match the token's, and `alg: none` is never accepted.

#[path = "jwt_crypto.rs"]
mod crypto;
#[path = "jwks.rs"]
mod jwks;

/// Makes OpenSSL the process's `jsonwebtoken` backend. Verifiers do this themselves; code that
/// only signs tokens (tests, benchmarks) calls it first.
pub fn install_crypto_provider() {
    crypto::install();
}

use self::jwks::Keys;
use crate::config::{parse_duration, Problem};
use crate::policy::auth::identity::{AuthError, AuthMethod, Identity};
use http::{HeaderName, HeaderValue};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use pingora_memory_cache::MemoryCache;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest token accepted; longer ones are rejected before any parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_CACHE_SIZE: usize = 1_000_000;
const MAX_LEEWAY: Duration = Duration::from_secs(3600);

/// JWT settings of an endpoint. Exactly one key source: `jwks_url`, `jwks_file` or `secret`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// URL (`https://` or `http://`) of the identity provider's JSON Web Key Set, e.g.
    /// `https://idp.example.com/.well-known/jwks.json`. Fetched on first use, cached, refreshed in
    /// the background; redirects are not followed.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A local JSON Web Key Set file, read when the configuration is loaded.
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// Shared secret for HS256/HS384/HS512 tokens (its UTF-8 bytes; at least 32, 48 or 64 bytes
    /// for the strongest HS algorithm listed). Prefer `${ENV_VAR}` to writing it in the file.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The accepted algorithms (required): RS256, RS384, RS512, PS256, PS384, PS512, ES256,
    /// ES384, EdDSA (JWKS keys), or HS256, HS384, HS512 (`secret`). `none` is never accepted.
    pub algorithms: Vec<String>,
    /// The required `iss` (issuer) claim, e.g. `https://idp.example.com/`. Optional but
    /// recommended; when set, a token without `iss` is rejected.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values (one or a list); a token must name one of them. Default: the
    /// gateway's public resource URL.
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    /// Check `aud` (default true). Setting false is required to run without any audience.
    #[serde(default = "yes")]
    pub audience_check: bool,
    /// Clock skew tolerated on `exp` and `nbf` (default `30s`, at most `1h`).
    #[serde(default)]
    pub leeway: Option<String>,
    /// With `jwks_url`: time between background refreshes (default `5m`).
    #[serde(default)]
    pub refresh_interval: Option<String>,
    /// With `jwks_url`: least time between two fetches caused by requests (a token with an
    /// unknown `kid`), and between retries after a failure (default `30s`).
    #[serde(default)]
    pub min_refresh_interval: Option<String>,
    /// With `jwks_url`: time allowed for one fetch (default `5s`).
    #[serde(default)]
    pub jwks_timeout: Option<String>,
    /// Required roles (default none); see `roles_mode`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The claim holding the roles (a list, or a space-separated string), as a dotted path such
    /// as `realm_access.roles` (default `roles`). A claim whose name has dots is found too.
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// `any` (default): one of `roles` suffices; `all`: every one is needed. Missing: 403.
    #[serde(default)]
    pub roles_mode: Option<MatchMode>,
    /// Required scopes (default none), read from `scope` (space-separated) and `scp` (list or
    /// string). Missing: 403 `insufficient_scope`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `all` (default): every scope in `scopes` is needed; `any`: one suffices.
    #[serde(default)]
    pub scopes_mode: Option<MatchMode>,
    /// Claims copied to upstream request headers: claim path -> header name, e.g.
    /// `{sub: X-User, realm_access.roles: X-Roles}`. A string claim is sent as is, any other value
    /// as JSON; headers of these names sent by the client are always replaced or removed.
    #[serde(default)]
    pub propagate_claims: BTreeMap<String, String>,
    /// Verified tokens kept in memory (default 10000; 0 disables the cache). An entry never
    /// outlives its token's `exp`.
    #[serde(default)]
    pub cache_size: Option<usize>,
}

fn yes() -> bool {
    true
}

/// A secret string; `Debug` never shows it.
#[derive(Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One string or a list of strings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

/// How a list of required values is matched.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// At least one of them.
    Any,
    /// Every one of them.
    All,
}

impl MatchMode {
    fn satisfied(self, required: &[String], held: &[String]) -> bool {
        required.is_empty()
            || match self {
                MatchMode::Any => required.iter().any(|r| held.contains(r)),
                MatchMode::All => required.iter().all(|r| held.contains(r)),
            }
    }
}

const AUDIENCE_IGNORED: &str = "is ignored when audience_check is false: remove one";
const AUDIENCE_REQUIRED: &str =
    "required (there is no public URL to default to), or set audience_check: false";

/// The algorithms `algorithms` may list.
const NAMES: &str =
    "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512";

/// Minimum secret length for an HS algorithm (RFC 7518 section 3.2: the hash size).
fn hmac_min_len(alg: Algorithm) -> Option<usize> {
    match alg {
        Algorithm::HS256 => Some(32),
        Algorithm::HS384 => Some(48),
        Algorithm::HS512 => Some(64),
        _ => None,
    }
}

/// Headers a claim may never be copied to: they frame or route the request.
const RESERVED_HEADERS: &str = "host content-length content-type content-encoding \
    transfer-encoding connection keep-alive proxy-connection te trailer upgrade";

/// Compiled verifier; cheap to clone and share.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Keys,
    /// One validation per pinned algorithm (the library requires one key family per validation).
    checks: Vec<(Algorithm, Validation)>,
    roles: Vec<String>,
    roles_claim: String,
    roles_mode: MatchMode,
    scopes: Vec<String>,
    scopes_mode: MatchMode,
    propagate: Vec<(String, HeaderName)>,
    propagate_names: Vec<HeaderName>,
    cache: Option<MemoryCache<[u8; 32], Arc<Cached>>>,
    signature_checks: AtomicU64,
}

/// A verified token: its identity, until `exp`, for the key generation that verified it (a
/// changed JWKS re-verifies cached tokens, so a removed key stops working at once).
struct Cached {
    digest: [u8; 32],
    exp: u64,
    generation: u64,
    identity: Arc<Identity>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<Algorithm> = self.inner.checks.iter().map(|(a, _)| *a).collect();
        f.debug_struct("JwtVerifier")
            .field("algorithms", &algs)
            .field("roles", &self.inner.roles)
            .field("scopes", &self.inner.scopes)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Validates and compiles. `default_audience` is the gateway's public resource URL (used
    /// when `audience` is not set); `at` is the config path of this block (e.g.
    /// `endpoints[0].auth.jwt`) for every [`Problem`]. Lists every problem. No network I/O.
    pub fn new(
        cfg: &JwtConfig,
        default_audience: Option<&str>,
        at: &str,
    ) -> Result<Self, Vec<Problem>> {
        crypto::install();
        let mut p = Problems {
            at: at.to_string(),
            list: Vec::new(),
        };
        let mut algs: Vec<Algorithm> = Vec::new();
        if cfg.algorithms.is_empty() {
            p.add("algorithms", "required, e.g. [RS256]");
        }
        for (i, name) in cfg.algorithms.iter().enumerate() {
            let field = format!("algorithms[{i}]");
            match name.parse::<Algorithm>() {
                Ok(a) if !algs.contains(&a) => algs.push(a),
                Ok(_) => p.add(&field, format!("{name} is listed twice")),
                Err(_) if name.eq_ignore_ascii_case("none") => {
                    p.add(&field, "\"none\" (unsigned tokens) is never accepted")
                }
                Err(_) => p.add(&field, format!("unknown algorithm {name:?} (use {NAMES})")),
            }
        }
        let (hmac, asymmetric): (Vec<Algorithm>, Vec<Algorithm>) =
            algs.iter().partition(|a| hmac_min_len(**a).is_some());

        let leeway = match cfg.leeway.as_deref().map(parse_duration) {
            None => Duration::from_secs(30),
            Some(Ok(d)) if d <= MAX_LEEWAY => d,
            Some(Ok(_)) => p.add_default("leeway", "too long (at most 1h)", Duration::ZERO),
            Some(Err(e)) => p.add_default("leeway", e, Duration::ZERO),
        };
        let timings = (
            p.duration("jwks_timeout", &cfg.jwks_timeout, 5),
            p.duration("refresh_interval", &cfg.refresh_interval, 300),
            p.duration("min_refresh_interval", &cfg.min_refresh_interval, 30),
        );
        let sources = [
            cfg.jwks_url.is_some(),
            cfg.jwks_file.is_some(),
            cfg.secret.is_some(),
        ];
        let keys = match sources.iter().filter(|s| **s).count() {
            0 => p.fail("", "one of jwks_url, jwks_file or secret is required"),
            1 => Keys::compile(cfg, &hmac, &asymmetric, timings, &mut p),
            _ => p.fail("", "set only one of jwks_url, jwks_file, secret"),
        };
        if cfg.jwks_url.is_none() {
            let url_only = [
                ("refresh_interval", &cfg.refresh_interval),
                ("min_refresh_interval", &cfg.min_refresh_interval),
                ("jwks_timeout", &cfg.jwks_timeout),
            ];
            for (field, _) in url_only.iter().filter(|(_, v)| v.is_some()) {
                p.add(field, "applies only with jwks_url");
            }
        }

        if cfg.issuer.as_deref() == Some("") {
            p.add("issuer", "must not be empty");
        }
        let audience = match (&cfg.audience, cfg.audience_check) {
            (Some(_), false) => p.add_default("audience", AUDIENCE_IGNORED, Vec::new()),
            (None, false) => Vec::new(),
            (Some(OneOrMany::One(a)), true) => vec![a.clone()],
            (Some(OneOrMany::Many(a)), true) => a.clone(),
            (None, true) => default_audience
                .map(|a| vec![a.to_string()])
                .unwrap_or_default(),
        };
        if cfg.audience_check && audience.is_empty() {
            p.add("audience", AUDIENCE_REQUIRED);
        }
        if audience.iter().any(String::is_empty) {
            p.add("audience", "must not contain an empty value");
        }
        let roles_claim = cfg.roles_claim.clone().unwrap_or_else(|| "roles".into());
        if !valid_path(&roles_claim) {
            p.add("roles_claim", format!("invalid claim path {roles_claim:?}"));
        }
        for (i, _) in cfg.roles.iter().enumerate().filter(|(_, r)| r.is_empty()) {
            p.add(&format!("roles[{i}]"), "must not be empty");
        }
        for (i, s) in cfg.scopes.iter().enumerate() {
            if s.is_empty() || s.contains(char::is_whitespace) {
                let msg = format!("invalid scope {s:?} (one word)");
                p.add(&format!("scopes[{i}]"), msg);
            }
        }
        let mut propagate: Vec<(String, HeaderName)> = Vec::new();
        for (claim, header) in &cfg.propagate_claims {
            let field = format!("propagate_claims.{claim}");
            if !valid_path(claim) {
                p.add(&field, format!("invalid claim path {claim:?}"));
            }
            match HeaderName::from_bytes(header.as_bytes()) {
                Err(_) => p.add(&field, format!("invalid header name {header:?}")),
                Ok(h) if RESERVED_HEADERS.split_whitespace().any(|r| r == h.as_str()) => {
                    p.add(&field, format!("header {header:?} cannot carry a claim"))
                }
                Ok(h) if propagate.iter().any(|(_, x)| *x == h) => {
                    p.add(&field, format!("header {header:?} is used twice"))
                }
                Ok(h) => propagate.push((claim.clone(), h)),
            }
        }
        let cache_size = cfg.cache_size.unwrap_or(10_000);
        if cache_size > MAX_CACHE_SIZE {
            p.add("cache_size", format!("at most {MAX_CACHE_SIZE}"));
        }
        let keys = match keys {
            Some(k) if p.list.is_empty() => k,
            _ => return Err(p.list),
        };
        if cfg.issuer.is_none() {
            tracing::warn!(
                at,
                "JWT issuer not set: any issuer trusted by these keys is accepted"
            );
        }

        let mut required = vec!["exp", "sub"];
        required.extend(cfg.issuer.as_ref().map(|_| "iss"));
        required.extend(cfg.audience_check.then_some("aud"));
        let checks = algs
            .iter()
            .map(|a| {
                let mut v = Validation::new(*a);
                v.leeway = leeway.as_secs() + u64::from(leeway.subsec_nanos() > 0);
                v.validate_nbf = true;
                v.validate_aud = cfg.audience_check;
                if cfg.audience_check {
                    v.set_audience(&audience);
                }
                if let Some(iss) = &cfg.issuer {
                    v.set_issuer(&[iss]);
                }
                v.set_required_spec_claims(&required);
                (*a, v)
            })
            .collect();
        let propagate_names = propagate.iter().map(|(_, h)| h.clone()).collect();
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                keys,
                checks,
                roles: cfg.roles.clone(),
                roles_claim,
                roles_mode: cfg.roles_mode.unwrap_or(MatchMode::Any),
                scopes: cfg.scopes.clone(),
                scopes_mode: cfg.scopes_mode.unwrap_or(MatchMode::All),
                propagate,
                propagate_names,
                cache: (cache_size > 0).then(|| MemoryCache::new(cache_size)),
                signature_checks: AtomicU64::new(0),
            }),
        })
    }

    /// Verifies a bearer token (the raw token, without "Bearer "). Never logs or returns the
    /// token. A token verified before (and not expired) costs a hash and a cache lookup (the
    /// identity is shared, not copied).
    pub async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        let inner = &*self.inner;
        if token.is_empty() {
            return Err(AuthError::Invalid("malformed token"));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid("token too large"));
        }
        let digest = openssl::sha::sha256(token.as_bytes());
        let now = now_secs();
        if let Some(cache) = &inner.cache {
            if let (Some(hit), _) = cache.get(&digest) {
                if hit.digest == digest
                    && now < hit.exp
                    && hit.generation == inner.keys.generation()
                {
                    self.authorize(&hit.identity)?;
                    return Ok(hit.identity.clone());
                }
            }
        }
        let (identity, exp, generation) = self.verify_uncached(token).await?;
        let identity = Arc::new(identity);
        if let Some(cache) = &inner.cache {
            if exp > now {
                let entry = Cached {
                    digest,
                    exp,
                    generation,
                    identity: identity.clone(),
                };
                let ttl = Duration::from_secs(exp - now);
                cache.put(&digest, Arc::new(entry), Some(ttl));
            }
        }
        self.authorize(&identity)?;
        Ok(identity)
    }

    /// Headers to set upstream from the identity's claims, per `propagate_claims`. A string claim
    /// is sent as is, other values as JSON; a missing claim (or one that is not a valid header
    /// value) sends no header. Remove [`Self::propagated_header_names`] from the client's request
    /// first so that a client can never supply these headers itself.
    pub fn propagated_headers(&self, identity: &Identity) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(self.inner.propagate.len());
        for (path, name) in &self.inner.propagate {
            let text = match claim_at(&identity.claims, path) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            match HeaderValue::from_bytes(text.as_bytes()) {
                Ok(v) => out.push((name.clone(), v)),
                Err(_) => {
                    tracing::debug!(header = %name, "claim not copied: not a valid header value")
                }
            }
        }
        out
    }

    /// Every header name `propagate_claims` writes (to strip from client requests).
    pub fn propagated_header_names(&self) -> &[HeaderName] {
        &self.inner.propagate_names
    }

    /// The scopes this verifier requires (for `WWW-Authenticate` `scope=` and OAuth metadata
    /// `scopes_supported`).
    pub fn required_scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    /// Signature verifications performed so far (cache hits perform none).
    pub fn signature_checks(&self) -> u64 {
        self.inner.signature_checks.load(Ordering::Relaxed)
    }

    /// JWKS fetch attempts so far (0 unless the keys come from `jwks_url`).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.keys.fetches()
    }

    fn authorize(&self, id: &Identity) -> Result<(), AuthError> {
        let inner = &*self.inner;
        if !inner.scopes_mode.satisfied(&inner.scopes, &id.scopes) {
            return Err(AuthError::InsufficientScope {
                required: inner.scopes.clone(),
            });
        }
        if !inner.roles_mode.satisfied(&inner.roles, &id.roles) {
            return Err(AuthError::Forbidden);
        }
        Ok(())
    }

    /// Signature and claims; returns the identity, `exp` and the key generation used.
    async fn verify_uncached(&self, token: &str) -> Result<(Identity, u64, u64), AuthError> {
        let inner = &*self.inner;
        if crypto::names_crit(token) {
            return Err(AuthError::Invalid(
                "critical header parameter not understood",
            ));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&e))?;
        let validation = inner
            .checks
            .iter()
            .find(|(a, _)| *a == header.alg)
            .map(|(_, v)| v)
            .ok_or(AuthError::Invalid("algorithm not allowed"))?;
        let checks = &inner.signature_checks;
        let (claims, generation) = inner
            .keys
            .verify_with(header.kid.as_deref(), header.alg, |key| {
                checks.fetch_add(1, Ordering::Relaxed);
                match jsonwebtoken::decode::<Value>(token, key, validation) {
                    Ok(data) if data.claims.is_object() => Ok(Some(data.claims)),
                    Ok(_) => Err(AuthError::Invalid("malformed token")),
                    Err(e) if *e.kind() == ErrorKind::InvalidSignature => Ok(None),
                    Err(e) => Err(invalid(&e)),
                }
            })
            .await?;
        let subject = match claims.get("sub") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(AuthError::Invalid("missing claim")),
        };
        let exp = match claims.get("exp") {
            Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
            _ => None,
        }
        .ok_or(AuthError::Invalid("malformed claim"))?;
        let roles = strings(claim_at(&claims, &inner.roles_claim));
        let mut scopes = strings(claims.get("scope"));
        for s in strings(claims.get("scp")) {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        let identity = Identity {
            method: AuthMethod::Jwt,
            subject,
            roles,
            scopes,
            claims,
        };
        Ok((identity, exp, generation))
    }
}

/// The problems of one config block, each under its path.
struct Problems {
    at: String,
    list: Vec<Problem>,
}

impl Problems {
    /// Records a problem at `field` of the block (the block itself when empty).
    fn add(&mut self, field: &str, msg: impl Into<String>) {
        let path = match field {
            "" => self.at.clone(),
            _ => format!("{}.{field}", self.at),
        };
        self.list.push(Problem::new(path, msg));
    }

    /// Records a problem; nothing compiled.
    fn fail<T>(&mut self, field: &str, msg: impl Into<String>) -> Option<T> {
        self.add(field, msg);
        None
    }

    /// Records a problem; `value` stands in.
    fn add_default<T>(&mut self, field: &str, msg: impl Into<String>, value: T) -> T {
        self.add(field, msg);
        value
    }

    /// A duration setting longer than zero, else `default_secs`.
    fn duration(&mut self, field: &str, v: &Option<String>, default_secs: u64) -> Duration {
        match v.as_deref().map(parse_duration) {
            None => Duration::from_secs(default_secs),
            Some(Ok(d)) if !d.is_zero() => d,
            Some(Ok(_)) => self.add_default(field, "must be longer than zero", Duration::ZERO),
            Some(Err(e)) => self.add_default(field, e, Duration::ZERO),
        }
    }
}

/// A dotted claim path: no empty segment.
fn valid_path(path: &str) -> bool {
    !path.split('.').any(str::is_empty)
}

/// The short fixed reason for a verification failure.
fn invalid(e: &jsonwebtoken::errors::Error) -> AuthError {
    AuthError::Invalid(match e.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::MissingRequiredClaim(_) => "missing claim",
        ErrorKind::InvalidClaimFormat(_) => "malformed claim",
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => "algorithm not allowed",
        ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey => "key does not fit the algorithm",
        _ => "malformed token",
    })
}

/// A claim by dotted path (`realm_access.roles`); a name containing dots is matched whole first.
fn claim_at<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    let obj = claims.as_object()?;
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    path.match_indices('.').find_map(|(i, _)| {
        obj.get(&path[..i])
            .and_then(|inner| claim_at(inner, &path[i + 1..]))
    })
}

/// A list of strings, or a space-separated string, as strings.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;

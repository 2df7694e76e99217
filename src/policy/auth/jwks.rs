//! Where a JWT verifier's keys come from (a shared secret, a JWKS file, a JWKS URL) and which
//! of them may verify a token. A JWKS URL is fetched lazily, refreshed in the background and on
//! demand (rate limited), and keeps its last good keys when a refresh fails.

use super::crypto::ec_public_key;
use super::{hmac_min_len, JwtConfig, Problems};
use crate::policy::auth::identity::AuthError;
use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use openssl::nid::Nid;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use url::Url;

/// Largest JWKS document accepted, from a file or the network.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Keys kept from one set; a token without `kid` is tried against each fitting key.
const MAX_KEYS: usize = 64;
/// Smallest RSA modulus accepted (RFC 7518 section 3.3).
const MIN_RSA_BITS: usize = 2048;

/// What a key can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn verifies(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (KeyKind::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (KeyKind::P256, ES256)
                | (KeyKind::P384, ES384)
                | (KeyKind::Ed25519, EdDSA)
        )
    }
}

/// One public verification key of a set.
pub(super) struct Key {
    kid: Option<String>,
    /// The key's own `alg`; when present, a token must use exactly that algorithm.
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: DecodingKey,
}

impl Key {
    fn fits(&self, alg: Algorithm) -> bool {
        self.kind.verifies(alg) && self.alg.is_none_or(|own| own == alg)
    }
}

/// A parsed set of public signing keys.
pub(super) struct KeySet {
    keys: Vec<Key>,
    /// Changes whenever a fetch brings different content (0: a local file).
    pub(super) generation: u64,
    digest: [u8; 32],
}

impl KeySet {
    /// Parses a JWK Set (`{"keys": [...]}`) or a single JWK. Keys that cannot verify signatures
    /// (encryption keys, symmetric keys, unsupported curves, RSA under 2048 bits) are skipped and
    /// described in the second value; a set left with no key is an error.
    fn parse(bytes: &[u8]) -> Result<(KeySet, Vec<String>), String> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let items = match doc {
            Value::Object(mut o) if o.contains_key("keys") => match o.remove("keys") {
                Some(Value::Array(items)) => items,
                _ => return Err("\"keys\" is not a list".into()),
            },
            Value::Object(o) if o.contains_key("kty") => vec![Value::Object(o)],
            _ => return Err("not a JWK Set (expected {\"keys\": [...]})".into()),
        };
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            if keys.len() == MAX_KEYS {
                skipped.push(format!(
                    "keys after the first {MAX_KEYS} usable ones are ignored"
                ));
                break;
            }
            match parse_key(item) {
                Ok(k) => keys.push(k),
                Err(why) => skipped.push(format!("keys[{i}]: {why}")),
            }
        }
        if keys.is_empty() {
            let why = if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", skipped.join("; "))
            };
            return Err(format!("no usable signing key{why}"));
        }
        let digest = openssl::sha::sha256(bytes);
        Ok((
            KeySet {
                keys,
                generation: 0,
                digest,
            },
            skipped,
        ))
    }

    /// Tries the keys that may have signed a token with this `kid` and `alg`: with a `kid`,
    /// that `kid`'s keys; without, every key that fits `alg`.
    fn try_keys<F>(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        verify: &mut F,
    ) -> Result<Value, AuthError>
    where
        F: FnMut(&DecodingKey) -> Result<Option<Value>, AuthError>,
    {
        let mut named = self
            .keys
            .iter()
            .filter(|k| kid.is_none_or(|id| k.kid.as_deref() == Some(id)))
            .peekable();
        if named.peek().is_none() {
            return Err(AuthError::Invalid(UNKNOWN_KEY));
        }
        let mut fitting = named.filter(|k| k.fits(alg)).map(|k| &k.key).peekable();
        match (fitting.peek(), kid) {
            (Some(_), _) => try_keys(fitting, verify),
            (None, Some(_)) => Err(AuthError::Invalid("key does not fit the algorithm")),
            (None, None) => Err(AuthError::Invalid(UNKNOWN_KEY)),
        }
    }
}

/// A verifier's key source.
pub(super) enum Keys {
    /// HS* only.
    Secret(DecodingKey),
    /// Asymmetric keys read at load.
    File(KeySet),
    /// Asymmetric keys fetched from a URL.
    Remote(Arc<RemoteJwks>),
}

/// `jwks_url` fetch timings: timeout, refresh interval, least interval between on-demand fetches.
pub(super) type Timings = (Duration, Duration, Duration);

const UNKNOWN_KEY: &str = "unknown key";

impl Keys {
    /// Compiles the one key source `cfg` sets; `hmac` and `asymmetric` are the pinned algorithms.
    pub(super) fn compile(
        cfg: &JwtConfig,
        hmac: &[Algorithm],
        asymmetric: &[Algorithm],
        timings: Timings,
        p: &mut Problems,
    ) -> Option<Keys> {
        if let Some(secret) = &cfg.secret {
            for a in asymmetric {
                p.add(
                    "algorithms",
                    format!("{a:?} needs jwks_url or jwks_file, not secret"),
                );
            }
            let need = hmac
                .iter()
                .filter_map(|a| hmac_min_len(*a))
                .max()
                .unwrap_or(32);
            if secret.0.len() < need {
                let msg = format!(
                    "too short: {} bytes, at least {need} needed",
                    secret.0.len()
                );
                return p.fail("secret", msg);
            }
            return Some(Keys::Secret(DecodingKey::from_secret(secret.0.as_bytes())));
        }
        for a in hmac {
            p.add(
                "algorithms",
                format!("{a:?} needs secret (JWKS keys are asymmetric only)"),
            );
        }
        if let Some(file) = &cfg.jwks_file {
            let parsed = std::fs::read(file)
                .map_err(|e| format!("cannot read {file:?}: {e}"))
                .and_then(|b| KeySet::parse(&b).map_err(|e| format!("{file:?}: {e}")));
            let (set, skipped) = parsed.map_err(|e| p.add("jwks_file", e)).ok()?;
            for why in skipped {
                tracing::warn!(file = %file, "JWKS key skipped: {why}");
            }
            if !asymmetric
                .iter()
                .any(|a| set.keys.iter().any(|k| k.fits(*a)))
            {
                p.add(
                    "jwks_file",
                    format!("no key in {file:?} verifies a listed algorithm"),
                );
            }
            return Some(Keys::File(set));
        }
        let raw = cfg.jwks_url.as_deref().unwrap_or_default();
        let url = match Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            Ok(u) => {
                return p.fail(
                    "jwks_url",
                    format!("scheme {:?} is not http or https", u.scheme()),
                )
            }
            Err(e) => return p.fail("jwks_url", format!("invalid URL: {e}")),
        };
        let loopback = matches!(url.host(), Some(url::Host::Ipv4(a)) if a.is_loopback())
            || url.host_str() == Some("localhost");
        if url.scheme() == "http" && !loopback {
            tracing::warn!(at = %p.at, "jwks_url uses plain http: keys could be tampered with in transit");
        }
        // One cache per URL and timings, kept across reloads (the keys are not fetched again).
        let key = format!("jwks:{url}:{timings:?}");
        match crate::policy::shared::shared_try(key, || RemoteJwks::new(url, timings)) {
            Ok(r) => Some(Keys::Remote(r)),
            Err(e) => p.fail("jwks_url", e),
        }
    }

    /// The generation of the current keys: a cached verification of another generation is
    /// redone (0 for keys that never change).
    pub(super) fn generation(&self) -> u64 {
        match self {
            Keys::Remote(r) => r.current.load().as_ref().map_or(0, |s| s.generation),
            Keys::Secret(_) | Keys::File(_) => 0,
        }
    }

    /// JWKS fetch attempts so far.
    pub(super) fn fetches(&self) -> u64 {
        match self {
            Keys::Remote(r) => r.fetches.load(Ordering::Relaxed),
            Keys::Secret(_) | Keys::File(_) => 0,
        }
    }

    /// Runs `verify` with each key that may have signed a token with this `kid` and `alg` until
    /// one accepts the signature (`verify` gives `Ok(None)` for a bad signature). An unknown
    /// `kid` with a JWKS URL refreshes the keys once (rate limited) and tries again. Returns the
    /// claims and the key generation.
    pub(super) async fn verify_with<F>(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        mut verify: F,
    ) -> Result<(Value, u64), AuthError>
    where
        F: FnMut(&DecodingKey) -> Result<Option<Value>, AuthError>,
    {
        match self {
            Keys::Secret(key) => Ok((try_keys([key], &mut verify)?, 0)),
            Keys::File(set) => Ok((set.try_keys(kid, alg, &mut verify)?, 0)),
            Keys::Remote(remote) => {
                let set = remote.keys().await.ok_or(AuthError::KeysUnavailable)?;
                match set.try_keys(kid, alg, &mut verify) {
                    Err(AuthError::Invalid(UNKNOWN_KEY)) => {
                        let newer = remote.refresh_if_stale(set.generation).await;
                        let newer = newer.ok_or(AuthError::KeysUnavailable)?;
                        Ok((newer.try_keys(kid, alg, &mut verify)?, newer.generation))
                    }
                    other => Ok((other?, set.generation)),
                }
            }
        }
    }
}

fn try_keys<'a, F>(
    keys: impl IntoIterator<Item = &'a DecodingKey>,
    verify: &mut F,
) -> Result<Value, AuthError>
where
    F: FnMut(&DecodingKey) -> Result<Option<Value>, AuthError>,
{
    for key in keys {
        if let Some(claims) = verify(key)? {
            return Ok(claims);
        }
    }
    Err(AuthError::Invalid("bad signature"))
}

fn parse_key(item: Value) -> Result<Key, String> {
    let jwk: Jwk = serde_json::from_value(item).map_err(|e| format!("invalid JWK: {e}"))?;
    if let Some(u) = &jwk.common.public_key_use {
        if *u != PublicKeyUse::Signature {
            return Err("not a signing key (\"use\" is not \"sig\")".into());
        }
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err("\"key_ops\" does not allow \"verify\"".into());
        }
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(ka) => Some(
            Algorithm::try_from(ka)
                .map_err(|_| format!("\"alg\" {ka} is not a signature algorithm"))?,
        ),
    };
    let bad = |what: &str| format!("invalid {what} key");
    let (kind, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let key = DecodingKey::from_rsa_components(&p.n, &p.e).map_err(|_| bad("RSA"))?;
            let bits = match key.kind() {
                DecodingKeyKind::RsaModulusExponent { n, .. } => modulus_bits(n),
                DecodingKeyKind::SecretOrDer(_) => 0,
            };
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits (at least {MIN_RSA_BITS} needed)"
                ));
            }
            (KeyKind::Rsa, key)
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (kind, nid) = match p.curve {
                EllipticCurve::P256 => (KeyKind::P256, Nid::X9_62_PRIME256V1),
                EllipticCurve::P384 => (KeyKind::P384, Nid::SECP384R1),
                ref other => return Err(format!("unsupported curve {other:?}")),
            };
            let key = DecodingKey::from_ec_components(&p.x, &p.y).map_err(|_| bad("EC"))?;
            let point = key.try_get_as_bytes().map_err(|_| bad("EC"))?;
            ec_public_key(nid, point).map_err(|_| format!("{}: not on its curve", bad("EC")))?;
            (kind, key)
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err(format!("unsupported curve {:?}", p.curve));
            }
            let key = DecodingKey::from_ed_components(&p.x).map_err(|_| bad("Ed25519"))?;
            if key.try_get_as_bytes().map(<[u8]>::len).ok() != Some(32) {
                return Err(bad("Ed25519"));
            }
            (KeyKind::Ed25519, key)
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "symmetric keys (kty \"oct\") are not taken from a JWKS; use `secret`".into(),
            )
        }
        _ => return Err("unsupported key type".into()),
    };
    if let Some(a) = alg {
        if !kind.verifies(a) {
            return Err(format!("its \"alg\" {a:?} does not fit its key type"));
        }
    }
    Ok(Key {
        kid: jwk.common.key_id,
        alg,
        kind,
        key,
    })
}

fn modulus_bits(n: &[u8]) -> usize {
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    match n.first() {
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// A JWKS at a URL: fetched on first use, refreshed in the background every `refresh_interval`,
/// and on demand (an unknown `kid`) at most once per `min_refresh_interval`. Requests read the
/// current keys without a lock; a failed fetch keeps the last good keys.
pub(super) struct RemoteJwks {
    url: Url,
    /// The URL without credentials, query or fragment, for logs.
    shown: String,
    client: reqwest::Client,
    timeout: Duration,
    refresh_interval: Duration,
    min_refresh_interval: Duration,
    current: ArcSwapOption<KeySet>,
    fetch: tokio::sync::Mutex<FetchState>,
    background: AtomicBool,
    fetches: AtomicU64,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
    /// The last fetch caused by a key missing from a set we had.
    last_on_demand: Option<Instant>,
    generation: u64,
}

impl RemoteJwks {
    /// No I/O: the keys are fetched on first use.
    fn new(url: Url, timings: Timings) -> Result<Self, String> {
        let (timeout, refresh_interval, min_refresh_interval) = timings;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Fetches are rare; a fresh connection each time also keeps no connection tied to
            // the runtime that happened to open it.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("mcpgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        shown.set_query(None);
        shown.set_fragment(None);
        Ok(Self {
            url,
            shown: shown.to_string(),
            client,
            timeout,
            refresh_interval,
            min_refresh_interval,
            current: ArcSwapOption::empty(),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            background: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
        })
    }

    /// The current keys; the first call fetches them (and starts the background refresh).
    /// `None` when no fetch has ever succeeded.
    async fn keys(self: &Arc<Self>) -> Option<Arc<KeySet>> {
        if let Some(set) = self.current.load_full() {
            return Some(set);
        }
        self.start_background();
        let mut st = self.fetch.lock().await;
        // Unless another request fetched while we waited, or a fetch failed moments ago.
        let recent = self.recent(st.last_attempt);
        if st.generation == 0 && !recent {
            self.fetch_locked(&mut st).await;
        }
        self.current.load_full()
    }

    /// Fetches now because the keys of generation `seen` lack a token's key, unless another
    /// request already brought newer keys or such a fetch happened less than
    /// `min_refresh_interval` ago. Returns the keys current afterwards.
    async fn refresh_if_stale(&self, seen: u64) -> Option<Arc<KeySet>> {
        let mut st = self.fetch.lock().await;
        if st.generation == seen && !self.recent(st.last_on_demand) {
            st.last_on_demand = Some(Instant::now());
            self.fetch_locked(&mut st).await;
        }
        self.current.load_full()
    }

    fn recent(&self, at: Option<Instant>) -> bool {
        at.is_some_and(|t| t.elapsed() < self.min_refresh_interval)
    }

    fn start_background(self: &Arc<Self>) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(background_refresh(Arc::downgrade(self)));
            }
            Err(_) => self.background.store(false, Ordering::Release),
        }
    }

    async fn fetch_locked(&self, st: &mut FetchState) {
        st.last_attempt = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = match tokio::time::timeout(self.timeout, self.download()).await {
            Ok(r) => r.and_then(|body| KeySet::parse(&body)),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        match result {
            Ok((mut set, skipped)) => {
                st.last_success = Some(Instant::now());
                let old = self.current.load();
                if old.as_ref().is_some_and(|o| o.digest == set.digest) {
                    tracing::debug!(url = %self.shown, "JWKS refreshed, unchanged");
                    return;
                }
                st.generation += 1;
                set.generation = st.generation;
                for why in &skipped {
                    tracing::warn!(url = %self.shown, "JWKS key skipped: {why}");
                }
                tracing::info!(url = %self.shown, keys = set.keys.len(), "JWKS loaded");
                self.current.store(Some(Arc::new(set)));
            }
            Err(e) if self.current.load().is_some() => {
                tracing::warn!(url = %self.shown, error = %e, "JWKS refresh failed; keeping the last good keys");
            }
            Err(e) => {
                tracing::warn!(url = %self.shown, error = %e, "JWKS fetch failed; no keys yet");
            }
        }
    }

    async fn download(&self) -> Result<Vec<u8>, String> {
        let mut resp = self
            .client
            .get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(describe)?;
        if !resp.status().is_success() {
            return Err(format!("HTTP status {}", resp.status().as_u16()));
        }
        let too_big = || format!("answer larger than {MAX_JWKS_BYTES} bytes");
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(describe)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A reqwest error without its URL (which may carry credentials), with its causes.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// Refreshes the keys every `refresh_interval` (retrying every `min_refresh_interval` while no
/// fetch has succeeded) until the verifier is dropped.
async fn background_refresh(jwks: Weak<RemoteJwks>) {
    loop {
        let wait = {
            let Some(j) = jwks.upgrade() else { return };
            let st = j.fetch.lock().await;
            // After a failure, retry every `min_refresh_interval`.
            let due = match (st.last_success, st.last_attempt) {
                (Some(ok), Some(tried)) => {
                    (ok + j.refresh_interval).max(tried + j.min_refresh_interval)
                }
                (None, Some(tried)) => tried + j.min_refresh_interval,
                (_, None) => Instant::now() + j.min_refresh_interval,
            };
            due.saturating_duration_since(Instant::now())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
            continue;
        }
        let Some(j) = jwks.upgrade() else { return };
        let mut st = j.fetch.lock().await;
        j.fetch_locked(&mut st).await;
    }
}

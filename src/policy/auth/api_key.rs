//! API keys. Clients present a secret key in a configured header; the config holds only the
//! SHA-256 of each key (`mcpgate hash-key` prints it), so a leaked config reveals no key.
//! A presented key is hashed and compared against every configured hash in constant time.

use crate::config::Problem;
use crate::policy::auth::identity::{AuthError, AuthMethod, Identity};
use base64::Engine as _;
use http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Prefix of the keys made by [`generate_key`], so secret scanners can recognise them.
pub const KEY_PREFIX: &str = "mcpk_";

/// Headers that can never carry an API key: framing, routing and hop-by-hop headers.
const FORBIDDEN_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const BAD_NAME: &str = "must be non-empty, without control characters";
const BAD_HASH: &str = "expected 64 hex digits (the SHA-256 of the key, see `mcpgate hash-key`)";
const EMPTY_KEY: &str = "this is the SHA-256 of the empty key";
const UNKNOWN: AuthError = AuthError::Invalid("unknown api key");

/// API-key authentication.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The request header that carries the key, case-insensitive (default `X-API-Key`). With
    /// `Authorization` the key is read from `Authorization: Bearer <key>`, and a request with
    /// another scheme counts as presenting no key.
    #[serde(default = "default_header")]
    pub header: String,
    /// The accepted keys (at least one).
    pub keys: Vec<ApiKeyEntry>,
}

/// One accepted API key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// A unique name for the key: the identity's subject, shown in logs and metrics.
    pub name: String,
    /// The SHA-256 of the key as 64 hex digits, as printed by `mcpgate hash-key`.
    pub sha256: String,
    /// Roles granted to requests with this key, for later policies.
    #[serde(default)]
    pub roles: Vec<String>,
}

fn default_header() -> String {
    "X-API-Key".to_owned()
}

/// Compiled API keys: what a request is checked against.
#[derive(Clone)]
pub struct ApiKeys {
    header: HeaderName,
    bearer: bool,
    digests: Vec<[u8; 32]>,
    identities: Vec<Arc<Identity>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.identities.iter().map(|i| i.subject.as_str()).collect();
        f.debug_struct("ApiKeys")
            .field("header", &self.header)
            .field("keys", &names)
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Validates `cfg` (found at config path `at`, e.g. `endpoints[0].auth.api_keys`) and
    /// compiles it. Every problem is reported with its path: a bad or forbidden header name, no
    /// keys, empty or duplicate names, hashes that are not 64 hex digits, duplicate hashes, the
    /// hash of the empty key, empty roles.
    pub fn new(cfg: &ApiKeyConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut report = |field: &str, message: String| {
            let path = format!("{at}.{field}");
            problems.push(Problem::new(path.trim_matches('.'), message));
        };
        let header = HeaderName::from_bytes(cfg.header.as_bytes()).ok();
        match &header {
            None => report("header", format!("{:?} is not a header name", cfg.header)),
            Some(h) if FORBIDDEN_HEADERS.contains(&h.as_str()) => {
                report("header", format!("{h} cannot carry an API key"))
            }
            Some(_) => {}
        }
        if cfg.keys.is_empty() {
            report("keys", "at least one key is needed".into());
        }
        let empty_key: [u8; 32] = Sha256::digest(b"").into();
        let mut digests: Vec<Option<[u8; 32]>> = Vec::with_capacity(cfg.keys.len());
        let mut identities: Vec<Arc<Identity>> = Vec::with_capacity(cfg.keys.len());
        for (i, key) in cfg.keys.iter().enumerate() {
            let (name, here) = (&key.name, |field: &str| format!("keys[{i}].{field}"));
            if name.is_empty() || name.contains(char::is_control) {
                report(&here("name"), BAD_NAME.into());
            } else if let Some(j) = identities.iter().position(|id| id.subject == *name) {
                report(
                    &here("name"),
                    format!("duplicate name {name:?} (also keys[{j}])"),
                );
            }
            let digest = parse_digest(&key.sha256);
            match digest {
                None => report(&here("sha256"), BAD_HASH.into()),
                Some(d) if d == empty_key => report(&here("sha256"), EMPTY_KEY.into()),
                Some(d) => {
                    if let Some(j) = digests.iter().position(|o| *o == Some(d)) {
                        report(&here("sha256"), format!("the same key as keys[{j}]"));
                    }
                }
            }
            for (r, _) in key.roles.iter().enumerate().filter(|(_, r)| r.is_empty()) {
                report(&here(&format!("roles[{r}]")), "empty role".into());
            }
            digests.push(digest);
            identities.push(Arc::new(Identity {
                method: AuthMethod::ApiKey,
                subject: key.name.clone(),
                roles: key.roles.clone(),
                scopes: Vec::new(),
                claims: serde_json::Value::Null,
            }));
        }
        match header {
            Some(header) if problems.is_empty() => Ok(Self {
                bearer: header == AUTHORIZATION,
                header,
                digests: digests.into_iter().flatten().collect(),
                identities,
            }),
            _ => Err(problems),
        }
    }

    /// The configured header name (lowercase).
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Finds the key in `headers` and checks it. `Err(Missing)` when the header is absent (or,
    /// for `Authorization`, carries a scheme other than `Bearer`); `Err(Invalid)` when it is
    /// repeated or the key is unknown.
    pub fn check_headers(&self, headers: &HeaderMap) -> Result<Arc<Identity>, AuthError> {
        let mut values = headers.get_all(&self.header).iter();
        let value = values.next().ok_or(AuthError::Missing)?;
        if values.next().is_some() {
            return Err(AuthError::Invalid("repeated api key header"));
        }
        let bytes = value.as_bytes();
        if !self.bearer {
            return self.check(bytes);
        }
        match bytes.iter().position(|b| *b == b' ') {
            Some(n) if bytes[..n].eq_ignore_ascii_case(b"bearer") => {
                self.check(bytes[n..].trim_ascii_start())
            }
            _ => Err(AuthError::Missing),
        }
    }

    /// Checks a presented key: hashes it with SHA-256 and compares the hash with every
    /// configured hash in constant time, with no early exit, so neither which key matched nor
    /// how many bytes did can be learned from timing.
    pub fn check(&self, presented: &[u8]) -> Result<Arc<Identity>, AuthError> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let (mut found, mut index) = (Choice::from(0), 0u64);
        for (i, known) in (0u64..).zip(&self.digests) {
            // The OR of the XORs is zero only when equal; every byte of every key is visited.
            let pairs = known.iter().zip(&digest);
            let equal = pairs.fold(0u8, |acc, (k, d)| acc | (k ^ d)).ct_eq(&0);
            index.conditional_assign(&i, equal);
            found |= equal;
        }
        let index = usize::try_from(index).ok().filter(|_| bool::from(found));
        index
            .and_then(|i| self.identities.get(i))
            .cloned()
            .ok_or(UNKNOWN)
    }
}

/// What `mcpgate hash-key` prints: the lowercase hex SHA-256 of `key`.
pub fn hash_key(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// A new random key for operators: [`KEY_PREFIX`] followed by 32 bytes from the operating
/// system's CSPRNG (`getrandom`) in unpadded base64url, 48 characters in all. Fails only when
/// the operating system cannot provide randomness.
pub fn generate_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let mut key = String::with_capacity(KEY_PREFIX.len() + 43);
    key.push_str(KEY_PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut key);
    Ok(key)
}

/// 64 hex digits (either case) to 32 bytes.
fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const AT: &str = "endpoints[0].auth.api_keys";

    fn entry(name: &str, key: &str, roles: &[&str]) -> ApiKeyEntry {
        let roles = roles.iter().map(|r| r.to_string()).collect();
        let (name, sha256) = (name.to_string(), hash_key(key));
        ApiKeyEntry {
            name,
            sha256,
            roles,
        }
    }

    fn config(header: &str, keys: Vec<ApiKeyEntry>) -> ApiKeyConfig {
        let header = header.to_string();
        ApiKeyConfig { header, keys }
    }

    fn keys(header: &str) -> ApiKeys {
        let entries = vec![
            entry("ci", "secret-one", &["deploy"]),
            entry("bot", "k2", &[]),
        ];
        ApiKeys::new(&config(header, entries), AT).expect("valid config")
    }

    fn subject(result: Result<Arc<Identity>, AuthError>) -> String {
        result.map_or_else(|e| e.to_string(), |id| id.subject.clone())
    }

    #[test]
    fn hashes_known_vectors() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(hash_key(""), empty);
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hash_key("abc"), abc);
        assert_eq!(parse_digest(abc), parse_digest(&abc.to_uppercase()));
    }

    #[test]
    fn accepts_the_right_key_and_nothing_else() {
        let k = keys("X-API-Key");
        let id = k.check(b"secret-one").expect("known key");
        assert_eq!((id.method, id.subject.as_str()), (AuthMethod::ApiKey, "ci"));
        assert_eq!(id.roles, ["deploy"]);
        assert!(id.scopes.is_empty() && id.claims.is_null());
        assert_eq!(subject(k.check(b"k2")), "bot");
        assert_eq!(k.check(b"secret-two"), Err(UNKNOWN));
        assert_eq!(k.check(b"secret-onf"), Err(UNKNOWN), "one byte differs");
        assert_eq!(k.check(b"secret-on"), Err(UNKNOWN), "prefix");
        assert_eq!(k.check(b""), Err(UNKNOWN), "empty key");
        assert_eq!(k.header().as_str(), "x-api-key");
        assert!(!format!("{k:?}").contains(&hash_key("secret-one")));
    }

    #[test]
    fn reads_the_configured_header() {
        let k = keys("X-API-Key");
        let mut h = HeaderMap::new();
        assert_eq!(k.check_headers(&h), Err(AuthError::Missing));
        h.insert("x-api-key", HeaderValue::from_static("k2"));
        assert_eq!(subject(k.check_headers(&h)), "bot");
        h.append("x-api-key", HeaderValue::from_static("k2"));
        let repeated = AuthError::Invalid("repeated api key header");
        assert_eq!(k.check_headers(&h), Err(repeated));
    }

    #[test]
    fn authorization_means_bearer() {
        let k = keys("authorization");
        let with = |value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_static(value));
            k.check_headers(&h)
        };
        assert_eq!(subject(with("bEaReR  secret-one")), "ci");
        assert_eq!(with("Basic secret-one"), Err(AuthError::Missing));
        assert_eq!(with("secret-one"), Err(AuthError::Missing));
        assert_eq!(with("Bearer wrong"), Err(UNKNOWN));
    }

    #[test]
    fn config_lists_every_problem_with_its_path() {
        let mut dup_hash = entry("b", "k1", &["", "x", ""]);
        dup_hash.sha256 = dup_hash.sha256.to_uppercase();
        let mut bad_hash = entry("a", "k3", &[]);
        bad_hash.sha256.push('0');
        let entries = vec![
            entry("a", "k1", &[]),
            dup_hash,
            bad_hash,
            entry("", "", &[]),
        ];
        let problems = ApiKeys::new(&config("bad header", entries), AT).expect_err("invalid");
        let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let want = [
            "endpoints[0].auth.api_keys.header: \"bad header\" is not a header name",
            "endpoints[0].auth.api_keys.keys[1].sha256: the same key as keys[0]",
            "endpoints[0].auth.api_keys.keys[1].roles[0]: empty role",
            "endpoints[0].auth.api_keys.keys[1].roles[2]: empty role",
            "endpoints[0].auth.api_keys.keys[2].name: duplicate name \"a\" (also keys[0])",
            "endpoints[0].auth.api_keys.keys[2].sha256: expected 64 hex digits (the SHA-256 of the key, see `mcpgate hash-key`)",
            "endpoints[0].auth.api_keys.keys[3].name: must be non-empty, without control characters",
            "endpoints[0].auth.api_keys.keys[3].sha256: this is the SHA-256 of the empty key",
        ];
        assert_eq!(got, want);
        let problems = ApiKeys::new(&config("Host", vec![]), "").expect_err("invalid");
        let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "header: host cannot carry an API key",
                "keys: at least one key is needed"
            ]
        );
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let json = r#"{"keys":[{"name":"a","sha256":"00"}]}"#;
        let cfg: ApiKeyConfig = serde_json::from_str(json).expect("parses");
        assert_eq!(cfg.header, "X-API-Key");
        assert!(cfg.keys[0].roles.is_empty());
        let json = r#"{"keys":[],"extra":1}"#;
        assert!(serde_json::from_str::<ApiKeyConfig>(json).is_err());
    }

    #[test]
    fn generated_keys_are_random_and_usable() {
        let (a, b) = (generate_key().expect("rng"), generate_key().expect("rng"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 48);
        assert!(a.starts_with(KEY_PREFIX));
        let cfg = config(&default_header(), vec![entry("gen", &a, &[])]);
        let k = ApiKeys::new(&cfg, AT).expect("valid");
        assert_eq!(subject(k.check(a.as_bytes())), "gen");
    }
}

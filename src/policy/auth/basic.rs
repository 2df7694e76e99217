//! HTTP Basic authentication (RFC 7617) against bcrypt password hashes.
//!
//! bcrypt is slow on purpose (0.1 to 1 s of CPU at cost 10 to 12): run [`BasicAuth::check`] in
//! `tokio::task::spawn_blocking`, bounding how many run at once; [`BasicAuth::check_cached`]
//! never runs bcrypt and may be called inline first. Successes are cached for [`CACHE_TTL`] (at
//! most [`CACHE_CAPACITY`] entries) under a SHA-256 of a per-instance random key, the user and
//! the password; no password is stored. Unknown users are checked against a dummy hash of the
//! highest configured cost, so names cannot be probed by timing, and fail like wrong passwords.

use crate::config::Problem;
use crate::policy::auth::identity::{AuthError, AuthMethod, Identity};
use base64::Engine as _;
use bcrypt::HashParts;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Accepted bcrypt costs. Above 14 one verification takes seconds of CPU, which makes every
/// wrong password a denial-of-service lever. Below [`WEAK_COST`] loads with a warning.
pub const COST_RANGE: std::ops::RangeInclusive<u32> = 4..=14;
/// Costs below this are accepted with a warning.
pub const WEAK_COST: u32 = 10;
/// How long a successful check is remembered.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// The most successful checks remembered at once.
pub const CACHE_CAPACITY: usize = 1024;

/// Salt and hash of a bcrypt hash of a random, forgotten password: with any cost in front it
/// is a well-formed hash that no password matches.
const DUMMY_SALT_AND_HASH: &str = "mkcsXkONzIWEozn/fEkWeuIPtyPO3kfN2NpbWYLwAe3FC7xRA3OPC";
const REJECTED: AuthError = AuthError::Invalid("unknown user or wrong password");
const MALFORMED: AuthError = AuthError::Invalid("malformed basic credentials");
const BAD_REALM: &str = "must be non-empty, without quotes, backslashes or control characters";
const BAD_NAME: &str = "must be non-empty, without `:` or control characters";
const BAD_HASH: &str = "not a bcrypt hash (expected 60 characters such as $2b$12$...)";

/// HTTP Basic authentication.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// The realm named in `WWW-Authenticate: Basic realm="..."` (default `mcpgate`).
    #[serde(default)]
    pub realm: Option<String>,
    /// The accepted users (at least one).
    pub users: Vec<BasicUser>,
}

/// One Basic-auth user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicUser {
    /// The user name (unique, case-sensitive, no `:`): the identity's subject.
    pub name: String,
    /// The bcrypt hash of the password (`$2b$12$...`; `$2a$`, `$2x$`, `$2y$` also accepted),
    /// e.g. from `htpasswd -nbB user pass`. Cost 4 to 14; below 10 gives a warning.
    pub bcrypt: String,
    /// Roles granted to this user, for later policies.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Compiled Basic authentication, with its cache of successful checks.
pub struct BasicAuth {
    realm: String,
    /// User name to (bcrypt hash, identity).
    users: HashMap<String, (String, Identity)>,
    dummy: String,
    cache_key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
    verifications: AtomicU64,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("realm", &self.realm)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Validates `cfg` (found at config path `at`) and compiles it. Every problem is reported
    /// with its path: a realm that cannot be quoted, no users, empty, duplicate or `:`-holding
    /// names, hashes that are not bcrypt, costs outside [`COST_RANGE`], empty roles.
    pub fn new(cfg: &BasicAuthConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut report = |field: &str, message: String| {
            let path = format!("{at}.{field}");
            problems.push(Problem::new(path.trim_matches('.'), message));
        };
        let realm = cfg.realm.as_deref().unwrap_or("mcpgate");
        if realm.is_empty() || realm.contains(|c: char| c.is_control() || c == '"' || c == '\\') {
            report("realm", BAD_REALM.into());
        }
        if cfg.users.is_empty() {
            report("users", "at least one user is needed".into());
        }
        let mut users = HashMap::with_capacity(cfg.users.len());
        let mut costs = Vec::with_capacity(cfg.users.len());
        for (i, user) in cfg.users.iter().enumerate() {
            let (name, here) = (&user.name, |field: &str| format!("users[{i}].{field}"));
            if name.is_empty() || name.contains(|c: char| c == ':' || c.is_control()) {
                report(&here("name"), BAD_NAME.into());
            } else if let Some(j) = cfg.users[..i].iter().position(|u| u.name == *name) {
                let message = format!("duplicate user {name:?} (also users[{j}])");
                report(&here("name"), message);
            }
            match user.bcrypt.parse::<HashParts>().map(|p| p.get_cost()) {
                Ok(cost) if COST_RANGE.contains(&cost) => costs.push((cost, name)),
                Ok(cost) => report(&here("bcrypt"), format!("cost {cost} is outside 4..=14")),
                Err(_) => report(&here("bcrypt"), BAD_HASH.into()),
            }
            for (r, _) in user.roles.iter().enumerate().filter(|(_, r)| r.is_empty()) {
                report(&here(&format!("roles[{r}]")), "empty role".into());
            }
            let identity = Identity {
                method: AuthMethod::Basic,
                subject: name.clone(),
                roles: user.roles.clone(),
                scopes: Vec::new(),
                claims: serde_json::Value::Null,
            };
            users.insert(name.clone(), (user.bcrypt.clone(), identity));
        }
        let mut cache_key = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut cache_key) {
            report("", format!("no randomness for the credential cache: {e}"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for (cost, name) in costs.iter().filter(|(cost, _)| *cost < WEAK_COST) {
            tracing::warn!(at, user = %name, cost, "weak bcrypt cost; use 10 or more");
        }
        let max_cost = costs.iter().map(|c| c.0).max().unwrap_or(WEAK_COST);
        if costs.iter().any(|c| c.0 != max_cost) {
            tracing::warn!(at, "bcrypt costs differ; timing tells users apart");
        }
        Ok(Self {
            realm: realm.to_owned(),
            users,
            dummy: format!("$2b${max_cost:02}${DUMMY_SALT_AND_HASH}"),
            cache_key,
            cache: Mutex::new(HashMap::new()),
            verifications: AtomicU64::new(0),
        })
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The `WWW-Authenticate` value for a 401: `Basic realm="...", charset="UTF-8"`.
    pub fn challenge(&self) -> String {
        format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm)
    }

    /// How many bcrypt verifications have run (cache misses, known or unknown users).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Checks an `Authorization` header value (`Basic base64(user:password)`). Slow: runs
    /// bcrypt unless the cache answers, so call it through `spawn_blocking`. `Err(Missing)` for
    /// an empty value or another scheme; `Err(Invalid)` for malformed credentials (not base64,
    /// no `:`, not UTF-8) and, with one message for both, unknown users and wrong passwords.
    pub fn check(&self, authorization: &[u8]) -> Result<Identity, AuthError> {
        let (user, password) = parse(authorization)?;
        let key = self.key(&user, &password);
        if let Some(identity) = self.cached(&key, Instant::now()) {
            return Ok(identity);
        }
        let Verdict::Accepted(identity) = self.verify(&user, &password) else {
            return Err(REJECTED);
        };
        self.remember(key, identity.clone(), Instant::now());
        Ok(identity)
    }

    /// The fast path, safe on the executor: never runs bcrypt. `Some(Ok)` on a cache hit,
    /// `Some(Err)` when the header is missing or malformed, `None` when [`Self::check`] must
    /// run bcrypt.
    pub fn check_cached(&self, authorization: &[u8]) -> Option<Result<Identity, AuthError>> {
        match parse(authorization) {
            Err(e) => Some(Err(e)),
            Ok((user, pass)) => self.cached(&self.key(&user, &pass), Instant::now()).map(Ok),
        }
    }

    /// Runs bcrypt once, against the user's hash or, for an unknown user, the dummy hash.
    fn verify(&self, user: &str, password: &[u8]) -> Verdict {
        let known = self.users.get(user);
        let hash = known.map_or(self.dummy.as_str(), |(hash, _)| hash.as_str());
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = bcrypt::verify(password, hash).unwrap_or(false);
        match known {
            None => Verdict::UnknownUser,
            Some((_, identity)) if matched => Verdict::Accepted(identity.clone()),
            Some(_) => Verdict::Rejected,
        }
    }

    /// The cache key: SHA-256 over the per-instance random key, the user and the password.
    fn key(&self, user: &str, password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(password);
        h.finalize().into()
    }

    fn cached(&self, key: &[u8; 32], now: Instant) -> Option<Identity> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(key) {
            Some((identity, expires)) if now < *expires => Some(identity.clone()),
            Some(_) => cache.remove(key).and(None),
            None => None,
        }
    }

    /// Caches a success; when full, drops expired entries, then if need be the oldest one.
    fn remember(&self, key: [u8; 32], identity: Identity, now: Instant) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&key) {
            cache.retain(|_, (_, expires)| now < *expires);
            let full = cache.len() >= CACHE_CAPACITY;
            let oldest = cache.iter().filter(|_| full).min_by_key(|(_, (_, at))| *at);
            if let Some(oldest) = oldest.map(|(k, _)| *k) {
                cache.remove(&oldest);
            }
        }
        cache.insert(key, (identity, now + CACHE_TTL));
    }
}

enum Verdict {
    Accepted(Identity),
    Rejected,
    UnknownUser,
}

/// Splits `Basic <base64>` (scheme in any case, padding optional) into user and password.
fn parse(value: &[u8]) -> Result<(String, Vec<u8>), AuthError> {
    let value = value.trim_ascii();
    let n = value.iter().position(|b| *b == b' ').unwrap_or(value.len());
    if value.is_empty() || !value[..n].eq_ignore_ascii_case(b"basic") {
        return Err(AuthError::Missing);
    }
    let engine = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
    let token = value[n..].trim_ascii();
    let mut user = engine.decode(token).map_err(|_| MALFORMED)?;
    let colon = user.iter().position(|b| *b == b':').ok_or(MALFORMED)?;
    let password = user.split_off(colon + 1);
    user.truncate(colon);
    let user = String::from_utf8(user).map_err(|_| MALFORMED)?;
    std::str::from_utf8(&password).map_err(|_| MALFORMED)?;
    Ok((user, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: &str, roles: &[&str]) -> BasicUser {
        let bcrypt = bcrypt::hash(password, 4).expect("hash");
        let user = serde_json::json!({"name": name, "bcrypt": bcrypt, "roles": roles});
        serde_json::from_value(user).expect("a user")
    }

    fn auth() -> BasicAuth {
        // "correct horse" hashed by Python's `bcrypt`, with the `$2y$` prefix htpasswd writes.
        let mut carol = user("carol", "", &[]);
        carol.bcrypt = "$2y$04$Q.R/lGYFrihhx4sUxdUkge1zD.RpTS9LddPY5aZbnZjBF9/qGf/lS".into();
        let alice = user("alice", "wonder land", &["admin"]);
        let users = vec![alice, user("bob", "a:b:c", &[]), carol];
        let cfg = BasicAuthConfig { realm: None, users };
        BasicAuth::new(&cfg, "endpoints[0].auth.basic").expect("valid config")
    }

    fn subject(result: Result<Identity, AuthError>) -> String {
        result.map_or_else(|e| e.to_string(), |id| id.subject)
    }

    fn header(credentials: &[u8]) -> Vec<u8> {
        let engine = base64::engine::general_purpose::STANDARD;
        format!("Basic {}", engine.encode(credentials)).into_bytes()
    }

    #[test]
    fn right_and_wrong_passwords() {
        let a = auth();
        assert_eq!(a.realm(), "mcpgate");
        assert_eq!(a.challenge(), "Basic realm=\"mcpgate\", charset=\"UTF-8\"");
        let id = a.check(&header(b"alice:wonder land")).expect("right");
        assert_eq!(id.method, AuthMethod::Basic);
        assert_eq!(id.subject, "alice");
        assert_eq!(id.roles, ["admin"]);
        assert!(id.scopes.is_empty() && id.claims.is_null());
        assert_eq!(subject(a.check(&header(b"bob:a:b:c"))), "bob");
        assert_eq!(subject(a.check(&header(b"carol:correct horse"))), "carol");
        for wrong in [&b"alice:wonder lane"[..], b"alice:", b"Alice:wonder land"] {
            assert_eq!(a.check(&header(wrong)), Err(REJECTED));
        }
        assert!(!format!("{a:?}").contains("$2b$"), "Debug shows no hashes");
        fn shareable<T: Send + Sync>(_: &T) {}
        shareable(&a);
    }

    #[test]
    fn unknown_users_take_the_dummy_path() {
        let a = auth();
        assert!(a.dummy.parse::<HashParts>().is_ok(), "well-formed");
        assert_eq!(a.dummy.get(..7), Some("$2b$04$"), "at the configured cost");
        assert!(matches!(a.verify("mallory", b"pw"), Verdict::UnknownUser));
        assert_eq!(a.verifications(), 1, "bcrypt ran for the unknown user");
        assert_eq!(a.check(&header(b"mallory:wonder land")), Err(REJECTED));
        assert_eq!(a.verifications(), 2);
        assert!(matches!(a.verify("alice", b"nope"), Verdict::Rejected));
    }

    #[test]
    fn malformed_headers() {
        let a = auth();
        for missing in [&b""[..], b"  ", b"Bearer abc", b"Basicx YWxpY2U6eA=="] {
            assert_eq!(a.check(missing), Err(AuthError::Missing));
        }
        let bad_text = [&b"alice-no-colon"[..], b"al\xffice:x", b"alice:x\xff"].map(header);
        let bad_base64 = [&b"Basic"[..], b"Basic !!", b"Basic \xff\xfe", b"Basic YQ=a"];
        for bad in bad_base64
            .into_iter()
            .chain(bad_text.iter().map(|h| &h[..]))
        {
            assert_eq!(a.check(bad), Err(MALFORMED));
            assert_eq!(a.check_cached(bad), Some(Err(MALFORMED)));
        }
        assert_eq!(a.verifications(), 0, "no bcrypt for malformed input");
        let lenient = b"bAsIc  YWxpY2U6d29uZGVyIGxhbmQ ";
        assert_eq!(subject(a.check(lenient)), "alice", "any case, no padding");
    }

    #[test]
    fn cache_hits_skip_bcrypt_and_expire() {
        let a = auth();
        let h = header(b"alice:wonder land");
        assert_eq!(a.check_cached(&h), None);
        a.check(&h).expect("first check");
        assert_eq!(a.verifications(), 1);
        assert_eq!(subject(a.check(&h)), "alice");
        assert_eq!(a.check_cached(&h).map(subject).as_deref(), Some("alice"));
        assert_eq!(a.verifications(), 1, "the cache answered");
        assert_eq!(a.check(&header(b"alice:wonder lan")), Err(REJECTED));
        let later = Instant::now() + CACHE_TTL;
        assert_eq!(a.cached(&a.key("alice", b"wonder land"), later), None);
        let len = || a.cache.lock().map(|c| c.len()).unwrap_or_default();
        assert_eq!(len(), 0, "expired entry dropped");
        let id = a.check(&header(b"bob:a:b:c")).expect("right password");
        for i in 0..CACHE_CAPACITY + 10 {
            a.remember(a.key(&format!("u{i}"), b"p"), id.clone(), Instant::now());
        }
        assert_eq!(len(), CACHE_CAPACITY);
    }

    #[test]
    fn config_lists_every_problem_with_its_path() {
        let mut dup = user("alice", "x", &["", ""]);
        dup.bcrypt = dup.bcrypt.replacen("$04$", "$15$", 1);
        let mut bad = user("a:b", "x", &[]);
        bad.bcrypt = "$2b$10$short".into();
        let users = vec![user("alice", "x", &[]), dup, bad];
        let realm = Some("say \"hi\"".into());
        let cfg = BasicAuthConfig { realm, users };
        let problems = BasicAuth::new(&cfg, "basic").expect_err("invalid");
        let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let want = [
            "basic.realm: must be non-empty, without quotes, backslashes or control characters",
            "basic.users[1].name: duplicate user \"alice\" (also users[0])",
            "basic.users[1].bcrypt: cost 15 is outside 4..=14",
            "basic.users[1].roles[0]: empty role",
            "basic.users[1].roles[1]: empty role",
            "basic.users[2].name: must be non-empty, without `:` or control characters",
            "basic.users[2].bcrypt: not a bcrypt hash (expected 60 characters such as $2b$12$...)",
        ];
        assert_eq!(got, want);
        let users = vec![];
        let problems = BasicAuth::new(&BasicAuthConfig { realm: None, users }, "");
        let want = Problem::new("users", "at least one user is needed");
        assert_eq!(problems.expect_err("invalid"), vec![want]);
        let json = r#"{"users":[{"name":"a","bcrypt":"x"}],"extra":true}"#;
        assert!(serde_json::from_str::<BasicAuthConfig>(json).is_err());
    }
}

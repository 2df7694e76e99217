//! `auth/validator` (JWT), `auth/api-keys` and `auth/basic` (Enterprise) as mcpgate's
//! `policies.auth`.

use super::inherited::{ApiKeys, Service};
use super::obj::Obj;
use super::Cx;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::Digest as _;

const KNOWN_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

/// `auth/validator` as `auth.jwt`.
pub(crate) fn jwt(v: &Value, at: &str, cx: &mut Cx) -> Option<Value> {
    let mut o = Obj::new(v, at, true, cx);
    let mut j = Map::new();
    // Where this lands in mcpgate's config (for `mcpgate convert` comments).
    let mp = at.replacen(".extra_config.auth/validator", ".policies.auth.jwt", 1);
    let alg = o.str("alg", cx).unwrap_or_else(|| "RS256".into());
    if !KNOWN_ALGS.contains(&alg.as_str()) {
        cx.error(
            o.path("alg"),
            format!("algorithm {alg:?} is not supported by mcpgate"),
        );
    }
    j.insert("algorithms".into(), json!([alg]));
    let url = o.str("jwk_url", cx);
    let file = o.str("jwk_local_path", cx);
    match (url, file) {
        (Some(u), None) => {
            j.insert("jwks_url".into(), json!(u));
        }
        (None, Some(f)) if alg.starts_with("HS") => {
            if let Some(secret) = oct_secret(&f, &o.path("jwk_local_path"), cx) {
                j.insert("secret".into(), json!(secret));
            }
        }
        (None, Some(f)) => {
            j.insert("jwks_file".into(), json!(f));
        }
        (Some(_), Some(_)) => cx.error(at, "give jwk_url or jwk_local_path, not both"),
        (None, None) => cx.error(at, "needs jwk_url or jwk_local_path"),
    }
    if let Some(iss) = o.str("issuer", cx) {
        j.insert("issuer".into(), json!(iss));
    }
    match o.strs("audience", cx) {
        Some(a) if a.len() > 1 => cx.error(
            o.path("audience"),
            "KrakenD requires every listed audience; mcpgate accepts a token naming any one: list one audience",
        ),
        Some(a) if a.len() == 1 => {
            j.insert("audience".into(), json!(a[0]));
        }
        _ => {
            // KrakenD checks no audience unless told to.
            j.insert("audience_check".into(), json!(false));
        }
    }
    if let Some(roles) = o.strs("roles", cx) {
        j.insert("roles".into(), json!(roles));
    }
    let nested = o.bool("roles_key_is_nested", cx).unwrap_or(false);
    if let Some(k) = o.str("roles_key", cx) {
        if k.contains('.') && !nested && !k.starts_with("http") {
            cx.note(
                format!("{mp}.roles_claim"),
                "KrakenD reads a dotted roles_key as one claim name unless roles_key_is_nested; mcpgate finds either",
            );
        }
        j.insert("roles_claim".into(), json!(k));
    }
    // KrakenD checks scopes only when both `scopes` and `scopes_key` are set.
    let scopes = o.strs("scopes", cx);
    let scopes_key = o.str("scopes_key", cx);
    let matcher = o.str("scopes_matcher", cx).unwrap_or_else(|| "any".into());
    if !matches!(matcher.as_str(), "any" | "all") {
        cx.error(
            o.path("scopes_matcher"),
            format!("{matcher:?} is not any or all"),
        );
    }
    match (scopes, scopes_key) {
        (Some(list), Some(k)) if !list.is_empty() => {
            if k != "scope" && k != "scp" {
                cx.error(
                    o.path("scopes_key"),
                    format!("mcpgate reads scopes from `scope` and `scp`, not {k:?}"),
                );
            }
            j.insert("scopes".into(), json!(list));
            // KrakenD's default matcher is `any`; mcpgate's is `all`.
            j.insert("scopes_mode".into(), json!(matcher));
        }
        (Some(list), None) if !list.is_empty() => cx.warn(
            o.path("scopes"),
            "KrakenD checks no scopes without scopes_key, so neither does mcpgate; set scopes_key (scope or scp) to require them",
        ),
        _ => {}
    }
    if let Some(pc) = o.get("propagate_claims") {
        let mut map = Map::new();
        for (i, pair) in pc.as_array().into_iter().flatten().enumerate() {
            match pair.as_array().map(|p| {
                (
                    p.first().and_then(Value::as_str),
                    p.get(1).and_then(Value::as_str),
                    p.len(),
                )
            }) {
                Some((Some(claim), Some(header), 2)) => {
                    map.insert(claim.to_string(), json!(header));
                }
                _ => cx.error(
                    format!("{at}.propagate_claims[{i}]"),
                    "expected [claim, header]",
                ),
            }
        }
        if !pc.is_array() {
            cx.error(
                o.path("propagate_claims"),
                "expected a list of [claim, header] pairs",
            );
        }
        cx.note(
            format!("{mp}.propagate_claims"),
            "a claim that is not a string goes upstream as JSON (KrakenD joins a list with commas); a missing claim sends no header",
        );
        j.insert("propagate_claims".into(), Value::Object(map));
    }
    if o.bool("propagate_claims_preserve_array", cx) == Some(true) {
        cx.warn(
            o.path("propagate_claims_preserve_array"),
            "mcpgate sends a list claim as one JSON header, not one header per item; skipped",
        );
    }
    if o.bool("cache", cx) == Some(false) {
        j.insert("cache_size".into(), json!(0));
    }
    if o.uint("cache_duration", cx).is_some() {
        cx.warn(
            o.path("cache_duration"),
            "mcpgate refreshes the JWKS every 5m and on an unknown kid; skipped",
        );
    }
    if let Some(d) = o.duration("failed_jwk_key_cooldown", cx) {
        j.insert("min_refresh_interval".into(), json!(d));
    }
    // A Go duration string; KrakenD's default is 1s (mcpgate's own is 30s).
    let leeway = o.duration("leeway", cx).unwrap_or_else(|| "1s".into());
    j.insert("leeway".into(), json!(leeway));
    if let Some(h) = o.str("auth_header_name", cx) {
        if !h.eq_ignore_ascii_case("Authorization") {
            cx.error(
                o.path("auth_header_name"),
                "mcpgate reads the token from Authorization only",
            );
        }
    }
    if let Some(s) = o.str("key_identify_strategy", cx) {
        if s != "kid" {
            cx.error(
                o.path("key_identify_strategy"),
                format!("mcpgate identifies keys by kid, not {s:?}"),
            );
        }
    }
    for k in ["operation_debug", "cipher_suites"] {
        if o.get(k).is_some() {
            cx.warn(o.path(k), "not supported by mcpgate; skipped");
        }
    }
    o.unsupported(
        &[
            "secret_url",
            "cypher_key",
            "cookie_key",
            "disable_jwk_security",
            "jwk_local_ca",
            "jwk_fingerprints",
        ],
        true,
        "tokens would be read or keys fetched differently",
        cx,
    );
    o.finish(true, cx);
    Some(Value::Object(j))
}

/// The shared secret of an HS* key set: the `k` of its `oct` key, as text.
fn oct_secret(file: &str, at: &str, cx: &mut Cx) -> Option<String> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            cx.error(at, format!("cannot read {file:?}: {e}"));
            return None;
        }
    };
    let keys: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let k = keys
        .get("keys")
        .and_then(Value::as_array)
        .and_then(|l| {
            l.iter()
                .find(|k| k.get("kty").and_then(Value::as_str) == Some("oct"))
        })
        .and_then(|k| k.get("k"))
        .and_then(Value::as_str);
    let Some(k) = k else {
        cx.error(at, format!("{file:?} has no `oct` key for an HS algorithm"));
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(k.trim_end_matches('='))
        .ok();
    match bytes.and_then(|b| String::from_utf8(b).ok()) {
        Some(s) => Some(s),
        None => {
            cx.error(
                at,
                "the `oct` key is not base64url of UTF-8 text, which mcpgate's `secret` needs",
            );
            None
        }
    }
}

pub(crate) fn api_key_registry(v: &Value, at: &str, cx: &mut Cx) -> Option<ApiKeys> {
    let mut o = Obj::new(v, at, true, cx);
    let strategy = o.str("strategy", cx).unwrap_or_else(|| "header".into());
    if strategy != "header" {
        cx.error(
            o.path("strategy"),
            format!("mcpgate reads API keys from a header, not {strategy:?}"),
        );
    }
    let header = o.str("identifier", cx);
    let hash = o.str("hash", cx).unwrap_or_else(|| "plain".into());
    if hash != "plain" && hash != "sha256" {
        cx.error(
            o.path("hash"),
            format!("mcpgate stores keys as SHA-256; {hash:?} keys cannot be checked"),
        );
    }
    o.unsupported(&["salt"], true, "mcpgate hashes keys without salt", cx);
    o.accept(&["propagate_role"]);
    if o.get("propagate_role").is_some() {
        cx.error(
            o.path("propagate_role"),
            "not supported by mcpgate: the upstream would not get the role header",
        );
    }
    let mut keys = Vec::new();
    let list = o
        .get("keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        cx.error(o.path("keys"), "at least one key is needed");
    }
    for (i, k) in list.iter().enumerate() {
        let kat = format!("{at}.keys[{i}]");
        let mut ko = Obj::new(k, &kat, true, cx);
        let key = ko.str("key", cx).unwrap_or_default();
        let roles = ko.strs("roles", cx).unwrap_or_default();
        let name = ko
            .str("@description", cx)
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| format!("key-{i}"));
        ko.finish(true, cx);
        let sha = if hash == "sha256" {
            if key.len() != 64 || !key.chars().all(|c| c.is_ascii_hexdigit()) {
                cx.error(
                    format!("{kat}.key"),
                    "with hash sha256, expected 64 hex digits",
                );
            }
            key.to_ascii_lowercase()
        } else {
            if key.is_empty() {
                cx.error(format!("{kat}.key"), "empty key");
            }
            sha2::Sha256::digest(key.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        keys.push(json!({"name": name, "sha256": sha, "roles": roles}));
    }
    o.finish(true, cx);
    Some(ApiKeys { keys, header })
}

/// What an endpoint's `auth/api-keys` becomes.
pub(crate) struct EndpointApiKeys {
    /// `auth.api_keys`.
    pub(crate) keys: Value,
    /// The rule requiring one of the endpoint's roles.
    pub(crate) rule: Option<Value>,
    /// `client_max_rate`: a per-key rate limit.
    pub(crate) limit: Option<Value>,
}

/// An endpoint's `auth/api-keys`: the keys, a rule requiring one of its roles (KrakenD answers
/// 401 to a key without one, as to no key), and its per-key `client_max_rate` (per second).
pub(crate) fn api_keys(v: &Value, at: &str, svc: &Service, cx: &mut Cx) -> Option<EndpointApiKeys> {
    let mut o = Obj::new(v, at, true, cx);
    let roles = o.strs("roles", cx);
    let header = o.str("identifier", cx);
    if let Some(s) = o.str("strategy", cx) {
        if s != "header" {
            cx.error(
                o.path("strategy"),
                format!("mcpgate reads API keys from a header, not {s:?}"),
            );
        }
    }
    let rate = o.num("client_max_rate", cx);
    o.finish(true, cx);
    let roles = match roles {
        Some(r) if !r.is_empty() => r,
        _ => {
            cx.error(
                format!("{at}.roles"),
                "required: the roles (of the service's keys) this endpoint accepts",
            );
            Vec::new()
        }
    };
    let Some(reg) = &svc.api_keys else {
        cx.error(
            at,
            "needs the keys declared in the service's extra_config.auth/api-keys",
        );
        return None;
    };
    let h = header
        .or_else(|| reg.header.clone())
        .unwrap_or_else(|| "Authorization".into());
    let keys = json!({"keys": reg.keys, "header": h});
    let rule = (!roles.is_empty()).then(|| {
        let list: Vec<String> = roles.iter().map(|r| format!("{}", json!(r))).collect();
        json!({
            "name": "api-key-roles",
            "when": format!("!identity.roles.exists(r, r in [{}])", list.join(", ")),
            "status": 401,
            "message": "the API key has none of the roles this endpoint requires",
        })
    });
    let limit = rate.filter(|r| *r > 0.0).and_then(|r| {
        let cap = super::ratelimit::default_capacity(r);
        match super::ratelimit::bucket(r, cap) {
            Some((requests, period)) => Some(json!({
                "name": "api-key",
                "key": "api_key",
                "requests": requests,
                "period": period,
            })),
            None => {
                cx.error(
                    format!("{at}.client_max_rate"),
                    format!("{r} per second cannot be written as whole requests per period"),
                );
                None
            }
        }
    });
    Some(EndpointApiKeys { keys, rule, limit })
}

/// The users of the service's `auth/basic`: the `htpasswd_path` file (bcrypt entries only)
/// merged with `users` (name -> bcrypt hash), which overrides the file's users of the same name.
pub(crate) fn basic_registry(v: &Value, at: &str, cx: &mut Cx) -> Option<Vec<Value>> {
    let mut o = Obj::new(v, at, true, cx);
    let mut users: Vec<(String, String)> = Vec::new();
    if let Some(path) = o.str("htpasswd_path", cx) {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (n, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                {
                    match line.trim().split_once(':') {
                        Some((name, hash)) if hash.starts_with("$2") => {
                            users.retain(|(u, _)| u != name);
                            users.push((name.to_string(), hash.to_string()));
                        }
                        _ => cx.error(
                            format!("{at}.htpasswd_path"),
                            format!(
                                "{path}:{}: mcpgate accepts bcrypt entries only (htpasswd -B)",
                                n + 1
                            ),
                        ),
                    }
                }
            }
            Err(e) => cx.error(
                format!("{at}.htpasswd_path"),
                format!("cannot read {path:?}: {e}"),
            ),
        }
    }
    if let Some(map) = o.get("users") {
        if !map.is_object() {
            cx.error(
                format!("{at}.users"),
                "expected an object: user -> bcrypt hash",
            );
        }
        for (name, hash) in map.as_object().into_iter().flatten() {
            match hash.as_str() {
                Some(h) => {
                    users.retain(|(u, _)| u != name);
                    users.push((name.clone(), h.to_string()));
                }
                None => cx.error(format!("{at}.users.{name}"), "expected a bcrypt hash"),
            }
        }
    }
    o.finish(true, cx);
    if users.is_empty() {
        cx.error(at, "no users");
    }
    Some(
        users
            .into_iter()
            .map(|(name, hash)| json!({"name": name, "bcrypt": hash}))
            .collect(),
    )
}

/// An endpoint's `auth/basic`.
pub(crate) fn basic(v: &Value, at: &str, svc: &Service, cx: &mut Cx) -> Option<Value> {
    let o = Obj::new(v, at, true, cx);
    o.finish(true, cx);
    match &svc.basic_users {
        Some(users) => Some(json!({"users": users})),
        None => {
            cx.error(
                at,
                "needs the users declared in the service's extra_config.auth/basic",
            );
            None
        }
    }
}

//! Sealed session tokens (`mcp::session_pin::Sealer`) and JWTs (`policy::auth::jwt`): no input
//! panics, nothing opens or verifies unless it was sealed or signed with the key, a token opens
//! to exactly what was sealed, and any change to a sealed or signed token is refused.

use crate::Input;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mcpgate::mcp::session_pin::{Opened, Sealer, SessionsConfig, MAX_TOKEN};
use mcpgate::policy::auth::identity::AuthError;
use mcpgate::policy::auth::jwt::{JwtConfig, JwtVerifier};
use serde_json::{json, Value};
use std::sync::OnceLock;

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn sealer(key: &str, previous: &[&str]) -> Sealer {
    let cfg = SessionsConfig {
        key: Some(key.into()),
        previous_keys: previous.iter().map(|k| k.to_string()).collect(),
    };
    match Sealer::compile(&cfg, "sessions") {
        Ok(s) => s,
        Err(p) => panic!("{p:?}"),
    }
}

/// One sealer per key set, made once: the key, the second key with the first as previous
/// (rotation), the second key alone. Shared with the federation target.
pub(crate) struct Sealers {
    pub(crate) k1: Sealer,
    pub(crate) rotated: Sealer,
    pub(crate) k2: Sealer,
}

pub(crate) fn sealers() -> &'static Sealers {
    static S: OnceLock<Sealers> = OnceLock::new();
    S.get_or_init(|| Sealers {
        k1: sealer(K1, &[]),
        rotated: sealer(K2, &[K1]),
        k2: sealer(K2, &[]),
    })
}

/// Replaces the character at `at` (modulo the length) by one of the token alphabet.
fn tamper(token: &str, at: u8, with: u8) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=";
    let mut b = token.as_bytes().to_vec();
    let i = usize::from(at) * b.len() / 256;
    if let Some(c) = b.get_mut(i) {
        *c = ALPHABET[usize::from(with) % ALPHABET.len()];
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// The target. Mode 0: any text as a token opens nothing. Otherwise a path, host and session
/// are sealed, then opened, opened elsewhere, with other keys, and tampered with.
pub fn session_token(data: &[u8]) {
    let s = sealers();
    let mut input = Input::new(data);
    let mode = input.byte();
    if mode.is_multiple_of(2) {
        let token = String::from_utf8_lossy(input.field()).into_owned();
        let path = String::from_utf8_lossy(input.rest()).into_owned();
        for sealer in [&s.k1, &s.rotated, &s.k2] {
            assert_eq!(
                sealer.open(&path, &token),
                None,
                "a token never sealed opened"
            );
        }
        return;
    }
    let (at, with) = (input.byte(), input.byte());
    let path = String::from_utf8_lossy(input.field()).into_owned();
    let host = String::from_utf8_lossy(input.field()).into_owned();
    let session = String::from_utf8_lossy(input.rest()).into_owned();
    let Some(token) = s.k1.seal(&path, &host, &session) else {
        let raw = 12 + 2 + host.len() + session.len() + 16;
        let encoded = 3 + (raw * 4).div_ceil(3);
        assert!(
            host.len() > usize::from(u16::MAX) || encoded > MAX_TOKEN,
            "refused to seal a token that fits"
        );
        return;
    };
    assert!(
        token.len() <= MAX_TOKEN && token.starts_with("s1."),
        "token {token}"
    );
    let want = Some(Opened {
        host: host.clone(),
        session: session.clone(),
    });
    assert_eq!(
        s.k1.open(&path, &token),
        want,
        "opened otherwise than sealed"
    );
    assert_eq!(
        s.rotated.open(&path, &token),
        want,
        "a previous key does not open"
    );
    assert_eq!(s.k2.open(&path, &token), None, "another key opened it");
    assert_eq!(
        s.k1.open(&format!("{path}/"), &token),
        None,
        "opened on another path"
    );
    let other = s.k1.seal(&path, &host, &session);
    assert_ne!(
        other.as_deref(),
        Some(token.as_str()),
        "two seals, one token (nonce reused)"
    );
    let changed = tamper(&token, at, with);
    if changed != token {
        assert_eq!(
            s.k1.open(&path, &changed),
            None,
            "a changed token opened: {changed}"
        );
    }
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const ISS: &str = "https://idp.example/";
const AUD: &str = "https://gw.example/mcp";

fn verifier() -> &'static (JwtVerifier, tokio::runtime::Runtime) {
    static V: OnceLock<(JwtVerifier, tokio::runtime::Runtime)> = OnceLock::new();
    V.get_or_init(|| {
        let cfg: JwtConfig = match serde_json::from_value(json!({
            "secret": SECRET, "algorithms": ["HS256"], "issuer": ISS, "audience": AUD,
            "roles_claim": "realm.roles", "cache_size": 0,
            "propagate_claims": {"sub": "x-user", "realm.roles": "x-roles"},
        })) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let v = match JwtVerifier::new(&cfg, None, "jwt") {
            Ok(v) => v,
            Err(p) => panic!("{p:?}"),
        };
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => (v, rt),
            Err(e) => panic!("{e}"),
        }
    })
}

fn hs256(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
    let key = PKey::hmac(secret).map_err(|e| e.to_string());
    let mac = key.and_then(|k| {
        let mut s = Signer::new(MessageDigest::sha256(), &k).map_err(|e| e.to_string())?;
        s.sign_oneshot_to_vec(msg).map_err(|e| e.to_string())
    });
    match mac {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

fn signed(header: &[u8], claims: &[u8], secret: &[u8]) -> String {
    let text = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = hs256(secret, text.as_bytes());
    format!("{text}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether the verifier authenticated the token (authorization errors come after verification).
fn authenticated(
    r: &Result<std::sync::Arc<mcpgate::policy::auth::identity::Identity>, AuthError>,
) -> bool {
    matches!(
        r,
        Ok(_) | Err(AuthError::Forbidden | AuthError::InsufficientScope { .. })
    )
}

/// The target. Mode 0: any text as a token; 1: a header and claims signed with the key; 2: the
/// same signed with another key; 3: signed with the key, then one character changed.
pub fn jwt(data: &[u8]) {
    let (v, rt) = verifier();
    let mut input = Input::new(data);
    let mode = input.byte() % 4;
    let (at, with) = (input.byte(), input.byte());
    if mode == 0 {
        let token = String::from_utf8_lossy(input.rest()).into_owned();
        let r = rt.block_on(v.verify(&token));
        assert!(!authenticated(&r), "an unsigned token verified: {token:?}");
        return;
    }
    let header = input.field();
    let claims = input.rest();
    let secret: &[u8] = if mode == 2 {
        b"another secret, 32 bytes or more!"
    } else {
        SECRET.as_bytes()
    };
    let token = signed(header, claims, secret);
    let token = if mode == 3 {
        tamper(&token, at, with)
    } else {
        token
    };
    let r = rt.block_on(v.verify(&token));
    if mode == 2 {
        assert!(
            !authenticated(&r),
            "a token signed with another key verified"
        );
        return;
    }
    if mode == 3 && token != signed(header, claims, secret) {
        if authenticated(&r) {
            // Only a non-canonical spelling of the same signature may still verify.
            let parts: Vec<&str> = token.split('.').collect();
            let orig = signed(header, claims, secret);
            let oparts: Vec<&str> = orig.split('.').collect();
            assert!(
                parts.len() == 3 && parts[..2] == oparts[..2],
                "a changed token verified: {token}"
            );
            let lenient = base64::engine::GeneralPurpose::new(
                &base64::alphabet::URL_SAFE,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_allow_trailing_bits(true)
                    .with_encode_padding(false)
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            assert_eq!(
                lenient.decode(parts[2]).ok(),
                lenient.decode(oparts[2]).ok(),
                "a changed signature verified: {token}"
            );
        }
        return;
    }
    let Ok(id) = r else { return };
    let h: Value = serde_json::from_slice(header).unwrap_or(Value::Null);
    assert_eq!(
        h.get("alg"),
        Some(&Value::from("HS256")),
        "verified with header {h}"
    );
    assert!(h.get("crit").is_none(), "verified a token with crit: {h}");
    let c: Value = match serde_json::from_slice(claims) {
        Ok(c) => c,
        Err(e) => panic!("verified claims serde_json refuses ({e})"),
    };
    assert_eq!(id.claims, c, "identity claims");
    assert_eq!(
        c.get("sub").and_then(Value::as_str),
        Some(id.subject.as_str()),
        "sub"
    );
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(ISS), "iss");
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == AUD,
        Some(Value::Array(a)) => a.iter().any(|x| x == AUD),
        _ => false,
    };
    assert!(aud_ok, "verified with aud {:?}", c.get("aud"));
    let exp = c.get("exp").and_then(Value::as_f64).unwrap_or(-1.0);
    assert!(
        exp + 30.0 >= now() as f64,
        "verified an expired token (exp {exp})"
    );
    if let Some(nbf) = c.get("nbf") {
        let nbf = nbf.as_f64().unwrap_or(f64::MAX);
        assert!(
            nbf <= now() as f64 + 30.0,
            "verified a token not yet valid (nbf {nbf})"
        );
    }
    for (name, value) in v.propagated_headers(&id) {
        assert!(v.propagated_header_names().contains(&name), "{name}");
        let _ = value;
    }
}

//! Tests of the JWT verifier with real signatures: keys generated and tokens assembled and signed
//! here with OpenSSL primitives (independently of the verifier's JWT code), JWKS served by a small
//! HTTP server on 127.0.0.1:0.

use super::*;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer};
use serde_json::json;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISS: &str = "https://idp.example/";
const AUD: &str = "https://gw.example/mcp";
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const AT: &str = "endpoints[0].auth.jwt";

type Outcome = Result<(), AuthError>;
const OK: Outcome = Ok(());

fn bad(reason: &'static str) -> Outcome {
    Err(AuthError::Invalid(reason))
}

fn b64(data: &[u8]) -> String {
    let s = openssl::base64::encode_block(data);
    s.trim_end_matches('=').replace('+', "-").replace('/', "_")
}

enum Key {
    Rsa(PKey<Private>),
    Ec(PKey<Private>),
    Ed(PKey<Private>),
    Hmac(Vec<u8>),
}

fn new_rsa(bits: u32) -> Key {
    Key::Rsa(PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap())
}

fn new_ec() -> Key {
    new_ec_on(Nid::X9_62_PRIME256V1)
}

fn new_ec_on(curve: Nid) -> Key {
    let g = EcGroup::from_curve_name(curve).unwrap();
    Key::Ec(PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap())
}

/// Shared keys: three RSA, one P-256, one Ed25519.
fn key(i: usize) -> &'static Key {
    static KEYS: OnceLock<Vec<Key>> = OnceLock::new();
    let init = || {
        let ed = Key::Ed(PKey::generate_ed25519().unwrap());
        vec![new_rsa(2048), new_rsa(2048), new_rsa(2048), new_ec(), ed]
    };
    &KEYS.get_or_init(init)[i]
}
const EC: usize = 3;
const ED: usize = 4;

/// A compact JWT with header `{alg, kid?}`, signed by OpenSSL.
fn sign(alg: &str, kid: Option<&str>, key: &Key, claims: &Value) -> String {
    let header = match kid {
        Some(kid) => json!({"alg": alg, "typ": "JWT", "kid": kid}),
        None => json!({"alg": alg, "typ": "JWT"}),
    };
    sign_header(alg, header, key, claims)
}

/// A compact JWT with the given protected header, signed by OpenSSL with `alg`.
fn sign_header(alg: &str, header: Value, key: &Key, claims: &Value) -> String {
    let (header, claims) = (header.to_string(), claims.to_string());
    let msg = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let md = match &alg[2..] {
        "384" => MessageDigest::sha384(),
        "512" => MessageDigest::sha512(),
        _ => MessageDigest::sha256(),
    };
    let sig = match key {
        Key::Rsa(k) => {
            let mut s = Signer::new(md, k).unwrap();
            if alg.starts_with("PS") {
                s.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                s.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
            }
            s.sign_oneshot_to_vec(msg.as_bytes()).unwrap()
        }
        Key::Ec(k) => {
            let mut s = Signer::new(md, k).unwrap();
            let sig = EcdsaSig::from_der(&s.sign_oneshot_to_vec(msg.as_bytes()).unwrap()).unwrap();
            let n = k.bits().div_ceil(8) as i32;
            let mut raw = sig.r().to_vec_padded(n).unwrap();
            raw.extend(sig.s().to_vec_padded(n).unwrap());
            raw
        }
        Key::Ed(k) => {
            let mut s = Signer::new_without_digest(k).unwrap();
            s.sign_oneshot_to_vec(msg.as_bytes()).unwrap()
        }
        Key::Hmac(secret) => {
            let k = PKey::hmac(secret).unwrap();
            let mut s = Signer::new(md, &k).unwrap();
            s.sign_oneshot_to_vec(msg.as_bytes()).unwrap()
        }
    };
    format!("{msg}.{}", b64(&sig))
}

fn encoding_key(key: &Key) -> jsonwebtoken::EncodingKey {
    use jsonwebtoken::EncodingKey as K;
    match key {
        Key::Rsa(k) => K::from_rsa_der(&k.rsa().unwrap().private_key_to_der().unwrap()),
        Key::Ec(k) => K::from_ec_der(&k.private_key_to_pkcs8().unwrap()),
        Key::Ed(k) => K::from_ed_der(&k.private_key_to_pkcs8().unwrap()),
        Key::Hmac(s) => K::from_secret(s),
    }
}

/// The public JWK of `key`.
fn jwk(kid: &str, key: &Key) -> Value {
    match key {
        Key::Rsa(k) => {
            let r = k.rsa().unwrap();
            let (n, e) = (b64(&r.n().to_vec()), b64(&r.e().to_vec()));
            json!({"kty": "RSA", "kid": kid, "use": "sig", "n": n, "e": e})
        }
        Key::Ec(k) => {
            let ec = k.ec_key().unwrap();
            let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
            let mut ctx = BigNumContext::new().unwrap();
            let (group, point) = (ec.group(), ec.public_key());
            point
                .affine_coordinates(group, &mut x, &mut y, &mut ctx)
                .unwrap();
            let n = k.bits().div_ceil(8) as i32;
            let [x, y] = [x, y].map(|c| b64(&c.to_vec_padded(n).unwrap()));
            let crv = if n == 32 { "P-256" } else { "P-384" };
            json!({"kty": "EC", "kid": kid, "crv": crv, "x": x, "y": y})
        }
        Key::Ed(k) => {
            let x = b64(&k.raw_public_key().unwrap());
            json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": x})
        }
        Key::Hmac(s) => json!({"kty": "oct", "kid": kid, "k": b64(s)}),
    }
}

fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// `base` with the entries of `extra` set (a null removes the entry).
fn merge(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        match v {
            Value::Null => base.as_object_mut().unwrap().remove(k),
            _ => base.as_object_mut().unwrap().insert(k.clone(), v.clone()),
        };
    }
    base
}

/// Claims valid for ten minutes, changed by `extra`.
fn claims(extra: Value) -> Value {
    let now = now_secs();
    let base = json!({"sub": "alice", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600});
    merge(base, extra)
}

/// An RS256 token (or another algorithm, by key) with the given kid.
fn tok(kid: &str, i: usize, extra: Value) -> String {
    let alg = match i {
        EC => "ES256",
        ED => "EdDSA",
        _ => "RS256",
    };
    sign(alg, Some(kid), key(i), &claims(extra))
}

fn hs_token(extra: Value) -> String {
    sign("HS256", None, &Key::Hmac(SECRET.into()), &claims(extra))
}

fn problems(cfg: Value, default_audience: Option<&str>) -> Vec<String> {
    let cfg: JwtConfig = serde_json::from_value(cfg).unwrap();
    match JwtVerifier::new(&cfg, default_audience, AT) {
        Ok(_) => Vec::new(),
        Err(list) => list.iter().map(|p| p.to_string()).collect(),
    }
}

fn verifier(cfg: Value) -> JwtVerifier {
    let cfg: JwtConfig = serde_json::from_value(cfg).unwrap();
    JwtVerifier::new(&cfg, Some(AUD), AT).unwrap()
}

/// A verifier with the HS256 secret, the issuer, and `extra` settings.
fn hs(extra: Value) -> JwtVerifier {
    let base = json!({"secret": SECRET, "algorithms": ["HS256"], "issuer": ISS});
    verifier(merge(base, extra))
}

/// A verifier of the JWKS at `server`, with `extra` settings.
fn by_url(server: &JwksServer, extra: Value) -> JwtVerifier {
    let algs = ["RS256", "ES256", "EdDSA", "PS256"];
    let base = json!({"jwks_url": server.url, "algorithms": algs, "issuer": ISS});
    verifier(merge(base, extra))
}

async fn check(v: &JwtVerifier, token: &str) -> Outcome {
    v.verify(token).await.map(|_| ())
}

/// `expect! {verifier; token => outcome, ...}`: verifies each token, compares the outcome.
macro_rules! expect {
    ($v:expr; $($token:expr => $want:expr),+ $(,)?) => {{
        let v: &JwtVerifier = &$v;
        $(assert_eq!(check(v, &$token).await, $want, "{}", stringify!($token));)+
    }};
}

/// A JWKS server on 127.0.0.1:0 whose answer the test changes, counting requests.
struct JwksServer {
    url: String,
    body: Mutex<(u16, String)>,
    silent: bool,
    hits: AtomicUsize,
}

impl JwksServer {
    async fn start(body: String, silent: bool) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let body = Mutex::new((200, body));
        let server = Arc::new(JwksServer {
            url,
            body,
            silent,
            hits: AtomicUsize::new(0),
        });
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let (mut req, mut buf) = (Vec::new(), [0u8; 1024]);
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    s.hits.fetch_add(1, Ordering::SeqCst);
                    if s.silent {
                        return tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    let (status, body) = s.body.lock().unwrap().clone();
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(format!("{head}{body}").as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        server
    }

    fn set(&self, status: u16, body: String) {
        *self.body.lock().unwrap() = (status, body);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn valid_rs256_ps256_es256_eddsa_from_a_jwks_url() {
    let body = jwks(&[jwk("r", key(0)), jwk("e", key(EC)), jwk("d", key(ED))]);
    let server = JwksServer::start(body, false).await;
    let v = by_url(&server, json!({}));
    let c = claims(json!({"roles": ["admin"], "scope": "read write"}));
    let id = v
        .verify(&sign("RS256", Some("r"), key(0), &c))
        .await
        .unwrap();
    assert_eq!((id.method, id.subject.as_str()), (AuthMethod::Jwt, "alice"));
    assert_eq!(
        (id.roles.clone(), id.scopes.clone()),
        (vec!["admin".into()], vec!["read".into(), "write".into()])
    );
    assert_eq!(id.claims, c);
    expect! {v;
        tok("e", EC, json!({})) => OK,
        tok("d", ED, json!({})) => OK,
        sign("PS256", Some("r"), key(0), &c) => OK,
        // Without a kid, the keys that fit the algorithm are tried.
        sign("ES256", None, key(EC), &c) => OK,
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn valid_hs256_and_es256_from_a_file() {
    expect! {hs(json!({})); hs_token(json!({})) => OK}
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[jwk("e", key(EC))])).unwrap();
    expect! {verifier(json!({"jwks_file": file, "algorithms": ["ES256"]}));
        tok("e", EC, json!({})) => OK,
        sign("ES256", Some("e"), &new_ec(), &claims(json!({}))) => bad("bad signature"),
        tok("nope", EC, json!({})) => bad("unknown key"),
    }
}

#[tokio::test]
async fn every_algorithm_verifies_and_a_changed_signature_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (file, es384) = (dir.path().join("jwks.json"), new_ec_on(Nid::SECP384R1));
    let body = jwks(&[
        jwk("r", key(0)),
        jwk("e", key(EC)),
        jwk("p", &es384),
        jwk("d", key(ED)),
    ]);
    std::fs::write(&file, body).unwrap();
    let asym = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ];
    let v = verifier(json!({"jwks_file": file, "algorithms": asym}));
    let secret = "s".repeat(64);
    let h = verifier(json!({"secret": secret, "algorithms": ["HS256", "HS384", "HS512"]}));
    let hmac = Key::Hmac(secret.into_bytes());
    for alg in asym.iter().chain(&["HS256", "HS384", "HS512"]) {
        let (v, kid, k) = match &alg[..2] {
            "ES" if alg.ends_with("384") => (&v, "p", &es384),
            "ES" => (&v, "e", key(EC)),
            "Ed" => (&v, "d", key(ED)),
            "HS" => (&h, "x", &hmac),
            _ => (&v, "r", key(0)),
        };
        let t = sign(alg, Some(kid), k, &claims(json!({})));
        let flipped = format!(
            "{}{}",
            &t[..t.len() - 2],
            if t.ends_with("AA") { "BA" } else { "AA" }
        );
        let truncated = &t[..t.len() - 4];
        // The process-wide backend also signs, for `jsonwebtoken::encode` users.
        let mut header = jsonwebtoken::Header::new(alg.parse().unwrap());
        header.kid = Some(kid.into());
        let encoded = jsonwebtoken::encode(&header, &claims(json!({})), &encoding_key(k)).unwrap();
        expect! {v; t => OK, flipped => bad("bad signature"), encoded => OK}
        assert!(
            matches!(check(v, truncated).await, Err(AuthError::Invalid(_))),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn time_claims_and_leeway() {
    let now = now_secs();
    expect! {hs(json!({})); // leeway 30s
        hs_token(json!({"exp": now - 60})) => bad("expired"),
        hs_token(json!({"exp": now - 10})) => OK,
        hs_token(json!({"nbf": now + 10})) => OK,
        hs_token(json!({"nbf": now + 120})) => bad("not yet valid"),
        hs_token(json!({"exp": null})) => bad("missing claim"),
        hs_token(json!({"exp": "tomorrow"})) => bad("missing claim"),
    }
    expect! {hs(json!({"leeway": "0s"})); hs_token(json!({"exp": now - 10})) => bad("expired")}
    expect! {hs(json!({"leeway": "5m"})); hs_token(json!({"exp": now - 120})) => OK}
}

#[tokio::test]
async fn issuer_and_audience() {
    expect! {hs(json!({}));
        hs_token(json!({"iss": "https://evil.example/"})) => bad("wrong issuer"),
        hs_token(json!({"iss": null})) => bad("missing claim"),
        hs_token(json!({"aud": "https://other.example/mcp"})) => bad("wrong audience"),
        hs_token(json!({"aud": ["https://other.example", AUD]})) => OK,
        hs_token(json!({"aud": null})) => bad("missing claim"),
        hs_token(json!({"sub": null})) => bad("missing claim"),
    }
    expect! {hs(json!({"audience": ["a", "b"]}));
        hs_token(json!({"aud": "b"})) => OK,
        hs_token(json!({})) => bad("wrong audience"),
    }
    expect! {hs(json!({"audience_check": false})); hs_token(json!({"aud": "x"})) => OK}
}

#[tokio::test]
async fn required_scopes_any_and_all() {
    let all = hs(json!({"scopes": ["read", "write"]}));
    assert_eq!(all.required_scopes(), ["read", "write"]);
    let required = vec!["read".to_string(), "write".to_string()];
    let insufficient = Err(AuthError::InsufficientScope { required });
    expect! {all;
        hs_token(json!({"scope": "read"})) => insufficient,
        hs_token(json!({})) => insufficient,
        hs_token(json!({"scope": "write read x"})) => OK,
        hs_token(json!({"scp": ["read", "write"]})) => OK,
        hs_token(json!({"scope": "read", "scp": "write"})) => OK,
    }
    expect! {hs(json!({"scopes": ["read", "write"], "scopes_mode": "any"}));
        hs_token(json!({"scope": "write"})) => OK,
        hs_token(json!({"scope": "admin"})) => insufficient,
    }
}

#[tokio::test]
async fn required_roles_with_a_nested_claim_path() {
    let nested = json!({"roles": ["admin", "ops"], "roles_claim": "realm_access.roles"});
    let with = |roles: Value| hs_token(json!({"realm_access": {"roles": roles}}));
    expect! {hs(nested.clone());
        with(json!(["ops"])) => OK,
        with(json!(["user"])) => Err(AuthError::Forbidden),
        hs_token(json!({"roles": ["admin"]})) => Err(AuthError::Forbidden),
    }
    expect! {hs(merge(nested, json!({"roles_mode": "all"})));
        with(json!(["ops"])) => Err(AuthError::Forbidden),
        with(json!(["ops", "admin"])) => OK,
    }
    // A claim whose name contains dots (namespaced claims), as a space-separated string.
    let ns = hs(json!({"roles": ["admin"], "roles_claim": "https://example.com/roles"}));
    let t = hs_token(json!({"https://example.com/roles": "admin user"}));
    assert_eq!(ns.verify(&t).await.unwrap().roles, vec!["admin", "user"]);
}

#[tokio::test]
async fn alg_none_and_algorithm_confusion_are_rejected() {
    let server = JwksServer::start(jwks(&[jwk("r", key(0)), jwk("e", key(EC))]), false).await;
    let v = by_url(&server, json!({}));
    let c = claims(json!({}));
    let payload = b64(c.to_string().as_bytes());
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "kid": "r"}).to_string();
        let t = format!("{}.{payload}.", b64(header.as_bytes()));
        assert!(matches!(check(&v, &t).await, Err(AuthError::Invalid(_))));
        assert!(matches!(
            check(&hs(json!({})), &t).await,
            Err(AuthError::Invalid(_))
        ));
    }
    // HS256 "signed" with the RSA public key's PEM as the secret.
    let Key::Rsa(k) = key(0) else { unreachable!() };
    let pem = k.public_key_to_pem().unwrap();
    expect! {v;
        sign("HS256", Some("r"), &Key::Hmac(pem.clone()), &c) => bad("algorithm not allowed"),
        // A key never verifies another family's algorithm, even under its kid.
        sign("ES256", Some("r"), key(EC), &c) => bad("key does not fit the algorithm"),
        sign("EdDSA", Some("e"), key(ED), &c) => bad("key does not fit the algorithm"),
        // Not in the pinned list.
        sign("RS384", Some("r"), key(0), &c) => bad("algorithm not allowed"),
    }
    // A secret verifier whose secret is that very PEM refuses an RS256 token.
    let pem = String::from_utf8(pem).unwrap();
    expect! {hs(json!({"secret": pem})); tok("r", 0, json!({})) => bad("algorithm not allowed")}
}

#[tokio::test]
async fn a_jwks_key_alg_must_match_the_token() {
    let k = merge(jwk("r", key(0)), json!({"alg": "PS256"}));
    let server = JwksServer::start(jwks(&[k]), false).await;
    let c = claims(json!({}));
    expect! {by_url(&server, json!({}));
        sign("RS256", Some("r"), key(0), &c) => bad("key does not fit the algorithm"),
        sign("PS256", Some("r"), key(0), &c) => OK,
    }
}

#[tokio::test]
async fn unknown_kid_triggers_one_rate_limited_refresh() {
    let server = JwksServer::start(jwks(&[jwk("a", key(0))]), false).await;
    let v = by_url(&server, json!({}));
    expect! {v; tok("a", 0, json!({})) => OK}
    assert_eq!(server.hits(), 1);
    for i in 0..5 {
        expect! {v; tok(&format!("garbage-{i}"), 0, json!({})) => bad("unknown key")}
    }
    assert_eq!(server.hits(), 2, "one refresh within min_refresh_interval");
    assert_eq!(v.jwks_fetches(), 2);
}

#[tokio::test]
async fn key_rotation_is_picked_up_and_removed_keys_stop_working() {
    let server = JwksServer::start(jwks(&[jwk("a", key(0))]), false).await;
    let v = by_url(&server, json!({"min_refresh_interval": "100ms"}));
    let (old, new) = (tok("a", 0, json!({})), tok("b", 1, json!({})));
    expect! {v; old => OK}
    server.set(200, jwks(&[jwk("a", key(0)), jwk("b", key(1))]));
    expect! {v; new => OK}
    assert_eq!(server.hits(), 2, "the new kid was fetched once");
    // The IdP drops key a; a token with an unknown kid brings the new set.
    server.set(200, jwks(&[jwk("b", key(1))]));
    tokio::time::sleep(Duration::from_millis(150)).await;
    expect! {v; tok("c", 2, json!({})) => bad("unknown key")}
    assert_eq!(server.hits(), 3);
    // The cached verification of `old` belonged to the previous key set.
    expect! {v; old => bad("unknown key"), new => OK}
}

#[tokio::test]
async fn unreachable_jwks_gives_keys_unavailable_in_bounded_time() {
    let t = tok("a", 0, json!({}));
    // A closed port: connection refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", closed.local_addr().unwrap());
    drop(closed);
    let start = Instant::now();
    expect! {verifier(json!({"jwks_url": url, "algorithms": ["RS256"]})); t => Err(AuthError::KeysUnavailable)}
    assert!(start.elapsed() < Duration::from_secs(3));
    // A server that accepts and never answers: the fetch timeout bounds the wait.
    let silent = JwksServer::start(String::new(), true).await;
    let v = by_url(&silent, json!({"jwks_timeout": "1s"}));
    let start = Instant::now();
    expect! {v; t => Err(AuthError::KeysUnavailable)}
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // Within min_refresh_interval, further requests fail at once without fetching again (a new
    // fetch would wait out the 1 s timeout).
    let start = Instant::now();
    expect! {v; t => Err(AuthError::KeysUnavailable)}
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(silent.hits(), 1);
}

#[tokio::test]
async fn failed_background_refresh_keeps_the_last_good_keys() {
    let server = JwksServer::start(jwks(&[jwk("a", key(0))]), false).await;
    let v = by_url(
        &server,
        json!({"refresh_interval": "200ms", "min_refresh_interval": "100ms"}),
    );
    expect! {v; tok("a", 0, json!({})) => OK}
    server.set(500, String::new());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        server.hits() >= 3,
        "background refreshes ran: {}",
        server.hits()
    );
    expect! {v; tok("a", 0, json!({"jti": "2"})) => OK}
    // Content without a usable key is a failed refresh too.
    server.set(200, "{\"keys\": 5}".into());
    tokio::time::sleep(Duration::from_millis(400)).await;
    expect! {v; tok("a", 0, json!({"jti": "3"})) => OK}
}

#[tokio::test]
async fn garbage_tokens_are_invalid() {
    let server = JwksServer::start(jwks(&[jwk("a", key(0))]), false).await;
    let rv = by_url(&server, json!({}));
    let good = tok("a", 0, json!({}));
    let p: Vec<&str> = good.split('.').collect();
    let root = b64(claims(json!({"sub": "root"})).to_string().as_bytes());
    let mut garbage: Vec<String> = "abc a.b a.b.c .... eyJ.eyJ.sig x..y"
        .split(' ')
        .map(String::from)
        .collect();
    garbage.extend([String::new(), "Bearer x.y.z".into(), "a".repeat(20_000)]);
    garbage.extend([format!("{}.{}", p[0], p[1]), format!("{good}.x")]);
    garbage.extend([
        format!("{}.{}.!!!", p[0], p[1]),
        format!("{}.bm90IGpzb24.{}", p[0], p[2]),
    ]);
    garbage.extend([
        format!("{}.{}.{}", b64(b"[1]"), p[1], p[2]),
        format!("{}.{root}.{}", p[0], p[2]),
    ]);
    for (i, g) in garbage.iter().enumerate() {
        for v in [&rv, &hs(json!({}))] {
            assert!(
                matches!(check(v, g).await, Err(AuthError::Invalid(_))),
                "case {i}"
            );
        }
    }
    expect! {rv; good => OK}
}

#[tokio::test]
async fn a_cached_token_costs_no_fetch_and_no_signature_check() {
    let server = JwksServer::start(jwks(&[jwk("a", key(0))]), false).await;
    let v = by_url(&server, json!({"scopes": ["read"], "leeway": "0s"}));
    let t = tok("a", 0, json!({"scope": "read"}));
    let first = v.verify(&t).await.unwrap();
    assert_eq!((server.hits(), v.signature_checks()), (1, 1));
    for _ in 0..3 {
        assert_eq!(v.verify(&t).await.unwrap(), first);
    }
    assert_eq!((server.hits(), v.signature_checks()), (1, 1));
    // Authorization still applies to cached identities.
    let narrow = tok("a", 0, json!({"scope": "other"}));
    for _ in 0..2 {
        assert!(matches!(
            check(&v, &narrow).await,
            Err(AuthError::InsufficientScope { .. })
        ));
    }
    assert_eq!(v.signature_checks(), 2);
    // An entry never outlives the token's exp.
    let short = tok("a", 0, json!({"exp": now_secs() + 1, "scope": "read"}));
    expect! {v; short => OK}
    tokio::time::sleep(Duration::from_millis(2100)).await;
    expect! {v; short => bad("expired")}
    // cache_size 0 disables the cache.
    let off = hs(json!({"cache_size": 0}));
    let t = hs_token(json!({}));
    expect! {off; t => OK, t => OK, t => OK}
    assert_eq!(off.signature_checks(), 3);
}

#[tokio::test]
async fn claims_are_propagated_to_headers() {
    let map = json!({"sub": "X-User", "realm_access.roles": "x-roles", "tenant.id": "X-Tenant",
        "missing": "X-Missing", "evil": "X-Evil"});
    let v = hs(json!({ "propagate_claims": map }));
    let extra =
        json!({"realm_access": {"roles": ["a", "b"]}, "tenant": {"id": 7}, "evil": "a\r\nB: 1"});
    let id = v.verify(&hs_token(extra)).await.unwrap();
    let mut got = v.propagated_headers(&id);
    got.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let want = [
        ("x-roles", r#"["a","b"]"#),
        ("x-tenant", "7"),
        ("x-user", "alice"),
    ];
    assert_eq!(format!("{got:?}"), format!("{want:?}"));
    let mut names = v.propagated_header_names().to_vec();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let want = ["x-evil", "x-missing", "x-roles", "x-tenant", "x-user"];
    assert_eq!(format!("{names:?}"), format!("{want:?}"));
}

/// Asserts that `cfg` gets a problem starting with `want` (after the block's path), and that
/// no problem shows the secret.
fn assert_problem(cfg: Value, want: &str) -> Vec<String> {
    let got = problems(cfg.clone(), Some(AUD));
    let found = got.iter().any(|g| g.starts_with(&format!("{AT}{want}")));
    assert!(
        found && !got.iter().any(|g| g.contains(SECRET)),
        "{cfg}: {want:?} in {got:#?}"
    );
    got
}

/// `assert_problems! {config => expected problem after the block's path, ...}`.
macro_rules! assert_problems {
    ($($cfg:expr => $want:expr),+ $(,)?) => {
        $(assert_problem($cfg, $want);)+
    };
}

#[test]
fn config_errors_list_every_problem_with_its_path() {
    let cfg = json!({"jwks_url": "ftp://idp.example/keys", "leeway": "forever",
        "algorithms": ["RS256", "RS999", "none", "RS256", "HS256"], "refresh_interval": "0s",
        "roles_claim": "a..b", "roles": [""], "scopes": ["two words"], "cache_size": 5_000_000,
        "propagate_claims": {"sub": "bad header", "email": "Host", "name": "X-Sub", "x.": "X-Sub"}});
    let got = problems(cfg, None);
    let want = [
        "algorithms[1]: unknown algorithm \"RS999\"",
        "algorithms[2]: \"none\"",
        "algorithms[3]: RS256 is listed twice",
        "algorithms: HS256 needs secret",
        "leeway: invalid duration \"forever\"",
        "refresh_interval: must be longer than zero",
        "jwks_url: scheme \"ftp\" is not http or https",
        "audience: required",
        "roles_claim: invalid claim path",
        "roles[0]: must not be empty",
        "scopes[0]: invalid scope",
        "propagate_claims.sub: invalid header name",
        "propagate_claims.email: header \"Host\" cannot carry a claim",
        "propagate_claims.x.: invalid claim path",
        "propagate_claims.x.: header \"X-Sub\" is used twice",
        "cache_size: at most",
    ];
    for w in want.map(|w| format!("{AT}.{w}")) {
        assert!(got.iter().any(|g| g.starts_with(&w)), "{w:?} in {got:#?}");
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let hs256 = json!({"secret": SECRET, "algorithms": ["HS256"]});
    assert_problems! {
        json!({"algorithms": ["RS256"]}) => ": one of jwks_url, jwks_file or secret is required",
        merge(hs256.clone(), json!({"jwks_url": "https://x/"})) => ": set only one of",
        json!({"secret": "short", "algorithms": ["HS256"]}) => ".secret: too short: 5 bytes, at least 32",
        json!({"secret": SECRET, "algorithms": ["HS512"]}) => ".secret: too short: 32 bytes, at least 64",
        json!({"secret": SECRET, "algorithms": ["HS256", "ES256"]}) => ".algorithms: ES256 needs jwks_url",
        json!({"secret": SECRET, "algorithms": []}) => ".algorithms: required",
        merge(hs256.clone(), json!({"jwks_timeout": "1s"})) => ".jwks_timeout: applies only",
        merge(hs256.clone(), json!({"audience": "x", "audience_check": false})) => ".audience: is ignored",
        json!({"jwks_url": "not a url", "algorithms": ["RS256"]}) => ".jwks_url: invalid URL",
        json!({"jwks_file": missing, "algorithms": ["RS256"]}) => ".jwks_file: cannot read",
    }
    // JWKS files: unusable content, and keys that verify none of the listed algorithms.
    let file = dir.path().join("jwks.json");
    let weak = jwks(&[jwk("s", &new_rsa(1024)), jwk("h", &Key::Hmac(vec![1; 32]))]);
    let ec = jwk("e", key(EC));
    let off_curve = jwks(&[merge(ec.clone(), json!({"y": ec["x"]}))]);
    for (body, want) in [
        ("nope".into(), "not JSON"),
        (
            weak,
            "keys[0]: RSA key of 1024 bits (at least 2048 needed); keys[1]: symmetric",
        ),
        (off_curve, "keys[0]: invalid EC key: not on its curve"),
        (jwks(&[ec]), "no key in"),
    ] {
        std::fs::write(&file, body).unwrap();
        let got = assert_problem(
            json!({"jwks_file": file, "algorithms": ["RS256"]}),
            ".jwks_file: ",
        );
        assert!(got.len() == 1 && got[0].contains(want), "{got:?}");
    }
    let fine = merge(hs256, json!({"audience_check": false}));
    assert!(problems(fine.clone(), None).is_empty());
    let cfg: JwtConfig = serde_json::from_value(fine).unwrap();
    assert!(!format!("{cfg:?}").contains(SECRET));
}

#[test]
fn the_verifier_and_its_future_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let v = hs(json!({}));
    send_sync(&v);
    send(&v.verify("x"));
}

#[tokio::test]
async fn a_crit_header_refuses_hs256_and_rs256_tokens() {
    let refused = bad("critical header parameter not understood");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[jwk("r", key(0))])).unwrap();
    let rs = verifier(json!({"jwks_file": file, "algorithms": ["RS256"], "issuer": ISS}));
    let c = claims(json!({}));
    let hmac = Key::Hmac(SECRET.into());
    let crits = [
        json!(["exp"]),                  // a registered claim name, as if it were an extension
        json!(["kid"]),                  // a header parameter the verifier does know
        json!(["http://example.com/x"]), // an unknown extension
        json!([]),                       // empty: invalid per RFC 7515
        json!("exp"),                    // not an array
        json!(null),
    ];
    for crit in crits {
        let hs_header = json!({"alg": "HS256", "typ": "JWT", "crit": crit.clone()});
        let hs_token = sign_header("HS256", hs_header, &hmac, &c);
        assert_eq!(
            check(&hs(json!({})), &hs_token).await,
            refused,
            "HS256 crit {crit}"
        );
        let rs_header = json!({"alg": "RS256", "kid": "r", "crit": crit.clone()});
        let rs_token = sign_header("RS256", rs_header, key(0), &c);
        assert_eq!(check(&rs, &rs_token).await, refused, "RS256 crit {crit}");
    }
    // The same tokens without `crit` pass: the refusal is the crit member, nothing else.
    let hs_token = sign_header("HS256", json!({"alg": "HS256", "typ": "JWT"}), &hmac, &c);
    expect! {hs(json!({})); hs_token => OK}
    let rs_token = sign_header("RS256", json!({"alg": "RS256", "kid": "r"}), key(0), &c);
    expect! {rs; rs_token => OK}
    // An escaped member name is the same name.
    let escaped = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","cr\u0069t":["x"]}"#),
        b64(c.to_string().as_bytes())
    );
    assert!(super::crypto::names_crit(&escaped));
}

//! Authentication at the gateway: API keys, Basic, OAuth protected-resource metadata and the
//! 401/403 answers that point clients to it. The upstream receives nothing on failure.

use crate::support::Gateway;
use crate::upstreams::recording;
use mcpgate::policy::auth::api_key::hash_key;
use serde_json::Value;

const CALL: &str = r#"{"jsonrpc":"2.0","id":0,"method":"tools/call","params":{"name":"echo"}}"#;

fn post(gw: &Gateway) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .body(CALL)
}

#[tokio::test]
async fn api_keys_and_basic_auth() {
    let up = recording("a", 200, "{}").await;
    let hash = hash_key("mcpk_test-key-1");
    let bcrypt = bcrypt::hash("s3cret pass", 4).unwrap();
    let gw = Gateway::start(&format!(
        "public_url: https://mcp.example.com\npolicies:\n  auth:\n    api_keys:\n      keys:\n        - {{name: ci-bot, sha256: \"{hash}\", roles: [deployer]}}\n    basic:\n      users:\n        - {{name: alice, bcrypt: \"{bcrypt}\"}}\nendpoints:\n  - path: /mcp\n    input_headers: [\"*\"]\n    backend:\n      hosts: [http://{}]\n",
        up.addr
    ));

    // Missing credentials: 401 with a challenge for each accepted method; JSON-RPC error with id 0.
    let resp = post(&gw).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("Basic realm=\"mcpgate\""), "{challenge}");
    assert!(
        challenge.contains("ApiKey header=\"x-api-key\""),
        "{challenge}"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["id"], 0);
    assert_eq!(v["error"]["data"]["status"], 401);

    for (name, value) in [
        ("x-api-key", "mcpk_test-key-2"),
        ("x-api-key", ""),
        ("authorization", "Basic YWxpY2U6d3Jvbmc="),
    ] {
        let resp = post(&gw).header(name, value).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{name}: {value}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"]["data"]["reason"],
            "unauthorized"
        );
    }
    assert!(
        up.requests().is_empty(),
        "failed authentication never reaches the upstream"
    );

    let ok = post(&gw)
        .header("x-api-key", "mcpk_test-key-1")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let seen = &up.requests()[0];
    assert!(
        seen.headers.get("x-api-key").is_none(),
        "the gateway's credential is not forwarded, even with input_headers: *"
    );

    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cret pass");
    for _ in 0..2 {
        let ok = post(&gw)
            .header("authorization", format!("Basic {basic}"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    let seen = up.requests();
    assert!(
        seen[1].headers.get("authorization").is_none(),
        "Authorization is never forwarded unless listed by name"
    );
    let log = gw.access_log();
    assert!(
        !std::fs::read_to_string(gw.dir.path().join("stderr.log"))
            .unwrap()
            .contains("mcpk_test-key-1"),
        "secrets never logged"
    );
    assert!(!log.is_empty());
}

#[tokio::test]
async fn oauth_metadata_and_bearer_challenges() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::start(&format!(
        "public_url: https://mcp.example.com\npolicies:\n  oauth:\n    authorization_servers: [https://auth.example.com]\n    resource_name: Demo\n  auth:\n    jwt:\n      secret: \"0123456789abcdef0123456789abcdef\"\n      algorithms: [HS256]\n      scopes: [mcp:tools]\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
        up.addr
    ));
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let resp = reqwest::get(gw.url(path)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://auth.example.com");
        assert_eq!(doc["scopes_supported"][0], "mcp:tools");
        assert_eq!(doc["bearer_methods_supported"][0], "header");
    }
    assert_eq!(
        reqwest::get(gw.url("/.well-known/oauth-protected-resource/other"))
            .await
            .unwrap()
            .status(),
        404
    );

    let meta =
        "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\"";
    let resp = post(&gw).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let c = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        c.starts_with("Bearer ") && c.contains(meta) && c.contains("scope=\"mcp:tools\""),
        "{c}"
    );
    assert!(
        !c.contains("error="),
        "no error code when no credentials were sent: {c}"
    );

    for token in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        let resp = post(&gw)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{token}");
        let c = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            c.contains(meta) && c.contains("error=\"invalid_token\""),
            "{c}"
        );
    }
    // The token in the query string is never used.
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp?access_token=whatever"))
        .header("content-type", "application/json")
        .body(CALL)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn an_authenticating_upstream_gets_the_gateways_resource_urls() {
    use axum::response::IntoResponse;
    let router = axum::Router::new()
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            axum::routing::get(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"resource":"http://10.9.9.9:3000/mcp","authorization_servers":["https://auth.example.com"]}"#,
                )
            }),
        )
        .route(
            "/mcp",
            axum::routing::post(|| async {
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    [("www-authenticate", "Bearer resource_metadata=\"http://10.9.9.9:3000/.well-known/oauth-protected-resource/mcp\"")],
                    "",
                )
                    .into_response()
            }),
        );
    let up = crate::upstreams::Upstream::start(router).await;
    let gw = Gateway::start(&format!(
        "public_url: https://gw.example.com\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{a}]\n  - path: /keyed\n    backend:\n      hosts: [http://{a}]\n      path: /mcp\n    policies:\n      auth:\n        api_keys:\n          keys:\n            - {{name: bot, sha256: \"{hash}\"}}\n",
        a = up.addr,
        hash = mcpgate::policy::auth::api_key::hash_key("k"),
    ));
    let resp = post(&gw).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer resource_metadata=\"https://gw.example.com/.well-known/oauth-protected-resource/mcp\""
    );
    let resp = reqwest::get(gw.url("/.well-known/oauth-protected-resource/mcp"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["resource"], "https://gw.example.com/mcp");
    assert_eq!(doc["authorization_servers"][0], "https://auth.example.com");

    // An endpoint the gateway authenticates itself, without an `oauth` block, publishes no
    // metadata: the upstream's is not relayed (it would name authorization servers whose tokens
    // the gateway does not take).
    let resp = reqwest::get(gw.url("/.well-known/oauth-protected-resource/keyed"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("authorization_servers").is_none(), "{body}");
    assert!(body["error"].is_object(), "{body}");
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn jwt_tokens_from_a_jwks_server() {
    use base64::Engine;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    mcpgate::policy::auth::jwt::install_crypto_provider();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let jwks = serde_json::json!({"keys": [{
        "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
        "n": b64.encode(rsa.n().to_vec()), "e": b64.encode(rsa.e().to_vec()),
    }]})
    .to_string();
    let key = EncodingKey::from_rsa_der(&rsa.private_key_to_der().unwrap());
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    let jwks_server = crate::upstreams::Upstream::start(axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let body = jwks.clone();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { ([("content-type", "application/json")], body) }
        }),
    ))
    .await;

    let up = recording("a", 200, "{}").await;
    let gw = Gateway::start(&format!(
        "public_url: https://mcp.example.com\npolicies:\n  oauth:\n    authorization_servers: [https://auth.example.com]\n  auth:\n    jwt:\n      jwks_url: http://{}/jwks.json\n      algorithms: [RS256]\n      issuer: https://auth.example.com\n      scopes: [mcp:tools]\n      propagate_claims: {{sub: X-User-Id}}\nendpoints:\n  - path: /mcp\n    input_headers: [\"*\"]\n    backend:\n      hosts: [http://{}]\n",
        jwks_server.addr, up.addr
    ));
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let token = |claims: serde_json::Value| encode(&header, &claims, &key).unwrap();
    let good = serde_json::json!({
        "sub": "alice", "iss": "https://auth.example.com", "aud": "https://mcp.example.com/mcp",
        "exp": now() + 300, "scope": "mcp:tools other",
    });

    for _ in 0..2 {
        let resp = post(&gw)
            .header("authorization", format!("Bearer {}", token(good.clone())))
            .header("x-user-id", "mallory")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let fetched = fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert!(fetched >= 1);
    // A reload keeps the JWKS cache: a new token verifies without fetching the keys again.
    let r = gw.reload().await;
    assert_eq!(r.status(), 200);
    let mut fresh = good.clone();
    fresh["exp"] = (now() + 301).into();
    let resp = post(&gw)
        .header("authorization", format!("Bearer {}", token(fresh)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), fetched);
    let seen = up.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].headers["x-user-id"], "alice",
        "claims overwrite what the client sent"
    );
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "no token passthrough"
    );

    let mut expired = good.clone();
    expired["exp"] = (now() - 3600).into();
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = "https://other.example.com".into();
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = "https://evil.example.com".into();
    let mut not_yet = good.clone();
    not_yet["nbf"] = (now() + 3600).into();
    for (what, claims) in [
        ("expired", expired),
        ("audience", wrong_aud),
        ("issuer", wrong_iss),
        ("nbf", not_yet),
    ] {
        let resp = post(&gw)
            .header("authorization", format!("Bearer {}", token(claims)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        let c = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(c.contains("error=\"invalid_token\""), "{what}: {c}");
    }
    let mut no_scope = good.clone();
    no_scope["scope"] = "other".into();
    let resp = post(&gw)
        .header("authorization", format!("Bearer {}", token(no_scope)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let c = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"mcp:tools\""),
        "{c}"
    );

    // HS256 "signed" with the RSA public key as the secret: algorithm confusion is refused.
    let public_pem = rsa.public_key_to_pem().unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let forged = encode(&hs, &good, &EncodingKey::from_secret(&public_pem)).unwrap();
    let resp = post(&gw)
        .header("authorization", format!("Bearer {forged}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        up.requests().len(),
        3,
        "nothing reaches the upstream on failure"
    );
}

#[tokio::test]
async fn unreachable_jwks_is_a_clean_503_not_a_hang() {
    let up = recording("a", 200, "{}").await;
    let dead = crate::support::dead_addr();
    let gw = Gateway::start(&format!(
        "policies:\n  auth:\n    jwt:\n      jwks_url: http://{dead}/jwks.json\n      algorithms: [RS256]\n      jwks_timeout: 1s\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
        up.addr
    ));
    let started = std::time::Instant::now();
    let resp = post(&gw)
        .header(
            "authorization",
            "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0.c2ln",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    assert!(started.elapsed().as_secs() < 5);
    assert!(up.requests().is_empty());
}

/// A compact JWT with a hand-made protected header (jsonwebtoken cannot write every `crit`
/// shape): HS256 with `secret`, or RS256 with `rsa`.
fn raw_jwt(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    secret: &[u8],
    rsa: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let msg = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let md = openssl::hash::MessageDigest::sha256();
    let sig = if header["alg"] == "HS256" {
        let key = openssl::pkey::PKey::hmac(secret).unwrap();
        openssl::sign::Signer::new(md, &key)
            .unwrap()
            .sign_oneshot_to_vec(msg.as_bytes())
            .unwrap()
    } else {
        openssl::sign::Signer::new(md, rsa)
            .unwrap()
            .sign_oneshot_to_vec(msg.as_bytes())
            .unwrap()
    };
    format!("{msg}.{}", b64.encode(sig))
}

#[tokio::test]
async fn crit_headers_and_repeated_authorization_are_refused() {
    use base64::Engine;
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let jwks = serde_json::json!({"keys": [{
        "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
        "n": b64.encode(rsa.n().to_vec()), "e": b64.encode(rsa.e().to_vec()),
    }]});
    let rsa = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = crate::support::temp_file(&dir, "jwks.json", &jwks.to_string());
    let bcrypt = bcrypt::hash("s3cret pass", 4).unwrap();
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::start(&format!(
        "public_url: https://mcp.example.com\nendpoints:\n  - path: /hs\n    backend:\n      hosts: [http://{up}]\n    policies:\n      auth:\n        jwt:\n          secret: \"{SECRET}\"\n          algorithms: [HS256]\n          audience: mcpgate\n        basic:\n          users:\n            - {{name: alice, bcrypt: \"{bcrypt}\"}}\n  - path: /rs\n    backend:\n      hosts: [http://{up}]\n    policies:\n      auth:\n        jwt:\n          jwks_file: {jwks}\n          algorithms: [RS256]\n          audience: mcpgate\n",
        up = up.addr,
        jwks = jwks_file.display(),
    ));
    let claims = serde_json::json!({"sub": "alice", "aud": "mcpgate", "exp": now() + 300});
    let token = |alg: &str, crit: Option<serde_json::Value>| {
        let mut header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": "k1"});
        if let Some(c) = crit {
            header["crit"] = c;
        }
        raw_jwt(&header, &claims, SECRET.as_bytes(), &rsa)
    };
    let send = |path: &'static str, auth: Vec<String>| {
        let mut r = reqwest::Client::new()
            .post(gw.url(path))
            .header("content-type", "application/json")
            .body(CALL);
        for a in auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    // The same tokens without `crit` are accepted: what follows is refused for `crit` alone.
    for (path, alg) in [("/hs", "HS256"), ("/rs", "RS256")] {
        let resp = send(path, vec![format!("Bearer {}", token(alg, None))])
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{alg} without crit");
    }
    assert_eq!(up.requests().len(), 2);

    let crits = [
        serde_json::json!(["exp"]),
        serde_json::json!(["https://example.com/unknown-extension"]),
        serde_json::json!([]),
        serde_json::json!("exp"),
        serde_json::json!({"exp": true}),
    ];
    for (path, alg) in [("/hs", "HS256"), ("/rs", "RS256")] {
        for crit in &crits {
            let bearer = format!("Bearer {}", token(alg, Some(crit.clone())));
            let resp = send(path, vec![bearer]).await.unwrap();
            assert_eq!(resp.status(), 401, "{alg} crit {crit}");
            let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.contains("Bearer") && challenge.contains("invalid_token"),
                "{alg} crit {crit}: {challenge}"
            );
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["id"], 0, "{alg} crit {crit}");
            assert_eq!(v["error"]["data"]["reason"], "unauthorized");
        }
    }

    let good = format!("Bearer {}", token("HS256", None));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret pass")
    );
    for (what, values) in [
        ("two valid bearer tokens", vec![good.clone(), good.clone()]),
        (
            "a valid and an invalid one",
            vec![good.clone(), "Bearer nope".into()],
        ),
        (
            "an invalid and a valid one",
            vec!["Bearer nope".into(), good.clone()],
        ),
        (
            "bearer and basic, both valid",
            vec![good.clone(), basic.clone()],
        ),
        (
            "basic and bearer, both valid",
            vec![basic.clone(), good.clone()],
        ),
    ] {
        let resp = send("/hs", values).await.unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        assert!(
            resp.headers().contains_key("www-authenticate"),
            "{what}: a 401 carries a challenge"
        );
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["id"], 0, "{what}");
        assert_eq!(v["error"]["data"]["reason"], "unauthorized", "{what}");
    }
    // Each credential alone is fine.
    assert_eq!(send("/hs", vec![basic]).await.unwrap().status(), 200);
    assert_eq!(
        up.requests().len(),
        3,
        "refused requests never reach the upstream"
    );
    let log = gw.access_log_when(3 + 10 + 5).await;
    let reasons: Vec<&str> = log.iter().filter_map(|l| l["error"].as_str()).collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("critical header parameter not understood"))
            .count(),
        10,
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("repeated authorization header"))
            .count(),
        5,
        "{reasons:?}"
    );
}

//! Transparent relay: bodies and statuses unchanged, header allow-lists, `X-Forwarded-*`, `Host`.

use crate::support::Gateway;
use crate::upstreams::recording;

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

#[tokio::test]
async fn bodies_statuses_and_mcp_headers_pass_through() {
    let up = recording("a", 200, r#"{"jsonrpc":"2.0","id":0,"result":{"ok":true}}"#).await;
    let gw = Gateway::in_front_of(&[up.addr], "");
    let client = reqwest::Client::new();
    let resp = client
        .post(gw.url("/mcp?token=secret&x=1"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .header("mcp-param-region", "eu")
        .header("mcp-session-id", "s-1")
        .header("last-event-id", "41")
        .header("authorization", "Bearer client-token")
        .header("cookie", "c=1")
        .header("x-forwarded-for", "6.6.6.6")
        .header("user-agent", "test-agent")
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "a");
    assert!(
        resp.headers().get("x-hop").is_none(),
        "Connection-nominated header must go"
    );
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"jsonrpc":"2.0","id":0,"result":{"ok":true}}"#
    );

    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(
        r.body.as_ref(),
        INIT.as_bytes(),
        "the body reaches the upstream byte for byte"
    );
    assert_eq!(r.uri.path(), "/mcp");
    assert_eq!(
        r.uri.query(),
        None,
        "query strings are not forwarded by default"
    );
    let h = &r.headers;
    for (name, value) in [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
        ("mcp-param-region", "eu"),
        ("mcp-session-id", "s-1"),
        ("last-event-id", "41"),
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
    ] {
        assert_eq!(
            h.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name}"
        );
    }
    assert_eq!(
        h["host"],
        up.addr.to_string().as_str(),
        "Host is the upstream's"
    );
    assert_eq!(
        h["x-forwarded-host"],
        gw.base.trim_start_matches("http://"),
        "X-Forwarded-Host is what the client asked for"
    );
    for absent in ["authorization", "cookie", "user-agent"] {
        assert!(h.get(absent).is_none(), "{absent} must not be forwarded");
    }
}

#[tokio::test]
async fn allow_lists_are_configurable() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::start(&format!(
        "endpoints:\n  - path: /mcp\n    input_headers: [Content-Type, Authorization, X-Team-*]\n    input_query_strings: [tenant]\n    backend:\n      hosts: [http://{}]\n      path: /upstream/mcp\n",
        up.addr
    ));
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp?tenant=acme&token=secret"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer t")
        .header("x-team-id", "7")
        .header("accept", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.requests();
    let r = seen.last().unwrap();
    assert_eq!(r.uri.path(), "/upstream/mcp");
    assert_eq!(r.uri.query(), Some("tenant=acme"));
    assert_eq!(r.headers["authorization"], "Bearer t");
    assert_eq!(r.headers["x-team-id"], "7");
    assert!(r.headers.get("accept").is_none());
}

#[tokio::test]
async fn upstream_error_answers_pass_through_unchanged() {
    // A 2026-07-28 client probes with server/discover; an older server answers 400, and the
    // client relies on seeing exactly that answer to fall back to initialize.
    let body = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}"#;
    let up = recording("a", 400, body).await;
    let gw = Gateway::in_front_of(&[up.addr], "");
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .header("mcp-method", "server/discover")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["x-upstream"], "a");
    assert_eq!(resp.text().await.unwrap(), body);

    for status in [202u16, 404, 500] {
        let up = recording("b", status, "").await;
        let gw = Gateway::in_front_of(&[up.addr], "");
        let resp = reqwest::Client::new()
            .delete(gw.url("/mcp"))
            .header("mcp-session-id", "gone")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(up.requests()[0].method, "DELETE");
        assert_eq!(up.requests()[0].headers["mcp-session-id"], "gone");
    }
}

#[tokio::test]
async fn tls_listener_serves_mcp() {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509NameBuilder, X509};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "localhost").unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&cert.x509v3_context(None, None))
        .unwrap();
    cert.append_extension(san).unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = cert.build();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, cert.to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();

    let up = recording("a", 200, r#"{"jsonrpc":"2.0","id":0,"result":{}}"#).await;
    let tls_port = crate::support::free_port();
    // A second listener with TLS next to the plain one.
    let gw = Gateway::start_with_listen(
        &format!(
            "  - address: 127.0.0.1:{tls_port}\n    tls: {{cert: {}, key: {}}}\n",
            cert_path.display(),
            key_path.display()
        ),
        &format!(
            "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
            up.addr
        ),
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert.to_pem().unwrap()).unwrap())
        .build()
        .unwrap();
    let resp = client
        .post(format!("https://127.0.0.1:{tls_port}/mcp"))
        .header("content-type", "application/json")
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"jsonrpc":"2.0","id":0,"result":{}}"#
    );
    let seen = up.requests();
    assert_eq!(seen.last().unwrap().headers["x-forwarded-proto"], "https");
    drop(gw);
}

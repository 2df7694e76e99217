//! Security policies at the edge: IP filter with trusted proxies, CORS, payload and header
//! limits, header injection.

use crate::support::Gateway;
use crate::upstreams::recording;
use serde_json::Value;

const PING: &str = r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;

#[tokio::test]
async fn ip_filter_uses_forwarded_for_only_from_trusted_proxies() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::start(&format!(
        "client_address:\n  trusted_proxies: [127.0.0.1/32]\npolicies:\n  ip_filter:\n    allow: [203.0.113.0/24]\n    deny: [203.0.113.66]\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
        up.addr
    ));
    let client = reqwest::Client::new();
    let send = |xff: Option<&'static str>| {
        let mut r = client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .body(PING);
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        r.send()
    };
    let ok = send(Some("198.51.100.1, 203.0.113.7")).await.unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap_or_default());
    assert_eq!(
        up.requests()[0].headers["x-forwarded-for"],
        "203.0.113.7",
        "the resolved client goes upstream"
    );
    for (xff, reason) in [
        (None, "ip_not_allowed"),
        (Some("203.0.113.66"), "ip_denied"),
        (Some("192.0.2.1"), "ip_not_allowed"),
    ] {
        let resp = send(xff).await.unwrap();
        assert_eq!(resp.status(), 403, "{xff:?}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["id"], 5);
        assert_eq!(v["error"]["data"]["reason"], reason);
    }
    assert_eq!(
        up.requests().len(),
        1,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn cors_preflight_and_actual_requests() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::start(&format!(
        "policies:\n  cors:\n    allowed_origins: [\"https://app.example.com\"]\n    allow_credentials: true\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
        up.addr
    ));
    let client = reqwest::Client::new();
    let pre = client
        .request(reqwest::Method::OPTIONS, gw.url("/mcp"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, mcp-protocol-version, authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    let h = pre.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-allow-methods"], "GET, POST, DELETE");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("mcp-protocol-version"));
    assert_eq!(h["access-control-max-age"], "600");

    let bad = client
        .request(reqwest::Method::OPTIONS, gw.url("/mcp"))
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);
    assert!(bad.headers().get("access-control-allow-origin").is_none());
    assert!(
        up.requests().is_empty(),
        "preflights never reach the upstream"
    );

    // The upstream sends its own CORS header; the answer carries exactly one, the gateway's.
    let actual = client
        .post(gw.url("/mcp"))
        .header("origin", "https://app.example.com")
        .header("content-type", "application/json")
        .body(PING)
        .send()
        .await
        .unwrap();
    assert_eq!(
        actual.status(),
        200,
        "a CORS-allowed origin passes the Origin check"
    );
    let h = actual.headers();
    assert_eq!(h.get_all("access-control-allow-origin").iter().count(), 1);
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(
        h["access-control-expose-headers"],
        "Mcp-Session-Id, WWW-Authenticate"
    );

    // Error answers carry CORS headers too.
    let err = client
        .put(gw.url("/mcp"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(err.status(), 405);
    assert_eq!(
        err.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

#[tokio::test]
async fn payload_and_header_limits() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::start(&format!(
        "policies:\n  limits:\n    max_body: 100\n    max_headers: 20\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
        up.addr
    ));
    let client = reqwest::Client::new();
    let exact = "x".repeat(100);
    let resp = client
        .post(gw.url("/mcp"))
        .body(exact.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a body of exactly the limit passes");
    assert_eq!(up.requests()[0].body.len(), 100);

    let over = format!(
        r#"{{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{{"x":"{}"}}}}"#,
        "y".repeat(100)
    );
    let resp = client
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .body(over.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["data"]["reason"], "payload_too_large");
    assert_eq!(
        v["id"], "big",
        "the JSON-RPC id is found even in a refused body"
    );

    // Chunked (no Content-Length): counted while streaming and aborted at the limit.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..10)
        .map(|_| Ok(bytes::Bytes::from(vec![b'z'; 30])))
        .collect();
    let resp = client
        .post(gw.url("/mcp"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    match resp {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"), // the gateway may close first
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        up.requests().len(),
        1,
        "no over-limit body reached the upstream whole"
    );

    let mut req = client.post(gw.url("/mcp")).body("{}");
    for i in 0..25 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 431);
}

#[tokio::test]
async fn upstream_credentials_are_injected_and_client_tokens_dropped() {
    let up = recording("a", 200, "{}").await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token");
    std::fs::write(&secret, "upstream-secret\n").unwrap();
    let gw = Gateway::start(&format!(
        "policies:\n  request_headers:\n    - set: {{name: Authorization, file: {}}}\n    - copy: {{from: X-Request-Id, to: X-Correlation-Id}}\n  response_headers:\n    - remove: X-Upstream\n    - set: {{name: X-Served-By, value: mcpgate}}\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
        secret.display(),
        up.addr
    ));
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp"))
        .header("authorization", "Bearer client-token")
        .header("x-request-id", "r-1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-upstream").is_none());
    assert_eq!(resp.headers()["x-served-by"], "mcpgate");
    let seen = &up.requests()[0];
    assert_eq!(seen.headers["authorization"], "upstream-secret");
    assert_eq!(seen.headers["x-correlation-id"], "r-1");
    assert!(
        seen.headers.get("x-request-id").is_none(),
        "not in the allow-list"
    );
}

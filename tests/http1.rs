//! HTTP/1.1 hygiene over raw TCP sockets: the whole-header deadline, `Expect: 100-continue`, the
//! request line counted in the header size, pipelined requests, and keep-alive after answers the
//! gateway makes itself.

use crate::support::{metric_value, Gateway};
use crate::upstreams::{recording, Upstream};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PING: &str = r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;
/// Upper bound of any single wait for the gateway in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// One response read off a raw socket.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection that keeps bytes read past the current response (pipelining).
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(gw: &Gateway) -> Conn {
        let addr = gw.base.trim_start_matches("http://");
        Conn {
            s: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("write");
    }

    /// Reads more bytes; false at end of stream. Panics after [`WAIT`].
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(WAIT, self.s.read(&mut chunk))
            .await
            .expect("the gateway answers in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next response header block (including 1xx ones).
    async fn head(&mut self) -> (u16, String) {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return (status, head);
            }
            assert!(self.fill().await, "closed before a response header");
        }
    }

    /// The next final response (1xx skipped), with a Content-Length or chunked body.
    async fn response(&mut self) -> Resp {
        let (mut status, mut head) = self.head().await;
        while (100..200).contains(&status) {
            (status, head) = self.head().await;
        }
        let mut resp = Resp {
            status,
            head,
            body: Vec::new(),
        };
        if let Some(n) = resp.header("content-length").and_then(|n| n.parse().ok()) {
            while self.buf.len() < n {
                assert!(self.fill().await, "closed inside a body");
            }
            resp.body = self.buf.drain(..n).collect();
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            resp.body = self.chunked().await;
        }
        resp
    }

    async fn chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        for _ in 0..10_000 {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                assert!(self.fill().await, "closed inside a chunked body");
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size");
            while self.buf.len() < line_end + 2 + size + 2 {
                assert!(self.fill().await, "closed inside a chunk");
            }
            body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
            self.buf.drain(..line_end + 2 + size + 2);
            if size == 0 {
                return body;
            }
        }
        panic!("too many chunks");
    }

    /// Whether the gateway closes the connection (end of stream) within [`WAIT`], with no more
    /// bytes.
    async fn closes(&mut self) -> bool {
        let before = self.buf.len();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if !self.fill().await {
                return self.buf.len() == before;
            }
        }
        false
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn post(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

#[tokio::test]
async fn a_trickled_header_is_cut_at_the_header_timeout() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::start_with_server(
        "",
        "  header_timeout: 2s\n",
        &format!(
            "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
            up.addr
        ),
    );
    let started = Instant::now();
    let mut conn = Conn::open(&gw).await;
    conn.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await;
    // One byte a second, far longer than the deadline; never a whole header.
    let (mut rd, mut wr) = conn.s.into_split();
    let writer = tokio::spawn(async move {
        // Half a second off the deadline's beat, so no byte lands just as it closes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..15 {
            if wr.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut got = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(14), read)
        .await
        .expect("the connection is closed long before the trickle ends");
    let elapsed = started.elapsed();
    writer.abort();
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(text.contains("\"reason\":\"header_timeout\""), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(2 * 2 + 3),
        "cut near the 2s deadline, after {elapsed:?}"
    );
    assert!(up.requests().is_empty(), "the upstream received nothing");
    let page = gw
        .metrics_when(|p| metric_value(p, "mcpgate_header_timeouts_total", &[]) >= 1.0)
        .await;
    assert_eq!(
        metric_value(&page, "mcpgate_header_timeouts_total", &[]),
        1.0
    );
    assert!(gw.stderr().contains("header_timeout"), "{}", gw.stderr());

    // A connection that sends nothing at all is closed too, without an answer.
    let mut idle = Conn::open(&gw).await;
    let started = Instant::now();
    assert!(idle.closes().await, "an idle new connection is closed");
    assert!(started.elapsed() < Duration::from_secs(2 * 2 + 3));
    assert!(idle.buf.is_empty());
}

#[tokio::test]
async fn a_slow_header_that_completes_in_time_is_served_and_idle_time_does_not_count() {
    let up = recording("a", 200, r#"{"ok":true}"#).await;
    let gw = Gateway::start_with_server(
        "",
        "  header_timeout: 3s\n",
        &format!(
            "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
            up.addr
        ),
    );
    let mut conn = Conn::open(&gw).await;
    let request = post("/mcp", PING, "");
    let (a, b) = request.split_at(20);
    conn.send(a.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    conn.send(b.as_bytes()).await;
    let r = conn.response().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), r#"{"ok":true}"#);
    // Idle longer than the header deadline between requests: the keep-alive connection stays,
    // the next header's clock starts with its first byte.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    conn.send(request.as_bytes()).await;
    let r = conn.response().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(&seen[0].body[..], PING.as_bytes());
    let page = gw.metrics().await;
    assert_eq!(
        metric_value(&page, "mcpgate_header_timeouts_total", &[]),
        0.0
    );
}

#[tokio::test]
async fn expect_100_continue_comes_before_the_body_or_the_refusal_comes_instead() {
    let up = recording("a", 200, r#"{"ok":true}"#).await;
    let hash = mcpgate::policy::auth::api_key::hash_key("mcpk_http1-key");
    let gw = Gateway::start(&format!(
        "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{up}]\n  - path: /inspect\n    backend:\n      hosts: [http://{up}]\n    policies:\n      mcp:\n        inspect: true\n        max_body: 1KiB\n  - path: /auth\n    backend:\n      hosts: [http://{up}]\n    policies:\n      auth:\n        api_keys:\n          keys:\n            - {{name: bot, sha256: \"{hash}\"}}\n      limits:\n        max_body: 100\n",
        up = up.addr
    ));
    let mut sent = 0;
    for (path, key) in [
        ("/mcp", ""),
        ("/inspect", ""),
        ("/auth", "X-Api-Key: mcpk_http1-key\r\n"),
    ] {
        let mut conn = Conn::open(&gw).await;
        let request = post(path, PING, &format!("Expect: 100-continue\r\n{key}"));
        let head = request.strip_suffix(PING).expect("head");
        conn.send(head.as_bytes()).await;
        let (status, interim) = conn.head().await;
        assert_eq!(
            status, 100,
            "{path}: 100 Continue before the body: {interim}"
        );
        assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
        assert_eq!(up.requests().len(), sent, "{path}: nothing upstream yet");
        conn.send(PING.as_bytes()).await;
        let r = conn.response().await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.text(), r#"{"ok":true}"#);
        sent += 1;
        let seen = up.requests();
        assert_eq!(seen.len(), sent);
        assert_eq!(&seen[sent - 1].body[..], PING.as_bytes(), "{path}");
        assert!(seen[sent - 1].headers.get("expect").is_none(), "{path}");
        // The connection is reusable afterwards.
        conn.send(post(path, PING, key).as_bytes()).await;
        assert_eq!(conn.response().await.status, 200, "{path}: second request");
        sent += 1;
    }

    // Refused before the body: the final status instead of 100, then the connection closes (the
    // client may or may not send its body now).
    let big = "x".repeat(200);
    for (what, request, status) in [
        (
            "no key",
            post("/auth", PING, "Expect: 100-continue\r\n"),
            401,
        ),
        (
            "bad key",
            post("/auth", PING, "Expect: 100-continue\r\nX-Api-Key: nope\r\n"),
            401,
        ),
        (
            "too large",
            post(
                "/auth",
                &big,
                "Expect: 100-continue\r\nX-Api-Key: mcpk_http1-key\r\n",
            ),
            413,
        ),
        (
            "no endpoint",
            post("/nope", PING, "Expect: 100-continue\r\n"),
            404,
        ),
        (
            "too large to inspect",
            post("/inspect", &"x".repeat(2000), "Expect: 100-continue\r\n"),
            413,
        ),
    ] {
        let mut conn = Conn::open(&gw).await;
        let body_start = request.find("\r\n\r\n").expect("head end") + 4;
        conn.send(&request.as_bytes()[..body_start]).await;
        let (first, head) = conn.head().await;
        assert_eq!(first, status, "{what}: no 100 before the refusal: {head}");
        let r = {
            let n: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .expect("content-length");
            while conn.buf.len() < n {
                assert!(conn.fill().await);
            }
            let body: Vec<u8> = conn.buf.drain(..n).collect();
            serde_json::from_slice::<Value>(&body).expect("json body")
        };
        assert_eq!(r["error"]["status"], status, "{what}: {r}");
        assert!(
            head.to_ascii_lowercase().contains("connection: close"),
            "{what}: {head}"
        );
        if status == 401 {
            assert!(
                head.to_ascii_lowercase().contains("www-authenticate:"),
                "{head}"
            );
        }
        assert!(conn.closes().await, "{what}: the connection closes");
    }
    assert_eq!(
        up.requests().len(),
        sent,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn the_request_line_counts_toward_max_header_bytes() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::start(&format!(
        "policies:\n  limits:\n    max_header_bytes: 1KiB\nendpoints:\n  - path: /mcp\n    input_query_strings: [\"*\"]\n    backend:\n      hosts: [http://{}]\n",
        up.addr
    ));
    let client = reqwest::Client::new();
    let send = |query_len: usize, header_len: usize| {
        client
            .post(gw.url(&format!("/mcp?q={}", "a".repeat(query_len))))
            .header("content-type", "application/json")
            .header("x-pad", "b".repeat(header_len))
            .body(PING)
            .send()
    };
    // Long lines alone, and a line that only overflows with the header fields.
    for (query, pad) in [(1100, 1), (4000, 1), (700, 300)] {
        let resp = send(query, pad).await.unwrap();
        assert_eq!(resp.status(), 431, "query {query}, pad {pad}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["data"]["reason"], "headers_too_large");
    }
    assert!(up.requests().is_empty(), "nothing reached the upstream");
    let resp = send(500, 100).await.unwrap();
    assert_eq!(resp.status(), 200, "well under the limit");
    assert_eq!(up.requests().len(), 1);
}

/// Three upstreams answering `A`, `B`, `C`, each behind its endpoint, plus refusing endpoints.
async fn three() -> (Vec<Upstream>, Gateway) {
    let ups = vec![
        recording("a", 200, r#""A""#).await,
        recording("b", 200, r#""B""#).await,
        recording("c", 200, r#""C""#).await,
    ];
    let hash = mcpgate::policy::auth::api_key::hash_key("mcpk_http1-key");
    let gw = Gateway::start(&format!(
        "endpoints:\n  - path: /a\n    backend:\n      hosts: [http://{}]\n  - path: /b\n    backend:\n      hosts: [http://{}]\n  - path: /c\n    backend:\n      hosts: [http://{}]\n  - path: /auth\n    backend:\n      hosts: [http://{0}]\n    policies:\n      auth:\n        api_keys:\n          keys:\n            - {{name: bot, sha256: \"{hash}\"}}\n  - path: /denied\n    backend:\n      hosts: [http://{0}]\n    policies:\n      ip_filter:\n        deny: [127.0.0.1/32]\n  - path: /limited\n    backend:\n      hosts: [http://{0}]\n    policies:\n      rate_limits:\n        - {{name: one, requests: 1, period: 1m}}\n  - path: /dead\n    backend:\n      hosts: [http://{dead}]\n",
        ups[0].addr, ups[1].addr, ups[2].addr,
        dead = crate::support::dead_addr(),
    ));
    (ups, gw)
}

/// What a pipelined case sends in one write, and the (status, body or reason) answers expected.
type Pipelined = (&'static str, Vec<String>, Vec<(u16, &'static str)>);

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (ups, gw) = three().await;
    let cases: [Pipelined; 3] = [
        (
            "three POSTs",
            vec![
                post("/a", PING, ""),
                post("/b", PING, ""),
                post("/c", PING, ""),
            ],
            vec![(200, r#""A""#), (200, r#""B""#), (200, r#""C""#)],
        ),
        (
            "GET, POST, GET",
            vec![get("/c"), post("/a", PING, ""), get("/b")],
            vec![(200, r#""C""#), (200, r#""A""#), (200, r#""B""#)],
        ),
        (
            "with gateway answers in between",
            vec![
                post("/b", PING, ""),
                post("/nope", PING, ""),
                post("/auth", PING, ""),
                post("/a", PING, ""),
            ],
            vec![
                (200, r#""B""#),
                (404, "not_found"),
                (401, "unauthorized"),
                (200, r#""A""#),
            ],
        ),
    ];
    for (what, requests, want) in cases {
        let mut conn = Conn::open(&gw).await;
        conn.send(requests.concat().as_bytes()).await;
        for (i, (status, body)) in want.iter().enumerate() {
            let r = conn.response().await;
            assert_eq!(r.status, *status, "{what}: answer {i}: {}", r.text());
            if *status == 200 {
                assert_eq!(r.text(), *body, "{what}: answer {i} in order");
            } else {
                assert_eq!(r.json()["error"]["data"]["reason"], *body, "{what}: {i}");
                assert_eq!(r.json()["id"], 7, "{what}: {i}");
            }
        }
    }
    let counts: Vec<usize> = ups.iter().map(|u| u.requests().len()).collect();
    assert_eq!(
        counts,
        vec![3, 3, 2],
        "each request reached its upstream once"
    );
    for u in &ups {
        for seen in u.requests() {
            if seen.method == "POST" {
                assert_eq!(&seen.body[..], PING.as_bytes());
            }
        }
    }
    let page = gw
        .metrics_when(|p| metric_value(p, "mcpgate_requests_total", &[]) >= 10.0)
        .await;
    assert_eq!(metric_value(&page, "mcpgate_requests_total", &[]), 10.0);
    assert_eq!(
        metric_value(&page, "mcpgate_requests_total", &[("status_class", "5xx")]),
        0.0,
        "never a 502"
    );
    assert_eq!(
        metric_value(&page, "mcpgate_upstream_connect_failures_total", &[]),
        0.0,
        "nothing counted against an upstream"
    );
}

#[tokio::test]
async fn gateway_answers_keep_the_connection_when_the_request_was_read_whole() {
    let (ups, gw) = three().await;
    let auth_json = post("/auth", PING, "");
    let cases = [
        ("404 GET", get("/nope"), 404),
        ("404 POST", post("/nope", PING, ""), 404),
        (
            "405",
            "PUT /a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".to_string(),
            405,
        ),
        ("401", auth_json.clone(), 401),
        (
            "401 non-JSON body",
            post("/auth", "hello", "").replace("application/json", "text/plain"),
            401,
        ),
        ("403", post("/denied", PING, ""), 403),
        ("200 then 429", post("/limited", PING, ""), 200),
        ("429", post("/limited", PING, ""), 429),
    ];
    for (what, request, status) in &cases {
        let mut conn = Conn::open(&gw).await;
        conn.send(request.as_bytes()).await;
        let r = conn.response().await;
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        assert_eq!(
            r.header("connection").as_deref(),
            Some("keep-alive"),
            "{what}: {}",
            r.head
        );
        if *status == 429 {
            assert!(r.header("retry-after").is_some(), "{what}");
        }
        conn.send(post("/b", PING, "").as_bytes()).await;
        let next = conn.response().await;
        assert_eq!(
            next.status, 200,
            "{what}: the same connection serves the next request"
        );
        assert_eq!(next.text(), r#""B""#);
    }
    assert_eq!(ups[1].requests().len(), cases.len());

    // A body the gateway did not read whole: the answer closes the connection.
    let partial = "POST /auth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":";
    let mut conn = Conn::open(&gw).await;
    conn.send(partial.as_bytes()).await;
    let r = conn.response().await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "{}",
        r.head
    );
    assert!(conn.closes().await, "closed after the answer");
    // An answer after a failed proxy attempt (502) says it closes, and does.
    let mut conn = Conn::open(&gw).await;
    conn.send(post("/dead", PING, "").as_bytes()).await;
    let r = conn.response().await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["id"], 7);
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "{}",
        r.head
    );
    assert!(conn.closes().await, "closed after the 502");

    // Nothing but the two /limited requests that passed and the /b ones went upstream.
    assert_eq!(
        ups[0].requests().len(),
        1,
        "only the allowed /limited request"
    );
}

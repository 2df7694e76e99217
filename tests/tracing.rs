//! OpenTelemetry tracing: the gateway exports one span per request to an in-process OTLP/HTTP
//! receiver (protobuf decoded with `opentelemetry-proto`), with the client's `traceparent` as
//! parent, MCP method and tool as attributes, and its own context sent upstream. Sampling is
//! parent-based; unsampled requests still propagate. Without `tracing:` nothing is injected.

use crate::support::Gateway;
use crate::upstreams::{recording, Upstream};
use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;

/// An OTLP/HTTP receiver: keeps every span it is sent, and the export requests' headers.
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
    api_keys: Arc<Mutex<Vec<String>>>,
    _server: Upstream,
}

async fn receiver() -> Receiver {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let api_keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let (s2, k2) = (spans.clone(), api_keys.clone());
    let router = Router::new().route(
        "/v1/traces",
        post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let (spans, keys) = (s2.clone(), k2.clone());
            async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
                    keys.lock().expect("lock").push(k.to_string());
                }
                let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut all = spans.lock().expect("lock");
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .as_ref()
                        .and_then(|r| attr(&r.attributes, "service.name"));
                    assert_eq!(service, Some(string("mcpgate-test")));
                    for ss in rs.scope_spans {
                        all.extend(ss.spans);
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    Receiver {
        spans,
        api_keys,
        _server: Upstream::start(router).await,
    }
}

impl Receiver {
    /// Waits (bounded) for `n` spans.
    async fn spans(&self, n: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.spans.lock().expect("lock").clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} spans arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_string())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// (trace id, span id, flags) of a `traceparent`.
fn parts(tp: &str) -> (String, String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "{tp}");
    (p[1].to_string(), p[2].to_string(), p[3].to_string())
}

#[tokio::test]
async fn spans_reach_an_otlp_receiver_with_parent_and_mcp_attributes() {
    let otlp = receiver().await;
    let up = recording("a", 200, r#"{"jsonrpc":"2.0","id":7,"result":{}}"#).await;
    // Ratio 0: only requests whose parent is sampled are traced.
    let gw = Gateway::start(&format!(
        "tracing:\n  endpoint: http://{}/v1/traces\n  service_name: mcpgate-test\n  sample_ratio: 0.0\n  batch_delay: 100ms\n  headers: {{x-api-key: k1}}\nendpoints:\n  - name: tools\n    path: /mcp\n    policies:\n      mcp: {{inspect: true}}\n    backend:\n      hosts: [http://{}]\n",
        otlp._server.addr, up.addr
    ));
    let client = reqwest::Client::new();
    // The provider starts in the background: retry the first traced request until it is on.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .header("traceparent", format!("00-{TRACE_ID}-{PARENT}-01"))
            .header("tracestate", "vendor=abc")
            .body(CALL)
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 200);
        let seen = up.requests();
        let tp = seen.last().expect("upstream request").headers["traceparent"]
            .to_str()
            .expect("ascii")
            .to_string();
        if parts(&tp).1 != PARENT {
            break;
        }
        // Tracing not on yet: the client's traceparent passed through unchanged.
        assert!(Instant::now() < deadline, "tracing never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = up.requests();
    let last = seen.last().expect("upstream request");
    let (trace, span_id, flags) = parts(last.headers["traceparent"].to_str().expect("ascii"));
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE_ID, "01"));
    assert_eq!(last.headers["tracestate"], "vendor=abc");

    // A request without a parent is not sampled (ratio 0), yet the upstream learns that.
    let r = client
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .body(CALL)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    let seen = up.requests();
    let (other_trace, _, other_flags) = parts(
        seen.last().expect("request").headers["traceparent"]
            .to_str()
            .expect("ascii"),
    );
    assert_eq!(other_flags, "00");
    assert_ne!(other_trace, TRACE_ID);

    // A gateway answer (404) under a sampled parent is traced too.
    let r = client
        .post(gw.url("/nowhere"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT}-01"))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 404);

    let spans = otlp.spans(1).await;
    let ours = spans
        .iter()
        .find(|s| hex(&s.span_id) == span_id)
        .expect("the span whose context went upstream was exported");
    assert_eq!(hex(&ours.trace_id), TRACE_ID);
    assert_eq!(hex(&ours.parent_span_id), PARENT);
    assert_eq!(ours.name, "POST /mcp");
    assert_eq!(ours.kind, 2, "server span");
    assert_eq!(ours.trace_state, "vendor=abc");
    let a = &ours.attributes;
    assert_eq!(attr(a, "mcp.method.name"), Some(string("tools/call")));
    assert_eq!(attr(a, "gen_ai.tool.name"), Some(string("echo")));
    assert_eq!(attr(a, "mcpgate.endpoint"), Some(string("tools")));
    assert_eq!(attr(a, "http.route"), Some(string("/mcp")));
    assert_eq!(attr(a, "http.request.method"), Some(string("POST")));
    assert_eq!(
        attr(a, "http.response.status_code"),
        Some(any_value::Value::IntValue(200))
    );
    assert_eq!(
        attr(a, "mcpgate.upstream"),
        Some(string(&format!("http://{}", up.addr)))
    );

    // The 404 arrives as its own span; the unsampled request never does. Only the last request
    // of the retry loop was traced: the earlier ones went through before tracing was on.
    let spans = otlp.spans(2).await;
    let not_found = spans
        .iter()
        .find(|s| attr(&s.attributes, "url.path") == Some(string("/nowhere")))
        .expect("404 span");
    assert_eq!(
        attr(&not_found.attributes, "http.response.status_code"),
        Some(any_value::Value::IntValue(404))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans = otlp.spans.lock().expect("lock").clone();
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) == TRACE_ID),
        "an unsampled request was exported"
    );
    assert!(otlp
        .api_keys
        .lock()
        .expect("lock")
        .iter()
        .all(|k| k == "k1"));
    assert!(!otlp.api_keys.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn without_tracing_nothing_is_injected() {
    let up = recording("a", 200, "{}").await;
    let gw = Gateway::in_front_of(&[up.addr], "");
    let client = reqwest::Client::new();
    let r = client
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .body(CALL)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    assert!(!up.requests()[0].headers.contains_key("traceparent"));
    // A client's own trace context passes through untouched.
    let tp = format!("00-{TRACE_ID}-{PARENT}-01");
    client
        .post(gw.url("/mcp"))
        .header("traceparent", &tp)
        .body(CALL)
        .send()
        .await
        .expect("POST");
    assert_eq!(up.requests()[1].headers["traceparent"], tp.as_str());
}

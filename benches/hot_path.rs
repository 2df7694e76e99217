//! Micro-benchmark of the per-request work mcpgate does in-process on the relay path: routing,
//! the request-header allow-list, query filtering, hop-by-hop removal, and (error path only)
//! JSON-RPC id extraction. Prints nanoseconds per operation; no timing assertions.
//!
//! Run: `cargo bench --bench hot_path`. The end-to-end comparison against direct and nginx is
//! tracked separately (issue 7).

use mcpgate::config::{load_str, DEFAULT_INPUT_HEADERS};
use mcpgate::mcp::jsonrpc::request_shape;
use mcpgate::proxy::headers::{strip_hop_by_hop, HeaderAllowList, QueryAllowList};
use mcpgate::proxy::routing::route;
use mcpgate::runtime::snapshot::Snapshot;
use pingora::http::{RequestHeader, ResponseHeader};
use std::hint::black_box;
use std::time::Instant;

fn bench(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{name:<40} {ns:>10.1} ns/op");
}

fn main() {
    let cfg = load_str(
        "listen: 127.0.0.1:8080\nendpoints:\n  - path: /a\n    backend: {hosts: [http://127.0.0.1:3000]}\n  - path: /mcp\n    backend: {hosts: [http://127.0.0.1:3001]}\n",
        false,
        "bench",
    )
    .expect("bench config");
    let snapshot = Snapshot::compile(cfg, 1).expect("compile");
    let mut req = RequestHeader::build("POST", b"/mcp?x=1", None).expect("request");
    for (k, v) in [
        ("host", "gw.example"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-session-id", "0b8f6c3e-2a8e-4f7e-9a51-3f6c1d2b7e90"),
        ("mcp-protocol-version", "2025-11-25"),
        ("user-agent", "bench"),
        ("authorization", "Bearer abc"),
    ] {
        req.insert_header(k, v).expect("header");
    }
    let allow = HeaderAllowList::new(DEFAULT_INPUT_HEADERS);
    let query = QueryAllowList::new(&["x".to_string()]);
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}"#;

    println!("mcpgate hot-path micro-benchmark (single thread)");
    bench("route (path + method)", 2_000_000, || {
        black_box(route(black_box(&snapshot), black_box(&req)));
    });
    bench("header allow-list, 7 headers", 1_000_000, || {
        let n = req.headers.keys().filter(|h| allow.allows(h)).count();
        black_box(n);
    });
    bench("query filter", 1_000_000, || {
        black_box(query.filter(black_box(Some("x=1&token=secret"))));
    });
    bench("strip hop-by-hop (response)", 500_000, || {
        let mut resp = ResponseHeader::build(200, Some(4)).expect("response");
        resp.insert_header("content-type", "text/event-stream")
            .expect("h");
        resp.insert_header("connection", "keep-alive").expect("h");
        strip_hop_by_hop(&mut resp);
        black_box(resp);
    });
    bench("JSON-RPC id (error path only)", 500_000, || {
        black_box(request_shape(black_box(body)));
    });
}

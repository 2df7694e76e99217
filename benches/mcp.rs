//! The cost per request of MCP awareness: JSON-RPC inspection of a ~1 KB `tools/call`, the
//! 2026-07-28 header check, a tool allow-list decision, a typical CEL rule, and filtering a
//! 20-tool `tools/list` answer, next to the in-process work of the plain relay (routing and the
//! header allow-list) measured in the same run. Prints time per operation and ratios; no timing
//! assertions.
//!
//! Run: `cargo bench --bench mcp`.

mod support;
use support::bench;

use mcpgate::config::DEFAULT_INPUT_HEADERS;
use mcpgate::mcp::inspect::inspect;
use mcpgate::mcp::response::filter_json;
use mcpgate::policy::cel::Facts;
use mcpgate::policy::input_lists::HeaderAllowList;
use mcpgate::policy::mcp_headers;
use mcpgate::proxy::routing::route;
use mcpgate::runtime::load::load_str;
use mcpgate::runtime::snapshot::Snapshot;
use pingora::http::RequestHeader;
use std::hint::black_box;

fn main() {
    let cfg = load_str(
        r#"listen: 127.0.0.1:8080
endpoints:
  - path: /mcp
    backend: {hosts: [http://127.0.0.1:3000]}
    policies:
      tools:
        allow: ["search_*", "echo", "add"]
        deny: ["search_private"]
      rules:
        - name: no-big-queries
          when: 'mcp.tool.startsWith("search_") && size(mcp.arguments.query) > 200 && !("admin" in identity.roles)'
"#,
        false,
        "bench",
    )
    .expect("bench config");
    let snapshot = Snapshot::compile(cfg, 1).expect("compile");
    let ep = &snapshot.endpoints[0];
    let mut req = RequestHeader::build("POST", b"/mcp", None).expect("request");
    for (k, v) in [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "search_web"),
    ] {
        req.insert_header(k, v).expect("header");
    }
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"search_web","arguments":{{"query":"{}","limit":10,"filters":{{"lang":"en","safe":true}}}},"_meta":{{"progressToken":"p-1"}}}}}}"#,
        "q".repeat(900)
    );
    println!(
        "mcpgate MCP-awareness micro-benchmark (single thread), body {} bytes",
        body.len()
    );
    let mut c = support::criterion();
    let allow = HeaderAllowList::new(DEFAULT_INPUT_HEADERS);
    let relay = bench(&mut c, "plain relay: route + header allow-list", || {
        black_box(route(black_box(&snapshot), black_box(&req)));
        for (name, _) in req.headers.iter() {
            black_box(allow.allows(name));
        }
    });
    let parse = bench(&mut c, "inspect ~1 KB tools/call", || {
        black_box(inspect(black_box(body.as_bytes())).is_ok());
    });
    let message = inspect(body.as_bytes()).expect("valid");
    let header = bench(&mut c, "header consistency (Mcp-Method, Mcp-Name)", || {
        black_box(mcp_headers::check(&req, &message, &|_| None).is_ok());
    });
    let tools = ep.policies.tools.as_ref().expect("tool policy");
    let list = bench(&mut c, "tool allow-list decision", || {
        black_box(tools.allows(black_box("search_web"), None));
    });
    let cel = bench(&mut c, "CEL rule (tool, arguments, roles)", || {
        let facts = Facts {
            req: &req,
            client_ip: None,
            identity: None,
            mcp: Some(&message),
        };
        black_box(ep.policies.rules.check(&facts).is_ok());
    });
    let tools_list = {
        let tools: Vec<String> = (0..20)
            .map(|i| format!(r#"{{"name":"tool_{i}","description":"Tool number {i}.","inputSchema":{{"type":"object","properties":{{"x":{{"type":"string"}}}}}}}}"#))
            .collect();
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}]}}}}"#,
            tools.join(",")
        )
    };
    bench(&mut c, "filter a 20-tool tools/list answer (JSON)", || {
        let _ = black_box(filter_json(black_box(tools_list.as_bytes()), &|t| {
            t["name"] != "tool_7"
        }));
    });
    let total = parse + header + list + cel;
    println!(
        "inspection + header check + allow-list + CEL rule: {total:.0} ns per request, {:.1}x the plain relay's in-process work",
        total / relay.max(0.001)
    );
}

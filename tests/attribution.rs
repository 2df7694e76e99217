//! Calls the gateway cannot attribute, through the real binary: on every kind of endpoint whose
//! policy depends on the method, tool, prompt or resource (tool lists, CEL rules, per-tool rate
//! limits, tool pinning), a `tools/call`, `prompts/get` or `resources/*` call that names nothing
//! usable gets 400 with JSON-RPC -32602 and the request's id, a method that a lenient server
//! could read as an MCP method gets -32601, and `Mcp-Param-*` headers that disagree with the
//! arguments get -32020. None of them reaches the upstream; each is logged with its reason and
//! counted as `invalid`. An endpoint that does not inspect forwards them all untouched.

use crate::support::{metric_value, Gateway};
use crate::upstreams::recording;
use serde_json::{json, Value};

const OK: &str = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value, String) {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or_default(),
        text,
    )
}

/// Asserts a single JSON-RPC refusal: 400, `code`, the request's `id`, `reason`.
fn refused(got: &(u16, Value, String), code: i64, id: &Value, reason: &str, what: &str) {
    let (status, body, text) = got;
    assert_eq!(*status, 400, "{what}: {text}");
    assert_eq!(body["jsonrpc"], "2.0", "{what}: {text}");
    assert_eq!(&body["id"], id, "{what}: {text}");
    assert_eq!(body["error"]["code"], code, "{what}: {text}");
    assert_eq!(body["error"]["data"]["reason"], reason, "{what}: {text}");
    assert_eq!(body["error"]["data"]["status"], 400, "{what}: {text}");
}

const ENDPOINTS: &[&str] = &["tools", "rules", "limit", "pinned"];

fn config(up: std::net::SocketAddr) -> String {
    let ep = |name: &str, policies: &str| {
        format!("  - path: /{name}\n    name: {name}\n    backend:\n      hosts: [http://{up}]\n      path: /mcp\n{policies}")
    };
    [
        "endpoints:\n".to_string(),
        ep("tools", "    policies:\n      tools:\n        deny: [\"secret_*\"]\n"),
        ep(
            "rules",
            "    policies:\n      rules:\n        - name: no-secrets\n          when: 'mcp.tool.startsWith(\"secret_\") || mcp.resource.startsWith(\"secret://\") || (mcp.method == \"prompts/get\" && has(mcp.arguments.mode) && mcp.arguments.mode == \"admin\")'\n",
        ),
        ep(
            "limit",
            "    policies:\n      rate_limits:\n        - name: echo\n          requests: 1000\n          period: 1m\n          key: endpoint\n          tools: [echo]\n",
        ),
        ep("pinned", "    policies:\n      tool_pinning:\n        on_change: block\n"),
        ep("plain", ""),
    ]
    .concat()
}

/// `params` values that name no tool, prompt or resource, for a method whose target is `member`.
fn unattributable(member: &str) -> Vec<Option<String>> {
    let mut v = vec![
        None,
        Some("null".to_string()),
        Some(r#"["secret_dump"]"#.into()),
        Some(r#""secret_dump""#.into()),
        Some("42".into()),
        Some("{}".into()),
        Some(r#"{"arguments":{"mode":"admin"}}"#.into()),
    ];
    for value in [
        "null",
        "7",
        r#"{"n":"secret_dump"}"#,
        r#"["secret_dump"]"#,
        "false",
        r#""""#,
        r#"" secret_dump""#,
        r#""secret_dump\n""#,
        r#""secret_dump\u0000""#,
        r#""secret\u200b_dump""#,
    ] {
        v.push(Some(format!(r#"{{"{member}":{value}}}"#)));
    }
    v
}

#[tokio::test]
async fn calls_naming_no_tool_prompt_or_resource_reach_nothing() {
    let up = recording("a", 200, OK).await;
    let gw = Gateway::start(&config(up.addr));
    let client = reqwest::Client::new();
    let mut refusals = 0;
    for ep in ENDPOINTS {
        let url = gw.url(&format!("/{ep}"));
        let mut n = 0;
        for (method, member) in [
            ("tools/call", "name"),
            ("prompts/get", "name"),
            ("resources/read", "uri"),
            ("resources/subscribe", "uri"),
        ] {
            for params in unattributable(member) {
                n += 1;
                // Ids of every kind, 0 included.
                let id = match n % 3 {
                    0 => json!(0),
                    1 => json!(n),
                    _ => json!(format!("req-{n}")),
                };
                let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
                if let Some(p) = &params {
                    msg["params"] = serde_json::from_str(p).expect("params JSON");
                }
                let body = msg.to_string();
                let got = post(&client, &url, &body, &[]).await;
                refused(
                    &got,
                    -32602,
                    &id,
                    "invalid_params",
                    &format!("{ep}: {body}"),
                );
                assert!(
                    got.1["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("invalid params: ")),
                    "{}",
                    got.2
                );
                refusals += 1;
            }
        }
        // Arguments a rule could not read as a map.
        for args in [r#"["admin"]"#, r#""mode=admin""#, "1"] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":77,"method":"prompts/get","params":{{"name":"p","arguments":{args}}}}}"#
            );
            let got = post(&client, &url, &body, &[]).await;
            refused(&got, -32602, &json!(77), "invalid_params", &body);
            refusals += 1;
        }
        // A batch holding one such call is refused as a whole, one error per request id.
        let batch = r#"[{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo"}},{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":["secret_dump"]}]"#;
        let (status, body, text) = post(&client, &url, batch, &[]).await;
        assert_eq!(status, 400, "{text}");
        assert_eq!(body[0]["id"], "a", "{text}");
        assert_eq!(body[1]["id"], "b", "{text}");
        assert_eq!(body[0]["error"]["code"], -32602, "{text}");
        assert_eq!(body.as_array().map(Vec::len), Some(2), "{text}");
        refusals += 1;
        assert_eq!(
            up.requests().len(),
            0,
            "{ep}: something reached the upstream"
        );
    }

    // A denied tool in another letter case is still denied (a server may look names up
    // case-insensitively).
    for (i, name) in ["SECRET_DUMP", "Secret_Dump", "secret_DUMP"]
        .iter()
        .enumerate()
    {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"{name}"}}}}"#
        );
        let (status, reply, text) = post(&client, &gw.url("/tools"), &body, &[]).await;
        assert_eq!(status, 403, "{text}");
        assert_eq!(reply["id"], i, "{text}");
        assert_eq!(reply["error"]["data"]["reason"], "tool_denied", "{text}");
    }
    assert_eq!(up.requests().len(), 0);

    // Well-formed calls still go through, exactly as sent (so the refusals above were not the
    // upstream being unreachable).
    let mut sent = Vec::new();
    for ep in ENDPOINTS {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"demo://readme"}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p","arguments":null}}"#,
        ] {
            let (status, _, text) = post(&client, &gw.url(&format!("/{ep}")), body, &[]).await;
            assert_eq!(status, 200, "{ep}: {body}: {text}");
            sent.push(body);
        }
    }
    let seen: Vec<Vec<u8>> = up.requests().iter().map(|r| r.body.to_vec()).collect();
    let expected: Vec<Vec<u8>> = sent.iter().map(|b| b.as_bytes().to_vec()).collect();
    assert_eq!(seen, expected);

    // An endpoint that does not inspect forwards such a call untouched.
    let loose = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":["secret_dump"]}"#;
    let (status, _, _) = post(&client, &gw.url("/plain"), loose, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        up.requests().last().map(|r| r.body.to_vec()),
        Some(loose.as_bytes().to_vec())
    );

    // Each refusal is logged with its reason and counted as invalid, by method.
    let log = gw.access_log_when(refusals + sent.len() + 4).await;
    let logged = log
        .iter()
        .filter(|l| {
            l["status"] == 400
                && l["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("invalid_params: invalid params: "))
        })
        .count();
    assert_eq!(logged, refusals, "{log:?}");
    let page = gw
        .metrics_when(|p| {
            metric_value(p, "mcpgate_mcp_requests_total", &[("outcome", "invalid")])
                >= refusals as f64
        })
        .await;
    for ep in ENDPOINTS {
        let invalid = |method: &str| {
            metric_value(
                &page,
                "mcpgate_mcp_requests_total",
                &[
                    ("endpoint", ep),
                    ("mcp_method", method),
                    ("outcome", "invalid"),
                ],
            )
        };
        // 17 variants each (and one more call per batch), 3 bad arguments for prompts/get.
        assert_eq!(invalid("tools/call"), 19.0, "{ep}");
        assert_eq!(invalid("prompts/get"), 20.0, "{ep}");
        assert_eq!(invalid("resources/read"), 17.0, "{ep}");
        assert_eq!(invalid("resources/subscribe"), 17.0, "{ep}");
    }
}

#[tokio::test]
async fn near_miss_methods_reach_nothing() {
    let up = recording("a", 200, OK).await;
    let gw = Gateway::start(&config(up.addr));
    let client = reqwest::Client::new();
    let methods = [
        "Tools/Call",
        "TOOLS/CALL",
        "tools/CALL",
        "Tools/List",
        "Resources/Read",
        "PROMPTS/GET",
        " tools/call",
        "tools/call ",
        "tools/call\n",
        "\ttools/call",
        "tools/call\u{0}",
        "tools/call\r\n",
        "tools\u{200b}/call",
        "\u{feff}tools/call",
        "tools/call\u{2060}",
        "ｔｏｏｌｓ/ｃａｌｌ",
        "tools／call",
        "tools/\u{0441}all",
        "tools/caſl",
    ];
    let mut refusals = 0;
    for ep in ENDPOINTS {
        let url = gw.url(&format!("/{ep}"));
        for (i, method) in methods.iter().enumerate() {
            let id = json!(i);
            let body = json!({"jsonrpc": "2.0", "id": id, "method": method,
                "params": {"name": "secret_dump", "uri": "secret://x"}})
            .to_string();
            let got = post(&client, &url, &body, &[]).await;
            refused(
                &got,
                -32601,
                &id,
                "method_not_found",
                &format!("{ep}: {method:?}"),
            );
            refusals += 1;
        }
        // A notification (no id): the error has `id: null`.
        let got = post(
            &client,
            &url,
            r#"{"jsonrpc":"2.0","method":"Notifications/Initialized"}"#,
            &[],
        )
        .await;
        refused(
            &got,
            -32601,
            &Value::Null,
            "method_not_found",
            "notification",
        );
        // In a 2025-03-26 batch, one near-miss refuses every request of it.
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"TOOLS/CALL","params":{"name":"secret_dump"}}]"#;
        let (status, body, text) = post(&client, &url, batch, &[]).await;
        assert_eq!(status, 400, "{text}");
        assert_eq!(
            (&body[0]["id"], &body[1]["id"]),
            (&json!(1), &json!(2)),
            "{text}"
        );
        assert_eq!(body[1]["error"]["code"], -32601, "{text}");
        refusals += 2;
        assert_eq!(
            up.requests().len(),
            0,
            "{ep}: something reached the upstream"
        );
    }
    // Custom and camel-case MCP methods pass; the plain endpoint forwards a near-miss untouched.
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"vendor.example/doThing","params":[1]}"#,
    ] {
        let (status, _, text) = post(&client, &gw.url("/tools"), body, &[]).await;
        assert_eq!(status, 200, "{body}: {text}");
    }
    let odd = r#"{"jsonrpc":"2.0","id":3,"method":"Tools/Call","params":{"name":"secret_dump"}}"#;
    let (status, _, _) = post(&client, &gw.url("/plain"), odd, &[]).await;
    assert_eq!(status, 200);
    let seen: Vec<Vec<u8>> = up.requests().iter().map(|r| r.body.to_vec()).collect();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2], odd.as_bytes());

    let log = gw.access_log_when(refusals + 3).await;
    let logged = log
        .iter()
        .filter(|l| {
            l["status"] == 400
                && l["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("method_not_found: "))
        })
        .count();
    assert_eq!(logged, refusals, "{log:?}");
    let page = gw
        .metrics_when(|p| {
            metric_value(p, "mcpgate_mcp_requests_total", &[("outcome", "invalid")]) > 0.0
        })
        .await;
    for ep in ENDPOINTS {
        // Near-misses are not MCP methods: counted under `other` (each variant, the
        // notification and the batch's call).
        let other = metric_value(
            &page,
            "mcpgate_mcp_requests_total",
            &[
                ("endpoint", ep),
                ("mcp_method", "other"),
                ("outcome", "invalid"),
            ],
        );
        assert_eq!(other, methods.len() as f64 + 2.0, "{ep}");
    }
}

/// The `=?base64?...?=` form of `s`.
/// The upstream's answer to everything: a tools/list result whose tool `query` declares its
/// arguments for `Mcp-Param-*` headers, each under its own name.
const QUERY_LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"query","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"tenant":{"type":"integer","x-mcp-header":"Tenant"},"dry_run":{"type":"boolean","x-mcp-header":"Dry_Run"},"label":{"type":"string","x-mcp-header":"Label"}}}}]}}"#;

fn b64(s: &str) -> String {
    use base64::Engine;
    format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode(s)
    )
}

#[tokio::test]
async fn mcp_param_headers_must_agree_with_the_arguments() {
    let up = recording("a", 200, QUERY_LIST).await;
    let gw = Gateway::start(&config(up.addr));
    let client = reqwest::Client::new();
    let call = |id: u32| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"query","arguments":{{"region":"eu-west","tenant":42,"dry_run":true,"label":"café crème"}}}}}}"#
        )
    };
    let std_headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "query"),
    ];
    let label = b64("café crème");
    let region = b64("eu-west");
    let mut passed = 0;
    for ep in ENDPOINTS {
        let url = gw.url(&format!("/{ep}"));
        // The tool's declarations reach the gateway in a tools/list answer it relays.
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let (status, _, text) = post(&client, &url, list, &[]).await;
        assert_eq!(status, 200, "{ep}: {text}");
        passed += 1;
        // Matching values pass, and reach the upstream unchanged (body and headers).
        for params in [
            vec![("Mcp-Param-Region", "eu-west")],
            vec![
                ("mcp-param-region", region.as_str()),
                ("Mcp-Param-Tenant", "42"),
            ],
            vec![
                ("Mcp-Param-Dry_Run", "true"),
                ("Mcp-Param-Label", label.as_str()),
            ],
        ] {
            let headers: Vec<(&str, &str)> =
                std_headers.iter().copied().chain(params.clone()).collect();
            let body = call(5);
            let (status, _, text) = post(&client, &url, &body, &headers).await;
            assert_eq!(status, 200, "{ep}: {params:?}: {text}");
            passed += 1;
            let seen = up.requests();
            assert_eq!(seen.len(), passed);
            let last = seen.last().expect("a request");
            assert_eq!(last.body, body.as_bytes());
            for (k, v) in &params {
                let got: Vec<_> = last.headers.get_all(*k).iter().collect();
                assert_eq!(got, vec![*v], "{ep}: {k}");
            }
        }
        // Disagreements: 400, -32020, the request's id, nothing forwarded.
        let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
            ("mismatch", vec![("Mcp-Param-Region", "us-east".into())]),
            (
                "mismatch in base64",
                vec![("Mcp-Param-Region", b64("us-east"))],
            ),
            (
                "other case of a value",
                vec![("Mcp-Param-Region", "EU-WEST".into())],
            ),
            ("number", vec![("Mcp-Param-Tenant", "43".into())]),
            ("boolean", vec![("Mcp-Param-Dry_Run", "false".into())]),
            ("no such argument", vec![("Mcp-Param-Zone", "eu".into())]),
            (
                "one good, one naming nothing",
                vec![
                    ("Mcp-Param-Region", "eu-west".into()),
                    ("Mcp-Param-Tier", "gold".into()),
                ],
            ),
            (
                "repeated",
                vec![
                    ("Mcp-Param-Region", "eu-west".into()),
                    ("mcp-param-region", "us-east".into()),
                ],
            ),
            (
                "repeated, same value",
                vec![
                    ("Mcp-Param-Region", "eu-west".into()),
                    ("Mcp-Param-Region", "eu-west".into()),
                ],
            ),
            (
                "bad base64",
                vec![("Mcp-Param-Region", "=?base64?ZXUtd2VzdA?=".into())],
            ),
            (
                "not base64",
                vec![("Mcp-Param-Region", "=?base64?eu west!?=".into())],
            ),
            (
                "base64 of bytes that are not UTF-8",
                vec![("Mcp-Param-Label", "=?base64?/w==?=".into())],
            ),
        ];
        for (i, (what, params)) in cases.iter().enumerate() {
            let id = 100 + i as u32;
            let headers: Vec<(&str, &str)> = std_headers
                .iter()
                .copied()
                .chain(params.iter().map(|(k, v)| (*k, v.as_str())))
                .collect();
            let got = post(&client, &url, &call(id), &headers).await;
            refused(
                &got,
                -32020,
                &json!(id),
                "header_mismatch",
                &format!("{ep}: {what}"),
            );
        }
        // On a message other than one tools/call, there is no argument to mirror.
        let got = post(
            &client,
            &url,
            r#"{"jsonrpc":"2.0","id":"l","method":"tools/list"}"#,
            &[("mcp-param-region", "eu-west")],
        )
        .await;
        refused(&got, -32020, &json!("l"), "header_mismatch", "tools/list");
        assert_eq!(
            up.requests().len(),
            passed,
            "{ep}: a refused request reached the upstream"
        );
    }
    let log = gw.access_log_when(passed + ENDPOINTS.len() * 13).await;
    let logged = log
        .iter()
        .filter(|l| {
            l["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("header_mismatch: ") && e.contains("Mcp-Param"))
        })
        .count();
    assert_eq!(logged, ENDPOINTS.len() * 13, "{log:?}");
}

/// A `tools/list` answer whose tool declares two arguments for `Mcp-Param-*` headers, one under
/// a name that differs from the argument's and one nested.
const DECLARING_LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"deploy","inputSchema":{"type":"object","properties":{"target_region":{"type":"string","x-mcp-header":"Region"},"location":{"type":"object","properties":{"zone":{"type":"string","x-mcp-header":"Zone"}}},"region":{"type":"string"}}}}]}}"#;

#[tokio::test]
async fn mcp_param_headers_follow_the_tools_declarations_once_listed() {
    let up = recording("a", 200, DECLARING_LIST).await;
    let gw = Gateway::start(&config(up.addr));
    let client = reqwest::Client::new();
    let url = gw.url("/tools");
    let std_headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "deploy"),
    ];
    let call = r#"{"jsonrpc":"2.0","id":"d","method":"tools/call","params":{"name":"deploy","arguments":{"target_region":"eu-west","location":{"zone":"b"},"region":"us-east"}}}"#;
    let send = |headers: Vec<(&'static str, &'static str)>| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let all: Vec<(&str, &str)> = std_headers.iter().copied().chain(headers).collect();
            post(&client, &url, call, &all).await
        }
    };

    // Before this process has seen the tool's definition, no Mcp-Param header can be checked
    // (the argument it mirrors may have any name): refused, whether it matches the argument of
    // its name or not.
    let got = send(vec![("Mcp-Param-Region", "us-east")]).await;
    refused(
        &got,
        -32020,
        &json!("d"),
        "header_mismatch",
        "same-named, before tools/list",
    );
    let got = send(vec![("Mcp-Param-Region", "eu-west")]).await;
    refused(
        &got,
        -32020,
        &json!("d"),
        "header_mismatch",
        "before tools/list",
    );
    assert_eq!(up.requests().len(), 0);

    // The tools/list answer passes through the gateway, which reads the declarations.
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let lh = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    let (status, body, text) = post(&client, &url, list, &lh).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(body["result"]["tools"][0]["name"], "deploy", "{text}");
    assert_eq!(up.requests().len(), 1);

    // Now the declared argument is the one compared, at its path.
    for good in [
        vec![("Mcp-Param-Region", "eu-west")],
        vec![("mcp-param-region", "eu-west"), ("Mcp-Param-Zone", "b")],
        vec![],
    ] {
        let before = up.requests().len();
        let (status, _, text) = send(good.clone()).await;
        assert_eq!(status, 200, "{good:?}: {text}");
        let seen = up.requests();
        assert_eq!(seen.len(), before + 1, "{good:?}");
        assert_eq!(seen[before].body, call.as_bytes());
        for (k, v) in &good {
            let got: Vec<_> = seen[before].headers.get_all(*k).iter().collect();
            assert_eq!(got, vec![*v], "{k} forwarded unchanged");
        }
    }
    let forwarded = up.requests().len();
    for (what, bad) in [
        (
            "the undeclared argument of that name",
            vec![("Mcp-Param-Region", "us-east")],
        ),
        ("a nested mismatch", vec![("Mcp-Param-Zone", "a")]),
        (
            "an argument name the tool did not declare",
            vec![("Mcp-Param-Target_Region", "eu-west")],
        ),
    ] {
        let got = send(bad).await;
        refused(&got, -32020, &json!("d"), "header_mismatch", what);
    }
    assert_eq!(up.requests().len(), forwarded, "refusals reach nothing");
}

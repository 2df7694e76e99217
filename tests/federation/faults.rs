//! Federation faults: servers down at initialize, refused session ids and names (nothing reaches
//! a server), a server that loses its session, bad configs.

use super::{config, demo, init, rpc, scripted, start_session, Scripted};
use crate::support::{dead_addr, metric_value, Gateway};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_down_at_initialize() {
    let (a, _da) = demo().await;
    let dead = dead_addr();
    // Optional server down: the session works without it, and it is counted.
    let gw = Gateway::start(&config(&[("a", a, true), ("gone", dead, false)], ""));
    let sid = start_session(&gw, &[]).await;
    let (status, _, list) = rpc(
        &gw,
        Some(&sid),
        &[],
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"a_echo") && names.iter().all(|n| n.starts_with("a_")),
        "{names:?}"
    );
    let (_, _, r) = rpc(&gw, Some(&sid), &[], json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "gone_x", "arguments": {}}})).await;
    assert_eq!(
        (r["id"].clone(), r["error"]["code"].clone()),
        (json!(3), json!(-32602)),
        "{r}"
    );
    let m = gw
        .metrics_when(|p| p.contains("mcpgate_federation_servers_missing_total{"))
        .await;
    assert!(
        metric_value(
            &m,
            "mcpgate_federation_servers_missing_total",
            &[("server", "gone"), ("reason", "unreachable")]
        ) >= 1.0,
        "{m}"
    );
    // Required server down: a clear JSON-RPC error with the request's id.
    let gw = Gateway::start(&config(&[("a", a, false), ("gone", dead, true)], ""));
    for id in [json!(7), json!("seven")] {
        let mut body = init(0);
        body["id"] = id.clone();
        let (status, sid, r) = rpc(&gw, None, &[], body).await;
        assert_eq!(status, 502, "{r}");
        assert!(sid.is_none());
        assert_eq!(r["id"], id);
        assert_eq!(
            r["error"]["data"]["reason"], "federated_server_failed",
            "{r}"
        );
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("gone"),
            "{r}"
        );
    }
    assert!(
        gw.stderr()
            .contains("federated server left out of initialize"),
        "{}",
        gw.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_and_names_reach_no_server() {
    let c = scripted().await;
    let keys = "policies:\n  auth:\n    api_keys:\n      header: X-API-Key\n      keys:\n        - name: alice\n          sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\n        - name: bob\n          sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9\n";
    let cfg = config(&[("c", c.addr, true)], keys)
        .replace("deadline: 5s", "deadline: 5s\n      session_ttl: 2s");
    let gw = Gateway::start(&cfg);
    let alice = [("x-api-key", "foo")];
    let bob = [("x-api-key", "bar")];
    let sid = start_session(&gw, &alice).await;
    let call = |id: i64, name: &str| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}});
    let (status, _, ok) = rpc(&gw, Some(&sid), &alice, call(1, "c_second")).await;
    assert_eq!(
        (status, ok["result"]["content"][0]["text"].clone()),
        (200, json!("called second"))
    );
    let before = c.count();
    let mut tampered = sid.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap_or_default();
    // Session ids that must not open: 404 with the id, nothing sent upstream.
    for (n, (token, who)) in [
        (tampered.as_str(), &alice),
        (sid.as_str(), &bob),
        ("s1.not-a-federated-id", &alice),
    ]
    .into_iter()
    .enumerate()
    {
        let id = 20 + n as i64;
        let (status, _, r) = rpc(&gw, Some(token), who, call(id, "c_second")).await;
        assert_eq!(status, 404, "{n}: {r}");
        assert_eq!(
            (r["id"].clone(), r["error"]["code"].clone()),
            (json!(id), json!(-32001)),
            "{r}"
        );
    }
    // Names and cursors that belong to no server: -32602 with the id.
    for (n, body) in [
        call(30, "zz_echo"),
        call(31, "noprefix"),
        call(32, "c_bad.name"),
        json!({"jsonrpc": "2.0", "id": 33, "method": "resources/read", "params": {"uri": "zz+file:///x"}}),
        json!({"jsonrpc": "2.0", "id": 34, "method": "tools/list", "params": {"cursor": "f1.AAAA"}}),
    ].into_iter().enumerate() {
        let (status, _, r) = rpc(&gw, Some(&sid), &alice, body).await;
        assert_eq!(status, 400, "{n}: {r}");
        assert_eq!((r["id"].clone(), r["error"]["code"].clone()), (json!(30 + n as i64), json!(-32602)), "{n}: {r}");
    }
    // A tool the server's list denies: refused at call as at list.
    let (status, _, r) = rpc(&gw, Some(&sid), &alice, call(40, "c_hidden")).await;
    assert_eq!((status, r["id"].clone()), (403, json!(40)), "{r}");
    assert_eq!(
        c.count(),
        before,
        "refused requests reached the server: {:?}",
        c.methods()
    );
    // A well-formed name the server does not list: the gateway lists the server again, finds
    // nothing and refuses; no call reaches the server.
    let calls = |c: &Scripted| c.methods().iter().filter(|m| *m == "tools/call").count();
    let calls_before = calls(&c);
    for (id, name) in [(41, "c_nosuch"), (42, "c_second2")] {
        let (status, _, r) = rpc(&gw, Some(&sid), &alice, call(id, name)).await;
        assert_eq!(
            (status, r["id"].clone(), r["error"]["code"].clone()),
            (400, json!(id), json!(-32602)),
            "{r}"
        );
    }
    assert_eq!(calls(&c), calls_before, "{:?}", c.methods());
    assert!(
        c.methods()[before..].iter().all(|m| m == "tools/list"),
        "{:?}",
        c.methods()
    );
    let before = c.count();
    // Expired.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _, r) = rpc(&gw, Some(&sid), &alice, call(50, "c_second")).await;
    assert_eq!((status, r["id"].clone()), (404, json!(50)), "{r}");
    assert_eq!(c.count(), before);
    let log = gw.stderr();
    for why in ["invalid_session_id", "foreign_identity", "session_expired"] {
        assert!(log.contains(why), "{why} in {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_upstream_session_ends_the_session() {
    let (a, _da) = demo().await;
    let c = scripted().await;
    let gw = Gateway::start(&config(&[("a", a, true), ("c", c.addr, false)], ""));
    let sid = start_session(&gw, &[]).await;
    let list = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"});
    assert_eq!(rpc(&gw, Some(&sid), &[], list.clone()).await.0, 200);
    c.gone.store(true, Ordering::SeqCst);
    let (status, _, r) = rpc(&gw, Some(&sid), &[], list).await;
    assert_eq!(
        (status, r["id"].clone(), r["error"]["code"].clone()),
        (404, json!(5), json!(-32001)),
        "{r}"
    );
    // A call routed to that server: 404 too, and the client is told to start over.
    let (status, _, r) = rpc(
        &gw,
        Some(&sid),
        &[],
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "c_second"}}),
    )
    .await;
    assert_eq!(status, 404, "{r}");
    // The client recovers by initializing again.
    c.gone.store(false, Ordering::SeqCst);
    let sid2 = start_session(&gw, &[]).await;
    assert_ne!(sid, sid2);
    let (status, _, r) = rpc(
        &gw,
        Some(&sid2),
        &[],
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "c_second"}}),
    )
    .await;
    assert_eq!(
        (status, r["result"]["content"][0]["text"].clone()),
        (200, json!("called second")),
        "{r}"
    );
}

#[test]
fn bad_federation_configs_list_every_problem_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = crate::support::temp_file(
        &dir,
        "fed.yaml",
        r#"
listen: 127.0.0.1:8080
endpoints:
  - path: /mcp
    federation:
      deadline: soon
      session_ttl: 0s
    servers:
      - alias: my_server
        backend:
          hosts: [http://127.0.0.1:3001]
      - alias: Files
        backend:
          hosts: ["htp:/x"]
      - alias: ok
        backend:
          hosts: [http://127.0.0.1:3003]
        tools:
          deny: [""]
      - alias: ok
        backend:
          hosts: []
  - path: /both
    backend:
      hosts: [http://127.0.0.1:3000]
    servers:
      - alias: a
        backend:
          hosts: [http://127.0.0.1:3001]
  - path: /none
    federation: {prefix: false}
"#,
    );
    let (code, out, err) = crate::support::run_cli(&["-c", conf.to_str().expect("path"), "-t"]);
    assert_eq!(code, 2, "{out}{err}");
    for expected in [
        "endpoints[0].federation.deadline: invalid duration \"soon\"",
        "endpoints[0].federation.session_ttl: must be more than zero",
        "endpoints[0].servers[0].alias: \"my_server\" must be 1 to 20 characters of [a-z0-9-]",
        "endpoints[0].servers[1].alias: \"Files\"",
        "endpoints[0].servers[1].backend.hosts[0]: invalid URL \"htp:/x\"",
        "endpoints[0].servers[2].tools.deny[0]: empty pattern",
        "endpoints[0].servers[3].alias: \"ok\" is used twice",
        "endpoints[0].servers[3].backend.hosts: at least one host is needed",
        "endpoints[1]: has both `backend` and `servers`",
        "endpoints[2].backend: is required (or `servers` for several MCP servers)",
        "endpoints[2].federation: applies only to an endpoint with `servers`",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // The shipped example is valid.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/examples/federation.yaml");
    let (code, out, err) = crate::support::run_cli(&["-c", example, "-t"]);
    assert_eq!(code, 0, "{out}{err}");
}

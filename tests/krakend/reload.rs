//! A KrakenD file reloads like an mcpgate file: the file is rewritten (a Martian header value and
//! a rate limit changed), then SIGHUP, then `POST /reload` on the admin listener (KrakenD's
//! Prometheus exporter becomes it); each time the next requests see the new settings, and a
//! refused rewrite keeps the running config.

use super::Proc;
use crate::support::{free_port, run_cli, temp_file};
use crate::upstreams::recording;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// One POST endpoint injecting `X-Version: <version>` upstream (a Martian modifier), limited to
/// `rate` requests per minute (capacity `rate`) when given, and a GET endpoint.
fn file(port: u16, admin: u16, upstream: &str, version: &str, rate: Option<u64>) -> Value {
    let mut extra = json!({
        "modifier/martian": {"header.Modifier": {"scope": ["request"], "name": "X-Version", "value": version}}
    });
    if let Some(r) = rate {
        extra["qos/ratelimit/router"] = json!({"max_rate": r, "capacity": r, "every": "1m"});
    }
    let backend = json!([{"url_pattern": "/mcp", "host": [format!("http://{upstream}")]}]);
    json!({
        "version": 3,
        "port": port,
        "listen_ip": "127.0.0.1",
        "extra_config": {"telemetry/opentelemetry": {"exporters": {
            "prometheus": [{"name": "local", "port": admin, "listen_ip": "127.0.0.1"}]
        }}},
        "endpoints": [
            {"endpoint": "/mcp", "method": "POST", "output_encoding": "no-op", "extra_config": extra, "backend": backend},
            {"endpoint": "/mcp", "method": "GET", "output_encoding": "no-op", "backend": backend}
        ]
    })
}

/// Writes `v` to `path` atomically (write, then rename), as a deployment tool would.
fn rewrite(path: &Path, v: &Value) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, v.to_string()).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

async fn reload_status(admin: &str) -> Value {
    reqwest::get(format!("{admin}/reload"))
        .await
        .expect("GET /reload")
        .json()
        .await
        .expect("reload status")
}

/// Waits (bounded) until the reload generation reaches `generation`.
async fn wait_generation(admin: &str, generation: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = reload_status(admin).await;
        if s["generation"].as_u64() >= Some(generation) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "generation {generation} not reached: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs a JSON-RPC call with `id`; (status, body).
async fn call(url: &str, id: u64) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}).to_string())
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_krakend_file_reloads_on_sighup_and_on_post_reload() {
    let up = recording(
        "krakend-reload",
        200,
        r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
    )
    .await;
    let (port, admin_port) = (free_port(), free_port());
    let admin = format!("http://127.0.0.1:{admin_port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = up.addr.to_string();
    let conf = temp_file(
        &dir,
        "krakend.json",
        &file(port, admin_port, &upstream, "v1", None).to_string(),
    );
    let gw = Proc::start(&conf, port);
    let first = wait_generation(&admin, 1).await;

    // v1: no limit, header v1.
    for id in 1..=3 {
        let (status, body) = call(&gw.url(), id).await;
        assert_eq!(status, 200, "{body}\n{}", gw.stderr());
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.headers["x-version"] == "v1"));

    // v2 by SIGHUP: header v2 and one request per minute.
    rewrite(&conf, &file(port, admin_port, &upstream, "v2", Some(1)));
    let (code, out, err) = run_cli(&["-t", "-c", conf.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "the rewritten KrakenD file passes -t: {out}{err}");
    gw.signal("HUP");
    let g = first["generation"].as_u64().unwrap_or(1) + 1;
    let s = wait_generation(&admin, g).await;
    assert_eq!(s["last_attempt"]["result"], "success", "{s}");
    let (status, body) = call(&gw.url(), 10).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&gw.url(), 11).await;
    assert_eq!(status, 429, "the new limit applies: {body}");
    assert_eq!(body["id"], json!(11), "JSON-RPC id in the refusal: {body}");
    let seen = up.requests();
    assert_eq!(seen.len(), 4, "the refused call never reached the upstream");
    assert_eq!(seen[3].headers["x-version"], "v2");

    // A refused rewrite (an unsupported security namespace) keeps v2 running.
    let mut bad = file(port, admin_port, &upstream, "v9", None);
    bad["endpoints"][0]["extra_config"]["security/bot-detector"] = json!({"deny": ["curl"]});
    rewrite(&conf, &bad);
    let r = reqwest::Client::new()
        .post(format!("{admin}/reload"))
        .send()
        .await
        .expect("POST /reload");
    let refused_status = r.status().as_u16();
    let refused: Value = r.json().await.unwrap_or(Value::Null);
    assert_ne!(refused_status, 200, "{refused}");
    assert!(
        refused.to_string().contains("security/bot-detector"),
        "the refusal names the KrakenD path: {refused}"
    );
    let (status, _) = call(&gw.url(), 12).await;
    assert_eq!(status, 429, "still v2's limit");
    assert_eq!(up.requests().len(), 4);

    // v3 by POST /reload: header v3, no limit any more.
    rewrite(&conf, &file(port, admin_port, &upstream, "v3", None));
    let r = reqwest::Client::new()
        .post(format!("{admin}/reload"))
        .send()
        .await
        .expect("POST /reload");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    for id in 20..=21 {
        let (status, body) = call(&gw.url(), id).await;
        assert_eq!(status, 200, "{body}");
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 6);
    assert!(seen[4..].iter().all(|s| s.headers["x-version"] == "v3"));
}

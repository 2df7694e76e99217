//! Hot reload under load: steady POSTs and open SSE streams through a reload by file watch, a
//! refused config, a half-written file, a missing file, SIGHUP and `POST /reload`. Nothing is
//! lost: every POST answers 200 and reaches the upstream, every stream keeps flowing.

use crate::support::{metric_value, post_load, Gateway};
use crate::upstreams::mixed;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The config under test: a response header names the config version, so a client can tell
/// which snapshot answered.
fn config(version: &str, upstream: std::net::SocketAddr) -> String {
    format!(
        "reload:\n  watch: true\n  interval: 100ms\n  debounce: 1s\npolicies:\n  response_headers:\n    - set: {{name: x-config, value: {version}}}\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{upstream}]\n"
    )
}

/// Replaces the body of the gateway's config file (keeping its listener and server lines),
/// atomically (write and rename), as a deployment tool would.
fn rewrite(gw: &Gateway, body: &str) {
    let path = gw.config_path();
    let text = std::fs::read_to_string(&path).expect("read config");
    let head = &text[..text.find("reload:").expect("config body")];
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{head}{body}")).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
}

async fn status(gw: &Gateway) -> serde_json::Value {
    reqwest::get(format!("{}/reload", gw.admin))
        .await
        .expect("GET /reload")
        .json()
        .await
        .expect("reload status")
}

/// Waits (bounded) until `GET /reload` satisfies `done`.
async fn wait_status(gw: &Gateway, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(gw).await;
        if done(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: last status {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reloads(gw: &Gateway, result: &str) -> f64 {
    metric_value(
        &gw.metrics().await,
        "mcpgate_config_reload_total",
        &[("result", result)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_loses_no_request_and_cuts_no_stream() {
    let up = mixed().await;
    let gw = Gateway::start(&config("one", up.addr));
    let client = reqwest::Client::new();

    // Three open SSE streams, each counting the events it receives.
    let mut streams = Vec::new();
    let events = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let mut resp = client
            .get(gw.url("/mcp"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("open stream");
        assert_eq!(resp.status(), 200);
        let events = events.clone();
        streams.push(tokio::spawn(async move {
            // Until the test ends the stream: an error or an end would be a cut.
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        events.fetch_add(
                            c.windows(5).filter(|w| w == b"data:").count(),
                            Ordering::Relaxed,
                        );
                    }
                    Ok(None) => return Err::<(), String>("stream ended".to_string()),
                    Err(e) => return Err(format!("stream failed: {e}")),
                }
            }
        }));
    }

    // Steady POST load: four clients, bounded in count and time.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(post_load(
                client.clone(),
                gw.url("/mcp"),
                stop.clone(),
                (5_000, Duration::ZERO, "x-config"),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 1. A change of the file is applied by the watcher.
    rewrite(&gw, &config("two", up.addr));
    wait_status(&gw, "watch reload", |s| s["generation"] == 2).await;
    assert_eq!(status(&gw).await["last_attempt"]["trigger"], "watch");

    // 2. A half-written file: the first half lands, the rest 100 ms later (well under the 1 s
    //    debounce, so that a busy CI machine that stalls the test for a while still writes the
    //    rest in time). Only the whole file is read: one reload, no failure.
    let failures = reloads(&gw, "failure").await;
    let path = gw.config_path();
    let full = {
        let text = std::fs::read_to_string(&path).expect("read");
        let head = text[..text.find("reload:").expect("body")].to_string();
        format!("{head}{}", config("three", up.addr))
    };
    let cut = full.find("endpoints:").expect("endpoints") + 4;
    let started = Instant::now();
    std::fs::write(&path, &full[..cut]).expect("write half");
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(&path, &full).expect("write whole");
    let gap = started.elapsed();
    wait_status(&gw, "settled reload", |s| s["generation"] == 3).await;
    assert_eq!(
        reloads(&gw, "failure").await,
        failures,
        "the half file was read (the whole file followed it after {gap:?}; debounce 1s)"
    );

    // 3. An invalid config is refused as a whole, with every problem and its path, reported on
    //    the admin API; the running config stays.
    rewrite(
        &gw,
        &config("four", up.addr)
            .replace("debounce: 1s", "debounce: soon")
            .replace("hosts: [", "hosts: [not a url, "),
    );
    wait_status(&gw, "refused reload", |s| {
        s["last_attempt"]["result"] == "failure"
    })
    .await;
    let s = status(&gw).await;
    assert_eq!(s["generation"], 3, "{s}");
    let paths: Vec<&str> = s["last_attempt"]["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert!(paths.contains(&"reload.debounce"), "{s}");
    assert!(paths.contains(&"endpoints[0].backend.hosts[0]"), "{s}");
    assert!(
        metric_value(
            &gw.metrics().await,
            "mcpgate_config_last_reload_successful",
            &[]
        ) == 0.0
    );

    // 4. A missing file keeps the running config and is reported.
    std::fs::remove_file(&path).expect("remove");
    wait_status(&gw, "missing file", |s| {
        s["last_attempt"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing"))
    })
    .await;
    assert_eq!(status(&gw).await["generation"], 3);

    // 5. The file is back (valid): applied. SIGHUP and POST /reload apply too.
    rewrite_from_scratch(&gw, &path, &config("five", up.addr));
    wait_status(&gw, "file back", |s| s["generation"] == 4).await;
    gw.signal("HUP");
    wait_status(&gw, "SIGHUP", |s| {
        s["generation"] == 5 && s["last_attempt"]["trigger"] == "signal"
    })
    .await;
    let r = gw.reload().await;
    assert_eq!(r.status(), 200);
    assert_eq!(status(&gw).await["generation"], 6);
    assert_eq!(status(&gw).await["last_attempt"]["result"], "success");
    assert!(
        metric_value(
            &gw.metrics().await,
            "mcpgate_config_last_reload_successful",
            &[]
        ) == 1.0
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Stop the load; nothing was lost.
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for t in load {
        outcomes.extend(t.await.expect("load task"));
    }
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| !matches!(o, Ok((200, _, _))))
        .collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    let versions: std::collections::BTreeSet<&str> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|(_, v, _)| v.as_str()))
        .collect();
    for v in ["one", "two", "three", "five"] {
        assert!(
            versions.contains(v),
            "no answer from config {v}: {versions:?}"
        );
    }
    assert!(
        !versions.contains("four"),
        "the refused config served requests"
    );
    let posts = up
        .requests()
        .iter()
        .filter(|r| r.method == http::Method::POST)
        .count();
    assert_eq!(
        posts,
        outcomes.len(),
        "the upstream saw every POST exactly once"
    );
    assert!(outcomes.len() > 100, "too little load: {}", outcomes.len());

    // The streams flowed through every reload and are still open.
    let before = events.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.load(Ordering::Relaxed) == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(events.load(Ordering::Relaxed) > before, "streams stopped");
    for s in &streams {
        assert!(!s.is_finished(), "a stream was cut");
    }
    for s in streams {
        s.abort();
    }
}

/// Writes a config file that was deleted: the head (listeners, server) comes from the copy the
/// test keeps.
fn rewrite_from_scratch(gw: &Gateway, path: &std::path::Path, body: &str) {
    let head = format!(
        "listen:\n  - {}\nadmin: {}\nserver:\n  threads: 2\n  grace_period: 1s\n  graceful_shutdown_timeout: 1s\n  upgrade_sock: {}\n  pid_file: {}\naccess_log:\n  path: {}\n",
        gw.base.trim_start_matches("http://"),
        gw.admin.trim_start_matches("http://"),
        gw.dir.path().join("upgrade.sock").display(),
        gw.dir.path().join("mcpgate.pid").display(),
        gw.dir.path().join("access.log").display(),
    );
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{head}{body}")).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn reload_needs_credentials_when_a_token_is_set() {
    let up = mixed().await;
    let gw = Gateway::start(&format!(
        "admin_token: a-long-admin-token-123\n{}",
        config("one", up.addr)
    ));
    let client = reqwest::Client::new();
    let r = gw.reload().await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = client
        .post(format!("{}/reload", gw.admin))
        .bearer_auth("a-long-admin-token-123")
        .send()
        .await
        .expect("POST /reload");
    assert_eq!(r.status(), 200);
    let s = status(&gw).await;
    assert_eq!(s["generation"], 2);
    assert_eq!(s["last_attempt"]["trigger"], "admin");
}

#[tokio::test]
async fn a_host_that_is_down_stays_out_of_rotation_through_a_reload() {
    let up = mixed().await;
    let dead = crate::support::dead_addr();
    let body = |version: &str| {
        format!(
            "policies:\n  response_headers:\n    - set: {{name: x-config, value: {version}}}\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{dead}, http://{}]\n      health_check: {{interval: 200ms, timeout: 200ms}}\n",
            up.addr
        )
    };
    let gw = Gateway::start(&body("one"));
    let dead_url = format!("http://{dead}");
    let healthy = |page: &str| {
        metric_value(
            page,
            "mcpgate_upstream_healthy",
            &[("host", dead_url.as_str())],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while healthy(&gw.metrics().await) != 0.0 {
        assert!(
            Instant::now() < deadline,
            "the dead host was never marked down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failures = |page: &str| {
        metric_value(
            page,
            "mcpgate_upstream_connect_failures_total",
            &[("host", dead_url.as_str())],
        )
    };
    let before = failures(&gw.metrics().await);
    // Another config (a changed header): the backend and its health state carry over.
    let text = std::fs::read_to_string(gw.config_path()).expect("read");
    std::fs::write(gw.config_path(), text.replace("value: one", "value: two")).expect("write");
    let client = reqwest::Client::new();
    let r = gw.reload().await;
    assert_eq!(r.status(), 200);
    for _ in 0..6 {
        let r = client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-config"], "two");
    }
    let page = gw.metrics().await;
    assert_eq!(
        healthy(&page),
        0.0,
        "the reload marked the dead host healthy"
    );
    assert_eq!(
        failures(&page),
        before,
        "requests went to the dead host after the reload"
    );
}

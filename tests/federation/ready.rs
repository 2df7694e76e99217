//! `/readyz` of a federated endpoint: its servers' hosts are counted, each server is listed,
//! and the endpoint is not ready while a required server has no healthy host.

use super::{config, demo};
use crate::support::{dead_addr, Gateway};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn readyz(gw: &Gateway) -> (u16, Value) {
    let resp = reqwest::get(format!("{}/readyz", gw.admin))
        .await
        .expect("readyz");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `/readyz` once `done` holds for its first endpoint (bounded).
async fn readyz_when(gw: &Gateway, done: impl Fn(&Value) -> bool) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, r) = readyz(gw).await;
        if done(&r["endpoints"][0]) || Instant::now() > deadline {
            return (status, r);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_counts_the_servers_hosts() {
    let (a, _da) = demo().await;
    let dead = dead_addr();
    let checks = "          health_check: {interval: 200ms, timeout: 200ms}\n";
    let with_checks = |yaml: String| {
        yaml.replace(
            "          path: /mcp\n",
            &format!("          path: /mcp\n{checks}"),
        )
    };
    // An optional server down: counted, the endpoint stays ready.
    let gw = Gateway::start(&with_checks(config(
        &[("a", a, true), ("gone", dead, false)],
        "",
    )));
    let (status, r) = readyz_when(&gw, |ep| ep["healthy_hosts"] == 1).await;
    let ep = &r["endpoints"][0];
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (ep["hosts"].clone(), ep["healthy_hosts"].clone()),
        (2.into(), 1.into()),
        "{r}"
    );
    assert_eq!(ep["ready"], true, "{r}");
    assert_eq!(ep["servers"][1]["alias"], "gone");
    assert_eq!(ep["servers"][1]["healthy_hosts"], 0, "{r}");
    // A required server down: the endpoint is not ready.
    let gw = Gateway::start(&with_checks(config(
        &[("a", a, false), ("gone", dead, true)],
        "",
    )));
    let (_, r) = readyz_when(&gw, |ep| ep["ready"] == false).await;
    let ep = &r["endpoints"][0];
    assert_eq!(ep["ready"], false, "{r}");
    assert_eq!(ep["servers"][1]["required"], true, "{r}");
}

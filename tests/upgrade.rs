//! Graceful binary upgrade: a new `mcpgate -u` takes the listening sockets over from the running
//! one (SIGQUIT), with requests arriving all the while. No request fails; a slow request in
//! flight on the old process completes; an open GET stream on the old process is ended cleanly
//! after the hand-over and reconnects to the new one; the old process exits as soon as it has
//! nothing left, well before its grace period.

use crate::support::{metric_value, post_load, Gateway};
use crate::upstreams::mixed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pingora's pause between handing the sockets over and starting to drain.
const HANDOVER_PAUSE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_hands_over_without_failing_a_request() {
    let up = mixed().await;
    let mut old = Gateway::start_with_grace(
        "",
        "30s",
        &format!(
            "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n      idle_timeout: 60s\n",
            up.addr
        ),
    );
    // Every request on a new connection, as through a TCP load balancer: whichever process
    // accepts it must answer it.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");

    // A GET stream on the old process.
    let mut stream = fresh
        .get(old.url("/mcp"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("open stream");
    assert_eq!(stream.status(), 200);
    let stream_task = tokio::spawn(async move {
        let mut last_id = None;
        let mut bytes = Vec::new();
        loop {
            match stream.chunk().await {
                Ok(Some(c)) => {
                    bytes.extend_from_slice(&c);
                    let text = String::from_utf8_lossy(&bytes);
                    last_id = text
                        .lines()
                        .rev()
                        .find_map(|l| l.strip_prefix("id: "))
                        .map(str::to_string);
                }
                // A clean end: the body was complete.
                Ok(None) => return Ok((Instant::now(), last_id)),
                Err(e) => return Err(format!("the stream broke instead of ending: {e}")),
            }
        }
    });

    // Continuous POSTs, bounded in count and time.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(post_load(
                fresh.clone(),
                old.url("/mcp"),
                stop.clone(),
                (20_000, Duration::from_millis(5), ""),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The new process waits for the sockets; the old one hands them over on SIGQUIT.
    let new = KillOnDrop(old.start_upgrade());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A slow request that will still be running on the old process when it starts draining.
    let slow = {
        let client = fresh.clone();
        let url = old.url("/mcp");
        tokio::spawn(async move {
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-delay-ms", "7000")
                .body(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call"}"#)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            let body = r.text().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((status, body))
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quit_at = Instant::now();
    old.signal("QUIT");

    // The stream ends cleanly once the hand-over pause is over, not before.
    let (ended_at, last_id) = tokio::time::timeout(Duration::from_secs(20), stream_task)
        .await
        .expect("the stream was not ended")
        .expect("stream task")
        .expect("clean end");
    let after = ended_at - quit_at;
    assert!(
        after >= HANDOVER_PAUSE - Duration::from_millis(500),
        "the stream ended {after:?} after SIGQUIT, before the hand-over was done"
    );
    assert!(last_id.is_some(), "the stream carried events");
    // The client reconnects (with Last-Event-ID) and reaches the new process.
    let resumed = fresh
        .get(old.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("last-event-id", last_id.clone().unwrap_or_default())
        .send()
        .await
        .expect("reconnect");
    assert_eq!(resumed.status(), 200);
    drop(resumed);

    // The slow request completes on the old process; then the old process exits, long before
    // its 30 s grace period.
    let (status, body) = slow.await.expect("slow task").expect("slow request");
    assert_eq!(status, 200);
    assert!(body.contains("\"echo\""), "{body}");
    let code = old
        .wait_exit(Duration::from_secs(15))
        .expect("the old process did not exit after draining");
    assert_eq!(code, 0);
    let exit_after = quit_at.elapsed();
    assert!(
        exit_after < Duration::from_secs(20),
        "the old process took {exit_after:?}"
    );

    // Requests keep flowing to the new process for a while, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for t in load {
        outcomes.extend(t.await.expect("load task"));
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Ok((200, _, body)) if body.contains("\"echo\"") => None,
            Ok((status, _, body)) => Some(format!("{status} {body}")),
            Err(e) => Some(e.clone()),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed requests: {failed:?}",
        failed.len()
    );
    assert!(outcomes.len() > 200, "too little load: {}", outcomes.len());

    // The old process logged its drain (and flushed its access log before exiting).
    let stderr = old.stderr();
    assert!(stderr.contains("draining"), "{stderr}");
    assert!(
        stderr.contains("drained: every request finished"),
        "{stderr}"
    );
    let log = old.access_log();
    assert!(
        log.iter()
            .any(|l| l["method"] == "GET" && l["end"] == "drained" && l["error"].is_null()),
        "no access-log line for the drained stream"
    );

    // The new process serves, with its own metrics on the same admin address.
    let page = old.metrics().await;
    assert_eq!(metric_value(&page, "mcpgate_draining", &[]), 0.0);
    assert!(metric_value(&page, "mcpgate_requests_total", &[]) > 0.0);
    drop(new);
}

/// The new process, stopped when the test ends (passing or not).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

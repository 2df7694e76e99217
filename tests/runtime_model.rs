//! `server.runtime`: per-core workers (the default) each listen on their own `SO_REUSEPORT`
//! socket, share the connections between them and serve them; work stealing keeps one socket;
//! an upgrade from a work-stealing process (whose socket cannot be shared) falls back to work
//! stealing instead of failing.

use crate::support::Gateway;
use crate::upstreams::recording;
use std::collections::HashSet;
use std::time::Duration;

const ANSWER: &str = r#"{"jsonrpc":"2.0","id":41,"result":{"ok":true}}"#;
const CALL: &str =
    r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;

/// The gateway's pid: the process whose command line names its config file.
fn pid_of(gw: &Gateway) -> u32 {
    let conf = gw.config_path().display().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&conf.as_bytes()) && !args.contains(&&b"-u"[..]) {
            found.push(pid);
        }
    }
    assert_eq!(found.len(), 1, "processes running {conf}: {found:?}");
    found[0]
}

/// Listening TCP sockets of process `pid` on `port` (from /proc: the process's socket inodes
/// that /proc/net/tcp lists in state LISTEN on that port).
fn listening_sockets(pid: u32, port: u16) -> usize {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().to_string();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).expect("net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            f.get(3) == Some(&"0A")
                && local_port == Some(port)
                && f.get(9).is_some_and(|i| inodes.contains(*i))
        })
        .count()
}

fn port_of(gw: &Gateway) -> u16 {
    gw.base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// CPU ticks (user + system) of each thread of `pid` whose name starts with `prefix`.
fn thread_ticks(pid: u32, prefix: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let dir = e.expect("task").path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let name = name.trim().to_string();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        out.push((name, ticks(11) + ticks(12)));
    }
    out.sort();
    out
}

/// `n` POSTs, each on a new connection; every answer is the upstream's, with the request id.
async fn post_fresh(gw: &Gateway, n: usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for i in 0..n {
        let r = client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(CALL)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status(), 200, "request {i}");
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["id"], 41, "request {i}: {v}");
        assert_eq!(v["result"]["ok"], true, "request {i}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_per_core_worker_has_its_socket_and_work_stealing_has_one() {
    // `start_with_server` sets `threads: 2`.
    for (server, sockets) in [
        ("", 2),
        ("  runtime: per_core\n", 2),
        ("  runtime: work_stealing\n", 1),
        ("  work_stealing: true\n", 1),
        ("  work_stealing: false\n", 2),
        ("  runtime: work_stealing\n  work_stealing: false\n", 1),
    ] {
        let up = recording("a", 200, ANSWER).await;
        let gw = Gateway::start_with_server(
            "",
            server,
            &format!(
                "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
                up.addr
            ),
        );
        let pid = pid_of(&gw);
        // The gateway answers once one worker listens; each worker binds its own socket as its
        // service starts, so on a busy machine the others may follow a little later.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while listening_sockets(pid, port_of(&gw)) < sockets && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(
            listening_sockets(pid, port_of(&gw)),
            sockets,
            "{server:?}: stderr:\n{}",
            gw.stderr()
        );
        post_fresh(&gw, 12).await;
        let seen = up.requests();
        assert_eq!(seen.len(), 12, "{server:?}");
        assert!(seen
            .iter()
            .all(|s| s.method == "POST" && s.body.as_ref() == CALL.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_are_shared_between_the_per_core_workers() {
    let up = recording("a", 200, ANSWER).await;
    let gw = Gateway::start_with_server(
        "",
        "",
        &format!(
            "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
            up.addr
        ),
    );
    let pid = pid_of(&gw);
    let before = thread_ticks(pid, "mcpgate proxy");
    assert_eq!(
        before.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["mcpgate proxy 0", "mcpgate proxy 1"],
        "one thread per worker"
    );
    // 48 clients, each on its own connections: the kernel spreads them over the two sockets.
    let tasks: Vec<_> = (0..48)
        .map(|_| {
            let url = gw.url("/mcp");
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .expect("client");
                for _ in 0..25 {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(CALL)
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(r.status(), 200);
                    assert_eq!(r.text().await.expect("body"), ANSWER);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    assert_eq!(up.requests().len(), 48 * 25);
    let after = thread_ticks(pid, "mcpgate proxy");
    let used: Vec<u64> = after
        .iter()
        .zip(&before)
        .map(|((_, a), (_, b))| a - b)
        .collect();
    let total: u64 = used.iter().sum();
    assert!(total > 0, "{used:?}");
    // Each worker did a real share of the work (connections hash over the two sockets).
    for u in &used {
        assert!(*u * 10 >= total, "unbalanced: {used:?} ticks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_from_work_stealing_falls_back_to_it_and_loses_nothing() {
    let up = recording("a", 200, ANSWER).await;
    let mut old = Gateway::start_with_server(
        "",
        "  runtime: work_stealing\n",
        &format!(
            "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://{}]\n",
            up.addr
        ),
    );
    post_fresh(&old, 3).await;
    // The new process is configured per core; the socket it inherits has no SO_REUSEPORT.
    let conf = old.config_path();
    let text = std::fs::read_to_string(&conf).expect("config");
    std::fs::write(
        &conf,
        text.replace("runtime: work_stealing", "runtime: per_core"),
    )
    .expect("rewrite config");
    let mut new = old.start_upgrade();
    tokio::time::sleep(Duration::from_millis(500)).await;
    old.signal("QUIT");
    assert!(
        old.wait_exit(Duration::from_secs(20)).is_some(),
        "the old process did not exit"
    );
    // The new process took the socket over and serves.
    post_fresh(&old, 5).await;
    assert_eq!(up.requests().len(), 8);
    let log_path = old.dir.path().join("stderr-new.log");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        log.contains("cannot be shared") && log.contains("runs work stealing"),
        "{log}"
    );
    assert_eq!(listening_sockets(new.id(), port_of(&old)), 1, "{log}");
    let _ = new.kill();
    let _ = new.wait();
}

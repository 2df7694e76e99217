//! Test support: the real `mcpgate` binary on ephemeral loopback ports, upstreams started
//! in-process, and small HTTP helpers. Everything stops when its handle is dropped.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ports handed out by this test process: never handed out twice, so two gateways (or a
/// gateway's listener and admin port) cannot be given the same port while neither has bound it.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free loopback port (bound, read back, released), distinct from every port handed out before
/// by this process.
pub fn free_port() -> u16 {
    // Hold every candidate until a new one is found, so the kernel cannot repeat itself.
    let mut held = Vec::new();
    loop {
        let l = StdListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        let mut taken = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if taken.insert(port) {
            return port;
        }
        drop(taken);
        held.push(l);
        assert!(held.len() < 1000, "no fresh ephemeral port");
    }
}

/// A loopback address where nothing listens.
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The `mcpgate` binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mcpgate")
}

/// A running gateway process.
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:PORT` of the proxy listener.
    pub base: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    /// The temp dir with the config, the access log and stderr.
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway with `endpoints_yaml` (the YAML of the `endpoints:` list items and any
    /// other top-level keys, with `{listen}`/`{admin}` filled in here) and waits until it is ready.
    pub fn start(body_yaml: &str) -> Gateway {
        Gateway::start_with_listen("", body_yaml)
    }

    /// Like [`Gateway::start`], with more listener entries (YAML list items) after the plain one.
    pub fn start_with_listen(extra_listeners: &str, body_yaml: &str) -> Gateway {
        Gateway::start_with_grace(extra_listeners, "1s", body_yaml)
    }

    /// Like [`Gateway::start_with_listen`], with a given `server.grace_period`.
    pub fn start_with_grace(extra_listeners: &str, grace: &str, body_yaml: &str) -> Gateway {
        Gateway::start_with_server(
            extra_listeners,
            &format!("  grace_period: {grace}\n"),
            body_yaml,
        )
    }

    /// Like [`Gateway::start`], with more `server:` settings (indented YAML lines, e.g.
    /// `"  header_timeout: 2s\n"`; `grace_period` defaults to `1s`).
    pub fn start_with_server(extra_listeners: &str, server_yaml: &str, body_yaml: &str) -> Gateway {
        let grace = if server_yaml.contains("grace_period:") {
            ""
        } else {
            "  grace_period: 1s\n"
        };
        let port = free_port();
        let admin_port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = format!(
            "listen:\n  - 127.0.0.1:{port}\n{extra_listeners}admin: 127.0.0.1:{admin_port}\nserver:\n  threads: 2\n{grace}{server_yaml}  graceful_shutdown_timeout: 1s\n  upgrade_sock: {up}\n  pid_file: {pid}\naccess_log:\n  path: {log}\n{body_yaml}",
            up = dir.path().join("upgrade.sock").display(),
            pid = dir.path().join("mcpgate.pid").display(),
            log = dir.path().join("access.log").display(),
        );
        Gateway::spawn(&[], dir, &yaml, port, admin_port)
    }

    /// Writes `yaml` as the config in `dir`, runs `mcpgate ARGS -c FILE` and waits until the
    /// listener on `port` and the admin listener on `admin_port` are ready.
    fn spawn(
        args: &[&str],
        dir: tempfile::TempDir,
        yaml: &str,
        port: u16,
        admin_port: u16,
    ) -> Gateway {
        let conf = dir.path().join("mcpgate.yaml");
        std::fs::write(&conf, yaml).expect("write config");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
        let child = Command::new(binary())
            .args(args)
            .arg("-c")
            .arg(&conf)
            .env("MCPGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start mcpgate");
        let gw = Gateway {
            child,
            base: format!("http://127.0.0.1:{port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            dir,
        };
        gw.wait_ready();
        gw
    }

    /// A gateway with one endpoint `/mcp` in front of `hosts`, plus extra backend YAML lines
    /// (indented for the `backend:` map).
    pub fn in_front_of(hosts: &[SocketAddr], backend_extra: &str) -> Gateway {
        let hosts: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
        Gateway::start(&format!(
            "endpoints:\n  - path: /mcp\n    backend:\n      hosts: [{}]\n{backend_extra}",
            hosts.join(", ")
        ))
    }

    /// Runs `mcpgate demo -c FILE` on the shipped example config `conf/mcpgate.yaml`, with its
    /// fixed addresses (8080, 9090, the demo upstream on 3000) and file paths moved to ephemeral
    /// ports and this gateway's temp dir; everything else is the file as users get it.
    pub fn demo_on_example_config() -> Gateway {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/mcpgate.yaml");
        let text = std::fs::read_to_string(example).expect("read conf/mcpgate.yaml");
        let (port, admin_port, upstream_port) = (free_port(), free_port(), free_port());
        let dir = tempfile::tempdir().expect("tempdir");
        let mut yaml = text;
        for (from, to) in [
            (
                "listen: 127.0.0.1:8080",
                format!("listen: 127.0.0.1:{port}"),
            ),
            (
                "admin: 127.0.0.1:9090",
                format!("admin: 127.0.0.1:{admin_port}"),
            ),
            (
                "http://127.0.0.1:3000",
                format!("http://127.0.0.1:{upstream_port}"),
            ),
            (
                "/tmp/mcpgate_upgrade.sock",
                dir.path().join("upgrade.sock").display().to_string(),
            ),
            (
                "/tmp/mcpgate.pid",
                dir.path().join("mcpgate.pid").display().to_string(),
            ),
            (
                "path: \"-\"",
                format!("path: {}", dir.path().join("access.log").display()),
            ),
        ] {
            assert!(
                yaml.contains(from),
                "conf/mcpgate.yaml no longer has `{from}`"
            );
            yaml = yaml.replace(from, &to);
        }
        Gateway::spawn(&["demo"], dir, &yaml, port, admin_port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = self.admin.trim_start_matches("http://").to_string();
        while Instant::now() < deadline {
            if let Ok(body) = blocking_get(&addr, "/readyz") {
                if body.starts_with("HTTP/1.1 200") {
                    // The admin listener is up; make sure the proxy listener is too.
                    let proxy = self.base.trim_start_matches("http://");
                    if std::net::TcpStream::connect(proxy).is_ok() {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mcpgate did not become ready; stderr:\n{}", self.stderr());
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("mcpgate.yaml")
    }

    /// Sends `signal` (`HUP`, `QUIT`, `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `limit` for the process to exit; its exit code, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the new process of a graceful upgrade: the same binary and config with `-u`, which
    /// waits for this process to hand its listening sockets over (after SIGQUIT). The handle
    /// shares this gateway's addresses and temp dir; its stderr goes to `stderr-new.log`.
    pub fn start_upgrade(&self) -> Child {
        let stderr =
            std::fs::File::create(self.dir.path().join("stderr-new.log")).expect("stderr file");
        Command::new(binary())
            .arg("-u")
            .arg("-c")
            .arg(self.config_path())
            .env("MCPGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the new mcpgate")
    }

    /// The proxy URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The access-log lines written so far, parsed.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `POST /reload` on the admin listener (no credentials).
    pub async fn reload(&self) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/reload", self.admin))
            .send()
            .await
            .expect("POST /reload")
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// The `/metrics` page once `done` holds for it, or after 10 s (the caller's assertions then
    /// show what was missing). Requests are counted in the logging phase, after the client has
    /// its answer, so a test reads the counts of its last requests through this.
    pub async fn metrics_when(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let page = self.metrics().await;
            if done(&page) || Instant::now() >= deadline {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The access-log lines once there are at least `n`, or after 10 s (the log is written by
    /// its own thread, after the answer).
    pub async fn access_log_when(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.access_log();
            if log.len() >= n || Instant::now() >= deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.1 GET (for readiness polling without a runtime).
fn blocking_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut first = String::new();
    BufReader::new(s).read_line(&mut first)?;
    Ok(first)
}

/// Sum of the samples of metric `name` whose labels contain every `label=value` of `labels`.
pub fn metric_value(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs `mcpgate` with `args` and returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run mcpgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `text` to a temp file named `name` and returns its path (kept alive by the dir).
pub fn temp_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}

/// Whether a missing peer (a program the tests need) fails the test rather than skipping it:
/// set by `tests/run-all.sh`, which installs every peer.
pub fn peers_required() -> bool {
    std::env::var_os("MCPGATE_REQUIRE_PEERS").is_some()
}

/// A `redis-server` on an ephemeral loopback port, killed when dropped.
pub struct Redis {
    child: Child,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
}

impl Redis {
    /// Starts `redis-server` (no persistence); `None` (with a note) when it is not installed
    /// and peers are not required.
    pub fn start() -> Option<Redis> {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if !peers_required() => {
                eprintln!(
                    "SKIPPED: redis-server not available ({e}); tests/run-all.sh installs it"
                );
                return None;
            }
            Err(e) => panic!("redis-server is required: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        })
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Stops the server for good.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.signal_quietly("CONT");
        self.stop();
    }
}

impl Redis {
    fn signal_quietly(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
    }
}

/// One answer of [`post_load`]: status, the value of the header asked for, and the body.
pub type LoadOutcome = Result<(u16, String, String), String>;

/// Sends JSON-RPC POSTs to `url` one after another until `stop` is set, at most `max` of them
/// and for at most 60 s, pausing `pause` between them; returns every outcome (a transport or
/// body error is an `Err`). `header` names a response header to report.
pub async fn post_load(
    client: reqwest::Client,
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    (max, pause, header): (usize, Duration, &'static str),
) -> Vec<LoadOutcome> {
    let mut outcomes = Vec::new();
    let started = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed)
        && outcomes.len() < max
        && started.elapsed() < Duration::from_secs(60)
    {
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await;
        outcomes.push(match r {
            Ok(r) => {
                let status = r.status().as_u16();
                let value = r
                    .headers()
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                r.text()
                    .await
                    .map(|body| (status, value, body))
                    .map_err(|e| format!("body: {e}"))
            }
            Err(e) => Err(e.to_string()),
        });
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    outcomes
}

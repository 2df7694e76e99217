//! The cost of traffic-management decisions per request: a rate-limit decision in process and on
//! Redis (one round trip, the Lua script), a concurrency count, a circuit-breaker admission, and
//! sealing / opening a pinned session id. Prints time per operation and the Redis/in-process
//! ratio measured in the same run; no timing assertions.
//!
//! Run: `cargo bench --bench limits`. The Redis part starts `redis-server` on an ephemeral
//! loopback port when it is installed, and is skipped (with a note) when it is not.

mod support;
use support::bench;

use mcpgate::mcp::session_pin::{Sealer, SessionsConfig};
use mcpgate::policy::limit_key::KeyFacts;
use mcpgate::runtime::load::load_str;
use mcpgate::runtime::snapshot::Snapshot;
use pingora::http::RequestHeader;
use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn report(name: &str, iterations: u32, elapsed: Duration) -> f64 {
    let ns = elapsed.as_nanos() as f64 / f64::from(iterations);
    println!("{name:<52} {ns:>10.1} ns/op");
    ns
}

fn snapshot(redis: Option<&str>) -> Snapshot {
    let store = if redis.is_some() { "redis" } else { "memory" };
    let redis_block = redis
        .map(|u| format!("redis:\n  url: {u}\n  timeout: 1s\n"))
        .unwrap_or_default();
    let yaml = format!(
        "listen: 127.0.0.1:8080\n{redis_block}sessions:\n  key: q2Gx7c3J0kqXr8vL5mN1pT4wY6zA9bC2dE5fH8jK0mM=\nendpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://127.0.0.1:3000, http://127.0.0.1:3001]\n      circuit_breaker: {{ consecutive_failures: 5 }}\n    policies:\n      rate_limits:\n        - name: per-client\n          requests: 1000000000\n          period: 1m\n          key: {{ header: x-client }}\n          store: {store}\n      concurrency:\n        - name: open\n          max_requests: 1000000\n"
    );
    let cfg = load_str(&yaml, false, "bench").expect("bench config");
    Snapshot::compile(cfg, 1).expect("compile")
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut req = RequestHeader::build("POST", b"/mcp", None).expect("request");
    req.insert_header("x-client", "tenant-42").expect("header");
    println!("mcpgate traffic-management micro-benchmark (single thread)");
    let mut c = support::criterion();

    let snap = snapshot(None);
    let ep = &snap.endpoints[0];
    let mut clients = 0u32;
    let memory_ns = bench(
        &mut c,
        "rate limit, in process (1 limit, header key)",
        || {
            clients = clients.wrapping_add(1);
            let facts = KeyFacts {
                req: &req,
                client_ip: None,
                identity: None,
                tools: &[],
            };
            let d = rt.block_on(ep.policies.rate_limits.check(&facts));
            black_box(d.is_ok());
        },
    );
    bench(&mut c, "concurrency count + release", || {
        let facts = KeyFacts {
            req: &req,
            client_ip: None,
            identity: None,
            tools: &[],
        };
        black_box(ep.policies.concurrency.acquire(&facts, false).is_ok());
    });
    let host = &ep.backend.hosts[0];
    if let Some(b) = &host.breaker {
        bench(&mut c, "circuit breaker admit (closed)", || {
            black_box(b.admit(Instant::now(), &host.metrics, &host.url));
        });
    }
    let sealer = Sealer::compile(
        &SessionsConfig {
            key: Some("q2Gx7c3J0kqXr8vL5mN1pT4wY6zA9bC2dE5fH8jK0mM=".into()),
            previous_keys: vec![],
        },
        "sessions",
    )
    .expect("sealer");
    let token = sealer
        .seal(
            "/mcp",
            "http://127.0.0.1:3000",
            "0b8f6c3e-2a8e-4f7e-9a51-3f6c1d2b7e90",
        )
        .expect("seal");
    bench(&mut c, "session id seal (AES-256-GCM)", || {
        black_box(sealer.seal("/mcp", "http://127.0.0.1:3000", "0b8f6c3e-2a8e"));
    });
    bench(&mut c, "session id open", || {
        black_box(sealer.open("/mcp", black_box(&token)));
    });

    redis_part(&rt, &req, memory_ns);
}

fn redis_part(rt: &tokio::runtime::Runtime, req: &RequestHeader, memory_ns: f64) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        println!("redis-server not installed: Redis decisions not measured");
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let snap = snapshot(Some(&format!("redis://127.0.0.1:{port}")));
    let ep = &snap.endpoints[0];
    let decide = || async {
        let facts = KeyFacts {
            req,
            client_ip: None,
            identity: None,
            tools: &[],
        };
        ep.policies.rate_limits.check(&facts).await.is_ok()
    };
    let n = 20_000u32;
    let (elapsed, ok) = rt.block_on(async {
        for _ in 0..500 {
            decide().await;
        }
        let start = Instant::now();
        let mut ok = 0u32;
        for _ in 0..n {
            ok += u32::from(decide().await);
        }
        (start.elapsed(), ok)
    });
    let redis_ns = report("rate limit, Redis (sequential round trips)", n, elapsed);
    assert_eq!(ok, n, "every decision answered");
    // 32 decisions in flight at once share the multiplexed connection.
    let (elapsed, _) = rt.block_on(async {
        let start = Instant::now();
        let mut done = 0u32;
        for _ in 0..(n / 32) {
            let batch: Vec<_> = (0..32).map(|_| decide()).collect();
            done += futures::future::join_all(batch)
                .await
                .into_iter()
                .filter(|b| *b)
                .count() as u32;
        }
        (start.elapsed(), done)
    });
    report(
        "rate limit, Redis (32 in flight, per decision)",
        n / 32 * 32,
        elapsed,
    );
    println!(
        "ratio Redis / in process (sequential): {:.0}x",
        redis_ns / memory_ns.max(0.001)
    );
    let _ = child.kill();
    let _ = child.wait();
}

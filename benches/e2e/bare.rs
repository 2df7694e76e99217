//! A bare Pingora reverse proxy for the end-to-end benchmark (`benches/e2e/run.sh`): the same
//! Pingora version and build settings as mcpgate, no policies, no routing, no metrics. It shows
//! which part of mcpgate's cost is Pingora's own relay path and which part is the gateway's.
//!
//! `e2e-bare --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--threads N] [--no-steal | --per-core]`

use std::net::SocketAddr;

use async_trait::async_trait;
use clap::Parser;
use pingora::listeners::{ListenerConfig, TcpSocketOptions};
use pingora::prelude::*;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::{Opt, ServerConf};

#[derive(Parser, Debug)]
#[command(about = "Bare Pingora reverse proxy (benchmark baseline)")]
struct Args {
    /// Listen address.
    #[arg(long)]
    listen: SocketAddr,
    /// The upstream (plain HTTP).
    #[arg(long)]
    upstream: SocketAddr,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// One single-threaded runtime per thread (Pingora's `work_stealing: false`).
    #[arg(long)]
    no_steal: bool,
    /// Worker per core, as mcpgate's `server.runtime: per_core`: one proxy service (and upstream
    /// pool) per thread, each on a single-threaded runtime with its own `SO_REUSEPORT` socket.
    #[arg(long, conflicts_with = "no_steal")]
    per_core: bool,
    /// Size of the listener's L4 read buffer in bytes (Pingora's default: 64 KiB; 0: none).
    #[arg(long)]
    read_buffer: Option<usize>,
}

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// The same allocator as mcpgate (src/main.rs): the floor is built the same way.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse();
    let conf = ServerConf {
        threads: args.threads,
        work_stealing: !(args.no_steal || args.per_core),
        upstream_keepalive_pool_size: 256,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        pid_file: format!("/tmp/e2e-bare-{}.pid", std::process::id()),
        upgrade_sock: format!("/tmp/e2e-bare-{}.sock", std::process::id()),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: false,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    // Per core: one service per thread. Pingora keeps one socket per address string, so each
    // worker writes the port with its own number of leading zeros (as mcpgate does).
    let workers: Vec<(String, Option<usize>)> = if args.per_core {
        (0..args.threads)
            .map(|i| {
                let addr = args.listen.to_string();
                let host = addr.rsplit_once(':').map_or("", |(h, _)| h);
                let key = format!("{host}:{}{}", "0".repeat(i), args.listen.port());
                (key, Some(1))
            })
            .collect()
    } else {
        vec![(args.listen.to_string(), None)]
    };
    for (key, threads) in workers {
        let mut proxy = http_proxy_service(
            &server.configuration,
            Bare {
                upstream: args.upstream,
            },
        );
        proxy.threads = threads;
        let mut listener = ListenerConfig::tcp(key);
        if args.per_core {
            let mut o = TcpSocketOptions::default();
            o.so_reuseport = Some(true);
            listener = listener.tcp_socket_options(o);
        }
        if let Some(n) = args.read_buffer {
            listener = listener.l4_buffer(L4BufferSettings::default().read(n));
        }
        proxy.add_listener(listener);
        server.add_service(proxy);
    }
    println!("LISTEN {}", args.listen);
    server.run_forever();
}

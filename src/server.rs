//! Building and running the Pingora server from a compiled snapshot: the proxy service on every
//! listener, the admin listener, and the background health checks.

use crate::admin::AdminApp;
use crate::config::{self, ConfigError};
use crate::observability::otel::{self, TracingService};
use crate::observability::{self, access_log};
use crate::proxy::http1::{self, Http1App};
use crate::proxy::Gateway;
use crate::runtime::drain::{DrainService, Settling};
use crate::runtime::file::{FileConfig, ListenerConfig as ListenerEntry, RuntimeModel};
use crate::runtime::health::HealthService;
use crate::runtime::load::{compile, load_file};
use crate::runtime::reload::{Reloader, SignalReload};
use crate::runtime::snapshot::Snapshot;
use crate::runtime::store::ConfigStore;
use crate::runtime::tls_accept::ListenerCerts;
use crate::runtime::watch::FileWatch;
use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::ListenerConfig;
use pingora::listeners::TcpSocketOptions;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::path::Path;
use std::sync::Arc;

/// How the process was asked to run.
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// `-d`: daemonize.
    pub daemon: bool,
    /// `-u`: take the listening sockets over from a running instance.
    pub upgrade: bool,
    /// The config file, read again on reload (SIGHUP, `POST /reload` on the admin listener).
    pub config_path: Option<std::path::PathBuf>,
}

/// Loads, validates and compiles a config file (generation 1): every problem, with its path.
pub fn load(path: &Path) -> Result<Snapshot, ConfigError> {
    let cfg = load_file(path)?;
    compile(cfg, &path.display().to_string(), 1)
}

/// Pingora's server settings from ours.
fn server_conf(cfg: &FileConfig, flags: &RunFlags) -> ServerConf {
    let s = &cfg.server;
    let secs = |v: &Option<String>, default: u64| {
        v.as_deref()
            .and_then(|d| config::parse_duration(d).ok())
            .map_or(default, |d| d.as_secs())
    };
    ServerConf {
        threads: s.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
        // Per-core workers run on single-threaded runtimes (no stealing, no cross-thread
        // wake-ups). Under `runtime: work_stealing`, `work_stealing: false` keeps the one proxy
        // on single-threaded runtimes, where Pingora's pool loses connections handed between
        // threads (see benches/RESULTS.md).
        work_stealing: match s.runtime_model() {
            RuntimeModel::PerCore => false,
            RuntimeModel::WorkStealing => s.work_stealing.unwrap_or(true),
        },
        grace_period_seconds: Some(secs(&s.grace_period, 30)),
        graceful_shutdown_timeout_seconds: Some(secs(&s.graceful_shutdown_timeout, 5)),
        upgrade_sock: s
            .upgrade_sock
            .clone()
            .unwrap_or_else(|| "/tmp/mcpgate_upgrade.sock".into()),
        pid_file: s
            .pid_file
            .clone()
            .unwrap_or_else(|| "/tmp/mcpgate.pid".into()),
        error_log: s.error_log.clone(),
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size.unwrap_or(256),
        daemon: flags.daemon,
        ..ServerConf::default()
    }
}

/// `server.header_timeout` (validated at load).
fn header_timeout(cfg: &FileConfig) -> std::time::Duration {
    cfg.server
        .header_timeout
        .as_deref()
        .and_then(|d| config::parse_duration(d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(http1::DEFAULT_HEADER_TIMEOUT)
}

/// Runs the gateway until it is told to stop. Never returns.
pub fn run(snapshot: Snapshot, flags: RunFlags) -> ! {
    let cfg = snapshot.source.clone();
    if cfg.access_log.enabled {
        if let Err(e) = access_log::init(&cfg.access_log.path) {
            tracing::error!(path = %cfg.access_log.path, error = %e, "cannot open the access log");
            std::process::exit(1);
        }
    }
    let conf = server_conf(&cfg, &flags);
    let opt = Opt {
        upgrade: flags.upgrade,
        daemon: flags.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let store = Arc::new(ConfigStore::new(snapshot));
    let listeners = cfg.listen.entries();
    match layout(&cfg, &flags, server.configuration.threads, &listeners) {
        Layout::PerCore(workers) => {
            for worker in 0..workers {
                let mut proxy = proxy_service(
                    format!("mcpgate proxy {worker}"),
                    &server,
                    &store,
                    &cfg,
                    &listeners,
                    Some(worker),
                );
                // One thread: with work stealing off, a single-threaded runtime of its own.
                proxy.threads = Some(1);
                server.add_service(proxy);
            }
            tracing::info!(workers, "per-core workers, one listening socket each");
        }
        Layout::Shared => {
            let proxy = proxy_service(
                "mcpgate proxy".to_string(),
                &server,
                &store,
                &cfg,
                &listeners,
                None,
            );
            server.add_service(proxy);
        }
    }

    let reloader = flags
        .config_path
        .clone()
        .map(|path| Arc::new(Reloader::new(store.clone(), path)));
    if let Some(r) = &reloader {
        server.add_service(background_service(
            "mcpgate reload on SIGHUP",
            SignalReload(r.clone()),
        ));
        server.add_service(background_service(
            "mcpgate config file watch",
            FileWatch(r.clone()),
        ));
    }
    if let Some(addr) = &cfg.admin {
        let mut admin = Service::new(
            "mcpgate admin".to_string(),
            HttpServer::new_app(AdminApp::new(store.clone(), reloader.clone())),
        );
        admin.add_tcp(addr);
        tracing::info!(address = %addr, "admin listening");
        server.add_service(admin);
    }
    server.add_service(background_service(
        "mcpgate health checks",
        HealthService::new(store),
    ));
    if let Some(t) = &cfg.tracing {
        server.add_service(background_service(
            "mcpgate tracing",
            TracingService(t.clone()),
        ));
    }
    server.add_service(background_service(
        "mcpgate drain",
        DrainService {
            on_exit: vec![before_exit],
        },
    ));
    observability::metrics::metrics();
    observability::metrics::header_timeouts();
    // Returns when the grace period ran out before every request finished (the drain service
    // exits sooner when they all do).
    server.run(RunArgs::default());
    before_exit();
    std::process::exit(0)
}

/// How the proxy is laid out on threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// This many proxy services of one thread each, each with its own `SO_REUSEPORT` socket on
    /// every listener address.
    PerCore(usize),
    /// One proxy service on all threads, one socket per listener address.
    Shared,
}

/// The layout for this process: `server.runtime`, unless a socket handed over by an upgrade
/// cannot be shared (it was bound without `SO_REUSEPORT`, by a work-stealing instance): then this
/// process runs work stealing, and a restart (not an upgrade) moves to per-core workers.
fn layout(
    cfg: &FileConfig,
    flags: &RunFlags,
    threads: usize,
    listeners: &[ListenerEntry],
) -> Layout {
    if cfg.server.runtime_model() == RuntimeModel::WorkStealing {
        return Layout::Shared;
    }
    for l in listeners {
        let Ok(addr) = l.address.parse::<std::net::SocketAddr>() else {
            continue;
        };
        let probe = |reuseport: bool| -> std::io::Result<()> {
            let sock = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            sock.set_reuseaddr(true)?;
            sock.set_reuseport(reuseport)?;
            // Bound, never listening: it receives no connection and is closed right away.
            sock.bind(addr)
        };
        if flags.upgrade {
            if let Err(e) = probe(true) {
                tracing::warn!(
                    address = %l.address,
                    error = %e,
                    "the listening socket handed over cannot be shared (bound without SO_REUSEPORT \
                     by a work-stealing instance): this process runs work stealing; restart it for \
                     per-core workers"
                );
                return Layout::Shared;
            }
        } else if probe(false).is_err() && probe(true).is_ok() {
            tracing::warn!(
                address = %l.address,
                "another process already listens on this address with SO_REUSEPORT: new \
                 connections will be shared with it"
            );
        }
    }
    Layout::PerCore(threads.max(1))
}

/// The listener address as Pingora's key for worker `worker`: the same socket address, written
/// with `worker` leading zeros in the port. Pingora keeps one socket per key (and hands sockets
/// over by key on upgrade), so each worker gets its own socket, and worker 0's key is the address
/// as written (what a work-stealing instance uses).
fn worker_address(address: &str, worker: usize) -> String {
    match address.parse::<std::net::SocketAddr>() {
        Ok(addr) if worker > 0 => {
            let ip = match addr {
                std::net::SocketAddr::V4(a) => a.ip().to_string(),
                std::net::SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            format!("{ip}:{}{}", "0".repeat(worker), addr.port())
        }
        _ => address.to_string(),
    }
}

/// One proxy service: the gateway behind our HTTP/1 connection loop, on every listener.
/// `worker`: per-core worker `worker` (its own `SO_REUSEPORT` sockets), or `None` for the one
/// shared service.
fn proxy_service(
    name: String,
    server: &Server,
    store: &Arc<ConfigStore>,
    cfg: &FileConfig,
    listeners: &[ListenerEntry],
    worker: Option<usize>,
) -> Service<Settling<Http1App<pingora::proxy::HttpProxy<Gateway>>>> {
    let mut proxy = Service::new(
        name,
        Settling(Arc::new(Http1App::new(
            pingora::proxy::http_proxy(&server.configuration, Gateway::new(store.clone())),
            header_timeout(cfg),
        ))),
    );
    let sock_opts = worker.map(|_| {
        let mut o = TcpSocketOptions::default();
        o.so_reuseport = Some(true);
        o
    });
    for l in listeners {
        let key = worker_address(&l.address, worker.unwrap_or(0));
        match &l.tls {
            // Plain TCP: Pingora reads straight into its HTTP buffers. Its default 64 KiB read
            // buffer per connection would add a copy and, held by every open SSE stream,
            // memory (see benches/RESULTS.md). TLS keeps it: it reads in 16 KiB records.
            None => {
                let mut lc = ListenerConfig::tcp(key);
                if let Some(o) = &sock_opts {
                    lc = lc.tcp_socket_options(o.clone());
                }
                proxy.add_listener(lc.l4_buffer(L4BufferSettings::default().read(0)));
            }
            Some(_) => {
                // The certificate is picked at each handshake from the current snapshot, so a
                // reload rotates it.
                let certs = ListenerCerts {
                    store: store.clone(),
                    address: l.address.clone(),
                };
                match TlsSettings::with_callbacks(Box::new(certs)) {
                    Ok(settings) => proxy.add_tls_with_settings(&key, sock_opts.clone(), settings),
                    Err(e) => {
                        tracing::error!(address = %l.address, error = %e, "cannot set up the TLS listener");
                        std::process::exit(1);
                    }
                }
            }
        }
        if worker.unwrap_or(0) == 0 {
            tracing::info!(address = %l.address, tls = l.tls.is_some(), "listening");
        }
    }
    proxy
}

/// Writes out what is still queued: access-log lines and spans.
fn before_exit() {
    access_log::flush(std::time::Duration::from_secs(2));
    otel::flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn each_worker_has_its_own_key_for_the_same_address() {
        for (address, keys) in [
            (
                "127.0.0.1:8080",
                ["127.0.0.1:8080", "127.0.0.1:08080", "127.0.0.1:008080"],
            ),
            ("[::1]:443", ["[::1]:443", "[::1]:0443", "[::1]:00443"]),
            ("0.0.0.0:9", ["0.0.0.0:9", "0.0.0.0:09", "0.0.0.0:009"]),
        ] {
            let want: SocketAddr = address.parse().expect("address");
            for (worker, key) in keys.iter().enumerate() {
                let got = worker_address(address, worker);
                assert_eq!(&got, key);
                // Pingora binds what the key parses to: the same socket address for every worker.
                assert_eq!(got.parse::<SocketAddr>().expect("key parses"), want);
            }
        }
    }
}

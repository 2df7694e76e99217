//! Building and running the Pingora server from a compiled snapshot: the proxy service on every
//! listener, the admin listener, and the background health checks.

use crate::admin::AdminApp;
use crate::config::{self, ConfigError};
use crate::observability::otel::{self, TracingService};
use crate::observability::{self, access_log};
use crate::proxy::http1::{self, Http1App};
use crate::proxy::Gateway;
use crate::runtime::drain::{DrainService, Settling};
use crate::runtime::file::FileConfig;
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
        // Work stealing stays on by default: without it (one runtime per thread) a request costs
        // less CPU, but Pingora's upstream pool loses connections handed between threads (see
        // benches/RESULTS.md).
        work_stealing: s.work_stealing.unwrap_or(true),
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
    let mut proxy = Service::new(
        "mcpgate proxy".to_string(),
        Settling(Arc::new(Http1App::new(
            pingora::proxy::http_proxy(&server.configuration, Gateway::new(store.clone())),
            header_timeout(&cfg),
        ))),
    );
    for l in cfg.listen.entries() {
        match &l.tls {
            // Plain TCP: Pingora reads straight into its HTTP buffers. Its default 64 KiB read
            // buffer per connection would add a copy and, held by every open SSE stream,
            // memory (see benches/RESULTS.md). TLS keeps it: it reads in 16 KiB records.
            None => proxy.add_listener(
                ListenerConfig::tcp(l.address.clone())
                    .l4_buffer(L4BufferSettings::default().read(0)),
            ),
            Some(_) => {
                // The certificate is picked at each handshake from the current snapshot, so a
                // reload rotates it.
                let certs = ListenerCerts {
                    store: store.clone(),
                    address: l.address.clone(),
                };
                match TlsSettings::with_callbacks(Box::new(certs)) {
                    Ok(settings) => proxy.add_tls_with_settings(&l.address, None, settings),
                    Err(e) => {
                        tracing::error!(address = %l.address, error = %e, "cannot set up the TLS listener");
                        std::process::exit(1);
                    }
                }
            }
        }
        tracing::info!(address = %l.address, tls = l.tls.is_some(), "listening");
    }
    server.add_service(proxy);

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

/// Writes out what is still queued: access-log lines and spans.
fn before_exit() {
    access_log::flush(std::time::Duration::from_secs(2));
    otel::flush();
}

//! Hot reload: read the config file again, compile a whole new snapshot, and swap it in one step.
//! A config with problems is refused as a whole (every problem listed, the running snapshot
//! kept). Requests already running finish on their snapshot; stateful parts whose settings did not
//! change (limits, breakers, Redis connections) carry over (see `policy::shared`). Listener, admin and
//! server settings cannot change in place: a reload reports them as needing a restart (or a
//! graceful upgrade) and keeps running with the old ones.
//!
//! Triggers: SIGHUP, `POST /reload` on the admin listener, and a change of the file when
//! `reload.watch` is on (see `watch`). The last attempt, with its problems, is kept for
//! `GET /reload`.

use super::file::FileConfig;
use super::store::ConfigStore;
use crate::config::ConfigError;
use crate::observability::metrics::metrics;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::Arc;

/// What a successful reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The generation now in use.
    pub generation: u64,
    /// Top-level settings that changed but only apply after a restart or upgrade.
    pub restart_required: Vec<&'static str>,
}

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// `POST /reload` on the admin listener.
    Admin,
    /// The config file changed (`reload.watch`).
    Watch,
}

/// The outcome of the last reload attempt, for `GET /reload`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attempt {
    /// When it finished (RFC 3339).
    pub at: String,
    /// What started it.
    pub trigger: Trigger,
    /// `success` or `failure`.
    pub result: &'static str,
    /// The generation in use afterwards.
    pub generation: u64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every problem of a refused config, with its path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<crate::config::Problem>,
    /// Settings that changed but need a restart or upgrade.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restart_required: Vec<&'static str>,
}

/// Reloads the config file into the store, one reload at a time.
pub struct Reloader {
    store: Arc<ConfigStore>,
    path: PathBuf,
    busy: tokio::sync::Mutex<()>,
    last: std::sync::Mutex<Option<Attempt>>,
    /// SHA-256 of the file as last read for a reload (or at start); `None` when it was missing.
    fingerprint: std::sync::Mutex<Option<[u8; 32]>>,
}

/// SHA-256 of a file's content, `None` when it cannot be read.
pub fn fingerprint(path: &std::path::Path) -> Option<[u8; 32]> {
    digest(&std::fs::read(path))
}

fn digest(read: &std::io::Result<Vec<u8>>) -> Option<[u8; 32]> {
    use sha2::Digest;
    read.as_ref()
        .ok()
        .map(|bytes| sha2::Sha256::digest(bytes).into())
}

/// Why a reload failed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config has problems; the old one stays.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// The reload task failed.
    #[error("reload task failed: {0}")]
    Task(String),
}

impl Reloader {
    /// A reloader of `path` into `store`.
    pub fn new(store: Arc<ConfigStore>, path: PathBuf) -> Self {
        Reloader {
            store,
            busy: tokio::sync::Mutex::new(()),
            last: std::sync::Mutex::new(None),
            fingerprint: std::sync::Mutex::new(fingerprint(&path)),
            path,
        }
    }

    /// The file's fingerprint as last read by a reload (or at start).
    pub fn last_fingerprint(&self) -> Option<[u8; 32]> {
        self.fingerprint.lock().ok().and_then(|f| *f)
    }

    fn note_fingerprint(&self, seen: Option<[u8; 32]>) {
        if let Ok(mut f) = self.fingerprint.lock() {
            *f = seen;
        }
    }

    /// Records that the watcher found the file gone: a failed attempt that keeps the running
    /// config (reported once, until the file is back).
    pub fn note_missing(&self) {
        self.note_fingerprint(None);
        metrics().reload("failure");
        let error = format!(
            "{}: the config file is missing; the running config is kept",
            self.path.display()
        );
        tracing::warn!("{error}");
        self.record(Attempt {
            at: now(),
            trigger: Trigger::Watch,
            result: "failure",
            generation: self.store.current().generation,
            error: Some(error),
            problems: Vec::new(),
            restart_required: Vec::new(),
        });
    }

    fn record(&self, attempt: Attempt) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(attempt);
        }
    }

    /// The config file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The store reloads go to.
    pub fn store(&self) -> &ConfigStore {
        &self.store
    }

    /// The last attempt, if any.
    pub fn last_attempt(&self) -> Option<Attempt> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Reads, compiles and swaps in the config file, and records the attempt.
    pub async fn reload(&self, trigger: Trigger) -> Result<Report, ReloadError> {
        let _one_at_a_time = self.busy.lock().await;
        let result = self.reload_locked(trigger).await;
        if let Err(e) = &result {
            self.record(Attempt {
                at: now(),
                trigger,
                result: "failure",
                generation: self.store.current().generation,
                error: Some(match e {
                    ReloadError::Invalid(c) => {
                        format!("{}: invalid config; the running one is kept", c.source_name)
                    }
                    other => other.to_string(),
                }),
                problems: match e {
                    ReloadError::Invalid(c) => c.problems.clone(),
                    ReloadError::Task(_) => Vec::new(),
                },
                restart_required: Vec::new(),
            });
        }
        result
    }

    async fn reload_locked(&self, trigger: Trigger) -> Result<Report, ReloadError> {
        let old = self.store.current();
        let generation = old.generation + 1;
        let path = self.path.clone();
        // Reading and compiling (which resolves host names) block: off the async threads.
        // The file is read once: the fingerprint is of the very bytes compiled.
        let compiled = tokio::task::spawn_blocking(move || {
            let read = std::fs::read(&path);
            let seen = digest(&read);
            let result = super::load::load_read(&path, read)
                .and_then(|cfg| super::load::compile(cfg, &path.display().to_string(), generation));
            (seen, result)
        })
        .await
        .map(|(seen, result)| {
            self.note_fingerprint(seen);
            result
        })
        .map_err(|e| ReloadError::Task(e.to_string()));
        let snapshot = match compiled {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                metrics().reload("failure");
                tracing::error!(problems = e.problems.len(), "reload refused:\n{e}");
                return Err(e.into());
            }
            Err(e) => {
                metrics().reload("failure");
                return Err(e);
            }
        };
        let restart_required = restart_required(&old.source, &snapshot.source);
        let hosts = |s: &crate::runtime::snapshot::Snapshot| -> std::collections::HashSet<(String, String)> {
            s.endpoints
                .iter()
                .flat_map(|ep| ep.backend.hosts.iter().map(|h| (ep.name.clone(), h.url.clone())))
                .collect()
        };
        let gone: Vec<(String, String)> =
            hosts(&old).difference(&hosts(&snapshot)).cloned().collect();
        // Recorded before the swap, so `GET /reload` never shows the new generation with an
        // older attempt.
        self.record(Attempt {
            at: now(),
            trigger,
            result: "success",
            generation,
            error: None,
            problems: Vec::new(),
            restart_required: restart_required.clone(),
        });
        super::federation_watch::publish(&snapshot);
        self.store.swap(snapshot);
        for (endpoint, host) in gone {
            metrics().forget_host(&endpoint, &host);
        }
        metrics().reload("success");
        tracing::info!(generation, ?restart_required, "config reloaded");
        Ok(Report {
            generation,
            restart_required,
        })
    }
}

fn now() -> String {
    crate::observability::access_log::rfc3339(std::time::SystemTime::now())
}

/// The settings that differ between `old` and `new` and need a restart to apply. A listener's
/// certificate and key apply in place (each TLS handshake reads the current snapshot's); its
/// address, and whether it serves TLS, do not.
pub fn restart_required(old: &FileConfig, new: &FileConfig) -> Vec<&'static str> {
    fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or_default()
    }
    fn sockets(l: &super::file::Listen) -> Vec<(String, bool)> {
        l.entries()
            .into_iter()
            .map(|e| (e.address, e.tls.is_some()))
            .collect()
    }
    let mut out = Vec::new();
    if sockets(&old.listen) != sockets(&new.listen) {
        out.push("listen");
    }
    if old.admin != new.admin {
        out.push("admin");
    }
    if json(&old.server) != json(&new.server) {
        out.push("server");
    }
    if json(&old.access_log) != json(&new.access_log) {
        out.push("access_log");
    }
    if old.tracing != new.tracing {
        out.push("tracing");
    }
    out
}

/// Reloads on SIGHUP.
pub struct SignalReload(pub Arc<Reloader>);

#[async_trait]
impl BackgroundService for SignalReload {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload through the admin listener");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading the config");
                    // Failures are logged, counted and recorded by `reload`.
                    let _ = self.0.reload(Trigger::Signal).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

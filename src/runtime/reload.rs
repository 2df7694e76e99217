//! Hot reload: read the config file again, compile a whole new snapshot, and swap it in one step.
//! A config with problems is refused as a whole (every problem listed, the running snapshot
//! kept). Requests already running finish on their snapshot; stateful parts whose settings did not
//! change (limits, breakers, Redis connections) carry over (see `shared`). Listener, admin and
//! server settings cannot change in place: a reload reports them as needing a restart (or a
//! graceful upgrade) and keeps running with the old ones.
//!
//! Triggers: SIGHUP, and `POST /reload` on the admin listener.

use super::store::ConfigStore;
use crate::config::{ConfigError, FileConfig};
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

/// Reloads the config file into the store, one reload at a time.
pub struct Reloader {
    store: Arc<ConfigStore>,
    path: PathBuf,
    busy: tokio::sync::Mutex<()>,
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
            path,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads, compiles and swaps in the config file.
    pub async fn reload(&self) -> Result<Report, ReloadError> {
        let _one_at_a_time = self.busy.lock().await;
        let old = self.store.current();
        let generation = old.generation + 1;
        let path = self.path.clone();
        // Compiling resolves host names (blocking): off the async threads.
        let compiled =
            tokio::task::spawn_blocking(move || crate::server::load_as(&path, generation))
                .await
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
        self.store.swap(snapshot);
        metrics().reload("success");
        tracing::info!(generation, ?restart_required, "config reloaded");
        Ok(Report {
            generation,
            restart_required,
        })
    }
}

/// The settings that differ between `old` and `new` and need a restart to apply.
pub fn restart_required(old: &FileConfig, new: &FileConfig) -> Vec<&'static str> {
    fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or_default()
    }
    let mut out = Vec::new();
    if json(&old.listen) != json(&new.listen) {
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
                    // Failures are logged and counted by `reload`.
                    let _ = self.0.reload().await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

//! Reloading when the config file changes (`reload.watch`). The file is polled, which also
//! sees the symlink swaps of Kubernetes ConfigMaps that file-change notifications can miss. A
//! change is applied only once the file has stayed the same for the debounce time, so a file
//! that an editor is still writing is not read half-way; a file that still does not validate is
//! refused like any reload (the running config stays, the problems are reported), and a file
//! that disappears keeps the running config until it is back.

use super::file::ReloadSettings;
use super::reload::{fingerprint, Reloader, Trigger};
use crate::config::parse_duration;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

impl ReloadSettings {
    fn interval(&self) -> Duration {
        self.interval
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or(Duration::from_secs(1))
    }

    fn debounce(&self) -> Duration {
        self.debounce
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or(Duration::from_millis(500))
    }
}

/// Polls the config file and reloads on a settled change.
pub struct FileWatch(pub Arc<Reloader>);

impl FileWatch {
    /// One look at the file: reloads when it differs from what the last reload read (or what
    /// was there at start) and then holds still.
    async fn check(&self, settings: &ReloadSettings) {
        let path = self.0.path().to_path_buf();
        let look = || {
            let path = path.clone();
            async move {
                tokio::task::spawn_blocking(move || fingerprint(&path))
                    .await
                    .ok()
                    .flatten()
            }
        };
        let known = self.0.last_fingerprint();
        let now = look().await;
        if now == known {
            return;
        }
        if now.is_none() {
            self.0.note_missing();
            return;
        }
        // Changed: wait until it holds still, so a file being written is not read half-way.
        let mut settled = now;
        loop {
            tokio::time::sleep(settings.debounce()).await;
            let again = look().await;
            if again == settled {
                break;
            }
            settled = again;
        }
        if settled.is_none() || settled == self.0.last_fingerprint() {
            return;
        }
        tracing::info!(path = %path.display(), "config file changed: reloading");
        // The reload records what it read: a refused file is tried again only once it changes.
        // Failures are logged, counted and recorded by `reload`.
        let _ = self.0.reload(Trigger::Watch).await;
    }
}

#[async_trait]
impl BackgroundService for FileWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let settings = self.0.store().current().source.reload.clone();
            if settings.watch {
                self.check(&settings).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(settings.interval()) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

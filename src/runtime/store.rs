//! The current snapshot, swapped atomically on reload.

use super::snapshot::Snapshot;
use crate::observability::metrics::metrics;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Holds the snapshot that new requests use.
pub struct ConfigStore {
    current: ArcSwap<Snapshot>,
}

impl ConfigStore {
    /// A store starting with `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        metrics().config_generation.set(snapshot.generation as i64);
        ConfigStore {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The snapshot for a new request.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Makes `snapshot` current in one step; requests already running keep theirs.
    pub fn swap(&self, snapshot: Snapshot) {
        metrics().config_generation.set(snapshot.generation as i64);
        self.current.store(Arc::new(snapshot));
    }
}

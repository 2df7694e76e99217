//! Tells the open GET streams of federated endpoints that a reload changed an endpoint's
//! servers (they then send `notifications/tools/list_changed`): after each reload, the
//! fingerprint of every federated endpoint's servers, by path, on a watch channel.

use super::federation::Federation;
use super::snapshot::Snapshot;
use std::sync::{Arc, LazyLock};
use tokio::sync::watch;

/// (endpoint path, fingerprint of its servers) of the current snapshot.
type Fingerprints = Arc<Vec<(String, String)>>;

static WATCH: LazyLock<watch::Sender<Fingerprints>> =
    LazyLock::new(|| watch::Sender::new(Arc::new(Vec::new())));

/// What a client sees change when it changes: the servers' aliases and hosts, and prefixing.
pub fn fingerprint(fed: &Federation) -> String {
    let mut out = format!("prefix={};", fed.prefix);
    for s in &fed.servers {
        out.push_str(&s.alias);
        for h in &s.backend.hosts {
            out.push(' ');
            out.push_str(&h.url);
        }
        out.push(';');
    }
    out
}

/// Publishes the federated endpoints of a snapshot that is about to be swapped in.
pub fn publish(snapshot: &Snapshot) {
    let now: Vec<(String, String)> = snapshot
        .endpoints
        .iter()
        .filter_map(|ep| Some((ep.path.clone(), fingerprint(ep.federation.as_ref()?))))
        .collect();
    WATCH.send_replace(Arc::new(now));
}

/// A receiver that sees each publication.
pub fn subscribe() -> watch::Receiver<Fingerprints> {
    WATCH.subscribe()
}

/// The last published fingerprint of the endpoint at `path` (`None`: not federated any more).
pub fn current(path: &str) -> Option<String> {
    WATCH
        .borrow()
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, f)| f.clone())
}

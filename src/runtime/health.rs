//! The background service that runs the health checks of the current snapshot's endpoints, each
//! at its own interval (the checks are `host.rs`'s, held by each endpoint's balancer).

use super::store::ConfigStore;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs the health checks of the current snapshot's endpoints, each at its own interval.
pub struct HealthService {
    store: Arc<ConfigStore>,
}

impl HealthService {
    /// A service reading endpoints from `store`.
    pub fn new(store: Arc<ConfigStore>) -> Self {
        HealthService { store }
    }
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Due times by (generation, endpoint index); a new snapshot starts checking at once.
        let mut due: HashMap<(u64, usize, usize), Instant> = HashMap::new();
        loop {
            let snapshot = self.store.current();
            let now = Instant::now();
            let mut checks = Vec::new();
            for (i, ep) in snapshot.endpoints.iter().enumerate() {
                // Its own backend, and each federated server's.
                for (j, backend) in ep.backends().enumerate() {
                    if !backend.health_checks {
                        continue;
                    }
                    let key = (snapshot.generation, i, j);
                    if due.get(&key).is_none_or(|t| *t <= now) {
                        due.insert(key, now + backend.health_interval);
                        checks.push(backend.balancer.backends().run_health_check(true));
                    }
                }
            }
            due.retain(|(g, _, _), _| *g == snapshot.generation);
            futures::future::join_all(checks).await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

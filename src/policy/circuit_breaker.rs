//! The circuit breaker of an upstream host. Closed, it counts outcomes: after
//! `consecutive_failures` failures in a row, or a failure ratio of at least `failure_ratio` over
//! at least `min_requests` requests in one `window`, it opens. Open, the host is out of selection
//! for `open_for`; then it is half-open and lets `half_open_requests` probes through. All probes
//! succeeding close it; a failed probe opens it again. Failures are connect errors, timeouts and
//! other upstream errors, and responses with a status in `failure_statuses`.

use crate::config::Problem;
use crate::observability::metrics::HostMetrics;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `backend.circuit_breaker:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Failures in a row that open the breaker (default 5; 0 turns this rule off).
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    /// Failure ratio (0 to 1) over a window that opens the breaker (default: rule off).
    #[serde(default)]
    pub failure_ratio: Option<f64>,
    /// Requests a window needs before the ratio counts (default 20).
    #[serde(default)]
    pub min_requests: Option<u32>,
    /// Length of the ratio window (default 30s).
    #[serde(default)]
    pub window: Option<String>,
    /// How long an open breaker keeps the host out (default 30s).
    #[serde(default)]
    pub open_for: Option<String>,
    /// Probes let through when half-open; all must succeed to close (default 1).
    #[serde(default)]
    pub half_open_requests: Option<u32>,
    /// Upstream response statuses that count as failures (default 502, 503, 504).
    #[serde(default)]
    pub failure_statuses: Option<Vec<u16>>,
}

/// Compiled settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    consecutive: u32,
    ratio: Option<f64>,
    min_requests: u32,
    window: Duration,
    open_for: Duration,
    probes: u32,
    statuses: Vec<u16>,
}

impl Settings {
    /// Validates `circuit_breaker:`.
    pub fn compile(cfg: &CircuitBreakerConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let mut p = Vec::new();
        let mut dur = |v: &Option<String>, field: &str, default: u64| match v.as_deref() {
            None => Duration::from_secs(default),
            Some(s) => match crate::config::parse_duration(s) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    p.push(Problem::new(format!("{at}.{field}"), "must be > 0"));
                    Duration::from_secs(default)
                }
                Err(m) => {
                    p.push(Problem::new(format!("{at}.{field}"), m));
                    Duration::from_secs(default)
                }
            },
        };
        let window = dur(&cfg.window, "window", 30);
        let open_for = dur(&cfg.open_for, "open_for", 30);
        if let Some(r) = cfg.failure_ratio {
            if !(r > 0.0 && r <= 1.0) {
                p.push(Problem::new(
                    format!("{at}.failure_ratio"),
                    "must be above 0 and at most 1",
                ));
            }
        }
        if cfg.half_open_requests == Some(0) {
            p.push(Problem::new(
                format!("{at}.half_open_requests"),
                "must be at least 1",
            ));
        }
        let statuses = cfg
            .failure_statuses
            .clone()
            .unwrap_or_else(|| vec![502, 503, 504]);
        for (i, s) in statuses.iter().enumerate() {
            if !(100..=599).contains(s) {
                p.push(Problem::new(
                    format!("{at}.failure_statuses[{i}]"),
                    format!("{s} is not an HTTP status"),
                ));
            }
        }
        let consecutive = cfg.consecutive_failures.unwrap_or(5);
        if consecutive == 0 && cfg.failure_ratio.is_none() {
            p.push(Problem::new(
                at.to_string(),
                "with consecutive_failures: 0, set failure_ratio (or remove the breaker)",
            ));
        }
        if !p.is_empty() {
            return Err(p);
        }
        Ok(Settings {
            consecutive,
            ratio: cfg.failure_ratio,
            min_requests: cfg.min_requests.unwrap_or(20).max(1),
            window,
            open_for,
            probes: cfg.half_open_requests.unwrap_or(1),
            statuses,
        })
    }

    /// Whether an upstream response status counts as a failure.
    pub fn is_failure_status(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, passed: u32 },
}

#[derive(Debug)]
struct State {
    mode: Mode,
    consecutive: u32,
    window_start: Instant,
    total: u32,
    failures: u32,
}

/// The breaker of one host.
#[derive(Debug)]
pub struct Breaker {
    /// Its settings.
    pub settings: Settings,
    state: Mutex<State>,
}

/// Whether a request may go to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes, normally.
    Yes,
    /// Yes, as a half-open probe (its outcome decides the state).
    Probe,
    /// No; the breaker may let a probe through after this long.
    No(Duration),
}

const CLOSED: usize = 0;
const OPEN: usize = 1;
const HALF_OPEN: usize = 2;

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: Settings) -> Self {
        Breaker {
            settings,
            state: Mutex::new(State {
                mode: Mode::Closed,
                consecutive: 0,
                window_start: Instant::now(),
                total: 0,
                failures: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether `admit` would let a request through now (no side effects; for selection).
    pub fn available(&self, now: Instant) -> Result<(), Duration> {
        match self.lock().mode {
            Mode::Closed => Ok(()),
            Mode::Open { until } if now >= until => Ok(()),
            Mode::Open { until } => Err(until - now),
            Mode::HalfOpen { in_flight, .. } if in_flight < self.settings.probes => Ok(()),
            Mode::HalfOpen { .. } => Err(Duration::from_secs(1)),
        }
    }

    /// Admits a request to the host (taking a probe slot when half-open).
    pub fn admit(&self, now: Instant, metrics: &HostMetrics, host: &str) -> Admission {
        let mut s = self.lock();
        match s.mode {
            Mode::Closed => Admission::Yes,
            Mode::Open { until } if now < until => Admission::No(until - now),
            Mode::Open { .. } => {
                s.mode = Mode::HalfOpen {
                    in_flight: 1,
                    passed: 0,
                };
                drop(s);
                enter(metrics, host, HALF_OPEN);
                Admission::Probe
            }
            Mode::HalfOpen { in_flight, passed } if in_flight < self.settings.probes => {
                s.mode = Mode::HalfOpen {
                    in_flight: in_flight + 1,
                    passed,
                };
                Admission::Probe
            }
            Mode::HalfOpen { .. } => Admission::No(Duration::from_secs(1)),
        }
    }

    /// Gives back a probe slot whose request ended without an outcome (the client left first).
    pub fn abandon(&self, admission: Admission) {
        if admission != Admission::Probe {
            return;
        }
        let mut s = self.lock();
        if let Mode::HalfOpen { in_flight, passed } = s.mode {
            s.mode = Mode::HalfOpen {
                in_flight: in_flight.saturating_sub(1),
                passed,
            };
        }
    }

    /// Records the outcome of a request admitted with `admission`.
    pub fn record(&self, success: bool, admission: Admission, metrics: &HostMetrics, host: &str) {
        let now = Instant::now();
        let mut s = self.lock();
        let entered = match (s.mode, admission) {
            (Mode::HalfOpen { in_flight, passed }, Admission::Probe) => {
                if !success {
                    s.mode = Mode::Open {
                        until: now + self.settings.open_for,
                    };
                    Some(OPEN)
                } else if passed + 1 >= self.settings.probes {
                    s.mode = Mode::Closed;
                    s.consecutive = 0;
                    s.total = 0;
                    s.failures = 0;
                    s.window_start = now;
                    Some(CLOSED)
                } else {
                    s.mode = Mode::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        passed: passed + 1,
                    };
                    None
                }
            }
            (Mode::Closed, _) => {
                if now.duration_since(s.window_start) >= self.settings.window {
                    s.window_start = now;
                    s.total = 0;
                    s.failures = 0;
                }
                s.total += 1;
                if success {
                    s.consecutive = 0;
                } else {
                    s.consecutive += 1;
                    s.failures += 1;
                }
                let by_count =
                    self.settings.consecutive > 0 && s.consecutive >= self.settings.consecutive;
                let by_ratio = self.settings.ratio.is_some_and(|r| {
                    s.total >= self.settings.min_requests
                        && f64::from(s.failures) / f64::from(s.total) >= r
                });
                if by_count || by_ratio {
                    s.mode = Mode::Open {
                        until: now + self.settings.open_for,
                    };
                    Some(OPEN)
                } else {
                    None
                }
            }
            // Outcomes of requests admitted before the breaker opened change nothing.
            _ => None,
        };
        drop(s);
        if let Some(state) = entered {
            enter(metrics, host, state);
        }
    }
}

fn enter(metrics: &HostMetrics, host: &str, state: usize) {
    metrics.breaker_entered(state);
    let name = ["closed", "open", "half_open"][state];
    if state == OPEN {
        tracing::warn!(host, state = name, "circuit breaker opened");
    } else {
        tracing::info!(host, state = name, "circuit breaker state changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cfg: CircuitBreakerConfig) -> (Breaker, HostMetrics) {
        let s = Settings::compile(&cfg, "b").unwrap_or_else(|p| panic!("{p:?}"));
        (Breaker::new(s), HostMetrics::new("cb-test", "http://cb"))
    }

    #[test]
    fn opens_after_consecutive_failures_and_closes_after_a_good_probe() {
        let (b, m) = breaker(CircuitBreakerConfig {
            consecutive_failures: Some(3),
            open_for: Some("100ms".into()),
            ..Default::default()
        });
        let now = Instant::now();
        for _ in 0..2 {
            assert_eq!(b.admit(now, &m, "h"), Admission::Yes);
            b.record(false, Admission::Yes, &m, "h");
        }
        b.record(true, Admission::Yes, &m, "h");
        for _ in 0..3 {
            b.record(false, Admission::Yes, &m, "h");
        }
        assert!(matches!(b.admit(Instant::now(), &m, "h"), Admission::No(_)));
        assert_eq!(m.breaker_state.get(), 1);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(b.admit(Instant::now(), &m, "h"), Admission::Probe);
        assert!(
            matches!(b.admit(Instant::now(), &m, "h"), Admission::No(_)),
            "one probe at a time"
        );
        b.record(true, Admission::Probe, &m, "h");
        assert_eq!(b.admit(Instant::now(), &m, "h"), Admission::Yes);
        assert_eq!(m.breaker_state.get(), 0);
    }

    #[test]
    fn failed_probe_reopens_and_ratio_rule_opens() {
        let (b, m) = breaker(CircuitBreakerConfig {
            consecutive_failures: Some(0),
            failure_ratio: Some(0.5),
            min_requests: Some(4),
            open_for: Some("50ms".into()),
            ..Default::default()
        });
        for ok in [true, false, true] {
            b.record(ok, Admission::Yes, &m, "h");
        }
        assert_eq!(b.available(Instant::now()), Ok(()));
        b.record(false, Admission::Yes, &m, "h");
        assert!(b.available(Instant::now()).is_err(), "2 of 4 failed");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(Instant::now(), &m, "h"), Admission::Probe);
        b.record(false, Admission::Probe, &m, "h");
        assert!(b.available(Instant::now()).is_err());
    }

    #[test]
    fn bad_settings_are_reported_with_paths() {
        let err = Settings::compile(
            &CircuitBreakerConfig {
                failure_ratio: Some(1.5),
                half_open_requests: Some(0),
                failure_statuses: Some(vec![700]),
                window: Some("soon".into()),
                ..Default::default()
            },
            "endpoints[0].backend.circuit_breaker",
        )
        .err()
        .unwrap_or_default();
        let paths: Vec<&str> = err.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths.len(), 4, "{err:?}");
        assert!(paths.contains(&"endpoints[0].backend.circuit_breaker.failure_statuses[0]"));
    }
}

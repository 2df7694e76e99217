//! The in-process store of rate limits: a sliding-window counter per key on `pingora-limits`'
//! count-min `Estimator`.
//!
//! Time is cut into fixed windows of one period. The estimate for a key is
//! `previous × (1 − elapsed fraction of the current window) + current`; a request is allowed when
//! the estimate after counting it is at most the limit, and refused requests are not counted.
//! Memory is fixed per limit (two estimators of `4 × slots` counters, whatever the number of keys);
//! idle keys fade out within two periods. Keys that share all their counters with busier keys
//! can be over-counted, never under-counted: size `tracked_keys` to the number of clients active
//! in one period.

use pingora_limits::estimator::Estimator;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const HASHES: usize = 4;

/// What a limit decided, with what the response headers report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The request may go on.
    pub allowed: bool,
    /// Requests left in the current window after this one (0 when refused).
    pub remaining: u64,
    /// Seconds until one more request would be allowed (0 when some remain).
    pub retry_after: u64,
    /// Seconds until the current window ends.
    pub reset: u64,
}

/// The sliding-window counters of one limit.
pub struct SlidingWindow {
    period_ms: u64,
    start: Instant,
    slots: [Estimator; 2],
    /// Index of the current window (`elapsed / period`).
    epoch: AtomicU64,
    rotate: Mutex<()>,
}

impl SlidingWindow {
    /// A window of `period`, sized for about `tracked_keys` active keys.
    pub fn new(period: Duration, tracked_keys: usize) -> Self {
        let slots = tracked_keys.clamp(64, 1 << 22).next_power_of_two();
        SlidingWindow {
            period_ms: (period.as_millis() as u64).max(1),
            start: Instant::now(),
            slots: [Estimator::new(HASHES, slots), Estimator::new(HASHES, slots)],
            epoch: AtomicU64::new(0),
            rotate: Mutex::new(()),
        }
    }

    /// Moves to the window of `now_ms`, clearing what fell out; returns its index.
    fn advance(&self, now_ms: u64) -> u64 {
        let index = now_ms / self.period_ms;
        let current = self.epoch.load(Ordering::Acquire);
        if index <= current {
            return current;
        }
        let _guard = match self.rotate.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let current = self.epoch.load(Ordering::Acquire);
        if index > current {
            // The slot of the new window held window `index - 2`: stale. After a gap of two
            // windows or more, the other slot (the new "previous") is stale too.
            self.slots[(index % 2) as usize].reset();
            if index - current >= 2 {
                self.slots[((index + 1) % 2) as usize].reset();
            }
            self.epoch.store(index, Ordering::Release);
        }
        index
    }

    /// Counts one request for `key` if the limit of `limit` per period allows it.
    pub fn acquire<K: Hash>(&self, key: &K, limit: u64) -> Decision {
        let now_ms = self.start.elapsed().as_millis() as u64;
        let index = self.advance(now_ms);
        let fraction = (now_ms % self.period_ms) as f64 / self.period_ms as f64;
        let current = &self.slots[(index % 2) as usize];
        let previous = self.slots[((index + 1) % 2) as usize].get(key).max(0) as f64;
        let counted = current.incr(key, 1).max(0) as f64;
        let estimate = previous * (1.0 - fraction) + counted;
        let reset = ceil_secs((1.0 - fraction) * self.period_ms as f64);
        if estimate <= limit as f64 {
            return Decision {
                allowed: true,
                remaining: (limit as f64 - estimate).floor() as u64,
                retry_after: 0,
                reset,
            };
        }
        current.decr(key, 1);
        Decision {
            allowed: false,
            remaining: 0,
            retry_after: retry_after(previous, counted - 1.0, limit, fraction, self.period_ms),
            reset,
        }
    }

    /// Gives back one request counted by `acquire` (another limit refused the request).
    pub fn release<K: Hash>(&self, key: &K) {
        let index = self.epoch.load(Ordering::Acquire);
        self.slots[(index % 2) as usize].decr(key, 1);
    }
}

/// Seconds (at least 1) until `previous × (1 − f) + current + 1 ≤ limit` holds, where the window
/// advances and `current` becomes the next window's `previous`.
pub fn retry_after(previous: f64, current: f64, limit: u64, fraction: f64, period_ms: u64) -> u64 {
    let limit = limit as f64;
    let period = period_ms as f64;
    // Within this window, the previous window's weight decays.
    if current + 1.0 <= limit && previous > 0.0 {
        let needed = 1.0 - (limit - 1.0 - current) / previous;
        if needed < 1.0 {
            return ceil_secs((needed - fraction).max(0.0) * period);
        }
    }
    // Next window: this window's count becomes the decaying part.
    let rest = (1.0 - fraction) * period;
    let needed = if current > 0.0 {
        (1.0 - (limit - 1.0) / current).max(0.0)
    } else {
        0.0
    };
    ceil_secs(rest + needed * period)
}

fn ceil_secs(ms: f64) -> u64 {
    // A hair below an exact second (float error) still rounds to that second.
    ((ms / 1000.0 - 1e-6).ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_limit_then_refuses_without_counting() {
        let w = SlidingWindow::new(Duration::from_secs(60), 1024);
        for i in 0..5 {
            let d = w.acquire(&"a", 5);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 4 - i);
        }
        for _ in 0..3 {
            let d = w.acquire(&"a", 5);
            assert!(!d.allowed);
            assert_eq!(d.remaining, 0);
            assert!(d.retry_after >= 1 && d.retry_after <= 120, "{d:?}");
        }
        assert!(w.acquire(&"b", 5).allowed, "keys are independent");
        w.release(&"a");
        assert!(
            w.acquire(&"a", 5).allowed,
            "a released request frees a slot"
        );
    }

    #[test]
    fn previous_window_decays() {
        // A 1 s window, so that the five decisions below land in one window even when a busy
        // machine stalls the test for a while.
        let w = SlidingWindow::new(Duration::from_secs(1), 64);
        for _ in 0..4 {
            assert!(w.acquire(&1u8, 4).allowed);
        }
        assert!(!w.acquire(&1u8, 4).allowed);
        std::thread::sleep(Duration::from_millis(2100));
        // Two windows later, nothing is left.
        for _ in 0..4 {
            assert!(w.acquire(&1u8, 4).allowed);
        }
    }

    #[test]
    fn retry_after_solves_the_estimate() {
        // 10 per 10 s, 10 counted in the previous window, 0 now, at 0.2: 8 weighted; 1 more
        // fits right away; with 2 now, wait until 1 − (10 − 1 − 2)/10 = 0.3.
        assert_eq!(retry_after(10.0, 2.0, 10, 0.2, 10_000), 1);
        assert_eq!(retry_after(10.0, 9.0, 10, 0.5, 10_000), 5);
        assert_eq!(retry_after(0.0, 10.0, 10, 0.5, 10_000), 5 + 1);
    }
}

//! What every micro-benchmark binary shares: criterion, set up for short runs on a small machine,
//! and a measurement that also returns the median time per call so a binary can print ratios
//! measured side by side in the same run.

use criterion::Criterion;
use std::time::{Duration, Instant};

/// Criterion with short warm-up and measurement times (override on the command line, e.g.
/// `cargo bench --bench mcp -- --measurement-time 10`).
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}

/// Benchmarks `f` under `name` with criterion (which reports mean, spread and change since the
/// last run) and returns the median nanoseconds per call over criterion's samples.
pub fn bench(c: &mut Criterion, name: &str, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = Vec::new();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            let elapsed = start.elapsed();
            samples.push(elapsed.as_nanos() as f64 / iters.max(1) as f64);
            elapsed
        })
    });
    samples.sort_by(f64::total_cmp);
    let median = samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN);
    println!("{name:<52} {median:>10.1} ns/op (median)");
    median
}

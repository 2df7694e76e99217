//! What every micro-benchmark binary shares: a timing loop with a warm-up.

use std::time::Instant;

/// Runs `f` `iterations` times after a warm-up of a tenth of that; prints and returns ns per call.
pub fn bench(name: &str, iterations: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{name:<52} {ns:>10.1} ns/op");
    ns
}

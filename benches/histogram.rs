//! The cost of one histogram observation: `histogram/ours_*` is the lock-free `AtomicHistogram`,
//! `histogram/prometheus_client_*` prometheus-client's `Histogram` (a lock per observe). `_alone`:
//! one thread; `_2_threads`: two threads observing the same histogram at once (the time is per
//! observation of each thread). The service observes per upstream call and per rate-limiter
//! wait: a few thousand a second at most.
//!
//! Run: `cargo bench --bench histogram`.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use prometheus_client::metrics::histogram::Histogram;

use cloner_worker::telemetry::metrics::AtomicHistogram;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// Times `iters` calls of `observe` on each of two threads started together.
fn two_threads(iters: u64, observe: &(dyn Fn(Duration) + Sync)) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let run = || {
            barrier.wait();
            for i in 0..iters {
                observe(black_box(Duration::from_micros(i % 20_000)));
            }
        };
        s.spawn(run);
        let start = Instant::now();
        run();
        start
    })
    .elapsed()
}

fn histogram(c: &mut Criterion) {
    let ours = AtomicHistogram::new(&BUCKETS);
    let theirs = Histogram::new(BUCKETS);
    let ours_observe = |d: Duration| ours.observe(d);
    let theirs_observe = |d: Duration| theirs.observe(d.as_secs_f64());
    let mut group = c.benchmark_group("histogram");
    let mut i = 0u64;
    group.bench_function("ours_alone", |b| {
        b.iter(|| {
            i += 1;
            ours_observe(black_box(Duration::from_micros(i % 20_000)))
        })
    });
    group.bench_function("prometheus_client_alone", |b| {
        b.iter(|| {
            i += 1;
            theirs_observe(black_box(Duration::from_micros(i % 20_000)))
        })
    });
    group.bench_function("ours_2_threads", |b| {
        b.iter_custom(|iters| two_threads(iters, &ours_observe))
    });
    group.bench_function("prometheus_client_2_threads", |b| {
        b.iter_custom(|iters| two_threads(iters, &theirs_observe))
    });
    group.finish();
}

criterion_group!(benches, histogram);
criterion_main!(benches);

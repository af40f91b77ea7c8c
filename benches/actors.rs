//! Overhead of the reusable actors, measured inside a real actix `System`:
//! - `rate_limiter/grant`: one `register()` round trip when a slot is free (the cost the limiter
//!   adds to every upstream call); `rate_limiter/grant_x1000_concurrent`: 1000 callers at once.
//! - `queue/add_then_get`: `add_to_queue` + `get_first_element`; `queue/next_element`: a parked
//!   taker woken by an add.
//!
//! Run: `cargo bench --bench actors`. Target (issue #2): ≤ 2 µs per grant on 2 cores.

use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use cloner_worker::pool::queue::{next_element, AddToQueue, GetFirstElement, Queue};
use cloner_worker::task::rate_limiter::{register, Rate, RateLimiter};

/// Times `iters` runs of `body` inside the system.
fn timed<F, Fut>(sys: &actix_rt::SystemRunner, iters: u64, body: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    sys.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            body().await;
        }
        start.elapsed()
    })
}

fn rate_limiter(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    // A rate no benchmark can reach: every grant goes through the slot arithmetic, none waits.
    let limiter = sys.block_on(async {
        RateLimiter::new(Rate::PerSecond(1e12), std::time::Duration::from_millis(4))
            .unwrap()
            .start()
    });
    let mut group = c.benchmark_group("rate_limiter");
    group.throughput(Throughput::Elements(1));
    group.bench_function("grant", |b| {
        b.iter_custom(|iters| {
            timed(&sys, iters, || async {
                register(&limiter).await.unwrap();
            })
        })
    });
    group.throughput(Throughput::Elements(1000));
    group.bench_function("grant_x1000_concurrent", |b| {
        b.iter_custom(|iters| {
            timed(&sys, iters, || async {
                futures_util::future::join_all((0..1000).map(|_| register(&limiter))).await;
            })
        })
    });
    group.finish();
}

fn queue(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let queue = sys.block_on(async { Queue::<u64>::new(1_000_000).start() });
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(1));
    group.bench_function("add_then_get", |b| {
        b.iter_custom(|iters| {
            timed(&sys, iters, || async {
                queue.send(AddToQueue(1)).await.unwrap().unwrap();
                queue.send(GetFirstElement::new()).await.unwrap().unwrap();
            })
        })
    });
    group.bench_function("next_element", |b| {
        b.iter_custom(|iters| {
            timed(&sys, iters, || async {
                let (got, ()) = futures_util::future::join(next_element(&queue), async {
                    queue.do_send(AddToQueue(2));
                })
                .await;
                got.unwrap();
            })
        })
    });
    group.finish();
}

criterion_group!(benches, rate_limiter, queue);
criterion_main!(benches);

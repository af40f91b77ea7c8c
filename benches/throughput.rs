//! Chunks per second through `WorkerManager.add_task`, against an exchange simulator running in
//! its own process, with the rate limit off: what our code costs per chunk.
//!
//! Two loads: small windows (a minute of a calm pair: a few trades each) and full pages (windows
//! cut to hold 900–999 trades, just under the page limit, so each answer is COMPLETE with its
//! whole page). Prints one line per load; targets (issue #2, 2 cores): ≥ 2000 chunks/s small,
//! ≥ 300 chunks/s full.
//!
//! A third line runs 1000 small chunks with the limiter at 100 calls/s and prints the rate
//! achieved: the limiter, not our code, should be the bottleneck.
//!
//! Run: `scripts/bench-throughput` (or `cargo bench --bench throughput`).

use std::time::Instant;

use actix::prelude::*;
use futures_util::stream::{self, StreamExt};

mod common;

use common::{small_windows, SimulatorProcess, DAY};

use cloner_worker::config::Settings;
use cloner_worker::dev::simulator::{market, SimulatorConfig, Stats};
use cloner_worker::pool::app::{App, Hooks};
use cloner_worker::pool::manager::AddTask;
use cloner_worker::proto::{cloned_chunk, TodoChunk};
use cloner_worker::task::rate_limiter::{Rate, SetRate};

/// Windows of `pair` holding 900–999 trades each: a full page that still answers COMPLETE.
fn full_page_windows(sim: &SimulatorConfig, pair: &str, n: usize) -> Vec<TodoChunk> {
    let mut chunks = Vec::with_capacity(n);
    let mut from = DAY;
    while chunks.len() < n {
        // The longest window from `from` with fewer trades than a page.
        let (mut lo, mut hi) = (from, from + 30 * 86_400);
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2;
            if market::count_in_window(sim, pair, from, mid) < sim.page_limit as u64 {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if market::count_in_window(sim, pair, from, lo) >= 900 {
            chunks.push(TodoChunk {
                currency_pair: pair.into(),
                from_unix_ts: from,
                until_unix_ts: lo,
                task_dbid: chunks.len() as i32,
                ..Default::default()
            });
        }
        from = lo + 1;
    }
    chunks
}

/// Pushes `chunks` through `add_task`, `in_flight` at a time; returns chunks/s and trades.
async fn push(app: &App, chunks: Vec<TodoChunk>, in_flight: usize) -> (f64, usize) {
    let n = chunks.len();
    let start = Instant::now();
    let trades: usize = stream::iter(chunks)
        .map(|c| app.manager.send(AddTask(c)))
        .buffer_unordered(in_flight)
        .map(|answer| {
            let answer = answer.expect("manager running").expect("answered");
            assert_eq!(
                answer.chunk_result,
                cloned_chunk::Result::Complete as i32,
                "{}",
                answer.possible_error_message
            );
            answer.entries.len()
        })
        .fold(0, |sum, n| async move { sum + n })
        .await;
    (n as f64 / start.elapsed().as_secs_f64(), trades)
}

fn main() {
    // `cargo bench` passes --bench; there is nothing to filter.
    let sim = SimulatorProcess::start();
    let sim_config = SimulatorConfig::default();
    let n_workers = 64;
    let mut settings = Settings {
        n_workers,
        ..Settings::default()
    };
    settings.rate_limiter.unlimited = true;
    settings.upstream.base_url = Some(sim.base_url.clone());
    settings.upstream.page_limit = sim_config.page_limit;

    let full = full_page_windows(&sim_config, "USDT_BTC", 3_000);
    let small = small_windows(30_000);
    actix_rt::System::new().block_on(async move {
        let app = App::start(&settings, Hooks::default());
        // Warm-up: connections, allocator.
        push(&app, small_windows(2_000), n_workers).await;
        let (rate, trades) = push(&app, small, n_workers).await;
        println!("small windows: {rate:>8.0} chunks/s  (30000 chunks, {trades} trades, {n_workers} workers)");
        let (rate, trades) = push(&app, full, n_workers).await;
        println!("full pages:    {rate:>8.0} chunks/s  (3000 chunks, {trades} trades, {:.0} trades/s)", rate * trades as f64 / 3000.0);
        // With the limiter on, the rate should be the bottleneck: achieved vs configured.
        let rate = 100.0;
        app.limiter.send(SetRate(Rate::PerSecond(rate))).await.unwrap().unwrap();
        let n = 1_000;
        let start = Instant::now();
        push(&app, small_windows(n), n_workers).await;
        // n grants span n - 1 intervals (the first is immediate).
        let achieved = (n - 1) as f64 / start.elapsed().as_secs_f64();
        println!(
            "rate-limited:  {achieved:>8.2} calls/s  (configured {rate}; {:.2} % of it)",
            achieved / rate * 100.0
        );
        // The simulator's own count: every chunk above was one real HTTP call.
        let stats: Stats = awc::Client::default()
            .get(format!("{}/stats", settings.upstream.base_url()))
            .send()
            .await
            .expect("simulator stats")
            .json()
            .await
            .expect("stats JSON");
        println!("simulator:     {} calls served (36000 expected)", stats.calls);
        System::current().stop();
    });
    drop(sim);
}

//! Shared set-up for the integration tests: an exchange simulator on an ephemeral loopback port
//! and settings that point the service at it. The Kafka side is in [`kafka`], child processes
//! (the service, `clone`, the binaries, signals) in [`process`], its HTTP endpoint in [`http`],
//! an Apache Kafka cluster of a test's own in [`cluster`], a run of `serve` under a fault in
//! [`fault_run`].

use std::time::Duration;

use cloner_worker::config::Settings;
use cloner_worker::dev::simulator::{self, market, SimulatorConfig, SimulatorHandle};
use cloner_worker::proto::{cloned_chunk, ClonedChunk, TodoChunk};

pub mod cluster;
pub mod fault_run;
pub mod http;
pub mod kafka;
pub mod process;

/// A window's trades as the simulator generates them; the ground truth for the worker's answer.
pub fn expected_result(sim: &SimulatorConfig, chunk: &TodoChunk) -> cloned_chunk::Result {
    let n = market::count_in_window(
        sim,
        &chunk.currency_pair,
        chunk.from_unix_ts,
        chunk.until_unix_ts,
    );
    if n as usize >= sim.page_limit {
        cloned_chunk::Result::WindowTooBig
    } else {
        cloned_chunk::Result::Complete
    }
}

/// Checks a `COMPLETE` answer against the simulator's own trades, field by field.
pub fn assert_matches_ground_truth(sim: &SimulatorConfig, answer: &ClonedChunk) {
    let chunk = answer
        .original_todo_chunk
        .as_ref()
        .expect("answers carry their chunk");
    let truth = market::trades_in_window(
        sim,
        &chunk.currency_pair,
        chunk.from_unix_ts,
        chunk.until_unix_ts,
    );
    assert_eq!(
        answer.entries.len(),
        truth.len(),
        "entry count of {chunk:?}"
    );
    for (entry, trade) in answer.entries.iter().zip(&truth) {
        assert_eq!(entry.trade_id, trade.trade_id);
        assert_eq!(entry.date, trade.date);
        assert_eq!(
            entry.r#type == 1,
            trade.buy,
            "type of trade {}",
            trade.trade_id
        );
        assert_eq!(
            (&entry.rate, &entry.amount, &entry.total),
            (&trade.rate, &trade.amount, &trade.total)
        );
    }
}

/// Settings for `n_workers` workers at `rate` calls/s against `sim`, with short timeouts so
/// fault tests stay quick.
pub fn settings(sim: &SimulatorHandle, n_workers: usize, rate: f64) -> Settings {
    let mut s = Settings {
        n_workers,
        default_rate: rate,
        ..Settings::default()
    };
    s.upstream.base_url = Some(sim.base_url());
    s.upstream.request_timeout_ms = 500;
    s.upstream.backoff_base_ms = 5;
    s.upstream.backoff_max_ms = 50;
    s.upstream.max_retries = 20;
    s.worker.attempt_deadline_ms = 30_000;
    // Hours, as the clone tests name their windows; planned windows have tests of their own.
    s.clone.window_secs = Some(3600);
    s.validate().expect("test settings are valid");
    s
}

/// Like [`settings`] with the rate limiter off: for tests about something else, against a
/// simulator without a rate limit.
pub fn unlimited_settings(sim: &SimulatorHandle, n_workers: usize) -> Settings {
    let mut s = settings(sim, n_workers, 1.0);
    s.rate_limiter.unlimited = true;
    s
}

/// The default simulator without its rate limit.
pub fn no_rate_limit() -> SimulatorConfig {
    SimulatorConfig {
        rate_limit: 0,
        ..SimulatorConfig::default()
    }
}

pub async fn start_simulator(config: SimulatorConfig) -> SimulatorHandle {
    simulator::start(config).await.expect("simulator starts")
}

/// Hourly chunks of `pair` from `start`.
pub fn hourly_chunks(pair: &str, start: i64, hours: i32, first_id: i32) -> Vec<TodoChunk> {
    (0..hours)
        .map(|h| TodoChunk {
            currency_pair: pair.to_string(),
            from_unix_ts: start + i64::from(h) * 3600,
            until_unix_ts: start + i64::from(h) * 3600 + 3599,
            task_dbid: first_id + h,
            ..Default::default()
        })
        .collect()
}

/// 2018-10-22 00:00:00 UTC.
pub const DAY: i64 = 1_540_166_400;

/// Bounds every test: a hang fails the test instead of stalling CI.
pub const TEST_DEADLINE: Duration = Duration::from_secs(120);

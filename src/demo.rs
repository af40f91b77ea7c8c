//! `cloner-worker demo`: the main job end to end with nothing installed.
//!
//! In one process: librdkafka's mock cluster as the broker, the exchange simulator on a free
//! loopback port as the upstream (with its real rate limit), and the service itself — the same
//! code as `serve`. It publishes one day of a busy pair as hourly TodoChunks, waits for every
//! result on the finished topic, drains the service, and prints a summary.
//!
//! It must never touch anything beyond loopback.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::app::Hooks;
use crate::chunk::result_name;
use crate::config::{KafkaValue, Settings};
use crate::kafka::mock_broker::MockBroker;
use crate::kafka::requester::{self, TopicReader};
use crate::proto::{cloned_chunk, TodoChunk};
use crate::service;
use crate::simulator::{self, SimulatorConfig};
use crate::todo_chunk_consumer::Drain;

/// What the demo clones.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub pair: String,
    /// First second of the day (UTC).
    pub day_start: i32,
    pub hours: i32,
    /// Longest the demo waits for its results.
    pub timeout: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            pair: "USDT_BTC".into(),
            // 2018-10-22 00:00:00 UTC
            day_start: 1_540_166_400,
            hours: 24,
            timeout: Duration::from_secs(300),
        }
    }
}

/// What the demo saw.
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    pub chunks: usize,
    pub by_result: BTreeMap<String, usize>,
    pub trades: usize,
    pub upstream_calls: u64,
    pub rate_violations: u64,
    /// The rate limiter's setting.
    pub configured_rate: f64,
    /// From the first result read to the last: the time the workers were busy cloning.
    pub cloning: Duration,
    /// Everything, the consumer group's join included.
    pub elapsed: Duration,
}

impl std::fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(f, "chunks:     {}", self.chunks)?;
        for (kind, n) in &self.by_result {
            writeln!(f, "  {kind:<15} {n}")?;
        }
        writeln!(f, "trades:     {}", self.trades)?;
        // Every chunk is one call: the calls between the first result and the last are the
        // chunks after the first.
        let cloning = self.cloning.as_secs_f64();
        let rate = if cloning > 0.0 {
            format!("{:.2}", self.chunks.saturating_sub(1) as f64 / cloning)
        } else {
            "-".into()
        };
        writeln!(
            f,
            "upstream:   {} calls, {rate} calls/s while cloning (limit {}/s; {} calls over the exchange's limit)",
            self.upstream_calls, self.configured_rate, self.rate_violations
        )?;
        write!(
            f,
            "elapsed:    {secs:.1} s ({cloning:.1} s cloning; the rest is the consumer group forming)"
        )
    }
}

/// Runs the demo on the current actix system; `settings` gives the rate and the workers, the
/// demo points them at its own broker and simulator.
pub async fn run(
    broker: &MockBroker,
    mut settings: Settings,
    options: &DemoOptions,
) -> anyhow::Result<DemoSummary> {
    // A pair that cannot be a chunk's would only reach the dead-letter topic.
    crate::pair::CurrencyPair::parse(&options.pair).context("--pair")?;
    let started = Instant::now();
    for topic in crate::kafka::topics::service_topics(&settings) {
        broker.create_topic(topic, settings.topics.partitions)?;
    }
    settings
        .kafka
        .set("bootstrap.servers", broker.bootstrap_servers());
    // The mock broker holds a fetch that finds nothing for all of fetch.wait.max.ms (500 ms by
    // default) even when data comes meanwhile; a real broker answers at once.
    settings
        .kafka
        .consumer
        .insert("fetch_wait_max_ms".into(), KafkaValue::Int(10));
    // The exchange allows 10 % over the limiter's rate: grants are exact, but delivery over
    // loopback jitters by a few ms, which a sliding one-second window would count as a 7th
    // call in a second at exactly 6/s (the integration tests leave the same headroom).
    let sim = simulator::start(SimulatorConfig {
        rate_limit: (settings.default_rate * 1.1).ceil() as u32,
        page_limit: settings.upstream.page_limit,
        ..SimulatorConfig::default()
    })
    .await
    .context("starting the exchange simulator")?;
    settings.upstream.base_url = sim.base_url();
    // No /metrics or /health: nothing scrapes a demo, and a fixed port would keep two demos (or
    // a demo and a service) from running at once.
    settings.http.listen = String::new();
    settings.validate()?;

    let reader = TopicReader::new(&settings.kafka, &settings.topics.finished)?;
    let consumer = service::start(&settings, Hooks::default()).await?.consumer;
    let chunks: Vec<TodoChunk> = (0..options.hours)
        .map(|h| TodoChunk {
            currency_pair: options.pair.clone(),
            from_unix_ts: options.day_start + h * 3600,
            until_unix_ts: options.day_start + h * 3600 + 3599,
            task_dbid: h + 1,
        })
        .collect();
    let producer = requester::producer(&settings)?;
    requester::publish_chunks(&producer, &settings.topics.todo, &chunks).await?;
    log::info!(
        "published {} hourly chunks of {} to {}",
        chunks.len(),
        options.pair,
        settings.topics.todo
    );

    let first = reader.take(1, options.timeout).await?;
    let cloning_started = Instant::now();
    let rest = reader.take(chunks.len() - 1, options.timeout).await?;
    let mut summary = DemoSummary {
        chunks: chunks.len(),
        configured_rate: settings.default_rate,
        cloning: cloning_started.elapsed(),
        elapsed: started.elapsed(),
        ..DemoSummary::default()
    };
    let records: Vec<_> = first.into_iter().chain(rest).collect();
    for record in &records {
        let result = record.cloned_chunk()?;
        *summary.by_result.entry(result_name(&result)).or_default() += 1;
        if result.chunk_result == cloned_chunk::Result::Complete as i32 {
            summary.trades += result.entries.len();
        }
    }
    let stats = sim.stats();
    summary.upstream_calls = stats.calls;
    summary.rate_violations = stats.violations;

    consumer
        .send(Drain {
            grace: settings.consumer.drain_grace(),
        })
        .await
        .context("draining the service")?;
    sim.stop().await;
    Ok(summary)
}

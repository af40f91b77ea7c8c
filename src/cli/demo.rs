//! `cloner-worker demo`: the main job end to end with nothing installed.
//!
//! In one process: librdkafka's mock cluster as the broker, the exchange simulator on a free
//! loopback port as the upstream (Poloniex with its rate limit, or Binance with its weight
//! budget: `--venue`), the service itself — the same code as `serve` — and the requesting side,
//! [`crate::clone`]: one day of a busy pair is cut into windows sized to the trades seen, full
//! pages are kept and the rest of their windows asked for, and the trades are checked for gaps
//! and duplicates (and written to a file if asked). Then the service drains and a summary is
//! printed.
//!
//! It must never touch anything beyond loopback.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;

use crate::clone::output::Format;
use crate::clone::progress::ProgressMode;
use crate::clone::{self, CloneOptions, CloneReport, Sink};
use crate::config::{KafkaValue, Settings, VenueName};
use crate::dev::mock_broker::MockBroker;
use crate::dev::simulator::{self, SimulatorConfig, Stats};
use crate::domain::pair::CurrencyPair;
use crate::pool::app::Hooks;
use crate::service;

/// `cloner-worker demo`'s arguments.
#[derive(Args)]
pub struct DemoArgs {
    /// The exchange to simulate and call: Poloniex legacy, or Binance aggregate trades.
    #[arg(long, value_enum, default_value_t = DemoVenue::Poloniex)]
    venue: DemoVenue,
    /// The pair to clone, as the venue spells it [default: USDT_BTC on Poloniex, BTCUSDT on
    /// Binance].
    #[arg(long)]
    pair: Option<String>,
    /// Hours to clone, from 2018-10-22 00:00 UTC (1 to 744, a month).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(i32).range(1..=744))]
    hours: i32,
    /// Write the trades to this .csv, .jsonl or .parquet file (otherwise they are only checked).
    #[arg(long)]
    out: Option<PathBuf>,
    /// csv, jsonl or parquet; by default from --out's extension.
    #[arg(long, value_enum, requires = "out")]
    format: Option<Format>,
}

impl DemoArgs {
    /// Runs the demo with its own broker, prints the summary; an error if the clone is not
    /// complete.
    pub fn run(self, settings: Settings) -> anyhow::Result<()> {
        let broker = MockBroker::start(1)?;
        let venue = match self.venue {
            DemoVenue::Poloniex => VenueName::Poloniex,
            DemoVenue::Binance => VenueName::Binance,
        };
        let options = DemoOptions {
            pair: self.pair.unwrap_or_else(|| default_pair(venue).into()),
            venue,
            hours: self.hours,
            out: self.out,
            format: self.format,
            ..DemoOptions::default()
        };
        let summary = actix_rt::System::new().block_on(run(&broker, settings, &options))?;
        println!("{summary}");
        Ok(summary.clone.ensure_complete()?)
    }
}

/// `--venue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoVenue {
    Poloniex,
    Binance,
}

/// The busy pair of the venue's simulator.
pub fn default_pair(venue: VenueName) -> &'static str {
    match venue {
        VenueName::Poloniex => "USDT_BTC",
        VenueName::Binance => "BTCUSDT",
    }
}

/// What the demo clones.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The exchange simulated and called.
    pub venue: VenueName,
    pub pair: String,
    /// First second of the day (UTC).
    pub day_start: i32,
    pub hours: i32,
    /// Where the trades go: a CSV or JSON Lines file, or nowhere (counted and checked only).
    pub out: Option<PathBuf>,
    /// The output's format; by default from `out`'s extension.
    pub format: Option<Format>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            venue: VenueName::Poloniex,
            pair: default_pair(VenueName::Poloniex).into(),
            // 2018-10-22 00:00:00 UTC
            day_start: 1_540_166_400,
            hours: 24,
            out: None,
            format: None,
        }
    }
}

/// What the demo saw.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub clone: CloneReport,
    /// The exchange's side: calls, violations, when the first and last call came.
    pub exchange: Stats,
    /// The rate limiter's setting, in the venue's unit.
    pub configured_rate: f64,
    /// Upstream calls per second that rate allows.
    pub calls_per_second: f64,
    pub venue: VenueName,
    /// Everything, the consumer group's join included.
    pub elapsed_secs: f64,
}

impl std::fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.clone)?;
        let x = &self.exchange;
        let span = match (x.first_call_ms, x.last_call_ms) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1000.0,
            _ => 0.0,
        };
        let rate = if span > 0.0 {
            format!("{:.2}", x.calls.saturating_sub(1) as f64 / span)
        } else {
            "-".into()
        };
        writeln!(
            f,
            "upstream: {} ({}), {} calls, {rate} calls/s from the first to the last (limit {:.2}/s; {} calls over the exchange's limit, {} refused)",
            self.venue.as_str(),
            match self.venue {
                VenueName::Poloniex => format!("{} calls/s", self.configured_rate),
                VenueName::Binance => format!("{} weight/s", self.configured_rate),
            },
            x.calls,
            self.calls_per_second,
            x.violations,
            x.rate_limited
        )?;
        if self.venue == VenueName::Binance {
            writeln!(
                f,
                "weight:   {} used, at most {} in one minute (the budget is {:.0} a minute)",
                x.weight_used,
                x.peak_weight_per_minute,
                self.configured_rate * 60.0
            )?;
        }
        write!(
            f,
            "total:    {:.1} s, the consumer group forming included",
            self.elapsed_secs
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
    settings.upstream.venue = options.venue;
    // A pair that cannot be a chunk's would only reach the dead-letter topic.
    let rule = crate::task::venue::from_settings(&settings.upstream).pair_rule();
    let pair = CurrencyPair::parse_with(&options.pair, rule).context("--pair")?;
    let format = Format::choose(options.format, options.out.as_deref())?;
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
    let config = match options.venue {
        VenueName::Poloniex => SimulatorConfig {
            rate_limit: (settings.default_rate * 1.1).ceil() as u32,
            page_limit: settings.upstream.page_limit,
            ..SimulatorConfig::default()
        },
        VenueName::Binance => {
            // The whole weight budget, as Binance counts it; and one millisecond of the day
            // with more than a page of trades (05:00:00.123), reached by id.
            settings.default_rate = settings.upstream.budget_per_second();
            let binance = &settings.upstream.binance;
            SimulatorConfig {
                venue: simulator::Venue::Binance,
                weight_per_call: binance.weight_per_call.into(),
                weight_limit_per_minute: binance.weight_limit_per_minute,
                burst_ms: vec![(i64::from(options.day_start) + 5 * 3600) * 1000 + 123],
                ..SimulatorConfig::default()
            }
        }
    };
    let sim = simulator::start(config)
        .await
        .context("starting the exchange simulator")?;
    settings.upstream.base_url = Some(sim.base_url());
    // No /metrics or /health: nothing scrapes a demo, and a fixed port would keep two demos (or
    // a demo and a service) from running at once.
    settings.http.listen = String::new();
    settings.validate()?;

    let running = service::start(&settings, Hooks::default()).await?;
    let from = i64::from(options.day_start);
    let report = clone::run(
        &settings,
        &CloneOptions {
            pair,
            from,
            until: from + i64::from(options.hours) * 3600,
            out: options.out.clone().map_or(Sink::Discard, Sink::File),
            format,
            progress: ProgressMode::Auto,
        },
        service::shutdown_signal(),
    )
    .await;
    running
        .shutdown(settings.consumer.drain_grace())
        .await
        .context("draining the service")?;
    let exchange = sim.stats();
    sim.stop().await;
    Ok(DemoSummary {
        clone: report?,
        exchange,
        configured_rate: settings.default_rate,
        calls_per_second: settings.calls_per_second(),
        venue: options.venue,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

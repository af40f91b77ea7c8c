//! `cloner-worker`: the command line of the service.
//!
//! Subcommands:
//! - `clone` — a range of a pair's history to a file, through the service (see
//!   `cloner_worker::clone`); with `--with-workers N` the service runs in this process too.
//! - `demo` — the main job end to end in one process: mock broker, simulator, service.
//! - `serve` — the service: TodoChunks from Kafka, ClonedChunks back, until SIGINT/SIGTERM.
//! - `topics create|delete|list` — the service's topics through the admin API.
//! - `broker` — librdkafka's mock cluster as a broker process, for tests (scripts/kafka-up).
//! - `repl` — the iex-style console over the actor tree (see `cloner_worker::cli::repl`), against
//!   the configured upstream or, with `--simulator`, an exchange simulator started in-process.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use cloner_worker::cli::demo::{self, DemoOptions};
use cloner_worker::cli::repl;
use cloner_worker::clone::output::Format;
use cloner_worker::clone::progress::ProgressMode;
use cloner_worker::clone::{self as cloning, CloneOptions, Sink};
use cloner_worker::config::Settings;
use cloner_worker::dev::mock_broker::MockBroker;
use cloner_worker::dev::simulator::{self, SimulatorConfig};
use cloner_worker::domain::pair::CurrencyPair;
use cloner_worker::kafka::topics::{self, TopicOutcome};
use cloner_worker::pool::app::{App, Hooks};
use cloner_worker::service;

#[derive(Parser)]
#[command(
    name = "cloner-worker",
    version,
    about = "Clones an exchange's public trade history, chunk by chunk."
)]
struct Cli {
    /// Configuration file layered over the embedded defaults (environment CLONER__* wins over it).
    #[arg(long, global = true, env = "CLONER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Clone a pair's trades from --from until --until through the service, into a file in
    /// time order; exits non-zero if any window could not be cloned or a gap remains.
    Clone {
        /// The currency pair, e.g. USDT_BTC.
        pair: String,
        /// First second: unix seconds, 2018-10-22, or 2018-10-22T05:00:00Z (UTC).
        #[arg(long, value_parser = parse_time)]
        from: i64,
        /// End of the range, exclusive: --from 2018-10-22 --until 2018-10-23 is one day.
        #[arg(long, value_parser = parse_time)]
        until: i64,
        /// Seconds per window (overrides clone.window_secs).
        #[arg(long)]
        window: Option<u32>,
        /// Write here (grown as FILE.partial, renamed when complete); stdout if not given.
        #[arg(long)]
        out: Option<PathBuf>,
        /// csv or jsonl; by default from the file's extension (.csv, .jsonl, .ndjson), csv on
        /// stdout.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Start the service in this process with N workers (otherwise a running service, in
        /// another process, answers).
        #[arg(long, value_name = "N")]
        with_workers: Option<usize>,
        /// Upstream base URL for --with-workers (overrides upstream.base_url).
        #[arg(long, requires = "with_workers")]
        upstream: Option<String>,
        /// How progress is shown: a bar on a terminal, log lines otherwise.
        #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
        progress: ProgressMode,
    },
    /// Clone one day of a busy pair through Kafka, all in this process (mock broker, exchange
    /// simulator, the service), and print a summary.
    Demo {
        /// The pair to clone.
        #[arg(long, default_value = "USDT_BTC")]
        pair: String,
        /// Hours to clone, from 2018-10-22 00:00 UTC (1 to 744, a month).
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(i32).range(1..=744))]
        hours: i32,
        /// Write the trades to this .csv or .jsonl file (otherwise they are only checked).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the service: consume TodoChunks, produce ClonedChunks, drain on SIGINT/SIGTERM.
    Serve {
        /// Upstream base URL (overrides upstream.base_url).
        #[arg(long)]
        upstream: Option<String>,
    },
    /// Create, delete or list the service's topics (names and partitions from the config).
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// A Kafka broker for tests: librdkafka's mock cluster on loopback, with the configured
    /// topics, until killed. Prints `bootstrap=HOST:PORT control=HOST:PORT`.
    Broker {
        /// Write the bootstrap address here once the broker is up.
        #[arg(long)]
        bootstrap_file: Option<PathBuf>,
        /// Write the control address (topic creation) here once the broker is up.
        #[arg(long)]
        control_file: Option<PathBuf>,
    },
    /// iex-style console: Queue.add_to_queue, WorkerManager.add_task, RateLimiter.set_rate, …
    Repl {
        /// Start an exchange simulator on a free loopback port and use it as the upstream.
        #[arg(long, conflicts_with = "upstream")]
        simulator: bool,
        /// Upstream base URL (overrides upstream.base_url).
        #[arg(long)]
        upstream: Option<String>,
    },
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create the todo, finished and dead-letter topics; existing ones are left as they are.
    Create,
    /// Delete the todo, finished and dead-letter topics.
    Delete,
    /// List the cluster's topics with their partitions and replication.
    List,
}

fn main() -> anyhow::Result<()> {
    let logger = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,actix_server=warn"),
    )
    .build();
    let level = logger.filter();
    // Log lines go through the progress bars' terminal, so that they print above a bar.
    indicatif_log_bridge::LogWrapper::new(
        cloner_worker::clone::progress::terminal().clone(),
        logger,
    )
    .try_init()
    .context("installing the logger")?;
    log::set_max_level(level);
    let cli = Cli::parse();
    let mut settings =
        Settings::load(cli.config.as_deref()).context("loading the configuration")?;
    match cli.command {
        Command::Clone {
            pair,
            from,
            until,
            window,
            out,
            format,
            with_workers,
            upstream,
            progress,
        } => {
            let pair = CurrencyPair::parse(&pair).context("the pair")?;
            if let Some(secs) = window {
                settings.clone.window_secs = secs;
            }
            if let Some(url) = upstream {
                settings.upstream.base_url = url;
            }
            settings.validate().context("--window / --upstream")?;
            let format = match (format, &out) {
                (Some(f), _) => f,
                (None, None) => Format::Csv,
                (None, Some(path)) => Format::from_path(path).with_context(|| {
                    format!(
                        "cannot tell the format of {} from its extension; use .csv or .jsonl, or --format",
                        path.display()
                    )
                })?,
            };
            let options = CloneOptions {
                pair,
                from,
                until,
                out: out.map_or(Sink::Stdout, Sink::File),
                format,
                progress,
            };
            let report = actix_rt::System::new().block_on(async {
                // SIGINT/SIGTERM: what is answered is written and the summary says the rest.
                let stop = service::shutdown_signal();
                match with_workers {
                    Some(n) => cloning::run_with_workers(&settings, &options, n, stop).await,
                    None => cloning::run(&settings, &options, stop).await,
                }
            })?;
            // stdout may be the trades: the summary goes to stderr.
            eprintln!("{report}");
            if !report.is_complete() {
                let mut why = Vec::new();
                if report.interrupted {
                    why.push("interrupted".to_string());
                }
                if !report.failed.is_empty() {
                    let named: Vec<String> = report
                        .failed
                        .iter()
                        .take(5)
                        .map(|(w, _)| w.to_string())
                        .collect();
                    why.push(format!(
                        "{} windows could not be cloned ({}{}); clone them again with --from/--until",
                        report.failed.len(),
                        named.join(", "),
                        if report.failed.len() > 5 { ", …" } else { "" }
                    ));
                }
                if report.check.missing_ids > 0 {
                    why.push(format!("{} tradeIDs are missing", report.check.missing_ids));
                }
                anyhow::bail!("the clone is incomplete: {}", why.join("; "));
            }
            Ok(())
        }
        Command::Repl {
            simulator,
            upstream,
        } => {
            if let Some(url) = upstream {
                settings.upstream.base_url = url;
                settings.validate().context("--upstream")?;
            }
            actix_rt::System::new().block_on(run_repl(settings, simulator))
        }
        Command::Serve { upstream } => {
            if let Some(url) = upstream {
                settings.upstream.base_url = url;
                settings.validate().context("--upstream")?;
            }
            actix_rt::System::new().block_on(async {
                let shutdown = service::shutdown_signal();
                let report = service::serve(&settings, Hooks::default(), shutdown).await?;
                if report.unfinished > 0 {
                    log::warn!(
                        "{} chunks were not finished; the group delivers them again",
                        report.unfinished
                    );
                }
                anyhow::Ok(())
            })
        }
        Command::Topics { action } => {
            actix_rt::System::new().block_on(run_topics(&settings, action))
        }
        Command::Broker {
            bootstrap_file,
            control_file,
        } => run_broker(&settings, bootstrap_file, control_file),
        Command::Demo { pair, hours, out } => {
            let broker = MockBroker::start()?;
            let options = DemoOptions {
                pair,
                hours,
                out,
                ..DemoOptions::default()
            };
            let summary =
                actix_rt::System::new().block_on(demo::run(&broker, settings, &options))?;
            println!("{summary}");
            anyhow::ensure!(
                summary.clone.is_complete(),
                "the demo's clone is incomplete (see above)"
            );
            Ok(())
        }
    }
}

fn parse_time(s: &str) -> Result<i64, String> {
    cloner_worker::domain::utc::parse_time_arg(s).ok_or_else(|| {
        format!("{s:?} is not a time: use unix seconds, 2018-10-22 or 2018-10-22T05:00:00Z (UTC)")
    })
}

async fn run_topics(settings: &Settings, action: TopicsAction) -> anyhow::Result<()> {
    let names = topics::service_topics(settings);
    match action {
        TopicsAction::Create => {
            for (topic, outcome) in topics::create(settings, &names).await? {
                match outcome {
                    TopicOutcome::Created => println!(
                        "created {topic} ({} partitions, replication {})",
                        settings.topics.partitions, settings.topics.replication
                    ),
                    _ => println!("{topic} exists already"),
                }
            }
        }
        TopicsAction::Delete => {
            for (topic, outcome) in topics::delete(settings, &names).await? {
                match outcome {
                    TopicOutcome::Deleted => println!("deleted {topic}"),
                    _ => println!("{topic} did not exist"),
                }
            }
        }
        TopicsAction::List => {
            for t in topics::list(settings)? {
                println!(
                    "{}\t{} partitions\treplication {}",
                    t.name, t.partitions, t.replication
                );
            }
        }
    }
    Ok(())
}

/// Hosts the mock cluster until the process is killed.
fn run_broker(
    settings: &Settings,
    bootstrap_file: Option<PathBuf>,
    control_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let broker = MockBroker::start()?;
    for topic in topics::service_topics(settings) {
        broker.create_topic(topic, settings.topics.partitions)?;
    }
    let control = std::net::TcpListener::bind("127.0.0.1:0").context("binding the control port")?;
    let control_addr = control.local_addr()?;
    let bootstrap = broker.bootstrap_servers();
    // Written whole, then renamed: a reader never sees half an address.
    for (path, value) in [
        (&bootstrap_file, &bootstrap),
        (&control_file, &control_addr.to_string()),
    ] {
        if let Some(path) = path {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".partial");
            std::fs::write(&tmp, value).with_context(|| format!("writing {}", path.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    println!("bootstrap={bootstrap} control={control_addr}");
    std::io::Write::flush(&mut std::io::stdout())?;
    broker.serve_control(control)
}

async fn run_repl(mut settings: Settings, with_simulator: bool) -> anyhow::Result<()> {
    let simulator = if with_simulator {
        let config = SimulatorConfig {
            page_limit: settings.upstream.page_limit,
            ..SimulatorConfig::default()
        };
        let handle = simulator::start(config)
            .await
            .context("starting the exchange simulator")?;
        log::info!("exchange simulator on {}", handle.base_url());
        settings.upstream.base_url = handle.base_url();
        Some(handle)
    } else {
        None
    };
    let app = App::start(&settings, Hooks::default());
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        println!("cloner-worker console; type help for the commands, exit to leave");
    }
    repl::run(app, repl::stdin_lines(), interactive).await;
    if let Some(handle) = simulator {
        handle.stop().await;
    }
    Ok(())
}

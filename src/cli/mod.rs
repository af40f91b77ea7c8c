//! The command line, `cloner-worker <command>`: one file per command, each with its arguments
//! (clap) and what it runs.
//!
//! - [`clone`] — a range of a pair's history to a file, through the service.
//! - [`demo`] — the main job end to end in one process: mock broker, simulator, service, clone.
//! - [`serve`] — the service: TodoChunks from Kafka, ClonedChunks back, until SIGINT/SIGTERM.
//! - [`topics`] — `create|delete|list|brokers` the service's topics through the admin API.
//! - [`broker`] — librdkafka's mock cluster as a broker process, for tests (scripts/kafka-up).
//! - [`repl`] — the iex-style console over the actor tree.
//!
//! This is glue: errors are `anyhow`, with the context a user needs. It must never hold logic
//! that a library caller (tests, benches) would need too.

pub mod broker;
pub mod clone;
pub mod demo;
pub mod repl;
pub mod serve;
pub mod topics;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Settings;

#[derive(Parser)]
#[command(
    name = "cloner-worker",
    version,
    about = "Clones an exchange's public trade history, chunk by chunk."
)]
pub struct Cli {
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
    Clone(clone::CloneArgs),
    /// Clone one day of a busy pair through Kafka, all in this process (mock broker, exchange
    /// simulator, the service), and print a summary.
    Demo(demo::DemoArgs),
    /// Run the service: consume TodoChunks, produce ClonedChunks, drain on SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Create, delete or list the service's topics (names and partitions from the config).
    Topics {
        #[command(subcommand)]
        action: topics::TopicsAction,
    },
    /// A Kafka broker for tests: librdkafka's mock cluster on loopback, with the configured
    /// topics, until killed. Prints `bootstrap=HOST:PORT control=HOST:PORT`.
    Broker(broker::BrokerArgs),
    /// iex-style console: Queue.add_to_queue, WorkerManager.add_task, RateLimiter.set_rate, …
    Repl(repl::ReplArgs),
}

/// `cloner-worker`'s `main`: logging, arguments, configuration, then the command.
pub fn main() -> anyhow::Result<()> {
    let logger = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,actix_server=warn"),
    )
    .build();
    let level = logger.filter();
    // Log lines go through the progress bars' terminal, so that they print above a bar.
    indicatif_log_bridge::LogWrapper::new(crate::clone::progress::terminal().clone(), logger)
        .try_init()
        .context("installing the logger")?;
    log::set_max_level(level);
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref()).context("loading the configuration")?;
    match cli.command {
        Command::Clone(args) => args.run(settings),
        Command::Demo(args) => args.run(settings),
        Command::Serve(args) => args.run(settings),
        Command::Topics { action } => action.run(&settings),
        Command::Broker(args) => args.run(&settings),
        Command::Repl(args) => args.run(settings),
    }
}

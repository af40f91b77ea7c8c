//! `cloner-worker`: the command line of the service.
//!
//! Subcommands:
//! - `repl` — the iex-style console over the actor tree (see `cloner_worker::repl`), against
//!   the configured upstream or, with `--simulator`, an exchange simulator started in-process.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use cloner_worker::app::{App, Hooks};
use cloner_worker::config::Settings;
use cloner_worker::repl;
use cloner_worker::simulator::{self, SimulatorConfig};

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

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,actix_server=warn"),
    )
    .init();
    let cli = Cli::parse();
    let mut settings =
        Settings::load(cli.config.as_deref()).context("loading the configuration")?;
    match cli.command {
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
    }
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

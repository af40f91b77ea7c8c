//! An iex-style console over the running actor tree: the original's operations by their
//! original names, typed one per line, answered in an iex-like form.
//!
//! Commands are parsed by [`parse`] (pure, unit-tested) and run by [`run`]. iex call syntax is
//! accepted too: `WorkerManager.add_task("BTC_ETH", 1540000000, 1540003599)`. Bad input gets
//! one `** (…)` line and the prompt; the console must never crash on input.

pub mod command;
pub mod show;

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;
use anyhow::Context as _;
use clap::Args;
use tokio::sync::{mpsc, Notify};

use crate::config::Settings;
use crate::dev::simulator::{self, SimulatorConfig};
use crate::pool::app::{App, Hooks};
use crate::pool::job::Job;
use crate::pool::manager::{AddTask, GetManagerStatus, SetUnclaimedSink, Unclaimed, WorkerState};
use crate::pool::queue::{AddToQueue, GetFirstElement, Len};
use crate::pool::registry::{ListWorkers, Whereis};
use crate::pool::supervisor::KillWorker;
use crate::task::rate_limiter::{register, GetLimiterStatus, SetRate};

pub use command::{parse, Command, HELP};
use show::{show_chunk, show_result};

/// `cloner-worker repl`: the console against the configured upstream or, with `--simulator`,
/// an exchange simulator started in this process.
#[derive(Args)]
pub struct ReplArgs {
    /// Start an exchange simulator on a free loopback port and use it as the upstream.
    #[arg(long, conflicts_with = "upstream")]
    simulator: bool,
    /// Upstream base URL (overrides upstream.base_url).
    #[arg(long)]
    upstream: Option<String>,
}

impl ReplArgs {
    pub fn run(self, mut settings: Settings) -> anyhow::Result<()> {
        if let Some(url) = self.upstream {
            settings.upstream.base_url = Some(url);
            settings.validate().context("--upstream")?;
        }
        actix_rt::System::new().block_on(console(settings, self.simulator))
    }
}

async fn console(mut settings: Settings, with_simulator: bool) -> anyhow::Result<()> {
    let simulator = if with_simulator {
        let config = SimulatorConfig {
            page_limit: settings.upstream.page_limit,
            ..SimulatorConfig::default()
        };
        let handle = simulator::start(config)
            .await
            .context("starting the exchange simulator")?;
        log::info!("exchange simulator on {}", handle.base_url());
        settings.upstream.base_url = Some(handle.base_url());
        Some(handle)
    } else {
        None
    };
    let app = App::start(&settings, Hooks::default());
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        println!("cloner-worker console; type help for the commands, exit to leave");
    }
    run(app, stdin_lines(), interactive).await;
    if let Some(handle) = simulator {
        handle.stop().await;
    }
    Ok(())
}

/// Prints answers to chunks queued from the console, and counts them in.
struct Printer {
    outstanding: Rc<Cell<usize>>,
    settled: Rc<Notify>,
}

impl Actor for Printer {
    type Context = Context<Self>;
}

impl Handler<Unclaimed> for Printer {
    type Result = ();

    fn handle(&mut self, Unclaimed(result): Unclaimed, _: &mut Context<Self>) {
        say(&format!("{{:result, {}}}", show_result(&result)));
        self.outstanding
            .set(self.outstanding.get().saturating_sub(1));
        self.settled.notify_one();
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Reads lines from stdin on a thread of its own (stdin blocks) into a channel.
pub fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs the console until `exit` or the end of input, then waits for the results of chunks it
/// queued. `prompt` is printed before each line (pass `None` when input is not a terminal).
pub async fn run(app: App, mut lines: mpsc::UnboundedReceiver<String>, prompt: bool) {
    let outstanding = Rc::new(Cell::new(0usize));
    let settled = Rc::new(Notify::new());
    let printer = Printer {
        outstanding: outstanding.clone(),
        settled: settled.clone(),
    }
    .start();
    app.manager
        .do_send(SetUnclaimedSink(Some(printer.recipient())));

    let mut n = 1;
    loop {
        if prompt {
            print!("iex({n})> ");
            let _ = std::io::stdout().flush();
        }
        let Some(line) = lines.recv().await else {
            break;
        };
        n += 1;
        match parse(&line) {
            Ok(Command::Exit) => break,
            Ok(Command::Nothing) => {}
            Ok(command) => say(&execute(&app, &outstanding, command).await),
            Err(message) => say(&message),
        }
    }
    // Results of queued chunks still print before we leave.
    while outstanding.get() > 0 {
        settled.notified().await;
    }
}

/// Runs one command. `outstanding` counts chunks queued from the console and not yet answered.
async fn execute(app: &App, outstanding: &Cell<usize>, command: Command) -> String {
    match try_execute(app, outstanding, command).await {
        Ok(answer) => answer,
        Err(e) => format!("** (exit) {e}"),
    }
}

async fn try_execute(
    app: &App,
    outstanding: &Cell<usize>,
    command: Command,
) -> Result<String, MailboxError> {
    Ok(match command {
        Command::AddToQueue(chunk) => {
            match app.queue.send(AddToQueue(Job::new(chunk, None))).await? {
                Ok(()) => {
                    outstanding.set(outstanding.get() + 1);
                    ":ok".into()
                }
                Err(full) => format!(
                    "{{:error, :full}} (the queue holds its bound of {})",
                    full.bound
                ),
            }
        }
        Command::GetFirstElement => match app.queue.send(GetFirstElement::new()).await? {
            Some(job) => {
                // Taken out by hand, so it will not be answered: stop waiting for it. (Only
                // console-queued chunks can be waiting here: add_task is awaited in line.)
                outstanding.set(outstanding.get().saturating_sub(1));
                show_chunk(&job.chunk)
            }
            None => "nil".into(),
        },
        Command::QueueLength => app.queue.send(Len::new()).await?.to_string(),
        Command::AddTask(chunk) => match app.manager.send(AddTask(chunk)).await? {
            Ok(result) => show_result(&result),
            Err(e) => format!("{{:error, {e:?}}}"),
        },
        Command::Workers => {
            let status = app.manager.send(GetManagerStatus).await?;
            let mut out = String::from("[");
            for (i, (id, state)) in status.workers.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                match state {
                    WorkerState::Free => write!(out, "{sep}{{{id}, :free}}"),
                    WorkerState::Busy(c) => {
                        write!(out, "{sep}{{{id}, {{:busy, {}}}}}", show_chunk(c))
                    }
                }
                .expect("writing to a String");
            }
            out.push(']');
            out
        }
        Command::Register => {
            let start = Instant::now();
            match register(&app.limiter).await {
                Ok(_) => format!("{{:ok, waited_ms: {}}}", start.elapsed().as_millis()),
                Err(e) => format!("{{:error, {e:?}}}"),
            }
        }
        Command::SetRate(rate) => match app.limiter.send(SetRate(rate)).await? {
            Ok(()) => ":ok".into(),
            Err(e) => format!("{{:error, {e:?}}}"),
        },
        Command::LimiterStatus => {
            let s = app.limiter.send(GetLimiterStatus).await?;
            let current = s.current.map_or("nil".into(), |c| format!("{c:.2}"));
            let paused = s.paused.map_or("nil".into(), |(left, cause)| {
                format!("{{{cause:?}, {:.1} s}}", left.as_secs_f64())
            });
            format!(
                "%{{rate: {:?}, current: {current}, waiting: {}, granted: {}, missed: {}, decreases: {}, paused: {paused}}}",
                s.rate.to_string(),
                s.waiting,
                s.counters.granted,
                s.counters.missed,
                s.counters.decreases,
            )
        }
        Command::RegistryWorkers => {
            let entries = app.registry.send(ListWorkers).await?;
            let items: Vec<String> = entries
                .iter()
                .map(|e| {
                    format!(
                        "{{{}, {}, restarts: {}}}",
                        e.id,
                        if e.up { ":up" } else { ":down" },
                        e.restarts
                    )
                })
                .collect();
            format!("[{}]", items.join(", "))
        }
        Command::Whereis(id) => match app.registry.send(Whereis(id)).await? {
            Some(_) => format!("#Worker<{id}>"),
            None => "nil".into(),
        },
        Command::Kill(id) => {
            if app.supervisor.send(KillWorker(id)).await? {
                "true".into()
            } else {
                format!("{{:error, :no_such_worker}} (worker {id})")
            }
        }
        Command::Help => HELP.into(),
        Command::Exit | Command::Nothing => String::new(),
    })
}

//! An iex-style console over the running actor tree: the original's operations by their
//! original names, typed one per line, answered in an iex-like form.
//!
//! Commands are parsed by [`parse`] (pure, unit-tested) and run by [`run`]. iex call syntax is
//! accepted too: `WorkerManager.add_task("BTC_ETH", 1540000000, 1540003599)`. Bad input gets
//! one `** (…)` line and the prompt; the console must never crash on input.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write;
use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::{mpsc, Notify};

use crate::domain::chunk::result_name;
use crate::pool::app::App;
use crate::pool::job::Job;
use crate::pool::manager::{AddTask, GetManagerStatus, SetUnclaimedSink, Unclaimed, WorkerState};
use crate::pool::queue::{AddToQueue, GetFirstElement, Len};
use crate::pool::registry::{ListWorkers, Whereis};
use crate::pool::supervisor::KillWorker;
use crate::proto::{ClonedChunk, TodoChunk};
use crate::task::rate_limiter::{register, GetLimiterStatus, Rate, SetRate};

pub const HELP: &str = "\
Queue.add_to_queue PAIR FROM UNTIL [TASK_ID]   queue a TodoChunk; its result prints when ready
Queue.get_first_element                        take the oldest queued TodoChunk (nil if none)
Queue.length                                   chunks waiting in the queue
WorkerManager.add_task PAIR FROM UNTIL [TASK_ID]  clone a chunk and print its ClonedChunk
WorkerManager.workers                          each worker: free or busy with which chunk
RateLimiter.register                           wait for permission for one call
RateLimiter.set_rate N | :infinity             calls per second from the next grant on
RateLimiter.status                             rate, burst, waiting callers, grants so far
Registry.workers                               registered workers: up or down, restarts
Registry.whereis N                             is worker N registered?
Supervisor.kill N                              stop worker N as if it crashed (it restarts)
help                                           this text
exit                                           leave (waits for queued chunks' results)
PAIR is like BTC_ETH; FROM and UNTIL are unix seconds, both inclusive.";

/// One console command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    AddToQueue(TodoChunk),
    GetFirstElement,
    QueueLength,
    AddTask(TodoChunk),
    Workers,
    Register,
    SetRate(Rate),
    LimiterStatus,
    RegistryWorkers,
    Whereis(usize),
    Kill(usize),
    Help,
    Exit,
    Nothing,
}

/// Parses one line; the error is the one-line message to print.
pub fn parse(line: &str) -> Result<Command, String> {
    // iex call syntax: parentheses, commas and quotes are only separators here.
    let cleaned: String = line
        .chars()
        .map(|c| {
            if matches!(c, '(' | ')' | ',' | '"') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut words = cleaned.split_whitespace();
    let Some(name) = words.next() else {
        return Ok(Command::Nothing);
    };
    let args: Vec<&str> = words.collect();
    let arity = |n: usize, usage: &str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("** (ArgumentError) usage: {usage}"))
        }
    };
    let chunk = |usage: &str| -> Result<TodoChunk, String> {
        if !(3..=4).contains(&args.len()) {
            return Err(format!("** (ArgumentError) usage: {usage}"));
        }
        let int = |what: &str, s: &str| {
            s.parse::<i32>().map_err(|_| {
                format!(
                    "** (ArgumentError) {what} must be a whole number of unix seconds, got {s:?}"
                )
            })
        };
        Ok(TodoChunk {
            currency_pair: args[0].to_string(),
            from_unix_ts: int("FROM", args[1])?,
            until_unix_ts: int("UNTIL", args[2])?,
            task_dbid: match args.get(3) {
                Some(s) => s.parse().map_err(|_| {
                    format!("** (ArgumentError) TASK_ID must be a whole number, got {s:?}")
                })?,
                None => 0,
            },
        })
    };
    let worker_id = |usage: &str| -> Result<usize, String> {
        arity(1, usage)?;
        args[0].parse().map_err(|_| {
            format!(
                "** (ArgumentError) N must be a worker number, got {:?}",
                args[0]
            )
        })
    };
    match name {
        "Queue.add_to_queue" => Ok(Command::AddToQueue(chunk(
            "Queue.add_to_queue PAIR FROM UNTIL [TASK_ID]",
        )?)),
        "Queue.get_first_element" => {
            arity(0, "Queue.get_first_element").map(|_| Command::GetFirstElement)
        }
        "Queue.length" => arity(0, "Queue.length").map(|_| Command::QueueLength),
        "WorkerManager.add_task" => Ok(Command::AddTask(chunk(
            "WorkerManager.add_task PAIR FROM UNTIL [TASK_ID]",
        )?)),
        "WorkerManager.workers" => arity(0, "WorkerManager.workers").map(|_| Command::Workers),
        "RateLimiter.register" => arity(0, "RateLimiter.register").map(|_| Command::Register),
        "RateLimiter.set_rate" => {
            arity(1, "RateLimiter.set_rate N | :infinity")?;
            match args[0] {
                ":infinity" | "infinity" => Ok(Command::SetRate(Rate::Unlimited)),
                s => match s.parse::<f64>() {
                    Ok(r) if r.is_finite() && r > 0.0 => Ok(Command::SetRate(Rate::PerSecond(r))),
                    _ => Err(format!("** (ArgumentError) rate must be a positive number of calls per second or :infinity, got {s:?}")),
                },
            }
        }
        "RateLimiter.status" => arity(0, "RateLimiter.status").map(|_| Command::LimiterStatus),
        "Registry.workers" => arity(0, "Registry.workers").map(|_| Command::RegistryWorkers),
        "Registry.whereis" => Ok(Command::Whereis(worker_id("Registry.whereis N")?)),
        "Supervisor.kill" => Ok(Command::Kill(worker_id("Supervisor.kill N")?)),
        "help" | "h" | "h()" => Ok(Command::Help),
        "exit" | "quit" | ":q" => Ok(Command::Exit),
        other => Err(format!(
            "** (UndefinedFunctionError) {other} is undefined; type help for the commands"
        )),
    }
}

/// `%TodoChunk{…}`.
pub fn show_chunk(c: &TodoChunk) -> String {
    format!(
        "%TodoChunk{{currency_pair: {:?}, from_unix_ts: {}, until_unix_ts: {}, task_dbid: {}}}",
        c.currency_pair, c.from_unix_ts, c.until_unix_ts, c.task_dbid
    )
}

/// `%ClonedChunk{…}` with the entries summarised (count and trade id range).
pub fn show_result(r: &ClonedChunk) -> String {
    let original = r
        .original_todo_chunk
        .as_ref()
        .map(show_chunk)
        .unwrap_or_else(|| "nil".into());
    let entries = match (r.entries.first(), r.entries.last()) {
        (Some(first), Some(last)) => {
            format!(
                "[{} entries, trade_id {}..{}]",
                r.entries.len(),
                first.trade_id,
                last.trade_id
            )
        }
        _ => "[]".to_string(),
    };
    format!(
        "%ClonedChunk{{chunk_result: :{}, original_todo_chunk: {original}, entries: {entries}, possible_error_message: {:?}}}",
        result_name(r),
        r.possible_error_message
    )
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
            format!(
                "%{{rate: {:?}, burst: {}, waiting: {}, granted: {}}}",
                s.rate.to_string(),
                s.burst,
                s.waiting,
                s.granted
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(pair: &str, from: i32, until: i32, id: i32) -> TodoChunk {
        TodoChunk {
            currency_pair: pair.into(),
            from_unix_ts: from,
            until_unix_ts: until,
            task_dbid: id,
        }
    }

    #[test]
    fn parses_plain_and_iex_syntax_alike() {
        let want = Command::AddTask(chunk("BTC_ETH", 10, 20, 0));
        assert_eq!(
            parse("WorkerManager.add_task BTC_ETH 10 20"),
            Ok(want.clone())
        );
        assert_eq!(
            parse(r#"WorkerManager.add_task("BTC_ETH", 10, 20)"#),
            Ok(want)
        );
        assert_eq!(
            parse("Queue.add_to_queue USDT_BTC 1 2 7"),
            Ok(Command::AddToQueue(chunk("USDT_BTC", 1, 2, 7)))
        );
        assert_eq!(
            parse("RateLimiter.set_rate 2.5"),
            Ok(Command::SetRate(Rate::PerSecond(2.5)))
        );
        assert_eq!(
            parse("RateLimiter.set_rate(:infinity)"),
            Ok(Command::SetRate(Rate::Unlimited))
        );
        assert_eq!(parse("Supervisor.kill 2"), Ok(Command::Kill(2)));
        assert_eq!(parse("   "), Ok(Command::Nothing));
    }

    #[test]
    fn bad_input_gets_one_line_that_says_what_to_do() {
        for line in [
            "WorkerManager.add_task BTC_ETH ten 20",
            "WorkerManager.add_task BTC_ETH",
            "RateLimiter.set_rate 0",
            "RateLimiter.set_rate -3",
            "Queue.get_first_element now",
            "Supervisor.kill two",
            "Foo.bar",
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.starts_with("** ("), "{line}: {err}");
            assert!(!err.contains('\n'), "{line}: {err}");
        }
        assert!(parse("Foo.bar").unwrap_err().contains("help"));
    }

    #[test]
    fn results_print_like_elixir_structs() {
        let r = crate::domain::chunk::error_result(
            &chunk("BTC_ETH", 1, 2, 3),
            "Invalid currency pair.",
        );
        assert_eq!(
            show_result(&r),
            "%ClonedChunk{chunk_result: :RANDOM_ERROR, original_todo_chunk: %TodoChunk{currency_pair: \"BTC_ETH\", \
             from_unix_ts: 1, until_unix_ts: 2, task_dbid: 3}, entries: [], possible_error_message: \"Invalid currency pair.\"}"
        );
    }
}

//! The console's commands: the original's operations by their original names, one per line,
//! and [`parse`], which turns a line into a [`Command`] or the one-line error to print.
//!
//! Pure: parsing must never touch the actor tree.

use crate::proto::TodoChunk;
use crate::task::rate_limiter::Rate;

pub const HELP: &str = "\
Queue.add_to_queue PAIR FROM UNTIL [TASK_ID]   queue a TodoChunk; its result prints when ready
Queue.get_first_element                        take the oldest queued TodoChunk (nil if none)
Queue.length                                   chunks waiting in the queue
WorkerManager.add_task PAIR FROM UNTIL [TASK_ID]  clone a chunk and print its ClonedChunk
WorkerManager.workers                          each worker: free or busy with which chunk
RateLimiter.register                           wait for permission for one call
RateLimiter.set_rate N | :infinity             calls per second from the next grant on
RateLimiter.status                             rate, current rate, waiting callers, grants, pauses
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
            s.parse::<i64>().map_err(|_| {
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
            ..TodoChunk::default()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(pair: &str, from: i64, until: i64, id: i32) -> TodoChunk {
        TodoChunk {
            currency_pair: pair.into(),
            from_unix_ts: from,
            until_unix_ts: until,
            task_dbid: id,
            ..Default::default()
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
}

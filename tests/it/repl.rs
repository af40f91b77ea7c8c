//! The console driven the way a user pipes a script into it: the real binary, its in-process
//! simulator on a loopback port, stdin closed at the end of the script.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use cloner_worker::dev::simulator::{market, SimulatorConfig};

use crate::helpers::process::{cloner_worker, output_within, run};

/// 2018-10-22 00:00:00 UTC and the end of that hour.
const FROM: i64 = 1_540_166_400;
const UNTIL: i64 = FROM + 3599;

/// Runs `cloner-worker repl --simulator` on `script`; returns (exit success, stdout, stderr).
fn run_console(script: &str) -> (bool, String, String) {
    let mut child = cloner_worker()
        .args(["repl", "--simulator"])
        .env("CLONER__N_WORKERS", "2")
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = output_within(child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the console did not finish the script within 60 s"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[test]
fn a_piped_script_runs_every_command_and_survives_bad_input() {
    let script = format!(
        "help\n\
         Queue.add_to_queue BTC_ETH {FROM} {UNTIL} 7\n\
         WorkerManager.add_task(\"BTC_ETH\", {FROM}, {UNTIL}, 8)\n\
         WorkerManager.add_task BTC_NOPE {FROM} {UNTIL} 9\n\
         WorkerManager.add_task btc-eth {FROM} {UNTIL} 10\n\
         WorkerManager.add_task BTC_ETH ten {UNTIL}\n\
         Foo.bar\n\
         RateLimiter.set_rate 0\n\
         RateLimiter.set_rate 100\n\
         RateLimiter.register\n\
         RateLimiter.status\n\
         Registry.whereis 1\n\
         Registry.whereis 99\n\
         Supervisor.kill 99\n\
         WorkerManager.workers\n\
         Queue.get_first_element\n\
         Queue.length\n"
    );
    let (ok, out, err) = run_console(&script);
    assert!(ok, "exit status; stderr:\n{err}");
    let trades = market::count_in_window(&SimulatorConfig::default(), "BTC_ETH", FROM, UNTIL);
    assert!(
        trades > 0 && trades < 1000,
        "the window is a COMPLETE one: {trades}"
    );

    let lines: Vec<&str> = out.lines().collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    let complete = |id: i32| {
        format!(
            "chunk_result: :COMPLETE, original_todo_chunk: %TodoChunk{{currency_pair: \"BTC_ETH\", from_unix_ts: {FROM}, \
             until_unix_ts: {UNTIL}, task_dbid: {id}}}, entries: [{trades} entries"
        )
    };
    assert!(
        has("Queue.add_to_queue PAIR FROM UNTIL"),
        "help is printed:\n{out}"
    );
    assert!(has(":ok"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("%ClonedChunk{") && l.contains(&complete(8))),
        "add_task answer:\n{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("{:result, %ClonedChunk{") && l.contains(&complete(7))),
        "queued result:\n{out}"
    );
    assert!(
        has(":RANDOM_ERROR") && has("Invalid currency pair"),
        "unknown pair:\n{out}"
    );
    assert!(
        has("invalid chunk: invalid currency pair \\\"btc-eth\\\""),
        "malformed pair:\n{out}"
    );
    assert!(
        has("** (ArgumentError) FROM must be a whole number"),
        "{out}"
    );
    assert!(
        has("** (UndefinedFunctionError) Foo.bar is undefined"),
        "{out}"
    );
    assert!(
        has("** (ArgumentError) rate must be a positive number"),
        "{out}"
    );
    assert!(has("{:ok, waited_ms:"), "{out}");
    assert!(
        has("%{rate: \"100/s\", current: 100.00, waiting: 0, granted:"),
        "{out}"
    );
    assert!(has("#Worker<1>") && has("nil"), "{out}");
    assert!(has("{:error, :no_such_worker}"), "{out}");
    assert!(has("[{1, :free}, {2, :free}]"), "{out}");
    assert!(lines.contains(&"0"), "queue length:\n{out}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn killing_a_worker_from_the_console_brings_it_back() {
    let (ok, out, err) = run_console(&format!(
        "Supervisor.kill 1\nWorkerManager.add_task BTC_XMR {FROM} {UNTIL}\nRegistry.workers\nexit\nhelp\n"
    ));
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l == "true"), "{out}");
    assert!(out.contains("chunk_result: :COMPLETE"), "{out}");
    assert!(out.contains("{1, :up, restarts: 1}"), "{out}");
    assert!(
        !out.contains("Queue.add_to_queue PAIR"),
        "nothing runs after exit:\n{out}"
    );
}

#[test]
fn a_bad_setting_stops_the_console_with_the_key_at_fault() {
    let mut command = cloner_worker();
    command
        .args(["repl", "--upstream", "ftp://example"])
        .env("CLONER__N_WORKERS", "0")
        .stdin(Stdio::null());
    let (ok, _, err) = run(command);
    assert!(!ok);
    assert!(
        err.contains("configuration key `n_workers`: must be between 1 and 1024, got 0"),
        "{err}"
    );

    let mut command = cloner_worker();
    command
        .args(["repl", "--upstream", "ftp://example"])
        .stdin(Stdio::null());
    let (ok, _, err) = run(command);
    assert!(!ok);
    assert!(
        err.contains("upstream.base_url") && err.contains("http://"),
        "{err}"
    );
}

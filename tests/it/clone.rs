//! `cloner-worker clone` end to end: the broker `scripts/kafka-up` started, the service as a
//! child process (or in the clone's own process with `--with-workers`), the exchange simulator
//! on this process's loopback, and `clone` itself as a child process.
//!
//! What is proved: a clone of a busy day through the service equals the simulator's ground
//! truth trade for trade, in time order, with windows split; a window that fails for good is
//! named and the clone exits non-zero without calling its output complete; results delivered
//! twice (the service killed and restarted mid-run) still give a duplicate-free file; JSON
//! Lines on stdout with the service in-process; bad arguments are refused with what to do.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cloner_worker::clone::requester::TopicReader;
use cloner_worker::config::Settings;
use cloner_worker::dev::simulator::{market, SimulatorConfig, SimulatorHandle};
use cloner_worker::domain::utc::format_utc;

use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A temporary directory of this test's own.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("clone-{test}")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The simulator's trades of `pair` in `[from, until)` as CSV lines, header first: what a
/// complete clone must write, byte for byte.
fn ground_truth_csv(sim: &SimulatorConfig, pair: &str, from: i64, until: i64) -> Vec<String> {
    let mut lines = vec!["tradeID,date,type,rate,amount,total".to_string()];
    for t in market::trades_in_window(sim, pair, from, until - 1) {
        lines.push(format!(
            "{},{},{},{},{},{}",
            t.trade_id,
            format_utc(t.date),
            if t.buy { "buy" } else { "sell" },
            t.rate,
            t.amount,
            t.total
        ));
    }
    lines
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// The number before `label` in the clone's summary, e.g. `23 splits`.
/// The summary of a clone that waited for a service behind: complete, nothing given up,
/// nothing published again.
fn waited_for(output: &Output) -> String {
    let summary = stderr(output);
    assert!(output.status.success(), "clone failed:\n{summary}");
    assert!(!summary.contains("FAILED"), "{summary}");
    assert_eq!(summary_count(&summary, " republished"), 0, "{summary}");
    summary
}

fn summary_count(summary: &str, label: &str) -> u64 {
    summary
        .split(label)
        .next()
        .and_then(|before| before.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of {label:?} in:\n{summary}"))
}

/// Compares line by line, so a failure shows the first difference, not two huge vectors.
fn assert_same_lines(got: &[String], expected: &[String]) {
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g, e, "line {} differs", i + 1);
    }
    assert_eq!(got.len(), expected.len(), "line count");
}

async fn service_on(sim: &SimulatorHandle, test: &str, rate: Option<f64>) -> Settings {
    let base = match rate {
        Some(rate) => settings(sim, 4, rate),
        None => unlimited_settings(sim, 4),
    };
    kafka_settings(base, test).await
}

const HOUR: i64 = 3600;

/// Clones `days` of USDT_BTC from 2018-10-22 through a service on `settings` (to `test`'s
/// topics); checks the file against the ground truth; the clone's summary and the calls it took.
async fn clone_busy_days(
    sim: &SimulatorHandle,
    settings: &Settings,
    test: &str,
    days: i64,
) -> (String, u64) {
    sim.reset_stats();
    let mut service = ServiceProcess::start(settings);
    let dir = temp_dir(test);
    let out = dir.join("days.csv");
    let until = DAY + days * 24 * HOUR;
    let output = run_clone(
        settings,
        &[
            "USDT_BTC",
            "--from",
            &DAY.to_string(),
            "--until",
            &until.to_string(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let summary = stderr(&output);
    assert!(output.status.success(), "clone failed:\n{summary}");
    let expected = ground_truth_csv(sim.config(), "USDT_BTC", DAY, until);
    assert!(
        expected.len() > 20_000,
        "busy days: {} trades",
        expected.len()
    );
    assert_same_lines(&read_lines(&out), &expected);
    assert!(summary.contains("no gaps"), "{summary}");
    assert!(
        !dir.join("days.csv.partial").exists(),
        "the partial file became the output"
    );
    // Every upstream call was one answer the clone received.
    let calls = sim.stats().calls;
    assert_eq!(
        summary_count(&summary, " answers received"),
        calls,
        "{summary}"
    );
    assert!(service.terminate(TEST_DEADLINE).success());
    std::fs::remove_dir_all(&dir).unwrap();
    (summary, calls)
}

/// The busy day 2018-10-22 through a service with `keep_pages` as given.
async fn clone_busy_day(sim: &SimulatorHandle, test: &str, keep_pages: bool) -> (String, u64) {
    let mut settings = service_on(sim, test, None).await;
    settings.upstream.keep_pages = keep_pages;
    clone_busy_days(sim, &settings, test, 1).await
}

#[actix_rt::test]
async fn a_busy_day_is_exact_with_pages_kept_and_by_halving_from_an_old_style_service() {
    let sim = start_simulator(no_rate_limit()).await;
    let (kept, calls_kept) = clone_busy_day(&sim, "clone-day-kept", true).await;
    assert!(
        summary_count(&kept, " pages kept") > 0,
        "a busy pair's hours are too big for one call:\n{kept}"
    );
    assert_eq!(summary_count(&kept, " splits"), 0, "{kept}");
    // A service that sends no pages (as the original worker): the clone halves, and the file
    // is the same.
    let (halved, calls_halved) = clone_busy_day(&sim, "clone-day-halved", false).await;
    assert_eq!(summary_count(&halved, " pages kept"), 0, "{halved}");
    assert!(summary_count(&halved, " splits") > 0, "{halved}");
    eprintln!("a busy day: {calls_kept} calls keeping pages, {calls_halved} halving");
    assert!(
        calls_kept < calls_halved,
        "keeping pages takes fewer calls: {calls_kept} against {calls_halved}"
    );
}

#[actix_rt::test]
async fn planned_windows_take_close_to_one_call_per_page_of_trades() {
    let sim = start_simulator(no_rate_limit()).await;
    let mut settings = service_on(&sim, "clone-planned", None).await;
    // The windows are the clone's to plan: sized from the trades seen.
    settings.clone.window_secs = None;
    let (summary, calls) = clone_busy_days(&sim, &settings, "clone-planned", 7).await;
    let trades = summary_count(&summary, " trades (tradeIDs") as f64;
    let per_page = calls as f64 * 1000.0 / trades;
    eprintln!("{trades} trades in {calls} calls: {per_page:.3} per 1 000");
    // One call per full page, but for the last, partial page of each window and the first
    // windows planned before any density was known.
    assert!(
        per_page < 1.06,
        "{per_page:.3} calls per 1 000 trades:\n{summary}"
    );
    assert_eq!(summary_count(&summary, " splits"), 0, "{summary}");
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Kill points drawn per run; `CLONE_KILL_SEED` replays a run's draws.
fn kill_seed() -> u64 {
    std::env::var("CLONE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

#[actix_rt::test]
async fn a_clone_killed_at_random_points_continues_to_the_same_file_with_few_more_calls() {
    let sim = start_simulator(no_rate_limit()).await;
    // 100 calls a second: two weeks of the busy pair take a few seconds, time to kill them.
    let mut settings = service_on(&sim, "clone-resume", Some(100.0)).await;
    settings.clone.window_secs = None;
    let mut service = ServiceProcess::start_assigned(&settings);
    let dir = temp_dir("resume");
    let until = (DAY + 14 * 24 * HOUR).to_string();
    let args = |out: &Path| {
        [
            "USDT_BTC",
            "--from",
            &DAY.to_string(),
            "--until",
            &until,
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
    };

    // An uninterrupted run: the file and the calls to compare with.
    let whole = dir.join("whole.csv");
    let uninterrupted = run_clone(&settings, &as_strs(&args(&whole)), &[]).await;
    assert!(uninterrupted.status.success(), "{}", stderr(&uninterrupted));
    let expected = ground_truth_csv(sim.config(), "USDT_BTC", DAY, DAY + 14 * 24 * HOUR);
    assert_same_lines(&read_lines(&whole), &expected);
    let whole_bytes = std::fs::read(&whole).unwrap();
    let calls_whole = sim.stats().calls;

    let seed = kill_seed();
    eprintln!("kill points drawn with CLONE_KILL_SEED={seed}");
    let mut draw = fastrand::Rng::with_seed(seed);
    for trial in 0..3 {
        sim.reset_stats();
        let out = dir.join(format!("killed-{trial}.csv"));
        let args = args(&out);
        // Killed once the exchange has served a random number of its calls: in the middle of
        // an answer, a write, a checkpoint or a wait, whichever it is at.
        let kill_after = draw.u64(1..calls_whole * 9 / 10);
        let mut first = spawn_clone(&settings, &as_strs(&args), &[]);
        let served = async {
            while sim.stats().calls < kill_after {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::time::timeout(TEST_DEADLINE, served)
            .await
            .expect("the calls before the kill");
        first.kill().await.unwrap();
        let calls_first = sim.stats().calls;
        assert!(dir.join(format!("killed-{trial}.csv.partial")).exists() && !out.exists());

        if trial == 0 {
            // Another range against this partial output: refused, saying what differs.
            let other = run_clone(
                &settings,
                &[
                    "USDT_BTC",
                    "--from",
                    &DAY.to_string(),
                    "--until",
                    &(DAY + HOUR).to_string(),
                    "--out",
                    out.to_str().unwrap(),
                ],
                &[],
            )
            .await;
            let refusal = stderr(&other);
            assert!(!other.status.success());
            assert!(
                refusal.contains("is the partial output of another clone"),
                "{refusal}"
            );
        }

        // The same command again: continues, and the file is the uninterrupted run's, byte
        // for byte, for at most 5 % more calls in both runs together.
        let second = run_clone(&settings, &as_strs(&args), &[]).await;
        let summary = stderr(&second);
        assert!(second.status.success(), "{summary}");
        assert!(summary.contains("continuing"), "{summary}");
        assert!(
            std::fs::read(&out).unwrap() == whole_bytes,
            "trial {trial}: the file differs from the uninterrupted run's"
        );
        for leftover in ["journal", "spill"] {
            let path = dir.join(format!("killed-{trial}.csv.{leftover}"));
            assert!(
                !path.exists(),
                "{} goes with the partial file",
                path.display()
            );
        }
        let calls = sim.stats().calls;
        eprintln!(
            "trial {trial}: killed after {calls_first} calls (drawn {kill_after}); {calls} in both runs, {calls_whole} uninterrupted ({:.3}×)",
            calls as f64 / calls_whole as f64
        );
        assert!(
            calls as f64 <= 1.05 * calls_whole as f64,
            "trial {trial} (CLONE_KILL_SEED={seed}): {calls} calls in both runs, {calls_whole} uninterrupted"
        );
    }
    assert!(service.terminate(TEST_DEADLINE).success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix_rt::test]
async fn a_window_that_always_fails_is_named_and_the_clone_exits_non_zero() {
    // Every window holding 02:30:00 fails with an API error; the hour 02:00 is that window.
    let sim = start_simulator(SimulatorConfig {
        fail_seconds: vec![(DAY + 2 * HOUR + 1800)],
        ..no_rate_limit()
    })
    .await;
    let settings = service_on(&sim, "clone-fail", None).await;
    let _service = ServiceProcess::start(&settings);
    let dir = temp_dir("fail");
    let out = dir.join("four-hours.csv");
    let until = (DAY + 4 * HOUR).to_string();
    let output = run_clone(
        &settings,
        &[
            "BTC_ETH",
            "--from",
            &DAY.to_string(),
            "--until",
            &until,
            "--out",
            out.to_str().unwrap(),
        ],
        &[("CLONER__CLONE__MAX_ERROR_RETRIES", "2")],
    )
    .await;
    let summary = stderr(&output);
    assert!(
        !output.status.success(),
        "an incomplete clone must fail:\n{summary}"
    );
    let window = "2018-10-22 02:00:00..=2018-10-22 02:59:59 UTC [1540173600, 1540177199]";
    assert!(
        summary.contains(&format!("FAILED {window}: RANDOM_ERROR after 3 tries")),
        "the failed window is named with why:\n{summary}"
    );
    assert!(
        summary.contains("the clone is incomplete: 1 windows could not be cloned"),
        "{summary}"
    );
    assert_eq!(sim.stats().failed_windows, 3, "asked once and again twice");
    assert!(
        !out.exists(),
        "an incomplete clone never takes the output's name"
    );
    // The rest is kept, with the hole reported.
    let partial = read_lines(&dir.join("four-hours.csv.partial"));
    let before = ground_truth_csv(sim.config(), "BTC_ETH", DAY, DAY + 2 * HOUR);
    let after = ground_truth_csv(sim.config(), "BTC_ETH", DAY + 3 * HOUR, DAY + 4 * HOUR);
    let expected: Vec<String> = before
        .into_iter()
        .chain(after.into_iter().skip(1))
        .collect();
    assert_same_lines(&partial, &expected);
    assert!(summary.contains("missing tradeIDs in 1 gaps"), "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix_rt::test]
async fn results_delivered_twice_still_give_a_duplicate_free_file() {
    let sim = start_simulator(no_rate_limit()).await;
    // Slow enough (20 calls/s) that the service can be killed mid-run.
    let settings = service_on(&sim, "clone-twice", Some(20.0)).await;
    // Nothing is committed before the kill, so the restarted service answers again every chunk
    // the first one answered.
    let no_commit = [("CLONER__KAFKA__CONSUMER__AUTO_COMMIT_INTERVAL_MS", "600000")];
    let mut first = ServiceProcess::start_with_env(&settings, &no_commit);
    let reader = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let dir = temp_dir("twice");
    let out = dir.join("day.jsonl");
    let clone_settings = settings.clone();
    let out_arg = out.to_str().unwrap().to_string();
    let run = actix_rt::spawn(async move {
        let args = [
            "USDT_BTC",
            "--from",
            "2018-10-22",
            "--until",
            "2018-10-23",
            "--out",
            &out_arg,
        ];
        run_clone(&clone_settings, &args, &[]).await
    });
    reader
        .take(10, TEST_DEADLINE)
        .await
        .expect("the first service answers");
    first.kill();
    let _second = ServiceProcess::start(&settings);
    let output = run.await.unwrap();
    let summary = stderr(&output);
    eprintln!("{summary}");
    assert!(output.status.success(), "clone failed:\n{summary}");
    let strays = summary_count(&summary, " results were not ours or came twice");
    assert!(
        strays >= 1,
        "the chunks answered before the kill were answered again:\n{summary}"
    );
    // Each trade once, in order, exactly the ground truth.
    let expected = market::trades_in_window(sim.config(), "USDT_BTC", DAY, (DAY + 24 * HOUR) - 1);
    let lines = read_lines(&out);
    assert_eq!(lines.len(), expected.len(), "one line per trade");
    for (line, trade) in lines.iter().zip(&expected) {
        let got: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(got["tradeID"], trade.trade_id, "{line}");
        assert_eq!(got["rate"], trade.rate.as_str(), "{line}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix_rt::test]
async fn with_workers_the_service_runs_in_process_and_json_lines_go_to_stdout() {
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_on(&sim, "clone-inproc", None).await;
    let until = (DAY + 3 * HOUR).to_string();
    let output = run_clone(
        &settings,
        &[
            "BTC_ETH",
            "--from",
            &DAY.to_string(),
            "--until",
            &until,
            "--format",
            "jsonl",
            "--with-workers",
            "2",
        ],
        &[],
    )
    .await;
    let summary = stderr(&output);
    assert!(output.status.success(), "clone failed:\n{summary}");
    let expected = market::trades_in_window(sim.config(), "BTC_ETH", DAY, (DAY + 3 * HOUR) - 1);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{summary}");
    for (line, trade) in lines.iter().zip(&expected) {
        let got: serde_json::Value = serde_json::from_str(line).unwrap();
        let want = serde_json::json!({
            "tradeID": trade.trade_id,
            "date": format_utc(trade.date),
            "type": if trade.buy { "buy" } else { "sell" },
            "rate": trade.rate,
            "amount": trade.amount,
            "total": trade.total,
        });
        assert_eq!(got, want);
    }
    assert!(summary.contains("written to stdout"), "{summary}");
}

#[test]
fn bad_arguments_say_what_to_do() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["USDT_BTC", "--from", "2018-10-23", "--until", "2018-10-22"],
            "must be after --from",
        ),
        (
            &["USDT_BTC", "--from", "yesterday", "--until", "2018-10-22"],
            "is not a time",
        ),
        (
            &["USDT/BTC", "--from", "2018-10-22", "--until", "2018-10-23"],
            "the pair",
        ),
        (
            &[
                "USDT_BTC",
                "--from",
                "2018-10-22",
                "--until",
                "2018-10-23",
                "--out",
                "x.txt",
            ],
            "--out x.txt: use a .csv, .jsonl or .parquet file name, or --format csv|jsonl|parquet",
        ),
        (
            &[
                "USDT_BTC",
                "--from",
                "2018-10-22",
                "--until",
                "2018-10-23",
                "--window",
                "0",
            ],
            "clone.window_secs",
        ),
    ];
    for (args, expected) in cases {
        let mut command = cloner_worker();
        command
            .arg("clone")
            .args(args)
            // No broker: these must fail before one is needed.
            .env("CLONER__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1");
        let (ok, _, stderr) = run(command);
        assert!(!ok, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[actix_rt::test]
async fn a_service_ten_times_slower_than_expected_is_waited_for_not_flooded() {
    // The service makes 5 calls a second; the clone expects 50, and waits 1 s more than the
    // requests ahead of one need at that rate: most requests pass their patience. While others
    // are answered the service is alive, so nothing is published again and nothing given up.
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_on(&sim, "clone-slow", Some(5.0)).await;
    let mut service = ServiceProcess::start_assigned(&settings);
    let until = (DAY + 24 * HOUR).to_string();
    let output = run_clone(
        &settings,
        &["BTC_ETH", "--from", &DAY.to_string(), "--until", &until],
        &[
            ("CLONER__DEFAULT_RATE", "50"),
            ("CLONER__CLONE__ANSWER_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let summary = waited_for(&output);
    // One call per window: nothing was asked twice.
    assert_eq!(sim.stats().calls, 24, "{summary}");
    assert!(service.terminate(TEST_DEADLINE).success());
}

#[actix_rt::test]
async fn a_service_behind_another_clients_backlog_is_waited_for_while_its_group_commits() {
    // Another client published 200 requests first; at 20 calls a second the service is busy
    // with them for about 10 s, answering none of this clone's. With a 1 s answer timeout and
    // one republication allowed, only the group's committed offsets show it is alive: the
    // clone must wait on them, not publish again nor give up.
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_on(&sim, "clone-backlog", Some(20.0)).await;
    let backlog = hourly_chunks("BTC_XMR", DAY - 200 * HOUR, 200, 1);
    publish(&settings, &backlog).await;
    let mut service = ServiceProcess::start_assigned(&settings);
    let until = (DAY + 2 * HOUR).to_string();
    let output = run_clone(
        &settings,
        &["BTC_ETH", "--from", &DAY.to_string(), "--until", &until],
        &[
            ("CLONER__CLONE__ANSWER_TIMEOUT_MS", "1000"),
            ("CLONER__CLONE__MAX_REPUBLISH", "1"),
        ],
    )
    .await;
    let summary = waited_for(&output);
    assert!(
        sim.stats().calls >= 200,
        "the clone finished behind the backlog: {summary}"
    );
    assert!(service.terminate(TEST_DEADLINE).success());
}

#[actix_rt::test]
async fn an_unanswered_request_is_published_again_until_a_service_answers() {
    use tokio::io::AsyncBufReadExt as _;
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_on(&sim, "clone-republish", None).await;
    let until = (DAY + 2 * HOUR).to_string();
    // No service yet: the requests wait, unanswered, and are published again each second.
    let mut child = spawn_clone(
        &settings,
        &[
            "BTC_ETH",
            "--from",
            &DAY.to_string(),
            "--until",
            &until,
            "--format",
            "jsonl",
        ],
        &[
            ("CLONER__CLONE__ANSWER_TIMEOUT_MS", "1000"),
            ("CLONER__CLONE__MAX_REPUBLISH", "1000"),
        ],
    );
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    // Both windows published again before a service exists.
    let republished = async {
        let mut again = std::collections::BTreeSet::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push(line.clone());
            if line.contains("publishing it again") {
                // `[time LEVEL target] WINDOW: no answer …`: the window, without the time.
                let window = line.split("] ").nth(1).unwrap().split(": no answer").next();
                again.insert(window.unwrap().to_string());
                if again.len() == 2 {
                    return;
                }
            }
        }
        panic!("clone ended without publishing again:\n{}", log.join("\n"));
    };
    tokio::time::timeout(TEST_DEADLINE, republished)
        .await
        .expect("a request is published again");
    let _service = ServiceProcess::start(&settings);
    let mut stdout = String::new();
    let rest = async {
        tokio::io::AsyncReadExt::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout)
            .await
            .unwrap();
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push(line);
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(TEST_DEADLINE, rest).await.unwrap();
    let summary = log.join("\n");
    assert!(status.success(), "{summary}");
    let expected = market::trades_in_window(sim.config(), "BTC_ETH", DAY, (DAY + 2 * HOUR) - 1);
    assert_eq!(stdout.lines().count(), expected.len(), "{summary}");
    // Both windows went out at least twice; the service answers every copy, and the clone
    // takes one answer each (the output above has each trade once).
    assert!(summary_count(&summary, " republished") >= 2, "{summary}");
}

#[actix_rt::test]
async fn with_nobody_answering_the_windows_are_given_up_and_named() {
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_on(&sim, "clone-nobody", None).await;
    let until = (DAY + 2 * HOUR).to_string();
    let output = run_clone(
        &settings,
        &["BTC_ETH", "--from", &DAY.to_string(), "--until", &until],
        &[
            ("CLONER__CLONE__ANSWER_TIMEOUT_MS", "200"),
            ("CLONER__CLONE__MAX_REPUBLISH", "1"),
        ],
    )
    .await;
    let summary = stderr(&output);
    assert!(!output.status.success(), "{summary}");
    for hour in ["00", "01"] {
        assert!(
            summary.contains(&format!(
                "FAILED 2018-10-22 {hour}:00:00..=2018-10-22 {hour}:59:59 UTC"
            )),
            "{summary}"
        );
    }
    assert!(
        summary.contains(&format!(
            "no answer after 2 publications, none to any other request meanwhile, and the service's group committed nothing; is a service consuming {}?",
            settings.topics.todo
        )),
        "{summary}"
    );
    assert_eq!(sim.stats().calls, 0);
}

#[actix_rt::test]
async fn an_interrupted_clone_keeps_its_partial_output_and_says_what_is_missing() {
    use tokio::io::AsyncBufReadExt as _;
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_on(&sim, "clone-interrupt", None).await;
    let dir = temp_dir("interrupt");
    let out = dir.join("two-hours.csv");
    let until = (DAY + 2 * HOUR).to_string();
    // No service: nothing is answered before the signal.
    let mut child = spawn_clone(
        &settings,
        &[
            "BTC_ETH",
            "--from",
            &DAY.to_string(),
            "--until",
            &until,
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push(line.clone());
            if line.contains("run id") {
                signal(child.id().unwrap(), "INT");
            }
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(TEST_DEADLINE, run).await.unwrap();
    let summary = log.join("\n");
    assert!(!status.success(), "{summary}");
    assert!(
        summary.contains("INTERRUPTED with 2 windows unanswered")
            && summary.contains("the clone is incomplete: interrupted"),
        "{summary}"
    );
    assert!(!out.exists());
    assert_eq!(
        read_lines(&dir.join("two-hours.csv.partial")),
        ["tradeID,date,type,rate,amount,total"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix_rt::test]
async fn windows_are_halved_down_to_one_second_and_a_second_too_big_is_named() {
    // Two trades a page: every window with two or more trades is halved, down to single
    // seconds; a second that holds two trades can never be cloned. Three times the usual
    // trading, so that some seconds do.
    let sim = start_simulator(SimulatorConfig {
        page_limit: 2,
        intensity: 3.0,
        ..no_rate_limit()
    })
    .await;
    let settings = service_on(&sim, "clone-second", None).await;
    let _service =
        ServiceProcess::start_with_env(&settings, &[("CLONER__UPSTREAM__PAGE_LIMIT", "2")]);
    let (from, until) = (DAY, DAY + 600);
    let crowded: Vec<i64> = (from..until)
        .filter(|&s| market::count_in_window(sim.config(), "USDT_BTC", s, s) >= 2)
        .collect();
    assert!(
        !crowded.is_empty(),
        "the test needs a second with two trades"
    );
    let output = run_clone(
        &settings,
        &[
            "USDT_BTC",
            "--from",
            &from.to_string(),
            "--until",
            &until.to_string(),
            "--window",
            "600",
        ],
        &[],
    )
    .await;
    let summary = stderr(&output);
    assert!(!output.status.success(), "{summary}");
    for second in &crowded {
        let at = format_utc(*second);
        assert!(
            summary.contains(&format!(
                "FAILED {at}..={at} UTC [{second}, {second}]: one second holds more trades than one call returns"
            )),
            "second {second} is named:\n{summary}"
        );
    }
    assert_eq!(
        summary.matches("FAILED ").count(),
        crowded.len(),
        "only the crowded seconds fail:\n{summary}"
    );
    // Every other trade is there, in order.
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected: Vec<String> = ground_truth_csv(sim.config(), "USDT_BTC", from, until)
        .into_iter()
        .filter(|line| {
            line.starts_with("tradeID")
                || !crowded
                    .iter()
                    .any(|s| line.split(',').nth(1) == Some(format_utc(*s).as_str()))
        })
        .collect();
    assert_same_lines(
        &stdout.lines().map(str::to_string).collect::<Vec<_>>(),
        &expected,
    );
}

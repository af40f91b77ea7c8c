//! The actor tree end to end against the exchange simulator on loopback: `add_task` answers,
//! rate-limit compliance, upstream faults, task panics, dead workers and deadlines.

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::join_all;

use cloner_worker::dev::simulator::{market, SimulatorConfig};
use cloner_worker::pool::app::{App, Hooks};
use cloner_worker::pool::manager::{AddTask, GetManagerStatus, WorkerState};
use cloner_worker::pool::registry::AwaitWorkersUp;
use cloner_worker::pool::supervisor::KillWorker;
use cloner_worker::pool::worker::InjectedFault;
use cloner_worker::proto::{cloned_chunk, ClonedChunk, TodoChunk};

use crate::helpers::*;

async fn add_task(app: &App, chunk: TodoChunk) -> ClonedChunk {
    app.manager
        .send(AddTask(chunk))
        .await
        .expect("manager running")
        .expect("answered")
}

/// Runs `chunks` concurrently through `add_task`, bounded by the test deadline.
async fn add_all(app: &App, chunks: Vec<TodoChunk>) -> Vec<ClonedChunk> {
    let answers = join_all(chunks.into_iter().map(|c| add_task(app, c)));
    actix_rt::time::timeout(TEST_DEADLINE, answers)
        .await
        .expect("every chunk answered in time")
}

/// Every answer is COMPLETE and equals the simulator's trades.
fn assert_all_complete(sim: &SimulatorConfig, answers: &[ClonedChunk]) {
    for answer in answers {
        assert_eq!(
            kind(answer),
            cloned_chunk::Result::Complete,
            "{}",
            answer.possible_error_message
        );
        assert_matches_ground_truth(sim, answer);
    }
}

/// Hooks that inject `fault` by chunk and attempt.
fn fault_on(fault: impl Fn(&TodoChunk, u32) -> Option<InjectedFault> + 'static) -> Hooks {
    Hooks {
        fault: Some(Rc::new(fault)),
    }
}

fn kind(answer: &ClonedChunk) -> cloned_chunk::Result {
    cloned_chunk::Result::try_from(answer.chunk_result).unwrap()
}

#[actix_rt::test]
async fn two_hundred_chunks_at_fifty_per_second_match_the_simulator_without_violations() {
    // The simulator's limit has 10 % headroom over the limiter's rate: grants are exact (see the
    // limiter's unit tests) but loopback delivery jitters by a few ms, which a limit of exactly
    // 50 would count against us.
    let sim_config = SimulatorConfig {
        rate_limit: 55,
        ..SimulatorConfig::default()
    };
    let sim = start_simulator(sim_config.clone()).await;
    let app = App::start(&settings(&sim, 8, 50.0), Hooks::default());

    // A busy pair whose hours straddle the page limit, and a calm one.
    let mut chunks = hourly_chunks("USDT_BTC", DAY, 120, 0);
    chunks.extend(hourly_chunks("BTC_ETH", DAY, 80, 1000));
    let expected: Vec<_> = chunks
        .iter()
        .map(|c| expected_result(&sim_config, c))
        .collect();
    assert!(
        expected.contains(&cloned_chunk::Result::WindowTooBig),
        "the test covers windows over the page limit"
    );
    assert!(expected.contains(&cloned_chunk::Result::Complete));

    let answers = add_all(&app, chunks.clone()).await;
    for ((chunk, answer), want) in chunks.iter().zip(&answers).zip(expected) {
        assert_eq!(
            answer.original_todo_chunk.as_ref(),
            Some(chunk),
            "answer belongs to its chunk"
        );
        assert_eq!(
            kind(answer),
            want,
            "{chunk:?}: {}",
            answer.possible_error_message
        );
        match (
            want,
            answer.covered_from_unix_ts,
            answer.covered_until_unix_ts,
        ) {
            (cloned_chunk::Result::Complete, _, _) => {
                assert_matches_ground_truth(&sim_config, answer)
            }
            // A full page: its covered part, the newest seconds of the window, exactly.
            (cloned_chunk::Result::WindowTooBig, Some(from), Some(until)) => {
                assert_eq!(until, chunk.until_unix_ts);
                let truth =
                    market::trades_in_window(&sim_config, &chunk.currency_pair, from, until);
                let ids: Vec<i64> = answer.entries.iter().map(|e| e.trade_id).collect();
                assert_eq!(ids, truth.iter().map(|t| t.trade_id).collect::<Vec<_>>());
            }
            _ => assert!(answer.entries.is_empty()),
        }
    }
    let stats = sim.stats();
    assert_eq!(stats.violations, 0, "{stats:?}");
    assert_eq!(
        stats.trade_history_calls, 200,
        "one call per chunk: {stats:?}"
    );
}

#[actix_rt::test]
async fn without_the_limiter_the_simulator_counts_violations() {
    // The control for the test above: the violation counter does see a client that floods it.
    let sim = start_simulator(SimulatorConfig {
        rate_limit: 55,
        ..SimulatorConfig::default()
    })
    .await;
    let s = unlimited_settings(&sim, 8);
    let app = App::start(&s, Hooks::default());
    let answers = add_all(&app, hourly_chunks("BTC_ETH", DAY, 200, 0)).await;
    assert_eq!(answers.len(), 200);
    let stats = sim.stats();
    assert!(
        stats.violations > 0 && stats.peak_calls_per_second > 55,
        "{stats:?}"
    );
}

#[actix_rt::test]
async fn five_xx_and_hangs_are_retried_until_every_chunk_is_complete() {
    let sim_config = SimulatorConfig {
        rate_limit: 220,
        error_rate: 0.3,
        hang_rate: 0.03,
        ..SimulatorConfig::default()
    };
    let sim = start_simulator(sim_config.clone()).await;
    let app = App::start(&settings(&sim, 16, 200.0), Hooks::default());
    let chunks = hourly_chunks("BTC_ETH", DAY, 100, 0);
    let answers = add_all(&app, chunks).await;
    assert_all_complete(&sim_config, &answers);
    let stats = sim.stats();
    assert!(
        stats.errors_5xx > 0 && stats.hangs > 0,
        "faults were injected: {stats:?}"
    );
    assert_eq!(
        stats.violations, 0,
        "retries go through the limiter: {stats:?}"
    );
}

#[actix_rt::test]
async fn malformed_and_oversized_bodies_are_retried() {
    let sim_config = SimulatorConfig {
        rate_limit: 0,
        malformed_rate: 0.2,
        oversized_rate: 0.1,
        ..SimulatorConfig::default()
    };
    let sim = start_simulator(sim_config.clone()).await;
    let s = unlimited_settings(&sim, 4);
    let app = App::start(&s, Hooks::default());
    let answers = add_all(&app, hourly_chunks("BTC_ETH", DAY, 40, 0)).await;
    assert_all_complete(&sim_config, &answers);
    let stats = sim.stats();
    assert!(stats.malformed > 0 && stats.oversized > 0, "{stats:?}");
}

#[actix_rt::test]
async fn an_unknown_pair_is_answered_at_once_without_retries() {
    let sim = start_simulator(SimulatorConfig::default()).await;
    let app = App::start(&settings(&sim, 2, 50.0), Hooks::default());
    let chunk = TodoChunk {
        currency_pair: "BTC_NOPE".into(),
        from_unix_ts: DAY,
        until_unix_ts: DAY + 60,
        task_dbid: 1,
        ..Default::default()
    };
    let answer = add_all(&app, vec![chunk]).await.remove(0);
    assert_eq!(kind(&answer), cloned_chunk::Result::RandomError);
    assert!(
        answer
            .possible_error_message
            .contains("Invalid currency pair"),
        "{}",
        answer.possible_error_message
    );
    let stats = sim.stats();
    assert_eq!(
        (stats.calls, stats.invalid_pair),
        (1, 1),
        "a permanent error is not retried: {stats:?}"
    );
}

#[actix_rt::test]
async fn transient_failures_that_outlive_every_retry_are_reported() {
    let sim = start_simulator(SimulatorConfig {
        error_rate: 1.0,
        ..no_rate_limit()
    })
    .await;
    let mut s = unlimited_settings(&sim, 1);
    s.upstream.max_retries = 2;
    let app = App::start(&s, Hooks::default());
    let answer = add_all(&app, hourly_chunks("BTC_ETH", DAY, 1, 0))
        .await
        .remove(0);
    assert_eq!(kind(&answer), cloned_chunk::Result::RandomError);
    let message = &answer.possible_error_message;
    assert!(
        message.starts_with("upstream failed 3 times; last: HTTP 50"),
        "{message}"
    );
    assert_eq!(sim.stats().calls, 3, "one call and two retries");
}

#[actix_rt::test]
async fn a_malformed_chunk_never_reaches_the_upstream() {
    let sim = start_simulator(SimulatorConfig::default()).await;
    let app = App::start(&settings(&sim, 2, 50.0), Hooks::default());
    let bad = [
        TodoChunk {
            currency_pair: "btc-eth&x=1".into(),
            from_unix_ts: DAY,
            until_unix_ts: DAY + 1,
            task_dbid: 1,
            ..Default::default()
        },
        TodoChunk {
            currency_pair: String::new(),
            from_unix_ts: DAY,
            until_unix_ts: DAY + 1,
            task_dbid: 2,
            ..Default::default()
        },
        TodoChunk {
            currency_pair: "BTC_ETH".into(),
            from_unix_ts: DAY + 1,
            until_unix_ts: DAY,
            task_dbid: 3,
            ..Default::default()
        },
    ];
    for answer in add_all(&app, bad.to_vec()).await {
        assert_eq!(kind(&answer), cloned_chunk::Result::RandomError);
        assert!(
            answer.possible_error_message.starts_with("invalid chunk"),
            "{}",
            answer.possible_error_message
        );
    }
    assert_eq!(sim.stats().calls, 0);
}

#[actix_rt::test]
async fn a_panicking_task_is_retried_and_its_worker_restarted() {
    let sim_config = no_rate_limit();
    let sim = start_simulator(sim_config.clone()).await;
    let s = unlimited_settings(&sim, 3);
    // Chunk 13 panics on its first attempt only.
    let hooks = fault_on(|c: &TodoChunk, attempt| {
        (c.task_dbid == 13 && attempt == 0).then_some(InjectedFault::Panic)
    });
    let app = App::start(&s, hooks);
    let answers = add_all(&app, hourly_chunks("BTC_ETH", DAY, 20, 0)).await;
    assert_all_complete(&sim_config, &answers);
    let status = app.manager.send(GetManagerStatus).await.unwrap();
    assert_eq!(status.stats.failed_attempts, 1);
    // The worker that ran chunk 13 stopped and came back: n_workers again, one restart.
    let workers = wait_for_workers(&app, 3).await;
    assert_eq!(
        workers.iter().map(|w| w.restarts).sum::<u32>(),
        1,
        "{workers:?}"
    );
}

#[actix_rt::test]
async fn many_panics_cost_exactly_one_attempt_each() {
    // A third of the chunks panic on their first attempt while the queue is full of work: a
    // worker on its way down must get no new job, and a restarted one must not run stale ones.
    let sim_config = no_rate_limit();
    let sim = start_simulator(sim_config.clone()).await;
    let s = unlimited_settings(&sim, 3);
    let hooks = fault_on(|c: &TodoChunk, attempt| {
        (c.task_dbid % 3 == 0 && attempt == 0).then_some(InjectedFault::Panic)
    });
    let app = App::start(&s, hooks);
    let answers = add_all(&app, hourly_chunks("BTC_ETH", DAY, 60, 0)).await;
    assert_all_complete(&sim_config, &answers);
    let stats = app.manager.send(GetManagerStatus).await.unwrap().stats;
    assert_eq!(stats.failed_attempts, 20, "{stats:?}");
    let workers = wait_for_workers(&app, 3).await;
    assert_eq!(
        workers.iter().map(|w| w.restarts).sum::<u32>(),
        20,
        "{workers:?}"
    );
}

#[actix_rt::test]
async fn a_chunk_that_always_panics_gets_an_error_after_max_attempts() {
    let sim = start_simulator(no_rate_limit()).await;
    let mut s = unlimited_settings(&sim, 2);
    s.manager.max_attempts = 3;
    let hooks = fault_on(|c: &TodoChunk, _| (c.task_dbid == 1).then_some(InjectedFault::Panic));
    let app = App::start(&s, hooks);
    let answers = add_all(&app, hourly_chunks("BTC_ETH", DAY, 4, 0)).await;
    assert_eq!(kind(&answers[1]), cloned_chunk::Result::RandomError);
    assert!(
        answers[1]
            .possible_error_message
            .contains("no answer after 3 attempts"),
        "{}",
        answers[1].possible_error_message
    );
    assert!(answers[1].possible_error_message.contains("panicked"));
    for i in [0, 2, 3] {
        assert_eq!(kind(&answers[i]), cloned_chunk::Result::Complete);
    }
    wait_for_workers(&app, 2).await;
}

#[actix_rt::test]
async fn an_attempt_past_its_deadline_is_retried() {
    let sim_config = no_rate_limit();
    let sim = start_simulator(sim_config.clone()).await;
    let mut s = unlimited_settings(&sim, 2);
    s.worker.attempt_deadline_ms = 200;
    let hooks =
        fault_on(|c: &TodoChunk, a| (c.task_dbid == 2 && a == 0).then_some(InjectedFault::Hang));
    let app = App::start(&s, hooks);
    let answers = add_all(&app, hourly_chunks("BTC_ETH", DAY, 4, 0)).await;
    assert_all_complete(&sim_config, &answers);
    assert_eq!(
        app.manager
            .send(GetManagerStatus)
            .await
            .unwrap()
            .stats
            .failed_attempts,
        1
    );
}

#[actix_rt::test]
async fn waiting_for_the_rate_limiter_does_not_count_against_the_deadline() {
    // Eight workers, four calls a second, a 500 ms deadline: the last chunk waits about two
    // seconds for its slot. The deadline is for the chunk's own work, not for the budget.
    let sim_config = no_rate_limit();
    let sim = start_simulator(sim_config.clone()).await;
    let mut s = settings(&sim, 8, 4.0);
    s.worker.attempt_deadline_ms = 500;
    let app = App::start(&s, Hooks::default());
    let answers = add_all(&app, hourly_chunks("BTC_ETH", DAY, 8, 0)).await;
    assert_all_complete(&sim_config, &answers);
    let stats = app.manager.send(GetManagerStatus).await.unwrap().stats;
    assert_eq!(stats.failed_attempts, 0, "{stats:?}");
}

#[actix_rt::test]
async fn a_worker_killed_mid_chunk_loses_nothing() {
    let sim_config = no_rate_limit();
    let sim = start_simulator(sim_config.clone()).await;
    let mut s = unlimited_settings(&sim, 2);
    s.worker.attempt_deadline_ms = 60_000;
    // Chunk 0 hangs on its first attempt and says so, so we kill its worker mid-chunk.
    let (hanging, mut hung_now) = tokio::sync::mpsc::unbounded_channel();
    let hook = move |c: &TodoChunk, attempt| {
        (c.task_dbid == 0 && attempt == 0).then(|| {
            hanging.send(()).unwrap();
            InjectedFault::Hang
        })
    };
    let app = App::start(&s, fault_on(hook));
    let chunks = hourly_chunks("BTC_ETH", DAY, 6, 0);
    let hung = chunks[0].clone();
    let answers = join_all(chunks.into_iter().map(|c| add_task(&app, c)));
    let killer = async {
        hung_now.recv().await.unwrap();
        let status = app.manager.send(GetManagerStatus).await.unwrap();
        let (victim, _) = status
            .workers
            .iter()
            .find(|(_, s)| *s == WorkerState::Busy(hung.clone()))
            .unwrap();
        assert!(app.supervisor.send(KillWorker(*victim)).await.unwrap());
    };
    let (answers, ()) =
        actix_rt::time::timeout(TEST_DEADLINE, futures_util::future::join(answers, killer))
            .await
            .expect("answered in time");
    assert_all_complete(&sim_config, &answers);
    let status = app.manager.send(GetManagerStatus).await.unwrap();
    assert_eq!(
        status.stats.failed_attempts, 1,
        "the killed attempt counted once"
    );
    wait_for_workers(&app, 2).await;
}

#[actix_rt::test]
async fn many_callers_each_get_exactly_their_answer() {
    let sim = start_simulator(no_rate_limit()).await;
    let s = unlimited_settings(&sim, 4);
    let app = App::start(&s, Hooks::default());
    // The same chunk twice, and distinct ones: each caller gets one answer for its own chunk.
    let mut chunks = hourly_chunks("BTC_XMR", DAY, 300, 0);
    chunks.push(chunks[5].clone());
    let answers = add_all(&app, chunks.clone()).await;
    assert_eq!(answers.len(), chunks.len());
    for (chunk, answer) in chunks.iter().zip(&answers) {
        assert_eq!(answer.original_todo_chunk.as_ref(), Some(chunk));
    }
    assert_eq!(
        app.manager
            .send(GetManagerStatus)
            .await
            .unwrap()
            .stats
            .answered,
        301
    );
}

/// Waits until the registry has `n` running workers and returns its listing.
async fn wait_for_workers(app: &App, n: usize) -> Vec<cloner_worker::pool::registry::WorkerEntry> {
    let wait = app.registry.send(AwaitWorkersUp(n));
    let workers = actix_rt::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("workers come back");
    workers.unwrap().unwrap()
}

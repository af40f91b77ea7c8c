//! `serve` through broker faults that only the mock can inject (a leader down without a
//! failover, a coordinator moved, slow round trips, chosen Produce errors; real brokers killed
//! are in [`cluster_faults`](crate::cluster_faults)). Each test starts a mock cluster of three
//! brokers of its own ([`BrokerProcess`]), a simulator in this process and a `cloner-worker
//! serve` child, publishes a couple of hundred small chunks, and injects its fault once results
//! are coming ([`Run`]):
//!
//! - the leader of every todo and finished partition taken down (long enough for the service's
//!   own delivery timeout to pass and its re-produce to start), then brought up;
//! - the group coordinator moved, twice;
//! - 500 ms round trips on the broker that leads everything and coordinates the group;
//! - transient Produce errors, retried through.
//!
//! Whatever the fault, nothing is lost and every answer is right: every chunk has a result with
//! its key, each result is the simulator's ground truth, and after a SIGTERM the service exits 0
//! with the todo topic committed to its end. The duplicates a fault caused are printed, not
//! asserted (at least once allows them).
//!
//! One `#[ignore]`d test measures duplicates per SIGKILL and per rebalance with the default
//! rate settings, for the README:
//! `cargo test --test it broker_faults::duplicates_per -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::time::Instant;

use cloner_worker::clone::requester::{self, TopicReader};
use cloner_worker::config::{KafkaRole, Settings};

use crate::helpers::fault_run::*;
use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

/// The consumer group of `settings`.
fn group_id(settings: &Settings) -> String {
    settings.kafka.properties(KafkaRole::Consumer).unwrap()["group.id"].clone()
}

/// Both partitions of the todo and the finished topics led by `broker_id`.
fn lead_everything(broker: &BrokerProcess, settings: &Settings, broker_id: i32) {
    for topic in [&settings.topics.todo, &settings.topics.finished] {
        for partition in 0..2 {
            broker
                .control(&format!("leader {topic} {partition} {broker_id}"))
                .expect("the leader is set");
        }
    }
}

#[actix_rt::test]
async fn the_leader_of_every_partition_down_mid_run_loses_nothing_once_it_is_up() {
    let test = "faults.leader-down";
    let mut run = Run::new(test, |broker, settings| {
        lead_everything(broker, settings, 2);
        // The group's coordinator elsewhere: this test is about the partitions' leader.
        broker
            .control(&format!("coordinator {} 1", group_id(settings)))
            .unwrap();
    })
    .await;
    // A short delivery timeout, so that the outage outlasts it and the service's own re-produce
    // (with backoff, the offset waiting) is what carries the results through.
    let mut service = run.serve(&[("CLONER__CONSUMER__DELIVERY_TIMEOUT_MS", "3000")]);
    run.read_until(BEFORE_FAULT, &service).await;

    run.control("down 2");
    service.wait_for("the outage", TEST_DEADLINE, |l| {
        l.contains("ERROR") && l.contains("cannot be reached")
    });
    let finished = run.settings.topics.finished.clone();
    service.wait_for(
        "a result failed past the delivery timeout",
        TEST_DEADLINE,
        move |l| l.contains(&format!("producing to {finished} failed")),
    );
    let before_up = run.seen.len();
    run.control("up 2");
    eprintln!("{test}: {before_up} results read before the leader came back, of {CHUNKS} chunks");
    run.finish(test, service).await;
}

#[actix_rt::test]
async fn the_group_coordinator_moved_mid_run_loses_nothing() {
    let test = "faults.coordinator";
    let mut run = Run::new(test, |broker, settings| {
        broker
            .control(&format!("coordinator {} 1", group_id(settings)))
            .unwrap();
    })
    .await;
    let group = group_id(&run.settings);
    let service = run.serve(&[]);
    run.read_until(BEFORE_FAULT, &service).await;
    run.control(&format!("coordinator {group} 2"));
    // Past an auto-commit or two at the new coordinator, then once more.
    run.read_until(BEFORE_FAULT + 60, &service).await;
    run.control(&format!("coordinator {group} 3"));
    run.finish(test, service).await;
}

#[actix_rt::test]
async fn half_second_round_trips_on_the_busiest_broker_slow_the_run_but_it_completes() {
    let test = "faults.rtt";
    let mut run = Run::new(test, |broker, settings| {
        lead_everything(broker, settings, 2);
        broker
            .control(&format!("coordinator {} 2", group_id(settings)))
            .unwrap();
    })
    .await;
    let service = run.serve(&[]);
    run.read_until(BEFORE_FAULT, &service).await;
    // Every produce, fetch, commit and heartbeat of the run now waits half a second.
    run.control("rtt 2 500");
    run.finish(test, service).await;
}

/// Transient Produce errors injected once results are coming; `errors` is the list.
async fn produce_errors_mid_run(test: &str, errors: &str) {
    let mut run = Run::new(test, |_, _| {}).await;
    let service = run.serve(&[]);
    run.read_until(BEFORE_FAULT, &service).await;
    // The cluster's next Produce requests (the service's: nobody else produces now) fail, one
    // error each: retriable all, so librdkafka retries them, idempotently, until they go through.
    run.control(&format!("errors Produce {errors}"));
    run.finish(test, service).await;
}

#[actix_rt::test]
async fn transient_produce_errors_mid_run_are_retried_through() {
    produce_errors_mid_run(
        "faults.produce-errors",
        "NOT_ENOUGH_REPLICAS NOT_ENOUGH_REPLICAS LEADER_NOT_AVAILABLE",
    )
    .await;
}

/// Four errors in a row (or `NOT_ENOUGH_REPLICAS_AFTER_APPEND REQUEST_TIMED_OUT`) and two
/// results are never written, yet reported delivered and their chunks committed. The mock, not
/// the service: it checks producer sequence numbers for transactional producers only, so it
/// accepts a batch after a gap that a real broker refuses, and librdkafka's idempotent producer
/// takes the later acknowledgement for the earlier, failed batches (docs/kafka-here.md, "No
/// sequence checks for idempotent producers"). Kept, ignored, as the reproducer of that gap:
/// run it with `--ignored` to see it; it needs the mock's error injection, so it cannot run
/// against a real cluster.
#[actix_rt::test]
#[ignore = "the mock broker accepts out-of-sequence batches (docs/kafka-here.md); loses two results there only"]
async fn four_produce_errors_in_a_row_mid_run_lose_nothing() {
    produce_errors_mid_run(
        "faults.produce-errors-4",
        "NOT_ENOUGH_REPLICAS NOT_ENOUGH_REPLICAS LEADER_NOT_AVAILABLE NOT_LEADER_FOR_PARTITION",
    )
    .await;
}

/// The README's figures: duplicates per SIGKILL and per rebalance with the default rate settings
/// (`n_workers` 4, `default_rate` 6/s with the limiter on, `consumer.max_in_flight` unset, so 30;
/// auto-commit every second), against a simulator without a rate limit or latency.
///
/// One member runs; 5 times it is SIGKILLed and restarted; then 5 times a second member joins and
/// leaves (SIGTERM). After each event, once the group holds its new assignment, results are read
/// until 30 chunks never answered before have been; the results meanwhile for chunks answered
/// before are that event's duplicates (without events there are none: one result per chunk).
#[actix_rt::test]
#[ignore = "a measurement of a few minutes, for the README; run with --ignored --nocapture"]
async fn duplicates_per_sigkill_and_per_rebalance_with_the_default_rates() {
    const FRESH: usize = 30;
    const CYCLES: usize = 5;
    let broker = BrokerProcess::start(3);
    let sim = start_simulator(no_rate_limit()).await;
    let defaults = Settings::default();
    let mut base = settings(&sim, defaults.n_workers, defaults.default_rate);
    base.upstream = defaults.upstream.clone();
    base.upstream.base_url = Some(sim.base_url());
    base.worker = defaults.worker.clone();
    let settings = settings_on(&broker, base, "bench.duplicates");
    assert!(!settings.rate_limiter.unlimited, "the limiter is on");
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let producer = requester::producer(&settings).unwrap();
    requester::publish_chunks(
        &producer,
        &settings.topics.todo,
        &minute_chunks("BTC_LTC", 3000),
    )
    .await
    .unwrap();
    let env = [(
        "CLONER__KAFKA__BOOTSTRAP_SERVERS",
        broker.bootstrap.as_str(),
    )];
    let started = Instant::now();
    let mut answered = BTreeMap::new();

    let mut a = ServiceProcess::start_with_env(&settings, &env);
    a.wait_for("both partitions", TEST_DEADLINE, holds_two_partitions);
    let warm_up = duplicates_until_fresh(&results, &mut answered, FRESH).await;
    assert_eq!(warm_up, 0, "no duplicates without a fault");

    let mut kills = Vec::new();
    for _ in 0..CYCLES {
        a.kill();
        a = ServiceProcess::start_with_env(&settings, &env);
        a.wait_for("both partitions", TEST_DEADLINE, holds_two_partitions);
        kills.push(duplicates_until_fresh(&results, &mut answered, FRESH).await);
    }

    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for _ in 0..CYCLES {
        let mut b = ServiceProcess::start_with_env(&settings, &env);
        b.wait_for("a partition", TEST_DEADLINE, holds_one_partition);
        a.wait_for("the partition it keeps", TEST_DEADLINE, holds_one_partition);
        joins.push(duplicates_until_fresh(&results, &mut answered, FRESH).await);
        assert!(b.terminate(EXIT_TIMEOUT).success(), "b drains and leaves");
        a.wait_for("both partitions again", TEST_DEADLINE, holds_two_partitions);
        leaves.push(duplicates_until_fresh(&results, &mut answered, FRESH).await);
    }
    assert!(a.terminate(EXIT_TIMEOUT).success());
    let rebalances: Vec<usize> = joins.iter().chain(&leaves).copied().collect();
    println!(
        "duplicates with the defaults: n_workers {}, default_rate {}/s, limiter on, max_in_flight {}, \
         auto-commit 1 s; simulator without rate limit; 3-broker mock; {} chunks answered in {:?}",
        settings.n_workers,
        settings.default_rate,
        settings.max_in_flight(),
        answered.len(),
        started.elapsed()
    );
    println!("event                     n   mean  max  each");
    println!("SIGKILL + restart        {}", summary(&kills));
    println!("rebalance, member joins  {}", summary(&joins));
    println!("rebalance, member leaves {}", summary(&leaves));
    println!("rebalance, all           {}", summary(&rebalances));
    sim.stop().await;
}

//! `serve` when its broker goes away: the outage is said once, at ERROR, not once per
//! reconnect attempt; and a SIGTERM with every broker down ends the process within the grace
//! period and the bounded close, instead of waiting for the broker for ever.
//!
//! On a mock broker process of the test's own ([`BrokerProcess`]): its broker is taken down
//! and brought back at will, and it refuses produces with injected errors
//! (`MSG_SIZE_TOO_LARGE`, `TOPIC_AUTHORIZATION_FAILED`), which only the mock can do.

use std::time::{Duration, Instant};

use cloner_worker::clone::requester;

use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

#[actix_rt::test]
async fn with_its_broker_gone_the_service_says_so_once_and_a_sigterm_still_ends_it() {
    let broker = BrokerProcess::start(1);
    let sim = start_simulator(slow_simulator(100)).await;
    let mut base = unlimited_settings(&sim, 2);
    base.consumer.max_in_flight = Some(4);
    base.consumer.drain_grace_ms = 2_000;
    let settings = settings_on(&broker, base, "outage");
    let chunks = minute_chunks("BTC_LTC", 200);
    let results = requester::TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let producer = requester::producer(&settings).unwrap();
    requester::publish_chunks(&producer, &settings.topics.todo, &chunks)
        .await
        .unwrap();

    let close_timeout = Duration::from_secs(2);
    let mut service = ServiceProcess::start_with_env(
        &settings,
        &[
            ("CLONER__KAFKA__BOOTSTRAP_SERVERS", &broker.bootstrap),
            ("CLONER__CONSUMER__CLOSE_TIMEOUT_MS", "2000"),
        ],
    );
    // Mid-run: results produced, chunks in flight, offsets stored and not all committed.
    results.take(10, TEST_DEADLINE).await.expect("ten results");
    broker.control("down 1").expect("the broker goes down");
    service.wait_for("the outage, at ERROR", TEST_DEADLINE, |l| {
        l.contains("ERROR") && l.contains("cannot be reached")
    });

    let asked = Instant::now();
    signal(service.pid(), "TERM");
    // The grace period, then the final commit and leaving the group, each bounded.
    let bound = Duration::from_millis(settings.consumer.drain_grace_ms) + 2 * close_timeout;
    let status = service.wait_exit(bound + Duration::from_secs(10));
    let took = asked.elapsed();
    eprintln!("exited {status} {took:?} after SIGTERM, the broker down");

    let log = service.log.join("\n");
    let outage_lines = service
        .log
        .iter()
        .filter(|l| l.contains("cannot be reached"))
        .count();
    assert_eq!(outage_lines, 1, "the outage is said once; the log:\n{log}");
    // Besides the outage, only the final commit may be an ERROR (it cannot be made).
    let other_errors: Vec<&String> = service
        .log
        .iter()
        .filter(|l| l.contains(" ERROR ") && !l.contains("cannot be reached"))
        .filter(|l| !l.contains("final commit"))
        .collect();
    assert!(
        other_errors.is_empty(),
        "no reconnect attempt or failed produce logged at ERROR: {other_errors:#?}"
    );
    if !status.success() {
        assert!(
            log.contains("will be delivered again"),
            "a non-zero exit says what becomes of the uncommitted chunks; the log:\n{log}"
        );
    }
    sim.stop().await;
}

#[actix_rt::test]
async fn a_result_the_broker_refuses_as_too_large_is_answered_window_too_big() {
    let broker = BrokerProcess::start(1);
    let sim = start_simulator(no_rate_limit()).await;
    let settings = settings_on(&broker, unlimited_settings(&sim, 1), "too-large");
    let results = requester::TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    // Ten minutes of a busy pair: a COMPLETE answer with hundreds of trades.
    let chunk = cloner_worker::proto::TodoChunk {
        currency_pair: "USDT_BTC".into(),
        from_unix_ts: DAY,
        until_unix_ts: DAY + 599,
        task_dbid: 1,
        ..Default::default()
    };
    assert_eq!(
        expected_result(sim.config(), &chunk),
        cloner_worker::proto::cloned_chunk::Result::Complete,
        "the chunk's answer has entries to be too large"
    );
    let producer = requester::producer(&settings).unwrap();
    requester::publish_chunks(&producer, &settings.topics.todo, &[chunk])
        .await
        .unwrap();
    // The service's first Produce, its result, is refused as too large (the mock's own limit
    // is far above a result, so the error is injected).
    broker
        .control("errors Produce MSG_SIZE_TOO_LARGE")
        .expect("the error is injected");

    let mut service = ServiceProcess::start_with_env(
        &settings,
        &[("CLONER__KAFKA__BOOTSTRAP_SERVERS", &broker.bootstrap)],
    );
    let record = match tokio::time::timeout(TEST_DEADLINE, results.next()).await {
        Ok(record) => record.unwrap(),
        Err(_) => {
            service.terminate(EXIT_TIMEOUT);
            panic!(
                "no result within {TEST_DEADLINE:?}; the service's log:\n{}",
                service.log.join("\n")
            )
        }
    };
    let answer = record.cloned_chunk().expect("a ClonedChunk");
    assert_eq!(
        answer.chunk_result,
        cloner_worker::proto::cloned_chunk::Result::WindowTooBig as i32,
        "{answer:?}"
    );
    assert!(
        answer
            .possible_error_message
            .contains("larger than the broker accepts"),
        "{}",
        answer.possible_error_message
    );
    assert!(answer.entries.is_empty());
    assert!(service.terminate(EXIT_TIMEOUT).success());
    for (partition, (committed, end)) in committed_and_end(&settings, &settings.topics.todo) {
        assert_eq!(
            committed, end,
            "partition {partition}: the chunk is committed"
        );
    }
    sim.stop().await;
}

#[actix_rt::test]
async fn a_results_topic_it_may_not_write_stops_the_service_non_zero() {
    let broker = BrokerProcess::start(1);
    let sim = start_simulator(no_rate_limit()).await;
    let settings = settings_on(&broker, unlimited_settings(&sim, 1), "unauthorized");
    let producer = requester::producer(&settings).unwrap();
    requester::publish_chunks(
        &producer,
        &settings.topics.todo,
        &minute_chunks("BTC_LTC", 1),
    )
    .await
    .unwrap();
    // Every Produce from now on is refused: the service's result cannot be written.
    let refusals = vec!["TOPIC_AUTHORIZATION_FAILED"; 50].join(" ");
    broker
        .control(&format!("errors Produce {refusals}"))
        .expect("the errors are injected");

    let mut service = ServiceProcess::start_with_env(
        &settings,
        &[("CLONER__KAFKA__BOOTSTRAP_SERVERS", &broker.bootstrap)],
    );
    let status = service.wait_exit(TEST_DEADLINE);
    let log = service.log.join("\n");
    assert!(!status.success(), "non-zero; the log:\n{log}");
    assert!(
        log.contains("cannot be written") && log.contains("grant this client write access"),
        "says what to do; the log:\n{log}"
    );
    sim.stop().await;
}

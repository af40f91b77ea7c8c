//! `/metrics` and `/health` of `cloner-worker serve` (a child process) against the test broker
//! and an exchange simulator on this process's loopback.
//!
//! What is proved: not ready before the group is joined, ready after; after a known mix of
//! chunks and a dead letter, the counters equal what was read back from the topics, exactly;
//! the gauges return to 0; the consumer lag appears for each held partition; a taken
//! `http.listen` stops the start with an error naming the key.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cloner_worker::clone::requester::{self, TopicReader};
use cloner_worker::proto::{cloned_chunk, TodoChunk};

use crate::helpers::http::*;
use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Scrapes `/metrics` until `done` holds for the page (the service counts a result once the
/// broker acknowledges it, which may be just after a reader sees it); the page.
async fn scrape_until(addr: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + TEST_DEADLINE;
    loop {
        let (status, _, page) = get(addr, "/metrics");
        assert_eq!(status, 200, "{page}");
        if done(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics did not show {what} within {TEST_DEADLINE:?}:\n{page}"
        );
        // Between scrapes only: the condition, not the pause, is what the test waits on.
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn metrics_count_exactly_what_went_through_and_health_follows_the_group() {
    let sim = start_simulator(no_rate_limit()).await;
    let settings = kafka_settings(unlimited_settings(&sim, 4), "metrics").await;
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let dead = TopicReader::new(&settings.kafka, &settings.topics.dead_letter).unwrap();

    let mut service = ServiceProcess::start_with_env(
        &settings,
        // Lag reports every 200 ms instead of 5 s, so the test need not wait for one.
        &[("CLONER__KAFKA__CONSUMER__STATISTICS_INTERVAL_MS", "200")],
    );
    let addr = endpoint_addr(&mut service);

    // The endpoint is up before the consumer subscribes, and the broker holds a group's first
    // join for group.initial.rebalance.delay.ms (3 s, on the mock as on Kafka): this scrape comes
    // before the join.
    let (status, content_type, body) = get(&addr, "/health");
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            r#"{"ready":false,"group_joined":false,"upstream_answered":true,"pool_alive":true,"rate_limiter":{"share_calls_per_second":null,"rate_calls_per_second":null,"paused_seconds":null,"paused_because":null}}"#
        ),
        "not ready before the join"
    );
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );

    service.wait_for("the assignment", TEST_DEADLINE, |l| {
        l.contains("partitions assigned")
    });
    let (status, _, body) = get(&addr, "/health");
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"ready":true,"group_joined":true,"upstream_answered":true,"pool_alive":true,"rate_limiter":{"share_calls_per_second":null,"rate_calls_per_second":null,"paused_seconds":null,"paused_because":null}}"#
        ),
        "ready once assigned"
    );

    // A known mix: calm minutes (COMPLETE), a busy day by the hour (COMPLETE and
    // WINDOW_TOO_BIG), a pair the exchange does not list (RANDOM_ERROR); and one message that is
    // not a chunk at all.
    let mut chunks: Vec<TodoChunk> = (0..30)
        .map(|i| TodoChunk {
            currency_pair: "BTC_LTC".into(),
            from_unix_ts: DAY + i64::from(i) * 60,
            until_unix_ts: DAY + i64::from(i) * 60 + 59,
            task_dbid: i,
            ..Default::default()
        })
        .collect();
    chunks.extend(hourly_chunks("USDT_BTC", DAY, 24, 100));
    chunks.extend(hourly_chunks("BTC_DOGE", DAY, 5, 200));
    let n = chunks.len();
    let producer = requester::producer(&settings).unwrap();
    requester::publish_chunks(&producer, &settings.topics.todo, &chunks)
        .await
        .unwrap();
    requester::publish_raw(&producer, &settings.topics.todo, "garbage", &[0xff; 4])
        .await
        .unwrap();

    let records = results.take(n, TEST_DEADLINE).await.unwrap();
    dead.take(1, TEST_DEADLINE).await.unwrap();
    let mut by_result: BTreeMap<&str, u64> = BTreeMap::new();
    for record in &records {
        let result =
            cloned_chunk::Result::try_from(record.cloned_chunk().unwrap().chunk_result).unwrap();
        *by_result.entry(result.as_str_name()).or_default() += 1;
    }
    assert!(
        by_result.len() == 3,
        "the mix holds every result: {by_result:?}"
    );

    let n_f = n as f64;
    let finished = |page: &str, result: &str| {
        sample(
            page,
            &format!("cloner_chunks_finished_total{{result=\"{result}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let page = scrape_until(&addr, "every result and the dead letter counted", |page| {
        let all: f64 = ["COMPLETE", "WINDOW_TOO_BIG", "RANDOM_ERROR"]
            .iter()
            .map(|r| finished(page, r))
            .sum();
        all == n_f
            && sample(
                page,
                "cloner_dead_letters_total{reason=\"not_a_todo_chunk\"}",
            ) == Some(1.0)
            && sample(page, "cloner_chunks_in_flight") == Some(0.0)
    })
    .await;
    for (result, count) in &by_result {
        assert_eq!(
            finished(&page, result),
            *count as f64,
            "{result} as read back:\n{page}"
        );
    }
    let s = |series: &str| sample(&page, series);
    assert_eq!(
        s("cloner_chunks_received_total"),
        Some(n_f),
        "the garbage is no chunk"
    );
    // No faults: one attempt and one upstream call per chunk, nothing retried.
    assert_eq!(s("cloner_attempts_total"), Some(n_f));
    assert_eq!(s("cloner_attempt_retries_total"), Some(0.0));
    assert_eq!(s("cloner_upstream_retries_total"), Some(0.0));
    assert_eq!(s("cloner_rate_limiter_wait_seconds_count"), Some(n_f));
    let calls = |outcome: &str| {
        s(&format!(
            "cloner_upstream_call_duration_seconds_count{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(calls("complete"), Some(by_result["COMPLETE"] as f64));
    assert_eq!(calls("too_big"), Some(by_result["WINDOW_TOO_BIG"] as f64));
    assert_eq!(calls("permanent"), Some(by_result["RANDOM_ERROR"] as f64));
    assert_eq!(calls("transient"), Some(0.0));
    assert_eq!(calls("too_many"), Some(0.0));
    assert_eq!(calls("banned"), Some(0.0));
    // The limiter is off here: no share, nothing decreased, missed or paused.
    for series in [
        "cloner_rate_limiter_share_calls_per_second",
        "cloner_rate_limiter_decreases_total",
        "cloner_rate_limiter_missed_slots_total",
        "cloner_rate_limiter_paused_seconds_total",
        "cloner_rate_limiter_banned",
    ] {
        assert_eq!(s(series), Some(0.0), "{series}");
    }
    for reason in [
        "no_payload",
        "invalid_pair",
        "negative_start",
        "reversed_window",
    ] {
        assert_eq!(
            s(&format!("cloner_dead_letters_total{{reason=\"{reason}\"}}")),
            Some(0.0),
            "{reason}"
        );
    }
    assert_eq!(s("cloner_queue_depth"), Some(0.0));
    let (_, content_type, _) = get(&addr, "/metrics");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );

    // Each held partition's lag, from librdkafka's statistics: 0 once the commits reach the
    // log end.
    let lag = |page: &str, partition: i32| {
        sample(
            page,
            &format!(
                "cloner_consumer_lag{{topic=\"{}\",partition=\"{partition}\"}}",
                settings.topics.todo
            ),
        )
    };
    scrape_until(&addr, "a lag of 0 on both partitions", |page| {
        lag(page, 0) == Some(0.0) && lag(page, 1) == Some(0.0)
    })
    .await;

    assert!(
        service.terminate(EXIT_TIMEOUT).success(),
        "exit 0 on SIGTERM: the endpoint does not keep the process alive"
    );
    assert!(
        TcpStream::connect(&addr).is_err(),
        "nothing listens on {addr} after the exit"
    );
}

#[actix_rt::test]
async fn a_taken_http_listen_address_stops_the_start_naming_the_key() {
    let sim = start_simulator(no_rate_limit()).await;
    let settings = kafka_settings(unlimited_settings(&sim, 1), "metrics-port").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();

    let mut service =
        ServiceProcess::start_with_env(&settings, &[("CLONER__HTTP__LISTEN", listen.as_str())]);
    let status = service.wait_exit(EXIT_TIMEOUT);
    assert!(!status.success(), "a taken port is a start-up error");
    let log = service.log.join("\n");
    assert!(
        log.contains("http.listen")
            && log.contains("CLONER__HTTP__LISTEN")
            && log.contains(&listen),
        "the error names the key and the address:\n{log}"
    );
    assert!(
        !log.contains("consuming "),
        "it stopped before joining the group:\n{log}"
    );
    drop(taken);
}

//! The service through Kafka: the broker is the process `scripts/kafka-up` started (or the
//! cluster in `KAFKA_BOOTSTRAP`), the service is `cloner-worker serve` as a child process, the
//! exchange simulator runs on this process's loopback. Each test has its own topics and group.
//!
//! What is proved: one result per chunk and commits at the log end; no reprocessing after a
//! clean restart; dead letters with reasons; nothing lost to SIGKILL; two members splitting and
//! handing over partitions; SIGTERM never commits a chunk without its result, and what the
//! grace period cuts off comes again; bounded intake and flat memory under a backlog.

use std::collections::BTreeSet;

use prost::Message as _;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

use cloner_worker::clone::requester::{self, chunk_key, Record, TopicReader};
use cloner_worker::proto::{cloned_chunk, TodoChunk};
use cloner_worker::service::dead_letter::header as dlq;

use crate::helpers::cluster::{metadata, replication_of, ApacheCluster};
use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

#[actix_rt::test]
async fn five_hundred_chunks_get_one_result_each_and_a_restart_reprocesses_nothing() {
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_settings(&sim, 16, 1000, "e2e").await;
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let chunks = minute_chunks("BTC_LTC", 500);
    publish(&settings, &chunks).await;

    let mut service = ServiceProcess::start(&settings);
    let records = results.take(500, TEST_DEADLINE).await.unwrap();
    let by_key = results_by_key(&records);
    assert_eq!(by_key.len(), 500, "one result per chunk");
    for chunk in &chunks {
        let answers = &by_key[&chunk_key(chunk)];
        assert_eq!(answers.len(), 1, "exactly one result for {chunk:?}");
        assert_eq!(
            answers[0].chunk_result,
            cloned_chunk::Result::Complete as i32
        );
        assert_matches_ground_truth(sim.config(), &answers[0]);
    }
    let partitions: BTreeSet<i32> = records.iter().map(|r| r.partition).collect();
    assert_eq!(partitions.len(), 2, "results spread over both partitions");

    assert!(
        service.terminate(EXIT_TIMEOUT).success(),
        "exit 0 on SIGTERM"
    );
    let offsets = committed_and_end(&settings, &settings.topics.todo);
    for (partition, (committed, end)) in &offsets {
        assert_eq!(
            committed, end,
            "partition {partition}: committed offset at the log end"
        );
    }
    assert_eq!(offsets.values().map(|(_, end)| end).sum::<i64>(), 500);

    // A restart takes up where the commits say: given one new chunk per partition, it receives
    // exactly those two. Anything it reprocessed would come before them in their partitions.
    let mut again = ServiceProcess::start(&settings);
    let producer = requester::producer(&settings).unwrap();
    for partition in [0, 1] {
        let sentinel = TodoChunk {
            currency_pair: "BTC_ETH".into(),
            from_unix_ts: DAY,
            until_unix_ts: DAY + 59,
            task_dbid: 10_000 + partition,
            ..Default::default()
        };
        let (key, payload) = (chunk_key(&sentinel), sentinel.encode_to_vec());
        producer
            .send(
                FutureRecord::to(&settings.topics.todo)
                    .key(&key)
                    .payload(&payload)
                    .partition(partition),
                Timeout::Never,
            )
            .await
            .unwrap();
    }
    results.take(2, TEST_DEADLINE).await.unwrap();
    assert!(again.terminate(EXIT_TIMEOUT).success());
    let drained = again.wait_for("its drain", EXIT_TIMEOUT, |l| l.contains("drained: "));
    assert_eq!(drained_received(&drained), 2, "{drained}");
    sim.stop().await;
}

#[actix_rt::test]
async fn input_that_cannot_be_a_chunk_goes_to_the_dead_letter_topic_with_its_reason() {
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_settings(&sim, 4, 1000, "dlq").await;
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let dead = TopicReader::new(&settings.kafka, &settings.topics.dead_letter).unwrap();
    let chunk = |pair: &str, from: i64, until: i64| {
        TodoChunk {
            currency_pair: pair.into(),
            from_unix_ts: from,
            until_unix_ts: until,
            task_dbid: 1,
            ..Default::default()
        }
        .encode_to_vec()
    };
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", vec![0xff, 0xff, 0xff, 0xff], "not a TodoChunk"),
        ("empty", vec![], "invalid currency pair"),
        (
            "reversed",
            chunk("BTC_ETH", DAY + 10, DAY),
            "ends before it starts",
        ),
        ("negative", chunk("BTC_ETH", -60, DAY), "before 1970"),
        (
            "lower-case",
            chunk("btc_eth", DAY, DAY + 59),
            "invalid currency pair",
        ),
        (
            "injection",
            chunk("BTC_ETH&command=x", DAY, DAY + 59),
            "invalid currency pair",
        ),
    ];
    let valid = minute_chunks("BTC_ETH", 60);
    let producer = requester::producer(&settings).unwrap();
    // Interleaved: the bad ones must not hold up the valid ones around them.
    for (i, c) in valid.iter().enumerate() {
        requester::publish_chunks(&producer, &settings.topics.todo, std::slice::from_ref(c))
            .await
            .unwrap();
        if let Some((key, payload, _)) = bad.get(i / 10) {
            if i % 10 == 0 {
                requester::publish_raw(&producer, &settings.topics.todo, key, payload)
                    .await
                    .unwrap();
            }
        }
    }

    let mut service = ServiceProcess::start(&settings);
    let answered = results.take(valid.len(), TEST_DEADLINE).await.unwrap();
    assert_eq!(
        results_by_key(&answered).len(),
        valid.len(),
        "every valid chunk answered"
    );
    let letters = dead.take(bad.len(), TEST_DEADLINE).await.unwrap();
    for (key, payload, why) in &bad {
        let letter = letters
            .iter()
            .find(|r| r.key_str() == *key)
            .unwrap_or_else(|| panic!("no dead letter for {key}"));
        let reason = &letter.headers[dlq::REASON];
        assert!(
            reason.contains(why),
            "{key}: reason {reason:?} does not say {why:?}"
        );
        assert_eq!(letter.payload.as_deref().unwrap_or_default(), &payload[..]);
        assert_eq!(letter.headers[dlq::TOPIC], settings.topics.todo);
        assert!(letter.headers[dlq::PARTITION].parse::<i32>().is_ok());
        assert!(letter.headers[dlq::OFFSET].parse::<i64>().is_ok());
    }
    assert!(service.terminate(EXIT_TIMEOUT).success());
    for (partition, (committed, end)) in committed_and_end(&settings, &settings.topics.todo) {
        assert_eq!(
            committed, end,
            "partition {partition}: dead letters move the offset on"
        );
    }
    let refusals = service
        .log
        .iter()
        .filter(|l| l.contains("not a chunk, sent to"))
        .count();
    assert_eq!(refusals, bad.len(), "one log line per dead letter");
    sim.stop().await;
}

#[actix_rt::test]
async fn a_service_killed_mid_run_loses_nothing_after_a_restart() {
    let sim = start_simulator(slow_simulator(40)).await;
    let settings = service_settings(&sim, 4, 50, "kill").await;
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let chunks = minute_chunks("BTC_XMR", 400);
    publish(&settings, &chunks).await;

    let mut first = ServiceProcess::start(&settings);
    let mut seen = results.take(100, TEST_DEADLINE).await.unwrap();
    first.kill();
    let mut second = ServiceProcess::start(&settings);
    let duplicates = all_answered(&results, &chunks, &mut seen).await;
    eprintln!(
        "kill test: {} results for {} chunks: {duplicates} duplicates after SIGKILL",
        seen.len(),
        chunks.len()
    );
    assert!(second.terminate(EXIT_TIMEOUT).success());
    sim.stop().await;
}

#[actix_rt::test]
async fn two_members_split_the_partitions_and_one_takes_over_when_the_other_stops() {
    let sim = start_simulator(slow_simulator(40)).await;
    let settings = service_settings(&sim, 2, 10, "scale").await;
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let chunks = minute_chunks("BTC_LTC", 600);
    publish(&settings, &chunks).await;

    let mut a = ServiceProcess::start(&settings);
    let mut b = ServiceProcess::start(&settings);
    // What a member holds after each rebalance, whichever the protocol.
    let holding = |l: &str| l.split("now holding: ").nth(1).map(str::to_string);
    let one_partition = move |l: &str| holding(l).is_some_and(|h| !h.contains(", ") && h != "none");
    let of_b = b.wait_for("an assignment", TEST_DEADLINE, one_partition);
    let of_a = a.wait_for(
        "an assignment of one partition",
        TEST_DEADLINE,
        one_partition,
    );
    assert_ne!(
        of_a.rsplit(' ').next(),
        of_b.rsplit(' ').next(),
        "each member holds its own partition"
    );
    let mut seen = results.take(50, TEST_DEADLINE).await.unwrap();
    assert!(b.terminate(EXIT_TIMEOUT).success(), "b drains and leaves");
    a.wait_for("the handover of both partitions", TEST_DEADLINE, move |l| {
        holding(l).is_some_and(|h| h.contains(", "))
    });
    let duplicates = all_answered(&results, &chunks, &mut seen).await;
    eprintln!("scale-out test: {duplicates} duplicates over the handover");
    assert!(a.terminate(EXIT_TIMEOUT).success());
    for (partition, (committed, end)) in committed_and_end(&settings, &settings.topics.todo) {
        assert_eq!(committed, end, "partition {partition}: all committed by a");
    }
    sim.stop().await;
}

#[actix_rt::test]
async fn sigterm_mid_run_exits_zero_and_commits_no_chunk_without_its_result() {
    let sim = start_simulator(slow_simulator(40)).await;
    let settings = service_settings(&sim, 4, 40, "term").await;
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let chunks = minute_chunks("BTC_ETH", 400);
    publish(&settings, &chunks).await;

    let mut service = ServiceProcess::start(&settings);
    results.take(60, TEST_DEADLINE).await.unwrap();
    assert!(
        service.terminate(EXIT_TIMEOUT).success(),
        "exit 0 on SIGTERM"
    );

    let committed = committed_and_end(&settings, &settings.topics.todo);
    let produced: i64 = committed_and_end(&settings, &settings.topics.finished)
        .values()
        .map(|(_, end)| end)
        .sum();
    let all_results = TopicReader::new(&settings.kafka, &settings.topics.finished)
        .unwrap()
        .take(produced as usize, TEST_DEADLINE)
        .await
        .unwrap();
    let answered: BTreeSet<String> = all_results.iter().map(Record::key_str).collect();
    let inputs = TopicReader::new(&settings.kafka, &settings.topics.todo)
        .unwrap()
        .take(chunks.len(), TEST_DEADLINE)
        .await
        .unwrap();
    let mut committed_chunks = 0;
    for input in &inputs {
        if input.offset < committed[&input.partition].0 {
            committed_chunks += 1;
            assert!(
                answered.contains(&input.key_str()),
                "{} is committed (partition {} offset {}) but has no result",
                input.key_str(),
                input.partition,
                input.offset
            );
        }
    }
    assert!(
        committed_chunks >= 60,
        "the drain committed what was answered"
    );
    assert!(committed_chunks < chunks.len(), "stopped mid-run");
    eprintln!(
        "sigterm test: {committed_chunks} chunks committed, {} results produced",
        answered.len()
    );
    sim.stop().await;
}

#[actix_rt::test]
async fn chunks_unfinished_when_the_grace_period_ends_are_not_committed_and_come_again() {
    // An upstream that answers after a minute: nothing can finish within the grace period.
    let stuck = start_simulator(slow_simulator(60_000)).await;
    let mut base = unlimited_settings(&stuck, 4);
    base.consumer.drain_grace_ms = 300;
    base.consumer.max_in_flight = Some(10);
    base.upstream.request_timeout_ms = 120_000;
    let mut settings = kafka_settings(base, "grace").await;
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let chunks = minute_chunks("BTC_ETH", 10);
    publish(&settings, &chunks).await;

    // Intake pauses (logged at debug) once every in-flight slot is taken: all ten chunks are
    // then taken and in flight, four of them waiting on the upstream.
    let log = (
        "RUST_LOG",
        "info,actix_server=warn,cloner_worker::service::intake=debug",
    );
    let mut service = ServiceProcess::start_with_env(&settings, &[log]);
    service.wait_for("all ten chunks taken", TEST_DEADLINE, |l| {
        l.contains("every in-flight slot taken: paused")
    });
    assert!(
        service.terminate(EXIT_TIMEOUT).success(),
        "exit 0 after the grace period"
    );
    service.wait_for("the end of the grace period", EXIT_TIMEOUT, |l| {
        l.contains("grace period over with 10 chunks unfinished")
    });
    for (partition, (committed, _)) in committed_and_end(&settings, &settings.topics.todo) {
        assert_eq!(
            committed, 0,
            "partition {partition}: nothing finished, nothing committed"
        );
    }

    // Next time, against an upstream that answers, every one of them comes again.
    let sim = start_simulator(no_rate_limit()).await;
    settings.upstream.base_url = Some(sim.base_url());
    let mut again = ServiceProcess::start(&settings);
    let records = results.take(chunks.len(), TEST_DEADLINE).await.unwrap();
    assert_eq!(results_by_key(&records).len(), chunks.len());
    assert!(again.terminate(EXIT_TIMEOUT).success());
    sim.stop().await;
    stuck.stop().await;
}

#[actix_rt::test]
async fn a_backlog_of_twenty_thousand_chunks_is_taken_a_bounded_number_at_a_time() {
    let sim = start_simulator(slow_simulator(100)).await;
    let in_flight = 100;
    let settings = service_settings(&sim, 4, in_flight, "backlog").await;
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    publish(&settings, &minute_chunks("BTC_ETH", 20_000)).await;

    let mut service = ServiceProcess::start(&settings);
    results.take(40, TEST_DEADLINE).await.unwrap();
    let early = service.rss_kib();
    results.take(160, TEST_DEADLINE).await.unwrap();
    let late = service.rss_kib();
    assert!(service.terminate(EXIT_TIMEOUT).success());
    let drained = service.wait_for("its drain", EXIT_TIMEOUT, |l| l.contains("drained: "));
    let received = drained_received(&drained);
    eprintln!(
        "back-pressure test: RSS {early} KiB after 40 results, {late} KiB after 200; {received} of 20000 chunks taken"
    );
    // Taken: what was answered by the SIGTERM plus at most `in_flight`; a consumer without
    // back-pressure would have taken the backlog whole. The slack covers the answers that land
    // between the 200th result and the signal (a few at 40 chunks/s).
    assert!(
        received <= 200 + in_flight as u64 + 50,
        "{received} chunks taken"
    );
    assert!(
        late < early + 16 * 1024,
        "memory grew from {early} KiB to {late} KiB"
    );
    sim.stop().await;
}

#[actix_rt::test]
async fn topics_are_listed_and_creation_is_idempotent_or_clearly_refused() {
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_settings(&sim, 1, 10, "cli").await;
    let env = service_env(&settings);
    let (ok, listed, err) = run_cli(&["topics", "list"], &env);
    assert!(ok, "{err}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&settings.topics.todo) && l.contains("2 partitions")),
        "{listed}"
    );
    let (ok, created, err) = run_cli(&["topics", "create"], &env);
    if real_cluster().is_some() {
        // A real cluster: the topics exist, so creating them again is not an error.
        assert!(ok, "{err}");
        assert_eq!(created.matches("exists already").count(), 3, "{created}");
    } else {
        // The mock broker has no CreateTopics: a bounded wait, then what to do.
        assert!(!ok, "{created}");
        assert!(
            err.contains("create the topics with the broker's own tools"),
            "{err}"
        );
    }
    sim.stop().await;
}

#[test]
fn topics_create_refuses_more_replicas_than_brokers_before_asking() {
    // The mock broker has one broker, and no real test cluster has 100: refused before any
    // CreateTopics request, which the mock could not answer anyway, naming the key and the
    // brokers that answered.
    let env = vec![
        ("CLONER__KAFKA__BOOTSTRAP_SERVERS".to_string(), bootstrap()),
        ("CLONER__TOPICS__REPLICATION".to_string(), "100".to_string()),
    ];
    let (ok, out, err) = run_cli(&["topics", "create"], &env);
    assert!(!ok, "{out}");
    assert!(
        err.contains("topics.replication is 100 but")
            && err.contains("answered")
            && err.contains("set topics.replication (CLONER__TOPICS__REPLICATION) to at most"),
        "{err}"
    );
    if real_cluster().is_none() {
        assert!(err.contains("only one broker answered"), "{err}");
        assert!(err.contains("at most 1,"), "{err}");
    }
}

#[actix_rt::test]
async fn serve_says_what_to_do_when_the_broker_cannot_be_reached() {
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_settings(&sim, 1, 10, "unreachable").await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = service_env(&settings);
    env.push((
        "CLONER__KAFKA__BOOTSTRAP_SERVERS".into(),
        format!("127.0.0.1:{closed_port}"),
    ));
    let (ok, _, err) = run_cli(&["serve"], &env);
    assert!(!ok);
    assert!(
        err.contains("cannot reach Kafka at") && err.contains("CLONER__KAFKA__BOOTSTRAP_SERVERS"),
        "{err}"
    );
    sim.stop().await;
}

#[actix_rt::test]
async fn serve_names_a_missing_topic_and_how_to_create_it() {
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_settings(&sim, 1, 10, "missing").await;
    let mut env = service_env(&settings);
    let missing = unique("missing.finished");
    env.push(("CLONER__TOPICS__FINISHED".into(), missing.clone()));
    let (ok, _, err) = run_cli(&["serve"], &env);
    assert!(!ok);
    assert!(
        err.contains(&format!("topic `{missing}` does not exist"))
            && err.contains("cloner-worker topics create"),
        "{err}"
    );
    sim.stop().await;
}

#[test]
fn the_demo_refuses_a_pair_that_cannot_be_a_chunks() {
    let (ok, _, err) = run_cli(&["demo", "--pair", "btc-eth"], &[]);
    assert!(!ok);
    assert!(
        err.contains("--pair") && err.contains("invalid currency pair"),
        "{err}"
    );
}

#[test]
fn the_demo_clones_binance_within_its_weight_budget_and_refuses_a_poloniex_pair_there() {
    // Six hours: 05:00:00.123 holds 2500 trades, reached by id.
    let (ok, summary, err) = run_cli(&["demo", "--venue", "binance", "--hours", "6"], &[]);
    assert!(ok, "{err}");
    assert!(summary.contains("clone of BTCUSDT"), "{summary}");
    assert!(summary.contains("no gaps"), "{summary}");
    assert!(
        summary.contains("upstream: binance (100 weight/s)") && summary.contains(", 0 refused)"),
        "{summary}"
    );
    assert!(
        summary.contains("(the budget is 6000 a minute)"),
        "{summary}"
    );
    let (ok, _, err) = run_cli(&["demo", "--venue", "binance", "--pair", "USDT_BTC"], &[]);
    assert!(!ok);
    assert!(err.contains("like BTCUSDT"), "{err}");
}

#[test]
fn the_demo_refuses_an_output_file_it_cannot_tell_the_format_of() {
    let (ok, _, err) = run_cli(&["demo", "--out", "trades.txt"], &[]);
    assert!(!ok);
    assert!(
        err.contains("--out trades.txt: use a .csv, .jsonl or .parquet file name"),
        "{err}"
    );
}

#[test]
fn the_demo_clones_through_its_embedded_broker_and_prints_a_summary() {
    let (ok, summary, err) = run_cli(&["demo", "--hours", "3"], &[]);
    assert!(ok, "{err}");
    // Busy hours: pages kept, nothing halved.
    assert!(summary.contains(" pages kept, 0 splits"), "{summary}");
    assert!(summary.contains("no gaps"), "{summary}");
    assert!(
        summary.contains("0 calls over the exchange's limit"),
        "{summary}"
    );
}

/// `topics create` through the real admin API prints the replication and `min.insync.replicas`
/// it chose, and the cluster then reports exactly those: on the suite's cluster (3 nodes in
/// scripts/test: replication 3, min.insync.replicas 2) and on a 1-node cluster of its own
/// (replication 1, the broker's own min.insync.replicas, 1).
#[actix_rt::test]
async fn topics_create_prints_the_replication_the_cluster_then_reports() {
    let Some(shared) = real_cluster() else {
        eprintln!("skipped: the mock broker has no CreateTopics");
        return;
    };
    let one = ApacheCluster::start(1);
    for (bootstrap, brokers) in [
        (shared.clone(), metadata(&shared).brokers().len()),
        (one.bootstrap.clone(), 1),
    ] {
        let names = [
            unique("created.todo"),
            unique("created.finished"),
            unique("created.dlq"),
        ];
        let env: Vec<(String, String)> = [
            ("CLONER__KAFKA__BOOTSTRAP_SERVERS", bootstrap.as_str()),
            ("CLONER__TOPICS__TODO", &names[0]),
            ("CLONER__TOPICS__FINISHED", &names[1]),
            ("CLONER__TOPICS__DEAD_LETTER", &names[2]),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (ok, out, err) = run_cli(&["topics", "create"], &env);
        assert!(ok, "{out}{err}");
        let (replication, min_insync) = if brokers >= 3 {
            (3, "2")
        } else {
            (brokers, "1")
        };
        let mut settings = cloner_worker::config::Settings::default();
        settings.kafka.set("bootstrap.servers", bootstrap.clone());
        for topic in &names {
            let said = out
                .lines()
                .find(|l| l.starts_with(&format!("created {topic} ")))
                .unwrap_or_else(|| panic!("{topic} created: {out}"));
            let printed_min = if brokers >= 3 {
                format!(", min.insync.replicas {min_insync}")
            } else {
                String::new()
            };
            assert_eq!(
                said,
                format!("created {topic} (2 partitions, replication {replication}{printed_min})"),
                "{out}"
            );
            assert_eq!(
                replication_of(&settings, topic).await,
                (replication, min_insync.to_string()),
                "{topic} on {brokers} broker(s), as read back from the cluster"
            );
        }
    }
}

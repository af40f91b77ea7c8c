//! Kafka set-up for the integration tests: the cluster `scripts/kafka-up` started (or a
//! real cluster given by `KAFKA_BOOTSTRAP`), unique topics and groups per test, the environment
//! that gives a service child process (`super::process`) those settings, and what the tests read
//! back.
//!
//! Nothing here relies on mock-only behaviour except topic creation, which goes through the
//! mock's control port when the shared broker is the mock and the admin API otherwise. A test
//! that needs the mock's injected faults starts a mock of its own
//! ([`super::process::BrokerProcess`]), and one that kills real brokers a cluster of its own
//! ([`super::cluster::ApacheCluster`]), so as not to disturb the tests that share this one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use cloner_worker::clone::requester::{self, chunk_key, Record, TopicReader};
use cloner_worker::config::{KafkaRole, KafkaValue, Settings};
use cloner_worker::dev::mock_broker;
use cloner_worker::dev::simulator::{SimulatorConfig, SimulatorHandle};
use cloner_worker::kafka::{client, topics};
use cloner_worker::proto::{ClonedChunk, TodoChunk};

use super::process::BrokerProcess;
use super::{unlimited_settings, DAY, TEST_DEADLINE};

/// How long a service may take to drain and exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where `scripts/kafka-up` writes the mock broker's addresses.
fn run_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".run/kafka")
}

/// The broker to test against: `KAFKA_BOOTSTRAP`, or the one `scripts/kafka-up` started.
pub fn bootstrap() -> String {
    if let Ok(b) = std::env::var("KAFKA_BOOTSTRAP") {
        return b;
    }
    let bootstrap = std::fs::read_to_string(run_dir().join("bootstrap")).unwrap_or_else(|_| {
        panic!("no Kafka broker: run scripts/kafka-up first (scripts/test does), or set KAFKA_BOOTSTRAP=host:port")
    });
    bootstrap.trim().to_string()
}

/// The real cluster's bootstrap addresses, when the suite runs against one: `KAFKA_BOOTSTRAP`, or
/// the Apache Kafka cluster `scripts/kafka-up --apache` started (`.run/kafka/kind` says which
/// kind it started). `None` on the mock.
pub fn real_cluster() -> Option<String> {
    if let Ok(b) = std::env::var("KAFKA_BOOTSTRAP") {
        return Some(b);
    }
    let kind = std::fs::read_to_string(run_dir().join("kind")).unwrap_or_default();
    (kind.trim() == "apache").then(bootstrap)
}

/// The control port of the mock broker `scripts/kafka-up` started.
fn mock_control_addr() -> SocketAddr {
    let path = run_dir().join("control");
    let control = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no {}: run scripts/kafka-up first (scripts/test does)",
            path.display()
        )
    });
    control
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a control address in {}: {control:?}", path.display()))
}

/// Results by the key they carry; also checks each carries the key of its own chunk.
pub fn results_by_key(records: &[Record]) -> BTreeMap<String, Vec<ClonedChunk>> {
    let mut by_key: BTreeMap<String, Vec<ClonedChunk>> = BTreeMap::new();
    for record in records {
        let result = record.cloned_chunk().expect("results decode");
        let chunk = result.original_todo_chunk.as_ref().expect("has its chunk");
        assert_eq!(
            record.key_str(),
            chunk_key(chunk),
            "a result carries its chunk's key"
        );
        by_key.entry(record.key_str()).or_default().push(result);
    }
    by_key
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Settings for a service on the test broker with its own topics (2 partitions, created) and
/// group, against `upstream`.
pub async fn kafka_settings(base: Settings, test: &str) -> Settings {
    let s = own_names(base, bootstrap(), test);
    s.validate().expect("test settings are valid");
    create_topics(&s).await;
    s
}

/// Settings for a service on `broker` (a test's own mock cluster), with its own topics (2
/// partitions, created through its control port) and group. A service child process on them
/// also needs `CLONER__KAFKA__BOOTSTRAP_SERVERS` set to `broker.bootstrap` ([`service_env`]
/// names the shared broker).
pub fn settings_on(broker: &BrokerProcess, base: Settings, test: &str) -> Settings {
    let s = own_names(base, broker.bootstrap.clone(), test);
    for topic in [&s.topics.todo, &s.topics.finished, &s.topics.dead_letter] {
        broker
            .control(&format!("create {topic} 2"))
            .expect("the topic is created");
    }
    s.validate().expect("test settings are valid");
    s
}

/// Settings for a service on a real cluster of the test's own at `bootstrap`, with its own
/// topics (created through the admin API, as `topics create` creates them) and group. A service
/// child process on them also needs `CLONER__KAFKA__BOOTSTRAP_SERVERS` set to `bootstrap`.
pub async fn settings_on_cluster(bootstrap: &str, base: Settings, test: &str) -> Settings {
    let s = own_names(base, bootstrap.to_string(), test);
    s.validate().expect("test settings are valid");
    topics::create(&s, &topics::service_topics(&s))
        .await
        .expect("the cluster creates the topics");
    s
}

/// `base` on `bootstrap`, with topics and a group of the test's own.
fn own_names(base: Settings, bootstrap: String, test: &str) -> Settings {
    let mut s = base;
    s.kafka.set("bootstrap.servers", bootstrap);
    s.topics.todo = unique(&format!("{test}.todo"));
    s.topics.finished = unique(&format!("{test}.finished"));
    s.topics.dead_letter = unique(&format!("{test}.dlq"));
    s.kafka.consumer.insert(
        "group_id".into(),
        KafkaValue::Str(unique(&format!("{test}.group"))),
    );
    // Less time per consumer hop on the mock broker, which holds an empty fetch this long even
    // when data arrives meanwhile; harmless on a real one.
    s.kafka
        .consumer
        .insert("fetch_wait_max_ms".into(), KafkaValue::Int(10));
    s
}

/// Creates the service's topics with `settings.topics.partitions` partitions.
pub async fn create_topics(settings: &Settings) {
    let names = topics::service_topics(settings);
    if real_cluster().is_some() {
        topics::create(settings, &names)
            .await
            .expect("the broker creates the topics");
        return;
    }
    let control = mock_control_addr();
    for name in names {
        mock_broker::create_topic_via_control(control, name, settings.topics.partitions)
            .expect("the mock broker creates the topic");
    }
}

/// The environment that gives a `cloner-worker serve` child these settings' Kafka side (their
/// bootstrap servers: the shared cluster's, or those of a cluster of the test's own), topics
/// and upstream (the rest as given in `extra`).
pub fn service_env(settings: &Settings) -> Vec<(String, String)> {
    service_env_on(settings, &settings.kafka.bootstrap_servers())
}

/// [`service_env`] on `bootstrap` (a listener other than the settings' own).
pub fn service_env_on(settings: &Settings, bootstrap: &str) -> Vec<(String, String)> {
    let consumer = settings.kafka.properties(KafkaRole::Consumer).unwrap();
    vec![
        (
            "CLONER__KAFKA__BOOTSTRAP_SERVERS".into(),
            bootstrap.to_string(),
        ),
        (
            "CLONER__KAFKA__CONSUMER__GROUP_ID".into(),
            consumer["group.id"].clone(),
        ),
        (
            "CLONER__KAFKA__CONSUMER__FETCH_WAIT_MAX_MS".into(),
            consumer["fetch.wait.max.ms"].clone(),
        ),
        ("CLONER__TOPICS__TODO".into(), settings.topics.todo.clone()),
        (
            "CLONER__TOPICS__FINISHED".into(),
            settings.topics.finished.clone(),
        ),
        (
            "CLONER__TOPICS__DEAD_LETTER".into(),
            settings.topics.dead_letter.clone(),
        ),
        (
            "CLONER__UPSTREAM__BASE_URL".into(),
            settings.upstream.base_url().to_string(),
        ),
        (
            "CLONER__UPSTREAM__VENUE".into(),
            settings.upstream.venue.as_str().into(),
        ),
        ("CLONER__N_WORKERS".into(), settings.n_workers.to_string()),
        (
            "CLONER__DEFAULT_RATE".into(),
            settings.default_rate.to_string(),
        ),
        // Services of parallel tests must not fight for one port.
        ("CLONER__HTTP__LISTEN".into(), "127.0.0.1:0".into()),
        (
            "CLONER__RATE_LIMITER__UNLIMITED".into(),
            settings.rate_limiter.unlimited.to_string(),
        ),
        // A test that widens the allowance for late arrivals must widen the members' too.
        (
            "CLONER__RATE_LIMITER__JITTER_MS".into(),
            settings.rate_limiter.jitter_ms.to_string(),
        ),
        (
            "CLONER__CONSUMER__MAX_IN_FLIGHT".into(),
            settings.max_in_flight().to_string(),
        ),
        (
            "CLONER__CONSUMER__DRAIN_GRACE_MS".into(),
            settings.consumer.drain_grace_ms.to_string(),
        ),
        (
            "CLONER__UPSTREAM__REQUEST_TIMEOUT_MS".into(),
            settings.upstream.request_timeout_ms.to_string(),
        ),
        (
            "CLONER__UPSTREAM__BACKOFF_BASE_MS".into(),
            settings.upstream.backoff_base_ms.to_string(),
        ),
        (
            "CLONER__UPSTREAM__BACKOFF_MAX_MS".into(),
            settings.upstream.backoff_max_ms.to_string(),
        ),
        (
            "CLONER__UPSTREAM__KEEP_PAGES".into(),
            settings.upstream.keep_pages.to_string(),
        ),
    ]
    .into_iter()
    .chain(
        settings
            .clone
            .window_secs
            .map(|secs| ("CLONER__CLONE__WINDOW_SECS".into(), secs.to_string())),
    )
    .collect()
}

/// The `drained: N received …` count a service logs when it drains.
pub fn drained_received(line: &str) -> u64 {
    line.split("drained: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a drain line: {line}"))
}

/// The group's committed offset and the log end of every partition of `topic`.
pub fn committed_and_end(settings: &Settings, topic: &str) -> BTreeMap<i32, (i64, i64)> {
    let config = client::client_config(&settings.kafka, KafkaRole::Consumer).unwrap();
    let consumer: BaseConsumer = config.create().expect("a consumer");
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, timeout).unwrap();
    (0..partitions)
        .map(|p| {
            let (_, end) = consumer.fetch_watermarks(topic, p, timeout).unwrap();
            let c = match committed.find_partition(topic, p).unwrap().offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            (p, (c, end))
        })
        .collect()
}

/// `n` one-minute chunks of a calm pair: small COMPLETE answers.
pub fn minute_chunks(pair: &str, n: i32) -> Vec<TodoChunk> {
    (0..n)
        .map(|i| TodoChunk {
            currency_pair: pair.into(),
            from_unix_ts: DAY + i64::from(i) * 60,
            until_unix_ts: DAY + i64::from(i) * 60 + 59,
            task_dbid: i,
            ..Default::default()
        })
        .collect()
}

/// A service against `sim`, `workers` workers, limiter off, at most `in_flight` chunks taken.
pub async fn service_settings(
    sim: &SimulatorHandle,
    workers: usize,
    in_flight: usize,
    test: &str,
) -> Settings {
    let mut base = unlimited_settings(sim, workers);
    base.consumer.max_in_flight = Some(in_flight);
    kafka_settings(base, test).await
}

pub async fn publish(settings: &Settings, chunks: &[TodoChunk]) {
    let producer = requester::producer(settings).unwrap();
    requester::publish_chunks(&producer, &settings.topics.todo, chunks)
        .await
        .unwrap();
}

/// Every chunk's key has at least one result; the number of duplicates.
pub async fn all_answered(
    results: &TopicReader,
    chunks: &[TodoChunk],
    seen: &mut Vec<Record>,
) -> usize {
    let wanted: BTreeSet<String> = chunks.iter().map(chunk_key).collect();
    loop {
        let keys: BTreeSet<String> = seen.iter().map(Record::key_str).collect();
        if wanted.is_subset(&keys) {
            return seen.len() - keys.len();
        }
        let record = tokio::time::timeout(TEST_DEADLINE, results.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} of {} chunks answered within {TEST_DEADLINE:?}",
                    keys.len(),
                    wanted.len()
                )
            })
            .unwrap();
        seen.push(record);
    }
}

/// A simulator slow enough that a run is still going when the test acts on it.
pub fn slow_simulator(latency_ms: u64) -> SimulatorConfig {
    SimulatorConfig {
        latency_ms,
        rate_limit: 0,
        ..SimulatorConfig::default()
    }
}

//! The test broker's fault injection (`cloner-worker broker`'s control port, see
//! `docs/kafka-here.md`), seen by a librdkafka client: a broker taken down holds its partitions'
//! messages until it is up again; injected Produce errors reach a client that does not retry
//! and are retried through by one that does; `clear` drops what was not used.
//!
//! These tests keep the mock because they test its fault injection itself. Each starts its own
//! broker process ([`BrokerProcess`]), so that a broker taken down disturbs nobody else.

use std::time::Duration;

use futures_util::FutureExt as _;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use cloner_worker::dev::mock_broker;

use crate::helpers::kafka::unique;
use crate::helpers::process::BrokerProcess;
use crate::helpers::TEST_DEADLINE;

/// A producer on `bootstrap` with `acks=all`, reconnecting quickly to a broker that comes back,
/// and `extra` properties.
fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().expect("a producer")
}

/// Produces one message to `partition` of `topic` and waits for its delivery report (within the
/// test deadline); the offset it got, or why it failed.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
) -> Result<i64, KafkaError> {
    let record = FutureRecord::to(topic)
        .partition(partition)
        .key("k")
        .payload("v");
    let delivery = producer
        .send_result(record)
        .map_err(|(e, _)| e)
        .expect("the message is queued");
    let report = tokio::time::timeout(TEST_DEADLINE, delivery)
        .await
        .expect("a delivery report within the test deadline")
        .expect("the producer is alive");
    report.map(|d| d.offset).map_err(|(e, _)| e)
}

/// The leader and the replicas of `partition` of `topic`, from the cluster's metadata.
fn leader_and_replicas(producer: &FutureProducer, topic: &str, partition: i32) -> (i32, Vec<i32>) {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let p = metadata.topics()[0]
        .partitions()
        .iter()
        .find(|p| p.id() == partition)
        .expect("the partition is in the metadata");
    (p.leader(), p.replicas().to_vec())
}

#[actix_rt::test]
async fn a_partition_whose_leader_is_down_takes_nothing_until_the_leader_is_up() {
    let broker = BrokerProcess::start(3);
    let topic = unique("broker.down");
    broker.control(&format!("create {topic} 2")).unwrap();
    // The mock picks leaders at random; this one is set, and the metadata says so.
    broker.control(&format!("leader {topic} 0 2")).unwrap();
    let patient = producer(&broker.bootstrap, &[]);
    let (leader, mut replicas) = leader_and_replicas(&patient, &topic, 0);
    replicas.sort();
    assert_eq!(
        (leader, replicas),
        (2, vec![1, 2, 3]),
        "min(3, brokers) replicas"
    );
    assert_eq!(produce(&patient, &topic, 0).await, Ok(0), "all brokers up");

    broker.control("down 2").unwrap();
    // A message for partition 0 now waits for its leader: this one for as long as its
    // producer's default message.timeout.ms (5 minutes)…
    let mut waiting = patient
        .send_result(FutureRecord::to(&topic).partition(0).key("k").payload("v"))
        .map_err(|(e, _)| e)
        .expect("the message is queued");
    // …and this one for 2 s, after which it fails: nothing reaches a partition whose leader is
    // down (the mock moves no leader by itself).
    let impatient = producer(&broker.bootstrap, &[("message.timeout.ms", "2000")]);
    assert_eq!(
        produce(&impatient, &topic, 0).await,
        Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut
        )),
        "a produce to partition 0 while its leader is down"
    );
    assert!(
        (&mut waiting).now_or_never().is_none(),
        "the first message is still waiting while the leader is down"
    );

    broker.control("up 2").unwrap();
    let delivered = tokio::time::timeout(TEST_DEADLINE, waiting)
        .await
        .expect("the waiting message is delivered once the leader is up")
        .expect("the producer is alive");
    assert_eq!(delivered.map(|d| d.offset).map_err(|(e, _)| e), Ok(1));
    assert_eq!(
        produce(&impatient, &topic, 0).await,
        Ok(2),
        "the leader is up"
    );
}

#[actix_rt::test]
async fn injected_produce_errors_are_retried_through_and_cleared_ones_are_not_used() {
    let broker = BrokerProcess::start(3);
    let topic = unique("broker.errors");
    broker.control(&format!("create {topic} 2")).unwrap();
    // Without retries the injected error reaches the application as it is.
    let once = producer(&broker.bootstrap, &[("retries", "0")]);
    broker
        .control("errors Produce NOT_ENOUGH_REPLICAS")
        .unwrap();
    assert_eq!(
        produce(&once, &topic, 0).await,
        Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::NotEnoughReplicas
        ))
    );

    // With librdkafka's default retries one message goes through three failed requests, and is
    // written once.
    let retrying = producer(&broker.bootstrap, &[("retry.backoff.ms", "10")]);
    broker
        .control("errors Produce NOT_ENOUGH_REPLICAS NOT_ENOUGH_REPLICAS_AFTER_APPEND NOT_ENOUGH_REPLICAS")
        .unwrap();
    assert_eq!(produce(&retrying, &topic, 0).await, Ok(0));
    // It used all three: a produce without retries goes through now.
    assert_eq!(produce(&once, &topic, 0).await, Ok(1));

    // Errors cleared before any request used them are never used.
    broker
        .control("errors Produce NOT_ENOUGH_REPLICAS NOT_ENOUGH_REPLICAS")
        .unwrap();
    broker.control("errors Produce clear").unwrap();
    assert_eq!(produce(&once, &topic, 1).await, Ok(0));
}

#[test]
fn the_control_port_says_what_is_wrong_with_a_command() {
    // The mock's own broker: the suite's shared cluster is Apache Kafka, without a control port.
    let broker = BrokerProcess::start(1);
    let topic = unique("broker.control");
    broker
        .control(&format!("create {topic} 3"))
        .expect("the broker creates a topic");
    let refusal = |line: &str| match broker.control(line) {
        Err(mock_broker::ControlError::Refused { reason, .. }) => reason,
        other => panic!("{line:?} is refused, not {other:?}"),
    };
    let reason = refusal("errors Produce NO_SUCH_ERROR");
    assert!(
        reason.starts_with("unknown error name \"NO_SUCH_ERROR\"; accepted: NOT_ENOUGH_REPLICAS,"),
        "{reason}"
    );
    let reason = refusal(&format!("leader {topic} 3 1"));
    assert!(reason.contains("partitions 0 to 2, got 3"), "{reason}");
    let reason = refusal("down 99");
    assert!(
        reason.starts_with("no broker 99: this cluster's brokers are 1"),
        "{reason}"
    );
    let reason = refusal("down");
    assert_eq!(reason, "expected `down BROKER_ID`, got \"down\"");
}

//! `serve` on a real Apache Kafka cluster of three nodes of the test's own
//! ([`ApacheCluster`], started by `scripts/kafka-up --apache --brokers 3`) while brokers are
//! SIGKILLed: topics with replication 3 and `min.insync.replicas` 2 as `topics create` makes
//! them, results produced with `acks=all` by the idempotent producer. What the mock cannot show:
//! a real failover (new leaders elected from the in-sync replicas, a new group coordinator
//! loading the group's offsets), a real producer's sequence checks, data that must survive.
//!
//! Each test checks, through [`Run::finish`], that no result is lost, every answer is the
//! simulator's ground truth and the todo topic is committed to its end (so no offset was
//! committed ahead of its result), and bounds the duplicates by what can be in flight.

use cloner_worker::config::KafkaRole;

use crate::helpers::cluster::{leader_of, metadata, replication_of, ApacheCluster};
use crate::helpers::fault_run::*;
use crate::helpers::process::*;
use crate::helpers::*;

/// Chunks per run on the real cluster: about ten seconds of work at 2 workers and 40 ms a call.
const CLUSTER_CHUNKS: i32 = 400;

/// A run's duplicates are bounded by what one member can have in flight (8 chunks, the runs'
/// `consumer.max_in_flight`) plus what it answered since its last commit (auto-commit every
/// second: 2 workers at 40 ms a call answer about 50), per fault: a fault can make the member
/// lose its place at most once.
const DUPLICATES_PER_FAULT: usize = 8 + 50;

/// Java's `String.hashCode`, with which Kafka places a group on a partition of
/// `__consumer_offsets` (`Utils.abs(groupId.hashCode()) % partitions`).
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32))
}

/// The broker coordinating `group`: the leader of its partition of `__consumer_offsets`.
fn coordinator_of(bootstrap: &str, group: &str) -> i32 {
    let metadata = metadata(bootstrap);
    let offsets = metadata
        .topics()
        .iter()
        .find(|t| t.name() == "__consumer_offsets")
        .expect("__consumer_offsets exists once a group has joined");
    let partitions = offsets.partitions().len() as i32;
    assert!(partitions > 0, "__consumer_offsets has partitions");
    let partition = (java_hash(group) & 0x7fff_ffff) % partitions;
    leader_of(bootstrap, "__consumer_offsets", partition)
}

fn group_of(run: &Run) -> String {
    run.settings.kafka.properties(KafkaRole::Consumer).unwrap()["group.id"].clone()
}

#[actix_rt::test]
async fn a_broker_killed_while_chunks_flow_loses_nothing() {
    let test = "cluster.broker-killed";
    let cluster = ApacheCluster::start(3);
    let mut run = Run::on_apache(test, cluster, CLUSTER_CHUNKS).await;
    for topic in [&run.settings.topics.todo, &run.settings.topics.finished] {
        assert_eq!(
            replication_of(&run.settings, topic).await,
            (3, "2".to_string()),
            "{topic}: replication 3, min.insync.replicas 2, as topics create makes them"
        );
    }
    let service = run.serve(&[]);
    run.read_until(BEFORE_FAULT, &service).await;
    // The broker that leads the results' first partition: the producer must move to the new
    // leader, elected from the in-sync replicas, and lose nothing acknowledged.
    let bootstrap = run.cluster().bootstrap.clone();
    let victim = leader_of(&bootstrap, &run.settings.topics.finished, 0);
    run.cluster().kill(victim);
    eprintln!(
        "{test}: SIGKILLed node {victim} after {} results",
        run.seen.len()
    );
    let duplicates = run.finish(test, service).await;
    assert!(
        duplicates <= DUPLICATES_PER_FAULT,
        "{test}: {duplicates} duplicates for one broker killed"
    );
}

#[actix_rt::test]
async fn the_group_coordinators_broker_killed_mid_run_loses_nothing() {
    let test = "cluster.coordinator-killed";
    let cluster = ApacheCluster::start(3);
    let mut run = Run::on_apache(test, cluster, CLUSTER_CHUNKS).await;
    let mut service = run.serve(&[]);
    service.wait_for("both partitions", TEST_DEADLINE, holds_two_partitions);
    run.read_until(BEFORE_FAULT, &service).await;
    let bootstrap = run.cluster().bootstrap.clone();
    let victim = coordinator_of(&bootstrap, &group_of(&run));
    run.cluster().kill(victim);
    eprintln!(
        "{test}: SIGKILLed node {victim}, the group's coordinator, after {} results",
        run.seen.len()
    );
    // Past a few auto-commits at the new coordinator.
    run.read_until(run.seen.len() + 100, &service).await;
    let after = coordinator_of(&bootstrap, &group_of(&run));
    assert_ne!(
        after, victim,
        "{test}: another broker coordinates the group"
    );
    let duplicates = run.finish(test, service).await;
    assert!(
        duplicates <= DUPLICATES_PER_FAULT,
        "{test}: {duplicates} duplicates for the coordinator killed"
    );
}

#[actix_rt::test]
async fn a_broker_restarted_mid_run_rejoins_and_a_second_one_killed_loses_nothing() {
    let test = "cluster.broker-restarted";
    let cluster = ApacheCluster::start(3);
    let mut run = Run::on_apache(test, cluster, CLUSTER_CHUNKS).await;
    let service = run.serve(&[]);
    run.read_until(BEFORE_FAULT, &service).await;
    let bootstrap = run.cluster().bootstrap.clone();
    let first = leader_of(&bootstrap, &run.settings.topics.todo, 0);
    run.cluster().kill(first);
    run.read_until(run.seen.len() + 60, &service).await;
    // Back with the same port and data; kafka-up leaves the two running nodes alone.
    let before: Vec<_> = run.cluster().nodes();
    let said = run.cluster().restart_stopped();
    assert!(
        said.contains(&format!("restarted node(s) {first}")),
        "{said}"
    );
    let after = run.cluster().nodes();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.port, a.port, "node {} keeps its port", b.id);
        if b.id != first {
            assert_eq!(b.pid, a.pid, "node {} was left alone", b.id);
        }
    }
    run.read_until(run.seen.len() + 60, &service).await;
    // Another node down: with the first one back among the in-sync replicas, two of three
    // still satisfy min.insync.replicas 2.
    let second = (1..=3).find(|&id| id != first).unwrap();
    run.cluster().kill(second);
    eprintln!("{test}: node {first} killed and restarted, then node {second} killed");
    let duplicates = run.finish(test, service).await;
    assert!(
        duplicates <= 2 * DUPLICATES_PER_FAULT,
        "{test}: {duplicates} duplicates for two brokers killed"
    );
}

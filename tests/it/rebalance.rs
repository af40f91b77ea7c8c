//! Rebalances around a busy member: `serve` child processes sharing a consumer group.
//!
//! - A member whose every in-flight slot is taken by a hung upstream still takes part in a
//!   rebalance (it pauses its partitions and keeps polling), so a new member gets its partitions
//!   within the session timeout and a few seconds, not after `max.poll.interval.ms`.
//! - A member that loses a partition does not clone that partition's queued chunks: the calls
//!   the exchange sees stay within the chunks plus what was already with a worker.
//!
//! Each runs under both consumer group protocols: the classic one (the members assign, the
//! default) and KIP-848's `group.protocol = consumer` (the broker assigns), whose revocations
//! reach the same callbacks by another path.

use std::time::{Duration, Instant};

use cloner_worker::dev::simulator::SimulatorConfig;

use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

/// The environment that selects a consumer group protocol for a `serve` child.
fn protocol_env(protocol: &str) -> (&'static str, &str) {
    ("CLONER__KAFKA__CONSUMER__GROUP_PROTOCOL", protocol)
}

#[actix_rt::test]
async fn a_member_saturated_by_a_hung_upstream_still_lets_a_new_member_in() {
    saturated_member_lets_a_new_member_in("classic").await;
}

#[actix_rt::test]
async fn with_the_consumer_protocol_a_saturated_member_still_lets_a_new_member_in() {
    saturated_member_lets_a_new_member_in("consumer").await;
}

async fn saturated_member_lets_a_new_member_in(protocol: &str) {
    // Every call hangs, for longer than the test: once a member has taken its in-flight chunks
    // it has no free slot until the end.
    let sim = start_simulator(SimulatorConfig {
        hang_rate: 1.0,
        ..no_rate_limit()
    })
    .await;
    let mut base = unlimited_settings(&sim, 2);
    base.consumer.max_in_flight = Some(4);
    base.upstream.request_timeout_ms = 600_000;
    let settings = kafka_settings(base, "saturated").await;
    publish(&settings, &minute_chunks("BTC_LTC", 40)).await;

    // The pause is logged at debug: that line is the event this test waits for.
    let log = (
        "RUST_LOG",
        "info,actix_server=warn,cloner_worker::service::intake=debug",
    );
    let mut a = ServiceProcess::start_with_env(&settings, &[log, protocol_env(protocol)]);
    a.wait_for("both partitions", TEST_DEADLINE, holds_two_partitions);
    a.wait_for("its pause, every slot taken", TEST_DEADLINE, |l| {
        l.contains("every in-flight slot taken: paused")
    });

    let joined = Instant::now();
    let mut b = ServiceProcess::start_with_env(&settings, &[protocol_env(protocol)]);
    // Session timeout (6 s) and a join; without the pause-and-poll, a waits in a permit
    // acquisition and the rebalance waits for max.poll.interval.ms.
    let within = Duration::from_secs(30);
    b.wait_for(
        "a partition, from the saturated member",
        within,
        holds_one_partition,
    );
    eprintln!(
        "{protocol} protocol: the new member had its partition after {:?}",
        joined.elapsed()
    );
    a.wait_for("the partition it kept", within, holds_one_partition);
    a.kill();
    b.kill();
    sim.stop().await;
}

#[actix_rt::test]
async fn a_revoked_partition_s_queued_chunks_are_not_cloned_by_the_old_owner() {
    revoked_partitions_queued_chunks_stay_with_their_new_owner("classic").await;
}

#[actix_rt::test]
async fn with_the_consumer_protocol_a_revoked_partition_s_queued_chunks_are_not_cloned() {
    revoked_partitions_queued_chunks_stay_with_their_new_owner("consumer").await;
}

async fn revoked_partitions_queued_chunks_stay_with_their_new_owner(protocol: &str) {
    // Two workers at 200 ms a call: ten chunks a second, so the first member still holds most
    // of its chunks, queued, when the second joins.
    let sim = start_simulator(slow_simulator(200)).await;
    let n_workers = 2;
    let settings = service_settings(&sim, n_workers, 200, "revoked").await;
    let results = cloner_worker::clone::requester::TopicReader::new(
        &settings.kafka,
        &settings.topics.finished,
    )
    .unwrap();
    let chunks = minute_chunks("BTC_LTC", 200);
    publish(&settings, &chunks).await;

    let env = [protocol_env(protocol)];
    let mut a = ServiceProcess::start_with_env(&settings, &env);
    a.wait_for("both partitions", TEST_DEADLINE, holds_two_partitions);
    let mut b = ServiceProcess::start_with_env(&settings, &env);
    b.wait_for("a partition", TEST_DEADLINE, holds_one_partition);
    a.wait_for("the revocation", TEST_DEADLINE, |l| {
        l.contains("partitions revoked: ")
    });
    let mut seen = Vec::new();
    let duplicates = all_answered(&results, &chunks, &mut seen).await;
    let calls = sim.stats().calls;
    eprintln!(
        "{protocol} protocol: {} chunks: {calls} calls, {duplicates} results twice",
        chunks.len()
    );
    // Cloned twice at most: what was with the first member's workers at the revocation, and
    // what they had answered whose result was not yet acknowledged. Without the withdrawal the
    // first member would clone every queued chunk of the revoked partition, tens more.
    let at_most = chunks.len() as u64 + 2 * n_workers as u64;
    assert!(
        calls <= at_most,
        "{calls} calls for {} chunks: the old owner cloned queued chunks it no longer owned",
        chunks.len()
    );
    assert!(a.terminate(EXIT_TIMEOUT).success());
    assert!(b.terminate(EXIT_TIMEOUT).success());
    sim.stop().await;
}

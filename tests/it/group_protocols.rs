//! The two consumer group protocols measured on a real 3-node Apache Kafka cluster of the
//! test's own, for the README and the choice of the default: the classic protocol (members
//! assign; `session.timeout.ms` 6 s from config/default.toml) and KIP-848's
//! `group.protocol = consumer` (the broker assigns; its session timeout is the broker's
//! `group.consumer.session.timeout.ms`, Kafka's default 45 s, which kafka-up leaves as it is).
//!
//! For each protocol, one member runs; `CYCLES` times a second member joins (time until it holds
//! a partition, from its start), leaves by SIGTERM (time until the first holds both again), joins
//! again and is SIGKILLed (time until the first holds both again). After each event, results are
//! read until `FRESH` chunks never answered before have been; the results meanwhile for chunks
//! answered before are that event's duplicates.
//!
//! The members run at the default rate (6 calls/s, limiter on), so that the results' reader
//! keeps up with them and each event's duplicates are read right after it.
//!
//! `cargo test --test it group_protocols -- --ignored --nocapture` (about six minutes).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cloner_worker::clone::requester::{self, TopicReader};

use crate::helpers::cluster::ApacheCluster;
use crate::helpers::fault_run::{duplicates_until_fresh, summary};
use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

const CYCLES: usize = 3;
const FRESH: usize = 30;

/// Milliseconds, mean and max, of a list of durations.
fn times(ds: &[Duration]) -> String {
    let ms: Vec<u128> = ds.iter().map(Duration::as_millis).collect();
    let mean = ms.iter().sum::<u128>() / ms.len().max(1) as u128;
    format!(
        "mean {mean:>6} ms  max {:>6} ms  {ms:?}",
        ms.iter().max().unwrap_or(&0)
    )
}

#[actix_rt::test]
#[ignore = "a measurement of a few minutes, for the README; run with --ignored --nocapture"]
async fn rebalance_times_and_duplicates_per_group_protocol() {
    let cluster = ApacheCluster::start(3);
    let sim = start_simulator(no_rate_limit()).await;
    let mut report = Vec::new();
    for protocol in ["classic", "consumer"] {
        // The default rate, so that the results' reader keeps up and each event's duplicates
        // are read right after it, not lost in a backlog.
        let base = settings(&sim, 4, 6.0);
        let settings =
            settings_on_cluster(&cluster.bootstrap, base, &format!("protocols.{protocol}")).await;
        let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
        let producer = requester::producer(&settings).unwrap();
        requester::publish_chunks(
            &producer,
            &settings.topics.todo,
            &minute_chunks("BTC_LTC", 5_000),
        )
        .await
        .unwrap();
        let env = [
            (
                "CLONER__KAFKA__BOOTSTRAP_SERVERS",
                cluster.bootstrap.as_str(),
            ),
            ("CLONER__KAFKA__CONSUMER__GROUP_PROTOCOL", protocol),
        ];
        let mut answered = BTreeMap::new();
        let mut a = ServiceProcess::start_with_env(&settings, &env);
        a.wait_for("both partitions", TEST_DEADLINE, holds_two_partitions);
        assert_eq!(
            duplicates_until_fresh(&results, &mut answered, FRESH).await,
            0
        );
        let (mut joins, mut leaves, mut kills) = (Vec::new(), Vec::new(), Vec::new());
        let (mut join_dups, mut leave_dups, mut kill_dups) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..CYCLES {
            let started = Instant::now();
            let mut b = ServiceProcess::start_with_env(&settings, &env);
            b.wait_for("a partition", TEST_DEADLINE, holds_one_partition);
            joins.push(started.elapsed());
            a.wait_for("the partition it keeps", TEST_DEADLINE, holds_one_partition);
            join_dups.push(duplicates_until_fresh(&results, &mut answered, FRESH).await);

            let left = Instant::now();
            assert!(b.terminate(EXIT_TIMEOUT).success(), "b drains and leaves");
            a.wait_for("both partitions again", TEST_DEADLINE, holds_two_partitions);
            leaves.push(left.elapsed());
            leave_dups.push(duplicates_until_fresh(&results, &mut answered, FRESH).await);

            let mut c = ServiceProcess::start_with_env(&settings, &env);
            c.wait_for("a partition", TEST_DEADLINE, holds_one_partition);
            a.wait_for("the partition it keeps", TEST_DEADLINE, holds_one_partition);
            duplicates_until_fresh(&results, &mut answered, FRESH).await;
            let killed = Instant::now();
            c.kill();
            a.wait_for(
                "both partitions after the kill",
                TEST_DEADLINE,
                holds_two_partitions,
            );
            kills.push(killed.elapsed());
            kill_dups.push(duplicates_until_fresh(&results, &mut answered, FRESH).await);
        }
        assert!(a.terminate(EXIT_TIMEOUT).success());
        report.push(format!(
            "{protocol:>8}: a member joins: {}\n{:>10}a member leaves: {}\n{:>10}a member SIGKILLed: {}\n{:>10}duplicates (n mean max each): join {}, leave {}, SIGKILL {}",
            times(&joins),
            "",
            times(&leaves),
            "",
            times(&kills),
            "",
            summary(&join_dups),
            summary(&leave_dups),
            summary(&kill_dups),
        ));
    }
    println!(
        "group protocols on 3 Apache Kafka nodes (4.1.0; classic session.timeout.ms 6000, consumer protocol the broker's group.consumer.session.timeout.ms default), {CYCLES} cycles, 4 workers, default_rate 6/s:"
    );
    for line in report {
        println!("{line}");
    }
    sim.stop().await;
}

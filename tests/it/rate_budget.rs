//! The exchange's rate budget, through `serve` child processes against the simulator enforcing
//! its limit as the exchange does (calls in any one second, as they arrive):
//!
//! - Two members of one group, each configured with the whole limit, share it by the partitions
//!   each holds: the exchange never sees one call too many.
//! - With `rate_limiter.split = "replica"` each member has the whole rate.
//! - Push-back is obeyed by the whole service: a limit below the configured rate gets 429s
//!   (every worker slows down) and then a ban (418 with Retry-After: every call waits), and no
//!   chunk is answered RANDOM_ERROR for it.

use cloner_worker::clone::requester::TopicReader;
use cloner_worker::dev::simulator::SimulatorConfig;
use cloner_worker::proto::cloned_chunk;

use crate::helpers::http::*;
use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

#[actix_rt::test]
async fn two_members_at_the_whole_limit_share_it_and_never_overdraw_it() {
    let sim = start_simulator(SimulatorConfig::default()).await;
    let limit = sim.config().rate_limit as f64;
    // Both at the exchange's limit, as a user who does not divide by hand configures them.
    let mut base = settings(&sim, 4, limit);
    // The simulator stamps arrivals in this test process, on a host that also runs the suite's
    // three brokers, another test and two services: scheduling delays of tens of ms are within
    // reach there (7 calls in 0.992 s with the default 20 ms, in 0.985 s with 60 ms, one
    // violation each time), so the allowance for them is wider than the default's. What is
    // tested is the sharing of the budget (a member at the whole rate beside one at half would
    // overdraw by calls a second, not by one call in tens of ms), not how tight the timeline is.
    base.rate_limiter.jitter_ms = 150;
    let settings = kafka_settings(base, "shared-budget").await;
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    // Each member says what it spends after each change: all of it alone, half of it once the
    // other holds a partition.
    let share =
        |n: u32| move |l: &str| l.contains(&format!("this member holds {n} of the 2 partitions"));
    let mut a = ServiceProcess::start(&settings);
    a.wait_for("the whole budget", TEST_DEADLINE, share(2));
    let mut b = ServiceProcess::start(&settings);
    b.wait_for("half the budget", TEST_DEADLINE, share(1));
    a.wait_for("half the budget", TEST_DEADLINE, share(1));
    let chunks = minute_chunks("BTC_LTC", 60);
    publish(&settings, &chunks).await;
    let mut seen = Vec::new();
    all_answered(&results, &chunks, &mut seen).await;
    let stats = sim.stats();
    assert!(stats.calls >= chunks.len() as u64, "{stats:?}");
    assert_eq!(
        stats.violations,
        0,
        "the budget was overdrawn: {stats:?}; the members' logs:\n{}\n---\n{}",
        a.log.join("\n"),
        b.log.join("\n")
    );
    let closest = stats.tightest_window_us.expect("more calls than the limit");
    assert!(
        closest >= 1_000_000,
        "{} calls within {closest} µs",
        limit + 1.0
    );
    for record in &seen {
        assert_matches_ground_truth(sim.config(), &record.cloned_chunk().unwrap());
    }
    a.kill();
    b.kill();
    sim.stop().await;
}

#[actix_rt::test]
async fn refusals_slow_every_worker_a_ban_pauses_them_and_no_chunk_fails_for_it() {
    // The exchange allows 3 calls a second; the service is told 6. From the third call over
    // the limit on, a call over it bans the address for 2 s.
    let sim = start_simulator(SimulatorConfig {
        rate_limit: 3,
        retry_after_secs: 1,
        ban_after: 3,
        ban_secs: 2,
        ..SimulatorConfig::default()
    })
    .await;
    let mut base = settings(&sim, 4, 6.0);
    base.upstream.max_retries = 2;
    let settings = kafka_settings(base, "push-back").await;
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let mut service = ServiceProcess::start(&settings);
    let addr = endpoint_addr(&mut service);
    service.wait_for("its partitions", TEST_DEADLINE, holds_two_partitions);
    let chunks = minute_chunks("BTC_LTC", 40);
    publish(&settings, &chunks).await;
    service.wait_for("a decrease", TEST_DEADLINE, |l| {
        l.contains("calls refused as too many; down to")
    });
    service.wait_for("the ban obeyed", TEST_DEADLINE, |l| {
        l.contains("rate limiter: banned; no call for")
    });
    let mut seen = Vec::new();
    all_answered(&results, &chunks, &mut seen).await;
    // Refusals cost no try: with 2 retries each, a chunk refused three times would otherwise
    // have been answered RANDOM_ERROR.
    for record in &seen {
        let answer = record.cloned_chunk().unwrap();
        assert_eq!(
            answer.chunk_result,
            cloned_chunk::Result::Complete as i32,
            "{answer:?}"
        );
        assert_matches_ground_truth(sim.config(), &answer);
    }
    let stats = sim.stats();
    assert!(
        stats.violations >= 3 && stats.banned_calls >= 1,
        "{stats:?}"
    );
    // What an operator sees: the decreases, the pauses, and the calls refused, by kind. Every
    // call not answered with trades was refused (no faults here).
    let (_, _, page) = get(&addr, "/metrics");
    let s = |series: &str| sample(&page, series).unwrap_or_else(|| panic!("{series}:\n{page}"));
    assert!(s("cloner_rate_limiter_decreases_total") >= 1.0, "{page}");
    assert!(
        s("cloner_rate_limiter_paused_seconds_total") >= 1.0,
        "{page}"
    );
    let refused = |outcome: &str| {
        s(&format!(
            "cloner_upstream_call_duration_seconds_count{{outcome=\"{outcome}\"}}"
        ))
    };
    assert!(refused("banned") >= 1.0, "{page}");
    assert_eq!(
        refused("too_many") + refused("banned"),
        (stats.calls - stats.trade_history_calls) as f64,
        "{stats:?}\n{page}"
    );
    assert_eq!(s("cloner_rate_limiter_share_calls_per_second"), 6.0);
    service.kill();
    sim.stop().await;
}

#[actix_rt::test]
async fn with_the_replica_split_each_member_spends_the_whole_rate() {
    // Replicas that call from different addresses: each has the exchange's limit to itself.
    let sim = start_simulator(no_rate_limit()).await;
    let settings = kafka_settings(settings(&sim, 2, 6.0), "replica-split").await;
    let split = [("CLONER__RATE_LIMITER__SPLIT", "replica")];
    let mut a = ServiceProcess::start_with_env(&settings, &split);
    let a_addr = endpoint_addr(&mut a);
    a.wait_for("both partitions", TEST_DEADLINE, holds_two_partitions);
    let mut b = ServiceProcess::start_with_env(&settings, &split);
    let b_addr = endpoint_addr(&mut b);
    b.wait_for("a partition", TEST_DEADLINE, holds_one_partition);
    for addr in [&a_addr, &b_addr] {
        let (_, _, body) = get(addr, "/health");
        assert!(
            body.contains(r#""share_calls_per_second":6.0"#),
            "{addr}: {body}"
        );
    }
    a.kill();
    b.kill();
    sim.stop().await;
}

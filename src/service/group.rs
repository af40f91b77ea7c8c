//! `GroupContext`: librdkafka's callbacks for the consumer's group membership.
//!
//! Before partitions are revoked it commits what is done of them and forgets them, so that
//! their next owner starts where this member stopped; after each assignment it logs what the
//! member holds; it gives the rate limiter the member's share of the budget after each change
//! ([`BudgetShare`], when the group shares it); it tells `/health` whether the member is in its
//! group; and it turns
//! librdkafka's statistics reports into the consumer lag metric.
//!
//! The callbacks run inside the intake task's poll. They must never block on anything but
//! librdkafka itself, and never store an offset the tracker has not allowed.

use std::sync::Arc;

use actix::Recipient;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

use crate::kafka::broker_watch::BrokerWatch;
use crate::service::budget_share::BudgetShare;

use crate::pool::manager::DropWithdrawn;
use crate::service::intake::Paused;
use crate::service::offsets::{
    describe_partitions, describe_positions, offset_list, Partition, SharedTracker,
    SharedWithdrawals,
};
use crate::telemetry::health::GroupEvent;
use crate::telemetry::metrics::Metrics;

pub struct GroupContext {
    /// Revoked partitions are committed from it and then forgotten in it.
    tracker: SharedTracker,
    /// Revoked partitions' queued chunks are withdrawn through it.
    withdrawals: SharedWithdrawals,
    /// The manager, which then drops the withdrawn jobs from its queue at once.
    drop_withdrawn: Recipient<DropWithdrawn>,
    /// Whether intake has paused what the member holds: then new partitions are paused too.
    paused: Arc<Paused>,
    /// Group membership for `/health`, consumer lag for `/metrics`.
    metrics: Arc<Metrics>,
    /// Lost brokers said once; statistics tell when they are back.
    watch: Arc<BrokerWatch>,
    /// The rate budget's share, from the partitions held; `None` when each replica spends the
    /// whole rate (`rate_limiter.split = "replica"`).
    share: Option<BudgetShare>,
}

impl GroupContext {
    pub fn new(
        tracker: SharedTracker,
        withdrawals: SharedWithdrawals,
        drop_withdrawn: Recipient<DropWithdrawn>,
        paused: Arc<Paused>,
        metrics: Arc<Metrics>,
        watch: Arc<BrokerWatch>,
        share: Option<BudgetShare>,
    ) -> GroupContext {
        GroupContext {
            tracker,
            withdrawals,
            drop_withdrawn,
            paused,
            metrics,
            watch,
            share,
        }
    }
}

impl ClientContext for GroupContext {
    /// Every `statistics.interval.ms` (`kafka.consumer.statistics_interval_ms`): the lag of
    /// each partition this member holds. Partitions it does not hold (librdkafka knows all of
    /// the topic's) and lags not yet known (no committed offset) are left out.
    fn stats(&self, statistics: Statistics) {
        self.metrics
            .set_consumer_lag(&held_partition_lags(&statistics));
        if statistics.brokers.values().any(|b| b.state == "UP") {
            self.watch.answered();
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.watch.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.error(error, reason);
    }
}

/// (topic, partition, lag) of the partitions the member holds (`desired`) whose lag is known.
fn held_partition_lags(statistics: &Statistics) -> Vec<(String, i32, i64)> {
    let mut lags: Vec<(String, i32, i64)> = statistics
        .topics
        .iter()
        .flat_map(|(topic, t)| {
            t.partitions
                .values()
                // Partition -1 is librdkafka's internal "unassigned" queue.
                .filter(|p| p.partition >= 0 && p.desired && !p.unknown && p.consumer_lag >= 0)
                .map(move |p| (topic.clone(), p.partition, p.consumer_lag))
        })
        .collect();
    lags.sort();
    lags
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        // Lost: thrown out of the group (session or poll timeout), not a rebalance it is part of.
        self.metrics.health.group_event(GroupEvent::Revoked {
            lost: consumer.assignment_lost(),
        });
        if tpl.count() == 0 {
            return;
        }
        // First of all: the slots of these partitions are their next owner's.
        if let Some(share) = &self.share {
            share.revoking(consumer, tpl);
        }
        let revoked: Vec<Partition> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        self.metrics.forget_consumer_lag(&revoked);
        // Their chunks not started yet are the next owner's now: not cloned here. Those with a
        // worker finish, and their results are still produced.
        let mut withdrawals = self.withdrawals.lock().expect("withdrawals lock");
        for partition in &revoked {
            if let Some(withdrawal) = withdrawals.remove(partition) {
                withdrawal.withdraw();
            }
        }
        drop(withdrawals);
        self.drop_withdrawn.do_send(DropWithdrawn);
        let mut tracker = self.tracker.lock().expect("tracker lock");
        // Commit what is done before the partitions go, so that their next owner starts
        // there and not at the last periodic commit: fewer chunks cloned twice.
        let mut done = Vec::new();
        for partition in revoked {
            if let Some(position) = tracker.position(&partition) {
                done.push((partition.clone(), position));
            }
            tracker.revoke(&partition);
        }
        drop(tracker);
        log::info!("partitions revoked: {}", describe_partitions(tpl));
        if !done.is_empty() {
            if let Err(e) = consumer.commit(&offset_list(&done), CommitMode::Sync) {
                log::warn!(
                    "committing {} before the revocation failed ({e}); their next owner starts at the last commit",
                    describe_positions(&done)
                );
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                // Even an empty assignment: a member with no partitions is still a member.
                self.metrics.health.group_event(GroupEvent::Assigned);
                // Every in-flight slot is taken: the new partitions wait like the others.
                // Otherwise they are resumed explicitly: librdkafka keeps a partition's pause
                // across its revocation, so one revoked while paused (a session lost while
                // every slot was taken, as when a broker dies) came back paused after intake
                // had resumed the empty assignment, and was never fetched again.
                if tpl.count() > 0 {
                    let paused = self.paused.get();
                    let done = match paused {
                        true => consumer.pause(tpl),
                        false => consumer.resume(tpl),
                    };
                    if let Err(e) = done {
                        let what = if paused { "pausing" } else { "resuming" };
                        log::warn!("{what} {}: {e}", describe_partitions(tpl));
                    }
                }
                if let Some(share) = &self.share {
                    share.assigned(consumer);
                }
                // With the cooperative protocol an assignment is a change, not the whole.
                let holding = consumer
                    .assignment()
                    .map_or_else(|e| format!("unknown ({e})"), |a| describe_partitions(&a));
                log::info!(
                    "partitions assigned: {}; now holding: {holding}",
                    describe_partitions(tpl)
                )
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                self.metrics.health.group_event(GroupEvent::RebalanceFailed);
                log::error!("consumer group rebalance failed: {e}")
            }
        }
    }
}

//! This member's share of the rate budget when the consumer group shares it
//! (`rate_limiter.split = "group"`): the todo topic's partitions it holds, of all the topic's
//! partitions, given to the rate limiter as its parts of the budget (partition `p` owns part `p`)
//! after every assignment and before every revocation completes.
//!
//! Cooperative rebalancing revokes before it assigns, so a partition's slots are given up by
//! its old owner before its new owner takes them: two members never own one part. A member
//! that holds no partition makes no call.
//!
//! It runs inside the rebalance callbacks: it must never block on anything but librdkafka (one
//! bounded metadata request per assignment).

use std::sync::Mutex;
use std::time::Duration;

use actix::Recipient;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

use crate::task::rate_limiter::SetShare;

/// How long an assignment waits for the topic's partition count.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

pub struct BudgetShare {
    /// The todo topic: its partitions are the parts.
    topic: String,
    limiter: Recipient<SetShare>,
    /// The topic's partition count as last read; read again at each assignment, since
    /// partitions can be added.
    parts: Mutex<Option<u32>>,
}

impl BudgetShare {
    /// Owns nothing until the first assignment.
    pub fn new(topic: &str, limiter: Recipient<SetShare>) -> BudgetShare {
        limiter.do_send(SetShare {
            owned: Vec::new(),
            parts: 1,
        });
        BudgetShare {
            topic: topic.to_string(),
            limiter,
            parts: Mutex::new(None),
        }
    }

    /// After an assignment: what the member holds now, with the partition count read again.
    pub fn assigned<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        match consumer.fetch_metadata(Some(&self.topic), METADATA_TIMEOUT) {
            Ok(metadata) => {
                let count = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == self.topic)
                    .map(|t| t.partitions().len() as u32)
                    .filter(|&n| n > 0);
                if let Some(n) = count {
                    *self.parts.lock().expect("parts lock") = Some(n);
                }
            }
            Err(e) => log::warn!(
                "reading the partition count of {} for the rate budget ({e}); using the last one known",
                self.topic
            ),
        }
        self.tell(consumer, None);
    }

    /// Before a revocation completes: what the member holds without `revoked`.
    pub fn revoking<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        revoked: &TopicPartitionList,
    ) {
        self.tell(consumer, Some(revoked));
    }

    fn tell<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        revoked: Option<&TopicPartitionList>,
    ) {
        let gone = |p: i32| revoked.is_some_and(|r| r.find_partition(&self.topic, p).is_some());
        let held: Vec<u32> = consumer
            .assignment()
            .map(|a| {
                a.elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .filter(|&p| p >= 0 && !gone(p))
                    .map(|p| p as u32)
                    .collect()
            })
            .unwrap_or_default();
        let known = *self.parts.lock().expect("parts lock");
        // Unknown count (metadata failed at the first assignment): the parts held are at least
        // their highest number + 1; a smaller count than the truth only overstates the share
        // until the next assignment reads it.
        let parts = known
            .unwrap_or(0)
            .max(held.iter().max().map_or(1, |&p| p + 1));
        log::info!(
            "rate budget: this member holds {} of the {parts} partitions of {}, so it spends that share of default_rate",
            held.len(),
            self.topic
        );
        self.limiter.do_send(SetShare { owned: held, parts });
    }
}

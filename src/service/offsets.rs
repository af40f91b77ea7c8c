//! The offset tracker's positions in librdkafka's terms: the lists it stores and commits, and
//! how positions and partitions read in log lines.
//!
//! Shared by the consumer (stores as chunks finish, commits at the drain) and the group
//! callbacks (commit before a revocation). It must never decide what may be committed: the
//! [`OffsetTracker`] does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::{Offset, TopicPartitionList};

use crate::pool::job::Withdrawal;
use crate::service::offset_tracker::OffsetTracker;

/// A partition: (topic, partition number).
pub type Partition = (String, i32);

/// The offsets of the partitions this member holds; shared with librdkafka's rebalance
/// callbacks, which run on the intake task's poll (the same thread as the consumer actor).
pub type SharedTracker = Arc<Mutex<OffsetTracker<Partition>>>;

/// One [`Withdrawal`] per partition this member holds, given to the jobs of its chunks; the
/// rebalance callbacks withdraw a partition's when it is revoked, so that its queued chunks
/// are not cloned by a member that no longer owns them.
pub type SharedWithdrawals = Arc<Mutex<HashMap<Partition, Withdrawal>>>;

/// The list librdkafka stores or commits: each partition at its position.
pub fn offset_list(positions: &[(Partition, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), position) in positions {
        // Refused only for an offset librdkafka cannot represent; positions are offsets it gave.
        if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*position)) {
            log::error!("offset {position} of {topic}/{partition}: {e}");
        }
    }
    tpl
}

/// `todo-chunk/0@17, todo-chunk/1@4`.
pub fn describe_positions(positions: &[(Partition, i64)]) -> String {
    positions
        .iter()
        .map(|((t, p), o)| format!("{t}/{p}@{o}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `todo-chunk/0, todo-chunk/1`, or `none`.
pub fn describe_partitions(tpl: &TopicPartitionList) -> String {
    let names: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

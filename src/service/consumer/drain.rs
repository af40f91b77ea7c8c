//! The drain: stop intake, give in-flight chunks a grace period, commit what is done, leave the
//! group. What is not finished is delivered again (to this member after a restart, or to
//! another).
//!
//! Every wait on the broker is bounded: the final commit and leaving the group run on a thread
//! of their own, given `consumer.close_timeout_ms` each, so that a shutdown with the broker gone
//! ends (librdkafka would otherwise wait for it for ever). A commit that could not be made is
//! reported, and the service exits non-zero: nothing is lost, what is not committed is
//! delivered again.
//!
//! It must never commit past a chunk whose result was not acknowledged: it commits only what
//! the offset tracker allows.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use tokio::sync::oneshot;

use super::{ConsumerStats, TodoChunkConsumer};
use crate::service::group::GroupContext;
use crate::service::offsets::{describe_positions, offset_list, Partition};
use crate::telemetry::health::GroupEvent;

/// Stop intake, give in-flight chunks up to `grace` to finish, commit what is done, leave the
/// group, each wait on the broker bounded by `close_timeout`.
#[derive(Message)]
#[rtype(result = "DrainReport")]
pub struct Drain {
    pub grace: Duration,
    pub close_timeout: Duration,
}

/// What a drain achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// Chunks still unfinished at the end of the grace period (redelivered later).
    pub unfinished: usize,
    /// What became of the final commit.
    pub commit: FinalCommit,
    pub stats: ConsumerStats,
}

/// The final commit of a drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalCommit {
    /// Every finished chunk's offset is committed.
    Committed,
    /// Nothing was finished since the last commit.
    NothingToCommit,
    /// Refused because the group is rebalancing (another member came or went): leaving the
    /// group revokes the partitions, and the revocation commits what is done.
    Raced(String),
    /// The broker refused it, with librdkafka's reason.
    Failed(String),
    /// No answer within the close timeout (the broker is gone?).
    TimedOut(Duration),
}

impl FinalCommit {
    /// Whether what was finished is known to be committed.
    pub fn is_ok(&self) -> bool {
        matches!(
            self,
            FinalCommit::Committed | FinalCommit::NothingToCommit | FinalCommit::Raced(_)
        )
    }
}

impl std::fmt::Display for FinalCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FinalCommit::Committed => write!(f, "committed"),
            FinalCommit::NothingToCommit => write!(f, "nothing to commit"),
            FinalCommit::Raced(why) => write!(
                f,
                "the final commit raced a rebalance ({why}); leaving the group commits what is done"
            ),
            FinalCommit::Failed(why) => write!(f, "the final commit failed ({why})"),
            FinalCommit::TimedOut(after) => {
                write!(f, "the final commit had no answer within {after:?}")
            }
        }
    }
}

impl Handler<Drain> for TodoChunkConsumer {
    type Result = ResponseActFuture<Self, DrainReport>;

    fn handle(&mut self, drain: Drain, _: &mut Context<Self>) -> Self::Result {
        let intake = self.intake.take();
        if let Some(intake) = &intake {
            intake.abort();
        }
        self.draining = true;
        // No longer consuming: not ready, whatever the group still thinks until the member leaves.
        self.metrics.health.group_event(GroupEvent::Left);
        // The stats, not the permits: the aborted intake may still hold one for a message it
        // never received.
        log::info!(
            "draining: intake stopped; {} chunks in flight, up to {:?} to finish",
            self.stats.in_flight,
            drain.grace
        );
        let permits = self.permits.clone();
        let all = self.max_in_flight as u32;
        let grace = drain.grace;
        let wait = async move {
            let all_done = actix_rt::time::timeout(grace, permits.acquire_many_owned(all))
                .await
                .is_ok();
            // The aborted intake is gone once awaited: its handle on the consumer with it.
            if let Some(intake) = intake {
                let _ = intake.await;
            }
            all_done
        };
        Box::pin(
            wait.into_actor(self)
                .then(move |all_done, me, _| {
                    // Messages received but not finished: over the grace period, or abandoned.
                    let unfinished = me.tracker.lock().expect("tracker lock").unfinished();
                    if !all_done {
                        log::warn!(
                            "drain: grace period over with {} chunks unfinished; they will be delivered again",
                            me.stats.in_flight
                        );
                    }
                    let positions = me.tracker.lock().expect("tracker lock").positions();
                    let consumer = me.consumer.take();
                    close(consumer, positions, drain.close_timeout)
                        .into_actor(me)
                        .map(move |commit, me, _| (unfinished, commit, me.stats.clone()))
                })
                .map(|(unfinished, commit, stats), _, ctx| {
                    ctx.stop();
                    DrainReport {
                        unfinished,
                        commit,
                        stats,
                    }
                }),
        )
    }
}

/// Commits `positions`, then drops the consumer (which leaves the group), on a thread of its
/// own; waits for each up to `timeout`, and no longer.
async fn close(
    consumer: Option<Arc<StreamConsumer<GroupContext>>>,
    positions: Vec<(Partition, i64)>,
    timeout: Duration,
) -> FinalCommit {
    let Some(consumer) = consumer else {
        return FinalCommit::NothingToCommit;
    };
    let (committed_tx, committed) = oneshot::channel();
    let (closed_tx, closed) = oneshot::channel();
    let closing = move || {
        let commit = if positions.is_empty() {
            FinalCommit::NothingToCommit
        } else {
            match consumer.commit(&offset_list(&positions), CommitMode::Sync) {
                Ok(()) => {
                    log::info!("committed {}", describe_positions(&positions));
                    FinalCommit::Committed
                }
                Err(e) => match e.rdkafka_error_code() {
                    Some(
                        RDKafkaErrorCode::RebalanceInProgress
                        | RDKafkaErrorCode::IllegalGeneration
                        | RDKafkaErrorCode::UnknownMemberId,
                    ) => FinalCommit::Raced(e.to_string()),
                    _ => FinalCommit::Failed(e.to_string()),
                },
            }
        };
        let _ = committed_tx.send(commit);
        // The last handle: dropping it closes the consumer, which leaves the group.
        drop(consumer);
        let _ = closed_tx.send(());
    };
    if let Err(e) = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(closing)
    {
        return FinalCommit::Failed(format!("no thread to close the consumer on: {e}"));
    }
    let commit = match actix_rt::time::timeout(timeout, committed).await {
        Ok(Ok(commit)) => commit,
        Ok(Err(_)) => FinalCommit::Failed("the closing thread ended without a word".into()),
        Err(_) => FinalCommit::TimedOut(timeout),
    };
    match &commit {
        FinalCommit::Raced(_) => log::warn!("{commit}"),
        c if !c.is_ok() => log::error!("{commit}; the uncommitted chunks will be delivered again"),
        _ => {}
    }
    if actix_rt::time::timeout(timeout, closed).await.is_err() {
        log::warn!(
            "leaving the consumer group took longer than {timeout:?} (is the broker gone?); not waiting for it"
        );
    }
    commit
}

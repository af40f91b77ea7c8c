//! The drain: stop intake, give in-flight chunks a grace period, commit what is done, leave the
//! group. What is not finished is delivered again (to this member after a restart, or to
//! another).
//!
//! It must never commit past a chunk whose result was not acknowledged: it commits only what
//! the offset tracker allows.

use std::time::Duration;

use actix::prelude::*;
use rdkafka::consumer::{CommitMode, Consumer};

use super::{ConsumerStats, TodoChunkConsumer};
use crate::service::offsets::{describe_positions, offset_list};
use crate::telemetry::health::GroupEvent;

/// Stop intake, give in-flight chunks up to `grace` to finish, commit what is done.
#[derive(Message)]
#[rtype(result = "DrainReport")]
pub struct Drain {
    pub grace: Duration,
}

/// What a drain achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// Chunks still unfinished at the end of the grace period (redelivered later).
    pub unfinished: usize,
    pub stats: ConsumerStats,
}

impl Handler<Drain> for TodoChunkConsumer {
    type Result = ResponseActFuture<Self, DrainReport>;

    fn handle(&mut self, Drain { grace }: Drain, _: &mut Context<Self>) -> Self::Result {
        if let Some(intake) = self.intake.take() {
            intake.abort();
        }
        self.draining = true;
        // No longer consuming: not ready, whatever the group still thinks until the member leaves.
        self.metrics.health.group_event(GroupEvent::Left);
        // The stats, not the permits: the aborted intake may still hold one for a message it
        // never received.
        log::info!(
            "draining: intake stopped; {} chunks in flight, up to {grace:?} to finish",
            self.stats.in_flight
        );
        let permits = self.permits.clone();
        let all = self.max_in_flight as u32;
        let wait = async move {
            actix_rt::time::timeout(grace, permits.acquire_many_owned(all))
                .await
                .is_ok()
        };
        Box::pin(wait.into_actor(self).map(|all_done, me, ctx| {
            // Messages received but not finished: over the grace period, or abandoned.
            let unfinished = me.tracker.lock().expect("tracker lock").unfinished();
            if !all_done {
                log::warn!(
                    "drain: grace period over with {} chunks unfinished; they will be delivered again",
                    me.stats.in_flight
                );
            }
            me.commit_now();
            // Stopping drops the consumer, which leaves the group.
            ctx.stop();
            DrainReport {
                unfinished,
                stats: me.stats.clone(),
            }
        }))
    }
}

impl TodoChunkConsumer {
    /// Commits what the tracker allows, synchronously.
    fn commit_now(&self) {
        let positions = self.tracker.lock().expect("tracker lock").positions();
        if positions.is_empty() {
            return;
        }
        match self
            .consumer
            .commit(&offset_list(&positions), CommitMode::Sync)
        {
            Ok(()) => log::info!("committed {}", describe_positions(&positions)),
            Err(e) => log::error!(
                "final commit failed ({e}); the uncommitted chunks will be delivered again"
            ),
        }
    }
}

//! The consumer's counters: for the drain summary, the demo, the benchmarks and the tests
//! (`/metrics` counts the same facts for Prometheus).

use actix::prelude::*;

use super::TodoChunkConsumer;

/// Counters for the drain summary, the demo and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Messages taken from the todo topic.
    pub received: u64,
    /// Results produced and acknowledged, by kind.
    pub complete: u64,
    pub window_too_big: u64,
    pub random_error: u64,
    /// Trades in the COMPLETE results.
    pub entries: u64,
    /// Messages refused and acknowledged on the dead-letter topic.
    pub dead_letters: u64,
    /// Messages left unanswered because the service was shutting down (redelivered later).
    pub abandoned: u64,
    /// Chunks not started when their partition was revoked: cloned by its next owner.
    pub withdrawn: u64,
    /// Messages taken and not yet finished.
    pub in_flight: u64,
}

/// The consumer's counters now.
#[derive(Message)]
#[rtype(result = "ConsumerStats")]
pub struct GetConsumerStats;

impl Handler<GetConsumerStats> for TodoChunkConsumer {
    type Result = MessageResult<GetConsumerStats>;

    fn handle(&mut self, _: GetConsumerStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}

impl std::fmt::Display for ConsumerStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} received: {} COMPLETE ({} trades), {} WINDOW_TOO_BIG, {} RANDOM_ERROR, {} dead letters, {} unanswered, {} withdrawn",
            self.received,
            self.complete,
            self.entries,
            self.window_too_big,
            self.random_error,
            self.dead_letters,
            self.abandoned + self.in_flight,
            self.withdrawn
        )
    }
}

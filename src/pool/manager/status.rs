//! What the manager says of itself: its workers, free or busy, and its counters (the console,
//! metrics and tests).

use actix::prelude::*;

use super::WorkerManager;
use crate::pool::protocol::WorkerId;
use crate::proto::TodoChunk;

/// Counters for the REPL, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagerStats {
    pub answered: u64,
    pub failed_attempts: u64,
    pub gave_up: u64,
    /// Jobs dropped unstarted because their caller withdrew them.
    pub withdrawn: u64,
}

/// The state of one worker as the manager sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    Free,
    Busy(TodoChunk),
}

/// The manager's view: workers by id, and counters.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerStatus {
    pub workers: Vec<(WorkerId, WorkerState)>,
    pub stats: ManagerStats,
}

/// The manager's view now: its workers and counters.
#[derive(Message)]
#[rtype(result = "ManagerStatus")]
pub struct GetManagerStatus;

impl Handler<GetManagerStatus> for WorkerManager {
    type Result = MessageResult<GetManagerStatus>;

    fn handle(&mut self, _: GetManagerStatus, _: &mut Context<Self>) -> Self::Result {
        let mut workers: Vec<_> = self
            .free
            .iter()
            .map(|&id| (id, WorkerState::Free))
            .chain(
                self.busy
                    .iter()
                    .map(|(&id, job)| (id, WorkerState::Busy(job.chunk.clone()))),
            )
            .collect();
        workers.sort_by_key(|(id, _)| *id);
        MessageResult(ManagerStatus {
            workers,
            stats: self.stats.clone(),
        })
    }
}

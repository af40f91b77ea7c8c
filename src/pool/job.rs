//! `Job`: one chunk on its way through the queue and the workers, with the channel its answer
//! goes back on.
//!
//! The queue holds jobs, not bare chunks, so that an answer can find its caller and a retried
//! chunk keeps its attempt count. A job must never be dropped before it is answered: the
//! `WorkerManager` answers each job it takes exactly once, on `reply` or, for a job queued
//! without a caller, to its unclaimed sink.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::proto::TodoChunk;

/// Identifies a job across attempts; unique within the process.
pub type JobId = u64;

static NEXT_JOB_ID: AtomicU64 = AtomicU64::new(1);

pub struct Job {
    pub id: JobId,
    pub chunk: TodoChunk,
    /// Attempts already failed without an answer (panic, deadline, dead worker).
    pub failed_attempts: u32,
    /// Where the answer goes: the `add_task` caller, or `None` for a chunk queued directly
    /// (`Queue.add_to_queue`), whose answer goes to the manager's result sink.
    pub reply: Option<oneshot::Sender<crate::proto::ClonedChunk>>,
    /// Set when the caller no longer wants the answer (its chunk went to another consumer):
    /// the job is dropped instead of started. `None` for jobs that cannot be withdrawn.
    pub withdrawal: Option<Withdrawal>,
}

impl Job {
    pub fn new(chunk: TodoChunk, reply: Option<oneshot::Sender<crate::proto::ClonedChunk>>) -> Job {
        Job {
            id: NEXT_JOB_ID.fetch_add(1, Ordering::Relaxed),
            chunk,
            failed_attempts: 0,
            reply,
            withdrawal: None,
        }
    }

    /// Whether its caller withdrew it: then it must not be started.
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawal
            .as_ref()
            .is_some_and(Withdrawal::is_withdrawn)
    }
}

/// Lets the caller of `add_task` withdraw jobs that have not started, e.g. all the jobs of a
/// Kafka partition this member no longer owns. Shared by every job it was given to; a job
/// already with a worker finishes and is answered as usual.
#[derive(Debug, Clone, Default)]
pub struct Withdrawal(Arc<AtomicBool>);

impl Withdrawal {
    pub fn new() -> Withdrawal {
        Withdrawal::default()
    }

    /// From now on, the jobs given this withdrawal are not started.
    pub fn withdraw(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_withdrawn(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("chunk", &self.chunk)
            .field("failed_attempts", &self.failed_attempts)
            .finish_non_exhaustive()
    }
}

//! The messages the pool's actors send each other, in one place, so that a sender needs only
//! this file, not the receiver's: it is handed a `Recipient` of the message it sends (see
//! [`WorkerLinks`], [`RegistryLinks`]).
//!
//! ```text
//! WorkerManager ── Run ──────────────▶ Worker        (one job, to one incarnation)
//! Worker ───────── AttemptFinished ──▶ WorkerManager (how the attempt ended)
//! Worker ───────── RegisterWorker ───▶ Registry      (started, or restarted)
//! Worker ───────── WorkerStopped ────▶ Registry      (stopped; its supervisor restarts it)
//! Registry ─────── WorkerUp/Down ────▶ WorkerManager (so the manager hears of every death)
//! WorkerSupervisor Kill ─────────────▶ Worker        (as if it had died: tests, the console)
//! ```
//!
//! Messages only: no behaviour lives here.

use std::time::Duration;

use actix::prelude::*;

use crate::pool::job::JobId;
use crate::proto::{ClonedChunk, TodoChunk};

/// Worker `n`, counted from 1.
pub type WorkerId = usize;

/// Work on `chunk` (attempt number `attempt`, from 0) and report to the manager. Addressed to
/// one incarnation of the worker; a later one ignores it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Run {
    pub job: JobId,
    pub chunk: TodoChunk,
    pub attempt: u32,
    pub incarnation: u32,
}

/// Stops a worker, as if it had died (tests and the console). Its supervisor restarts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kill;

/// How one attempt ended.
#[derive(Debug)]
pub enum AttemptOutcome {
    /// The task produced the chunk's answer (any result kind).
    Answered(ClonedChunk),
    /// No answer: the manager retries the chunk or, after its last attempt, answers
    /// `RANDOM_ERROR` with this reason.
    Failed(AttemptFailure),
}

/// Why an attempt ended without an answer. None of these is the chunk's fault, so each is
/// retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptFailure {
    /// The task panicked: the worker's state is suspect, so it stops and is restarted.
    #[error("task panicked: {0}")]
    Panicked(String),
    #[error("attempt passed its deadline of {0:?}")]
    DeadlinePassed(Duration),
    /// The rate limiter is gone (shutting down): no call may be made.
    #[error("the rate limiter stopped")]
    LimiterClosed,
    /// The worker already held a job (a manager bug, refused loudly rather than lost).
    #[error("worker {0} was busy")]
    WorkerBusy(WorkerId),
    /// The worker stopped while it held the job.
    #[error("worker {0} died")]
    WorkerDied(WorkerId),
}

impl AttemptOutcome {
    /// The task panicked, so its worker is stopping.
    pub fn panicked(&self) -> bool {
        matches!(self, AttemptOutcome::Failed(AttemptFailure::Panicked(_)))
    }
}

/// From a worker: how its attempt of `job` ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttemptFinished {
    pub worker: WorkerId,
    pub job: JobId,
    pub outcome: AttemptOutcome,
}

/// How to reach one running worker, without knowing its actor type.
#[derive(Clone)]
pub struct WorkerHandle {
    pub run: Recipient<Run>,
    pub kill: Recipient<Kill>,
}

/// A worker announces itself as worker `id`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterWorker {
    pub id: WorkerId,
    /// Restarts of this worker so far (0 at first start).
    pub incarnation: u32,
    pub handle: WorkerHandle,
}

/// A worker stopped (it will be restarted by its supervisor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerStopped {
    pub id: WorkerId,
}

/// From the registry: worker `id` is running (first start or restart).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerUp {
    pub id: WorkerId,
    pub incarnation: u32,
    /// Where its work goes (a `Worker`; anything that takes `Run` in tests).
    pub run: Recipient<Run>,
}

/// From the registry: worker `id` stopped; its job, if any, is retried.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerDown {
    pub id: WorkerId,
}

/// Where a worker reports. The supervisor hands it to each worker it starts.
#[derive(Clone)]
pub struct WorkerLinks {
    /// The registry: the worker's starts.
    pub register: Recipient<RegisterWorker>,
    /// The registry: the worker's stops.
    pub stopped: Recipient<WorkerStopped>,
    /// The manager: each attempt's end.
    pub finished: Recipient<AttemptFinished>,
}

/// Where the registry tells of workers' starts and stops: the manager.
#[derive(Clone)]
pub struct RegistryLinks {
    pub up: Recipient<WorkerUp>,
    pub down: Recipient<WorkerDown>,
}

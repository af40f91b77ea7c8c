//! `WorkerManager.add_task`: a chunk in, its answer out when a worker has it — and the
//! withdrawable kind, whose caller may take it back before it starts.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::WorkerManager;
use crate::pool::job::{Job, Withdrawal};
use crate::pool::queue::{AddToQueue, Queue, RemoveWhere};
use crate::proto::{ClonedChunk, TodoChunk};

/// Why `add_task` has no result to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The queue holds its bound: slow down and try again (back-pressure).
    #[error("the queue is full ({bound} chunks waiting); try again when it drains")]
    QueueFull { bound: usize },
    /// The system shut down before the chunk was answered; it was not cloned.
    #[error("the chunk was abandoned before it was answered (shutting down)")]
    Aborted,
    /// Its caller withdrew it before it started (see [`Withdrawal`]); it was not cloned.
    #[error("the chunk was withdrawn before it started")]
    Withdrawn,
}

/// `WorkerManager.add_task(chunk)`: the chunk's result, when a worker has it.
pub struct AddTask(pub TodoChunk);

impl Message for AddTask {
    type Result = Result<ClonedChunk, TaskError>;
}

impl Handler<AddTask> for WorkerManager {
    type Result = ResponseFuture<Result<ClonedChunk, TaskError>>;

    fn handle(&mut self, AddTask(chunk): AddTask, _: &mut Context<Self>) -> Self::Result {
        Box::pin(add_task(self.queue.clone(), chunk, None))
    }
}

/// `add_task` for a chunk its caller may withdraw before it starts: the answer, or
/// [`TaskError::Withdrawn`] once `withdrawal` is withdrawn and the job had not started.
pub struct AddWithdrawableTask {
    pub chunk: TodoChunk,
    pub withdrawal: Withdrawal,
}

impl Message for AddWithdrawableTask {
    type Result = Result<ClonedChunk, TaskError>;
}

impl Handler<AddWithdrawableTask> for WorkerManager {
    type Result = ResponseFuture<Result<ClonedChunk, TaskError>>;

    fn handle(&mut self, task: AddWithdrawableTask, _: &mut Context<Self>) -> Self::Result {
        Box::pin(add_task(
            self.queue.clone(),
            task.chunk,
            Some(task.withdrawal),
        ))
    }
}

/// Queues the chunk as a job and waits for its answer.
async fn add_task(
    queue: Addr<Queue<Job>>,
    chunk: TodoChunk,
    withdrawal: Option<Withdrawal>,
) -> Result<ClonedChunk, TaskError> {
    let withdrawn = |w: &Option<Withdrawal>| w.as_ref().is_some_and(Withdrawal::is_withdrawn);
    if withdrawn(&withdrawal) {
        return Err(TaskError::Withdrawn);
    }
    let (reply, answer) = oneshot::channel();
    let job = Job {
        withdrawal: withdrawal.clone(),
        ..Job::new(chunk, Some(reply))
    };
    match queue.send(AddToQueue(job)).await {
        Ok(Ok(())) => {}
        Ok(Err(full)) => return Err(TaskError::QueueFull { bound: full.bound }),
        Err(_) => return Err(TaskError::Aborted),
    }
    // A dropped reply means the job was dropped unanswered: withdrawn, or the system stopped.
    answer.await.map_err(|_| match withdrawn(&withdrawal) {
        true => TaskError::Withdrawn,
        false => TaskError::Aborted,
    })
}

/// Drops every queued job that was withdrawn, at once (their callers hear `Withdrawn`), so that
/// they do not wait their turn to be skipped; the number dropped.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct DropWithdrawn;

impl Handler<DropWithdrawn> for WorkerManager {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, _: DropWithdrawn, _: &mut Context<Self>) -> Self::Result {
        let removed = self
            .queue
            .send(RemoveWhere(Box::new(|job: &Job| job.is_withdrawn())));
        Box::pin(removed.into_actor(self).map(|removed, manager, _| {
            let n = removed.map_or(0, |jobs| jobs.len());
            manager.stats.withdrawn += n as u64;
            n
        }))
    }
}

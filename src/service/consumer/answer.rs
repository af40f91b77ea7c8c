//! A chunk's answer, from the pool to the result produced: asked of the manager until it has
//! one (a full queue is waited out, never dropped), and replaced by `WINDOW_TOO_BIG` when it is
//! larger than the broker accepts.

use actix::prelude::*;

use super::Outcome;
use crate::domain::chunk::{result, result_name, Describe};
use crate::pool::job::Withdrawal;
use crate::pool::manager::{AddWithdrawableTask, TaskError, WorkerManager};
use crate::proto::{cloned_chunk, ClonedChunk};
use crate::task::backoff::Backoff;

/// The chunk's answer from the manager; the outcome instead when there is none: the system is
/// shutting down ([`Outcome::Abandoned`]) or the chunk's partition was revoked before it started
/// ([`Outcome::Withdrawn`]).
pub(super) async fn answer(
    manager: &Addr<WorkerManager>,
    chunk: crate::proto::TodoChunk,
    withdrawal: Withdrawal,
    backoff: Backoff,
) -> Result<ClonedChunk, Outcome> {
    let mut rng = fastrand::Rng::new();
    let mut retry = 0;
    loop {
        let task = AddWithdrawableTask {
            chunk: chunk.clone(),
            withdrawal: withdrawal.clone(),
        };
        match manager.send(task).await {
            Ok(Ok(answer)) => {
                log::debug!("chunk {}: {}", Describe(&chunk), result_name(&answer));
                return Ok(answer);
            }
            Ok(Err(TaskError::Withdrawn)) => {
                log::debug!(
                    "chunk {}: its partition was revoked before it started; its next owner clones it",
                    Describe(&chunk)
                );
                return Err(Outcome::Withdrawn);
            }
            // Cannot happen while max_in_flight <= queue_bound (checked in the configuration),
            // but if something else fills the queue, wait for it to drain rather than drop.
            Ok(Err(TaskError::QueueFull { bound })) => {
                let delay = backoff.delay(retry, &mut rng);
                log::warn!(
                    "chunk {}: the queue is full ({bound}); offering it again in {delay:?}",
                    Describe(&chunk)
                );
                retry += 1;
                actix_rt::time::sleep(delay).await;
            }
            Ok(Err(TaskError::Aborted)) | Err(_) => {
                log::info!(
                    "chunk {}: not answered (shutting down); it will be delivered again",
                    Describe(&chunk)
                );
                return Err(Outcome::Abandoned);
            }
        }
    }
}

/// `answer`, which came to `bytes` and is more than the broker accepts, as the `WINDOW_TOO_BIG`
/// answer that says so: the requester halves the window and asks again.
pub(super) fn too_big_for_the_broker(answer: ClonedChunk, bytes: usize) -> ClonedChunk {
    let chunk = answer.original_todo_chunk.unwrap_or_default();
    let why = format!(
        "the result ({} trades, {bytes} bytes) is larger than the broker accepts (message.max.bytes); ask for a smaller window",
        answer.entries.len()
    );
    log::warn!("chunk {}: {why}", Describe(&chunk));
    result(&chunk, cloned_chunk::Result::WindowTooBig, Vec::new(), why)
}

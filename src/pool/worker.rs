//! `Worker`: a supervised actor that clones one chunk at a time — the original's worker `n`.
//!
//! For each chunk it spawns a short-lived future (the Elixir `Task`, [`clone_chunk`]) under a
//! deadline (which does not count its waits for the rate limiter), with panics caught, and reports the outcome to the `WorkerManager`. A panicking
//! task means the worker's state is suspect, so the worker stops and its supervisor restarts it
//! (let it crash); the attempt is reported first so the chunk is retried.
//!
//! It must never drop a chunk silently: every `Run` ends in exactly one `AttemptFinished`, or in
//! the worker stopping, which the manager learns of through the registry.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;

use crate::domain::chunk::Describe;
use crate::pool::job::JobId;
use crate::pool::protocol::{
    AttemptFailure, AttemptFinished, AttemptOutcome, Kill, RegisterWorker, Run, WorkerHandle,
    WorkerId, WorkerLinks, WorkerStopped,
};
use crate::proto::{ClonedChunk, TodoChunk};
use crate::task::chunk_task::{clone_chunk, LimiterTime, TaskDeps};
use crate::task::rate_limiter::LimiterClosed;

/// A fault a test injects into a task, by chunk and attempt (see [`FaultHook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// The task panics before calling the upstream.
    Panic,
    /// The task never finishes (until its deadline).
    Hang,
}

/// Test hook: decides, per chunk and zero-based attempt, whether the task misbehaves.
pub type FaultHook = Rc<dyn Fn(&TodoChunk, u32) -> Option<InjectedFault>>;

pub struct Worker {
    id: WorkerId,
    deps: Rc<TaskDeps>,
    /// Where it reports its starts, stops and attempts.
    links: WorkerLinks,
    /// Deadline of one attempt.
    deadline: Duration,
    hook: Option<FaultHook>,
    /// The job being worked on; the same actor value lives on across restarts, so this is
    /// cleared in `restarting`.
    current: Option<JobId>,
    /// Restarts so far. A `Run` sent to an earlier incarnation is stale: the manager failed its
    /// job over when that incarnation stopped, so running it would only duplicate the work.
    incarnation: u32,
}

impl Worker {
    pub fn new(
        id: WorkerId,
        deps: Rc<TaskDeps>,
        links: WorkerLinks,
        deadline: Duration,
        hook: Option<FaultHook>,
    ) -> Worker {
        Worker {
            id,
            deps,
            links,
            deadline,
            hook,
            current: None,
            incarnation: 0,
        }
    }
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address();
        self.links.register.do_send(RegisterWorker {
            id: self.id,
            incarnation: self.incarnation,
            handle: WorkerHandle {
                run: me.clone().recipient(),
                kill: me.recipient(),
            },
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Cancelled with the context: the spawned task, if any. The manager retries its chunk.
        self.links.stopped.do_send(WorkerStopped { id: self.id });
    }
}

impl Supervised for Worker {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.current = None;
        self.incarnation += 1;
    }
}

impl Handler<Run> for Worker {
    type Result = ();

    fn handle(&mut self, run: Run, ctx: &mut Context<Self>) {
        if run.incarnation != self.incarnation {
            log::debug!(
                "worker {}: job {} was for an earlier incarnation",
                self.id,
                run.job
            );
            return;
        }
        if let Some(current) = self.current {
            // The manager hands out one job per worker; refuse loudly rather than lose one.
            log::error!(
                "worker {} got job {} while busy with job {current}",
                self.id,
                run.job
            );
            self.links.finished.do_send(AttemptFinished {
                worker: self.id,
                job: run.job,
                outcome: AttemptOutcome::Failed(AttemptFailure::WorkerBusy(self.id)),
            });
            return;
        }
        self.current = Some(run.job);
        let waits = Rc::new(LimiterTime::default());
        let task = attempt(
            self.deps.clone(),
            run.chunk,
            run.attempt,
            self.hook.clone(),
            waits.clone(),
        );
        let deadline = self.deadline;
        let job = run.job;
        let fut = async move {
            let started = tokio::time::Instant::now();
            let mut task = std::pin::pin!(AssertUnwindSafe(task).catch_unwind());
            // The deadline does not count the waits for the rate limiter: when it passes, look
            // again at how much of the time was waiting, and move it that far.
            let finished = loop {
                let due = started + deadline + waits.total();
                if let Ok(finished) = tokio::time::timeout_at(due, &mut task).await {
                    break Some(finished);
                }
                if started + deadline + waits.total() <= tokio::time::Instant::now() {
                    break None;
                }
            };
            match finished {
                Some(Ok(Ok(answer))) => AttemptOutcome::Answered(answer),
                Some(Ok(Err(LimiterClosed))) => {
                    AttemptOutcome::Failed(AttemptFailure::LimiterClosed)
                }
                Some(Err(panic)) => {
                    AttemptOutcome::Failed(AttemptFailure::Panicked(panic_message(&panic)))
                }
                None => AttemptOutcome::Failed(AttemptFailure::DeadlinePassed(deadline)),
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |outcome, worker, ctx| {
            worker.current = None;
            let panicked = outcome.panicked();
            worker.links.finished.do_send(AttemptFinished {
                worker: worker.id,
                job,
                outcome,
            });
            if panicked {
                ctx.stop();
            }
        }));
    }
}

/// One attempt: the fault hook, if any, then the real task.
async fn attempt(
    deps: Rc<TaskDeps>,
    chunk: TodoChunk,
    attempt: u32,
    hook: Option<FaultHook>,
    waits: Rc<LimiterTime>,
) -> Result<ClonedChunk, LimiterClosed> {
    match hook.and_then(|hook| hook(&chunk, attempt)) {
        Some(InjectedFault::Panic) => panic!("injected fault for chunk {}", Describe(&chunk)),
        Some(InjectedFault::Hang) => std::future::pending().await,
        None => clone_chunk(deps, chunk, waits).await,
    }
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl Handler<Kill> for Worker {
    type Result = ();

    fn handle(&mut self, _: Kill, ctx: &mut Context<Self>) {
        log::warn!("worker {} killed on request", self.id);
        ctx.stop();
    }
}

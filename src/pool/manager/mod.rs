//! `WorkerManager`: hands queued chunks to free workers and answers `add_task` — the original's
//! `WorkerManager` process.
//!
//! `add_task(chunk)` queues a [`Job`] in the [`Queue`] and answers the caller when a worker has
//! produced the chunk's result; any number of callers wait at once. The manager keeps the free
//! and busy workers; for every free worker it parks one taker on the queue, so a job goes to a
//! worker the moment both exist (events, never a tick). An attempt that ends without an answer
//! (the task panicked, passed its deadline, or its worker died) puts the job back at the front
//! of the queue, up to `max_attempts`; after the last one the answer is `RANDOM_ERROR` with the
//! reason.
//!
//! It must never lose a job: every job taken from the queue is either with a busy worker, back
//! in the queue, or answered.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;

use crate::config::Settings;
use crate::domain::chunk::{error_result, result_name, Describe};
use crate::pool::job::Job;
use crate::pool::protocol::{
    AttemptFailure, AttemptFinished, AttemptOutcome, Run, WorkerDown, WorkerId, WorkerUp,
};
use crate::pool::queue::{next_element, Queue, QueueClosed, Requeue};
use crate::proto::ClonedChunk;
use crate::telemetry::metrics::Metrics;

mod add_task;
mod status;

pub use add_task::{AddTask, AddWithdrawableTask, DropWithdrawn, TaskError};
pub use status::{GetManagerStatus, ManagerStats, ManagerStatus, WorkerState};

/// What becomes of answers to chunks queued without a caller (`Queue.add_to_queue`).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Unclaimed(pub ClonedChunk);

pub struct WorkerManager {
    queue: Addr<Queue<Job>>,
    /// Attempts a job gets before it is answered with an error.
    max_attempts: u32,
    /// Running workers by id, with the incarnation their `Run`s are addressed to.
    workers: HashMap<WorkerId, (Recipient<Run>, u32)>,
    /// Running workers without a job, longest idle first.
    free: VecDeque<WorkerId>,
    /// The job each busy worker holds.
    busy: HashMap<WorkerId, Job>,
    /// Takers parked on the queue; kept at most `free.len()`, so jobs are only taken for
    /// workers that can run them (a surplus one, after a worker died, goes back to the queue).
    takers: usize,
    /// Gets answers nobody asked for; logged when unset.
    unclaimed: Option<Recipient<Unclaimed>>,
    stats: ManagerStats,
    /// Counts attempts and attempt retries for `/metrics`; a private set unless the app gives
    /// its own ([`WorkerManager::with_metrics`]).
    metrics: Arc<Metrics>,
}

impl WorkerManager {
    pub fn new(queue: Addr<Queue<Job>>, max_attempts: u32) -> WorkerManager {
        assert!(max_attempts > 0, "max_attempts must be at least 1");
        WorkerManager {
            queue,
            max_attempts,
            workers: HashMap::new(),
            free: VecDeque::new(),
            busy: HashMap::new(),
            takers: 0,
            unclaimed: None,
            stats: ManagerStats::default(),
            metrics: Metrics::new(),
        }
    }

    /// Counts into `metrics` (the app's) instead of a private set.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> WorkerManager {
        self.metrics = metrics;
        self
    }

    /// Parks a taker on the queue for every free worker that has none.
    fn take_for_free_workers(&mut self, ctx: &mut Context<Self>) {
        while self.takers < self.free.len() {
            self.takers += 1;
            let queue = self.queue.clone();
            let take = async move { next_element(&queue).await };
            ctx.spawn(take.into_actor(self).map(|taken, manager, ctx| {
                manager.takers -= 1;
                manager.on_taken(taken, ctx);
            }));
        }
    }

    fn on_taken(&mut self, taken: Result<Job, QueueClosed>, ctx: &mut Context<Self>) {
        let job = match taken {
            Ok(job) => job,
            Err(QueueClosed) => {
                log::error!("the queue stopped; no more work can be handed out");
                return;
            }
        };
        if job.is_withdrawn() {
            // Dropped unstarted: its caller, which withdrew it, hears `Withdrawn`.
            self.stats.withdrawn += 1;
        } else {
            match self.free.pop_front() {
                Some(worker) => self.dispatch(worker, job),
                // The worker it was taken for died meanwhile.
                None => self.queue.do_send(Requeue(job)),
            }
        }
        self.take_for_free_workers(ctx);
    }

    fn dispatch(&mut self, worker: WorkerId, job: Job) {
        let (addr, incarnation) = self.workers.get(&worker).expect("free workers are running");
        self.metrics.attempts.inc();
        addr.do_send(Run {
            job: job.id,
            chunk: job.chunk.clone(),
            attempt: job.failed_attempts,
            incarnation: *incarnation,
        });
        self.busy.insert(worker, job);
    }

    /// An attempt of `job` ended without an answer: retry it, or answer with the error.
    fn attempt_failed(&mut self, mut job: Job, reason: AttemptFailure) {
        self.stats.failed_attempts += 1;
        job.failed_attempts += 1;
        if job.failed_attempts < self.max_attempts {
            log::warn!(
                "chunk {}: attempt {} failed ({reason}); retrying",
                Describe(&job.chunk),
                job.failed_attempts
            );
            self.metrics.attempt_retries.inc();
            self.queue.do_send(Requeue(job));
        } else {
            self.stats.gave_up += 1;
            let message = format!(
                "no answer after {} attempts; last: {reason}",
                job.failed_attempts
            );
            log::error!("chunk {}: {message}", Describe(&job.chunk));
            let answer = error_result(&job.chunk, message);
            self.answer(job, answer);
        }
    }

    fn answer(&mut self, job: Job, answer: ClonedChunk) {
        self.stats.answered += 1;
        match job.reply {
            Some(reply) => {
                if reply.send(answer).is_err() {
                    log::debug!(
                        "chunk {}: its caller went away before the answer",
                        Describe(&job.chunk)
                    );
                }
            }
            None => match &self.unclaimed {
                Some(sink) => sink.do_send(Unclaimed(answer)),
                None => log::info!(
                    "chunk {} answered {} with {} entries (nobody waiting)",
                    Describe(&job.chunk),
                    result_name(&answer),
                    answer.entries.len()
                ),
            },
        }
    }
}

impl Default for WorkerManager {
    /// What `WorkerManager::from_registry()` starts if nothing registered a manager before
    /// (`SystemService` requires it): one on the system's queue, with the embedded default
    /// configuration. [`App::start`](crate::pool::app::App::start) registers a configured one
    /// first, so a running service never gets this.
    fn default() -> Self {
        let max_attempts = Settings::default().manager.max_attempts;
        WorkerManager::new(Queue::<Job>::from_registry(), max_attempts)
    }
}

impl Actor for WorkerManager {
    type Context = Context<Self>;

    /// After a restart, its free workers need takers again.
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.take_for_free_workers(ctx);
    }
}

impl Supervised for WorkerManager {
    /// Its takers went with the old context (the queue skips their dropped channels); the busy
    /// workers' jobs stay, and are answered when their attempts end.
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.takers = 0;
    }
}

/// Reachable as a named process: `WorkerManager::from_registry()`.
impl SystemService for WorkerManager {}

impl Handler<WorkerUp> for WorkerManager {
    type Result = ();

    fn handle(&mut self, msg: WorkerUp, ctx: &mut Context<Self>) {
        self.workers.insert(msg.id, (msg.run, msg.incarnation));
        if !self.busy.contains_key(&msg.id) && !self.free.contains(&msg.id) {
            self.free.push_back(msg.id);
        }
        self.take_for_free_workers(ctx);
    }
}

impl Handler<WorkerDown> for WorkerManager {
    type Result = ();

    fn handle(&mut self, WorkerDown { id }: WorkerDown, _: &mut Context<Self>) {
        self.workers.remove(&id);
        self.free.retain(|&w| w != id);
        if let Some(job) = self.busy.remove(&id) {
            self.attempt_failed(job, AttemptFailure::WorkerDied(id));
        }
    }
}

impl Handler<AttemptFinished> for WorkerManager {
    type Result = ();

    fn handle(&mut self, msg: AttemptFinished, ctx: &mut Context<Self>) {
        // A report for a job the worker no longer holds (already failed over when the worker
        // died) changes nothing: the job is being retried elsewhere.
        if self.busy.get(&msg.worker).map(|job| job.id) != Some(msg.job) {
            log::debug!("late report from worker {} for job {}", msg.worker, msg.job);
            return;
        }
        let job = self.busy.remove(&msg.worker).expect("checked above");
        // A worker whose task panicked is stopping: it is free again when it is back (WorkerUp),
        // not now, or the next job would go to an actor on its way down.
        let stopping = msg.outcome.panicked();
        if !stopping && self.workers.contains_key(&msg.worker) {
            self.free.push_back(msg.worker);
        }
        match msg.outcome {
            AttemptOutcome::Answered(answer) => self.answer(job, answer),
            AttemptOutcome::Failed(reason) => self.attempt_failed(job, reason),
        }
        self.take_for_free_workers(ctx);
    }
}

/// Where answers to chunks queued without a caller go (the REPL prints them; the Kafka side
/// produces them).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetUnclaimedSink(pub Option<Recipient<Unclaimed>>);

impl Handler<SetUnclaimedSink> for WorkerManager {
    type Result = ();

    fn handle(&mut self, SetUnclaimedSink(sink): SetUnclaimedSink, _: &mut Context<Self>) {
        self.unclaimed = sink;
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::pool::job::Withdrawal;
    use crate::pool::queue::AddToQueue;
    use crate::pool::queue::{GetFirstElement, Len};
    use crate::proto::cloned_chunk;
    use crate::proto::TodoChunk;

    /// Stands in for a worker: hands every `Run` it gets to the test.
    struct Probe(tokio::sync::mpsc::UnboundedSender<Run>);

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<Run> for Probe {
        type Result = ();

        fn handle(&mut self, run: Run, _: &mut Context<Self>) {
            self.0.send(run).unwrap();
        }
    }

    /// A manager with one worker, `id`, played by a probe: the manager, the probe's address
    /// (to bring the worker back) and the `Run`s it receives.
    fn manager_with_probe(
        max_attempts: u32,
        id: WorkerId,
    ) -> (
        Addr<WorkerManager>,
        Recipient<Run>,
        tokio::sync::mpsc::UnboundedReceiver<Run>,
    ) {
        let manager = WorkerManager::new(Queue::<Job>::new(10).start(), max_attempts).start();
        let (runs_tx, runs) = tokio::sync::mpsc::unbounded_channel();
        let probe = Probe(runs_tx).start().recipient();
        manager.do_send(WorkerUp {
            id,
            incarnation: 0,
            run: probe.clone(),
        });
        (manager, probe, runs)
    }

    fn chunk(id: i32) -> TodoChunk {
        TodoChunk {
            currency_pair: "BTC_ETH".into(),
            from_unix_ts: 0,
            until_unix_ts: 1,
            task_dbid: id,
            ..Default::default()
        }
    }

    fn worker_ids(status: &ManagerStatus) -> Vec<(WorkerId, bool)> {
        status
            .workers
            .iter()
            .map(|(id, s)| (*id, *s == WorkerState::Free))
            .collect()
    }

    #[actix_rt::test]
    async fn a_worker_whose_task_panicked_gets_work_only_after_it_is_back() {
        let (manager, probe, mut runs) = manager_with_probe(3, 1);

        let a = manager.send(AddTask(chunk(1)));
        let b = manager.send(AddTask(chunk(2)));
        let run = runs.recv().await.unwrap();
        assert_eq!(
            (run.chunk.task_dbid, run.attempt, run.incarnation),
            (1, 0, 0)
        );

        let failed = AttemptOutcome::Failed(AttemptFailure::Panicked("boom".into()));
        manager.do_send(AttemptFinished {
            worker: 1,
            job: run.job,
            outcome: failed,
        });
        let status = manager.send(GetManagerStatus).await.unwrap();
        assert_eq!(
            worker_ids(&status),
            [],
            "neither free nor busy while it stops"
        );
        assert_eq!(status.stats.failed_attempts, 1);

        // Back as its next incarnation: it gets the failed chunk again first, addressed anew.
        manager.do_send(WorkerDown { id: 1 });
        manager.do_send(WorkerUp {
            id: 1,
            incarnation: 1,
            run: probe,
        });
        let retry = runs.recv().await.unwrap();
        assert_eq!(
            (retry.chunk.task_dbid, retry.attempt, retry.incarnation),
            (1, 1, 1)
        );
        let answer =
            crate::domain::chunk::result(&retry.chunk, cloned_chunk::Result::Complete, vec![], "");
        let outcome = AttemptOutcome::Answered(answer.clone());
        manager.do_send(AttemptFinished {
            worker: 1,
            job: retry.job,
            outcome,
        });
        assert_eq!(a.await.unwrap(), Ok(answer));

        let run_b = runs.recv().await.unwrap();
        assert_eq!(run_b.chunk.task_dbid, 2);
        let answer_b = crate::domain::chunk::error_result(&run_b.chunk, "Invalid currency pair.");
        let outcome = AttemptOutcome::Answered(answer_b.clone());
        manager.do_send(AttemptFinished {
            worker: 1,
            job: run_b.job,
            outcome,
        });
        assert_eq!(b.await.unwrap(), Ok(answer_b));
    }

    #[actix_rt::test]
    async fn a_dead_worker_s_job_is_retried_and_a_late_report_ignored() {
        let (manager, probe, mut runs) = manager_with_probe(2, 7);
        let answer = manager.send(AddTask(chunk(1)));
        let first = runs.recv().await.unwrap();

        manager.do_send(WorkerDown { id: 7 });
        // A report from the dead incarnation changes nothing.
        let late =
            AttemptOutcome::Answered(crate::domain::chunk::error_result(&first.chunk, "late"));
        manager.do_send(AttemptFinished {
            worker: 7,
            job: first.job,
            outcome: late,
        });
        manager.do_send(WorkerUp {
            id: 7,
            incarnation: 1,
            run: probe,
        });
        let second = runs.recv().await.unwrap();
        assert_eq!((second.attempt, second.incarnation), (1, 1));

        // The last attempt dies too: the caller gets the error, with the reason.
        manager.do_send(WorkerDown { id: 7 });
        let answer = answer.await.unwrap().unwrap();
        assert_eq!(
            answer.chunk_result,
            cloned_chunk::Result::RandomError as i32
        );
        assert_eq!(
            answer.possible_error_message,
            "no answer after 2 attempts; last: worker 7 died"
        );
    }

    #[actix_rt::test]
    async fn withdrawn_jobs_are_not_started_and_their_callers_told() {
        let queue = Queue::<Job>::new(10).start();
        let manager = WorkerManager::new(queue.clone(), 3).start();
        let (runs_tx, mut runs) = tokio::sync::mpsc::unbounded_channel();
        let probe = Probe(runs_tx).start().recipient();
        manager.do_send(WorkerUp {
            id: 1,
            incarnation: 0,
            run: probe,
        });
        let first = manager.send(AddTask(chunk(1)));
        let run = runs.recv().await.unwrap();
        // The worker is busy with chunk 1; 2 and 3 wait behind it, withdrawable, then 4.
        let withdrawal = Withdrawal::new();
        let mut answers = Vec::new();
        for id in 2..=4 {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                withdrawal: (id != 4).then(|| withdrawal.clone()),
                ..Job::new(chunk(id), Some(reply))
            };
            queue.send(AddToQueue(job)).await.unwrap().unwrap();
            answers.push(answer);
        }
        withdrawal.withdraw();

        // The job already with the worker finishes and is answered; the next one run is 4.
        let answer = crate::domain::chunk::error_result(&run.chunk, "done");
        manager.do_send(AttemptFinished {
            worker: 1,
            job: run.job,
            outcome: AttemptOutcome::Answered(answer.clone()),
        });
        assert_eq!(first.await.unwrap(), Ok(answer));
        assert_eq!(runs.recv().await.unwrap().chunk.task_dbid, 4);
        let mut answers = answers.into_iter();
        assert!(
            answers.next().unwrap().await.is_err(),
            "2 dropped unanswered"
        );
        assert!(
            answers.next().unwrap().await.is_err(),
            "3 dropped unanswered"
        );
        let status = manager.send(GetManagerStatus).await.unwrap();
        assert_eq!(status.stats.withdrawn, 2);

        // Given after its withdrawal, a chunk is refused without being queued.
        let late = AddWithdrawableTask {
            chunk: chunk(5),
            withdrawal,
        };
        assert_eq!(manager.send(late).await.unwrap(), Err(TaskError::Withdrawn));
        assert_eq!(queue.send(Len::new()).await.unwrap(), 0);
    }

    #[actix_rt::test]
    async fn drop_withdrawn_empties_the_queue_of_them_at_once() {
        let queue = Queue::<Job>::new(10).start();
        // No worker: nothing is taken, the queue keeps what it is given.
        let manager = WorkerManager::new(queue.clone(), 1).start();
        let withdrawal = Withdrawal::new();
        let mut answers = Vec::new();
        for id in 1..=3 {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                withdrawal: (id != 2).then(|| withdrawal.clone()),
                ..Job::new(chunk(id), Some(reply))
            };
            queue.send(AddToQueue(job)).await.unwrap().unwrap();
            answers.push(answer);
        }
        withdrawal.withdraw();
        assert_eq!(manager.send(DropWithdrawn).await.unwrap(), 2);
        let mut answers = answers.into_iter();
        assert!(
            answers.next().unwrap().await.is_err(),
            "1 dropped unanswered"
        );
        let kept = answers.next().unwrap();
        assert!(
            answers.next().unwrap().await.is_err(),
            "3 dropped unanswered"
        );
        let left = queue.send(GetFirstElement::new()).await.unwrap().unwrap();
        assert_eq!(left.chunk.task_dbid, 2);
        assert_eq!(queue.send(Len::new()).await.unwrap(), 0);
        drop(kept);
    }

    #[actix_rt::test]
    async fn a_full_queue_refuses_add_task() {
        let queue = Queue::<Job>::new(1).start();
        let manager = WorkerManager::new(queue, 1).start();
        let waiting = manager.send(AddTask(chunk(1)));
        let refused = manager.send(AddTask(chunk(2))).await.unwrap();
        assert_eq!(refused, Err(TaskError::QueueFull { bound: 1 }));
        drop(waiting);
    }
}

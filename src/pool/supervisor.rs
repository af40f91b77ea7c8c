//! `WorkerSupervisor`: starts `n_workers` workers, each under an actix `Supervisor` that
//! restarts it whenever it stops — the original's supervision tree.
//!
//! It holds every worker's address for the life of the system: actix restarts a stopped actor
//! only while somebody still holds its address. It must never hand work to workers (the
//! manager does) nor track their state (the registry does).

use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use crate::pool::protocol::{Kill, WorkerId, WorkerLinks};
use crate::pool::worker::{FaultHook, Worker};
use crate::task::chunk_task::TaskDeps;

#[derive(Default)]
pub struct WorkerSupervisor {
    /// Worker `n` is at index `n - 1`.
    workers: Vec<Addr<Worker>>,
}

impl WorkerSupervisor {
    /// Starts workers `1..=n` on the current arbiter, each reporting to `links`.
    pub fn start_workers(
        n: usize,
        deps: Rc<TaskDeps>,
        links: WorkerLinks,
        deadline: Duration,
        hook: Option<FaultHook>,
    ) -> Self {
        let workers = (1..=n)
            .map(|id| {
                let (deps, links, hook) = (deps.clone(), links.clone(), hook.clone());
                actix::Supervisor::start(move |_| Worker::new(id, deps, links, deadline, hook))
            })
            .collect();
        WorkerSupervisor { workers }
    }
}

impl Actor for WorkerSupervisor {
    type Context = Context<Self>;
}

impl Supervised for WorkerSupervisor {}

/// Reachable as a named process: `WorkerSupervisor::from_registry()`.
impl SystemService for WorkerSupervisor {}

/// Stops worker `n` as if it had died; it comes back by itself. `false` if there is no such worker.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct KillWorker(pub WorkerId);

impl Handler<KillWorker> for WorkerSupervisor {
    type Result = bool;

    fn handle(&mut self, KillWorker(id): KillWorker, _: &mut Context<Self>) -> bool {
        match id.checked_sub(1).and_then(|i| self.workers.get(i)) {
            Some(worker) => {
                worker.do_send(Kill);
                true
            }
            None => false,
        }
    }
}

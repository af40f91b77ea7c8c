//! `Registry`: where worker `n` is found — the original's process registry.
//!
//! Workers register themselves when they start (and again after every restart) and report when
//! they stop; the registry keeps their addresses and restart counts and tells the
//! `WorkerManager`, so the manager learns of every death and every return.
//!
//! It must never start, stop or restart workers: that is the supervisor's job.

use std::collections::BTreeMap;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::worker::{Worker, WorkerId};
use crate::worker_manager::{WorkerDown, WorkerManager, WorkerUp};

struct Entry {
    addr: Addr<Worker>,
    /// Whether the worker is running now (registered and not stopped since).
    up: bool,
    /// Times it was restarted.
    restarts: u32,
}

#[derive(Default)]
pub struct Registry {
    workers: BTreeMap<WorkerId, Entry>,
    /// Callers of [`AwaitWorkersUp`], answered when that many workers run.
    up_waiters: Vec<(usize, oneshot::Sender<Vec<WorkerEntry>>)>,
}

impl Registry {
    fn listing(&self) -> Vec<WorkerEntry> {
        self.workers
            .iter()
            .map(|(&id, e)| WorkerEntry {
                id,
                up: e.up,
                restarts: e.restarts,
            })
            .collect()
    }

    fn wake_up_waiters(&mut self) {
        let up = self.workers.values().filter(|e| e.up).count();
        if self.up_waiters.iter().any(|(n, _)| *n == up) {
            let listing = self.listing();
            for (_, waiter) in self.up_waiters.extract_if(.., |(n, _)| *n == up) {
                let _ = waiter.send(listing.clone());
            }
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Supervised for Registry {}

/// Reachable as a named process: `Registry::from_registry()`.
impl SystemService for Registry {}

/// A worker announces itself as worker `id`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterWorker {
    pub id: WorkerId,
    /// Restarts of this worker so far (0 at first start).
    pub incarnation: u32,
    pub addr: Addr<Worker>,
}

impl Handler<RegisterWorker> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RegisterWorker, _: &mut Context<Self>) {
        if msg.incarnation > 0 {
            log::info!("worker {} is back (restart {})", msg.id, msg.incarnation);
        }
        let entry = Entry {
            addr: msg.addr.clone(),
            up: true,
            restarts: msg.incarnation,
        };
        self.workers.insert(msg.id, entry);
        WorkerManager::from_registry().do_send(WorkerUp {
            id: msg.id,
            incarnation: msg.incarnation,
            addr: msg.addr.recipient(),
        });
        self.wake_up_waiters();
    }
}

/// A worker stopped (it will be restarted by its supervisor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerStopped {
    pub id: WorkerId,
}

impl Handler<WorkerStopped> for Registry {
    type Result = ();

    fn handle(&mut self, msg: WorkerStopped, _: &mut Context<Self>) {
        log::warn!("worker {} stopped; its supervisor restarts it", msg.id);
        if let Some(entry) = self.workers.get_mut(&msg.id) {
            entry.up = false;
        }
        WorkerManager::from_registry().do_send(WorkerDown { id: msg.id });
        self.wake_up_waiters();
    }
}

/// The address of worker `n`, if it is running.
#[derive(Message)]
#[rtype(result = "Option<Addr<Worker>>")]
pub struct Whereis(pub WorkerId);

impl Handler<Whereis> for Registry {
    type Result = Option<Addr<Worker>>;

    fn handle(&mut self, Whereis(id): Whereis, _: &mut Context<Self>) -> Self::Result {
        self.workers
            .get(&id)
            .filter(|e| e.up)
            .map(|e| e.addr.clone())
    }
}

/// One line of the registry's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerEntry {
    pub id: WorkerId,
    pub up: bool,
    pub restarts: u32,
}

/// Every worker ever registered, by id.
#[derive(Message)]
#[rtype(result = "Vec<WorkerEntry>")]
pub struct ListWorkers;

impl Handler<ListWorkers> for Registry {
    type Result = MessageResult<ListWorkers>;

    fn handle(&mut self, _: ListWorkers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.listing())
    }
}

/// Resolves with the listing as soon as exactly `n` workers are running (at once if they are):
/// for start-up readiness and for tests, without polling.
pub struct AwaitWorkersUp(pub usize);

impl Message for AwaitWorkersUp {
    type Result = Result<Vec<WorkerEntry>, oneshot::error::RecvError>;
}

impl Handler<AwaitWorkersUp> for Registry {
    type Result = ResponseFuture<Result<Vec<WorkerEntry>, oneshot::error::RecvError>>;

    fn handle(&mut self, AwaitWorkersUp(n): AwaitWorkersUp, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.up_waiters.push((n, tx));
        self.wake_up_waiters();
        Box::pin(rx)
    }
}

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

use crate::pool::protocol::{
    RegisterWorker, RegistryLinks, WorkerDown, WorkerHandle, WorkerId, WorkerStopped, WorkerUp,
};

struct Entry {
    handle: WorkerHandle,
    /// Whether the worker is running now (registered and not stopped since).
    up: bool,
    /// Times it was restarted.
    restarts: u32,
}

#[derive(Default)]
pub struct Registry {
    workers: BTreeMap<WorkerId, Entry>,
    /// The manager, told of every start and stop; `None` only in a registry that
    /// `from_registry()` made up without an `App` (nobody to tell).
    links: Option<RegistryLinks>,
    /// Callers of [`AwaitWorkersUp`], answered when that many workers run.
    up_waiters: Vec<(usize, oneshot::Sender<Vec<WorkerEntry>>)>,
}

impl Registry {
    /// A registry that tells `links` (the manager) of every worker's start and stop.
    pub fn new(links: RegistryLinks) -> Registry {
        Registry {
            links: Some(links),
            ..Registry::default()
        }
    }

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

impl Handler<RegisterWorker> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RegisterWorker, _: &mut Context<Self>) {
        if msg.incarnation > 0 {
            log::info!("worker {} is back (restart {})", msg.id, msg.incarnation);
        }
        if let Some(links) = &self.links {
            links.up.do_send(WorkerUp {
                id: msg.id,
                incarnation: msg.incarnation,
                run: msg.handle.run.clone(),
            });
        }
        let entry = Entry {
            handle: msg.handle,
            up: true,
            restarts: msg.incarnation,
        };
        self.workers.insert(msg.id, entry);
        self.wake_up_waiters();
    }
}

impl Handler<WorkerStopped> for Registry {
    type Result = ();

    fn handle(&mut self, msg: WorkerStopped, _: &mut Context<Self>) {
        log::warn!("worker {} stopped; its supervisor restarts it", msg.id);
        if let Some(entry) = self.workers.get_mut(&msg.id) {
            entry.up = false;
        }
        if let Some(links) = &self.links {
            links.down.do_send(WorkerDown { id: msg.id });
        }
        self.wake_up_waiters();
    }
}

/// How to reach worker `n`, if it is running.
#[derive(Message)]
#[rtype(result = "Option<WorkerHandle>")]
pub struct Whereis(pub WorkerId);

impl Handler<Whereis> for Registry {
    type Result = Option<WorkerHandle>;

    fn handle(&mut self, Whereis(id): Whereis, _: &mut Context<Self>) -> Self::Result {
        self.workers
            .get(&id)
            .filter(|e| e.up)
            .map(|e| e.handle.clone())
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

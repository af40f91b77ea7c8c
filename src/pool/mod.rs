//! The actor tree that clones chunks in process — the original Elixir application:
//!
//! `add_task` puts a [`job`] in the [`queue`]; the [`manager`] takes one for each free
//! [`worker`] and sends it `Run`; the worker answers with `AttemptFinished`. Workers tell the
//! [`registry`] when they start and stop, the registry tells the manager, and the
//! [`supervisor`] restarts a worker that died, so a job held by a dead worker is retried, never
//! lost. Who sends what to whom is tabled in [`protocol`].
//!
//! - [`app`]: boots the tree and registers its singletons as system services.
//! - [`queue`]: `Queue<T>`, a generic bounded FIFO actor.
//! - [`job`]: a chunk on its way through the queue, with its reply channel.
//! - [`manager`]: `WorkerManager`, `add_task`, free and busy workers, retries.
//! - [`worker`]: `Worker`, which runs each chunk as a short-lived future under a deadline.
//! - [`registry`]: `Registry`, worker `n` by number; tells the manager of deaths and returns.
//! - [`supervisor`]: `WorkerSupervisor`, which restarts workers that die.
//! - [`protocol`]: the messages the pool's actors send each other. An actor that only sends to
//!   another is handed a `Recipient`, so imports go one way: the supervisor starts workers,
//!   the manager uses the queue, [`app`] wires them all; nothing imports back.
//!
//! The pool must never know where chunks come from (Kafka, the console) or go to.

pub mod app;
pub mod job;
pub mod manager;
pub mod protocol;
pub mod queue;
pub mod registry;
pub mod supervisor;
pub mod worker;

//! The actor tree that clones chunks in process — the original Elixir application:
//!
//! ```text
//! App ─ starts ─▶ Queue<Job> ◀─ takes ─ WorkerManager ─ Run ─▶ Worker n (× n_workers)
//!                                        ▲        ▲                │  ▲
//!                       AttemptFinished ─┘        └─ WorkerUp/Down ─ Registry ◀─ RegisterWorker
//!                                                                        WorkerSupervisor restarts
//! ```
//!
//! - [`app`]: boots the tree and registers its singletons as system services.
//! - [`queue`]: `Queue<T>`, a generic bounded FIFO actor.
//! - [`job`]: a chunk on its way through the queue, with its reply channel.
//! - [`manager`]: `WorkerManager`, `add_task`, free and busy workers, retries.
//! - [`worker`]: `Worker`, which runs each chunk as a short-lived future under a deadline.
//! - [`registry`]: `Registry`, worker `n` by number; tells the manager of deaths and returns.
//! - [`supervisor`]: `WorkerSupervisor`, which restarts workers that die.
//! - [`protocol`]: the messages the pool's actors send each other. An actor that only sends to
//!   another is handed a `Recipient`, so no actor's file imports another's.
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

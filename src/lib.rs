//! # cloner-worker
//!
//! Clones an exchange's public trade history chunk by chunk. A [`proto::TodoChunk`] (a currency
//! pair and an inclusive window of unix seconds) goes in; a [`proto::ClonedChunk`] comes out:
//! `COMPLETE` with every trade of the window, `WINDOW_TOO_BIG` when one upstream call cannot
//! hold the window, or `RANDOM_ERROR` saying what went wrong.
//!
//! ## Layout
//!
//! The actor tree mirrors the original Elixir application; each actor has a file of its own,
//! with its messages beside it, and the singletons are actix system services
//! (`X::from_registry()`), the way named processes are found in Elixir:
//!
//! - [`queue`] — `Queue<T>`, a generic bounded FIFO actor (`add_to_queue`, `get_first_element`,
//!   and [`queue::next_element`] to wait without polling).
//! - [`rate_limiter`] — `RateLimiter`, a generic actor that grants one call at a time at a set
//!   rate (`register`, `set_rate`), with one timer for the next free slot and none while idle.
//! - [`worker_manager`] — `WorkerManager`: `add_task`, free and busy workers, retries of
//!   attempts that ended without an answer.
//! - [`registry`] — `Registry`: worker `n` by number; tells the manager of deaths and returns.
//! - [`supervisor`] — `WorkerSupervisor`: starts the workers under actix supervisors.
//! - [`worker`] — `Worker`: runs each chunk as a short-lived future ([`chunk_task`], the
//!   Elixir *Task*) under a deadline, with panics caught.
//! - [`app`] — boots the tree from [`config::Settings`].
//!
//! Observability: [`metrics`] (the Prometheus metrics, one `Arc<Metrics>` per `App`, counted
//! by the consumer, the manager and the chunk tasks), [`health`] (readiness: group joined and
//! upstream answering) and [`http_endpoint`] (`/metrics` and `/health` on `http.listen`).
//!
//! Around the actors: [`upstream`] (the API client), [`pair`] (what may go into a URL),
//! [`backoff`], [`job`] (a chunk with its reply channel), [`chunk`] (result helpers),
//! [`utc`] (dates), [`config`] (layered configuration), [`repl`] (the iex-style console) and
//! [`simulator`] (the deterministic exchange the tests, benchmarks and console run against).
//!
//! Kafka: [`todo_chunk_consumer`] (`TodoChunkConsumer`, the service's intake and results, with
//! [`offset_tracker`] committing in order), [`service`] (`serve`: checks, start, drain) and
//! [`kafka`] (clients, topics, the test broker, the requester's primitives).
//!
//! The requesting side: [`clone`] cuts a range into windows, publishes them, matches results
//! to requests (`ResultWaiter`), halves windows too big, and writes the trades in time order
//! with a gap check. [`demo`] runs all of it in one process.
//!
//! The reusable parts ([`queue`], [`rate_limiter`], [`backoff`]) know nothing of chunks,
//! exchanges or Kafka.

pub mod cli;
pub mod clone;
pub mod config;
pub mod dev;
pub mod domain;
pub mod kafka;
pub mod pool;
pub mod service;
pub mod task;
pub mod telemetry;

/// The wire types, generated at build time from `proto/assignment_messages.proto`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/assignment_messages.rs"));
}

//! # cloner-worker
//!
//! Clones an exchange's public trade history chunk by chunk. A [`proto::TodoChunk`] (a currency
//! pair and an inclusive window of unix seconds) goes in; a [`proto::ClonedChunk`] comes out:
//! `COMPLETE` with every trade of the window, `WINDOW_TOO_BIG` when one upstream call cannot
//! hold the window, or `RANDOM_ERROR` saying what went wrong. The wire schema, the result
//! semantics and the reliability contract are in `docs/` (`docs/wire.md`, `docs/results.md`,
//! `docs/reliability.md`).
//!
//! ## A TodoChunk's way, step by step
//!
//! 1. [`service::intake`] reads it from the `todo-chunk` topic once an in-flight permit is free
//!    (back-pressure).
//! 2. [`service::consumer`] (`TodoChunkConsumer`) decodes and validates it
//!    ([`domain::chunk`], [`domain::pair`]); what cannot be a chunk goes to the dead-letter
//!    topic ([`service::dead_letter`]). A chunk is handed to the pool with
//!    `WorkerManager.add_task`.
//! 3. [`pool::manager`] (`WorkerManager`) queues it as a [`pool::job`] in the [`pool::queue`]
//!    and gives it to a free [`pool::worker`].
//! 4. The worker runs [`task::chunk_task`] (the Elixir *Task*): it waits for the
//!    [`task::rate_limiter`], calls the configured venue ([`task::venue`]) through
//!    [`task::upstream`], retries what is transient with [`task::backoff`], and ends in a
//!    ClonedChunk.
//! 5. Back in the consumer, [`service::delivery`] produces the ClonedChunk to `finished-chunk`
//!    and waits for the broker's acknowledgement; only then does [`service::offset_tracker`]
//!    let the offset be stored, in order per partition, and librdkafka commits it.
//! 6. On the requesting side, [`clone`] published the chunk in the first place: it cuts a range
//!    into windows as it goes (a busy one into blocks of trade ids, where the venue's ids are
//!    consecutive), matches each ClonedChunk to its request, keeps the page a window
//!    too big came with and asks for the rest (or halves it), and writes the trades in time
//!    order with a gap check, spilling every answer so that the same command resumes after any
//!    stop.
//!
//! ## Layout
//!
//! | folder | what it holds | must never |
//! |---|---|---|
//! | [`domain`] | chunks, currency pairs, UTC dates: the words of the problem | do I/O |
//! | [`pool`] | the actor tree: `App`, `Queue`, `WorkerManager`, `Worker`, `Registry`, `WorkerSupervisor`, and their messages in [`pool::protocol`] | know where chunks come from |
//! | [`task`] | one chunk's work: the task, the venues and the HTTP client, the rate limiter, backoff | retry without the rate limiter |
//! | [`service`] | `serve`: start-up checks, the consumer by role (intake, group, delivery, dead letters, offsets, drain), the HTTP endpoint | commit before a result is acknowledged |
//! | [`telemetry`] | Prometheus metrics and `/health` readiness | decide anything |
//! | [`kafka`] | librdkafka clients and topic administration | know what a chunk is |
//! | [`clone`] | the requesting side (`cloner-worker clone`): one pair to a file, or many into a dataset ([`clone::dataset`]), the output formats ([`clone::format`]), and its Kafka primitives | write a trade twice or out of order, or a day that is not whole |
//! | [`dev`] | the exchange simulator and the mock Kafka broker, for tests, benchmarks and the demo | be what production talks to |
//! | [`cli`] | the command line, one file per command, the console and the demo | hold logic a library caller needs |
//! | [`config`] | layered configuration: embedded defaults, a file, then `CLONER__*` | let an invalid value through |
//! | [`proto`] | the wire types, generated from `proto/assignment_messages.proto` | change a field's number or meaning |
//!
//! The reusable parts ([`pool::queue`], [`task::rate_limiter`], [`task::backoff`],
//! [`service::offset_tracker`]) are generic and know nothing of chunks, exchanges or Kafka.
//!
//! ## Where to add
//!
//! - **An upstream venue**: a file in [`task::venue`] implementing
//!   [`task::venue::Venue`] (pair spelling, longest window, page order, cost, request, answer),
//!   a variant of [`config::VenueName`] with its `[upstream.NAME]` section, and a line in
//!   [`task::venue::from_settings`], and how Parquet types its trades (time resolution, decimal
//!   scales) in [`clone::format::Columns::of`]. Its simulator goes in [`dev::simulator`].
//! - **A metric**: a field in [`telemetry::metrics::Metrics`], registered in `Metrics::new`,
//!   counted where its fact is known (the consumer, the manager or the chunk task); the README's
//!   metrics table lists it.
//! - **An output format**: a file in [`clone::format`] with its encoder, implementing
//!   [`clone::format::Encoder`] (write a trade, flush, the resume point if a stopped file can be
//!   continued, finish), a variant of [`clone::format::Format`] (its name and extension), and a
//!   line in [`clone::format::encoder`] (and [`clone::format::continuing`] if it can be
//!   continued). The order of trades, the gap check and the dataset's layout are not its
//!   business ([`clone::output`], [`clone::dataset`]).
//! - **A command**: a file in [`cli`] with its clap arguments and a `run`.
//! - **A message between the pool's actors**: in [`pool::protocol`], handed over as a
//!   `Recipient`.

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

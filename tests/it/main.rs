//! The integration tests, one binary: each test binary links the whole crate and librdkafka, so
//! one binary builds and links once instead of once per file. `cargo test --test it` runs them
//! all; `cargo test --test it kafka::` one module.
//!
//! What each module tests:
//!
//! - [`wire`] — the protobuf schema against hand-encoded bytes, and round trips.
//! - [`simulator`] — the exchange simulator over HTTP: answers, errors, the rate limit and its
//!   violation counter, fault injection, `/stats`, and the `exchange-simulator` binary's
//!   arguments.
//! - [`upstream`] — the upstream client, one call at a time, against each kind of answer.
//! - [`binance`] — the Binance venue: the client against each kind of simulated Binance
//!   answer, and a day cloned end to end within the weight budget.
//! - [`worker_manager`] — the actor tree in this process against the simulator: ground-truth
//!   answers, zero rate violations, 5xx and hangs, panics, killed workers, deadlines.
//! - [`repl`] — the console (`cloner-worker repl`) driven by a piped script.
//! - [`kafka`] — `cloner-worker serve` through Kafka: one result per chunk, dead letters,
//!   SIGKILL and SIGTERM mid-run, two members sharing partitions, back-pressure, the `topics`
//!   command, start-up errors, the demo.
//! - [`clone`] — `cloner-worker clone` against the service: a busy day equal to the ground
//!   truth, failed windows named, duplicates dropped, republishing, interruption, halving down
//!   to one second, bad arguments.
//! - [`metrics`] — `/metrics` and `/health` of a running service.
//! - [`outage`] — `serve` with its broker taken down: the outage said once, a SIGTERM still
//!   ends it within the grace period and the bounded close.
//! - [`rate_budget`] — the exchange's rate budget: two members at the whole limit share it
//!   without a call too many (or each has it all with the replica split); 429s slow every
//!   worker and a ban pauses them, as `/metrics` shows, and no chunk fails.
//! - [`rebalance`] — two `serve` members: one saturated by a hung upstream still lets the other
//!   in; a revoked partition's queued chunks are not cloned by the old owner.
//! - [`broker`] — the test broker's fault injection through its control port: a leader taken
//!   down and brought up, injected Produce errors retried through and cleared; each on a broker
//!   process of its own ([`helpers::process::BrokerProcess`]).
//! - [`broker_faults`] — `serve` on a 3-broker cluster of its own through faults injected
//!   mid-run: the leader of every partition down and up, the group coordinator moved, 500 ms
//!   round trips, transient Produce errors; nothing lost, every answer the ground truth, the
//!   todo topic committed to its end. An ignored test measures duplicates per SIGKILL and per
//!   rebalance with the default rates.
//! - [`cluster_faults`] — `serve` on a real 3-node Apache Kafka cluster of its own while brokers
//!   are SIGKILLed: a partition's leader, the group's coordinator, a broker restarted and then
//!   another killed; nothing lost, nothing committed ahead of its result, duplicates bounded.
//! - [`codecs`] — TodoChunks compressed with gzip, snappy, lz4 and zstd by Apache Kafka's Java
//!   client are answered; the service's zstd results read back.
//! - [`group_protocols`] — an ignored measurement: rebalance times and duplicates under the
//!   classic and the KIP-848 consumer group protocols, on a real 3-node cluster.
//! - [`security`] — `serve` and `clone` on a SASL_SSL listener (SCRAM-SHA-512, a throw-away CA)
//!   of an Apache Kafka node of its own: they work with the right user, password and CA; a wrong
//!   password, an unknown CA or a plaintext client fail the start within seconds naming the key
//!   to fix; no log line, at trace with librdkafka's debug on, holds a password.
//! - [`dataset`] — the dataset writer's Parquet days read back by pyarrow
//!   (`scripts/readback.py`): the Hive partitions, the column types, exactly the rows written;
//!   skipped only without python3.
//! - [`dataset_clone`] — `cloner-worker clone A,B,C --out DIR/` through the service: pairs of
//!   very different activity in one run equal to the ground truth (read back by pyarrow) for
//!   about a call per page; the same command again costs nothing and a day later only that
//!   day; SIGKILLed at random moments it ends in the uninterrupted run's files, byte for byte;
//!   an unknown symbol is reported with the exchange's message while the others complete;
//!   `--until now` leaves today unwritten and asks again only for the new seconds.
//! - [`container`] — compose.yaml, the Dockerfile and the healthchecks, checked without an
//!   engine, and `serve` with nothing but the worker container's environment.
//!
//! The shared helpers are in [`helpers`]: the exchange simulator in this process, settings and
//! the ground truth (`helpers/mod.rs`); the service's HTTP endpoint (`helpers/http.rs`); the
//! test broker, its control port, topics, groups and a service's environment
//! (`helpers/kafka.rs`); and every child process (`helpers/process.rs`):
//! the package's binaries, `serve` as a [`helpers::process::ServiceProcess`] whose log is read
//! as it runs, a test's own mock broker, the `clone` command, commands run to their exit or
//! killed at a time limit, signals.

mod helpers;

mod binance;
mod broker;
mod broker_faults;
mod clone;
mod cluster_faults;
mod codecs;
mod container;
mod dataset;
mod dataset_clone;
mod group_protocols;
mod kafka;
mod metrics;
mod outage;
mod rate_budget;
mod rebalance;
mod repl;
mod security;
mod simulator;
mod upstream;
mod wire;
mod worker_manager;

//! `TodoChunkConsumer`: the bridge from Kafka into the actor tree — the original's consumer.
//!
//! An intake task ([`intake`](crate::service::intake)) takes one message at a time from an
//! rdkafka `StreamConsumer` (a member of the consumer group on the todo topic), each only when
//! one of `max_in_flight` permits is free: a full service stops reading (back-pressure) instead
//! of buffering. Each message becomes one of:
//!
//! - a chunk for `WorkerManager.add_task`, whose answer is produced to the finished topic with
//!   the message's key;
//! - a dead letter, when it cannot be a chunk ([`dead_letter`]).
//!
//! Its offset is stored for commit only once that produce is acknowledged by the broker
//! (`acks=all`, idempotent producer) *and* every earlier message of its partition is too
//! ([`OffsetTracker`](crate::service::offset_tracker::OffsetTracker)); librdkafka commits what
//! is stored. Delivery and its typed failure are in [`delivery`](crate::service::delivery), the
//! group callbacks in [`group`](crate::service::group). A revoked partition's in-flight
//! results are still produced, but its offsets are no longer stored. On [`Drain`], intake stops,
//! in-flight chunks get a grace period, and the stored positions are committed synchronously.
//!
//! It counts for `/metrics` (chunks received and finished by result, dead letters by reason,
//! chunks in flight, and each held partition's lag from librdkafka's statistics) and tells
//! `/health` whether the member is in its group.
//!
//! It must never store an offset before the result it stands for is acknowledged, and never
//! drop a message: one that cannot be answered (shutdown) keeps its partition's position where
//! it is, so the group redelivers it.
//!
//! Beside it: the [`drain`](Drain) and the counters ([`ConsumerStats`]).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::producer::FutureProducer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Settings, Split};
use crate::domain::chunk::decode_todo_chunk;
use crate::domain::pair::PairRule;
use crate::kafka::broker_watch::{BrokerWatch, WatchedContext};
use crate::kafka::client::{self, KafkaSetupError};
use crate::pool::manager::WorkerManager;
use crate::proto::cloned_chunk;
use crate::service::budget_share::BudgetShare;
use crate::service::dead_letter;
use crate::service::delivery::{deliver, DeliveryError, Record};
use crate::service::failure::{Failure, FailureSignal, Fatal};
use crate::service::group::GroupContext;
use crate::service::intake::{Intake, Paused, Received};
use crate::service::offset_tracker::Ticket;
use crate::service::offsets::{
    describe_positions, offset_list, Partition, SharedTracker, SharedWithdrawals,
};
use crate::task::backoff::Backoff;
use crate::task::rate_limiter::SetShare;
use crate::telemetry::metrics::{DeadLetterReason, Metrics};

mod answer;
mod drain;
mod stats;

use answer::{answer, too_big_for_the_broker};

pub use drain::{Drain, DrainReport, FinalCommit};
pub use stats::{ConsumerStats, GetConsumerStats};

pub struct TodoChunkConsumer {
    /// Shared with the intake task, which polls it; stores and commits go through it here.
    /// Taken by the drain, which closes it.
    consumer: Option<Arc<StreamConsumer<GroupContext>>>,
    /// Results and dead letters; a cheap handle, cloned into each message's task.
    producer: FutureProducer<WatchedContext>,
    finished_topic: String,
    dead_letter_topic: String,
    /// Answers the chunks (`add_task`).
    manager: Addr<WorkerManager>,
    /// Shared with the rebalance callbacks, which forget revoked partitions.
    tracker: SharedTracker,
    /// Shared with the rebalance callbacks, which withdraw revoked partitions' queued chunks.
    withdrawals: SharedWithdrawals,
    /// One per chunk in flight; intake waits for one before it reads a message.
    permits: Arc<Semaphore>,
    /// Set by intake while every permit is taken; shared with the rebalance callbacks.
    paused: Arc<Paused>,
    /// Lost brokers said once; shared by the consumer's and the producer's callbacks.
    watch: Arc<BrokerWatch>,
    /// All permits back means nothing is in flight (the drain waits for that).
    max_in_flight: usize,
    /// The intake task, aborted on drain.
    intake: Option<tokio::task::JoinHandle<()>>,
    /// Set by the drain: from then on a chunk left unanswered is expected, not a failure.
    draining: bool,
    /// Retries of a produce that was not acknowledged in time.
    backoff: Backoff,
    /// How the venue spells pairs: a chunk with another spelling is a dead letter.
    pair_rule: PairRule,
    stats: ConsumerStats,
    /// Counted here: chunks received and finished, dead letters, chunks in flight.
    metrics: Arc<Metrics>,
    /// Raised when the service must stop by itself (the producer failed for good, a record
    /// could not be read); the service watches it, drains and exits.
    fatal: FailureSignal,
}

impl TodoChunkConsumer {
    /// Joins the group on the todo topic. Fails, with what to do, when the broker cannot be
    /// reached or a topic is missing. Blocks for the metadata request (up to `check_timeout`).
    pub fn new(
        settings: &Settings,
        manager: Addr<WorkerManager>,
        limiter: Recipient<SetShare>,
        metrics: Arc<Metrics>,
        pair_rule: PairRule,
        check_timeout: Duration,
    ) -> Result<TodoChunkConsumer, KafkaSetupError> {
        let topics = &settings.topics;
        // Before any client of the service's own: settings the cluster refuses fail here at
        // once, and no consumer starts a reconnect loop with them.
        client::check_topics(
            &settings.kafka,
            crate::config::KafkaRole::Consumer,
            &[&topics.todo, &topics.finished, &topics.dead_letter],
            check_timeout,
        )?;
        let tracker = SharedTracker::default();
        let withdrawals = SharedWithdrawals::default();
        let paused = Arc::new(Paused::default());
        let watch = Arc::new(BrokerWatch::new(
            settings
                .kafka
                .properties(crate::config::KafkaRole::Consumer)?,
        ));
        let group = GroupContext::new(
            tracker.clone(),
            withdrawals.clone(),
            manager.clone().recipient(),
            paused.clone(),
            metrics.clone(),
            watch.clone(),
            (settings.rate_limiter.split == Split::Group)
                .then(|| BudgetShare::new(&settings.topics.todo, limiter)),
        );
        let consumer: StreamConsumer<GroupContext> = client::consumer(&settings.kafka, group)?;
        let producer = client::producer_with(settings, WatchedContext(watch.clone()))?;
        consumer.subscribe(&[&topics.todo]).map_err(|source| {
            KafkaSetupError::client(crate::config::KafkaRole::Consumer, source)
        })?;
        Ok(TodoChunkConsumer {
            consumer: Some(Arc::new(consumer)),
            producer,
            finished_topic: topics.finished.clone(),
            dead_letter_topic: topics.dead_letter.clone(),
            manager,
            tracker,
            withdrawals,
            permits: Arc::new(Semaphore::new(settings.max_in_flight())),
            paused,
            watch,
            max_in_flight: settings.max_in_flight(),
            intake: None,
            draining: false,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            pair_rule,
            stats: ConsumerStats::default(),
            metrics,
            fatal: FailureSignal::default(),
        })
    }

    /// Where the service learns that it must stop by itself (see [`Fatal`]).
    pub fn failure(&self) -> Failure {
        self.fatal.subscribe()
    }

    /// A message's work is done (its result or dead letter acknowledged): store the offset its
    /// partition may now be committed to.
    fn finish(&mut self, ticket: &Ticket<Partition>) {
        let position = self.tracker.lock().expect("tracker lock").finish(ticket);
        if let Some(position) = position {
            let stored = [(ticket.partition.clone(), position)];
            // Refused only for a partition revoked meanwhile; the tracker forgot it already.
            // After the drain there is no consumer: the drain committed what it could.
            let Some(consumer) = &self.consumer else {
                return;
            };
            if let Err(e) = consumer.store_offsets(&offset_list(&stored)) {
                log::debug!("{} not stored: {e}", describe_positions(&stored));
            }
        }
    }
}

impl Actor for TodoChunkConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(consumer) = self.consumer.clone() else {
            return;
        };
        let intake = Intake {
            consumer,
            permits: self.permits.clone(),
            paused: self.paused.clone(),
            watch: self.watch.clone(),
            fatal: self.fatal.clone(),
        };
        let me = ctx.address().recipient();
        self.intake = Some(actix_rt::spawn(intake.run(me)));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(intake) = self.intake.take() {
            intake.abort();
        }
    }
}

/// How the work for one message ended.
enum Outcome {
    /// A result was produced: its kind (`chunk_result`) and its entry count.
    Answered {
        result: i32,
        entries: usize,
    },
    DeadLettered(DeadLetterReason),
    /// Shutting down: no answer; the offset stays uncommitted.
    Abandoned,
    /// Its partition was revoked before the chunk started: not cloned here, no answer; the
    /// partition's next owner clones it.
    Withdrawn,
    /// The result cannot be delivered by this process; the offset stays uncommitted and the
    /// service stops (see [`TodoChunkConsumer::failure`]).
    Undeliverable(DeliveryError),
}

impl Handler<Received> for TodoChunkConsumer {
    type Result = ();

    fn handle(&mut self, Received { message, permit }: Received, ctx: &mut Context<Self>) {
        self.stats.received += 1;
        self.stats.in_flight += 1;
        self.metrics.chunks_in_flight.inc();
        let partition = (message.topic().to_string(), message.partition());
        let withdrawal = (self.withdrawals.lock().expect("withdrawals lock"))
            .entry(partition.clone())
            .or_default()
            .clone();
        let ticket =
            (self.tracker.lock().expect("tracker lock")).start(partition, message.offset());
        let producer = self.producer.clone();
        let backoff = self.backoff;
        let work: LocalBoxFuture<Outcome> =
            match decode_todo_chunk(message.payload(), self.pair_rule) {
                Err(reason) => {
                    log::warn!(
                        "{}/{}@{}: not a chunk, sent to {}: {reason}",
                        message.topic(),
                        message.partition(),
                        message.offset(),
                        self.dead_letter_topic
                    );
                    let topic = self.dead_letter_topic.clone();
                    let kind = DeadLetterReason::from(&reason);
                    Box::pin(async move {
                        let record = dead_letter::record(&message, &reason.to_string(), &topic);
                        match deliver(&producer, record, backoff).await {
                            Ok(()) => Outcome::DeadLettered(kind),
                            Err(fatal) => Outcome::Undeliverable(fatal),
                        }
                    })
                }
                Ok(chunk) => {
                    self.metrics.chunks_received.inc();
                    let manager = self.manager.clone();
                    let topic = self.finished_topic.clone();
                    Box::pin(async move {
                        let mut answer = match answer(&manager, chunk, withdrawal, backoff).await {
                            Ok(answer) => answer,
                            Err(unanswered) => return unanswered,
                        };
                        loop {
                            let payload = answer.encode_to_vec();
                            let record = Record {
                                topic: &topic,
                                key: message.key(),
                                payload: &payload,
                                headers: None,
                            };
                            return match deliver(&producer, record, backoff).await {
                                Ok(()) => Outcome::Answered {
                                    result: answer.chunk_result,
                                    entries: answer.entries.len(),
                                },
                                // Too large for the broker: answered WINDOW_TOO_BIG instead (no
                                // entries), so that the requester asks for smaller windows.
                                Err(DeliveryError::TooLarge { bytes, .. })
                                    if !answer.entries.is_empty() =>
                                {
                                    answer = too_big_for_the_broker(answer, bytes);
                                    continue;
                                }
                                Err(fatal) => Outcome::Undeliverable(fatal),
                            };
                        }
                    })
                }
            };
        // A task of its own, not `ctx.spawn`: actix polls every future spawned on a context
        // each time the actor wakes, which with hundreds in flight costs more than the work.
        let me = ctx.address();
        actix_rt::spawn(async move {
            let outcome = work.await;
            me.do_send(Finished {
                ticket,
                outcome,
                permit,
            });
        });
    }
}

/// The work for one message is over; its permit comes back with it.
#[derive(Message)]
#[rtype(result = "()")]
struct Finished {
    ticket: Ticket<Partition>,
    outcome: Outcome,
    permit: OwnedSemaphorePermit,
}

impl Handler<Finished> for TodoChunkConsumer {
    type Result = ();

    fn handle(&mut self, done: Finished, _: &mut Context<Self>) {
        self.stats.in_flight -= 1;
        self.metrics.chunks_in_flight.dec();
        match done.outcome {
            Outcome::Answered { result, entries } => {
                self.metrics.chunk_finished(result);
                match cloned_chunk::Result::try_from(result) {
                    Ok(cloned_chunk::Result::Complete) => {
                        self.stats.complete += 1;
                        self.stats.entries += entries as u64;
                    }
                    Ok(cloned_chunk::Result::WindowTooBig) => self.stats.window_too_big += 1,
                    _ => self.stats.random_error += 1,
                }
                self.finish(&done.ticket);
            }
            Outcome::DeadLettered(reason) => {
                self.metrics.dead_letter(reason);
                self.stats.dead_letters += 1;
                self.finish(&done.ticket);
            }
            Outcome::Abandoned => {
                self.stats.abandoned += 1;
                if !self.draining {
                    // Only a queue or manager that stopped leaves a chunk unanswered: the pool
                    // is not doing its job, and `/health` must say so. One line for the first.
                    if self.metrics.health.readiness().pool_alive {
                        log::error!(
                            "a chunk was left unanswered while not draining: the worker pool stopped; /health reports not ready, restart the service (what is not committed is delivered again)"
                        );
                    }
                    self.metrics.health.pool_failed();
                }
            }
            Outcome::Withdrawn => self.stats.withdrawn += 1,
            Outcome::Undeliverable(fatal) => {
                self.stats.abandoned += 1;
                // One line for the first; every other delivery fails the same way.
                let line = format!(
                    "{fatal}; stopping after a drain (what is not committed is delivered again)"
                );
                if self.fatal.raise(Fatal::Delivery(fatal)) {
                    log::error!("{line}");
                }
            }
        }
        // Only now may intake take another message.
        drop(done.permit);
    }
}

type LocalBoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T>>>;

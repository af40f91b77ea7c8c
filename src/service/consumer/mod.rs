//! `TodoChunkConsumer`: the bridge from Kafka into the actor tree — the original's consumer.
//!
//! An intake task takes one message at a time from an rdkafka `StreamConsumer` (a member of the
//! consumer group on the todo topic), each only when one of `max_in_flight` permits is free: a
//! full service stops reading (back-pressure) instead of buffering. Each message becomes one of:
//!
//! - a chunk for `WorkerManager.add_task`, whose answer is produced to the finished topic with
//!   the message's key;
//! - a dead letter, when it cannot be a chunk: produced as received to the dead-letter topic,
//!   with the reason and its origin in headers.
//!
//! Its offset is stored for commit only once that produce is acknowledged by the broker
//! (`acks=all`, idempotent producer) *and* every earlier message of its partition is too
//! ([`OffsetTracker`]); librdkafka commits what is stored. A revoked partition's in-flight
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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use prost::Message as _;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Header, Message as _, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::config::Settings;
use crate::domain::chunk::{decode_todo_chunk, result_name, Describe};
use crate::kafka::client::{self, KafkaSetupError};
use crate::kafka::dead_letter_headers as dlq;
use crate::pool::manager::{AddTask, TaskError, WorkerManager};
use crate::proto::{cloned_chunk, ClonedChunk};
use crate::service::offset_tracker::{OffsetTracker, Ticket};
use crate::task::backoff::Backoff;
use crate::telemetry::health::GroupEvent;
use crate::telemetry::metrics::{DeadLetterReason, Metrics};

/// A partition: (topic, partition number).
type Partition = (String, i32);

/// The offsets of the partitions this member holds; shared with librdkafka's rebalance
/// callbacks, which run on the intake task's poll (the same thread as the actor).
type SharedTracker = Arc<Mutex<OffsetTracker<Partition>>>;

/// librdkafka callbacks: commit what is done of revoked partitions and forget them before they
/// go; log what the member holds after each assignment; tell the health whether the member is
/// in its group; turn statistics reports into the consumer lag metric.
pub struct GroupContext {
    tracker: SharedTracker,
    /// Group membership for `/health`, consumer lag for `/metrics`.
    metrics: Arc<Metrics>,
}

impl ClientContext for GroupContext {
    /// Every `statistics.interval.ms` (`kafka.consumer.statistics_interval_ms`): the lag of
    /// each partition this member holds. Partitions it does not hold (librdkafka knows all of
    /// the topic's) and lags not yet known (no committed offset) are left out.
    fn stats(&self, statistics: Statistics) {
        self.metrics
            .set_consumer_lag(&held_partition_lags(&statistics));
    }
}

/// (topic, partition, lag) of the partitions the member holds (`desired`) whose lag is known.
fn held_partition_lags(statistics: &Statistics) -> Vec<(String, i32, i64)> {
    let mut lags: Vec<(String, i32, i64)> = statistics
        .topics
        .iter()
        .flat_map(|(topic, t)| {
            t.partitions
                .values()
                // Partition -1 is librdkafka's internal "unassigned" queue.
                .filter(|p| p.partition >= 0 && p.desired && !p.unknown && p.consumer_lag >= 0)
                .map(move |p| (topic.clone(), p.partition, p.consumer_lag))
        })
        .collect();
    lags.sort();
    lags
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        // Lost: thrown out of the group (session or poll timeout), not a rebalance it is part of.
        self.metrics.health.group_event(GroupEvent::Revoked {
            lost: consumer.assignment_lost(),
        });
        if tpl.count() == 0 {
            return;
        }
        let revoked: Vec<Partition> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        self.metrics.forget_consumer_lag(&revoked);
        let mut tracker = self.tracker.lock().expect("tracker lock");
        // Commit what is done before the partitions go, so that their next owner starts
        // there and not at the last periodic commit: fewer chunks cloned twice.
        let mut done = Vec::new();
        for elem in tpl.elements() {
            let partition = (elem.topic().to_string(), elem.partition());
            if let Some(position) = tracker.position(&partition) {
                done.push((partition.clone(), position));
            }
            tracker.revoke(&partition);
        }
        drop(tracker);
        log::info!("partitions revoked: {}", describe_partitions(tpl));
        if !done.is_empty() {
            if let Err(e) = consumer.commit(&offset_list(&done), CommitMode::Sync) {
                log::warn!(
                    "committing {} before the revocation failed ({e}); their next owner starts at the last commit",
                    describe_positions(&done)
                );
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                // Even an empty assignment: a member with no partitions is still a member.
                self.metrics.health.group_event(GroupEvent::Assigned);
                // With the cooperative protocol an assignment is a change, not the whole.
                let holding = consumer
                    .assignment()
                    .map_or_else(|e| format!("unknown ({e})"), |a| describe_partitions(&a));
                log::info!(
                    "partitions assigned: {}; now holding: {holding}",
                    describe_partitions(tpl)
                )
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                self.metrics.health.group_event(GroupEvent::RebalanceFailed);
                log::error!("consumer group rebalance failed: {e}")
            }
        }
    }
}

fn describe_partitions(tpl: &TopicPartitionList) -> String {
    let names: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Counters for the drain summary, the demo and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Messages taken from the todo topic.
    pub received: u64,
    /// Results produced and acknowledged, by kind.
    pub complete: u64,
    pub window_too_big: u64,
    pub random_error: u64,
    /// Trades in the COMPLETE results.
    pub entries: u64,
    /// Messages refused and acknowledged on the dead-letter topic.
    pub dead_letters: u64,
    /// Messages left unanswered because the service was shutting down (redelivered later).
    pub abandoned: u64,
    /// Messages taken and not yet finished.
    pub in_flight: u64,
}

pub struct TodoChunkConsumer {
    /// Shared with the intake task, which polls it; stores and commits go through it here.
    consumer: Arc<StreamConsumer<GroupContext>>,
    /// Results and dead letters; a cheap handle, cloned into each message's task.
    producer: FutureProducer,
    finished_topic: String,
    dead_letter_topic: String,
    /// Answers the chunks (`add_task`).
    manager: Addr<WorkerManager>,
    /// Shared with the rebalance callbacks, which forget revoked partitions.
    tracker: SharedTracker,
    /// One per chunk in flight; intake waits for one before it reads a message.
    permits: Arc<Semaphore>,
    /// All permits back means nothing is in flight (the drain waits for that).
    max_in_flight: usize,
    /// The intake task, aborted on drain.
    intake: Option<tokio::task::JoinHandle<()>>,
    /// Retries of a produce that was not acknowledged in time.
    backoff: Backoff,
    stats: ConsumerStats,
    /// Counted here: chunks received and finished, dead letters, chunks in flight.
    metrics: Arc<Metrics>,
    /// Set once the producer has failed for good; the service watches it and stops.
    fatal: watch::Sender<Option<String>>,
}

impl TodoChunkConsumer {
    /// Joins the group on the todo topic. Fails, with what to do, when the broker cannot be
    /// reached or a topic is missing. Blocks for the metadata request (up to `check_timeout`).
    pub fn new(
        settings: &Settings,
        manager: Addr<WorkerManager>,
        metrics: Arc<Metrics>,
        check_timeout: Duration,
    ) -> Result<TodoChunkConsumer, KafkaSetupError> {
        let tracker = SharedTracker::default();
        let consumer: StreamConsumer<GroupContext> = client::consumer(
            &settings.kafka,
            GroupContext {
                tracker: tracker.clone(),
                metrics: metrics.clone(),
            },
        )?;
        let topics = &settings.topics;
        client::check_topics(
            consumer.client(),
            &settings.kafka.bootstrap_servers(),
            &[&topics.todo, &topics.finished, &topics.dead_letter],
            check_timeout,
        )?;
        let producer = client::producer(settings)?;
        consumer
            .subscribe(&[&topics.todo])
            .map_err(|source| KafkaSetupError::Client {
                role: crate::config::KafkaRole::Consumer,
                source,
            })?;
        Ok(TodoChunkConsumer {
            consumer: Arc::new(consumer),
            producer,
            finished_topic: topics.finished.clone(),
            dead_letter_topic: topics.dead_letter.clone(),
            manager,
            tracker,
            permits: Arc::new(Semaphore::new(settings.consumer.max_in_flight)),
            max_in_flight: settings.consumer.max_in_flight,
            intake: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            stats: ConsumerStats::default(),
            metrics,
            fatal: watch::Sender::new(None),
        })
    }

    /// Resolves, with librdkafka's reason, once the producer has failed for good: this process
    /// can deliver nothing more and should drain and exit for a restart.
    pub fn fatal_errors(&self) -> impl std::future::Future<Output = String> + use<> {
        let mut fatal = self.fatal.subscribe();
        async move {
            match fatal.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone().unwrap_or_default(),
                // The consumer is gone without a fatal error: nothing to report, ever.
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// A message's work is done (its result or dead letter acknowledged): store the offset its
    /// partition may now be committed to.
    fn finish(&mut self, ticket: &Ticket<Partition>) {
        let position = self.tracker.lock().expect("tracker lock").finish(ticket);
        if let Some(position) = position {
            let stored = [(ticket.partition.clone(), position)];
            // Refused only for a partition revoked meanwhile; the tracker forgot it already.
            if let Err(e) = self.consumer.store_offsets(&offset_list(&stored)) {
                log::debug!("{} not stored: {e}", describe_positions(&stored));
            }
        }
    }

    /// Commits what the tracker allows, synchronously.
    fn commit_now(&self) {
        let positions = self.tracker.lock().expect("tracker lock").positions();
        if positions.is_empty() {
            return;
        }
        match self
            .consumer
            .commit(&offset_list(&positions), CommitMode::Sync)
        {
            Ok(()) => log::info!("committed {}", describe_positions(&positions)),
            Err(e) => log::error!(
                "final commit failed ({e}); the uncommitted chunks will be delivered again"
            ),
        }
    }
}

/// The list librdkafka stores or commits: each partition at its position.
fn offset_list(positions: &[(Partition, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), position) in positions {
        // Refused only for an offset librdkafka cannot represent; positions are offsets it gave.
        if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*position)) {
            log::error!("offset {position} of {topic}/{partition}: {e}");
        }
    }
    tpl
}

fn describe_positions(positions: &[(Partition, i64)]) -> String {
    positions
        .iter()
        .map(|((t, p), o)| format!("{t}/{p}@{o}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Actor for TodoChunkConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let consumer = self.consumer.clone();
        let permits = self.permits.clone();
        let me = ctx.address();
        self.intake = Some(actix_rt::spawn(intake(consumer, permits, me)));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(intake) = self.intake.take() {
            intake.abort();
        }
    }
}

/// Reads one message per free permit and hands it to the actor, in partition order.
async fn intake(
    consumer: Arc<StreamConsumer<GroupContext>>,
    permits: Arc<Semaphore>,
    me: Addr<TodoChunkConsumer>,
) {
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match consumer.recv().await {
            Ok(message) => {
                let received = Received {
                    message: message.detach(),
                    permit,
                };
                if me.send(received).await.is_err() {
                    return;
                }
            }
            // Broker-side trouble is retried by librdkafka; each error is one event.
            Err(e) => log::warn!("kafka consumer: {e}"),
        }
    }
}

/// A message from the todo topic, holding its in-flight permit.
#[derive(Message)]
#[rtype(result = "()")]
struct Received {
    message: OwnedMessage,
    permit: OwnedSemaphorePermit,
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
    /// The producer failed for good: the result cannot be delivered by this process; the offset
    /// stays uncommitted and the service stops (see [`TodoChunkConsumer::fatal_errors`]).
    Undeliverable(String),
}

impl Handler<Received> for TodoChunkConsumer {
    type Result = ();

    fn handle(&mut self, Received { message, permit }: Received, ctx: &mut Context<Self>) {
        self.stats.received += 1;
        self.stats.in_flight += 1;
        self.metrics.chunks_in_flight.inc();
        let ticket = self.tracker.lock().expect("tracker lock").start(
            (message.topic().to_string(), message.partition()),
            message.offset(),
        );
        let producer = self.producer.clone();
        let backoff = self.backoff;
        let work: LocalBoxFuture<Outcome> = match decode_todo_chunk(message.payload()) {
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
                    let headers = OwnedHeaders::new()
                        .insert(Header {
                            key: dlq::REASON,
                            value: Some(&reason.to_string()),
                        })
                        .insert(Header {
                            key: dlq::TOPIC,
                            value: Some(message.topic()),
                        })
                        .insert(Header {
                            key: dlq::PARTITION,
                            value: Some(&message.partition().to_string()),
                        })
                        .insert(Header {
                            key: dlq::OFFSET,
                            value: Some(&message.offset().to_string()),
                        });
                    let payload = message.payload().unwrap_or_default();
                    let delivered = deliver(
                        &producer,
                        &topic,
                        message.key(),
                        payload,
                        Some(headers),
                        backoff,
                    )
                    .await;
                    match delivered {
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
                    let Some(answer) = answer(&manager, chunk, backoff).await else {
                        return Outcome::Abandoned;
                    };
                    let payload = answer.encode_to_vec();
                    match deliver(&producer, &topic, message.key(), &payload, None, backoff).await {
                        Ok(()) => Outcome::Answered {
                            result: answer.chunk_result,
                            entries: answer.entries.len(),
                        },
                        Err(fatal) => Outcome::Undeliverable(fatal),
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
            Outcome::Abandoned => self.stats.abandoned += 1,
            Outcome::Undeliverable(fatal) => {
                self.stats.abandoned += 1;
                // One line for the first; every other delivery fails the same way.
                if self.fatal.borrow().is_none() {
                    log::error!(
                        "the producer failed for good ({fatal}); stopping, so that a restart gets a new one (what is not committed is delivered again)"
                    );
                    self.fatal.send_replace(Some(fatal));
                }
            }
        }
        // Only now may intake take another message.
        drop(done.permit);
    }
}

type LocalBoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T>>>;

/// The chunk's answer from the manager; `None` when the system is shutting down.
async fn answer(
    manager: &Addr<WorkerManager>,
    chunk: crate::proto::TodoChunk,
    backoff: Backoff,
) -> Option<ClonedChunk> {
    let mut rng = fastrand::Rng::new();
    let mut retry = 0;
    loop {
        match manager.send(AddTask(chunk.clone())).await {
            Ok(Ok(answer)) => {
                log::debug!("chunk {}: {}", Describe(&chunk), result_name(&answer));
                return Some(answer);
            }
            // Cannot happen while max_in_flight <= queue_bound (checked in the configuration),
            // but if something else fills the queue, wait for it to drain rather than drop.
            Ok(Err(TaskError::QueueFull { bound })) => {
                let delay = backoff.delay(retry, &mut rng);
                log::warn!(
                    "chunk {}: the queue is full ({bound}); offering it again in {delay:?}",
                    Describe(&chunk)
                );
                retry += 1;
                actix_rt::time::sleep(delay).await;
            }
            Ok(Err(TaskError::Aborted)) | Err(_) => {
                log::info!(
                    "chunk {}: not answered (shutting down); it will be delivered again",
                    Describe(&chunk)
                );
                return None;
            }
        }
    }
}

/// Produces one record and waits until the broker acknowledges it, producing it again after a
/// backoff when a delivery fails (librdkafka has already retried within its timeout): the
/// message's offset must not be committed without it, so its partition waits. Gives up only
/// when the producer itself has failed for good (a fatal error of the idempotent producer),
/// with librdkafka's reason: no retry through it can succeed.
async fn deliver(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
    backoff: Backoff,
) -> Result<(), String> {
    let mut rng = fastrand::Rng::new();
    let mut retry = 0;
    loop {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(headers) = &headers {
            record = record.headers(headers.clone());
        }
        match producer.send(record, Timeout::Never).await {
            Ok(_) => return Ok(()),
            Err((e, _)) => {
                if let Some((code, reason)) = producer.client().fatal_error() {
                    return Err(format!("{code}: {reason}"));
                }
                let delay = backoff.delay(retry, &mut rng);
                log::error!(
                    "producing to {topic} failed ({e}); producing it again in {delay:?}; its offset waits"
                );
                retry += 1;
                actix_rt::time::sleep(delay).await;
            }
        }
    }
}

/// Current counters.
#[derive(Message)]
#[rtype(result = "ConsumerStats")]
pub struct GetStats;

impl Handler<GetStats> for TodoChunkConsumer {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}

/// Stop intake, give in-flight chunks up to `grace` to finish, commit what is done.
#[derive(Message)]
#[rtype(result = "DrainReport")]
pub struct Drain {
    pub grace: Duration,
}

/// What a drain achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// Chunks still unfinished at the end of the grace period (redelivered later).
    pub unfinished: usize,
    pub stats: ConsumerStats,
}

impl Handler<Drain> for TodoChunkConsumer {
    type Result = ResponseActFuture<Self, DrainReport>;

    fn handle(&mut self, Drain { grace }: Drain, _: &mut Context<Self>) -> Self::Result {
        if let Some(intake) = self.intake.take() {
            intake.abort();
        }
        // No longer consuming: not ready, whatever the group still thinks until the member leaves.
        self.metrics.health.group_event(GroupEvent::Left);
        // The stats, not the permits: the aborted intake may still hold one for a message it
        // never received.
        log::info!(
            "draining: intake stopped; {} chunks in flight, up to {grace:?} to finish",
            self.stats.in_flight
        );
        let permits = self.permits.clone();
        let all = self.max_in_flight as u32;
        let wait = async move {
            actix_rt::time::timeout(grace, permits.acquire_many_owned(all))
                .await
                .is_ok()
        };
        Box::pin(wait.into_actor(self).map(|all_done, me, ctx| {
            // Messages received but not finished: over the grace period, or abandoned.
            let unfinished = me.tracker.lock().expect("tracker lock").unfinished();
            if !all_done {
                log::warn!(
                    "drain: grace period over with {} chunks unfinished; they will be delivered again",
                    me.stats.in_flight
                );
            }
            me.commit_now();
            // Stopping drops the consumer, which leaves the group.
            ctx.stop();
            DrainReport {
                unfinished,
                stats: me.stats.clone(),
            }
        }))
    }
}

impl std::fmt::Display for ConsumerStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} received: {} COMPLETE ({} trades), {} WINDOW_TOO_BIG, {} RANDOM_ERROR, {} dead letters, {} unanswered",
            self.received,
            self.complete,
            self.entries,
            self.window_too_big,
            self.random_error,
            self.dead_letters,
            self.abandoned + self.in_flight
        )
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use rdkafka::types::RDKafkaRespErr;

    use super::*;
    use crate::dev::mock_broker::MockBroker;

    fn producer_on(broker: &MockBroker) -> FutureProducer {
        let mut settings = Settings::default();
        settings
            .kafka
            .set("bootstrap.servers", broker.bootstrap_servers());
        client::producer(&settings).unwrap()
    }

    fn quick_backoff() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(1))
    }

    #[actix_rt::test]
    async fn a_delivery_returns_once_acknowledged() {
        let broker = MockBroker::start().unwrap();
        broker.create_topic("results", 1).unwrap();
        let producer = producer_on(&broker);
        let delivered = deliver(
            &producer,
            "results",
            Some(b"k"),
            b"v",
            None,
            quick_backoff(),
        );
        let delivered = tokio::time::timeout(Duration::from_secs(30), delivered).await;
        assert_eq!(delivered.expect("acknowledged in time"), Ok(()));
    }

    #[actix_rt::test]
    async fn a_producer_failed_for_good_is_given_up_on_with_its_reason() {
        let broker = MockBroker::start().unwrap();
        broker.create_topic("results", 1).unwrap();
        let producer = producer_on(&broker);
        // librdkafka's own test hook: the fatal error an idempotent producer can run into.
        let reason = CString::new("injected by the test").unwrap();
        let code = unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                producer.client().native_ptr(),
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            )
        };
        assert_eq!(code, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR);
        let delivered = deliver(&producer, "results", None, b"v", None, quick_backoff());
        let err = tokio::time::timeout(Duration::from_secs(30), delivered)
            .await
            .expect("given up on in time, not retried forever")
            .unwrap_err();
        assert!(err.contains("injected by the test"), "{err}");
    }
}

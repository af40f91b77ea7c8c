//! Intake: reads the todo topic one message per free in-flight permit and hands each to the
//! consumer actor, in partition order.
//!
//! A full service stops fetching (back-pressure) instead of buffering: a message is handed over
//! only with a permit, and the permit goes back when the message's work is done. While every
//! permit is taken, the assigned partitions are *paused*, Kafka's own idiom, and the consumer
//! keeps polling: the group's callbacks (rebalances, statistics) and its `max.poll.interval.ms`
//! clock are served inside the poll, so a saturated member still takes part in rebalances and
//! reports its lag. When a permit comes back the partitions are resumed where they stopped.
//!
//! A consume error that may mean a skipped record (a corrupt or undecodable one, a reset
//! position) stops intake and the service ([`Fatal::Consume`]): a later record's offset would
//! otherwise commit past one that was neither answered nor dead-lettered. Lost brokers are said
//! once ([`BrokerWatch`]).
//!
//! It must never take a message it cannot hand over, and never hand one over without its permit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::kafka::broker_watch::BrokerWatch;
use crate::service::failure::{ConsumeError, FailureSignal, Fatal};
use crate::service::group::GroupContext;
use crate::service::offsets::describe_partitions;

/// A message from the todo topic, holding its in-flight permit.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Received {
    pub message: OwnedMessage,
    pub permit: OwnedSemaphorePermit,
}

/// Whether intake has paused the partitions it holds. Shared with the rebalance callbacks, so
/// that a partition assigned while paused is paused too.
#[derive(Debug, Default)]
pub struct Paused(AtomicBool);

impl Paused {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, paused: bool) {
        self.0.store(paused, Ordering::Relaxed);
    }
}

/// What intake works with, all shared with the consumer actor.
pub struct Intake {
    pub consumer: Arc<StreamConsumer<GroupContext>>,
    /// One per chunk in flight.
    pub permits: Arc<Semaphore>,
    pub paused: Arc<Paused>,
    /// Lost brokers, said once.
    pub watch: Arc<BrokerWatch>,
    /// Raised when a record may have been skipped.
    pub fatal: FailureSignal,
}

impl Intake {
    /// Runs until the permits are closed, `to` is gone or a record is lost; abort it to stop
    /// intake.
    pub async fn run(self, to: Recipient<Received>) {
        // Messages polled while paused (fetched just before the pause): handed over first.
        let mut held = VecDeque::new();
        loop {
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(TryAcquireError::Closed) => return,
                Err(TryAcquireError::NoPermits) => match self.wait_paused(&mut held).await {
                    Some(permit) => permit,
                    None => return,
                },
            };
            let message = match held.pop_front() {
                Some(message) => message,
                None => match self.consumer.recv().await {
                    Ok(message) => {
                        self.watch.answered();
                        message.detach()
                    }
                    Err(e) if self.consume_error(e.clone()) => continue,
                    Err(_) => return,
                },
            };
            if to.send(Received { message, permit }).await.is_err() {
                return;
            }
        }
    }

    /// Reports a consume error; whether intake may go on.
    fn consume_error(&self, error: rdkafka::error::KafkaError) -> bool {
        match ConsumeError::of(&error) {
            // librdkafka retries; said once.
            ConsumeError::Unreachable => {
                let what = error.to_string();
                self.watch.error(error, &what);
            }
            ConsumeError::Other => log::warn!("kafka consumer: {error}"),
            lost @ (ConsumeError::RecordLost | ConsumeError::UnreadableCodec) => {
                let error = error.to_string();
                let fatal = match lost {
                    ConsumeError::UnreadableCodec => Fatal::Codec { error },
                    _ => Fatal::Consume { error },
                };
                let line = fatal.to_string();
                if self.fatal.raise(fatal) {
                    log::error!("{line}");
                }
                return false;
            }
        }
        true
    }

    /// Pauses the assigned partitions, polls until a permit is free, resumes them; the permit,
    /// or `None` once the permits are closed or a record is lost.
    async fn wait_paused(&self, held: &mut VecDeque<OwnedMessage>) -> Option<OwnedSemaphorePermit> {
        self.paused.set(true);
        set_paused(&self.consumer, true);
        let permit = loop {
            tokio::select! {
                biased;
                permit = self.permits.clone().acquire_owned() => break permit.ok(),
                polled = self.consumer.recv() => match polled {
                    Ok(message) => held.push_back(message.detach()),
                    Err(e) => {
                        if !self.consume_error(e) {
                            break None;
                        }
                    }
                },
            }
        };
        self.paused.set(false);
        set_paused(&self.consumer, false);
        permit
    }
}

/// Pauses or resumes every partition the member holds now.
fn set_paused(consumer: &StreamConsumer<GroupContext>, pause: bool) {
    let assignment = match consumer.assignment() {
        Ok(assignment) => assignment,
        Err(e) => {
            log::warn!("kafka consumer: the assignment is unknown ({e}); intake goes on");
            return;
        }
    };
    let done = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    let (why, what) = match pause {
        true => ("every in-flight slot taken", "paused"),
        false => ("an in-flight slot is free", "resumed"),
    };
    match done {
        Ok(()) => log::debug!("{why}: {what} {}", describe_partitions(&assignment)),
        Err(e) => log::warn!(
            "kafka consumer: {} could not be {what} ({e})",
            describe_partitions(&assignment)
        ),
    }
}

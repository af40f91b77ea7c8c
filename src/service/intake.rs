//! Intake: reads the todo topic one message per free in-flight permit and hands each to the
//! consumer actor, in partition order.
//!
//! A full service stops reading (back-pressure) instead of buffering: a message is taken only
//! with a permit, and the permit goes back when the message's work is done.
//!
//! It must never take a message it cannot hand over, and never hand one over without its permit.

use std::sync::Arc;

use actix::prelude::*;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::OwnedMessage;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::service::group::GroupContext;

/// A message from the todo topic, holding its in-flight permit.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Received {
    pub message: OwnedMessage,
    pub permit: OwnedSemaphorePermit,
}

/// Runs until the permits are closed or `to` is gone; abort it to stop intake.
pub async fn intake(
    consumer: Arc<StreamConsumer<GroupContext>>,
    permits: Arc<Semaphore>,
    to: Recipient<Received>,
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
                if to.send(received).await.is_err() {
                    return;
                }
            }
            // Broker-side trouble is retried by librdkafka; each error is one event.
            Err(e) => log::warn!("kafka consumer: {e}"),
        }
    }
}

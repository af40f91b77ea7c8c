//! Delivery: one record produced and acknowledged by the broker, or a typed reason why it
//! never can be.
//!
//! A result (or a dead letter) must be acknowledged before its message's offset may be
//! committed, so a failed delivery is produced again after a backoff and its partition waits
//! (librdkafka has already retried within its own timeout). Only a failure no retry can mend
//! ends the loop, typed for the caller to decide: a producer that failed for good, a record
//! larger than the broker accepts, a topic that does not exist or may not be written.
//!
//! It must never report a record delivered that the broker did not acknowledge.

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use rdkafka::ClientContext;

use crate::task::backoff::Backoff;

/// Why a record can never be delivered through this producer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The idempotent producer failed for good (a librdkafka fatal error): this process can
    /// deliver nothing more; a restart gets a new producer.
    #[error("the Kafka producer failed for good ({code}: {reason})")]
    ProducerFailed {
        code: RDKafkaErrorCode,
        /// librdkafka's words.
        reason: String,
    },
    /// The record is larger than the broker (or the producer's `message.max.bytes`) accepts.
    #[error("a record of {bytes} bytes for {topic} is larger than the broker accepts ({code})")]
    TooLarge {
        topic: String,
        bytes: usize,
        code: RDKafkaErrorCode,
    },
    /// The topic does not exist or this client may not write to it: nothing produced to it
    /// can succeed until an operator acts.
    #[error(
        "{topic} cannot be written ({code}); create it (cloner-worker topics create) or grant this client write access"
    )]
    TopicUnusable {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// What a failed delivery means: `Some` for the failures no retry can mend.
fn permanent(topic: &str, bytes: usize, code: Option<RDKafkaErrorCode>) -> Option<DeliveryError> {
    match code? {
        code @ RDKafkaErrorCode::MessageSizeTooLarge => Some(DeliveryError::TooLarge {
            topic: topic.to_string(),
            bytes,
            code,
        }),
        code @ (RDKafkaErrorCode::UnknownTopicOrPartition
        | RDKafkaErrorCode::UnknownTopic
        | RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed) => Some(DeliveryError::TopicUnusable {
            topic: topic.to_string(),
            code,
        }),
        _ => None,
    }
}

/// One record to produce.
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub headers: Option<OwnedHeaders>,
}

/// Produces `record` and waits until the broker acknowledges it, producing it again after a
/// backoff when a delivery fails, until it is acknowledged or the producer has failed for good.
pub async fn deliver<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    record: Record<'_>,
    backoff: Backoff,
) -> Result<(), DeliveryError> {
    let mut rng = fastrand::Rng::new();
    let mut retry = 0;
    let topic = record.topic;
    loop {
        let mut produced = FutureRecord::<[u8], [u8]>::to(topic).payload(record.payload);
        if let Some(key) = record.key {
            produced = produced.key(key);
        }
        if let Some(headers) = &record.headers {
            produced = produced.headers(headers.clone());
        }
        match producer.send(produced, Timeout::Never).await {
            Ok(_) => return Ok(()),
            Err((e, _)) => {
                if let Some((code, reason)) = producer.client().fatal_error() {
                    return Err(DeliveryError::ProducerFailed { code, reason });
                }
                if let Some(error) = permanent(topic, record.payload.len(), e.rdkafka_error_code())
                {
                    return Err(error);
                }
                let delay = backoff.delay(retry, &mut rng);
                // Once per record: with the broker gone every record in flight fails again
                // every few seconds, and the outage itself is said once elsewhere.
                let level = match retry {
                    0 => log::Level::Warn,
                    _ => log::Level::Debug,
                };
                log::log!(
                    level,
                    "producing to {topic} failed ({e}); producing it again in {delay:?} and after, until acknowledged; its offset waits"
                );
                retry += 1;
                actix_rt::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::time::Duration;

    use rdkafka::types::RDKafkaRespErr;

    use super::*;
    use crate::config::Settings;
    use crate::dev::mock_broker::MockBroker;
    use crate::kafka::client;

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

    fn record(payload: &[u8]) -> Record<'_> {
        Record {
            topic: "results",
            key: Some(b"k"),
            payload,
            headers: None,
        }
    }

    #[test]
    fn failures_no_retry_can_mend_are_told_apart() {
        let permanent = |code| permanent("results", 10, Some(code));
        assert!(matches!(
            permanent(RDKafkaErrorCode::MessageSizeTooLarge),
            Some(DeliveryError::TooLarge { bytes: 10, .. })
        ));
        for code in [
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ] {
            assert!(matches!(
                permanent(code),
                Some(DeliveryError::TopicUnusable { .. })
            ));
        }
        for transient in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::NotLeaderForPartition,
        ] {
            assert_eq!(permanent(transient), None, "{transient}");
        }
    }

    #[actix_rt::test]
    async fn a_delivery_returns_once_acknowledged() {
        let broker = MockBroker::start(1).unwrap();
        broker.create_topic("results", 1).unwrap();
        let producer = producer_on(&broker);
        let delivered = deliver(&producer, record(b"v"), quick_backoff());
        let delivered = tokio::time::timeout(Duration::from_secs(30), delivered).await;
        assert_eq!(delivered.expect("acknowledged in time"), Ok(()));
    }

    #[actix_rt::test]
    async fn a_producer_failed_for_good_is_given_up_on_with_its_reason() {
        let broker = MockBroker::start(1).unwrap();
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
        let delivered = deliver(&producer, record(b"v"), quick_backoff());
        let err = tokio::time::timeout(Duration::from_secs(30), delivered)
            .await
            .expect("given up on in time, not retried forever")
            .unwrap_err();
        let DeliveryError::ProducerFailed { code, reason } = &err else {
            panic!("not the producer's failure: {err}");
        };
        assert_eq!(*code, RDKafkaErrorCode::OutOfOrderSequenceNumber);
        assert!(reason.contains("injected by the test"), "{err}");
    }
}

//! Failures after which this process can do no more good: the service drains what it can and
//! exits non-zero, so that a restart (with new clients) takes over. Nothing is lost: what is
//! not committed is delivered again.
//!
//! Raised by whichever part sees it first (delivery, intake); the service waits on it beside
//! the shutdown signal. It must never be raised for a failure a retry could mend.

use std::sync::Arc;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::watch;

use crate::kafka::broker_watch::is_connectivity;
use crate::service::delivery::DeliveryError;

/// Why the service stops by itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// librdkafka could not hand a record over and would move past it: a later record's
    /// offset would commit past one neither answered nor dead-lettered.
    #[error(
        "a record of the todo topic could not be read ({error}); stopping, so that nothing is committed past it. Restarting reads it again; if this recurs, the record is damaged and must be dealt with on the broker"
    )]
    Consume { error: String },
    /// A batch of the todo topic is compressed with a codec this build cannot decompress:
    /// librdkafka would retry it for ever, the partition stalled behind it.
    #[error(
        "a batch of the todo topic is compressed with a codec this build cannot decompress ({error}); stopping instead of stalling its partition. This build reads gzip, snappy, lz4 and zstd: have the producer use one of them (its compression.type)"
    )]
    Codec { error: String },
}

/// What a consume error (an `Err` from the consumer's poll) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeError {
    /// The brokers cannot be reached: librdkafka retries, nothing is skipped.
    Unreachable,
    /// A record may have been skipped (corrupt, undecodable, a reset position) or the
    /// consumer failed for good: stop ([`Fatal::Consume`]).
    RecordLost,
    /// A batch compressed with a codec this build lacks: librdkafka reports it again at every
    /// fetch and never moves past it, so stop ([`Fatal::Codec`]) rather than stall in silence.
    UnreadableCodec,
    /// Anything else: logged; nothing was handed over, nothing skipped.
    Other,
}

impl ConsumeError {
    pub fn of(error: &KafkaError) -> ConsumeError {
        match error {
            KafkaError::MessageConsumptionFatal(_) => ConsumeError::RecordLost,
            KafkaError::PartitionEOF(_) => ConsumeError::Other,
            _ => match error.rdkafka_error_code() {
                Some(
                    RDKafkaErrorCode::BadMessage
                    | RDKafkaErrorCode::BadCompression
                    | RDKafkaErrorCode::InvalidMessage
                    | RDKafkaErrorCode::InvalidMessageSize
                    | RDKafkaErrorCode::AutoOffsetReset
                    | RDKafkaErrorCode::OffsetOutOfRange,
                ) => ConsumeError::RecordLost,
                // "Decompression (codec 0x4) of message at … failed: Local: Not implemented".
                Some(RDKafkaErrorCode::NotImplemented) => ConsumeError::UnreadableCodec,
                Some(code) if is_connectivity(code) => ConsumeError::Unreachable,
                _ => ConsumeError::Other,
            },
        }
    }
}

/// Where a fatal failure is raised; cloned into every part that may see one.
#[derive(Clone, Default)]
pub struct FailureSignal(Arc<watch::Sender<Option<Fatal>>>);

impl FailureSignal {
    /// Raises `fatal` unless one was raised before; whether it was the first (the one to log).
    pub fn raise(&self, fatal: Fatal) -> bool {
        self.0.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(fatal);
            }
            first
        })
    }

    pub fn subscribe(&self) -> Failure {
        Failure(self.0.subscribe())
    }
}

/// Resolves once a fatal failure was raised.
pub struct Failure(watch::Receiver<Option<Fatal>>);

impl Failure {
    /// Waits for the failure; never resolves if none is raised.
    pub async fn wait(&mut self) -> Fatal {
        match self.0.wait_for(Option::is_some).await {
            Ok(fatal) => fatal.clone().expect("waited for Some"),
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_errors_that_may_skip_a_record_stop_the_service() {
        let code = |c| KafkaError::MessageConsumption(c);
        for lost in [
            code(RDKafkaErrorCode::BadMessage),
            code(RDKafkaErrorCode::BadCompression),
            code(RDKafkaErrorCode::InvalidMessage),
            code(RDKafkaErrorCode::AutoOffsetReset),
            KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::Fail),
        ] {
            assert_eq!(ConsumeError::of(&lost), ConsumeError::RecordLost, "{lost}");
        }
        // A codec librdkafka was built without: stop, never retry for ever.
        let codec = code(RDKafkaErrorCode::NotImplemented);
        assert_eq!(ConsumeError::of(&codec), ConsumeError::UnreadableCodec);
        let down = code(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(ConsumeError::of(&down), ConsumeError::Unreachable);
        let other = code(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert_eq!(ConsumeError::of(&other), ConsumeError::Other);
    }

    #[actix_rt::test]
    async fn the_first_failure_is_the_one_reported() {
        let signal = FailureSignal::default();
        let mut failure = signal.subscribe();
        let first = Fatal::Consume { error: "a".into() };
        assert!(signal.raise(first.clone()));
        assert!(!signal.raise(Fatal::Consume { error: "b".into() }));
        assert_eq!(failure.wait().await, first);
    }
}

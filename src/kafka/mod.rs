//! The Kafka side of the service, apart from the consumer actor itself
//! ([`crate::service::consumer`]):
//!
//! - [`client`] — librdkafka clients built from [`crate::config::KafkaSettings`], with the
//!   properties at-least-once depends on enforced, and the reachability check that turns a
//!   silent librdkafka retry loop into an error that says what to do.
//! - [`topics`] — `cloner-worker topics create|delete|list` through the admin API.
//! - [`mock_broker`] — librdkafka's mock cluster as a broker process for tests and the demo.
//! - [`requester`] — the requesting side: publish TodoChunks, read a topic back (demo, tests).
//!
//! Nothing here knows about workers or the upstream API.

pub mod client;
pub mod topics;

/// Headers a dead letter carries: why it was refused and where it came from.
pub mod dead_letter_headers {
    pub const REASON: &str = "dlq.reason";
    pub const TOPIC: &str = "dlq.topic";
    pub const PARTITION: &str = "dlq.partition";
    pub const OFFSET: &str = "dlq.offset";
}

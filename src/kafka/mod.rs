//! Kafka clients and topics, for the service and the requesting side alike:
//!
//! - [`client`] — librdkafka clients built from [`crate::config::KafkaSettings`], with the
//!   properties at-least-once depends on enforced, and the reachability check that turns a
//!   silent librdkafka retry loop into an error that says what to do.
//! - [`probe`] — the start-up probe under that check: a refused password, an untrusted broker
//!   certificate or a plaintext client on a TLS port fails the start at once, not after the
//!   timeout; [`security`] says which it is and the key to fix, secrets never included.
//! - [`topics`] — `cloner-worker topics create|delete|list|brokers` through the admin API.
//! - [`broker_watch`] — one ERROR line when the brokers go away, one INFO line when they are
//!   back, instead of librdkafka's error per reconnect attempt.
//!
//! The service's use of them is in [`crate::service`], the requesting side's in
//! [`crate::clone::requester`], the test broker in [`crate::dev::mock_broker`]. Nothing here
//! knows about workers, chunks or the upstream API.

pub mod broker_watch;
pub mod client;
pub mod probe;
pub mod security;
pub mod topics;

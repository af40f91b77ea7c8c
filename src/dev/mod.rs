//! What only tests, benchmarks, the console and the demo use: the exchange [`simulator`] and
//! the Kafka [`mock_broker`] (librdkafka's mock cluster).
//!
//! Production must never talk to either: they keep everything in memory and serve loopback.

pub mod mock_broker;
pub mod simulator;

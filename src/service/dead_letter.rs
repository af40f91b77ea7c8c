//! Dead letters: a message that cannot be a chunk goes to the dead-letter topic as received,
//! with why and where it came from in its headers, so that an operator can find, fix and
//! replay it while consumption goes on.
//!
//! It must never change the payload: the dead letter is the message as it arrived.

use rdkafka::message::{Header, Message as _, OwnedHeaders, OwnedMessage};

use crate::service::delivery::Record;

/// The headers a dead letter carries.
pub mod header {
    /// Why the message is not a chunk.
    pub const REASON: &str = "dlq.reason";
    /// Where it was read: topic, partition and offset.
    pub const TOPIC: &str = "dlq.topic";
    pub const PARTITION: &str = "dlq.partition";
    pub const OFFSET: &str = "dlq.offset";
}

/// `message`, refused for `reason`, as the record to produce to `topic`.
pub fn record<'a>(message: &'a OwnedMessage, reason: &str, topic: &'a str) -> Record<'a> {
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: header::REASON,
            value: Some(reason),
        })
        .insert(Header {
            key: header::TOPIC,
            value: Some(message.topic()),
        })
        .insert(Header {
            key: header::PARTITION,
            value: Some(&message.partition().to_string()),
        })
        .insert(Header {
            key: header::OFFSET,
            value: Some(&message.offset().to_string()),
        });
    Record {
        topic,
        key: message.key(),
        payload: message.payload().unwrap_or_default(),
        headers: Some(headers),
    }
}

//! Helpers on the wire types: building results and describing chunks in logs.
//!
//! Pure functions only: no I/O, no actors.

use std::fmt;

use crate::proto::{cloned_chunk, ClonedChunk, ClonedEntry, TodoChunk};

/// A result for `chunk`.
pub fn result(
    chunk: &TodoChunk,
    outcome: cloned_chunk::Result,
    entries: Vec<ClonedEntry>,
    message: impl Into<String>,
) -> ClonedChunk {
    ClonedChunk {
        chunk_result: outcome as i32,
        original_todo_chunk: Some(chunk.clone()),
        entries,
        possible_error_message: message.into(),
        covered_from_unix_ts: None,
        covered_until_unix_ts: None,
        upstream_calls: None,
    }
}

/// A `RANDOM_ERROR` result for `chunk` that says what happened.
pub fn error_result(chunk: &TodoChunk, message: impl Into<String>) -> ClonedChunk {
    result(
        chunk,
        cloned_chunk::Result::RandomError,
        Vec::new(),
        message,
    )
}

/// `BTC_ETH [1540000000, 1540003599] #7`, for log lines.
pub struct Describe<'a>(pub &'a TodoChunk);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        write!(
            f,
            "{} [{}, {}] #{}",
            c.currency_pair, c.from_unix_ts, c.until_unix_ts, c.task_dbid
        )
    }
}

/// The result kind's name as on the wire (`COMPLETE`, …), or `UNKNOWN(n)`.
pub fn result_name(result: &ClonedChunk) -> String {
    match cloned_chunk::Result::try_from(result.chunk_result) {
        Ok(r) => r.as_str_name().to_string(),
        Err(_) => format!("UNKNOWN({})", result.chunk_result),
    }
}

/// Why a Kafka message cannot become a chunk (it goes to the dead-letter topic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undecodable {
    #[error("the message has no payload")]
    NoPayload,
    #[error("the payload is not a TodoChunk: {0}")]
    NotATodoChunk(String),
    #[error(transparent)]
    Invalid(#[from] crate::domain::pair::InvalidChunk),
}

/// Decodes and validates a `TodoChunk` as it arrives from Kafka, its pair spelled as `rule`
/// (the venue's) says.
pub fn decode_todo_chunk(
    payload: Option<&[u8]>,
    rule: crate::domain::pair::PairRule,
) -> Result<TodoChunk, Undecodable> {
    use prost::Message as _;
    let bytes = payload.ok_or(Undecodable::NoPayload)?;
    let chunk = TodoChunk::decode(bytes).map_err(|e| Undecodable::NotATodoChunk(e.to_string()))?;
    crate::domain::pair::validate_chunk(&chunk, rule)?;
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn decode_todo_chunk_u(payload: Option<&[u8]>) -> Result<TodoChunk, Undecodable> {
        decode_todo_chunk(payload, crate::domain::pair::PairRule::UNDERSCORED)
    }

    fn encoded(pair: &str, from: i64, until: i64) -> Vec<u8> {
        TodoChunk {
            currency_pair: pair.into(),
            from_unix_ts: from,
            until_unix_ts: until,
            task_dbid: 3,
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_valid_chunk_decodes() {
        let chunk = decode_todo_chunk_u(Some(&encoded("BTC_ETH", 10, 20))).unwrap();
        assert_eq!(
            (chunk.from_unix_ts, chunk.until_unix_ts, chunk.task_dbid),
            (10, 20, 3)
        );
    }

    #[test]
    fn what_cannot_be_a_chunk_says_why() {
        let cases: [(Option<Vec<u8>>, &str); 6] = [
            (None, "no payload"),
            (Some(vec![0xff, 0xff, 0xff]), "not a TodoChunk"),
            (Some(encoded("", 10, 20)), "invalid currency pair"),
            (
                Some(encoded("BTC_ETH&x=1", 10, 20)),
                "invalid currency pair",
            ),
            (Some(encoded("BTC_ETH", 20, 10)), "ends before it starts"),
            (Some(encoded("BTC_ETH", -5, 10)), "before 1970"),
        ];
        for (payload, why) in cases {
            let err = decode_todo_chunk_u(payload.as_deref())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(why),
                "{payload:?}: {err:?} does not say {why:?}"
            );
        }
    }
}

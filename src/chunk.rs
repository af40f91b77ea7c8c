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

//! How the console prints chunks and results: like Elixir structs, entries summarised.

use crate::domain::chunk::result_name;
use crate::proto::{ClonedChunk, TodoChunk};

/// `%TodoChunk{…}`.
pub fn show_chunk(c: &TodoChunk) -> String {
    format!(
        "%TodoChunk{{currency_pair: {:?}, from_unix_ts: {}, until_unix_ts: {}, task_dbid: {}}}",
        c.currency_pair, c.from_unix_ts, c.until_unix_ts, c.task_dbid
    )
}

/// `%ClonedChunk{…}` with the entries summarised (count and trade id range).
pub fn show_result(r: &ClonedChunk) -> String {
    let original = r
        .original_todo_chunk
        .as_ref()
        .map(show_chunk)
        .unwrap_or_else(|| "nil".into());
    let entries = match (r.entries.first(), r.entries.last()) {
        (Some(first), Some(last)) => {
            format!(
                "[{} entries, trade_id {}..{}]",
                r.entries.len(),
                first.trade_id,
                last.trade_id
            )
        }
        _ => "[]".to_string(),
    };
    format!(
        "%ClonedChunk{{chunk_result: :{}, original_todo_chunk: {original}, entries: {entries}, possible_error_message: {:?}}}",
        result_name(r),
        r.possible_error_message
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_print_like_elixir_structs() {
        let chunk = TodoChunk {
            currency_pair: "BTC_ETH".into(),
            from_unix_ts: 1,
            until_unix_ts: 2,
            task_dbid: 3,
            ..Default::default()
        };
        let r = crate::domain::chunk::error_result(&chunk, "Invalid currency pair.");
        assert_eq!(
            show_result(&r),
            "%ClonedChunk{chunk_result: :RANDOM_ERROR, original_todo_chunk: %TodoChunk{currency_pair: \"BTC_ETH\", \
             from_unix_ts: 1, until_unix_ts: 2, task_dbid: 3}, entries: [], possible_error_message: \"Invalid currency pair.\"}"
        );
    }
}

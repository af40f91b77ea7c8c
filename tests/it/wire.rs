//! The wire schema against bytes written by hand from the protobuf encoding rules, so that a
//! renumbered field, a changed type or a reordered enum cannot pass; plus round trips.
//!
//! A key byte is `field_number << 3 | wire_type` (0 = varint, 2 = length-delimited).

use prost::Message;

use cloner_worker::proto::{
    cloned_chunk, cloned_entry, task_response, todo_task, ClonedChunk, ClonedEntry, TaskResponse,
    TodoChunk, TodoTask,
};

/// TodoChunk{currency_pair: "BTC_ETH", from_unix_ts: 1540166400, until_unix_ts: 1540169999, task_dbid: 7}
#[rustfmt::skip]
const TODO_CHUNK: &[u8] = &[
    0x0A, 0x07, b'B', b'T', b'C', b'_', b'E', b'T', b'H', // 1: currency_pair, string
    0x10, 0x80, 0xA6, 0xB4, 0xDE, 0x05,                  // 2: from_unix_ts, varint 1540166400
    0x18, 0x8F, 0xC2, 0xB4, 0xDE, 0x05,                  // 3: until_unix_ts, varint 1540169999
    0x20, 0x07,                                          // 4: task_dbid, varint 7
];

/// ClonedEntry{trade_id: 45205037, date: 1540220637, type: BUY, rate: "0.1", amount: "2", total: "0.2"}
#[rustfmt::skip]
const CLONED_ENTRY: &[u8] = &[
    0x08, 0xAD, 0x8C, 0xC7, 0x15,       // 1: trade_id, varint 45205037
    0x10, 0xDD, 0xCD, 0xB7, 0xDE, 0x05, // 2: date, varint 1540220637
    0x18, 0x01,                         // 3: type, enum BUY = 1
    0x22, 0x03, b'0', b'.', b'1',       // 4: rate
    0x2A, 0x01, b'2',                   // 5: amount
    0x32, 0x03, b'0', b'.', b'2',       // 6: total
];

fn todo_chunk() -> TodoChunk {
    TodoChunk {
        currency_pair: "BTC_ETH".into(),
        from_unix_ts: 1_540_166_400,
        until_unix_ts: 1_540_169_999,
        task_dbid: 7,
        ..Default::default()
    }
}

fn cloned_entry() -> ClonedEntry {
    ClonedEntry {
        trade_id: 45_205_037,
        date: 1_540_220_637,
        r#type: cloned_entry::Type::Buy as i32,
        rate: "0.1".into(),
        amount: "2".into(),
        total: "0.2".into(),
        time_ms: None,
        first_trade_id: None,
        last_trade_id: None,
    }
}

#[test]
fn todo_chunk_matches_hand_encoded_bytes() {
    assert_eq!(TodoChunk::decode(TODO_CHUNK).unwrap(), todo_chunk());
    assert_eq!(todo_chunk().encode_to_vec(), TODO_CHUNK);
}

#[test]
fn cloned_entry_matches_hand_encoded_bytes() {
    assert_eq!(ClonedEntry::decode(CLONED_ENTRY).unwrap(), cloned_entry());
    assert_eq!(cloned_entry().encode_to_vec(), CLONED_ENTRY);
    // SELL is the zero value: proto3 leaves it off the wire.
    let sell = ClonedEntry {
        r#type: cloned_entry::Type::Sell as i32,
        ..cloned_entry()
    };
    assert!(!sell.encode_to_vec().windows(2).any(|w| w == [0x18, 0x00]));
}

#[test]
fn cloned_chunk_matches_hand_encoded_bytes() {
    let mut bytes = vec![0x08, 0x01]; // 1: chunk_result, enum WINDOW_TOO_BIG = 1
    bytes.extend([0x12, TODO_CHUNK.len() as u8]); // 2: original_todo_chunk, message
    bytes.extend(TODO_CHUNK);
    for _ in 0..2 {
        bytes.extend([0x1A, CLONED_ENTRY.len() as u8]); // 3: entries, repeated message
        bytes.extend(CLONED_ENTRY);
    }
    bytes.extend([0x22, 0x02, b'h', b'i']); // 4: possible_error_message
    let chunk = ClonedChunk {
        chunk_result: cloned_chunk::Result::WindowTooBig as i32,
        original_todo_chunk: Some(todo_chunk()),
        entries: vec![cloned_entry(), cloned_entry()],
        possible_error_message: "hi".into(),
        ..Default::default()
    };
    assert_eq!(ClonedChunk::decode(&bytes[..]).unwrap(), chunk);
    assert_eq!(chunk.encode_to_vec(), bytes);
}

/// `ClonedChunk` as the original schema had it: fields 1 to 4, nothing else.
#[derive(Clone, PartialEq, prost::Message)]
struct OriginalClonedChunk {
    #[prost(enumeration = "cloned_chunk::Result", tag = "1")]
    chunk_result: i32,
    #[prost(message, optional, tag = "2")]
    original_todo_chunk: Option<TodoChunk>,
    #[prost(message, repeated, tag = "3")]
    entries: Vec<ClonedEntry>,
    #[prost(string, tag = "4")]
    possible_error_message: String,
}

#[test]
fn the_covered_window_is_an_extension_both_schemas_read() {
    // Written under the original schema (by hand): no coverage, read as unset.
    let mut original = vec![0x08, 0x01];
    original.extend([0x22, 0x02, b'h', b'i']);
    let read = ClonedChunk::decode(&original[..]).unwrap();
    assert_eq!(
        (read.covered_from_unix_ts, read.covered_until_unix_ts),
        (None, None)
    );
    assert_eq!(read.possible_error_message, "hi");

    // Written under the new one: fields 5 and 6 as varints (a zero is written too: `optional`
    // keeps presence), after the original fields.
    let extended = ClonedChunk {
        chunk_result: cloned_chunk::Result::WindowTooBig as i32,
        possible_error_message: "hi".into(),
        covered_from_unix_ts: Some(1_540_166_400),
        covered_until_unix_ts: Some(0),
        ..Default::default()
    };
    let mut bytes = original.clone();
    bytes.extend([0x28, 0x80, 0xA6, 0xB4, 0xDE, 0x05]); // 5: covered_from_unix_ts
    bytes.extend([0x30, 0x00]); // 6: covered_until_unix_ts, 0
    assert_eq!(extended.encode_to_vec(), bytes);
    assert_eq!(ClonedChunk::decode(&bytes[..]).unwrap(), extended);
    // The original schema skips the new fields and reads the rest as before.
    let old = OriginalClonedChunk::decode(&bytes[..]).unwrap();
    assert_eq!(old.chunk_result, cloned_chunk::Result::WindowTooBig as i32);
    assert_eq!(old.possible_error_message, "hi");
    assert!(old.entries.is_empty() && old.original_todo_chunk.is_none());
}

#[test]
fn the_millisecond_is_an_extension_both_schemas_read() {
    // Written under the original schema (by hand): trade id 7, date 1540166400, no
    // milliseconds, read as unset.
    let original = [0x08, 0x07, 0x10, 0x80, 0xA6, 0xB4, 0xDE, 0x05];
    let read = ClonedEntry::decode(&original[..]).unwrap();
    assert_eq!((read.trade_id, read.time_ms), (7, None));
    // Written under the new one: field 7 as a varint after the original fields.
    let extended = ClonedEntry {
        trade_id: 7,
        date: 1_540_166_400,
        time_ms: Some(1_540_166_400_123),
        ..Default::default()
    };
    let mut bytes = original.to_vec();
    bytes.extend([0x38, 0xFB, 0xF0, 0xC8, 0xC8, 0xE9, 0x2C]); // 7: time_ms
    assert_eq!(extended.encode_to_vec(), bytes);
    assert_eq!(ClonedEntry::decode(&bytes[..]).unwrap(), extended);
    // The original schema skips it and reads the rest as before.
    let old = OriginalClonedEntry::decode(&bytes[..]).unwrap();
    assert_eq!((old.trade_id, old.date), (7, 1_540_166_400));
}

#[test]
fn the_trade_id_range_is_an_extension_both_schemas_read() {
    // Written under the original schema (by hand): trade id 7, date 1540166400, read with no
    // range.
    let original = [0x08, 0x07, 0x10, 0x80, 0xA6, 0xB4, 0xDE, 0x05];
    let read = ClonedEntry::decode(&original[..]).unwrap();
    assert_eq!(
        (read.trade_id, read.first_trade_id, read.last_trade_id),
        (7, None, None)
    );
    // Written under the new one: fields 8 and 9 as varints after the original fields; a first
    // id of 0 is set, so it is on the wire.
    let extended = ClonedEntry {
        trade_id: 7,
        date: 1_540_166_400,
        first_trade_id: Some(0),
        last_trade_id: Some(6_000_000_001),
        ..Default::default()
    };
    let mut bytes = original.to_vec();
    bytes.extend([0x40, 0x00]); // 8: first_trade_id, 0
    bytes.extend([0x48, 0x81, 0xF8, 0x82, 0xAD, 0x16]); // 9: last_trade_id
    assert_eq!(extended.encode_to_vec(), bytes);
    assert_eq!(ClonedEntry::decode(&bytes[..]).unwrap(), extended);
    // The original schema skips them and reads the rest as before.
    let old = OriginalClonedEntry::decode(&bytes[..]).unwrap();
    assert_eq!((old.trade_id, old.date), (7, 1_540_166_400));
}

#[test]
fn the_trade_ids_asked_for_are_an_extension_both_schemas_read() {
    // Written under the original schema (by hand): pair "A_B", task 7, read as asked by time.
    let original = [0x0A, 0x03, b'A', b'_', b'B', 0x20, 0x07];
    let read = TodoChunk::decode(&original[..]).unwrap();
    assert_eq!((read.from_trade_id, read.until_trade_id), (None, None));
    // Written under the new one: fields 5 and 6 as varints after the original fields; a first
    // id of 0 is set, so it is on the wire.
    let extended = TodoChunk {
        currency_pair: "A_B".into(),
        task_dbid: 7,
        from_trade_id: Some(0),
        until_trade_id: Some(4000),
        ..Default::default()
    };
    let mut bytes = original.to_vec();
    bytes.extend([0x28, 0x00]); // 5: from_trade_id, 0
    bytes.extend([0x30, 0xA0, 0x1F]); // 6: until_trade_id, 4000
    assert_eq!(extended.encode_to_vec(), bytes);
    assert_eq!(TodoChunk::decode(&bytes[..]).unwrap(), extended);
    // The original schema skips them and reads the rest as before.
    let old = OriginalTodoChunk::decode(&bytes[..]).unwrap();
    assert_eq!((old.currency_pair.as_str(), old.task_dbid), ("A_B", 7));
}

#[test]
fn the_calls_an_answer_took_are_an_extension_both_schemas_read() {
    // Written under the original schema (by hand): COMPLETE, no count, read as unset.
    let original = [0x08, 0x00, 0x22, 0x02, b'o', b'k'];
    let read = ClonedChunk::decode(&original[..]).unwrap();
    assert_eq!(read.upstream_calls, None);
    // Written under the new one: field 7 as a varint after the original fields.
    let extended = ClonedChunk {
        possible_error_message: "ok".into(),
        upstream_calls: Some(5),
        ..Default::default()
    };
    let mut bytes = vec![0x22, 0x02, b'o', b'k'];
    bytes.extend([0x38, 0x05]); // 7: upstream_calls
    assert_eq!(extended.encode_to_vec(), bytes);
    assert_eq!(ClonedChunk::decode(&bytes[..]).unwrap(), extended);
    // The original schema skips it.
    let old = OriginalClonedChunk::decode(&bytes[..]).unwrap();
    assert_eq!(old.possible_error_message, "ok");
}

#[test]
fn enums_keep_their_numbers() {
    assert_eq!(cloned_chunk::Result::Complete as i32, 0);
    assert_eq!(cloned_chunk::Result::WindowTooBig as i32, 1);
    assert_eq!(cloned_chunk::Result::RandomError as i32, 2);
    assert_eq!(cloned_entry::Type::Sell as i32, 0);
    assert_eq!(cloned_entry::Type::Buy as i32, 1);
    assert_eq!(todo_task::TodoTaskOperation::Add as i32, 0);
    assert_eq!(todo_task::TodoTaskOperation::Delete as i32, 1);
    assert_eq!(task_response::Result::Complete as i32, 0);
    assert_eq!(task_response::Result::TaskConflict as i32, 1);
    assert_eq!(task_response::Result::Cancelled as i32, 2);
}

#[test]
fn task_level_messages_match_hand_encoded_bytes() {
    #[rustfmt::skip]
    let todo_task: &[u8] = &[
        0x08, 0x01,                   // 1: task_operation, DELETE
        0x12, 0x02, b'u', b'1',       // 2: task_uuid
        0x1A, 0x07, b'B', b'T', b'C', b'_', b'E', b'T', b'H', // 3: currency_pair
        0x20, 0x80, 0xA6, 0xB4, 0xDE, 0x05, // 4: from_unix_ts
        0x28, 0x8F, 0xC2, 0xB4, 0xDE, 0x05, // 5: until_unix_ts
    ];
    let task = TodoTask {
        task_operation: todo_task::TodoTaskOperation::Delete as i32,
        task_uuid: "u1".into(),
        currency_pair: "BTC_ETH".into(),
        from_unix_ts: 1_540_166_400,
        until_unix_ts: 1_540_169_999,
    };
    assert_eq!(TodoTask::decode(todo_task).unwrap(), task);
    assert_eq!(task.encode_to_vec(), todo_task);

    let response: &[u8] = &[0x08, 0x02, 0x12, 0x02, b'u', b'1']; // CANCELLED, "u1"
    let decoded = TaskResponse::decode(response).unwrap();
    assert_eq!(decoded.task_result, task_response::Result::Cancelled as i32);
    assert_eq!(decoded.todo_task_uuid, "u1");
}

/// The original schema's 32-bit fields, as other teams' code still reads and writes them.
#[derive(Clone, PartialEq, prost::Message)]
struct OriginalTodoChunk {
    #[prost(string, tag = "1")]
    currency_pair: String,
    #[prost(int32, tag = "2")]
    from_unix_ts: i32,
    #[prost(int32, tag = "3")]
    until_unix_ts: i32,
    #[prost(int32, tag = "4")]
    task_dbid: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OriginalClonedEntry {
    #[prost(int32, tag = "1")]
    trade_id: i32,
    #[prost(int32, tag = "2")]
    date: i32,
}

#[test]
fn widened_fields_read_the_original_bytes_and_write_bytes_the_original_reads() {
    // Written under the original schema (by hand): from 1540166400, until -1 (a negative int32
    // is a ten-byte varint, sign-extended as an int64's), trade id 2147483647, date 0x7FFFFFFF.
    #[rustfmt::skip]
    let original: &[u8] = &[
        0x10, 0x80, 0xA6, 0xB4, 0xDE, 0x05,                               // 2: from_unix_ts
        0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, // 3: until_unix_ts, -1
    ];
    let chunk = TodoChunk::decode(original).unwrap();
    assert_eq!(
        (chunk.from_unix_ts, chunk.until_unix_ts),
        (1_540_166_400, -1)
    );
    assert_eq!(chunk.encode_to_vec(), original, "the same bytes back");
    let old = OriginalTodoChunk::decode(&chunk.encode_to_vec()[..]).unwrap();
    assert_eq!((old.from_unix_ts, old.until_unix_ts), (1_540_166_400, -1));

    let entry: &[u8] = &[
        0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, // 1: trade_id, i32::MAX
        0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, // 2: date, i32::MAX
    ];
    let new = ClonedEntry::decode(entry).unwrap();
    assert_eq!((new.trade_id, new.date), (2_147_483_647, 2_147_483_647));
    assert_eq!(new.encode_to_vec(), entry);
    let old = OriginalClonedEntry::decode(&new.encode_to_vec()[..]).unwrap();
    assert_eq!((old.trade_id, old.date), (i32::MAX, i32::MAX));

    // Past 32 bits the new schema carries what the old one could not (an old reader truncates,
    // as protobuf says for int64 read as int32: it keeps the low 32 bits).
    let wide = ClonedEntry {
        trade_id: 1 << 33,
        date: 4_102_444_800, // 2100-01-01
        ..Default::default()
    };
    assert_eq!(
        ClonedEntry::decode(&wide.encode_to_vec()[..]).unwrap(),
        wide
    );
    let truncated = OriginalClonedEntry::decode(&wide.encode_to_vec()[..]).unwrap();
    assert_eq!(truncated.trade_id, 0);
}

#[test]
fn round_trips_including_negative_and_extreme_values() {
    let chunk = TodoChunk {
        currency_pair: "USDT_BTC".into(),
        from_unix_ts: -1,
        until_unix_ts: i64::MAX,
        task_dbid: i32::MIN,
        ..Default::default()
    };
    assert_eq!(
        TodoChunk::decode(&chunk.encode_to_vec()[..]).unwrap(),
        chunk
    );
    let result = ClonedChunk {
        chunk_result: cloned_chunk::Result::Complete as i32,
        original_todo_chunk: Some(chunk),
        entries: (0..1000)
            .map(|i| ClonedEntry {
                trade_id: i,
                ..cloned_entry()
            })
            .collect(),
        possible_error_message: String::new(),
        ..Default::default()
    };
    assert_eq!(
        ClonedChunk::decode(&result.encode_to_vec()[..]).unwrap(),
        result
    );
}

#[test]
fn garbage_does_not_decode_as_a_chunk() {
    // A length that runs past the end, and a wire type that does not exist.
    assert!(TodoChunk::decode(&[0x0A, 0x10, b'B'][..]).is_err());
    assert!(TodoChunk::decode(&[0x0F, 0x01][..]).is_err());
}

//! The clone's output: trades in time order, each once, with the check that proves it.
//!
//! Windows are answered in any order; [`Output`] holds each answer until every earlier window
//! is answered too, then writes it. Memory is therefore bounded by what has come early, not by
//! the whole range. While writing, it checks the one invariant a complete clone has: trade ids
//! are consecutive per pair in time order, so each written id is the last one plus one. An id
//! at or below the last one is a duplicate and is not written; a jump is a gap and is reported.
//!
//! The bytes are the encoder's ([`crate::clone::format`]): the output decides what is written
//! and when, the format how.
//!
//! It must never write a trade twice, nor write out of time order.

use std::collections::BTreeMap;
use std::fmt;

use crate::clone::format::{Encoder, FormatError};
use crate::clone::window::Window;
use crate::proto::ClonedEntry;

// The formats live in `crate::clone::format`; named here too, where callers have found them.
pub use crate::clone::format::{Format, UnknownFormat};

/// What the check found, so far or at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    /// Trades written.
    pub trades: u64,
    /// The first and last trade id written.
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    /// Trades not written because their id was written already.
    pub duplicates_dropped: u64,
    /// Missing ids between written ones, as inclusive ranges (the first few).
    pub gaps: Vec<(i64, i64)>,
    /// All missing ids, including those of ranges not kept in `gaps`.
    pub missing_ids: u64,
    /// Windows that ended without trades (failed); their seconds are not in the output.
    pub skipped_windows: u64,
}

/// Gaps kept for the report; the count covers the rest.
const GAPS_KEPT: usize = 20;

impl Check {
    /// No gap, nothing skipped: the output is the complete history of the range.
    pub fn is_complete(&self) -> bool {
        self.missing_ids == 0 && self.skipped_windows == 0
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} trades", self.trades)?;
        if let (Some(a), Some(b)) = (self.first_id, self.last_id) {
            write!(f, " (tradeIDs {a}..={b})")?;
        }
        if self.duplicates_dropped > 0 {
            write!(
                f,
                "; {} duplicates received and dropped",
                self.duplicates_dropped
            )?;
        }
        write!(f, "; no duplicates written")?;
        if self.missing_ids == 0 {
            write!(f, "; no gaps")?;
        } else {
            write!(
                f,
                "; {} missing tradeIDs in {} gaps:",
                self.missing_ids,
                self.gaps.len()
            )?;
            for (a, b) in &self.gaps {
                write!(f, " {a}..={b}")?;
            }
        }
        Ok(())
    }
}

/// A window's place in the output: not answered yet, answered (waiting for earlier ones), or
/// failed for good.
enum Slot {
    Pending {
        until: i64,
    },
    Done {
        until: i64,
        entries: Vec<ClonedEntry>,
    },
    Failed {
        until: i64,
    },
}

impl Slot {
    fn until(&self) -> i64 {
        match self {
            Slot::Pending { until } | Slot::Done { until, .. } | Slot::Failed { until } => *until,
        }
    }
}

/// A mismatch between what the orchestrator says and the windows this output holds: a bug,
/// never an input problem.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("window {0} is not awaited by the output")]
    UnknownWindow(Window),
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
    /// The format refused a trade (a decimal its scale cannot hold) or its writer failed.
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// Trades in time order, each once, to `W` through an encoder.
pub struct Output<W> {
    encoder: Box<dyn Encoder<W>>,
    /// Every window not yet written, by its first second.
    slots: BTreeMap<i64, Slot>,
    check: Check,
    /// The last second up to which every trade is written, with no failed window before it:
    /// what a later run may continue from.
    written_until: Option<i64>,
    /// A failed window was passed: `written_until` stays before it.
    failed: bool,
    /// The output's length (counting what it continues) up to the end of `written_until`.
    clean_bytes: u64,
}

impl<W> Output<W> {
    /// An output awaiting no window yet (they are added with [`Output::expect`], in time
    /// order), writing through `encoder` (made by [`crate::clone::format::encoder`]).
    pub fn new(encoder: Box<dyn Encoder<W>>) -> Self {
        Output {
            encoder,
            slots: BTreeMap::new(),
            check: Check::default(),
            written_until: None,
            failed: false,
            clean_bytes: 0,
        }
    }

    /// An output that continues one written up to `written_until` with `check`, through
    /// `encoder`, which appends to it ([`crate::clone::format::continuing`]).
    pub fn resume(encoder: Box<dyn Encoder<W>>, check: Check, written_until: i64) -> Self {
        let clean_bytes = encoder.resume_point().unwrap_or(0);
        Output {
            encoder,
            slots: BTreeMap::new(),
            check,
            written_until: Some(written_until),
            failed: false,
            clean_bytes,
        }
    }

    /// The last second up to which every trade is written and no window failed, and the
    /// output's length at its end: what a later run may continue from. `None` too for a format
    /// written whole (Parquet).
    pub fn written_until(&self) -> Option<(i64, u64)> {
        self.encoder.resume_point()?;
        self.written_until.map(|until| (until, self.clean_bytes))
    }

    /// The last second up to which every trade is written and no window failed, whatever the
    /// format: what a dataset's days are final up to.
    pub fn checked_until(&self) -> Option<i64> {
        self.written_until
    }

    /// The windows answered and waiting for an earlier one, with their trades, in time order:
    /// what a stop would lose if they were not spilled.
    pub fn held(&self) -> impl Iterator<Item = (Window, &[ClonedEntry])> {
        self.slots.iter().filter_map(|(&from, slot)| match slot {
            Slot::Done { until, entries } => Some((
                Window {
                    from,
                    until: *until,
                },
                entries.as_slice(),
            )),
            _ => None,
        })
    }

    /// After [`Output::flush`]: bytes written so far, counting what this output continues;
    /// `None` for a format written whole, which cannot be continued.
    pub fn resume_point(&self) -> Option<u64> {
        self.encoder.resume_point()
    }

    /// Pushes what is written through to the writer (not to disk: the caller syncs).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.encoder.flush()
    }

    fn pending_slot(&mut self, window: Window) -> Result<&mut Slot, OutputError> {
        match self.slots.get_mut(&window.from) {
            Some(slot @ Slot::Pending { .. }) if slot.until() == window.until => Ok(slot),
            _ => Err(OutputError::UnknownWindow(window)),
        }
    }

    /// The window's trades; written as soon as every earlier window is written.
    pub fn complete(
        &mut self,
        window: Window,
        mut entries: Vec<ClonedEntry>,
    ) -> Result<(), OutputError> {
        let slot = self.pending_slot(window)?;
        // Time order; within a second, id order (ids are consecutive in time order).
        entries.sort_by_key(|e| (e.date, e.trade_id));
        *slot = Slot::Done {
            until: window.until,
            entries,
        };
        self.flush_ready()
    }

    /// Awaits `window` too: the next of the range, after every window awaited or written.
    pub fn expect(&mut self, window: Window) {
        debug_assert!(self
            .slots
            .last_key_value()
            .is_none_or(|(_, last)| last.until() < window.from));
        self.slots.insert(
            window.from,
            Slot::Pending {
                until: window.until,
            },
        );
    }

    /// The window is replaced by its two halves.
    pub fn split(&mut self, window: Window, halves: (Window, Window)) -> Result<(), OutputError> {
        self.pending_slot(window)?;
        let (a, b) = halves;
        debug_assert!(a.from == window.from && a.until + 1 == b.from && b.until == window.until);
        self.slots.insert(a.from, Slot::Pending { until: a.until });
        self.slots.insert(b.from, Slot::Pending { until: b.until });
        Ok(())
    }

    /// The window will not be answered: later ones are written past it.
    pub fn fail(&mut self, window: Window) -> Result<(), OutputError> {
        let slot = self.pending_slot(window)?;
        *slot = Slot::Failed {
            until: window.until,
        };
        self.flush_ready()
    }

    /// Windows still awaited.
    pub fn pending(&self) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(s, Slot::Pending { .. }))
            .count()
    }

    /// The check so far.
    pub fn check(&self) -> &Check {
        &self.check
    }

    /// Flushes the writer and hands it back with the final check. Windows still pending are
    /// counted as skipped.
    pub fn finish(mut self) -> Result<(W, Check), OutputError> {
        self.check.skipped_windows += self.pending() as u64;
        let (writer, _) = self.encoder.finish()?;
        Ok((writer, self.check))
    }

    /// Writes every answered window at the front of the range.
    fn flush_ready(&mut self) -> Result<(), OutputError> {
        while let Some(entry) = self.slots.first_entry() {
            match entry.get() {
                Slot::Pending { .. } => break,
                Slot::Failed { .. } => {
                    entry.remove();
                    self.check.skipped_windows += 1;
                    self.failed = true;
                }
                Slot::Done { .. } => {
                    if let Slot::Done { entries, until } = entry.remove() {
                        for e in &entries {
                            self.write(e)?;
                        }
                        if !self.failed {
                            // Through the encoder's buffer, so the count is exact here.
                            self.flush()?;
                            self.written_until = Some(until);
                            self.clean_bytes = self.encoder.resume_point().unwrap_or(0);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, e: &ClonedEntry) -> Result<(), OutputError> {
        if self.check.last_id.is_some_and(|last| e.trade_id <= last) {
            self.check.duplicates_dropped += 1;
            return Ok(());
        }
        // Written before it is counted: a trade the format refuses is not in the check.
        self.encoder.write(e)?;
        let check = &mut self.check;
        if let Some(last) = check.last_id {
            if e.trade_id > last + 1 {
                let gap = (last + 1, e.trade_id - 1);
                check.missing_ids += (gap.1 - gap.0 + 1) as u64;
                if check.gaps.len() < GAPS_KEPT {
                    check.gaps.push(gap);
                }
            }
        }
        check.first_id.get_or_insert(e.trade_id);
        check.last_id = Some(e.trade_id);
        check.trades += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::format::{self, Columns, Format};
    use crate::proto::cloned_entry;

    fn w(from: i64, until: i64) -> Window {
        Window { from, until }
    }

    /// An output into memory awaiting `windows`, in time order.
    fn awaiting(format: Format, windows: &[Window]) -> Output<Vec<u8>> {
        let encoder = format::encoder(format, Vec::new(), &Columns::POLONIEX).unwrap();
        let mut out = Output::new(encoder);
        for &window in windows {
            out.expect(window);
        }
        out
    }

    fn trade(id: i64, date: i64) -> ClonedEntry {
        ClonedEntry {
            trade_id: id,
            date,
            r#type: cloned_entry::Type::Buy as i32,
            rate: "0.1".into(),
            amount: "2".into(),
            total: "0.2".into(),
            time_ms: None,
            first_trade_id: None,
            last_trade_id: None,
        }
    }

    fn ids(csv: &[u8]) -> Vec<i64> {
        String::from_utf8(csv.to_vec())
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn windows_answered_out_of_order_are_written_in_time_order() {
        let mut out = awaiting(Format::Csv, &[w(0, 9), w(10, 19), w(20, 29)]);
        out.complete(w(20, 29), vec![trade(6, 25), trade(5, 21)])
            .unwrap();
        out.complete(w(10, 19), vec![trade(4, 15), trade(3, 12)])
            .unwrap();
        assert_eq!(out.check().trades, 0, "nothing before the first window");
        out.complete(w(0, 9), vec![trade(2, 9), trade(1, 0)])
            .unwrap();
        let (bytes, check) = out.finish().unwrap();
        assert_eq!(ids(&bytes), [1, 2, 3, 4, 5, 6]);
        assert!(check.is_complete(), "{check}");
        assert_eq!((check.first_id, check.last_id), (Some(1), Some(6)));
        assert!(String::from_utf8(bytes).unwrap().starts_with(
            "tradeID,date,type,rate,amount,total\n1,1970-01-01 00:00:00,buy,0.1,2,0.2\n"
        ));
    }

    #[test]
    fn split_windows_are_written_in_place() {
        let mut out = awaiting(Format::Csv, &[w(0, 9), w(10, 19)]);
        out.split(w(0, 9), w(0, 9).halve().unwrap()).unwrap();
        out.complete(w(10, 19), vec![trade(3, 10)]).unwrap();
        out.complete(w(5, 9), vec![trade(2, 7)]).unwrap();
        assert_eq!(out.pending(), 1);
        out.complete(w(0, 4), vec![trade(1, 1)]).unwrap();
        let (bytes, check) = out.finish().unwrap();
        assert_eq!(ids(&bytes), [1, 2, 3]);
        assert!(check.is_complete());
        let mut out = awaiting(Format::Csv, &[w(0, 9)]);
        assert!(out.complete(w(0, 9), vec![]).is_ok());
        assert!(
            matches!(
                out.complete(w(0, 9), vec![]),
                Err(OutputError::UnknownWindow(_))
            ),
            "a window is answered once"
        );
    }

    #[test]
    fn duplicates_are_dropped_and_gaps_reported() {
        let mut out = awaiting(Format::Csv, &[w(0, 9), w(10, 19)]);
        out.complete(w(0, 9), vec![trade(1, 1), trade(2, 2), trade(2, 2)])
            .unwrap();
        out.complete(w(10, 19), vec![trade(2, 10), trade(5, 11), trade(9, 12)])
            .unwrap();
        let (bytes, check) = out.finish().unwrap();
        assert_eq!(ids(&bytes), [1, 2, 5, 9]);
        assert_eq!(check.duplicates_dropped, 2);
        assert_eq!(check.gaps, [(3, 4), (6, 8)]);
        assert_eq!(check.missing_ids, 5);
        assert!(!check.is_complete());
        assert!(
            check
                .to_string()
                .contains("5 missing tradeIDs in 2 gaps: 3..=4 6..=8"),
            "{check}"
        );
    }

    #[test]
    fn a_failed_window_is_skipped_and_counted() {
        let mut out = awaiting(Format::Csv, &[w(0, 9), w(10, 19), w(20, 29)]);
        out.complete(w(20, 29), vec![trade(3, 20)]).unwrap();
        out.fail(w(10, 19)).unwrap();
        out.complete(w(0, 9), vec![trade(1, 0)]).unwrap();
        let (bytes, check) = out.finish().unwrap();
        assert_eq!(ids(&bytes), [1, 3]);
        assert_eq!((check.skipped_windows, check.missing_ids), (1, 1));
        let out = awaiting(Format::Csv, &[w(0, 9)]);
        let (_, check) = out.finish().unwrap();
        assert_eq!(
            check.skipped_windows, 1,
            "a window never answered is not complete"
        );
    }

    #[test]
    fn json_lines_carry_the_api_fields_and_csv_quotes_what_it_must() {
        let mut t = trade(7, 1_540_220_637);
        t.r#type = cloned_entry::Type::Sell as i32;
        t.rate = "1,5\"".into();
        let mut out = awaiting(Format::Jsonl, &[w(1_540_220_000, 1_540_229_999)]);
        out.complete(w(1_540_220_000, 1_540_229_999), vec![t.clone()])
            .unwrap();
        let (bytes, _) = out.finish().unwrap();
        let line: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"tradeID": 7, "date": "2018-10-22 15:03:57", "type": "sell",
                "rate": "1,5\"", "amount": "2", "total": "0.2"})
        );
        t.amount = "2\r\n".into();
        let mut out = awaiting(Format::Csv, &[w(1_540_220_000, 1_540_229_999)]);
        out.complete(w(1_540_220_000, 1_540_229_999), vec![t])
            .unwrap();
        let (bytes, _) = out.finish().unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "tradeID,date,type,rate,amount,total\n\
             7,2018-10-22 15:03:57,sell,\"1,5\"\"\",\"2\r\n\",0.2\n"
        );
    }
}

//! A pair's trades, in time order and checked, cut into the dataset's day files as the clone
//! goes: [`DaySplitter`] is the output's encoder (each trade to its UTC day's [`DayWriter`]),
//! [`DayKeeper`] the pair's keeper (every answer to the pair's spill; a day written, renamed
//! and recorded in the manifest once the output's checked part covers the whole day).
//!
//! A day is final only when every window of it is answered and written without a gap or a
//! failure (the output's `written_until`): a day the run does not finish (stopped, failed, or
//! the day of `--until now`) leaves no file, and its answers stay in the spill, so the same
//! command (with this `--until` or a later one) writes it with no call for what was answered.
//! A day without trades is a file without rows. The spill is cut back to the first day not
//! written each time days are written.
//!
//! It must never record a day that is not whole and checked, nor write a trade into another
//! day's file.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use jiff::civil::Date;

use crate::clone::dataset::{date_of, day_bounds, DatasetError, DayWriter, Manifest};
use crate::clone::format::{Columns, Encoder, Format, FormatError, Written};
use crate::clone::output::Output;
use crate::clone::pair_run::Keeper;
use crate::clone::partial::Writer;
use crate::clone::spill::Spill;
use crate::clone::window::Window;
use crate::clone::Sink;
use crate::proto::ClonedEntry;

/// The days of one pair's segment, shared by its splitter (which writes trades) and its keeper
/// (which ends days).
pub struct Days {
    root: PathBuf,
    manifest: Manifest,
    format: Format,
    columns: Columns,
    /// Days being written, oldest first: the one trades go to and those before it that the
    /// checked part of the output does not cover yet.
    open: VecDeque<DayWriter>,
    /// The next day to end: every day before it is written (or before the segment).
    next: Date,
    /// The segment's end, exclusive: days from it on are not this run's to end.
    end: Date,
    /// Days ended by this run.
    pub written: u64,
    /// Trades handed to the writers.
    trades: u64,
    /// The first second of the earliest window given up: no day from the one holding it on
    /// can be whole this run, so their trades are not written (the spill keeps them).
    blocked_from: Option<i64>,
    /// Whether days were ended since the spill was last cut back.
    ended_since_cut: bool,
}

impl Days {
    /// The days `[first, end)` of the pair `manifest` holds the others of, under `root`.
    pub fn new(
        root: &Path,
        manifest: Manifest,
        format: Format,
        columns: Columns,
        first: Date,
        end: Date,
    ) -> Arc<Mutex<Days>> {
        Arc::new(Mutex::new(Days {
            root: root.to_path_buf(),
            manifest,
            format,
            columns,
            open: VecDeque::new(),
            next: first,
            end,
            written: 0,
            trades: 0,
            blocked_from: None,
            ended_since_cut: false,
        }))
    }

    /// A new writer of `date`'s file.
    fn create(&self, date: Date) -> Result<DayWriter, DatasetError> {
        DayWriter::create(
            &self.root,
            self.manifest.partition(),
            date,
            self.format,
            &self.columns,
        )
    }

    fn writer(&mut self, date: Date) -> Result<&mut DayWriter, DatasetError> {
        if self.open.back().is_none_or(|w| w.date() < date) {
            let writer = self.create(date)?;
            self.open.push_back(writer);
        }
        Ok(self.open.back_mut().expect("pushed above"))
    }

    /// Ends every day the checked part of the output covers whole (it is written up to the
    /// second `until`); `true` if any was.
    fn end_days_until(&mut self, until: i64) -> Result<bool, DatasetError> {
        let mut ended = false;
        while self.next < self.end && day_bounds(self.next)?.1 - 1 <= until {
            let date = self.next;
            let writer = match self.open.front() {
                Some(w) if w.date() == date => self.open.pop_front().expect("front"),
                // No trade that day: a file without rows says the day is held.
                _ => self.create(date)?,
            };
            let record = writer.finish()?;
            log::debug!(
                "{} {date}: {} trades written to {}",
                self.manifest.partition(),
                record.trades,
                record.file
            );
            self.manifest.record(record);
            self.written += 1;
            self.next = self
                .next
                .tomorrow()
                .map_err(|_| DatasetError::BadDate { date })?;
            ended = true;
        }
        if ended {
            self.manifest.save(&self.root)?;
            self.ended_since_cut = true;
        }
        Ok(ended)
    }

    /// Writes one trade, after every one before it. A trade of a later day than the days open
    /// ends them first: the output writes a trade only once every earlier window is answered,
    /// so every day before it is whole, unless a window was given up in it. So at most a day
    /// or two are open at once, however long a window is.
    fn write(&mut self, entry: &ClonedEntry) -> Result<(), DatasetError> {
        if self.blocked_from.is_some_and(|from| entry.date >= from) {
            return Ok(());
        }
        let date = date_of(entry.date).ok_or(DatasetError::OtherDay {
            trade_id: entry.trade_id,
            time: entry.date,
            date: self.next,
        })?;
        if date > self.next {
            let before = day_bounds(date)?.0 - 1;
            let until = self
                .blocked_from
                .map_or(before, |from| before.min(from - 1));
            self.end_days_until(until)?;
        }
        self.writer(date)?.write(entry)?;
        self.trades += 1;
        Ok(())
    }

    /// A window from `from` on was given up: its day and the later ones stay unwritten.
    fn block_from(&mut self, from: i64) {
        let from = self.blocked_from.map_or(from, |b| b.min(from));
        self.blocked_from = Some(from);
        // Days open from the blocked one on will not be whole: their temporary files go.
        self.open
            .retain(|w| day_bounds(w.date()).is_ok_and(|(_, end)| end <= from));
    }

    /// The first second of the first day not written.
    fn unwritten_from(&self) -> Result<i64, DatasetError> {
        Ok(day_bounds(self.next)?.0)
    }

    /// The manifest, as this run leaves it.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

/// The days, locked: by the one thread of the clone, so never contended (the encoder must be
/// `Send`); a panic while held leaves them as they were, which the spill makes good.
pub(crate) fn lock(days: &Mutex<Days>) -> MutexGuard<'_, Days> {
    days.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The output's encoder: each trade to its day's file.
pub struct DaySplitter {
    pub days: Arc<Mutex<Days>>,
}

impl Encoder<Writer> for DaySplitter {
    fn write(&mut self, entry: &ClonedEntry) -> Result<(), FormatError> {
        lock(&self.days)
            .write(entry)
            .map_err(|e| FormatError::Io(std::io::Error::other(e)))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Days are synced whole when they end; until then the spill keeps their trades.
        Ok(())
    }

    fn resume_point(&self) -> Option<u64> {
        None
    }

    fn trades(&self) -> u64 {
        lock(&self.days).trades
    }

    fn finish(self: Box<Self>) -> Result<(Writer, Written), FormatError> {
        // Days not ended are dropped: their temporary files go, their answers stay spilled.
        let trades = {
            let mut days = lock(&self.days);
            days.open.clear();
            days.trades
        };
        Ok((Box::new(std::io::sink()), Written { trades, bytes: 0 }))
    }
}

/// The pair's keeper: its spill, and the days it ends.
pub struct DayKeeper {
    pub days: Arc<Mutex<Days>>,
    pub spill: Spill,
    pub spill_path: PathBuf,
    /// The pair's directory, for the report.
    pub dir: PathBuf,
}

impl Keeper for DayKeeper {
    fn keep(&mut self, window: Window, entries: &[ClonedEntry]) -> anyhow::Result<()> {
        self.spill
            .append(window, entries)
            .with_context(|| format!("spilling an answer to {}", self.spill_path.display()))
    }

    fn checkpoint(&mut self, output: &mut Output<Writer>, _now: bool) -> anyhow::Result<()> {
        let Some(until) = output.checked_until() else {
            return Ok(());
        };
        let mut days = lock(&self.days);
        let until = days.blocked_from.map_or(until, |from| until.min(from - 1));
        days.end_days_until(until)?;
        if std::mem::take(&mut days.ended_since_cut) {
            let from = days.unwritten_from()?;
            self.spill
                .retain_from(from)
                .with_context(|| format!("cutting back {}", self.spill_path.display()))?;
        }
        Ok(())
    }

    fn given_up(&mut self, window: Window) {
        lock(&self.days).block_from(window.from);
    }

    fn close(self: Box<Self>, complete: bool) -> anyhow::Result<Option<Sink>> {
        let days = lock(&self.days);
        // Every whole day is written and no answer of a day left unfinished (the day of an
        // `--until` inside it) is kept: nothing is left to continue.
        if complete && days.next >= days.end && self.spill.bytes() == 0 {
            drop(days);
            self.spill
                .remove()
                .with_context(|| format!("removing {}", self.spill_path.display()))?;
        }
        Ok(Some(Sink::File(self.dir)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::dataset::Partition;

    const DAY: i64 = 1_540_166_400; // 2018-10-22

    fn trade(id: i64, date: i64) -> ClonedEntry {
        ClonedEntry {
            trade_id: id,
            date,
            time_ms: Some(date * 1000),
            rate: "1.5".into(),
            amount: "2".into(),
            total: "3".into(),
            ..Default::default()
        }
    }

    fn days(root: &Path, n: i64) -> Arc<Mutex<Days>> {
        let partition = Partition::new("binance", "BTCUSDT").unwrap();
        Days::new(
            root,
            Manifest::new(&partition),
            Format::Jsonl,
            Columns::BINANCE,
            date_of(DAY).unwrap(),
            date_of(DAY + n * 86_400).unwrap(),
        )
    }

    fn held(days: &Arc<Mutex<Days>>) -> Vec<(String, u64)> {
        lock(days)
            .manifest()
            .days()
            .map(|d| (d.date.to_string(), d.trades))
            .collect()
    }

    #[test]
    fn a_later_days_trade_ends_the_days_before_it_even_without_trades() {
        let root = std::env::temp_dir().join(format!("days-{}-a", std::process::id()));
        let days = days(&root, 3);
        let mut splitter = DaySplitter { days: days.clone() };
        splitter.write(&trade(1, DAY + 5)).unwrap();
        splitter.write(&trade(2, DAY + 86_399)).unwrap();
        assert!(held(&days).is_empty(), "day 0 may still get trades");
        // A trade of day 2: days 0 and 1 (no trades) are whole.
        splitter.write(&trade(3, DAY + 2 * 86_400 + 7)).unwrap();
        assert_eq!(
            held(&days),
            [("2018-10-22".into(), 2), ("2018-10-23".into(), 0)]
        );
        assert_eq!(lock(&days).open.len(), 1, "only day 2 is open");
        // The output checked to the end: day 2 too; the segment ends there.
        assert!(lock(&days).end_days_until(DAY + 3 * 86_400 + 100).unwrap());
        assert_eq!(held(&days).len(), 3);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_window_given_up_leaves_its_day_and_the_later_ones_unwritten() {
        let root = std::env::temp_dir().join(format!("days-{}-b", std::process::id()));
        let days = days(&root, 3);
        let mut splitter = DaySplitter { days: days.clone() };
        splitter.write(&trade(1, DAY + 5)).unwrap();
        // A window of day 1 is given up; the output goes on past it.
        lock(&days).block_from(DAY + 86_400 + 3600);
        splitter.write(&trade(9, DAY + 2 * 86_400 + 7)).unwrap();
        lock(&days).end_days_until(DAY + 86_400 + 3599).unwrap();
        assert_eq!(held(&days), [("2018-10-22".into(), 1)]);
        assert!(
            lock(&days).open.is_empty(),
            "no writer for days that cannot be whole"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}

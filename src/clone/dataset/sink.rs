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

use crate::clone::dataset::{date_of, day_bounds, DatasetError, DayRecord, DayWriter, Manifest};
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
    pub written: Vec<DayRecord>,
    /// Trades handed to the writers.
    trades: u64,
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
            written: Vec::new(),
            trades: 0,
        }))
    }

    fn writer(&mut self, date: Date) -> Result<&mut DayWriter, DatasetError> {
        if self.open.back().is_none_or(|w| w.date() < date) {
            let writer = DayWriter::create(
                &self.root,
                self.manifest.partition(),
                date,
                self.format,
                &self.columns,
            )?;
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
                _ => DayWriter::create(
                    &self.root,
                    self.manifest.partition(),
                    date,
                    self.format,
                    &self.columns,
                )?,
            };
            let record = writer.finish()?;
            log::debug!(
                "{} {date}: {} trades written to {}",
                self.manifest.partition(),
                record.trades,
                record.file
            );
            self.manifest.record(record.clone());
            self.written.push(record);
            self.next = self
                .next
                .tomorrow()
                .map_err(|_| DatasetError::BadDate { date })?;
            ended = true;
        }
        if ended {
            self.manifest.save(&self.root)?;
        }
        Ok(ended)
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
fn lock(days: &Mutex<Days>) -> MutexGuard<'_, Days> {
    days.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The output's encoder: each trade to its day's file.
pub struct DaySplitter {
    pub days: Arc<Mutex<Days>>,
}

impl Encoder<Writer> for DaySplitter {
    fn write(&mut self, entry: &ClonedEntry) -> Result<(), FormatError> {
        let mut days = lock(&self.days);
        let date = date_of(entry.date).ok_or_else(|| {
            FormatError::Io(std::io::Error::other(format!(
                "trade {} at {}: out of the range of dates",
                entry.trade_id, entry.date
            )))
        })?;
        days.writer(date)
            .and_then(|w| w.write(entry))
            .map_err(|e| FormatError::Io(std::io::Error::other(e)))?;
        days.trades += 1;
        Ok(())
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
        if days.end_days_until(until)? {
            let from = days.unwritten_from()?;
            self.spill
                .retain_from(from)
                .with_context(|| format!("cutting back {}", self.spill_path.display()))?;
        }
        Ok(())
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

impl DayKeeper {
    /// The days written by this run.
    pub fn written(&self) -> Vec<DayRecord> {
        lock(&self.days).written.clone()
    }
}

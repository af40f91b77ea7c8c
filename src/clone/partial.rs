//! `FILE.partial`, its journal and its spill: the clone's output file while it grows, continued
//! by a later run of the same command after any stop (kill -9 included), renamed to `FILE` when
//! complete.
//!
//! A checkpoint syncs the partial file, then records in the journal how much of it holds the
//! trades up to which second ([`crate::clone::journal`]); at most one a second, and one at the
//! end. Every answered window goes to the spill as it arrives ([`crate::clone::spill`]). A run
//! that finds a journal of the same clone cuts the partial file back to the last record, takes
//! back the spilled windows after it, and asks only for the rest; one that finds another
//! clone's refuses to start.
//!
//! A format written whole (Parquet) has nothing to continue: no progress is recorded and no
//! answer spilled, and a run after a stop starts the file again.
//!
//! It must never record bytes before they are synced, nor append to a file longer than its
//! journal says.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::clone::format::{self, Columns, Format};
use crate::clone::journal::{journal_path, Identity, Journal, Progress};
use crate::clone::output::Output;
use crate::clone::spill::{spill_path, Spill, Spilled};
use crate::clone::window::Window;
use crate::proto::ClonedEntry;

/// Checkpoints are at least this far apart, but for the last.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The partial output file, synced and journaled.
pub struct PartialFile {
    /// Where the output grows: `FILE.partial`.
    pub path: PathBuf,
    /// The same file, to sync it (the output writes through its own handle).
    sync: File,
    journal: Journal,
    /// Every window answered, until the journal's part of the output holds it.
    spill: Spill,
    /// The last second recorded, and when.
    recorded: Option<i64>,
    last: Instant,
    /// The format can be continued: answers are spilled and progress recorded.
    resumable: bool,
}

/// What the output writes to.
pub type Writer = Box<dyn Write + Send>;

/// An output and the file behind it; when a previous run's output is continued,
/// `resumed_from`, the first second it did not write, and `had`, the windows after it that it
/// answered (in time order, apart).
pub struct Opened {
    pub output: Output<Writer>,
    pub file: PartialFile,
    pub resumed_from: Option<i64>,
    pub had: Vec<Spilled>,
}

/// `FILE` → `FILE.partial`.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Opens the output for `out`: continued if a journal of this very clone says how far it got,
/// new otherwise; `columns` type a Parquet file's.
pub fn open(
    out: &Path,
    identity: &Identity,
    format: Format,
    columns: &Columns,
) -> anyhow::Result<Opened> {
    let path = partial_path(out);
    let journal_at = journal_path(out);
    let previous = if path.exists() {
        Journal::resume(&journal_at, identity, &path)?
    } else {
        None
    };
    let len = std::fs::metadata(&path).map_or(0, |m| m.len());
    if let Some((journal, progress)) = previous.filter(|(_, p)| p.bytes <= len) {
        let mut file = OpenOptions::new()
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // What was written after the last record is written again.
        file.set_len(progress.bytes)
            .and_then(|()| file.seek(SeekFrom::End(0)).map(|_| ()))
            .with_context(|| format!("cutting {} back to its journal", path.display()))?;
        let sync = file.try_clone().context("a second handle on the output")?;
        let spill_at = spill_path(out);
        let (spill, had) = Spill::reopen(&spill_at, progress.written_until)
            .with_context(|| format!("reading {}", spill_at.display()))?;
        log::info!(
            "continuing {}: {} trades written up to {}, {} windows after it answered ({} trades); asking for the rest",
            path.display(),
            progress.check.trades,
            crate::domain::utc::format_utc(progress.written_until),
            had.len(),
            had.iter().map(|h| h.entries.len()).sum::<usize>(),
        );
        let resumed_from = Some(progress.written_until + 1);
        let writer: Writer = Box::new(BufWriter::new(file));
        let encoder =
            format::continuing(format, writer, progress.bytes).context("continuing the output")?;
        let output = Output::resume(encoder, progress.check, progress.written_until);
        let file = PartialFile {
            path,
            sync,
            journal,
            spill,
            recorded: Some(progress.written_until),
            last: Instant::now(),
            resumable: true,
        };
        return Ok(Opened {
            output,
            file,
            resumed_from,
            had,
        });
    }
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let sync = file.try_clone().context("a second handle on the output")?;
    let journal = Journal::start(&journal_at, identity)
        .with_context(|| format!("creating {}", journal_at.display()))?;
    let spill_at = spill_path(out);
    let spill =
        Spill::create(&spill_at).with_context(|| format!("creating {}", spill_at.display()))?;
    let writer: Writer = Box::new(BufWriter::new(file));
    let encoder = format::encoder(format, writer, columns).context("writing the output")?;
    let mut output = Output::new(encoder);
    output.flush().context("writing the output")?;
    let resumable = output.resume_point().is_some();
    let mut file = PartialFile {
        path,
        sync,
        journal,
        spill,
        recorded: None,
        last: Instant::now(),
        resumable,
    };
    match output.resume_point() {
        // Recorded at once (the header, nothing before the range), so that a stop before the
        // first window is written still leaves a journal that the spill's windows continue.
        Some(bytes) => {
            let nothing_yet = Progress {
                written_until: identity.from - 1,
                bytes,
                check: output.check().clone(),
            };
            file.record(&mut output, nothing_yet)?;
        }
        None => log::info!(
            "{} is written whole ({format}): a run after a stop starts it again",
            file.path.display()
        ),
    }
    Ok(Opened {
        output,
        file,
        resumed_from: None,
        had: Vec::new(),
    })
}

impl PartialFile {
    /// Records how far `output` is written, if it got further, at most once a second unless
    /// `now` (the end of the run).
    pub fn checkpoint(&mut self, output: &mut Output<Writer>, now: bool) -> anyhow::Result<()> {
        let Some((until, bytes)) = output.written_until() else {
            return Ok(());
        };
        if self.recorded == Some(until) || (!now && self.last.elapsed() < CHECKPOINT_EVERY) {
            return Ok(());
        }
        let progress = Progress {
            written_until: until,
            bytes,
            check: output.check().clone(),
        };
        self.record(output, progress)?;
        if self.spill.needs_compaction() {
            self.spill
                .compact(output.held())
                .with_context(|| format!("compacting the spill of {}", self.path.display()))?;
        }
        Ok(())
    }

    /// Syncs the output and records `progress`.
    fn record(&mut self, output: &mut Output<Writer>, progress: Progress) -> anyhow::Result<()> {
        output
            .flush()
            .and_then(|()| self.sync.sync_data())
            .and_then(|()| self.journal.record(&progress))
            .with_context(|| format!("saving the progress of {}", self.path.display()))?;
        self.recorded = Some(progress.written_until);
        self.last = Instant::now();
        Ok(())
    }

    /// Spills an answered window, so that a stop before the output holds it does not lose it
    /// (nothing, for a format that cannot be continued: no run would take it back).
    pub fn keep(&mut self, window: Window, entries: &[ClonedEntry]) -> anyhow::Result<()> {
        if !self.resumable {
            return Ok(());
        }
        self.spill
            .append(window, entries)
            .with_context(|| format!("spilling an answer of {}", self.path.display()))
    }

    /// The clone is complete: `FILE.partial` becomes `out`, and the journal and spill go.
    pub fn complete(self, out: &Path) -> anyhow::Result<()> {
        // A format written whole had no checkpoint to sync it: its footer is on disk before it
        // takes the name.
        self.sync
            .sync_data()
            .with_context(|| format!("syncing {}", self.path.display()))?;
        std::fs::rename(&self.path, out)
            .with_context(|| format!("renaming {} to {}", self.path.display(), out.display()))?;
        self.spill.remove().context("removing the clone's spill")?;
        self.journal
            .remove()
            .context("removing the clone's journal")
    }
}

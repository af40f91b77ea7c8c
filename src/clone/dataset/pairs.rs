//! `clone PAIR,PAIR,… --out DIR/`: many pairs into one dataset, in one run, sharing the
//! service's budget. Each pair's manifest says which days of the range it holds; the days it
//! lacks are cloned, a run of consecutive missing days at a time (a *segment*), and each day is
//! written as soon as it is whole ([`crate::clone::dataset::sink`]). The driver interleaves
//! the windows of every open segment ([`crate::clone::driver`]).
//!
//! The same command again takes only what is missing: a day held costs no call, a day a run
//! left unfinished is completed from its spilled answers, and the ids of a segment are checked
//! against the days held on either side of it.
//!
//! It must never open more segments than the driver allows at once (memory holds the open
//! ones, not every pair), nor let one pair's failure stop the others.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use jiff::civil::Date;

use crate::clone::dataset::sink::{lock, DayKeeper, DaySplitter, Days};
use crate::clone::dataset::{atomic, date_of, day_bounds, Manifest, Partition};
use crate::clone::driver::{Next, Pairs};
use crate::clone::format::{Columns, Format};
use crate::clone::output::{Check, Output};
use crate::clone::pair_run::{Opened, PairRun};
use crate::clone::progress::{Counts, Progress, ProgressMode};
use crate::clone::session::Session;
use crate::clone::spill::Spill;
use crate::clone::window::{self, Window};
use crate::clone::Sink;
use crate::config::Settings;
use crate::domain::pair::CurrencyPair;

/// The pair's spill, in its directory (`.`: readers of the directory skip it): the answers
/// of the days not written yet, kept from one run to the next (one segment of a pair is open
/// at a time).
const SPILL: &str = ".spill";

/// What to clone into a dataset.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    pub pairs: Vec<CurrencyPair>,
    /// First second; its UTC day is cloned whole.
    pub from: i64,
    /// End of the range, exclusive; a day it cuts is left unfinished (`--until now`).
    pub until: i64,
    pub root: PathBuf,
    pub format: Format,
    pub progress: ProgressMode,
}

/// What one pair's part of the run did.
#[derive(Debug, Clone, Default)]
pub struct PairOutcome {
    pub pair: String,
    /// Days of the range held before the run.
    pub days_held: u64,
    /// Days written by this run, and their trades.
    pub days_written: u64,
    pub trades: u64,
    /// The upstream calls its answers took.
    pub calls: u64,
    /// Why the pair is not complete (empty: it is).
    pub problems: Vec<String>,
}

/// What a dataset clone did, per pair and in all.
#[derive(Debug, Clone)]
pub struct DatasetReport {
    pub root: PathBuf,
    pub pairs: Vec<PairOutcome>,
    pub interrupted: bool,
    pub elapsed: std::time::Duration,
}

/// The days `[from, until)` of one pair that its manifest lacks, as runs of consecutive days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// First second.
    from: i64,
    /// End, exclusive (a day's end, or `until` inside the last day).
    until: i64,
    first: Date,
    /// The first day not to write: after the last whole day.
    end: Date,
}

/// The segments of `[from, until)` that `manifest` lacks; `from` is at a day's start.
fn segments(manifest: &Manifest, from: i64, until: i64) -> anyhow::Result<Vec<Segment>> {
    let first = date_of(from).context("--from is out of the range of dates")?;
    let last = date_of(until - 1).context("--until is out of the range of dates")?;
    let mut out: Vec<Segment> = Vec::new();
    let mut day = first;
    while day <= last {
        let (start, end) = day_bounds(day)?;
        if !manifest.holds(day) {
            let whole = end <= until;
            let next = day.tomorrow()?;
            match out.last_mut() {
                Some(seg) if seg.until == start => {
                    seg.until = end.min(until);
                    if whole {
                        seg.end = next;
                    }
                }
                _ => out.push(Segment {
                    from: start,
                    until: end.min(until),
                    first: day,
                    end: if whole { next } else { day },
                }),
            }
        }
        day = day.tomorrow()?;
    }
    Ok(out)
}

/// Removes the pair's spill being cut back ([`Spill::retain_from`]) when a run stopped.
fn remove_spill_being_cut(dir: &Path) -> anyhow::Result<()> {
    let new = dir.join(format!("{SPILL}.new"));
    match std::fs::remove_file(&new) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", new.display()))
        }
        _ => Ok(()),
    }
}

/// The pairs of a dataset clone, handed to the driver a segment at a time.
struct DatasetPairs<'s, 'a> {
    session: &'s Session<'a>,
    options: &'s DatasetOptions,
    venue: &'static str,
    columns: Columns,
    /// Pairs not opened yet.
    queue: VecDeque<CurrencyPair>,
    /// Pairs planned, with the segments they have left to open (one open at a time each).
    waiting: VecDeque<(usize, VecDeque<Segment>)>,
    outcomes: Vec<PairOutcome>,
    /// Pairs closed (every segment finished, or given up).
    done: u64,
    /// The pairs with a segment open now, with that segment's days (what it writes, and the
    /// manifest as it leaves it).
    open_segments: Vec<(usize, Arc<Mutex<Days>>)>,
}

impl DatasetPairs<'_, '_> {
    fn partition(&self, pair: &str) -> anyhow::Result<Partition> {
        Ok(Partition::new(self.venue, pair)?)
    }

    /// Removes what a run stopped while writing (killed, crashed) left of `segment`'s days and
    /// of the pair's manifest and spill: their temporary files, which nothing else removes and
    /// readers skip. Nothing of the pair is being written now: one segment is open at a time.
    fn remove_stale(&self, partition: &Partition, segment: Segment) -> anyhow::Result<()> {
        let root = &self.options.root;
        let last = date_of(segment.until - 1).context("--until is out of the range of dates")?;
        let mut targets = vec![partition.manifest_path(root)];
        let mut day = segment.first;
        while day <= last {
            targets.push(partition.day_path(root, day, self.options.format));
            day = day.tomorrow()?;
        }
        for target in targets {
            let removed = atomic::remove_stale(&target)
                .with_context(|| format!("removing the temporary files of {}", target.display()))?;
            if removed > 0 {
                log::info!(
                    "{}: removed {removed} temporary files a stopped run left",
                    target.display()
                );
            }
        }
        remove_spill_being_cut(&partition.dir(root))
    }

    /// A pair whose days are all held: a stopped run may have left a spill being cut back
    /// (`.spill.new`) or a spill whose days were all written since, which nothing would remove
    /// (no segment of the pair opens). A spill holding answers past the range (a later day,
    /// left unfinished by a run with a later `--until`) stays for the run that needs it.
    fn tidy(&self, pair: &str) -> anyhow::Result<()> {
        let dir = self.partition(pair)?.dir(&self.options.root);
        remove_spill_being_cut(&dir)?;
        let path = dir.join(SPILL);
        if !path.exists() {
            return Ok(());
        }
        let (spill, later) = Spill::reopen(&path, self.options.until - 1)
            .with_context(|| format!("reading {}", path.display()))?;
        if later.is_empty() {
            spill
                .remove()
                .with_context(|| format!("removing {}", path.display()))?;
        }
        Ok(())
    }

    /// Opens `segment` of the pair `index`.
    fn open(&mut self, index: usize, segment: Segment) -> anyhow::Result<PairRun> {
        let pair = self.outcomes[index].pair.clone();
        let root = &self.options.root;
        let partition = self.partition(&pair)?;
        let manifest = Manifest::load(root, &partition)?;
        let dir = partition.dir(root);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        self.remove_stale(&partition, segment)?;
        // The ids go on from the day held before the segment, if it is.
        let before = segment.first.yesterday().ok().and_then(|d| manifest.day(d));
        let seed = before.and_then(|d| d.last_trade_id);
        // One spill per pair, whatever day its segment starts on: the days a run wrote move
        // the next run's segment on, and it must still find the answers kept for the rest.
        let spill_path = dir.join(SPILL);
        let (spill, had) = Spill::reopen(&spill_path, segment.from - 1)
            .with_context(|| format!("reading {}", spill_path.display()))?;
        // Answers of a run with a later --until may reach past this one's: asked again.
        let had: Vec<_> = had
            .into_iter()
            .filter(|h| h.window.until < segment.until)
            .collect();
        if !had.is_empty() {
            log::info!(
                "{pair}: continuing {} from {} answers a stopped run kept ({} trades)",
                segment.first,
                had.len(),
                had.iter().map(|h| h.entries.len()).sum::<usize>()
            );
        }
        let days = Days::new(
            root,
            manifest,
            self.options.format,
            self.columns,
            segment.first,
            segment.end,
        );
        let days_of_run = days.clone();
        let encoder = Box::new(DaySplitter { days: days.clone() });
        let output = match seed {
            Some(last) => Output::resume(
                encoder,
                Check {
                    last_id: Some(last),
                    ..Check::default()
                },
                segment.from - 1,
            ),
            None => Output::new(encoder),
        };
        let planner = self
            .session
            .planner(segment.from, segment.until, self.session.lanes)?;
        let opened = Opened {
            output,
            keeper: Some(Box::new(DayKeeper {
                days,
                spill,
                spill_path,
                dir: dir.clone(),
            })),
            resumed_from: None,
            had,
            written_to: Sink::File(dir),
        };
        let range = Window {
            from: segment.from,
            until: segment.until - 1,
        };
        self.open_segments.push((index, days_of_run));
        Ok(
            PairRun::new(&pair, range, planner, opened, self.session.probes())
                .by_ids(self.session.id_block()),
        )
    }
}

impl Pairs for DatasetPairs<'_, '_> {
    fn open_next(&mut self) -> anyhow::Result<Next> {
        loop {
            // A pair's next segment once its last one is finished: one manifest, one writer.
            let ready = self
                .waiting
                .iter()
                .position(|(index, _)| !self.open_segments.iter().any(|(i, _)| i == index));
            if let Some(at) = ready {
                let (index, segments) = &mut self.waiting[at];
                let index = *index;
                let Some(segment) = segments.pop_front() else {
                    self.waiting.remove(at);
                    self.pair_closed(index);
                    continue;
                };
                match self.open(index, segment) {
                    Ok(run) => return Ok(Next::Run(Box::new(run))),
                    Err(e) => {
                        // This pair's trouble (a manifest it cannot read, a disk error):
                        // reported, and the others go on.
                        log::error!("{}: {e:#}", self.outcomes[index].pair);
                        self.outcomes[index].problems.push(format!("{e:#}"));
                        self.waiting.remove(at);
                        self.pair_closed(index);
                        continue;
                    }
                }
            }
            let Some(pair) = self.queue.pop_front() else {
                return Ok(if self.waiting.is_empty() {
                    Next::Done
                } else {
                    Next::NotNow
                });
            };
            let index = self.outcomes.len();
            self.outcomes.push(PairOutcome {
                pair: pair.to_string(),
                ..PairOutcome::default()
            });
            let planned = self.partition(pair.as_str()).and_then(|partition| {
                let manifest = Manifest::load(&self.options.root, &partition)?;
                let segments = segments(&manifest, self.options.from, self.options.until)?;
                let first = date_of(self.options.from).context("--from")?;
                let last = date_of(self.options.until - 1).context("--until")?;
                let held = manifest
                    .days()
                    .filter(|d| d.date >= first && d.date <= last)
                    .count() as u64;
                Ok((held, segments))
            });
            match planned {
                Ok((held, segments)) => {
                    self.outcomes[index].days_held = held;
                    if segments.is_empty() {
                        // Every day held: only what a stopped run left may need tidying.
                        if let Err(e) = self.tidy(pair.as_str()) {
                            log::warn!("{pair}: {e:#}");
                        }
                    }
                    self.waiting.push_back((index, segments.into()));
                }
                Err(e) => {
                    log::error!("{pair}: {e:#}");
                    self.outcomes[index].problems.push(format!("{e:#}"));
                    self.pair_closed(index);
                }
            }
        }
    }

    fn finished(&mut self, run: PairRun, interrupted: bool) -> anyhow::Result<()> {
        let index = self.outcomes.iter().position(|o| *o.pair == *run.pair);
        let index = index.expect("every run is of an opened pair");
        let at = self.open_segments.iter().position(|(i, _)| *i == index);
        let (_, days) = self
            .open_segments
            .swap_remove(at.expect("a run finished is an open segment"));
        let report = run.finish(interrupted, Default::default())?;
        let outcome = &mut self.outcomes[index];
        outcome.trades += report.check.trades;
        outcome.calls += report.counts.calls;
        // A dataset is taken up again by the same command, not by --from/--until.
        outcome
            .problems
            .extend(report.incomplete_reasons("the same command asks for them again"));
        // Why they were given up (the exchange's message): the summary's only word on it.
        let mut given_up: Vec<&str> = Vec::new();
        for (_, why) in &report.failed {
            if !given_up.contains(&why.as_str()) {
                given_up.push(why);
            }
        }
        outcome
            .problems
            .extend(given_up.iter().map(|why| format!("given up: {why}")));
        let days = lock(&days);
        outcome.days_written += days.written;
        // The day held after the segment must go on from its last id.
        if let (Some(last), Some(next)) = (
            report.check.last_id,
            date_of(report.range.until + 1).and_then(|d| days.manifest().day(d)),
        ) {
            if let Some(first) = next.first_trade_id.filter(|&f| f != last + 1) {
                outcome.problems.push(format!(
                    "{} held starts at tradeID {first}, but the day before it ends at {last}: {} ids missing or repeated; remove {} from the manifest to clone it again",
                    next.date,
                    (first - last - 1).abs(),
                    next.date
                ));
            }
        }
        // Its last segment: the pair is done.
        if let Some(at) = self
            .waiting
            .iter()
            .position(|(i, segments)| *i == index && segments.is_empty())
        {
            self.waiting.remove(at);
            self.pair_closed(index);
        }
        Ok(())
    }

    fn tally(&self) -> Option<(u64, u64)> {
        Some((
            self.done,
            self.done + self.queue.len() as u64 + self.open_pairs(),
        ))
    }
}

impl DatasetPairs<'_, '_> {
    fn pair_closed(&mut self, index: usize) {
        let outcome = &self.outcomes[index];
        if outcome.problems.is_empty() {
            log::info!(
                "{}: done, {} days written ({} trades, {} calls), {} held before",
                outcome.pair,
                outcome.days_written,
                outcome.trades,
                outcome.calls,
                outcome.days_held
            );
        } else {
            log::warn!(
                "{}: not complete: {}",
                outcome.pair,
                outcome.problems.join("; ")
            );
        }
        self.done += 1;
    }

    /// Pairs opened and not closed.
    fn open_pairs(&self) -> u64 {
        let mut open: Vec<usize> = self.open_segments.iter().map(|(i, _)| *i).collect();
        open.extend(self.waiting.iter().map(|(i, _)| *i));
        open.sort_unstable();
        open.dedup();
        open.len() as u64
    }
}

/// [`run`] with the service started in this process (`n_workers` workers), then drained.
pub async fn run_with_workers(
    settings: &Settings,
    options: &DatasetOptions,
    n_workers: usize,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<DatasetReport> {
    crate::clone::with_workers(settings, n_workers, async |settings| {
        run(settings, options, stop).await
    })
    .await
}

/// Clones `options.pairs` into the dataset at `options.root`, until every pair's missing days
/// are done or `stop` resolves.
pub async fn run(
    settings: &Settings,
    options: &DatasetOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<DatasetReport> {
    let started = std::time::Instant::now();
    window::check_range(options.from, options.until)?;
    let session = Session::connect(settings).await?;
    let mut options = options.clone();
    // A day's file is the whole day: the first day is cloned from its start.
    options.from = options.from - options.from.rem_euclid(86_400);
    log::info!(
        "cloning {} pairs into {} ({}), {} windows at a time; run id {}",
        options.pairs.len(),
        options.root.display(),
        options.format,
        session.lanes,
        session.asker.run_id
    );
    let mut pairs = DatasetPairs {
        session: &session,
        options: &options,
        venue: settings.upstream.venue.as_str(),
        columns: Columns::of(settings.upstream.venue),
        queue: options.pairs.iter().cloned().collect(),
        waiting: VecDeque::new(),
        outcomes: Vec::new(),
        done: 0,
        open_segments: Vec::new(),
    };
    let mut progress = Progress::new(options.progress);
    // As many pairs open as windows may be in flight: each open pair has work, and memory
    // holds no more than that many pairs' windows.
    let interrupted = crate::clone::driver::drive(
        &session.asker,
        session.lanes,
        session.lanes,
        &mut pairs,
        &mut progress,
        stop,
    )
    .await?;
    let outcomes = std::mem::take(&mut pairs.outcomes);
    Ok(DatasetReport {
        root: options.root.clone(),
        pairs: outcomes,
        interrupted,
        elapsed: started.elapsed(),
    })
}

impl DatasetReport {
    /// Every pair complete and nothing interrupted.
    pub fn is_complete(&self) -> bool {
        !self.interrupted && self.pairs.iter().all(|p| p.problems.is_empty())
    }

    /// `Ok` if complete; else which pairs are not, ready for the same command again.
    pub fn ensure_complete(&self) -> anyhow::Result<()> {
        if self.is_complete() {
            return Ok(());
        }
        let incomplete: Vec<&str> = self
            .pairs
            .iter()
            .filter(|p| !p.problems.is_empty())
            .map(|p| p.pair.as_str())
            .collect();
        anyhow::bail!(
            "the dataset is incomplete{}{}; run the same command again to take what is missing",
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            },
            if incomplete.is_empty() {
                String::new()
            } else {
                format!(": {}", incomplete.join(", "))
            }
        )
    }

    /// Counts of every pair together.
    pub fn totals(&self) -> Counts {
        let mut c = Counts::default();
        for p in &self.pairs {
            c.trades += p.trades;
            c.calls += p.calls;
        }
        c
    }
}

impl std::fmt::Display for DatasetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "dataset {}", self.root.display())?;
        let width = self.pairs.iter().map(|p| p.pair.len()).max().unwrap_or(4);
        for p in &self.pairs {
            let state = if p.problems.is_empty() {
                "complete".to_string()
            } else {
                format!("INCOMPLETE: {}", p.problems.join("; "))
            };
            writeln!(
                f,
                "  {:width$}  {:>4} days written, {:>4} held before, {:>10} trades, {:>6} calls  {state}",
                p.pair, p.days_written, p.days_held, p.trades, p.calls
            )?;
        }
        let (days, trades, calls) = self.pairs.iter().fold((0, 0, 0), |(d, t, c), p| {
            (d + p.days_written, t + p.trades, c + p.calls)
        });
        let complete = self.pairs.iter().filter(|p| p.problems.is_empty()).count();
        writeln!(
            f,
            "  total: {} pairs ({complete} complete), {days} days written, {trades} trades, {calls} calls",
            self.pairs.len()
        )?;
        if self.interrupted {
            writeln!(f, "  INTERRUPTED: the same command continues")?;
        }
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "  elapsed: {secs:.1} s, {:.2} calls/s",
            if secs > 0.0 { calls as f64 / secs } else { 0.0 }
        )
    }
}

/// Pairs from a comma-separated list and a file of one per line (`#` starts a comment),
/// in the order given, each once.
pub fn read_pairs(list: Option<&str>, file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let mut pairs: Vec<String> = Vec::new();
    if let Some(list) = list {
        pairs.extend(
            list.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from),
        );
    }
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--pairs-file {}", file.display()))?;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            pairs.extend(
                line.split([',', ' ', '\t'])
                    .filter(|p| !p.is_empty())
                    .map(String::from),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    pairs.retain(|p| seen.insert(p.clone()));
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 1_540_166_400; // 2018-10-22

    fn manifest(held: &[i64]) -> Manifest {
        let partition = Partition::new("binance", "BTCUSDT").unwrap();
        let mut m = Manifest::new(&partition);
        for &d in held {
            m.record(crate::clone::dataset::DayRecord {
                date: date_of(DAY + d * 86_400).unwrap(),
                file: String::new(),
                trades: 0,
                first_trade_id: None,
                last_trade_id: None,
                sha256: String::new(),
                bytes: 0,
            });
        }
        m
    }

    fn days(seg: &Segment) -> (i64, i64, String, String) {
        (
            (seg.from - DAY) / 86_400,
            seg.until - DAY,
            seg.first.to_string(),
            seg.end.to_string(),
        )
    }

    #[test]
    fn missing_days_are_cut_into_runs_and_a_cut_day_is_left_unfinished() {
        let week = segments(&manifest(&[]), DAY, DAY + 7 * 86_400).unwrap();
        assert_eq!(week.len(), 1);
        assert_eq!(
            days(&week[0]),
            (0, 7 * 86_400, "2018-10-22".into(), "2018-10-29".into())
        );
        // Days 2 and 3 held: two runs.
        let gaps = segments(&manifest(&[2, 3]), DAY, DAY + 7 * 86_400).unwrap();
        assert_eq!(gaps.len(), 2);
        assert_eq!(days(&gaps[0]).3, "2018-10-24");
        assert_eq!(days(&gaps[1]).0, 4);
        // --until in the middle of day 7: it is cloned, not written.
        let now = segments(
            &manifest(&[0, 1, 2, 3, 4, 5, 6]),
            DAY,
            DAY + 7 * 86_400 + 3600,
        )
        .unwrap();
        assert_eq!(
            days(&now[0]),
            (
                7,
                7 * 86_400 + 3600,
                "2018-10-29".into(),
                "2018-10-29".into()
            )
        );
        assert!(segments(&manifest(&[0, 1]), DAY, DAY + 2 * 86_400)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn pairs_come_from_the_list_and_the_file_once_each() {
        let dir = std::env::temp_dir().join(format!("pairs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pairs.txt");
        std::fs::write(&file, "# mine\nETHUSDT\nBNBUSDT, BTCUSDT  # again\n\n").unwrap();
        assert_eq!(
            read_pairs(Some("BTCUSDT, ETHUSDT,"), Some(&file)).unwrap(),
            ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! One pair's range within a clone run: its plan, its output and the check, what a stopped run
//! left of it (windows read back from the spill), and what each answer does to them.
//!
//! The windows of many `PairRun`s may be in flight at once ([`crate::clone::driver`]); each
//! run keeps to its own pair, and writes its trades in time order, each once, whatever order
//! its answers come in. It must never hand out a window that overlaps one already planned, nor
//! call itself complete with a gap (the output's check decides).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use crate::clone::asker::{Answer, Asked, Request};
use crate::clone::id_blocks::{End, IdBlocks, Ids, Stitched};
use crate::clone::output::Output;
use crate::clone::partial::{PartialFile, Writer};
use crate::clone::progress::Counts;
use crate::clone::report::CloneReport;
use crate::clone::result_waiter::WaiterStats;
use crate::clone::spill::Spilled;
use crate::clone::window::{Planned, Planner, Window};
use crate::clone::Sink;
use crate::proto::ClonedEntry;

/// Pages the rest of a window must hold, at the density seen, to be split when requests are
/// spare: each half ends in a page that is not full, so a small rest is not worth it.
const SPLIT_REST_PAGES: f64 = 16.0;

/// Blocks of ids the rest of the first window must hold, at the density its page showed, to
/// be asked for by ids: a smaller rest is a window or two by time.
const BY_IDS_BLOCKS: f64 = 3.0;

/// One pair's range, being cloned.
pub struct PairRun {
    /// As the venue spells it, shared with the requests in flight.
    pub pair: Rc<str>,
    /// The whole range, inclusive, as asked for.
    range: Window,
    planner: Planner,
    output: Output<Writer>,
    /// What keeps the answers and the progress on disk (a file's journal and spill, a
    /// dataset's days), if anything does.
    keeper: Option<Box<dyn Keeper>>,
    /// Windows a stopped run answered and spilled, by first second: handed out by the planner
    /// in their place, never asked for.
    had: BTreeMap<i64, Vec<ClonedEntry>>,
    pub counts: Counts,
    /// Windows given up, with why.
    failed: Vec<(Window, String)>,
    /// Windows asked for and not answered yet.
    pub in_flight: usize,
    /// The first window, asked whole while nothing is known of the pair's density (on a venue
    /// whose pages come oldest first): a quiet pair's range is then one call.
    probe: Option<Window>,
    /// What the probe's first page left, which the windows planned next tile.
    probe_rest: Option<Window>,
    /// Ids a request by ids asks for, on a venue that pages by consecutive ids; `None`: asked
    /// by time only.
    id_block: Option<i64>,
    /// The rest of the first window, asked for by ids.
    blocks: Option<IdBlocks>,
    /// Where the output grows (a file's `.partial`, a dataset), for the report.
    written_to: Sink,
    started: Instant,
}

/// What keeps a pair's answers and progress on disk, so that the same command continues after
/// any stop: a file's journal and spill ([`FileKeeper`]), a dataset's days
/// ([`crate::clone::dataset::sink`]).
pub trait Keeper {
    /// Keeps an answered window until the output's kept part holds it.
    fn keep(&mut self, window: Window, entries: &[ClonedEntry]) -> anyhow::Result<()>;

    /// Records how far the output is written (at most once a second unless `now`).
    fn checkpoint(&mut self, output: &mut Output<Writer>, now: bool) -> anyhow::Result<()>;

    /// `window` is given up (before the output hears of it).
    fn given_up(&mut self, _window: Window) {}

    /// The run ended, `complete` if the range is whole; where the output is now, if that
    /// changed (a file's own name).
    fn close(self: Box<Self>, complete: bool) -> anyhow::Result<Option<Sink>>;
}

/// A file's keeper: `FILE.partial`, its journal and spill, renamed `FILE` when complete.
pub struct FileKeeper {
    pub partial: PartialFile,
    pub out: PathBuf,
}

impl Keeper for FileKeeper {
    fn keep(&mut self, window: Window, entries: &[ClonedEntry]) -> anyhow::Result<()> {
        self.partial.keep(window, entries)
    }

    fn checkpoint(&mut self, output: &mut Output<Writer>, now: bool) -> anyhow::Result<()> {
        self.partial.checkpoint(output, now)
    }

    fn close(self: Box<Self>, complete: bool) -> anyhow::Result<Option<Sink>> {
        if !complete {
            return Ok(None);
        }
        self.partial.complete(&self.out)?;
        Ok(Some(Sink::File(self.out)))
    }
}

/// How a pair's output is kept: where it goes and what a stopped run left.
pub struct Opened {
    pub output: Output<Writer>,
    pub keeper: Option<Box<dyn Keeper>>,
    /// The first second a stopped run did not write, if it wrote any.
    pub resumed_from: Option<i64>,
    /// Windows after it that the stopped run answered.
    pub had: Vec<Spilled>,
    /// Where the output grows: a file's `.partial`, a dataset, stdout, nowhere.
    pub written_to: Sink,
}

impl PairRun {
    /// A run of `pair` over `range` (inclusive) planned by `planner`, writing to `opened`.
    /// `probe`: ask the first window whole ([`Planner::probe`]).
    pub fn new(
        pair: &str,
        range: Window,
        mut planner: Planner,
        opened: Opened,
        probe: bool,
    ) -> PairRun {
        if let Some(from) = opened.resumed_from {
            planner.skip_to(from);
        }
        planner.have(opened.had.iter().map(|h| h.window));
        if probe {
            planner.probe();
        }
        PairRun {
            pair: Rc::from(pair),
            range,
            planner,
            output: opened.output,
            keeper: opened.keeper,
            had: opened
                .had
                .into_iter()
                .map(|h| (h.window.from, h.entries))
                .collect(),
            counts: Counts::default(),
            failed: Vec::new(),
            in_flight: 0,
            probe: None,
            probe_rest: None,
            id_block: None,
            blocks: None,
            written_to: opened.written_to,
            started: Instant::now(),
        }
    }

    /// Asks a busy first window's rest by ids, `block` at a time ([`IdBlocks`]), if the venue
    /// pages by consecutive ids (`block` is `Some`).
    pub fn by_ids(mut self, block: Option<i64>) -> Self {
        self.id_block = block;
        self
    }

    /// Whether the blocks still ask or await anything.
    fn blocks_open(&self) -> bool {
        self.blocks.as_ref().is_some_and(|b| !b.finished)
    }

    /// Whether a window may be asked for now: the plan has more, and either nothing of this
    /// pair is in flight or its density is known (until then, every blind guess wastes a page).
    pub fn wants(&self) -> bool {
        self.blocks.as_ref().is_some_and(IdBlocks::wants)
            || (self.planner.rest().is_some()
                && (self.in_flight == 0 || self.planner.can_plan_ahead()))
    }

    /// Nothing in flight and nothing left to plan.
    pub fn is_done(&self) -> bool {
        self.in_flight == 0 && self.planner.rest().is_none() && !self.blocks_open()
    }

    /// The next window to ask for, in time order; windows a stopped run answered are written
    /// in their place on the way. `None` once the plan is done.
    pub fn next_ask(&mut self) -> anyhow::Result<Option<Request>> {
        if let Some(blocks) = &mut self.blocks {
            let window = blocks.asked();
            if let Some(ids) = blocks.next_request() {
                self.counts.windows_total += 1;
                self.in_flight += 1;
                return Ok(Some(Request {
                    window,
                    ids: Some(ids),
                }));
            }
        }
        loop {
            match self.planner.next_part() {
                None => return Ok(None),
                Some(Planned::Had(window)) => {
                    let entries = self
                        .had
                        .remove(&window.from)
                        .expect("the planner hands out only the windows it was given");
                    self.counts.windows_total += 1;
                    self.counts.windows_done += 1;
                    self.counts.trades += entries.len() as u64;
                    self.planner.learn(entries.len(), window.secs());
                    self.output.expect(window);
                    self.output.complete(window, entries)?;
                }
                Some(Planned::Ask(window)) => {
                    self.counts.windows_total += 1;
                    if let Some(ids) = self.continue_by_ids(window) {
                        self.in_flight += 1;
                        return Ok(Some(ids));
                    }
                    match self.probe_rest.take() {
                        // The rest of the probe, already awaited, now cut as planned.
                        Some(rest) if rest == window => {}
                        Some(rest) => {
                            anyhow::ensure!(
                                window.from == rest.from && window.until < rest.until,
                                "{}: planned {window} inside the rest {rest} of the first window, and it is not",
                                self.pair
                            );
                            let after = Window {
                                from: window.until + 1,
                                until: rest.until,
                            };
                            self.output.split(rest, (window, after))?;
                            self.probe_rest = Some(after);
                        }
                        None => self.output.expect(window),
                    }
                    if self.planner.planned == 1 && self.planner.is_probing() {
                        self.probe = Some(window);
                    }
                    self.in_flight += 1;
                    return Ok(Some(window.into()));
                }
            }
        }
    }

    /// What `done` says of one of this pair's windows; the windows it leaves to ask for (the
    /// rest of a kept page, or halves). `spare`: requests could be in flight that are not (the
    /// end of a run, nothing left to plan): a rest that still holds many pages is asked for as
    /// two halves at once, so that the last window does not leave the budget idle.
    pub fn answered(&mut self, done: Asked, spare: bool) -> anyhow::Result<Vec<Request>> {
        self.in_flight -= 1;
        let c = &mut self.counts;
        c.answers += u64::from(done.answers);
        c.calls += u64::from(done.calls);
        c.retries += u64::from(done.republished);
        if let Some(ids) = done.ids {
            return self.answered_ids(ids, done.answer);
        }
        let mut next = Vec::new();
        match done.answer {
            Answer::Complete(entries) => {
                c.windows_done += 1;
                c.trades += entries.len() as u64;
                self.planner.learn(entries.len(), done.window.secs());
                if let Some(keeper) = &mut self.keeper {
                    keeper.keep(done.window, &entries)?;
                }
                self.output.complete(done.window, entries)?;
            }
            Answer::TooBig {
                reason,
                kept: Some((covered, entries)),
            } => {
                let (parts, rest) = done.window.without(covered);
                let newest_kept = entries.last().map(|e| (e.trade_id, e.date));
                let kept_trades = entries.len();
                log::debug!(
                    "{} {} is too big ({reason}); kept {} trades of {covered}, asking for {rest}",
                    self.pair,
                    done.window,
                    entries.len()
                );
                c.pages_kept += 1;
                c.windows_total += 1;
                c.windows_done += 1;
                c.trades += entries.len() as u64;
                self.planner.learn(entries.len(), covered.secs());
                if let Some(keeper) = &mut self.keeper {
                    keeper.keep(covered, &entries)?;
                }
                self.output.split(done.window, parts)?;
                self.output.complete(covered, entries)?;
                // The probe's rest goes back to the planner, which cuts it to the density the
                // first page showed; any other rest is asked for page by page.
                let first_rest =
                    self.probe.take() == Some(done.window) && rest.from == covered.until + 1;
                let by_ids =
                    first_rest && self.start_by_ids(rest, newest_kept, kept_trades, covered.secs());
                let probed =
                    first_rest && !by_ids && self.planner.rewind_to(rest.from, done.window.until);
                let busy_rest = self
                    .planner
                    .pages_in(rest.secs())
                    .is_some_and(|pages| pages >= SPLIT_REST_PAGES);
                if by_ids {
                    log::debug!("{} {rest}: asked for by trade ids", self.pair);
                } else if probed {
                    self.probe_rest = Some(rest);
                } else if let Some(halves) = rest.halve().filter(|_| spare && busy_rest) {
                    log::debug!("{} {rest}: asked for as two halves at once", self.pair);
                    self.output.split(rest, halves)?;
                    self.counts.windows_total += 1;
                    self.in_flight += 2;
                    next.extend([Request::from(halves.0), Request::from(halves.1)]);
                } else {
                    self.in_flight += 1;
                    next.push(rest.into());
                }
            }
            Answer::TooBig { reason, kept: None } => match done.window.halve() {
                Some(halves) => {
                    log::debug!(
                        "{} {} is too big ({reason}); asking for its halves",
                        self.pair,
                        done.window
                    );
                    c.splits += 1;
                    c.windows_total += 1;
                    self.output.split(done.window, halves)?;
                    self.in_flight += 2;
                    next.extend([Request::from(halves.0), Request::from(halves.1)]);
                }
                None => {
                    let why = format!(
                        "one second holds more trades than one call returns ({reason}); raise upstream.page_limit if the API allows"
                    );
                    log::error!("{} {}: {why}", self.pair, done.window);
                    self.give_up(done.window, why)?;
                }
            },
            Answer::Failed(why) => {
                log::error!("{} {} given up: {why}", self.pair, done.window);
                self.give_up(done.window, why)?;
            }
            Answer::Ids { .. } => anyhow::bail!(
                "{} {}: an answer by ids to a request by time",
                self.pair,
                done.window
            ),
        }
        if let Some(keeper) = &mut self.keeper {
            keeper.checkpoint(&mut self.output, false)?;
        }
        Ok(next)
    }

    /// The first window's rest, `rest`, after a kept page of `kept_trades` over `kept_secs`
    /// whose newest trade is `newest_kept` (id, second), goes to [`IdBlocks`] if the venue
    /// pages by consecutive ids and the rest is busy enough. Whether it did. Not while windows
    /// a stopped run answered are still to be handed out (a range continuing one goes by ids
    /// from its first window instead, [`PairRun::continue_by_ids`]).
    fn start_by_ids(
        &mut self,
        rest: Window,
        newest_kept: Option<(i64, i64)>,
        kept_trades: usize,
        kept_secs: i64,
    ) -> bool {
        let (Some(block), Some(newest)) = (self.id_block, newest_kept) else {
            return false;
        };
        let per_sec = kept_trades as f64 / kept_secs.max(1) as f64;
        if !self.had.is_empty() || per_sec * (rest.secs() as f64) < BY_IDS_BLOCKS * block as f64 {
            return false;
        }
        self.blocks = Some(IdBlocks::new(
            rest,
            newest.0 + 1,
            block,
            newest,
            Some(per_sec),
        ));
        self.planner.end_probe();
        true
    }

    /// The first window asked for, `window`, right after trades written already (by a stopped
    /// run, or days held before it), is asked for by ids from the next id, grown to the
    /// longest window the plan allows, if the venue pages by consecutive ids: no first page by
    /// time, whose newest second the blocks would ask again, and no windows by time, each
    /// ending in a page that is not full.
    fn continue_by_ids(&mut self, window: Window) -> Option<Request> {
        let block = self.id_block?;
        let first = self.planner.planned == 1 && self.probe_rest.is_none();
        let last = self.output.check().last_id.filter(|_| first)?;
        self.planner.end_probe();
        let window = self.planner.grow(window);
        self.output.expect(window);
        let seen = (last, window.from - 1);
        let mut blocks = IdBlocks::new(window, last + 1, block, seen, self.planner.per_sec());
        let ids = blocks.next_request();
        self.blocks = Some(blocks);
        log::debug!(
            "{} {window}: asked for by trade ids from {}",
            self.pair,
            last + 1
        );
        Some(Request { window, ids })
    }

    /// An answer to a request by ids: what the blocks make whole is written, in order; a kept
    /// part's rest is asked for by time. A block that failed (after its tries), or an answer
    /// that contradicts the others, ends the blocks: what they still await is asked for by
    /// time, as one window, which fails only if that fails too.
    fn answered_ids(&mut self, ids: Ids, answer: Answer) -> anyhow::Result<Vec<Request>> {
        let Some(blocks) = &mut self.blocks else {
            anyhow::bail!("{}: an answer by ids, and none was asked", self.pair);
        };
        self.counts.windows_done += 1;
        // Past the window's end (asked for before it was known): nothing to do.
        if blocks.finished {
            return Ok(Vec::new());
        }
        let before = blocks.pending();
        let stitched = match answer {
            Answer::Ids { entries, end } => blocks.answered(ids, entries, end),
            Answer::TooBig {
                kept: Some((covered, entries)),
                ..
            } if ids.until.is_none() => blocks.answered(ids, entries, End::Kept(covered.until)),
            Answer::TooBig { reason, .. } => Err(format!("too big, nothing kept: {reason}")),
            Answer::Failed(why) => Err(why),
            Answer::Complete(_) => Err("answered by time".to_string()),
        };
        let (stitched, failed) = match stitched {
            Ok(mut stitched) => {
                let failed = stitched.failed.take();
                (stitched, failed)
            }
            Err(why) => (Stitched::default(), Some(why)),
        };
        let mut next = Vec::new();
        let mut awaited = before;
        if let Some(rest) = stitched.cut {
            let head = Window {
                from: awaited.from,
                until: rest.from - 1,
            };
            self.output.split(awaited, (head, rest))?;
            awaited = head;
            self.counts.windows_total += 1;
            self.in_flight += 1;
            next.push(rest.into());
        }
        for (part, entries) in stitched.written {
            self.counts.trades += entries.len() as u64;
            self.planner.learn(entries.len(), part.secs());
            if let Some(keeper) = &mut self.keeper {
                keeper.keep(part, &entries)?;
            }
            if part.until < awaited.until {
                let after = Window {
                    from: part.until + 1,
                    until: awaited.until,
                };
                self.output.split(awaited, (part, after))?;
                awaited = after;
            }
            self.output.complete(part, entries)?;
        }
        if let (Some(why), Some(blocks)) = (failed, &mut self.blocks) {
            blocks.give_up();
            let rest = blocks.pending();
            log::warn!(
                "{} {rest}: asked for by trade ids, the answer for ids from {} failed ({why}); asking for the rest by time",
                self.pair,
                ids.from
            );
            self.counts.windows_total += 1;
            self.in_flight += 1;
            next.push(rest.into());
        }
        if let Some(keeper) = &mut self.keeper {
            keeper.checkpoint(&mut self.output, false)?;
        }
        Ok(next)
    }

    /// `window` will not be answered: the keeper hears first (a dataset blocks its day), then
    /// the output, which writes later windows past it.
    fn give_up(&mut self, window: Window, why: String) -> anyhow::Result<()> {
        self.counts.windows_done += 1;
        if let Some(keeper) = &mut self.keeper {
            keeper.given_up(window);
        }
        self.output.fail(window)?;
        self.failed.push((window, why));
        Ok(())
    }

    /// Windows still awaited by the output.
    pub fn pending(&self) -> usize {
        self.output.pending()
    }

    /// Writes what is answered, records where a later run continues, and reports; the file
    /// gets its name if the range is complete.
    pub fn finish(mut self, interrupted: bool, waiter: WaiterStats) -> anyhow::Result<CloneReport> {
        if let Some(keeper) = &mut self.keeper {
            keeper.checkpoint(&mut self.output, true)?;
        }
        // What was not planned yet (an interrupted clone) is missing from the output too; the
        // probe's rest is awaited already and stays pending, counted as skipped.
        match (self.probe_rest.take(), self.planner.rest()) {
            (Some(rest), Some(unplanned)) if unplanned.until > rest.until => {
                self.output.expect(Window {
                    from: rest.until + 1,
                    until: unplanned.until,
                })
            }
            (Some(_), _) | (None, None) => {}
            (None, Some(unplanned)) => self.output.expect(unplanned),
        }
        let (writer, check) = self.output.finish()?;
        drop(writer);
        self.failed.sort();
        let mut report = CloneReport {
            pair: self.pair.to_string(),
            range: self.range,
            windows_planned: self.planner.planned,
            counts: self.counts,
            failed: self.failed,
            interrupted,
            check,
            waiter,
            written_to: self.written_to,
            elapsed: self.started.elapsed(),
        };
        if let Some(keeper) = self.keeper {
            if let Some(now) = keeper.close(report.is_complete())? {
                report.written_to = now;
            }
        }
        Ok(report)
    }
}

//! The clone's loop: the windows of one or many pairs ([`PairRun`]) asked for within one
//! number of requests in flight (`lanes`), so that the service's budget is used whole until
//! the last pair ends.
//!
//! Pairs are opened as room frees up, at most `max_active` at once, and each is finished (its
//! output written, its report made) as soon as it has nothing left: memory holds the windows in
//! flight and the pairs open, never every pair of the run. A window is asked of the pair after
//! the last one served that wants one (round robin), so a busy pair does not starve the quiet
//! ones, nor they it.
//!
//! It must never ask for more than `lanes` windows at once, nor leave a pair's answer unread
//! when it stops: what is answered is written, the rest reported unanswered.

use std::future::Future;

use futures_util::future::LocalBoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::clone::asker::{Asked, Asker};
use crate::clone::pair_run::PairRun;
use crate::clone::progress::{Counts, Progress};

/// What [`Pairs::open_next`] has.
pub enum Next {
    /// A pair's range to clone, opened (its output, what a stopped run left).
    Run(Box<PairRun>),
    /// Nothing until a pair open now finishes (the next range is of an open pair).
    NotNow,
    /// Every pair is opened.
    Done,
}

/// Where the driver gets pairs and leaves them.
pub trait Pairs {
    /// The next pair to clone. An error ends the run.
    fn open_next(&mut self) -> anyhow::Result<Next>;

    /// A pair with nothing left (or, `interrupted`, the run stopped): finishes it.
    fn finished(&mut self, run: PairRun, interrupted: bool) -> anyhow::Result<()>;

    /// Pairs done, and in all, for the progress bar (`None` for a run of one pair).
    fn tally(&self) -> Option<(u64, u64)>;
}

/// Runs every pair `pairs` opens, `lanes` windows at a time, until all are finished or `stop`
/// resolves. Returns whether it was stopped.
pub async fn drive(
    asker: &Asker<'_>,
    lanes: usize,
    max_active: usize,
    pairs: &mut dyn Pairs,
    progress: &mut Progress,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<bool> {
    let lanes = lanes.max(1);
    let max_active = max_active.max(1);
    let mut active: Vec<Option<PairRun>> = Vec::new();
    let mut exhausted = false;
    // The pairs asked to wait for one open now to finish: asked again once one does.
    let mut waiting = false;
    // The slot served last: the next window comes from the one after it.
    let mut turn = 0;
    // Counts of the pairs finished, for the progress line.
    let mut finished = Counts::default();
    let mut asked: FuturesUnordered<LocalBoxFuture<'_, (usize, anyhow::Result<Asked>)>> =
        FuturesUnordered::new();
    let mut stop = std::pin::pin!(stop);
    let mut interrupted = false;
    loop {
        // Fill the lanes: a window of the next pair that wants one, opening pairs while none
        // does and there is room.
        while asked.len() < lanes {
            let slots = active.len();
            let wanting = (0..slots)
                .map(|i| (turn + 1 + i) % slots.max(1))
                .find(|&i| active[i].as_ref().is_some_and(PairRun::wants));
            let slot = match wanting {
                Some(slot) => slot,
                None if !exhausted && !waiting && active.iter().flatten().count() < max_active => {
                    match pairs.open_next()? {
                        Next::Run(run) => {
                            let run = *run;
                            match active.iter().position(Option::is_none) {
                                Some(free) => active[free] = Some(run),
                                None => active.push(Some(run)),
                            }
                            continue;
                        }
                        Next::NotNow => {
                            waiting = true;
                            continue;
                        }
                        Next::Done => {
                            exhausted = true;
                            continue;
                        }
                    }
                }
                None => break,
            };
            turn = slot;
            let run = active[slot].as_mut().expect("found above");
            // None: only windows had were left, and it may be done now.
            if let Some(request) = run.next_ask()? {
                let pair = run.pair.clone();
                asked.push(Box::pin(
                    async move { (slot, asker.ask(pair, request).await) },
                ));
            }
            if finish_done(&mut active, slot, pairs, &mut finished)? {
                waiting = false;
            }
        }
        if asked.is_empty() && exhausted && active.iter().all(Option::is_none) {
            break;
        }
        if asked.is_empty() {
            // Nothing in flight, nothing wants a window, yet pairs are open: each is done.
            for slot in 0..active.len() {
                finish_done(&mut active, slot, pairs, &mut finished)?;
            }
            waiting = false;
            if exhausted && active.iter().all(Option::is_none) {
                break;
            }
            if active.iter().flatten().count() >= max_active || exhausted {
                anyhow::bail!("clone driver: open pairs want no window and none is in flight");
            }
            continue;
        }
        let (slot, done) = tokio::select! {
            done = asked.next() => done.expect("not empty"),
            () = &mut stop => {
                log::warn!(
                    "interrupted: writing what is answered, {} windows are not",
                    active.iter().flatten().map(PairRun::pending).sum::<usize>()
                );
                interrupted = true;
                break;
            }
        };
        // Lanes that will stay empty: nothing left to plan or open.
        let spare =
            exhausted && asked.len() + 1 < lanes && !active.iter().flatten().any(PairRun::wants);
        let run = active[slot]
            .as_mut()
            .expect("a pair stays open while its windows are in flight");
        for request in run.answered(done?, spare)? {
            let pair = run.pair.clone();
            asked.push(Box::pin(
                async move { (slot, asker.ask(pair, request).await) },
            ));
        }
        if finish_done(&mut active, slot, pairs, &mut finished)? {
            waiting = false;
        }
        let mut counts = finished;
        for run in active.iter().flatten() {
            counts.add(&run.counts);
        }
        if let Some((done, total)) = pairs.tally() {
            counts.pairs_done = done;
            counts.pairs_total = total;
        }
        progress.update(&counts);
    }
    progress.finish();
    // Answers still in flight are dropped with their futures; every open pair writes what it
    // has and says what it lacks.
    drop(asked);
    for run in active.into_iter().flatten() {
        pairs.finished(run, interrupted)?;
    }
    Ok(interrupted)
}

/// Finishes the pair in `slot` if it has nothing left; whether it did.
fn finish_done(
    active: &mut [Option<PairRun>],
    slot: usize,
    pairs: &mut dyn Pairs,
    finished: &mut Counts,
) -> anyhow::Result<bool> {
    if active[slot].as_ref().is_some_and(PairRun::is_done) {
        let run = active[slot].take().expect("checked");
        finished.add(&run.counts);
        pairs.finished(run, false)?;
        return Ok(true);
    }
    Ok(false)
}

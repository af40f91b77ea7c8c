//! `cloner-worker clone`: the requesting side. Cuts a range of a pair's history into windows,
//! publishes them as TodoChunks, waits for their results, and writes the trades in time order.
//!
//! - [`window`]: the plan, what is left of a window once a page is kept, and halving.
//! - [`id_blocks`]: a busy window asked for by trade ids in blocks of whole pages (on a venue
//!   whose ids are consecutive), the answers stitched back into time windows in order.
//! - [`result_waiter`]: `ResultWaiter`, which matches results read from the finished topic to
//!   the requests waiting for them.
//! - [`output`]: trades written in time order, each once, and the check of the result; the
//!   bytes are a [`format`](mod@format)'s: CSV, JSON Lines or Parquet, one encoder each.
//! - [`dataset`]: a venue's history as files by pair and UTC day (Hive layout), each written
//!   whole and atomically, with a per-pair manifest of the days held and their checksums.
//! - [`progress`]: a bar on a terminal, log lines otherwise.
//! - [`partial`], [`journal`] and [`spill`]: `FILE.partial` while it grows, the journal that
//!   lets the same command continue it after any stop, and the spill that keeps every answer
//!   until the output holds it, so that a stop loses only the requests in flight.
//! - [`asker`]: one window asked for until it has a final answer; [`spread`]: which partition
//!   each request goes to (the least loaded), so every member of the service's group has work
//!   for its share of the rate.
//! - [`session`]: what every pair of a run shares (the producer, the one reader of results,
//!   the asker, the venue, the windows in flight); [`pair_run`]: one pair's range, its plan,
//!   output and answers; [`driver`]: the loop that interleaves the windows of one or many
//!   pairs within one number in flight.
//!
//! Windows are planned as the clone goes, in time order, a bounded number in flight
//! ([`window::Planner`], [`window::lanes`]): the output is written as it goes, and memory holds
//! only what is in flight. Per window: `COMPLETE` → its trades go to the output;
//! `WINDOW_TOO_BIG` with a covered part → its trades go to the output and only the rest of the
//! window is asked for (page by page); `WINDOW_TOO_BIG` without → its halves
//! `[from, mid]`, `[mid + 1, until]` are asked for, down to one second; `RANDOM_ERROR` → asked
//! again up to `clone.max_error_retries` times; no answer in time → waited for while the
//! service answers other requests of the run or its group works through the todo topic, else
//! published again up to `clone.max_republish` times. A window that runs out of tries is
//! reported by name and the clone ends unsuccessfully, its output left as `FILE.partial`.
//!
//! It must never write a trade twice or out of order, and never call a clone complete that
//! has a gap: the output's check decides, not the count of answers.

pub mod asker;
pub mod dataset;
pub mod driver;
pub mod format;
pub mod group_progress;
pub mod id_blocks;
pub mod journal;
pub mod output;
pub mod pair_run;
pub mod partial;
pub mod progress;
pub mod report;
pub mod requester;
pub mod result_waiter;
pub mod session;
pub mod spill;
pub mod spread;
pub mod window;

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::config::Settings;
use crate::domain::pair::CurrencyPair;
use crate::pool::app::Hooks;

use journal::Identity;
use output::{Format, Output};
use pair_run::PairRun;
use progress::{Progress, ProgressMode};
pub use report::{CloneReport, Incomplete};
use session::Session;
use window::Window;

/// Where the trades go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// A file, grown as `FILE.partial` and renamed when the clone is complete.
    File(PathBuf),
    Stdout,
    /// Nowhere: only the check and the counts (the demo).
    Discard,
}

/// What to clone and where to.
#[derive(Debug, Clone)]
pub struct CloneOptions {
    pub pair: CurrencyPair,
    /// First second of the range.
    pub from: i64,
    /// End of the range, exclusive.
    pub until: i64,
    pub out: Sink,
    pub format: Format,
    pub progress: ProgressMode,
}

/// Runs `clone` with the service started in this process (`n_workers` workers), then drains
/// the service.
pub async fn run_with_workers(
    settings: &Settings,
    options: &CloneOptions,
    n_workers: usize,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<CloneReport> {
    with_workers(settings, n_workers, async |settings| {
        run(settings, options, stop).await
    })
    .await
}

/// Runs `clone` (a clone of any kind) with the service started in this process (`n_workers`
/// workers and these `settings` otherwise), then drains the service.
pub async fn with_workers<T>(
    settings: &Settings,
    n_workers: usize,
    clone: impl AsyncFnOnce(&Settings) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut settings = settings.clone();
    settings.n_workers = n_workers;
    settings.validate().context("--with-workers")?;
    let running = crate::service::start(&settings, Hooks::default()).await?;
    let report = clone(&settings).await;
    running
        .shutdown(settings.consumer.drain_grace())
        .await
        .context("draining the in-process service")?;
    report
}

/// Runs the clone against the service(s) consuming the configured topics, until every window
/// is answered or given up, or `stop` resolves (then what is answered is written, the rest is
/// reported unanswered).
pub async fn run(
    settings: &Settings,
    options: &CloneOptions,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<CloneReport> {
    // The range is checked before anything is connected to.
    window::check_range(options.from, options.until)?;
    let range = Window {
        from: options.from,
        until: options.until - 1,
    };
    let session = Session::connect(settings).await?;
    let planner = session.planner(options.from, options.until, session.lanes)?;
    // A file grows as FILE.partial with its journal, and continues a run of this very clone
    // that stopped before the end.
    let identity = Identity {
        pair: options.pair.to_string(),
        from: options.from,
        until: options.until,
        format: options.format.name().into(),
    };
    // How the venue's trades are typed in Parquet (its time resolution, its decimals' scales).
    let columns = format::Columns::of(settings.upstream.venue);
    let opened = match &options.out {
        Sink::File(path) => {
            let opened = partial::open(path, &identity, options.format, &columns)?;
            pair_run::Opened {
                written_to: Sink::File(opened.file.path.clone()),
                output: opened.output,
                keeper: Some(Box::new(pair_run::FileKeeper {
                    partial: opened.file,
                    out: path.clone(),
                })),
                resumed_from: opened.resumed_from,
                had: opened.had,
            }
        }
        Sink::Stdout | Sink::Discard => {
            let writer: partial::Writer = match options.out {
                Sink::Stdout => Box::new(std::io::BufWriter::new(std::io::stdout())),
                _ => Box::new(std::io::sink()),
            };
            let encoder =
                format::encoder(options.format, writer, &columns).context("writing the output")?;
            pair_run::Opened {
                output: Output::new(encoder),
                keeper: None,
                resumed_from: None,
                had: Vec::new(),
                written_to: options.out.clone(),
            }
        }
    };
    log::info!(
        "cloning {} {range}: {} windows at a time, {}, to {} ({}); run id {}",
        options.pair,
        session.lanes,
        match settings.clone.window_secs {
            Some(secs) => format!("{secs} s each"),
            None => "sized to the trades seen".into(),
        },
        match &options.out {
            Sink::File(path) => path.display().to_string(),
            Sink::Stdout => "stdout".into(),
            Sink::Discard => "nowhere (counted only)".into(),
        },
        options.format.name(),
        session.asker.run_id,
    );
    let run = PairRun::new(
        options.pair.as_str(),
        range,
        planner,
        opened,
        session.probes(),
    )
    .by_ids(session.id_block());
    let mut one = One {
        run: Some(run),
        finished: None,
    };
    let mut progress = Progress::new(options.progress);
    let interrupted = driver::drive(
        &session.asker,
        session.lanes,
        1,
        &mut one,
        &mut progress,
        stop,
    )
    .await?;
    let (run, stopped) = one
        .finished
        .expect("the driver finishes every pair it opens");
    let waiter = session.waiter_stats().await;
    run.finish(stopped || interrupted, waiter)
}

/// The one pair of a single clone, handed to the driver and back.
struct One {
    run: Option<PairRun>,
    finished: Option<(PairRun, bool)>,
}

impl driver::Pairs for One {
    fn open_next(&mut self) -> anyhow::Result<driver::Next> {
        Ok(self
            .run
            .take()
            .map_or(driver::Next::Done, |run| driver::Next::Run(Box::new(run))))
    }

    fn finished(&mut self, run: PairRun, interrupted: bool) -> anyhow::Result<()> {
        self.finished = Some((run, interrupted));
        Ok(())
    }

    fn tally(&self) -> Option<(u64, u64)> {
        None
    }
}

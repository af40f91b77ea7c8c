//! `cloner-worker clone`: the requesting side. Cuts a range of a pair's history into windows,
//! publishes them as TodoChunks, waits for their results, and writes the trades in time order.
//!
//! - [`window`]: the plan, what is left of a window once a page is kept, and halving.
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
pub mod format;
pub mod group_progress;
pub mod journal;
pub mod output;
pub mod partial;
pub mod progress;
pub mod report;
pub mod requester;
pub mod result_waiter;
pub mod spill;
pub mod spread;
pub mod window;

use std::cell::Cell;
use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::config::{KafkaRole, Settings};
use crate::domain::pair::CurrencyPair;
use crate::kafka::client;
use crate::pool::app::Hooks;
use crate::service::checks::CHECK_TIMEOUT;

use asker::{Answer, Asked, Asker};
use journal::Identity;
use output::{Format, Output};
use progress::{Counts, Progress, ProgressMode};
pub use report::{CloneReport, Incomplete};
use requester::TopicReader;
use result_waiter::{GetWaiterStats, ResultWaiter};
use spread::Spread;
use window::{Planned, Planner, Window};

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
    let mut settings = settings.clone();
    settings.n_workers = n_workers;
    settings.validate().context("--with-workers")?;
    let running = crate::service::start(&settings, Hooks::default()).await?;
    let report = run(&settings, options, stop).await;
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
    let started = Instant::now();
    // The range is checked before anything is connected to.
    window::check_range(options.from, options.until)?;
    let range = Window {
        from: options.from,
        until: options.until - 1,
    };
    // Before the producer: settings the cluster refuses fail here at once (see check_topics).
    let metadata = client::check_topics(
        &settings.kafka,
        KafkaRole::Producer,
        &[&settings.topics.todo, &settings.topics.finished],
        CHECK_TIMEOUT,
    )?;
    let producer = requester::producer(settings)?;
    let todo_partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == settings.topics.todo)
        .map_or(0, |t| t.partitions().len());
    // The limiter's pace tells how long the requests ahead of one take.
    let rate = (!settings.rate_limiter.unlimited).then_some(settings.calls_per_second());
    let lanes = window::lanes(todo_partitions, rate);
    // Windows no longer than the venue answers, sized to its pages.
    let venue = crate::task::venue::from_settings(&settings.upstream);
    let mut planner = match settings.clone.window_secs {
        Some(secs) => Planner::fixed(options.from, options.until, secs, venue.max_window_secs())?,
        None => Planner::by_density(
            options.from,
            options.until,
            venue.page_limit(),
            window::pages_per_window(lanes),
            venue.max_window_secs(),
        )?,
    };
    // Reading starts at the current end, before anything is published: every answer to this
    // run comes after it, and nothing older is read.
    let reader = TopicReader::at_end(&settings.kafka, &settings.topics.finished)?;
    let waiter = ResultWaiter::reading(reader);

    // A file grows as FILE.partial with its journal, and continues a run of this very clone
    // that stopped before the end.
    let identity = Identity {
        pair: options.pair.to_string(),
        from: options.from,
        until: options.until,
        format: options.format.name().into(),
    };
    // Windows a stopped run answered and spilled: handed out by the planner in their place.
    let mut had = std::collections::BTreeMap::new();
    // How the venue's trades are typed in Parquet (its time resolution, its decimals' scales).
    let columns = format::Columns::of(settings.upstream.venue);
    let (mut output, mut partial, written_to) = match &options.out {
        Sink::File(path) => {
            let opened = partial::open(path, &identity, options.format, &columns)?;
            if let Some(from) = opened.resumed_from {
                planner.skip_to(from);
            }
            planner.have(opened.had.iter().map(|h| h.window));
            had.extend(opened.had.into_iter().map(|h| (h.window.from, h.entries)));
            let written_to = Sink::File(opened.file.path.clone());
            (opened.output, Some(opened.file), written_to)
        }
        Sink::Stdout | Sink::Discard => {
            let writer: partial::Writer = match options.out {
                Sink::Stdout => Box::new(std::io::BufWriter::new(std::io::stdout())),
                _ => Box::new(std::io::sink()),
            };
            let encoder =
                format::encoder(options.format, writer, &columns).context("writing the output")?;
            let output = Output::new(encoder);
            (output, None, options.out.clone())
        }
    };
    // One id per run: results of other runs, even of the same windows, belong to nobody here.
    let run_id = fastrand::i32(1..i32::MAX);
    log::info!(
        "cloning {} {range}: {lanes} windows at a time, {}, to {} ({}); run id {run_id}",
        options.pair,
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
    );

    let asker = Asker {
        waiter: waiter.clone(),
        producer,
        topic: &settings.topics.todo,
        pair: options.pair.as_str(),
        run_id,
        settings: &settings.clone,
        rate,
        in_flight: Cell::new(0),
        spread: Spread::new(todo_partitions),
        last_answer: Cell::new(None),
        group: group_progress::GroupProgress::new(
            &settings.kafka,
            &settings.topics.todo,
            todo_partitions,
        ),
    };
    // Where the service's group stands now: progress is measured from here.
    if let Some(group) = &asker.group {
        group.read().await;
    }
    let mut progress = Progress::new(options.progress);
    let mut counts = Counts::default();
    let mut failed = Vec::new();
    let mut asked: FuturesUnordered<LocalBoxFuture<'_, anyhow::Result<Asked>>> =
        FuturesUnordered::new();
    let mut stop = std::pin::pin!(stop);
    let mut interrupted = false;
    loop {
        // The next windows of the range, in time order, while fewer than `lanes` are asked for:
        // the output is written as the clone goes, and only what is in flight is held.
        while asked.len() < lanes && (asked.is_empty() || planner.can_plan_ahead()) {
            match planner.next_part() {
                None => break,
                Some(Planned::Ask(window)) => {
                    counts.windows_total += 1;
                    output.expect(window);
                    asked.push(Box::pin(asker.ask(window)));
                }
                Some(Planned::Had(window)) => {
                    let entries = had
                        .remove(&window.from)
                        .expect("the planner hands out only the windows it was given");
                    counts.windows_total += 1;
                    counts.windows_done += 1;
                    counts.trades += entries.len() as u64;
                    planner.learn(entries.len(), window.secs());
                    output.expect(window);
                    output.complete(window, entries)?;
                }
            }
        }
        let done = tokio::select! {
            done = asked.next() => match done {
                Some(done) => done?,
                None => break,
            },
            () = &mut stop => {
                log::warn!("interrupted: writing what is answered, {} windows are not", output.pending());
                interrupted = true;
                break;
            }
        };
        counts.answers += u64::from(done.answers);
        counts.retries += u64::from(done.republished);
        match done.answer {
            Answer::Complete(entries) => {
                counts.windows_done += 1;
                counts.trades += entries.len() as u64;
                planner.learn(entries.len(), done.window.secs());
                if let Some(partial) = &mut partial {
                    partial.keep(done.window, &entries)?;
                }
                output.complete(done.window, entries)?;
            }
            Answer::TooBig {
                reason,
                kept: Some((covered, entries)),
            } => {
                // Keep what the page covered; ask only for the rest.
                let (parts, rest) = done.window.without(covered);
                log::debug!(
                    "{} is too big ({reason}); kept {} trades of {covered}, asking for {rest}",
                    done.window,
                    entries.len()
                );
                counts.pages_kept += 1;
                counts.windows_total += 1;
                counts.windows_done += 1;
                counts.trades += entries.len() as u64;
                planner.learn(entries.len(), covered.secs());
                if let Some(partial) = &mut partial {
                    partial.keep(covered, &entries)?;
                }
                output.split(done.window, parts)?;
                output.complete(covered, entries)?;
                asked.push(Box::pin(asker.ask(rest)));
            }
            Answer::TooBig { reason, kept: None } => match done.window.halve() {
                Some(halves) => {
                    log::debug!(
                        "{} is too big ({reason}); asking for its halves",
                        done.window
                    );
                    counts.splits += 1;
                    counts.windows_total += 1;
                    output.split(done.window, halves)?;
                    asked.push(Box::pin(asker.ask(halves.0)));
                    asked.push(Box::pin(asker.ask(halves.1)));
                }
                None => {
                    let why = format!(
                        "one second holds more trades than one call returns ({reason}); raise upstream.page_limit if the API allows"
                    );
                    log::error!("{}: {why}", done.window);
                    counts.windows_done += 1;
                    output.fail(done.window)?;
                    failed.push((done.window, why));
                }
            },
            Answer::Failed(why) => {
                log::error!("{} given up: {why}", done.window);
                counts.windows_done += 1;
                output.fail(done.window)?;
                failed.push((done.window, why));
            }
        }
        progress.update(&counts);
        if let Some(partial) = &mut partial {
            partial.checkpoint(&mut output, false)?;
        }
    }
    progress.finish();
    if let Some(partial) = &mut partial {
        partial.checkpoint(&mut output, true)?;
    }
    // What was not planned yet (an interrupted clone) is missing from the output too.
    if let Some(rest) = planner.rest() {
        output.expect(rest);
    }
    let (writer, check) = output.finish()?;
    drop(writer);
    let waiter_stats = waiter.send(GetWaiterStats).await.unwrap_or_default();
    failed.sort();
    let mut report = CloneReport {
        pair: options.pair.to_string(),
        range,
        windows_planned: planner.planned,
        counts,
        failed,
        interrupted,
        check,
        waiter: waiter_stats,
        written_to,
        elapsed: started.elapsed(),
    };
    if let (Some(partial), Sink::File(out)) = (partial, &options.out) {
        if report.is_complete() {
            partial.complete(out)?;
            report.written_to = Sink::File(out.clone());
        }
    }
    Ok(report)
}

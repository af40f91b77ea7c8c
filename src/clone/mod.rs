//! `cloner-worker clone`: the requesting side. Cuts a range of a pair's history into windows,
//! publishes them as TodoChunks, waits for their results, and writes the trades in time order.
//!
//! - [`window`]: the plan, and halving a window that is too big.
//! - [`result_waiter`]: `ResultWaiter`, which matches results read from the finished topic to
//!   the requests waiting for them.
//! - [`output`]: trades written in time order, each once, and the check of the result.
//! - [`progress`]: a bar on a terminal, log lines otherwise.
//!
//! Per window: `COMPLETE` → its trades go to the output; `WINDOW_TOO_BIG` → its halves
//! `[from, mid]`, `[mid + 1, until]` are asked for, down to one second; `RANDOM_ERROR` → asked
//! again up to `clone.max_error_retries` times; no answer in time → published again up to
//! `clone.max_republish` times. A window that runs out of tries is reported by name and the
//! clone ends unsuccessfully, its output left as `FILE.partial`.
//!
//! It must never write a trade twice or out of order, and never call a clone complete that
//! has a gap: the output's check decides, not the count of answers.

pub mod output;
pub mod progress;
pub mod requester;
pub mod result_waiter;
pub mod window;

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::Addr;
use anyhow::Context as _;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use prost::Message as _;
use rdkafka::producer::{FutureProducer, Producer as _};

use crate::config::{CloneSettings, Settings};
use crate::domain::chunk::result_name;
use crate::domain::pair::CurrencyPair;
use crate::kafka::client;
use crate::pool::app::Hooks;
use crate::proto::{cloned_chunk, ClonedEntry, TodoChunk};
use crate::service::consumer::Drain;
use crate::service::CHECK_TIMEOUT;
use requester::TopicReader;

use output::{Check, Format, Output};
use progress::{Counts, Progress, ProgressMode};
use result_waiter::{Await, GetStats, ResultWaiter, WaiterStats};
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

/// What the clone did.
#[derive(Debug, Clone)]
pub struct CloneReport {
    pub pair: String,
    /// The range, inclusive, as asked for.
    pub range: Window,
    /// Windows in the first plan.
    pub windows_planned: u64,
    /// The counts at the end.
    pub counts: Counts,
    /// Windows given up, with why.
    pub failed: Vec<(Window, String)>,
    /// Stopped by a signal before every window was answered.
    pub interrupted: bool,
    pub check: Check,
    pub waiter: WaiterStats,
    /// Where the output went: the file, or its `.partial` if incomplete.
    pub written_to: Sink,
    pub elapsed: Duration,
}

impl CloneReport {
    /// Every window answered and no gap: the output is the range's complete history.
    pub fn is_complete(&self) -> bool {
        !self.interrupted && self.failed.is_empty() && self.check.is_complete()
    }
}

impl fmt::Display for CloneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let secs = self.elapsed.as_secs_f64();
        writeln!(f, "clone of {} {}", self.pair, self.range)?;
        writeln!(
            f,
            "  windows: {} planned, {} splits, {} answered in the end; {} answers received, {} republished",
            self.windows_planned, c.splits, c.windows_done, c.answers, c.retries
        )?;
        writeln!(f, "  output:  {}", self.check)?;
        if self.waiter.strays > 0 {
            writeln!(
                f,
                "  {} results were not ours or came twice; ignored",
                self.waiter.strays
            )?;
        }
        for (window, why) in &self.failed {
            writeln!(f, "  FAILED {window}: {why}")?;
        }
        if self.interrupted {
            writeln!(
                f,
                "  INTERRUPTED with {} windows unanswered",
                self.check.skipped_windows
            )?;
        }
        match &self.written_to {
            Sink::File(path) => writeln!(f, "  written to {}", path.display())?,
            Sink::Stdout => writeln!(f, "  written to stdout")?,
            Sink::Discard => {}
        }
        write!(
            f,
            "  elapsed: {secs:.1} s, {:.2} answers/s",
            if secs > 0.0 {
                c.answers as f64 / secs
            } else {
                0.0
            }
        )
    }
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
        .consumer
        .send(Drain {
            grace: settings.consumer.drain_grace(),
        })
        .await
        .context("draining the in-process service")?;
    if let Some(http) = running.http {
        http.stop().await;
    }
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
    let plan = window::plan(options.from, options.until, settings.clone.window_secs)?;
    let range = Window {
        from: plan[0].from,
        until: plan[plan.len() - 1].until,
    };
    let producer = requester::producer(settings)?;
    client::check_topics(
        producer.client(),
        &settings.kafka.bootstrap_servers(),
        &[&settings.topics.todo, &settings.topics.finished],
        CHECK_TIMEOUT,
    )?;
    // Reading starts at the current end, before anything is published: every answer to this
    // run comes after it, and nothing older is read.
    let reader = TopicReader::at_end(&settings.kafka, &settings.topics.finished)?;
    let waiter = ResultWaiter::reading(reader);

    let (writer, written_to): (Box<dyn Write>, Sink) = match &options.out {
        Sink::File(path) => {
            let partial = partial_path(path);
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("creating {}", partial.display()))?;
            (Box::new(std::io::BufWriter::new(file)), Sink::File(partial))
        }
        Sink::Stdout => (
            Box::new(std::io::BufWriter::new(std::io::stdout())),
            Sink::Stdout,
        ),
        Sink::Discard => (Box::new(std::io::sink()), Sink::Discard),
    };
    let mut output = Output::new(writer, options.format, &plan).context("writing the output")?;
    // One id per run: results of other runs, even of the same windows, belong to nobody here.
    let run_id = fastrand::i32(1..i32::MAX);
    log::info!(
        "cloning {} {range}: {} windows of up to {} s, to {} ({}); run id {run_id}",
        options.pair,
        plan.len(),
        settings.clone.window_secs,
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
        // The limiter's pace tells how long the requests ahead of one take.
        rate: (!settings.rate_limiter.unlimited).then_some(settings.default_rate),
        in_flight: Cell::new(0),
    };
    let mut progress = Progress::new(options.progress);
    let mut counts = Counts {
        windows_total: plan.len() as u64,
        ..Counts::default()
    };
    let mut failed = Vec::new();
    let mut asked: FuturesUnordered<LocalBoxFuture<'_, anyhow::Result<Asked>>> =
        plan.iter().map(|&w| Box::pin(asker.ask(w)) as _).collect();
    let mut stop = std::pin::pin!(stop);
    let mut interrupted = false;
    loop {
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
                output.complete(done.window, entries)?;
            }
            Answer::TooBig(reason) => match done.window.halve() {
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
    }
    progress.finish();
    let (writer, check) = output.finish()?;
    drop(writer);
    let waiter_stats = waiter.send(GetStats).await.unwrap_or_default();
    failed.sort();
    let mut report = CloneReport {
        pair: options.pair.to_string(),
        range,
        windows_planned: plan.len() as u64,
        counts,
        failed,
        interrupted,
        check,
        waiter: waiter_stats,
        written_to,
        elapsed: started.elapsed(),
    };
    if let (Sink::File(partial), Sink::File(out)) = (&report.written_to, &options.out) {
        if report.is_complete() {
            std::fs::rename(partial, out)
                .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
            report.written_to = Sink::File(out.clone());
        }
    }
    Ok(report)
}

/// `trades.csv` → `trades.csv.partial`: where the output grows until it is complete, so that a
/// file under the asked-for name is always a complete clone.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// A window's final answer.
enum Answer {
    Complete(Vec<ClonedEntry>),
    TooBig(String),
    Failed(String),
}

/// A window asked for, with what it took.
struct Asked {
    window: Window,
    answer: Answer,
    /// Results received for it (each was an upstream call).
    answers: u32,
    /// Times it was published again.
    republished: u32,
}

/// Publishes requests and waits for their answers.
struct Asker<'a> {
    waiter: Addr<ResultWaiter>,
    producer: FutureProducer,
    topic: &'a str,
    pair: &'a str,
    run_id: i32,
    settings: &'a CloneSettings,
    /// Upstream calls per second the service is configured for; `None` if unlimited.
    rate: Option<f64>,
    /// Requests published and not answered yet: the service's backlog, as far as this run
    /// knows.
    in_flight: Cell<usize>,
}

impl Asker<'_> {
    /// How long a request published now may wait: the timeout, plus the time the requests
    /// ahead of it take at the configured rate.
    fn patience(&self) -> Duration {
        let ahead = match self.rate {
            Some(rate) => Duration::from_secs_f64(self.in_flight.get() as f64 / rate),
            None => Duration::ZERO,
        };
        self.settings.answer_timeout() + ahead
    }

    /// Asks for `window` until it gets a final answer or runs out of tries.
    async fn ask(&self, window: Window) -> anyhow::Result<Asked> {
        let chunk = TodoChunk {
            currency_pair: self.pair.to_string(),
            from_unix_ts: window.from,
            until_unix_ts: window.until,
            task_dbid: self.run_id,
        };
        let key = requester::chunk_key(&chunk);
        let payload = chunk.encode_to_vec();
        let mut asked = Asked {
            window,
            answer: Answer::Failed(String::new()),
            answers: 0,
            republished: 0,
        };
        let (mut errors, mut unanswered) = (0, 0);
        self.in_flight.set(self.in_flight.get() + 1);
        let answer = 'answered: loop {
            // Registered before publishing, so a quick answer is not missed.
            let mut answer = self
                .waiter
                .send(Await(chunk.clone()))
                .await
                .context("the result waiter stopped")?;
            loop {
                requester::publish_raw(&self.producer, self.topic, &key, &payload)
                    .await
                    .context("is the broker reachable? (kafka.bootstrap_servers)")?;
                let patience = self.patience();
                match tokio::time::timeout(patience, &mut answer).await {
                    Ok(Ok(result)) => {
                        asked.answers += 1;
                        match cloned_chunk::Result::try_from(result.chunk_result) {
                            Ok(cloned_chunk::Result::Complete) => {
                                break 'answered Answer::Complete(result.entries)
                            }
                            Ok(cloned_chunk::Result::WindowTooBig) => {
                                break 'answered Answer::TooBig(result.possible_error_message)
                            }
                            _ if errors < self.settings.max_error_retries => {
                                errors += 1;
                                asked.republished += 1;
                                log::warn!(
                                    "{window}: {} ({}); asking again ({errors} of {})",
                                    result_name(&result),
                                    result.possible_error_message,
                                    self.settings.max_error_retries
                                );
                                continue 'answered;
                            }
                            _ => {
                                break 'answered Answer::Failed(format!(
                                    "{} after {} tries: {}",
                                    result_name(&result),
                                    errors + 1,
                                    result.possible_error_message
                                ))
                            }
                        }
                    }
                    Ok(Err(_)) => anyhow::bail!("the result waiter stopped"),
                    Err(_) if unanswered < self.settings.max_republish => {
                        unanswered += 1;
                        asked.republished += 1;
                        log::warn!(
                            "{window}: no answer within {patience:.0?}; publishing it again ({unanswered} of {})",
                            self.settings.max_republish
                        );
                    }
                    Err(_) => {
                        break 'answered Answer::Failed(format!(
                            "no answer after {} publications; is a service consuming {}?",
                            unanswered + 1,
                            self.topic
                        ))
                    }
                }
            }
        };
        self.in_flight.set(self.in_flight.get() - 1);
        asked.answer = answer;
        Ok(asked)
    }
}

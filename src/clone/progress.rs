//! What a running clone tells its user: a progress bar on a terminal, a log line now and then
//! otherwise (a pipe or a CI log must not fill with redraws).
//!
//! It must never write to stdout: that is where trades go when no file is given.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// stderr as the bars see it. The binary's logger writes through it too
/// (`indicatif_log_bridge`), so that a log line is printed above a bar instead of through it.
pub fn terminal() -> &'static MultiProgress {
    static TERMINAL: OnceLock<MultiProgress> = OnceLock::new();
    TERMINAL.get_or_init(MultiProgress::new)
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    #[default]
    Auto,
    /// A bar on stderr.
    Bar,
    /// An info log line at most every 10 s.
    Log,
    /// Nothing but the summary.
    Off,
}

/// The counts shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Windows answered for good (complete or failed); split windows count as their halves.
    pub windows_done: u64,
    /// Windows in the plan, split ones replaced by their halves.
    pub windows_total: u64,
    /// Trades received in complete windows.
    pub trades: u64,
    /// Windows answered too big and halved.
    pub splits: u64,
    /// Windows answered too big with a page kept: only the rest was asked for.
    pub pages_kept: u64,
    /// Republished requests: unanswered in time, or answered RANDOM_ERROR.
    pub retries: u64,
    /// Results received, of any kind.
    pub answers: u64,
    /// The upstream calls they took (a Binance result may take several: pages by id).
    pub calls: u64,
    /// Pairs finished, and in all, in a run of many (0 in all: a run of one).
    pub pairs_done: u64,
    pub pairs_total: u64,
}

impl Counts {
    /// Adds another pair's counts (not the pairs' tally).
    pub fn add(&mut self, other: &Counts) {
        self.windows_done += other.windows_done;
        self.windows_total += other.windows_total;
        self.trades += other.trades;
        self.splits += other.splits;
        self.pages_kept += other.pages_kept;
        self.retries += other.retries;
        self.answers += other.answers;
        self.calls += other.calls;
    }
}

/// Log lines are at least this far apart.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    /// The bar, when drawing one.
    bar: Option<ProgressBar>,
    /// Log lines when not drawing a bar; `None` when off.
    log: Option<Instant>,
    started: Instant,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let bar = match mode {
            ProgressMode::Bar => true,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Log | ProgressMode::Off => false,
        };
        let started = Instant::now();
        if bar {
            let style = ProgressStyle::with_template(
                "[{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} windows · {msg}",
            )
            .expect("a valid template");
            let bar = terminal().add(ProgressBar::new(0).with_style(style));
            // Redrawn on each answer, not on a timer: nothing here wakes up by itself.
            return Progress {
                bar: Some(bar),
                log: None,
                started,
            };
        }
        Progress {
            bar: None,
            log: (mode != ProgressMode::Off).then_some(started),
            started,
        }
    }

    /// Shows `counts`: redraws the bar, or logs if the last line is old enough.
    pub fn update(&mut self, counts: &Counts) {
        if let Some(bar) = &self.bar {
            bar.set_length(counts.windows_total);
            bar.set_position(counts.windows_done);
            bar.set_message(self.message(counts));
        } else if let Some(last) = self.log {
            if last.elapsed() >= LOG_EVERY {
                self.log = Some(Instant::now());
                log::info!(
                    "{}/{} windows · {}",
                    counts.windows_done,
                    counts.windows_total,
                    self.message(counts)
                );
            }
        }
    }

    fn message(&self, c: &Counts) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            c.answers as f64 / secs
        } else {
            0.0
        };
        let pairs = if c.pairs_total > 0 {
            format!("{}/{} pairs · ", c.pairs_done, c.pairs_total)
        } else {
            String::new()
        };
        format!(
            "{pairs}{} trades · {} pages kept · {} splits · {} retries · {rate:.1} answers/s",
            c.trades, c.pages_kept, c.splits, c.retries
        )
    }

    /// Removes the bar; the summary follows.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

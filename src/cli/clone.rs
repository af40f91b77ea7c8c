//! `cloner-worker clone PAIR --from T --until T`: a range of a pair's history to a file,
//! through the service (see [`crate::clone`]); with `--with-workers N` the service runs in this
//! process too. Several pairs (`A,B,…`, `--pairs-file`, `--all`) or `--out DIR/` make a
//! dataset: a file per pair and UTC day, kept current by the same command
//! ([`crate::clone::dataset`]).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::clone::output::Format;
use crate::clone::progress::ProgressMode;
use crate::clone::{CloneOptions, Sink};
use crate::config::Settings;
use crate::domain::pair::CurrencyPair;
use crate::domain::utc::parse_time_arg;
use crate::service::shutdown_signal;

#[derive(Args)]
pub struct CloneArgs {
    /// The currency pair, e.g. USDT_BTC (Poloniex) or BTCUSDT (Binance); several,
    /// comma-separated, make a dataset (--out DIR/).
    #[arg(required_unless_present_any = ["pairs_file", "all"])]
    pair: Option<String>,
    /// A file of pairs, one per line (or comma-separated; `#` starts a comment): a dataset.
    #[arg(long, value_name = "FILE")]
    pairs_file: Option<PathBuf>,
    /// Every pair the venue lists as trading (Binance's exchangeInfo, weight 20; Poloniex's
    /// returnTicker): a dataset.
    #[arg(long, conflicts_with_all = ["pair", "pairs_file"])]
    all: bool,
    /// First second: unix seconds, 2018-10-22, or 2018-10-22T05:00:00Z (UTC). A dataset clones
    /// its day whole.
    #[arg(long, value_parser = parse_time)]
    from: i64,
    /// End of the range, exclusive: --from 2018-10-22 --until 2018-10-23 is one day. `now`:
    /// the last whole second (a dataset leaves today unwritten, and the same command later
    /// completes it).
    #[arg(long, value_parser = parse_until)]
    until: Until,
    /// Seconds per window, fixed (overrides clone.window_secs); by default the range is cut
    /// into as few windows as keep the rate busy.
    #[arg(long)]
    window: Option<u32>,
    /// Write here (grown as FILE.partial, renamed when complete); stdout if not given. A
    /// directory (a name ending in `/`, or one that exists) holds a dataset:
    /// DIR/venue=V/pair=P/date=YYYY-MM-DD/trades.parquet and a manifest per pair.
    #[arg(long)]
    out: Option<PathBuf>,
    /// csv, jsonl or parquet; by default from the file's extension (.csv, .jsonl, .ndjson,
    /// .parquet), csv on stdout. A Parquet file is written whole: a run after a stop starts it
    /// again.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Start the service in this process with N workers (otherwise a running service, in
    /// another process, answers).
    #[arg(long, value_name = "N")]
    with_workers: Option<usize>,
    /// Upstream base URL for --with-workers (overrides upstream.base_url).
    #[arg(long, requires = "with_workers")]
    upstream: Option<String>,
    /// How progress is shown: a bar on a terminal, log lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
}

/// `--until`: a time, or `now`.
#[derive(Debug, Clone, Copy)]
enum Until {
    At(i64),
    Now,
}

impl Until {
    /// The second: `now` is the last whole second of this host's clock (keep it in sync, NTP).
    fn resolve(self) -> i64 {
        match self {
            Until::At(t) => t,
            Until::Now => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        }
    }
}

impl CloneArgs {
    /// Whether this is a dataset: several pairs, a list of them, or a directory to write to.
    fn is_dataset(&self) -> bool {
        self.all
            || self.pairs_file.is_some()
            || self.pair.as_deref().is_some_and(|p| p.contains(','))
            || self
                .out
                .as_deref()
                .is_some_and(|out| out.as_os_str().to_string_lossy().ends_with('/') || out.is_dir())
    }

    pub fn run(self, mut settings: Settings) -> anyhow::Result<()> {
        if self.is_dataset() {
            return self.run_dataset(settings);
        }
        if let Some(secs) = self.window {
            settings.clone.window_secs = Some(secs);
        }
        if let Some(url) = self.upstream {
            settings.upstream.base_url = Some(url);
        }
        settings.validate().context("--window / --upstream")?;
        // Spelled as the configured venue spells pairs (upstream.venue).
        let venue = crate::task::venue::from_settings(&settings.upstream);
        let pair = CurrencyPair::parse_with(
            self.pair.as_deref().expect("clap requires it"),
            venue.pair_rule(),
        )
        .with_context(|| format!("the pair, for upstream.venue = {}", venue.name()))?;
        let format = Format::choose(self.format, self.out.as_deref())?;
        let options = CloneOptions {
            pair,
            from: self.from,
            until: self.until.resolve(),
            out: self.out.map_or(Sink::Stdout, Sink::File),
            format,
            progress: self.progress,
        };
        let report = actix_rt::System::new().block_on(async {
            // SIGINT/SIGTERM: what is answered is written and the summary says the rest.
            let stop = shutdown_signal();
            match self.with_workers {
                Some(n) => crate::clone::run_with_workers(&settings, &options, n, stop).await,
                None => crate::clone::run(&settings, &options, stop).await,
            }
        })?;
        // stdout may be the trades: the summary goes to stderr.
        eprintln!("{report}");
        Ok(report.ensure_complete()?)
    }
}

impl CloneArgs {
    /// Many pairs into a dataset directory.
    fn run_dataset(self, mut settings: Settings) -> anyhow::Result<()> {
        if let Some(secs) = self.window {
            settings.clone.window_secs = Some(secs);
        }
        if let Some(url) = self.upstream {
            settings.upstream.base_url = Some(url);
        }
        settings.validate().context("--window / --upstream")?;
        let Some(root) = self.out else {
            anyhow::bail!("a dataset (several pairs, --pairs-file or --all) needs --out DIR/");
        };
        if root.is_file() {
            anyhow::bail!(
                "--out {}: a dataset is a directory, and this is a file",
                root.display()
            );
        }
        let format = self.format.unwrap_or(Format::Parquet);
        let venue = crate::task::venue::from_settings(&settings.upstream);
        let names = crate::clone::dataset::pairs::read_pairs(
            self.pair.as_deref(),
            self.pairs_file.as_deref(),
        )?;
        let until = self.until.resolve();
        let with_workers = self.with_workers;
        let progress = self.progress;
        let (from, all) = (self.from, self.all);
        let report = actix_rt::System::new().block_on(async {
            let names = if all {
                let upstream =
                    crate::task::upstream::Upstream::new(&settings.upstream, venue.clone());
                let listed = upstream
                    .list_pairs()
                    .await
                    .with_context(|| format!("listing the pairs of {} (--all)", venue.name()))?;
                log::info!("{} lists {} pairs trading", venue.name(), listed.len());
                listed
            } else {
                names
            };
            let mut pairs = Vec::with_capacity(names.len());
            for name in &names {
                pairs.push(
                    CurrencyPair::parse_with(name, venue.pair_rule()).with_context(|| {
                        format!("the pair {name:?}, for upstream.venue = {}", venue.name())
                    })?,
                );
            }
            if pairs.is_empty() {
                anyhow::bail!("no pairs to clone");
            }
            let options = crate::clone::dataset::pairs::DatasetOptions {
                pairs,
                from,
                until,
                root,
                format,
                progress,
            };
            let stop = shutdown_signal();
            match with_workers {
                Some(n) => {
                    crate::clone::dataset::pairs::run_with_workers(&settings, &options, n, stop)
                        .await
                }
                None => crate::clone::dataset::pairs::run(&settings, &options, stop).await,
            }
        })?;
        eprintln!("{report}");
        report.ensure_complete()
    }
}

fn parse_until(s: &str) -> Result<Until, String> {
    if s.trim() == "now" {
        return Ok(Until::Now);
    }
    parse_time(s).map(Until::At)
}

fn parse_time(s: &str) -> Result<i64, String> {
    parse_time_arg(s).ok_or_else(|| {
        format!("{s:?} is not a time: use unix seconds, 2018-10-22 or 2018-10-22T05:00:00Z (UTC)")
    })
}

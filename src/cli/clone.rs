//! `cloner-worker clone PAIR --from T --until T`: a range of a pair's history to a file,
//! through the service (see [`crate::clone`]); with `--with-workers N` the service runs in this
//! process too.

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
    /// The currency pair, e.g. USDT_BTC.
    pair: String,
    /// First second: unix seconds, 2018-10-22, or 2018-10-22T05:00:00Z (UTC).
    #[arg(long, value_parser = parse_time)]
    from: i64,
    /// End of the range, exclusive: --from 2018-10-22 --until 2018-10-23 is one day.
    #[arg(long, value_parser = parse_time)]
    until: i64,
    /// Seconds per window, fixed (overrides clone.window_secs); by default the range is cut
    /// into as few windows as keep the rate busy.
    #[arg(long)]
    window: Option<u32>,
    /// Write here (grown as FILE.partial, renamed when complete); stdout if not given.
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

impl CloneArgs {
    pub fn run(self, mut settings: Settings) -> anyhow::Result<()> {
        if let Some(secs) = self.window {
            settings.clone.window_secs = Some(secs);
        }
        if let Some(url) = self.upstream {
            settings.upstream.base_url = Some(url);
        }
        settings.validate().context("--window / --upstream")?;
        // Spelled as the configured venue spells pairs (upstream.venue).
        let venue = crate::task::venue::from_settings(&settings.upstream);
        let pair = CurrencyPair::parse_with(&self.pair, venue.pair_rule())
            .with_context(|| format!("the pair, for upstream.venue = {}", venue.name()))?;
        let format = Format::choose(self.format, self.out.as_deref())?;
        let options = CloneOptions {
            pair,
            from: self.from,
            until: self.until,
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

fn parse_time(s: &str) -> Result<i64, String> {
    parse_time_arg(s).ok_or_else(|| {
        format!("{s:?} is not a time: use unix seconds, 2018-10-22 or 2018-10-22T05:00:00Z (UTC)")
    })
}

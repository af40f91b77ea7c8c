//! A venue's history as a dataset: one file per pair and UTC day, in the Hive layout that
//! Parquet readers (pyarrow, DuckDB, Spark, Polars) take apart into `venue`, `pair` and `date`
//! columns, and a manifest per pair of the days it holds.
//!
//! ```text
//! DIR/venue=binance/pair=BTCUSDT/_manifest.json
//! DIR/venue=binance/pair=BTCUSDT/date=2024-03-05/trades.parquet
//! DIR/venue=binance/pair=BTCUSDT/date=2024-03-06/trades.parquet
//! ```
//!
//! Every partition is a directory, the date's too: readers take partitions from directory names
//! only (a `date=…` file name gives no column). The manifest's name starts with `_` and a file
//! being written is `.…tmp`: readers of a directory skip such names, where any other file would
//! be read as data (and fail).
//!
//! - [`day`]: [`DayWriter`], one day's file written whole: a temporary name in its directory,
//!   synced, renamed, the directory synced; what it wrote comes back as the manifest's record.
//! - [`manifest`]: [`Manifest`], the days a pair holds (trades, first and last id, the file's
//!   size and SHA-256), loaded, recorded, saved atomically, checked against the files.
//! - [`atomic`]: the write-then-rename that both use.
//!
//! The manifest is the truth: a day file it does not list is not held (a stop between a day's
//! rename and the manifest's save leaves one, and the day is written again).
//!
//! It must never leave a part of a file under a day's name, nor record a day whose file is not
//! whole on disk.

pub mod atomic;
pub mod day;
pub mod manifest;
pub mod pairs;
pub mod sink;

use std::path::{Path, PathBuf};

use jiff::civil::{Date, Time};
use jiff::tz::Offset;
use jiff::Timestamp;

use crate::clone::format::{Format, FormatError};

pub use day::DayWriter;
pub use manifest::{DayRecord, Manifest, VerifyError};

/// The name a manifest has in its pair's directory (`_`: readers of the directory skip it).
pub const MANIFEST: &str = "_manifest.json";

/// One pair of one venue: a directory of the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    venue: String,
    pair: String,
}

/// What can go wrong with a dataset: a caller decides (retry, write the day again, stop).
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The format refused a trade (a decimal its scale cannot hold) or failed to write.
    #[error("{}: {source}", path.display())]
    Format {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
    #[error("{what} {name:?} cannot be a partition's name: use letters, digits, '_' and '-', starting with a letter or digit")]
    BadName { what: &'static str, name: String },
    #[error("trade {trade_id} at {time} (unix seconds) is not of {date}")]
    OtherDay {
        trade_id: i64,
        time: i64,
        date: Date,
    },
    #[error("trade {trade_id} after trade {last}: a day's trade ids rise")]
    OutOfOrder { trade_id: i64, last: i64 },
    #[error("{}: not a manifest: {source}", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} is the manifest of {found}, not of {expected}", path.display())]
    OtherPartition {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{date} is out of the range of dates")]
    BadDate { date: Date },
}

impl DatasetError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
        move |source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl Partition {
    /// `venue` (as [`crate::config::VenueName::as_str`] spells it) and `pair` (as the venue
    /// spells it: `BTCUSDT`, `USDT_BTC`); names that would not be one path segment, or that
    /// readers skip, are refused.
    pub fn new(venue: &str, pair: &str) -> Result<Partition, DatasetError> {
        for (what, name) in [("venue", venue), ("pair", pair)] {
            let ok = name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                && name
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric());
            if !ok {
                return Err(DatasetError::BadName {
                    what,
                    name: name.to_string(),
                });
            }
        }
        Ok(Partition {
            venue: venue.to_string(),
            pair: pair.to_string(),
        })
    }

    pub fn venue(&self) -> &str {
        &self.venue
    }

    pub fn pair(&self) -> &str {
        &self.pair
    }

    /// `root/venue=V/pair=P`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(format!("venue={}", self.venue))
            .join(format!("pair={}", self.pair))
    }

    /// `root/venue=V/pair=P/_manifest.json`.
    pub fn manifest_path(&self, root: &Path) -> PathBuf {
        self.dir(root).join(MANIFEST)
    }

    /// `root/venue=V/pair=P/date=YYYY-MM-DD/trades.EXT`: where the day's file goes.
    pub fn day_path(&self, root: &Path, date: Date, format: Format) -> PathBuf {
        self.dir(root).join(day_file(date, format))
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "venue={}/pair={}", self.venue, self.pair)
    }
}

/// A day's file relative to its pair's directory: `date=YYYY-MM-DD/trades.EXT` (what the
/// manifest records, with `/` on every system).
pub fn day_file(date: Date, format: Format) -> String {
    format!("date={date}/trades.{}", format.extension())
}

/// The day's seconds, `[start, end)` in unix seconds (a UTC day is 86 400 of them).
pub fn day_bounds(date: Date) -> Result<(i64, i64), DatasetError> {
    let start = Offset::UTC
        .to_timestamp(date.to_datetime(Time::midnight()))
        .map_err(|_| DatasetError::BadDate { date })?
        .as_second();
    Ok((start, start + 86_400))
}

/// The UTC day of a unix second; `None` out of the range of dates (beyond the years ±9999).
pub fn date_of(unix: i64) -> Option<Date> {
    Some(
        Offset::UTC
            .to_datetime(Timestamp::from_second(unix).ok()?)
            .date(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_have_their_hive_path() {
        let partition = Partition::new("binance", "BTCUSDT").unwrap();
        let date = Date::new(2024, 3, 5).unwrap();
        assert_eq!(
            partition.day_path(Path::new("/data"), date, Format::Parquet),
            Path::new("/data/venue=binance/pair=BTCUSDT/date=2024-03-05/trades.parquet")
        );
        assert_eq!(
            partition.manifest_path(Path::new("/data")),
            Path::new("/data/venue=binance/pair=BTCUSDT/_manifest.json")
        );
        assert_eq!(
            day_file(date, Format::Jsonl),
            "date=2024-03-05/trades.jsonl"
        );
        assert_eq!(partition.to_string(), "venue=binance/pair=BTCUSDT");
        assert!(Partition::new("poloniex", "USDT_BTC").is_ok());
        for (venue, pair) in [
            ("binance", "BTC/USDT"),
            ("binance", ""),
            ("binance", "_x"),
            ("binance", ".x"),
            ("bin=ance", "BTCUSDT"),
            ("binance", "BTC USDT"),
        ] {
            assert!(
                matches!(
                    Partition::new(venue, pair),
                    Err(DatasetError::BadName { .. })
                ),
                "{venue} {pair}"
            );
        }
    }

    #[test]
    fn a_day_is_its_utc_seconds() {
        let date = Date::new(2024, 3, 5).unwrap();
        assert_eq!(day_bounds(date).unwrap(), (1_709_596_800, 1_709_683_200));
        assert_eq!(date_of(1_709_596_800), Some(date));
        assert_eq!(date_of(1_709_683_199), Some(date));
        assert_eq!(date_of(1_709_683_200), Date::new(2024, 3, 6).ok());
        assert_eq!(date_of(-1), Date::new(1969, 12, 31).ok());
    }
}

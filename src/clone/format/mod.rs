//! The output formats, one file each, behind one trait: [`Encoder`] turns trades, handed over
//! in the order they are to be written, into the bytes of a format.
//!
//! - [`csv`]: a header, then `tradeID,date,type,rate,amount,total`, one trade a line.
//! - [`jsonl`]: one JSON object a line, with the API's field names; and [`jsonl::read`], which
//!   reads such a file back into entries.
//! - [`parquet`]: typed columns (UTC timestamps, exact decimals at the venue's scales), zstd,
//!   bounded row groups, the same bytes for the same rows.
//!
//! The line formats can be continued where a run stopped ([`Encoder::resume_point`]: the
//! bytes written, which the journal records); Parquet cannot, a Parquet file is whole or absent.
//! An output format goes here: a file with its encoder, a variant of [`Format`] and a line in
//! [`encoder`] (and [`continuing`] if it can be continued).
//!
//! An encoder must never decide what is written, nor in what order: [`crate::clone::output`]
//! does (time order, each trade once, the gap check). It must never change a value either: a
//! decimal a format cannot hold exactly is an error, never rounded.

pub mod csv;
pub mod jsonl;
pub mod parquet;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::VenueName;
use crate::domain::decimal::ScaleError;
use crate::domain::utc::format_utc;
use crate::proto::{cloned_entry, ClonedEntry};

/// How trades are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A header line, then one trade per line: `tradeID,date,type,rate,amount,total`.
    Csv,
    /// One JSON object per line, with the API's field names.
    Jsonl,
    /// Apache Parquet: typed columns, zstd; written whole (a stopped clone starts it again).
    Parquet,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }

    /// The extension its files get.
    pub fn extension(self) -> &'static str {
        self.name()
    }

    /// Whether a file of it can be continued where a run stopped (the line formats).
    pub fn resumable(self) -> bool {
        !matches!(self, Format::Parquet)
    }

    /// The format a file name's extension asks for: `.csv`, `.jsonl` / `.ndjson`, or
    /// `.parquet`.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The format to write in: the one `asked` for (`--format`), else the one `out`'s extension
    /// asks for, else CSV (on stdout).
    pub fn choose(asked: Option<Format>, out: Option<&Path>) -> Result<Format, UnknownFormat> {
        match (asked, out) {
            (Some(format), _) => Ok(format),
            (None, None) => Ok(Format::Csv),
            (None, Some(path)) => Format::from_path(path).ok_or_else(|| UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An output file whose extension names no format, and no `--format`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--out {}: use a .csv, .jsonl or .parquet file name, or --format csv|jsonl|parquet",
    path.display()
)]
pub struct UnknownFormat {
    pub path: PathBuf,
}

/// The resolution of a venue's trade times: which field a typed format takes a time from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Unix seconds, from `ClonedEntry.date` (Poloniex).
    Seconds,
    /// Unix milliseconds, from `ClonedEntry.time_ms` (Binance).
    Milliseconds,
}

/// Digits after the point of a venue's decimals: what a typed format stores them at. A value
/// with more is refused, never rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scales {
    pub price: u8,
    pub amount: u8,
    pub total: u8,
}

/// What a venue's trades look like to a typed format (the line formats write the strings as
/// they are and need none of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    pub time: Resolution,
    pub scales: Scales,
    /// The venue aggregates trades and says which it stands for: `first_trade_id` and
    /// `last_trade_id` columns.
    pub trade_id_range: bool,
}

impl Columns {
    /// Poloniex: seconds; rate, amount and total with 8 decimals, as the API writes them.
    pub const POLONIEX: Columns = Columns {
        time: Resolution::Seconds,
        scales: Scales {
            price: 8,
            amount: 8,
            total: 8,
        },
        trade_id_range: false,
    };

    /// Binance spot: milliseconds; price and quantity with 8 decimals (the API's strings), the
    /// total price × quantity exactly, so 16 ([`crate::domain::decimal::multiply`]); the
    /// aggregate's first and last trade ids.
    pub const BINANCE: Columns = Columns {
        time: Resolution::Milliseconds,
        scales: Scales {
            price: 8,
            amount: 8,
            total: 16,
        },
        trade_id_range: true,
    };

    pub fn of(venue: VenueName) -> Columns {
        match venue {
            VenueName::Poloniex => Columns::POLONIEX,
            VenueName::Binance => Columns::BINANCE,
        }
    }
}

/// What an encoder wrote, once finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub trades: u64,
    /// The output's length, counting what it continues.
    pub bytes: u64,
}

/// A trade a format cannot write, or the writer failing.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
    /// A decimal the format's scale cannot hold exactly (or not a decimal at all).
    #[error("trade {trade_id}: {field} {value:?} {problem}")]
    Decimal {
        trade_id: i64,
        field: &'static str,
        value: String,
        problem: ScaleError,
    },
    /// A field the format's columns need is unset (a millisecond time from a venue of seconds).
    #[error("trade {trade_id}: no {field}, which the {format} columns need")]
    Missing {
        trade_id: i64,
        field: &'static str,
        format: Format,
    },
    #[error("encoding Parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("building the Parquet columns: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Asked to continue a file of a format that is written whole.
    #[error("a {0} file cannot be continued: it is written whole or not at all")]
    NotResumable(Format),
}

/// Trades to the bytes of one format, written to `W`. `Send`, so that a caller may write on a
/// thread of its own (a day's file off the actors' thread).
pub trait Encoder<W>: Send {
    /// Writes one trade (after every one written before it: the order is the caller's).
    fn write(&mut self, entry: &ClonedEntry) -> Result<(), FormatError>;

    /// Pushes what is encoded through to `W` (not to disk: the caller syncs), as far as the
    /// format lets: Parquet holds the row group it is filling.
    fn flush(&mut self) -> std::io::Result<()>;

    /// After [`Encoder::flush`]: the output's length, which a later run may cut the file back
    /// to and continue from ([`continuing`]); `None` for a format written whole.
    fn resume_point(&self) -> Option<u64>;

    /// Trades written so far.
    fn trades(&self) -> u64;

    /// Ends the output (Parquet's footer), flushes `W` and hands it back with what was written.
    fn finish(self: Box<Self>) -> Result<(W, Written), FormatError>;
}

/// A new output of `format` to `writer` (the CSV header at once); `columns` type Parquet's.
pub fn encoder<W: Write + Send + 'static>(
    format: Format,
    writer: W,
    columns: &Columns,
) -> Result<Box<dyn Encoder<W>>, FormatError> {
    Ok(match format {
        Format::Csv => Box::new(csv::CsvEncoder::new(writer)?),
        Format::Jsonl => Box::new(jsonl::JsonlEncoder::new(writer)),
        Format::Parquet => Box::new(parquet::ParquetEncoder::new(writer, columns)?),
    })
}

/// An output of `format` that continues one of `bytes` bytes: `writer` appends to it (no
/// header). Parquet cannot be continued.
pub fn continuing<W: Write + Send + 'static>(
    format: Format,
    writer: W,
    bytes: u64,
) -> Result<Box<dyn Encoder<W>>, FormatError> {
    Ok(match format {
        Format::Csv => Box::new(csv::CsvEncoder::continuing(writer, bytes)),
        Format::Jsonl => Box::new(jsonl::JsonlEncoder::continuing(writer, bytes)),
        Format::Parquet => return Err(FormatError::NotResumable(format)),
    })
}

/// `W`, counting the bytes that go through it.
pub(crate) struct Counting<W: Write> {
    pub(crate) inner: W,
    pub(crate) bytes: u64,
}

impl<W: Write> Counting<W> {
    pub(crate) fn new(inner: W, bytes: u64) -> Self {
        Counting { inner, bytes }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The taker's side as the line formats and Parquet write it.
pub(crate) fn side(e: &ClonedEntry) -> &'static str {
    if e.r#type == cloned_entry::Type::Buy as i32 {
        "buy"
    } else {
        "sell"
    }
}

/// The date as the line formats write it: the API's `2018-10-22 15:03:57`, with the venue's
/// milliseconds when it has them (`2018-10-22 15:03:57.123`).
pub(crate) fn line_date(e: &ClonedEntry) -> String {
    match e.time_ms {
        Some(ms) => format!("{}.{:03}", format_utc(e.date), ms.rem_euclid(1000)),
        None => format_utc(e.date),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(Format::from_path(Path::new("a.csv")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("a.JSONL")), Some(Format::Jsonl));
        assert_eq!(
            Format::from_path(Path::new("a.ndjson")),
            Some(Format::Jsonl)
        );
        assert_eq!(
            Format::from_path(Path::new("day.parquet")),
            Some(Format::Parquet)
        );
        assert_eq!(Format::from_path(Path::new("a.txt")), None);
        assert_eq!(Format::from_path(Path::new("a")), None);
        assert_eq!(
            Format::choose(None, Some(Path::new("x.txt")))
                .unwrap_err()
                .to_string(),
            "--out x.txt: use a .csv, .jsonl or .parquet file name, or --format csv|jsonl|parquet"
        );
        assert_eq!(Format::choose(None, None), Ok(Format::Csv));
        assert!(Format::Jsonl.resumable() && !Format::Parquet.resumable());
    }

    #[test]
    fn parquet_is_not_continued() {
        let err = continuing(Format::Parquet, Vec::new(), 10).err().unwrap();
        assert!(matches!(err, FormatError::NotResumable(Format::Parquet)));
    }
}

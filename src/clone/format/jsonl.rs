//! JSON Lines: one JSON object a line, with the API's field names (`tradeID`, `date`, `type`,
//! `rate`, `amount`, `total`), and [`read`], which streams such a file back into entries (so
//! that a day staged as JSON Lines can be encoded again, as Parquet).
//!
//! With [`JsonlEncoder::with_trade_id_range`] a line also carries `firstTradeID` and
//! `lastTradeID` when the trade has them: for staging, where the extras must survive the way
//! back; the clone's output never has them, its lines stay as they always were.
//!
//! It must never change its bytes (files of earlier versions are continued by this one), nor
//! read a line into anything but exactly what was written.

use std::fs::File;
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::clone::format::{line_date, side, Counting, Encoder, FormatError, Written};
use crate::domain::utc::parse_utc_datetime;
use crate::proto::{cloned_entry, ClonedEntry};

/// Trades as JSON lines to `W`.
pub struct JsonlEncoder<W: Write> {
    writer: Counting<W>,
    trades: u64,
    trade_id_range: bool,
}

impl<W: Write> JsonlEncoder<W> {
    pub fn new(writer: W) -> Self {
        JsonlEncoder::continuing(writer, 0)
    }

    /// Appends to a file of `bytes` bytes.
    pub fn continuing(writer: W, bytes: u64) -> Self {
        JsonlEncoder {
            writer: Counting::new(writer, bytes),
            trades: 0,
            trade_id_range: false,
        }
    }

    /// Lines carry `firstTradeID` and `lastTradeID` too, when set: for staging, not output.
    pub fn with_trade_id_range(mut self) -> Self {
        self.trade_id_range = true;
        self
    }
}

impl<W: Write + Send> Encoder<W> for JsonlEncoder<W> {
    fn write(&mut self, e: &ClonedEntry) -> Result<(), FormatError> {
        // serde_json's map orders the keys: the bytes are the same whatever order they are
        // named in here.
        let mut line = serde_json::json!({
            "tradeID": e.trade_id,
            "date": line_date(e),
            "type": side(e),
            "rate": e.rate,
            "amount": e.amount,
            "total": e.total,
        });
        if self.trade_id_range {
            for (key, id) in [
                ("firstTradeID", e.first_trade_id),
                ("lastTradeID", e.last_trade_id),
            ] {
                if let Some(id) = id {
                    line[key] = id.into();
                }
            }
        }
        writeln!(self.writer, "{line}")?;
        self.trades += 1;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    fn resume_point(&self) -> Option<u64> {
        Some(self.writer.bytes)
    }

    fn trades(&self) -> u64 {
        self.trades
    }

    fn finish(mut self: Box<Self>) -> Result<(W, Written), FormatError> {
        self.writer.flush()?;
        let written = Written {
            trades: self.trades,
            bytes: self.writer.bytes,
        };
        Ok((self.writer.inner, written))
    }
}

/// A JSON Lines file that does not read back into entries.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}, line {line}: {problem}", path.display())]
    Line {
        path: PathBuf,
        line: u64,
        problem: String,
    },
}

/// The entries of the JSON Lines file at `path`, one line at a time (memory holds one line):
/// what [`JsonlEncoder`] wrote, back as it was, `first_trade_id` and `last_trade_id`
/// included when the lines carry them.
pub fn read(path: &Path) -> Result<Entries, ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Entries {
        lines: BufReader::new(file).lines(),
        path: path.to_path_buf(),
        line: 0,
    })
}

/// The entries of a JSON Lines file, in the file's order; after an error, nothing more.
pub struct Entries {
    lines: Lines<BufReader<File>>,
    path: PathBuf,
    line: u64,
}

impl Iterator for Entries {
    type Item = Result<ClonedEntry, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let text = match self.lines.next()? {
            Ok(text) => text,
            Err(source) => {
                return Some(Err(ReadError::Io {
                    path: self.path.clone(),
                    source,
                }))
            }
        };
        self.line += 1;
        Some(parse_line(&text).map_err(|problem| ReadError::Line {
            path: self.path.clone(),
            line: self.line,
            problem,
        }))
    }
}

/// A line as [`JsonlEncoder`] writes it; every field but the extras is required, and nothing
/// else is allowed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(rename = "tradeID")]
    trade_id: i64,
    date: String,
    #[serde(rename = "type")]
    side: String,
    rate: String,
    amount: String,
    total: String,
    #[serde(rename = "firstTradeID")]
    first_trade_id: Option<i64>,
    #[serde(rename = "lastTradeID")]
    last_trade_id: Option<i64>,
}

fn parse_line(text: &str) -> Result<ClonedEntry, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let (date, time_ms) = parse_line_date(&line.date)
        .ok_or_else(|| format!("date {:?} is not YYYY-MM-DD HH:MM:SS[.mmm]", line.date))?;
    let side = match line.side.as_str() {
        "buy" => cloned_entry::Type::Buy,
        "sell" => cloned_entry::Type::Sell,
        other => return Err(format!("type {other:?} is neither buy nor sell")),
    };
    Ok(ClonedEntry {
        trade_id: line.trade_id,
        date,
        r#type: side as i32,
        rate: line.rate,
        amount: line.amount,
        total: line.total,
        time_ms,
        first_trade_id: line.first_trade_id,
        last_trade_id: line.last_trade_id,
    })
}

/// `2018-10-22 15:03:57` → its second; `2018-10-22 15:03:57.123` → its second and millisecond.
fn parse_line_date(s: &str) -> Option<(i64, Option<i64>)> {
    let (second, millis) = match s.split_at_checked(19)? {
        (second, "") => (second, None),
        (second, fraction) => {
            let digits = fraction.strip_prefix('.')?;
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (second, Some(digits.parse::<i64>().ok()?))
        }
    };
    let date = parse_utc_datetime(second)?;
    Some((date, millis.map(|ms| date * 1000 + ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binance(id: i64, ms: i64) -> ClonedEntry {
        ClonedEntry {
            trade_id: id,
            date: ms.div_euclid(1000),
            r#type: cloned_entry::Type::Buy as i32,
            rate: "65000.10000000".into(),
            amount: "0.00200000".into(),
            total: "130.0002".into(),
            time_ms: Some(ms),
            first_trade_id: Some(id * 2),
            last_trade_id: Some(id * 2 + 1),
        }
    }

    fn write(entries: &[ClonedEntry], staging: bool) -> Vec<u8> {
        let mut encoder = JsonlEncoder::new(Vec::new());
        if staging {
            encoder = encoder.with_trade_id_range();
        }
        let mut encoder = Box::new(encoder);
        for e in entries {
            encoder.write(e).unwrap();
        }
        encoder.finish().unwrap().0
    }

    fn read_back(name: &str, bytes: &[u8]) -> Vec<Result<ClonedEntry, ReadError>> {
        let dir = std::env::temp_dir().join(format!("jsonl-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("day.jsonl");
        std::fs::write(&path, bytes).unwrap();
        let got = read(&path).unwrap().collect();
        std::fs::remove_dir_all(&dir).unwrap();
        got
    }

    #[test]
    fn staged_lines_read_back_into_the_same_entries() {
        let day = 1_709_596_800_000; // 2024-03-05 00:00:00.000 UTC
        let entries = vec![
            binance(1, day),
            binance(2, day + 999),
            binance(3, day + 86_399_001),
            ClonedEntry {
                trade_id: 4,
                date: 1_540_220_637,
                r#type: cloned_entry::Type::Sell as i32,
                rate: "0.03143485".into(),
                amount: "0.00009034".into(),
                total: "0.00000283".into(),
                ..Default::default()
            },
        ];
        let bytes = write(&entries, true);
        let got: Vec<ClonedEntry> = read_back("staged", &bytes)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, entries);
        // Without the range, the lines are the output's: read back without the extras.
        let plain = write(&entries, false);
        assert!(!String::from_utf8_lossy(&plain).contains("TradeID\":"));
        let got: Vec<ClonedEntry> = read_back("plain", &plain)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let mut without = entries.clone();
        for e in &mut without {
            (e.first_trade_id, e.last_trade_id) = (None, None);
        }
        assert_eq!(got, without);
        assert_eq!(
            String::from_utf8(plain).unwrap().lines().next().unwrap(),
            r#"{"amount":"0.00200000","date":"2024-03-05 00:00:00.000","rate":"65000.10000000","total":"130.0002","tradeID":1,"type":"buy"}"#
        );
    }

    #[test]
    fn a_line_that_is_not_an_entry_is_an_error_naming_it() {
        let good = r#"{"amount":"1","date":"2024-03-05 00:00:00","rate":"1","total":"1","tradeID":1,"type":"buy"}"#;
        for (bad, says) in [
            (
                r#"{"amount":"1","date":"2024-03-05","rate":"1","total":"1","tradeID":2,"type":"buy"}"#,
                "is not YYYY",
            ),
            (
                r#"{"amount":"1","date":"2024-03-05 00:00:00.12","rate":"1","total":"1","tradeID":2,"type":"buy"}"#,
                "is not YYYY",
            ),
            (
                r#"{"amount":"1","date":"2024-03-05 00:00:00","rate":"1","total":"1","tradeID":2,"type":"bid"}"#,
                "neither buy nor sell",
            ),
            (
                r#"{"amount":"1","date":"2024-03-05 00:00:00","rate":"1","tradeID":2,"type":"buy"}"#,
                "missing field `total`",
            ),
            (
                r#"{"amount":"1","date":"2024-03-05 00:00:00","rate":"1","total":"1","tradeID":2,"type":"buy","x":1}"#,
                "unknown field",
            ),
            (r#"{"amount":"1","date":"2024-03-05 00:0"#, "EOF"),
        ] {
            let got = read_back("bad", format!("{good}\n{bad}\n").as_bytes());
            assert!(got[0].is_ok());
            let err = got[1].as_ref().unwrap_err().to_string();
            assert!(err.contains("line 2: ") && err.contains(says), "{err}");
        }
        let missing = read(Path::new("/nonexistent/day.jsonl")).err().unwrap();
        assert!(matches!(missing, ReadError::Io { .. }));
    }
}

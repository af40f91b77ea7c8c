//! One day of one pair written as its dataset file: [`DayWriter`] takes the day's trades in
//! order, encodes them in the dataset's format, and on [`DayWriter::finish`] renames the whole,
//! synced file to the day's name and says what it holds (the manifest's [`DayRecord`]: trades,
//! first and last id, size, SHA-256 of the bytes as written).
//!
//! It must never put a trade of another day into a day's file, nor one out of id order, and
//! never leave a file under the day's name that is not whole: a writer dropped before it
//! finishes (an error, a stop) leaves the day as it was.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use sha2::{Digest, Sha256};

use crate::clone::dataset::atomic::Staged;
use crate::clone::dataset::{day_bounds, day_file, DatasetError, DayRecord, Partition};
use crate::clone::format::{self, Columns, Encoder, Format, FormatError};
use crate::proto::ClonedEntry;

/// A day's file being written.
pub struct DayWriter {
    date: Date,
    file: String,
    target: PathBuf,
    staged: Staged,
    encoder: Box<dyn Encoder<Hashing<BufWriter<File>>>>,
    /// The day's seconds, `[start, end)`.
    bounds: (i64, i64),
    first: Option<i64>,
    last: Option<i64>,
}

impl DayWriter {
    /// Starts `date`'s file of `partition` under `root`, in `format` (`columns` type Parquet's);
    /// the day's directory is created if need be. Nothing carries the day's name until
    /// [`DayWriter::finish`].
    pub fn create(
        root: &Path,
        partition: &Partition,
        date: Date,
        format: Format,
        columns: &Columns,
    ) -> Result<DayWriter, DatasetError> {
        let bounds = day_bounds(date)?;
        let target = partition.day_path(root, date, format);
        let (staged, file) = Staged::create(&target).map_err(DatasetError::io(&target))?;
        let writer = Hashing::new(BufWriter::new(file));
        let encoder =
            format::encoder(format, writer, columns).map_err(|source| DatasetError::Format {
                path: staged.temp_path().to_path_buf(),
                source,
            })?;
        Ok(DayWriter {
            date,
            file: day_file(date, format),
            target,
            staged,
            encoder,
            bounds,
            first: None,
            last: None,
        })
    }

    /// The day written.
    pub fn date(&self) -> Date {
        self.date
    }

    /// Where the file will be once finished.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Appends a trade of the day, after every one before it (ids rise).
    pub fn write(&mut self, entry: &ClonedEntry) -> Result<(), DatasetError> {
        if !(self.bounds.0..self.bounds.1).contains(&entry.date) {
            return Err(DatasetError::OtherDay {
                trade_id: entry.trade_id,
                time: entry.date,
                date: self.date,
            });
        }
        if let Some(last) = self.last.filter(|&last| entry.trade_id <= last) {
            return Err(DatasetError::OutOfOrder {
                trade_id: entry.trade_id,
                last,
            });
        }
        self.encoder
            .write(entry)
            .map_err(|e| self.format_error(e))?;
        self.first.get_or_insert(entry.trade_id);
        self.last = Some(entry.trade_id);
        Ok(())
    }

    /// Trades written so far.
    pub fn trades(&self) -> u64 {
        self.encoder.trades()
    }

    fn format_error(&self, source: FormatError) -> DatasetError {
        DatasetError::Format {
            path: self.staged.temp_path().to_path_buf(),
            source,
        }
    }

    /// Ends the file, syncs it, gives it the day's name (replacing what had it) and syncs the
    /// directory; the record of what it holds, for the manifest.
    pub fn finish(self) -> Result<DayRecord, DatasetError> {
        let temp = self.staged.temp_path().to_path_buf();
        let format_error = |source| DatasetError::Format {
            path: temp.clone(),
            source,
        };
        let (hashing, written) = self.encoder.finish().map_err(format_error)?;
        let (writer, sha256, bytes) = hashing.finish();
        debug_assert_eq!(bytes, written.bytes);
        let file = writer
            .into_inner()
            .map_err(|e| DatasetError::io(&temp)(e.into_error()))?;
        self.staged
            .commit(file)
            .map_err(DatasetError::io(&self.target))?;
        Ok(DayRecord {
            date: self.date,
            file: self.file,
            trades: written.trades,
            first_trade_id: self.first,
            last_trade_id: self.last,
            sha256,
            bytes,
        })
    }
}

/// `W`, hashing and counting the bytes that go through it.
pub(crate) struct Hashing<W: Write> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Hashing {
            inner,
            sha: Sha256::new(),
            bytes: 0,
        }
    }

    /// The writer, the SHA-256 of what went through it (lower-case hex) and its length.
    pub(crate) fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.sha.finalize()), self.bytes)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Lower-case hex, as `sha256sum` writes digests.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::cloned_entry;

    /// 2024-03-05 00:00:00 UTC.
    const DAY: i64 = 1_709_596_800;

    fn date() -> Date {
        Date::new(2024, 3, 5).unwrap()
    }

    fn root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("day-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn trade(id: i64, date: i64) -> ClonedEntry {
        ClonedEntry {
            trade_id: id,
            date,
            r#type: cloned_entry::Type::Buy as i32,
            rate: "0.03143485".into(),
            amount: "1".into(),
            total: "0.03143485".into(),
            ..Default::default()
        }
    }

    /// Every name under `dir`, relative, sorted.
    fn tree(dir: &Path) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let path = e.unwrap().path();
                out.push(path.strip_prefix(base).unwrap().display().to_string());
                if path.is_dir() {
                    walk(base, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    #[test]
    fn a_finished_day_is_named_and_recorded_with_its_checksum() {
        let root = root("finished");
        let partition = Partition::new("poloniex", "USDT_BTC").unwrap();
        let mut day =
            DayWriter::create(&root, &partition, date(), Format::Csv, &Columns::POLONIEX).unwrap();
        assert!(
            !day.path().exists(),
            "nothing has the day's name while it is written"
        );
        day.write(&trade(10, DAY)).unwrap();
        day.write(&trade(12, DAY + 86_399)).unwrap();
        let path = day.path().to_path_buf();
        let record = day.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "tradeID,date,type,rate,amount,total\n\
             10,2024-03-05 00:00:00,buy,0.03143485,1,0.03143485\n\
             12,2024-03-05 23:59:59,buy,0.03143485,1,0.03143485\n"
        );
        assert_eq!(
            record,
            DayRecord {
                date: date(),
                file: "date=2024-03-05/trades.csv".into(),
                trades: 2,
                first_trade_id: Some(10),
                last_trade_id: Some(12),
                sha256: hex(&Sha256::digest(&bytes)),
                bytes: bytes.len() as u64,
            }
        );
        assert_eq!(
            tree(&root),
            [
                "venue=poloniex",
                "venue=poloniex/pair=USDT_BTC",
                "venue=poloniex/pair=USDT_BTC/date=2024-03-05",
                "venue=poloniex/pair=USDT_BTC/date=2024-03-05/trades.csv",
            ]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_day_that_fails_leaves_no_file_and_the_old_one_as_it_was() {
        let root = root("failed");
        let partition = Partition::new("poloniex", "USDT_BTC").unwrap();
        let create = || {
            DayWriter::create(
                &root,
                &partition,
                date(),
                Format::Parquet,
                &Columns::POLONIEX,
            )
            .unwrap()
        };
        // Refused: a digit past the scale. Dropped: nothing is left, not even the temporary.
        let mut day = create();
        day.write(&trade(1, DAY)).unwrap();
        let mut bad = trade(2, DAY + 1);
        bad.rate = "0.031434851".into();
        let err = day.write(&bad).unwrap_err();
        assert!(
            err.to_string().contains("more than the scale of 8"),
            "{err}"
        );
        drop(day);
        let dir = partition.dir(&root).join("date=2024-03-05");
        assert_eq!(tree(&dir), Vec::<String>::new());
        // A day held already stays as it was when writing it again fails.
        let mut day = create();
        day.write(&trade(1, DAY)).unwrap();
        let record = day.finish().unwrap();
        let held = std::fs::read(dir.join("trades.parquet")).unwrap();
        assert_eq!(record.sha256, hex(&Sha256::digest(&held)));
        let mut day = create();
        day.write(&trade(1, DAY)).unwrap();
        assert!(matches!(
            day.write(&trade(1, DAY)),
            Err(DatasetError::OutOfOrder {
                trade_id: 1,
                last: 1
            })
        ));
        assert!(matches!(
            day.write(&trade(5, DAY + 86_400)),
            Err(DatasetError::OtherDay { trade_id: 5, .. })
        ));
        assert!(matches!(
            day.write(&trade(6, DAY - 1)),
            Err(DatasetError::OtherDay { .. })
        ));
        drop(day);
        assert_eq!(std::fs::read(dir.join("trades.parquet")).unwrap(), held);
        assert_eq!(tree(&dir), ["trades.parquet"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_day_may_be_written_on_a_thread_of_its_own() {
        fn send<T: Send>() {}
        send::<DayWriter>();
    }

    #[test]
    fn the_same_day_gives_the_same_bytes() {
        let root = root("same");
        let partition = Partition::new("binance", "BTCUSDT").unwrap();
        let write = || {
            let mut day = DayWriter::create(
                &root,
                &partition,
                date(),
                Format::Parquet,
                &Columns::BINANCE,
            )
            .unwrap();
            for i in 0..100 {
                let mut t = trade(i, DAY + i);
                t.time_ms = Some((DAY + i) * 1000 + 7);
                t.first_trade_id = Some(i * 3);
                t.last_trade_id = Some(i * 3 + 2);
                day.write(&t).unwrap();
            }
            day.finish().unwrap()
        };
        let first = write();
        assert_eq!(write(), first);
        std::fs::remove_dir_all(&root).unwrap();
    }
}

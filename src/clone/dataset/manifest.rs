//! A pair's manifest, `venue=V/pair=P/_manifest.json`: the days the dataset holds for it, each
//! with its file, trades, first and last trade id, size and SHA-256, in date order.
//!
//! A caller that keeps the dataset current loads it, asks which days of a range it lacks
//! ([`Manifest::missing`]), writes those ([`crate::clone::dataset::DayWriter`]), records each
//! ([`Manifest::record`]) and saves ([`Manifest::save`], atomic); [`Manifest::verify`] checks a
//! held day's file against its record before it is trusted.
//!
//! It must never list a day whose file was not whole on disk when it was recorded, nor be left
//! half written.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clone::dataset::day::hex;
use crate::clone::dataset::{atomic, DatasetError, Partition};

/// One day held: what its file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayRecord {
    #[serde(with = "date_text")]
    pub date: Date,
    /// The file, relative to the pair's directory: `date=YYYY-MM-DD/trades.EXT`.
    pub file: String,
    pub trades: u64,
    /// The first and last trade id in it; none for a day without trades.
    pub first_trade_id: Option<i64>,
    pub last_trade_id: Option<i64>,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// The file's length.
    pub bytes: u64,
}

/// The days a pair holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    partition: Partition,
    days: BTreeMap<Date, DayRecord>,
}

/// The manifest as it is on disk.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    venue: String,
    pair: String,
    days: Vec<DayRecord>,
}

/// A held day's file that does not match its record (or a day not held).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{date} is not in the manifest")]
    NotHeld { date: Date },
    #[error("{}: missing", path.display())]
    Missing { path: PathBuf },
    #[error("{}: {found} bytes, the manifest says {recorded}", path.display())]
    Size {
        path: PathBuf,
        recorded: u64,
        found: u64,
    },
    #[error("{}: SHA-256 {found}, the manifest says {recorded}", path.display())]
    Checksum {
        path: PathBuf,
        recorded: String,
        found: String,
    },
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Manifest {
    /// A manifest of no days.
    pub fn new(partition: &Partition) -> Manifest {
        Manifest {
            partition: partition.clone(),
            days: BTreeMap::new(),
        }
    }

    /// `partition`'s manifest under `root`; one of no days if there is none yet. One that does
    /// not parse, or names another partition, is an error: the caller decides what to trust.
    pub fn load(root: &Path, partition: &Partition) -> Result<Manifest, DatasetError> {
        let path = partition.manifest_path(root);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Manifest::new(partition))
            }
            Err(source) => return Err(DatasetError::Io { path, source }),
        };
        let on_disk: OnDisk =
            serde_json::from_slice(&bytes).map_err(|source| DatasetError::Manifest {
                path: path.clone(),
                source,
            })?;
        let found = Partition::new(&on_disk.venue, &on_disk.pair)?;
        if &found != partition {
            return Err(DatasetError::OtherPartition {
                path,
                found: found.to_string(),
                expected: partition.to_string(),
            });
        }
        let days = on_disk.days.into_iter().map(|d| (d.date, d)).collect();
        Ok(Manifest {
            partition: partition.clone(),
            days,
        })
    }

    /// Writes the manifest under `root`, atomically (a crash leaves the old one or this one).
    pub fn save(&self, root: &Path) -> Result<(), DatasetError> {
        let path = self.partition.manifest_path(root);
        let on_disk = OnDisk {
            venue: self.partition.venue().to_string(),
            pair: self.partition.pair().to_string(),
            days: self.days.values().cloned().collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&on_disk).expect("a manifest serializes");
        bytes.push(b'\n');
        atomic::write(&path, &bytes).map_err(DatasetError::io(&path))
    }

    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Records a day (its file finished), replacing its earlier record; the earlier one back.
    pub fn record(&mut self, day: DayRecord) -> Option<DayRecord> {
        self.days.insert(day.date, day)
    }

    /// Forgets a day (its file found wrong, to be written again).
    pub fn forget(&mut self, date: Date) -> Option<DayRecord> {
        self.days.remove(&date)
    }

    pub fn day(&self, date: Date) -> Option<&DayRecord> {
        self.days.get(&date)
    }

    pub fn holds(&self, date: Date) -> bool {
        self.days.contains_key(&date)
    }

    /// Every day held, in date order.
    pub fn days(&self) -> impl Iterator<Item = &DayRecord> {
        self.days.values()
    }

    /// The days of `[from, until)` not held, in date order.
    pub fn missing(&self, from: Date, until: Date) -> impl Iterator<Item = Date> + '_ {
        from.series(jiff::Span::new().days(1))
            .take_while(move |&d| d < until)
            .filter(|d| !self.holds(*d))
    }

    /// Checks the held day's file under `root` against its record: there, as long, the same
    /// SHA-256 (read through once, a buffer at a time).
    pub fn verify(&self, root: &Path, date: Date) -> Result<(), VerifyError> {
        let day = self.day(date).ok_or(VerifyError::NotHeld { date })?;
        let path = self.partition.dir(root).join(&day.file);
        let io = |source| VerifyError::Io {
            path: path.clone(),
            source,
        };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VerifyError::Missing { path })
            }
            Err(e) => return Err(io(e)),
        };
        let found = file.metadata().map_err(io)?.len();
        if found != day.bytes {
            return Err(VerifyError::Size {
                path,
                recorded: day.bytes,
                found,
            });
        }
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
        }
        let found = hex(&sha.finalize());
        if found != day.sha256 {
            return Err(VerifyError::Checksum {
                path,
                recorded: day.sha256.clone(),
                found,
            });
        }
        Ok(())
    }
}

/// A date as `YYYY-MM-DD`.
mod date_text {
    use jiff::civil::Date;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(date: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(date)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("date {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::dataset::DayWriter;
    use crate::clone::format::{Columns, Format};
    use crate::proto::ClonedEntry;

    fn root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("manifest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn date(day: i8) -> Date {
        Date::new(2024, 3, day).unwrap()
    }

    /// Writes a day of `n` trades and records it.
    fn write_day(root: &Path, manifest: &mut Manifest, day: i8, n: i64) -> DayRecord {
        let start = crate::clone::dataset::day_bounds(date(day)).unwrap().0;
        let mut writer = DayWriter::create(
            root,
            manifest.partition(),
            date(day),
            Format::Jsonl,
            &Columns::POLONIEX,
        )
        .unwrap();
        for i in 0..n {
            writer
                .write(&ClonedEntry {
                    trade_id: i64::from(day) * 1000 + i,
                    date: start + i,
                    rate: "1.5".into(),
                    ..Default::default()
                })
                .unwrap();
        }
        let record = writer.finish().unwrap();
        manifest.record(record.clone());
        record
    }

    #[test]
    fn a_manifest_round_trips_and_says_which_days_are_missing() {
        let root = root("round");
        let partition = Partition::new("poloniex", "USDT_BTC").unwrap();
        let mut manifest = Manifest::load(&root, &partition).unwrap();
        assert_eq!(manifest, Manifest::new(&partition), "none yet: no days");
        let fifth = write_day(&root, &mut manifest, 5, 3);
        write_day(&root, &mut manifest, 7, 0);
        manifest.save(&root).unwrap();
        let loaded = Manifest::load(&root, &partition).unwrap();
        assert_eq!(loaded, manifest);
        assert_eq!(loaded.day(date(5)), Some(&fifth));
        assert_eq!(
            (fifth.trades, fifth.first_trade_id, fifth.last_trade_id),
            (3, Some(5000), Some(5002))
        );
        let empty = loaded.day(date(7)).unwrap();
        assert_eq!((empty.trades, empty.first_trade_id), (0, None));
        let missing: Vec<Date> = loaded.missing(date(4), date(9)).collect();
        assert_eq!(missing, [date(4), date(6), date(8)]);
        let text = std::fs::read_to_string(partition.manifest_path(&root)).unwrap();
        assert!(
            text.contains(r#""date": "2024-03-05""#)
                && text.contains(r#""file": "date=2024-03-05/trades.jsonl""#),
            "{text}"
        );
        // Recording a day again replaces it.
        let again = write_day(&root, &mut manifest, 5, 4);
        assert_eq!(manifest.day(date(5)), Some(&again));
        assert_eq!(manifest.days().count(), 2);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_held_day_is_checked_against_its_file() {
        let root = root("verify");
        let partition = Partition::new("poloniex", "USDT_BTC").unwrap();
        let mut manifest = Manifest::new(&partition);
        write_day(&root, &mut manifest, 5, 3);
        manifest.verify(&root, date(5)).unwrap();
        assert!(matches!(
            manifest.verify(&root, date(6)),
            Err(VerifyError::NotHeld { .. })
        ));
        let path = partition.day_path(&root, date(5), Format::Jsonl);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            manifest.verify(&root, date(5)),
            Err(VerifyError::Checksum { .. })
        ));
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            manifest.verify(&root, date(5)),
            Err(VerifyError::Size { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        let err = manifest.verify(&root, date(5)).unwrap_err();
        assert!(matches!(err, VerifyError::Missing { .. }), "{err}");
        assert!(manifest.forget(date(5)).is_some());
        assert!(!manifest.holds(date(5)));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_manifest_that_is_not_one_is_an_error() {
        let root = root("bad");
        let partition = Partition::new("poloniex", "USDT_BTC").unwrap();
        let path = partition.manifest_path(&root);
        atomic::write(&path, b"{\"venue\": \"poloniex\"").unwrap();
        assert!(matches!(
            Manifest::load(&root, &partition),
            Err(DatasetError::Manifest { .. })
        ));
        Manifest::new(&Partition::new("binance", "USDT_BTC").unwrap())
            .save(&root)
            .unwrap();
        std::fs::rename(
            Partition::new("binance", "USDT_BTC")
                .unwrap()
                .manifest_path(&root),
            &path,
        )
        .unwrap();
        let err = Manifest::load(&root, &partition).unwrap_err();
        assert!(matches!(err, DatasetError::OtherPartition { .. }), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

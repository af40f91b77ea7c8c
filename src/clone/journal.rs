//! The clone's journal, `FILE.journal` beside `FILE.partial`: what the partial output holds, so
//! that running the same command again continues where a run stopped, whatever stopped it.
//!
//! JSON lines. The first says which clone this is ([`Identity`]: pair, range, format); each
//! next one is a [`Progress`]: the partial output holds exactly the trades up to
//! `written_until`, in its first `bytes` bytes, and the check so far. A record is appended only
//! after the output it describes is synced to disk, and the journal is synced after it; a crash
//! at any instant therefore leaves a journal whose last whole record describes a prefix of the
//! partial file (a torn last line is ignored, and the file is cut back to the record's length).
//!
//! It must never describe bytes that are not on disk, nor let a run continue another clone's
//! output.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clone::output::Check;

/// Which clone a partial output belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub pair: String,
    /// The range, `[from, until)`.
    pub from: i64,
    pub until: i64,
    pub format: String,
}

/// What the partial output holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Every trade up to this second (inclusive) is written, none after it.
    pub written_until: i64,
    /// The partial output's length holding them.
    pub bytes: u64,
    pub check: Check,
}

/// A partial output that cannot be continued by this command.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("{partial} is the partial output of another clone ({theirs}); this command asks for {ours}. Run that command again to continue it, or remove {partial} and {journal} to start this one")]
    Differs {
        partial: String,
        journal: String,
        theirs: String,
        ours: String,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}, {}) as {}",
            self.pair, self.from, self.until, self.format
        )
    }
}

/// `FILE.partial` → `FILE.journal`.
pub fn journal_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// An open journal, appended to.
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// A new journal for `identity` at `path` (an old one is replaced), synced.
    pub fn start(path: &Path, identity: &Identity) -> std::io::Result<Journal> {
        let mut file = File::create(path)?;
        writeln!(file, "{}", serde_json::to_string(identity)?)?;
        file.sync_data()?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The journal at `path`, if it is `identity`'s and records progress: the last whole record,
    /// and the journal open for more. `Ok(None)` when there is nothing to continue (no journal,
    /// an empty or unreadable first line, no record yet).
    pub fn resume(
        path: &Path,
        identity: &Identity,
        partial: &Path,
    ) -> Result<Option<(Journal, Progress)>, ResumeError> {
        let io = |source| ResumeError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mut lines = BufReader::new(file).lines();
        let Some(Ok(first)) = lines.next() else {
            return Ok(None);
        };
        let Ok(theirs) = serde_json::from_str::<Identity>(&first) else {
            return Ok(None);
        };
        if &theirs != identity {
            return Err(ResumeError::Differs {
                partial: partial.display().to_string(),
                journal: path.display().to_string(),
                theirs: theirs.to_string(),
                ours: identity.to_string(),
            });
        }
        // The last line that parses whole: a crash may have torn the one after it.
        let last = lines
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Progress>(&l).ok())
            .last();
        let Some(progress) = last else {
            return Ok(None);
        };
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        Ok(Some((
            Journal {
                file,
                path: path.to_path_buf(),
            },
            progress,
        )))
    }

    /// Appends `progress` (whose bytes are synced already) and syncs it.
    pub fn record(&mut self, progress: &Progress) -> std::io::Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(progress)?)?;
        self.file.sync_data()
    }

    /// The clone is complete: the journal goes.
    pub fn remove(self) -> std::io::Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            pair: "USDT_BTC".into(),
            from: 100,
            until: 200,
            format: "csv".into(),
        }
    }

    fn progress(until: i64) -> Progress {
        Progress {
            written_until: until,
            bytes: until as u64 * 10,
            check: Check::default(),
        }
    }

    #[test]
    fn the_last_whole_record_is_continued_and_a_torn_one_ignored() {
        let dir = std::env::temp_dir().join(format!("journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.journal");
        let partial = dir.join("out.csv.partial");
        assert!(Journal::resume(&path, &identity(), &partial)
            .unwrap()
            .is_none());
        let mut journal = Journal::start(&path, &identity()).unwrap();
        assert!(
            Journal::resume(&path, &identity(), &partial)
                .unwrap()
                .is_none(),
            "nothing recorded yet"
        );
        journal.record(&progress(120)).unwrap();
        journal.record(&progress(150)).unwrap();
        // A crash in the middle of the next record.
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        write!(raw, r#"{{"written_until":170,"by"#).unwrap();
        drop(raw);
        let (_, got) = Journal::resume(&path, &identity(), &partial)
            .unwrap()
            .unwrap();
        assert_eq!(got, progress(150));
        // Another clone's partial output is refused, saying what differs.
        let other = Identity {
            pair: "BTC_ETH".into(),
            ..identity()
        };
        let err = Journal::resume(&path, &other, &partial).err().unwrap();
        assert!(
            err.to_string().contains("USDT_BTC [100, 200) as csv"),
            "{err}"
        );
        assert!(
            err.to_string().contains("BTC_ETH [100, 200) as csv"),
            "{err}"
        );
        journal.remove().unwrap();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

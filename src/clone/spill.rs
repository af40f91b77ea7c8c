//! The clone's spill, `FILE.spill` beside `FILE.partial`: every answered window's trades, on
//! disk as soon as they arrive, so that a run that stops loses only the requests in flight.
//!
//! Windows are answered in any order, and the output writes one only after every earlier one
//! ([`crate::clone::output`]); the journal records only what is written. Without the spill, a
//! stop would lose every window answered but still waiting for an earlier one: up to all the
//! pages in flight. With it, the next run of the same command reads back the windows after the
//! journal's last second and asks the exchange only for the rest.
//!
//! Records: a little-endian `u32` length, a little-endian `u32` CRC-32 of the payload, and the
//! payload, a `ClonedChunk` whose `original_todo_chunk` is the window (inclusive seconds) and
//! whose `entries` are every trade of it. Each is appended with one write and not synced: a
//! kill -9 loses nothing the kernel holds; a power loss may tear or lose the tail, which the
//! checksum finds, and reading stops there. Once the file passes [`COMPACT_BYTES`], the windows
//! the output still holds are written to `FILE.spill.new`, synced, and renamed over it, so the
//! file stays about as large as the windows in flight.
//!
//! It must never hand back a window whose record is not whole and checked, nor two windows
//! that overlap.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use prost::Message as _;

use crate::clone::window::Window;
use crate::proto::{ClonedChunk, ClonedEntry, TodoChunk};

/// The file is rewritten with only what the output still holds once it is this long.
pub const COMPACT_BYTES: u64 = 64 << 20;

/// A record longer than this is not one (a torn length): reading stops.
const MAX_RECORD: u32 = 256 << 20;

/// `FILE` → `FILE.spill`.
pub fn spill_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".spill");
    PathBuf::from(name)
}

/// A window read back from the spill, with every trade of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Spilled {
    pub window: Window,
    pub entries: Vec<ClonedEntry>,
}

/// An open spill, appended to.
pub struct Spill {
    file: File,
    path: PathBuf,
    /// The file's length: what is appended goes after it.
    bytes: u64,
}

impl Spill {
    /// A new, empty spill at `path` (an old one is replaced).
    pub fn create(path: &Path) -> std::io::Result<Spill> {
        Ok(Spill {
            file: File::create(path)?,
            path: path.to_path_buf(),
            bytes: 0,
        })
    }

    /// The spill at `path` (a new one if there is none), cut back to its last whole record,
    /// and the windows it holds after `after`, in time order: a window that began before is cut
    /// to its part after (its trades of those seconds are all of them). A window that overlaps
    /// an earlier record's is dropped: its seconds are asked for again.
    pub fn reopen(path: &Path, after: i64) -> std::io::Result<(Spill, Vec<Spilled>)> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Spill::create(path)?, Vec::new()))
            }
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        let (mut windows, mut whole) = (Vec::new(), 0u64);
        while let Some((mut spilled, len)) = read_record(&mut reader)? {
            whole += len;
            if spilled.window.until > after {
                if spilled.window.from <= after {
                    spilled.window.from = after + 1;
                    spilled.entries.retain(|e| e.date > after);
                }
                windows.push(spilled);
            }
        }
        windows.sort_by_key(|s: &Spilled| s.window.from);
        let mut last_until = after;
        windows.retain(|s| {
            let apart = s.window.from > last_until;
            if apart {
                last_until = s.window.until;
            }
            apart
        });
        let file = OpenOptions::new().write(true).open(path)?;
        // What follows the last whole record is a torn write: appending goes over it.
        file.set_len(whole)?;
        let mut spill = Spill {
            file,
            path: path.to_path_buf(),
            bytes: whole,
        };
        spill.seek_end()?;
        Ok((spill, windows))
    }

    fn seek_end(&mut self) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(self.bytes)).map(|_| ())
    }

    /// Appends `window` with its trades, in one write (not synced: see the module docs).
    pub fn append(&mut self, window: Window, entries: &[ClonedEntry]) -> std::io::Result<()> {
        let record = encode_record(window, entries);
        self.file.write_all(&record)?;
        self.bytes += record.len() as u64;
        Ok(())
    }

    /// Whether the file is long enough to be rewritten with only what is still held.
    pub fn needs_compaction(&self) -> bool {
        self.bytes >= COMPACT_BYTES
    }

    /// Rewrites the spill with only `held`: the windows answered and not yet in the journal's
    /// part of the output. Call it after a checkpoint, when everything before them is.
    pub fn compact<'a>(
        &mut self,
        held: impl Iterator<Item = (Window, &'a [ClonedEntry])>,
    ) -> std::io::Result<()> {
        self.replace_with(|writer| {
            let mut bytes = 0;
            for (window, entries) in held {
                let record = encode_record(window, entries);
                writer.write_all(&record)?;
                bytes += record.len() as u64;
            }
            Ok(bytes)
        })
    }

    /// Rewrites the spill with only the windows that reach `from` or later (a window across it
    /// is kept whole; [`Spill::reopen`] cuts it), read back from the file itself a record at a
    /// time (memory holds one): a dataset's day once written needs its windows no more.
    pub fn retain_from(&mut self, from: i64) -> std::io::Result<()> {
        let mut reader = BufReader::new(File::open(&self.path)?);
        self.replace_with(|writer| {
            let mut bytes = 0;
            while let Some((spilled, _)) = read_record(&mut reader)? {
                if spilled.window.until >= from {
                    let record = encode_record(spilled.window, &spilled.entries);
                    writer.write_all(&record)?;
                    bytes += record.len() as u64;
                }
            }
            Ok(bytes)
        })
    }

    /// Replaces the file with what `write` writes (and says the length of) to `FILE.new`,
    /// whole on disk before it takes the name: a crash leaves the old file or the new one.
    fn replace_with(
        &mut self,
        write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<u64>,
    ) -> std::io::Result<()> {
        let mut fresh = self.path.as_os_str().to_owned();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        let mut writer = BufWriter::new(File::create(&fresh)?);
        let bytes = write(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_data()?;
        std::fs::rename(&fresh, &self.path)?;
        self.file = file;
        self.bytes = bytes;
        Ok(())
    }

    /// Bytes in the file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The clone is complete: the spill goes.
    pub fn remove(self) -> std::io::Result<()> {
        drop(self.file);
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Length, checksum, payload.
fn encode_record(window: Window, entries: &[ClonedEntry]) -> Vec<u8> {
    let chunk = TodoChunk {
        from_unix_ts: window.from,
        until_unix_ts: window.until,
        ..Default::default()
    };
    // The payload is a ClonedChunk, encoded field by field so the entries are not copied.
    let mut payload = Vec::new();
    prost::encoding::message::encode(2, &chunk, &mut payload);
    for entry in entries {
        prost::encoding::message::encode(3, entry, &mut payload);
    }
    let mut record = Vec::with_capacity(8 + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

/// The next whole, checked record and its length; `None` at the end or at a torn record.
fn read_record(reader: &mut impl Read) -> std::io::Result<Option<(Spilled, u64)>> {
    let mut head = [0u8; 8];
    if !read_whole(reader, &mut head)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if len > MAX_RECORD {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    if !read_whole(reader, &mut payload)? || crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    let Ok(chunk) = ClonedChunk::decode(payload.as_slice()) else {
        return Ok(None);
    };
    let Some(todo) = chunk.original_todo_chunk else {
        return Ok(None);
    };
    let window = Window {
        from: todo.from_unix_ts,
        until: todo.until_unix_ts,
    };
    if window.from > window.until {
        return Ok(None);
    }
    let spilled = Spilled {
        window,
        entries: chunk.entries,
    };
    Ok(Some((spilled, 8 + u64::from(len))))
}

/// Fills `buf`; `false` if the file ends first.
fn read_whole(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(from: i64, until: i64) -> Window {
        Window { from, until }
    }

    fn trades(from: i64, n: i64) -> Vec<ClonedEntry> {
        (0..n)
            .map(|i| ClonedEntry {
                trade_id: from * 10 + i,
                date: from + i,
                rate: "1.5".into(),
                ..Default::default()
            })
            .collect()
    }

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spill-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn windows_after_the_journal_come_back_in_time_order_and_a_torn_tail_is_cut() {
        let dir = dir("torn");
        let path = dir.join("out.csv.spill");
        let mut spill = Spill::create(&path).unwrap();
        spill.append(window(300, 399), &trades(300, 5)).unwrap();
        spill.append(window(100, 199), &trades(100, 3)).unwrap();
        spill.append(window(200, 299), &[]).unwrap();
        let whole = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of the next record, and one whose checksum is wrong.
        let mut torn = encode_record(window(400, 499), &trades(400, 4));
        torn.truncate(torn.len() - 3);
        spill.file.write_all(&torn).unwrap();
        drop(spill);
        let (spill, got) = Spill::reopen(&path, 150).unwrap();
        assert_eq!(
            got,
            vec![
                // Across 150: its part after, whose trades (at 100..=102) are all before.
                Spilled {
                    window: window(151, 199),
                    entries: vec![]
                },
                Spilled {
                    window: window(200, 299),
                    entries: vec![]
                },
                Spilled {
                    window: window(300, 399),
                    entries: trades(300, 5)
                },
            ],
            "what is up to 150 is in the journal's part already"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "cut back");
        drop(spill);

        // A flipped byte in the payload: that record and all after it are not trusted.
        let mut bytes = std::fs::read(&path).unwrap();
        let second = 8 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        bytes[second + 12] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (mut spill, got) = Spill::reopen(&path, 0).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].window, window(300, 399));
        // Appending goes on after the last good record.
        spill.append(window(500, 599), &trades(500, 2)).unwrap();
        drop(spill);
        let (_, got) = Spill::reopen(&path, 0).unwrap();
        let windows: Vec<Window> = got.iter().map(|s| s.window).collect();
        assert_eq!(windows, vec![window(300, 399), window(500, 599)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overlapping_windows_are_not_both_handed_back() {
        let dir = dir("overlap");
        let path = dir.join("out.csv.spill");
        let mut spill = Spill::create(&path).unwrap();
        spill.append(window(100, 199), &trades(100, 1)).unwrap();
        spill.append(window(150, 249), &trades(150, 1)).unwrap();
        spill.append(window(250, 299), &trades(250, 1)).unwrap();
        drop(spill);
        let (_, got) = Spill::reopen(&path, 0).unwrap();
        let windows: Vec<Window> = got.iter().map(|s| s.window).collect();
        assert_eq!(windows, vec![window(100, 199), window(250, 299)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compaction_keeps_only_what_is_held_and_a_missing_spill_is_empty() {
        let dir = dir("compact");
        let path = dir.join("out.csv.spill");
        let (mut spill, got) = Spill::reopen(&path, 0).unwrap();
        assert!(got.is_empty());
        for from in (0..10).map(|i| i * 100) {
            spill
                .append(window(from, from + 99), &trades(from, 50))
                .unwrap();
        }
        let before = std::fs::metadata(&path).unwrap().len();
        let held = trades(900, 50);
        spill
            .compact(std::iter::once((window(900, 999), held.as_slice())))
            .unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < before / 5);
        spill.append(window(1000, 1099), &trades(1000, 1)).unwrap();
        drop(spill);
        let (spill, got) = Spill::reopen(&path, 0).unwrap();
        let windows: Vec<Window> = got.iter().map(|s| s.window).collect();
        assert_eq!(windows, vec![window(900, 999), window(1000, 1099)]);
        assert_eq!(got[0].entries, held);
        spill.remove().unwrap();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retain_from_keeps_the_later_windows_and_appends_after_them() {
        let dir = std::env::temp_dir().join(format!("spill-retain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.spill");
        let mut spill = Spill::create(&path).unwrap();
        spill.append(window(10, 19), &trades(10, 3)).unwrap();
        spill.append(window(20, 29), &trades(20, 2)).unwrap();
        spill.append(window(30, 39), &trades(30, 1)).unwrap();
        spill.retain_from(25).unwrap();
        spill.append(window(40, 49), &trades(40, 1)).unwrap();
        drop(spill);
        // The window across 25 is kept, and cut to its part after 24 when read back.
        let (_, had) = Spill::reopen(&path, 0).unwrap();
        let windows: Vec<Window> = had.iter().map(|s| s.window).collect();
        assert_eq!(windows, [window(20, 29), window(30, 39), window(40, 49)]);
        assert_eq!(had[0].entries, trades(20, 2));
        let (_, had) = Spill::reopen(&path, 20).unwrap();
        assert_eq!(had[0].window, window(21, 29));
        assert_eq!(had[0].entries, trades(20, 2)[1..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

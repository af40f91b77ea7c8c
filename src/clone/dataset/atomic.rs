//! A file that appears whole or not at all: written under a temporary name in its directory
//! (`.NAME.PID.RANDOM.tmp`, which readers of the directory skip), synced, renamed over the
//! target, and the directory synced so that the rename survives a crash too.
//!
//! It must never leave the temporary file behind when it is dropped unfinished, nor rename a
//! file that is not synced.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A target being written under a temporary name; removed when dropped unfinished.
pub struct Staged {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    /// A temporary file beside `target` (its directories created, durably), to write into.
    pub fn create(target: &Path) -> std::io::Result<(Staged, File)> {
        let (dir, name) = split(target)?;
        create_dirs(dir)?;
        // Unique among writers of the same target, in this process or others: the one renamed
        // last wins, whole.
        let temp = dir.join(format!(
            ".{name}.{}.{:016x}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        let staged = Staged {
            temp,
            target: target.to_path_buf(),
            committed: false,
        };
        Ok((staged, file))
    }

    /// Where it is being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// `file` (the temporary file, written) synced and renamed to the target, and the directory
    /// synced.
    pub fn commit(mut self, file: File) -> std::io::Result<()> {
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        let (dir, _) = split(&self.target)?;
        sync_dir(dir)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            // Nothing to report to: the error that stopped the write is the caller's already.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// `bytes` as the whole of `target`, atomically.
pub fn write(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (staged, mut file) = Staged::create(target)?;
    file.write_all(bytes)?;
    staged.commit(file)
}

/// Removes the temporary files of `target` (`.NAME.PID.RANDOM.tmp` beside it) that a stopped
/// writer left: a process killed, or a machine crashed, between its create and its commit, which
/// no drop cleans up. Those of a process still running are its own and stay; so are all of them
/// where that cannot be told (no `/proc`). The caller has none of its own in progress for
/// `target` (those of this process's id are removed too: an earlier process may have had it).
/// How many it removed.
pub fn remove_stale(target: &Path) -> std::io::Result<usize> {
    let (dir, name) = split(target)?;
    let prefix = format!(".{name}.");
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix)?.strip_suffix(".tmp"))
            .and_then(|rest| {
                let (pid, random) = rest.split_once('.')?;
                let hex = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
                hex.then(|| pid.parse::<u32>().ok()).flatten()
            })
        else {
            continue;
        };
        if pid != std::process::id() && may_be_running(pid) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Whether process `pid` may be running: it is in `/proc`, or there is no `/proc` to tell.
fn may_be_running(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

fn split(target: &Path) -> std::io::Result<(&Path, String)> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file's path");
    let name = target.file_name().ok_or_else(invalid)?.to_string_lossy();
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((dir, name.into_owned()))
}

/// Creates `dir` and its missing parents, syncing each parent after its new entry, so that a
/// crash does not lose a directory a synced file is in.
fn create_dirs(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent)?;
    }
    match std::fs::create_dir(dir) {
        // Another writer made it meanwhile: as good.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        other => other?,
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_appears_whole_and_a_dropped_one_leaves_nothing() {
        let root = dir("whole");
        let target = root.join("a/b/c.json");
        write(&target, b"one").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        assert_eq!(
            names(&root.join("a/b")),
            ["c.json"],
            "no temporary file left"
        );
        // Written again and dropped before the commit: the old file stays, nothing else.
        let (staged, mut file) = Staged::create(&target).unwrap();
        file.write_all(b"two, half").unwrap();
        let temp = staged.temp_path().to_path_buf();
        assert!(temp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".c.json."));
        assert_eq!(names(&root.join("a/b")).len(), 2);
        drop(staged);
        assert!(!temp.exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        assert_eq!(names(&root.join("a/b")), ["c.json"]);
        write(&target, b"three").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"three");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn temporary_files_of_stopped_writers_are_removed_and_others_kept() {
        let root = dir("stale");
        let target = root.join("c.json");
        write(&target, b"one").unwrap();
        let random = "0123456789abcdef";
        // No process has this id; this one's own has none in progress; pid 1 runs.
        let dead = format!(".c.json.4000000000.{random}.tmp");
        let own = format!(".c.json.{}.{random}.tmp", std::process::id());
        let running = format!(".c.json.1.{random}.tmp");
        let others = [".d.json.4000000000.0123456789abcdef.tmp", ".c.json.x.tmp"];
        for name in [&dead, &own, &running]
            .into_iter()
            .chain(&others.map(String::from))
        {
            std::fs::write(root.join(name), b"half").unwrap();
        }
        assert_eq!(remove_stale(&target).unwrap(), 2);
        let mut kept = vec![
            "c.json".to_string(),
            running,
            others[0].to_string(),
            others[1].to_string(),
        ];
        kept.sort();
        assert_eq!(names(&root), kept);
        assert_eq!(remove_stale(&root.join("none/c.json")).unwrap(), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }
}

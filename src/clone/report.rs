//! `CloneReport`: what a clone did, as the summary a user reads and the exit status a script
//! checks.
//!
//! It must never call a clone complete that has a gap, an unanswered window or a window given
//! up: [`CloneReport::ensure_complete`] says why not, ready for a rerun.

use std::fmt;
use std::time::Duration;

use crate::clone::output::Check;
use crate::clone::progress::Counts;
use crate::clone::result_waiter::WaiterStats;
use crate::clone::window::Window;
use crate::clone::Sink;

/// What the clone did.
#[derive(Debug, Clone)]
pub struct CloneReport {
    pub pair: String,
    /// The range, inclusive, as asked for.
    pub range: Window,
    /// Windows in the first plan.
    pub windows_planned: u64,
    /// The counts at the end.
    pub counts: Counts,
    /// Windows given up, with why.
    pub failed: Vec<(Window, String)>,
    /// Stopped by a signal before every window was answered.
    pub interrupted: bool,
    pub check: Check,
    pub waiter: WaiterStats,
    /// Where the output went: the file, or its `.partial` if incomplete.
    pub written_to: Sink,
    pub elapsed: Duration,
}

impl CloneReport {
    /// Every window answered and no gap: the output is the range's complete history.
    pub fn is_complete(&self) -> bool {
        !self.interrupted && self.failed.is_empty() && self.check.is_complete()
    }

    /// `Ok` if complete, otherwise every reason why not: interrupted, the windows given up
    /// (the first five by name, ready for `--from/--until`), the trade ids missing.
    pub fn ensure_complete(&self) -> Result<(), Incomplete> {
        let reasons = self.incomplete_reasons("clone them again with --from/--until");
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Incomplete { reasons })
        }
    }

    /// Why the clone is not complete (none: it is); `retry` says how to ask again for the
    /// windows given up.
    pub fn incomplete_reasons(&self, retry: &str) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.interrupted {
            reasons.push("interrupted".to_string());
        }
        if !self.failed.is_empty() {
            let named: Vec<String> = self
                .failed
                .iter()
                .take(5)
                .map(|(w, _)| w.to_string())
                .collect();
            reasons.push(format!(
                "{} windows could not be cloned ({}{}); {retry}",
                self.failed.len(),
                named.join(", "),
                if self.failed.len() > 5 { ", …" } else { "" }
            ));
        }
        if self.check.missing_ids > 0 {
            reasons.push(format!("{} tradeIDs are missing", self.check.missing_ids));
        }
        if reasons.is_empty() && !self.is_complete() {
            reasons.push(self.check.to_string());
        }
        reasons
    }
}

/// Why a clone is not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the clone is incomplete: {}", reasons.join("; "))]
pub struct Incomplete {
    pub reasons: Vec<String>,
}

impl fmt::Display for CloneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let secs = self.elapsed.as_secs_f64();
        writeln!(f, "clone of {} {}", self.pair, self.range)?;
        writeln!(
            f,
            "  windows: {} planned, {} pages kept, {} splits, {} answered in the end; {} answers received ({} upstream calls), {} republished",
            self.windows_planned, c.pages_kept, c.splits, c.windows_done, c.answers, c.calls, c.retries
        )?;
        writeln!(f, "  output:  {}", self.check)?;
        if self.waiter.strays > 0 {
            writeln!(
                f,
                "  {} results were not ours or came twice; ignored",
                self.waiter.strays
            )?;
        }
        for (window, why) in &self.failed {
            writeln!(f, "  FAILED {window}: {why}")?;
        }
        if self.interrupted {
            writeln!(
                f,
                "  INTERRUPTED with {} windows unanswered",
                self.check.skipped_windows
            )?;
        }
        match &self.written_to {
            Sink::File(path) => writeln!(f, "  written to {}", path.display())?,
            Sink::Stdout => writeln!(f, "  written to stdout")?,
            Sink::Discard => {}
        }
        write!(
            f,
            "  elapsed: {secs:.1} s, {:.2} answers/s",
            if secs > 0.0 {
                c.answers as f64 / secs
            } else {
                0.0
            }
        )
    }
}

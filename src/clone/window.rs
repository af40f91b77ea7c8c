//! Time windows: how a range is cut into chunks, and how a window that is too big is halved.
//!
//! A window is inclusive at both ends, in unix seconds, as a TodoChunk's `from_unix_ts` and
//! `until_unix_ts` are. It must never hold a second that another window of the same plan holds:
//! the output is gapless and duplicate-free only because windows tile the range exactly.

use std::fmt;

use crate::domain::utc::format_utc;

/// `[from, until]`, both inclusive, in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub from: i32,
    pub until: i32,
}

impl Window {
    /// Seconds in the window.
    pub fn secs(&self) -> i64 {
        i64::from(self.until) - i64::from(self.from) + 1
    }

    /// The two halves `[from, mid]` and `[mid + 1, until]`, as the original course split them;
    /// `None` for a one-second window, which cannot be split.
    pub fn halve(&self) -> Option<(Window, Window)> {
        if self.from >= self.until {
            return None;
        }
        let mid = (i64::from(self.from) + i64::from(self.until)).div_euclid(2) as i32;
        Some((
            Window {
                from: self.from,
                until: mid,
            },
            Window {
                from: mid + 1,
                until: self.until,
            },
        ))
    }
}

impl fmt::Display for Window {
    /// `2018-10-22 05:00:00..=2018-10-22 05:59:59 UTC [1540184400, 1540187999]`: readable, and
    /// with the numbers a rerun needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}..={} UTC [{}, {}]",
            format_utc(self.from.into()),
            format_utc(self.until.into()),
            self.from,
            self.until
        )
    }
}

/// Why a range cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("--until ({until}) must be after --from ({from})")]
    Empty { from: i64, until: i64 },
    #[error("the range must lie between 1970-01-01 and 2038-01-19 03:14:07 UTC (TodoChunk times are 32-bit), got [{from}, {until})")]
    OutOfRange { from: i64, until: i64 },
    #[error("the window must be at least one second")]
    ZeroWindow,
}

/// Cuts `[from, until)` (`until` exclusive, as ranges on a command line are) into windows of
/// `window_secs`, aligned on `from`; the last one is clipped.
pub fn plan(from: i64, until: i64, window_secs: u32) -> Result<Vec<Window>, PlanError> {
    if window_secs == 0 {
        return Err(PlanError::ZeroWindow);
    }
    if until <= from {
        return Err(PlanError::Empty { from, until });
    }
    // The last second, until - 1, must fit an int32.
    if from < 0 || until - 1 > i64::from(i32::MAX) {
        return Err(PlanError::OutOfRange { from, until });
    }
    let step = i64::from(window_secs);
    let mut windows = Vec::with_capacity(((until - from) / step + 1) as usize);
    let mut start = from;
    while start < until {
        let end = (start + step).min(until) - 1;
        windows.push(Window {
            from: start as i32,
            until: end as i32,
        });
        start = end + 1;
    }
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 1_540_166_400;

    #[test]
    fn a_day_is_24_hours_that_tile_it() {
        let windows = plan(DAY, DAY + 86_400, 3600).unwrap();
        assert_eq!(windows.len(), 24);
        assert_eq!(windows[0].from as i64, DAY);
        assert_eq!(windows[23].until as i64, DAY + 86_399);
        for pair in windows.windows(2) {
            assert_eq!(pair[0].until + 1, pair[1].from, "no gap, no overlap");
            assert_eq!(pair[0].secs(), 3600);
        }
    }

    #[test]
    fn the_last_window_is_clipped() {
        let windows = plan(DAY, DAY + 5000, 3600).unwrap();
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[1].secs(), 1400);
        assert_eq!(plan(DAY, DAY + 1, 3600).unwrap()[0].secs(), 1);
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert_eq!(
            plan(DAY, DAY, 3600),
            Err(PlanError::Empty {
                from: DAY,
                until: DAY
            })
        );
        assert!(matches!(
            plan(-1, DAY, 3600),
            Err(PlanError::OutOfRange { .. })
        ));
        assert!(matches!(
            plan(DAY, i64::from(i32::MAX) + 2, 3600),
            Err(PlanError::OutOfRange { .. })
        ));
        assert!(plan(DAY, i64::from(i32::MAX) + 1, 3600).is_ok());
        assert_eq!(plan(DAY, DAY + 10, 0), Err(PlanError::ZeroWindow));
    }

    #[test]
    fn halving_splits_at_the_middle_down_to_one_second() {
        let w = Window {
            from: 100,
            until: 199,
        };
        let (a, b) = w.halve().unwrap();
        assert_eq!((a.from, a.until, b.from, b.until), (100, 149, 150, 199));
        let odd = Window {
            from: 100,
            until: 102,
        };
        let (a, b) = odd.halve().unwrap();
        assert_eq!((a.secs(), b.secs()), (2, 1));
        let mut w = Window {
            from: 0,
            until: 3599,
        };
        let mut halvings = 0;
        while let Some((a, _)) = w.halve() {
            w = a;
            halvings += 1;
        }
        assert_eq!((w.secs(), halvings), (1, 12));
        let top = Window {
            from: i32::MAX - 1,
            until: i32::MAX,
        };
        assert_eq!(top.halve().unwrap().1.from, i32::MAX, "no overflow");
    }

    #[test]
    fn windows_print_dates_and_numbers() {
        let w = Window {
            from: 1_540_184_400,
            until: 1_540_187_999,
        };
        assert_eq!(
            w.to_string(),
            "2018-10-22 05:00:00..=2018-10-22 05:59:59 UTC [1540184400, 1540187999]"
        );
    }
}

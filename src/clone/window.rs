//! Time windows: how a range is cut into chunks as the clone goes ([`Planner`]), what is left
//! of a window once a page of it is kept, and how a window too big with no page is halved.
//!
//! A window is inclusive at both ends, in unix seconds, as a TodoChunk's `from_unix_ts` and
//! `until_unix_ts` are. It must never hold a second that another window of the same plan holds:
//! the output is gapless and duplicate-free only because windows tile the range exactly.

use std::collections::VecDeque;
use std::fmt;

use crate::domain::utc::format_utc;

/// `[from, until]`, both inclusive, in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub from: i64,
    pub until: i64,
}

impl Window {
    /// Seconds in the window.
    pub fn secs(&self) -> i64 {
        self.until - self.from + 1
    }

    /// The two halves `[from, mid]` and `[mid + 1, until]`, as the original course split them;
    /// `None` for a one-second window, which cannot be split.
    pub fn halve(&self) -> Option<(Window, Window)> {
        if self.from >= self.until {
            return None;
        }
        // No overflow: the bounds are at most i64::MAX / 2 apart from zero in any plan.
        let mid = self.from + (self.until - self.from).div_euclid(2);
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

impl Window {
    /// This window without `part`, a prefix or a suffix of it: both parts in time order (as
    /// [`Window::halve`] gives them), and the rest.
    pub fn without(&self, part: Window) -> ((Window, Window), Window) {
        if part.from == self.from {
            let rest = Window {
                from: part.until + 1,
                until: self.until,
            };
            ((part, rest), rest)
        } else {
            let rest = Window {
                from: self.from,
                until: part.from - 1,
            };
            ((rest, part), rest)
        }
    }
}

impl fmt::Display for Window {
    /// `2018-10-22 05:00:00..=2018-10-22 05:59:59 UTC [1540184400, 1540187999]`: readable, and
    /// with the numbers a rerun needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}..={} UTC [{}, {}]",
            format_utc(self.from),
            format_utc(self.until),
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
    #[error("the range must lie between 1970-01-01 and 9999-12-31 UTC, got [{from}, {until})")]
    OutOfRange { from: i64, until: i64 },
    #[error("the window must be at least one second")]
    ZeroWindow,
}

/// 9999-12-31 23:59:59 UTC: the last second a date is written for.
pub const LAST_SECOND: i64 = 253_402_300_799;

/// The longest window planned where the venue allows it: a year, so that a quiet pair's year
/// costs one call where the venue has no limit (Binance). Each venue may allow less
/// ([`crate::task::venue::Venue::max_window_secs`]; Poloniex: a month).
pub const MAX_WINDOW_SECS: u32 = 366 * 86_400;

/// Windows asked for at once: each is asked for page by page, one request at a time, so these
/// are the requests in flight. At least 8, or 4 where a request gathers several pages
/// (`pages_per_request`, Binance), so that requests are in the service while answers to others
/// are on their way back; twice the todo topic's `partitions`, so that every member of the
/// service's group has work; 50 ms of calls at `rate` (a round trip through Kafka and the
/// exchange takes less); 16 with no rate. Fewer windows at once are longer ones
/// ([`pages_per_window`]), and each ends in a page that is not full: fewer wasted calls.
pub fn lanes(partitions: usize, rate: Option<f64>, pages_per_request: usize) -> usize {
    let least = if pages_per_request > 1 { 4 } else { 8 };
    let of_the_rate = rate.map_or(16, |r| (r * 0.05).ceil() as usize);
    least.max(2 * partitions).max(of_the_rate)
}

/// Pages all windows in flight hold together, at most: what the clone may have to keep in
/// memory for the output (about 40 MB of trades).
pub const PAGES_IN_FLIGHT: usize = 240;

/// Pages a planned window should hold when `lanes` are in flight: each window ends in one page
/// that is not full, so more pages waste fewer calls (one in 60 at worst, half that on
/// average), within [`PAGES_IN_FLIGHT`] for them all; never fewer than 4.
pub fn pages_per_window(lanes: usize) -> f64 {
    (PAGES_IN_FLIGHT / lanes.max(1)).clamp(4, 60) as f64
}

/// The first windows, before any density is known: an hour.
pub const FIRST_WINDOW_SECS: i64 = 3600;

/// Windows planned as the clone goes, in time order, so that the output is written as it goes
/// and only the windows in flight are held. Fixed (`clone.window_secs`), or sized from the
/// density of trades seen so far to hold [`pages_per_window`] pages: the calls then approach
/// trades / page size.
#[derive(Debug, Clone)]
pub struct Planner {
    /// The first second not planned yet.
    next_from: i64,
    /// The range's end, exclusive.
    until: i64,
    /// The next window's length.
    secs: i64,
    /// The longest window the venue answers.
    max_secs: i64,
    /// `None` when windows are fixed; else the trades and seconds answered so far, and the
    /// most trades one call returns.
    learning: Option<Learning>,
    /// Windows a previous run answered already (read back from the spill), in time order:
    /// they are handed out as [`Planned::Had`] in their place, and never asked for.
    had: VecDeque<Window>,
    /// Windows planned to be asked for so far.
    pub planned: u64,
    /// The first window asked for is the whole range ([`Planner::probe`]), until it is
    /// answered.
    probing: bool,
}

/// The next part of the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    /// To ask for.
    Ask(Window),
    /// Answered by a previous run: its trades are at hand.
    Had(Window),
}

#[derive(Debug, Clone, Copy)]
struct Learning {
    trades: u64,
    secs: i64,
    page: u64,
    /// Pages a window should hold.
    pages: f64,
}

impl Planner {
    /// Windows of `secs` seconds (at most `max_secs`) over `[from, until)`.
    pub fn fixed(from: i64, until: i64, secs: u32, max_secs: i64) -> Result<Planner, PlanError> {
        check_range(from, until)?;
        if secs == 0 {
            return Err(PlanError::ZeroWindow);
        }
        let max_secs = max_secs.clamp(1, i64::from(MAX_WINDOW_SECS));
        Ok(Planner {
            next_from: from,
            until,
            secs: i64::from(secs).min(max_secs),
            max_secs,
            learning: None,
            had: VecDeque::new(),
            planned: 0,
            probing: false,
        })
    }

    /// Windows sized to the density seen to hold `pages` pages of up to `page` trades, at
    /// most `max_secs` long.
    pub fn by_density(
        from: i64,
        until: i64,
        page: usize,
        pages: f64,
        max_secs: i64,
    ) -> Result<Planner, PlanError> {
        check_range(from, until)?;
        let max_secs = max_secs.clamp(1, i64::from(MAX_WINDOW_SECS));
        Ok(Planner {
            next_from: from,
            until,
            secs: FIRST_WINDOW_SECS.min(max_secs),
            max_secs,
            learning: Some(Learning {
                trades: 0,
                secs: 0,
                page: page.max(1) as u64,
                pages: pages.max(1.0),
            }),
            had: VecDeque::new(),
            planned: 0,
            probing: false,
        })
    }

    /// The next part of the range, in time order: a window had already, or the next one to
    /// ask for (ending before the next window had); `None` once the range is planned.
    pub fn next_part(&mut self) -> Option<Planned> {
        if self.next_from >= self.until {
            return None;
        }
        if let Some(had) = self.had.front().copied() {
            if had.from <= self.next_from {
                self.had.pop_front();
                // Its trades tell the density, which sizes the windows asked for from now on:
                // none of them is the whole range, so none is a probe to rewind into.
                self.probing = false;
                self.next_from = had.until + 1;
                return Some(Planned::Had(had));
            }
        }
        let before = self.had.front().map_or(self.until, |had| had.from);
        let end = (self.next_from + self.secs).min(before) - 1;
        let window = Window {
            from: self.next_from,
            until: end,
        };
        self.next_from = end + 1;
        self.planned += 1;
        Some(Planned::Ask(window))
    }

    /// Plans the first window as the whole range (to the venue's longest window, or the next
    /// window had): on a venue whose full pages are the oldest trades, its first page is
    /// kept whatever the density, and a range of less than a page is one call. Sized plans
    /// only; the density the first page shows sizes the rest ([`Planner::rewind_to`]).
    pub fn probe(&mut self) {
        if self.learning.is_some() && self.planned == 0 {
            self.secs = self.max_secs;
            self.probing = true;
        }
    }

    /// The first window's rest is planned elsewhere (asked by ids): nothing to rewind into.
    pub fn end_probe(&mut self) {
        self.probing = false;
    }

    /// Whether the first window is the whole range.
    pub fn is_probing(&self) -> bool {
        self.probing
    }

    /// Plans again from `from`, inside the probe window that ended at `probe_until`, which
    /// its first page answered up to `from − 1`: the rest is cut to the density learnt. `false`
    /// (and nothing changes) if anything was planned after the probe.
    pub fn rewind_to(&mut self, from: i64, probe_until: i64) -> bool {
        let was_probing = std::mem::take(&mut self.probing);
        if !was_probing || self.next_from != probe_until + 1 || from > probe_until {
            return false;
        }
        self.next_from = from;
        true
    }

    /// Plans nothing before `from`: what an earlier run wrote already.
    pub fn skip_to(&mut self, from: i64) {
        self.next_from = self.next_from.max(from);
    }

    /// Windows an earlier run answered (in time order, after [`Planner::skip_to`]'s second,
    /// apart): handed out in their place, never asked for.
    pub fn have(&mut self, windows: impl IntoIterator<Item = Window>) {
        for window in windows {
            debug_assert!(window.from >= self.next_from && window.until < self.until);
            debug_assert!(self.had.back().is_none_or(|last| last.until < window.from));
            self.had.push_back(window);
        }
    }

    /// Whether windows can be planned ahead: fixed ones always; sized ones once a density is
    /// known (until then one window at a time, or every blind guess wastes a page).
    pub fn can_plan_ahead(&self) -> bool {
        self.learning.is_none_or(|l| l.secs > 0)
    }

    /// The part of the range not planned yet, as one window.
    pub fn rest(&self) -> Option<Window> {
        (self.next_from < self.until).then(|| Window {
            from: self.next_from,
            until: self.until - 1,
        })
    }

    /// The pages `secs` seconds should hold at the density seen so far; `None` before any is
    /// known (or with fixed windows).
    pub fn pages_in(&self, secs: i64) -> Option<f64> {
        let l = self.learning.as_ref().filter(|l| l.secs > 0)?;
        Some(l.trades as f64 * secs as f64 / l.secs as f64 / l.page as f64)
    }

    /// `window`, the last planned, grown to the longest window the plan allows before the
    /// next window had: for one who asks for it piece by piece (by ids).
    pub fn grow(&mut self, window: Window) -> Window {
        debug_assert_eq!(self.next_from, window.until + 1);
        let before = self.had.front().map_or(self.until, |had| had.from);
        let until = (window.from.saturating_add(self.max_secs).min(before) - 1).max(window.until);
        self.next_from = until + 1;
        Window {
            from: window.from,
            until,
        }
    }

    /// Trades a second, at the density seen so far; `None` before any is known.
    pub fn per_sec(&self) -> Option<f64> {
        let l = self
            .learning
            .as_ref()
            .filter(|l| l.secs > 0 && l.trades > 0)?;
        Some(l.trades as f64 / l.secs as f64)
    }

    /// `trades` were answered for `secs` seconds: the next windows are sized by all answers so
    /// far. No trades yet: the window grows fourfold.
    pub fn learn(&mut self, trades: usize, secs: i64) {
        let Some(l) = &mut self.learning else {
            return;
        };
        l.trades += trades as u64;
        l.secs += secs.max(0);
        self.secs = if l.trades == 0 {
            self.secs.saturating_mul(4)
        } else {
            let density = l.trades as f64 / l.secs.max(1) as f64;
            (l.pages * l.page as f64 / density) as i64
        }
        .clamp(1, self.max_secs);
    }
}

/// Whether `[from, until)` can be planned: not empty, from 1970 to the year 9999.
pub fn check_range(from: i64, until: i64) -> Result<(), PlanError> {
    if until <= from {
        return Err(PlanError::Empty { from, until });
    }
    // Unix seconds from 1970 to the last second dates can be written for.
    if from < 0 || until - 1 > LAST_SECOND {
        return Err(PlanError::OutOfRange { from, until });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next window to ask for, where no window is had.
    fn ask(planner: &mut Planner) -> Option<Window> {
        match planner.next_part()? {
            Planned::Ask(window) => Some(window),
            Planned::Had(window) => panic!("{window} had"),
        }
    }

    /// Every window of a fixed plan.
    fn plan(from: i64, until: i64, secs: u32) -> Result<Vec<Window>, PlanError> {
        let mut planner = Planner::fixed(from, until, secs, MONTH)?;
        Ok(std::iter::from_fn(|| ask(&mut planner)).collect())
    }

    const DAY: i64 = 1_540_166_400;
    const MONTH: i64 = MAX_WINDOW_SECS as i64;

    #[test]
    fn a_day_is_24_hours_that_tile_it() {
        let windows = plan(DAY, DAY + 86_400, 3600).unwrap();
        assert_eq!(windows.len(), 24);
        assert_eq!(windows[0].from, DAY);
        assert_eq!(windows[23].until, DAY + 86_399);
        for pair in windows.windows(2) {
            assert_eq!(pair[0].until + 1, pair[1].from, "no gap, no overlap");
            assert_eq!(pair[0].secs(), 3600);
        }
    }

    #[test]
    fn a_kept_part_leaves_the_rest_and_both_tile_the_window() {
        let w = Window {
            from: 100,
            until: 199,
        };
        let suffix = Window {
            from: 150,
            until: 199,
        };
        assert_eq!(
            w.without(suffix),
            (
                (
                    Window {
                        from: 100,
                        until: 149
                    },
                    suffix
                ),
                Window {
                    from: 100,
                    until: 149
                }
            )
        );
        let prefix = Window {
            from: 100,
            until: 100,
        };
        assert_eq!(
            w.without(prefix),
            (
                (
                    prefix,
                    Window {
                        from: 101,
                        until: 199
                    }
                ),
                Window {
                    from: 101,
                    until: 199
                }
            )
        );
    }

    #[test]
    fn a_window_had_before_the_first_asked_ends_the_probe() {
        // A stopped run answered the first hour (1000 trades): the next window is sized by
        // that, and rewinding into it as into a probe would plan past its end.
        let mut planner = Planner::by_density(DAY, DAY + 7 * 86_400, 1000, 30.0, MONTH).unwrap();
        let had = Window {
            from: DAY,
            until: DAY + 3599,
        };
        planner.have([had]);
        planner.probe();
        assert!(planner.is_probing());
        assert_eq!(planner.next_part(), Some(Planned::Had(had)));
        planner.learn(1000, had.secs());
        assert!(!planner.is_probing());
        let window = ask(&mut planner).unwrap();
        assert_eq!(
            window,
            Window {
                from: DAY + 3600,
                until: DAY + 3600 + 30 * 3600 - 1
            }
        );
        assert!(!planner.rewind_to(DAY + 4000, window.until));
    }

    #[test]
    fn lanes_keep_the_rate_and_every_member_busy() {
        assert_eq!(lanes(2, Some(6.0), 1), 8);
        assert_eq!(lanes(1, Some(25.0), 4), 4);
        assert_eq!(lanes(12, Some(6.0), 1), 24);
        assert_eq!(lanes(2, Some(600.0), 1), 30);
        assert_eq!(lanes(2, None, 1), 16);
        // Memory bounded whatever the lanes: 240 pages in flight, 4 to 30 a window.
        assert_eq!(pages_per_window(4), 60.0);
        assert_eq!(pages_per_window(8), 30.0);
        assert_eq!(pages_per_window(30), 8.0);
        assert_eq!(pages_per_window(1000), 4.0);
    }

    #[test]
    fn planned_windows_tile_the_range_and_grow_to_the_density_seen() {
        let mut p = Planner::by_density(DAY, DAY + 30 * 86_400, 1000, 30.0, MONTH).unwrap();
        let first = ask(&mut p).unwrap();
        assert!(!p.can_plan_ahead(), "one window until a density is known");
        assert_eq!((first.from, first.secs()), (DAY, FIRST_WINDOW_SECS));
        // 0.5 trades a second seen: 30 pages of 1000 are 60 000 s.
        p.learn(1800, 3600);
        assert!(p.can_plan_ahead());
        let second = ask(&mut p).unwrap();
        assert_eq!(second.from, first.until + 1);
        assert_eq!(second.secs(), 60_000);
        // Nothing traded yet: four times longer each time, never past the maximum.
        let mut calm = Planner::by_density(DAY, DAY + 400 * 86_400, 1000, 30.0, MONTH).unwrap();
        ask(&mut calm);
        calm.learn(0, 3600);
        assert_eq!(ask(&mut calm).unwrap().secs(), 4 * 3600);
        for _ in 0..20 {
            calm.learn(0, 3600);
        }
        assert_eq!(ask(&mut calm).unwrap().secs(), i64::from(MAX_WINDOW_SECS));
        // The windows tile the range exactly, the last one clipped.
        let mut all = vec![first, second];
        while let Some(w) = ask(&mut p) {
            all.push(w);
        }
        assert!(all.windows(2).all(|w| w[0].until + 1 == w[1].from));
        assert_eq!(all.last().unwrap().until as i64, DAY + 30 * 86_400 - 1);
        assert_eq!(p.planned, all.len() as u64);
    }

    #[test]
    fn windows_had_are_handed_out_in_their_place_and_the_gaps_asked_for() {
        let mut p = Planner::fixed(DAY, DAY + 10 * 3600, 3600, MONTH).unwrap();
        p.skip_to(DAY + 1800);
        let had = |from: i64, hours: i64| Window {
            from: DAY + from,
            until: DAY + from + hours * 3600 - 1,
        };
        p.have([had(3600, 1), had(3 * 3600 + 600, 2), had(5 * 3600 + 600, 1)]);
        let all: Vec<Planned> = std::iter::from_fn(|| p.next_part()).collect();
        let ask = |from: i64, until: i64| {
            Planned::Ask(Window {
                from: DAY + from,
                until: DAY + until,
            })
        };
        assert_eq!(
            all,
            vec![
                ask(1800, 3599),
                Planned::Had(had(3600, 1)),
                ask(7200, 10_799),
                ask(10_800, 11_399),
                Planned::Had(had(3 * 3600 + 600, 2)),
                Planned::Had(had(5 * 3600 + 600, 1)),
                ask(6 * 3600 + 600, 7 * 3600 + 599),
                ask(7 * 3600 + 600, 8 * 3600 + 599),
                ask(8 * 3600 + 600, 9 * 3600 + 599),
                ask(9 * 3600 + 600, 10 * 3600 - 1),
            ]
        );
        assert_eq!(p.planned, 7, "only windows asked for count");
    }

    #[test]
    fn no_window_is_longer_than_the_venue_allows() {
        let hour = 3600;
        let mut calm = Planner::by_density(DAY, DAY + 10 * 86_400, 1000, 30.0, hour).unwrap();
        for _ in 0..5 {
            assert!(ask(&mut calm).unwrap().secs() <= hour);
            calm.learn(0, hour);
        }
        let mut p = Planner::fixed(DAY, DAY + 86_400, 86_400, hour).unwrap();
        assert_eq!(ask(&mut p).unwrap().secs(), hour);
    }

    #[test]
    fn fixed_windows_do_not_learn() {
        let mut p = Planner::fixed(DAY, DAY + 3 * 3600, 3600, MONTH).unwrap();
        p.learn(1_000_000, 1);
        let all: Vec<Window> = std::iter::from_fn(|| ask(&mut p)).collect();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|w| w.secs() == 3600));
        assert!(matches!(
            Planner::fixed(DAY, DAY, 3600, MONTH),
            Err(PlanError::Empty { .. })
        ));
        assert!(matches!(
            Planner::fixed(DAY, DAY + 1, 0, MONTH),
            Err(PlanError::ZeroWindow)
        ));
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
            plan(DAY, LAST_SECOND + 2, 3600),
            Err(PlanError::OutOfRange { .. })
        ));
        assert!(plan(LAST_SECOND - 7200, LAST_SECOND + 1, 3600).is_ok());
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
            from: i64::MAX - 1,
            until: i64::MAX,
        };
        assert_eq!(top.halve().unwrap().1.from, i64::MAX, "no overflow");
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

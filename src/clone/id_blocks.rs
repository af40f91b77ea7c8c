//! A busy range asked for by trade ids, in blocks of exact pages, on a venue whose ids are
//! consecutive (Binance's aggregate ids; docs/wire.md, "Asked by trade ids").
//!
//! Windows cut by time each end in a page that is not full, so a range cut into as many windows
//! as requests in flight costs up to one call a window more than its trades need. Cut by ids
//! instead, every block but the last asks for exactly `block` ids, which are whole pages: the
//! range costs ceil(trades / page) calls, as a client paging by `fromId` alone would, while the
//! blocks are asked for side by side. Blocks are handed out ahead of what is known, from the
//! density seen, until the estimated end is near; the last one has no id end and runs to the
//! window's end (or, if that is far, answers a kept part whose rest is asked for by time).
//!
//! Answers come in any order; the output takes time windows in order. Blocks are therefore
//! stitched in id order: each answered block after the ones written gives a window from the
//! first second not written to the second before its newest trade (that second may go on in the
//! next block), and the last gives the rest. It knows nothing of Kafka or of the output: it
//! hands out requests and hands back windows with their trades, oldest first, each second once.
//! It must never hand back a second twice, nor a window with a trade outside it.

use std::collections::BTreeMap;

use crate::clone::window::Window;
use crate::proto::ClonedEntry;

/// The ids one request asks for: `[from, until)`, or from `from` to the window's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ids {
    pub from: i64,
    pub until: Option<i64>,
}

/// Where the service stopped a request by ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// At the ids' end: later ids may still be inside the window.
    Ids,
    /// At the window's end: no later id is inside it.
    Window,
    /// A request with no id end covered the window up to this second (inclusive) only: the
    /// rest is asked for by time.
    Kept(i64),
}

/// What an answer gives.
#[derive(Debug, Default, PartialEq)]
pub struct Stitched {
    /// The rest of the window after a kept part, `[second after it, window's end]`: no longer
    /// this one's, to be asked for by time.
    pub cut: Option<Window>,
    /// Windows whole now, in order, each from where the last ended, with their trades.
    pub written: Vec<(Window, Vec<ClonedEntry>)>,
    /// Why the blocks stopped before the window was whole (an answer that contradicts the
    /// ones before it): what they still await ([`IdBlocks::pending`]) is to be asked for by
    /// time.
    pub failed: Option<String>,
}

/// One answered block, until the blocks before it are in.
struct Block {
    until: Option<i64>,
    entries: Vec<ClonedEntry>,
    end: End,
}

/// A window being cloned block by block.
pub struct IdBlocks {
    /// The window every request names (the service checks each trade is inside it).
    asked: Window,
    /// What the output still awaits of it: from the first second not handed back.
    pending: Window,
    /// Ids a block asks for: whole pages.
    block: i64,
    /// The first id not handed out.
    next_id: i64,
    /// The block with no id end is handed out: nothing more is.
    last_out: bool,
    /// The first id asked for, with its second, and the newest id seen, with its: the density.
    first: (i64, i64),
    newest: (i64, i64),
    /// Whether the density is known: until then one block at a time.
    known: bool,
    /// Answered blocks by first id, until the ones before them are in.
    answered: BTreeMap<i64, Block>,
    /// The first id of the block stitched next.
    expect: i64,
    /// Trades of the newest second stitched, which the next block may continue.
    carry: Vec<ClonedEntry>,
    /// The window is handed back whole (or given up): later answers are past its end.
    pub finished: bool,
}

impl IdBlocks {
    /// `window` from id `first_id` on, in blocks of `block` ids. `seen`: an id before it with
    /// its second, and `per_sec` ids a second there, for the first estimate of the end; if that
    /// is not known, the first block is asked for alone and its answer tells.
    pub fn new(
        window: Window,
        first_id: i64,
        block: i64,
        seen: (i64, i64),
        per_sec: Option<f64>,
    ) -> Self {
        // The density as two points: `seen`, and one a window's length before it.
        let back = window.secs().max(1);
        let first = match per_sec {
            Some(per_sec) => (seen.0 - (per_sec * back as f64) as i64, seen.1 - back),
            None => seen,
        };
        IdBlocks {
            known: per_sec.is_some(),
            asked: window,
            pending: window,
            block: block.max(1),
            next_id: first_id,
            last_out: false,
            first,
            newest: seen,
            answered: BTreeMap::new(),
            expect: first_id,
            carry: Vec::new(),
            finished: false,
        }
    }

    /// The window every request names.
    pub fn asked(&self) -> Window {
        self.asked
    }

    /// What the output still awaits: from the first second not handed back to the window's
    /// end (or a kept part's).
    pub fn pending(&self) -> Window {
        self.pending
    }

    /// Whether a request can be handed out.
    pub fn wants(&self) -> bool {
        !self.finished && !self.last_out && (self.known || self.next_id == self.expect)
    }

    /// The ids the window is estimated to end before, at the density seen.
    fn estimated_end(&self) -> i64 {
        if !self.known {
            return i64::MAX;
        }
        let (id0, s0) = self.first;
        let (id1, s1) = self.newest;
        let per_sec = (id1 - id0) as f64 / (s1 - s0).max(1) as f64;
        id1 + (per_sec * (self.asked.until - s1).max(0) as f64).ceil() as i64 + 1
    }

    /// The next request: a block of `block` ids while a block more than another is estimated
    /// to be left after it, then the last, with no id end.
    pub fn next_request(&mut self) -> Option<Ids> {
        if !self.wants() {
            return None;
        }
        let from = self.next_id;
        if from + 2 * self.block > self.estimated_end() {
            self.last_out = true;
            return Some(Ids { from, until: None });
        }
        self.next_id += self.block;
        Some(Ids {
            from,
            until: Some(self.next_id),
        })
    }

    /// What the answer to `ids` gives. An error, and nothing changed, if it is not an answer
    /// to them (trades outside the ids or the window, out of order); an answer that
    /// contradicts the blocks before it (ids and times disagree) stops the blocks after what
    /// they make whole ([`Stitched::failed`]).
    pub fn answered(
        &mut self,
        ids: Ids,
        entries: Vec<ClonedEntry>,
        end: End,
    ) -> Result<Stitched, String> {
        let mut stitched = Stitched::default();
        if self.finished {
            if !entries.is_empty() {
                log::warn!(
                    "ids from {} answered with {} trades after the window's end; dropped",
                    ids.from,
                    entries.len()
                );
            }
            return Ok(stitched);
        }
        let inside = |e: &ClonedEntry| {
            e.trade_id >= ids.from
                && ids.until.is_none_or(|until| e.trade_id < until)
                && (self.pending.from..=self.asked.until).contains(&e.date)
        };
        if let Some(bad) = entries.iter().find(|e| !inside(e)) {
            return Err(format!(
                "trade {} at {} answered for ids from {} in {}, outside them",
                bad.trade_id, bad.date, ids.from, self.pending
            ));
        }
        if let Some(pair) = entries
            .windows(2)
            .find(|p| p[1].trade_id <= p[0].trade_id || p[1].date < p[0].date)
        {
            return Err(format!(
                "trade {} at {} follows trade {} at {}: out of order",
                pair[1].trade_id, pair[1].date, pair[0].trade_id, pair[0].date
            ));
        }
        if end == End::Ids && ids.until.is_none() {
            return Err(format!(
                "ids from {} with no end ended at their end",
                ids.from
            ));
        }
        if let End::Kept(until) = end {
            if until < self.pending.from || until >= self.pending.until {
                return Err(format!(
                    "a kept part up to {until} is not inside what is awaited, {}",
                    self.pending
                ));
            }
            stitched.cut = Some(Window {
                from: until + 1,
                until: self.pending.until,
            });
            self.pending.until = until;
        }
        if let (Some(oldest), Some(newest)) = (entries.first(), entries.last()) {
            if !self.known {
                self.first = (oldest.trade_id, oldest.date);
                self.known = true;
            }
            if newest.trade_id > self.newest.0 {
                self.newest = (newest.trade_id, newest.date);
            }
        }
        self.answered.insert(
            ids.from,
            Block {
                until: ids.until,
                entries,
                end,
            },
        );
        if let Err(why) = self.stitch(&mut stitched.written) {
            self.give_up();
            stitched.failed = Some(why);
        }
        Ok(stitched)
    }

    /// Hands back what the blocks answered in order now make whole.
    fn stitch(&mut self, written: &mut Vec<(Window, Vec<ClonedEntry>)>) -> Result<(), String> {
        while !self.finished {
            let Some(block) = self.answered.remove(&self.expect) else {
                break;
            };
            if let Some(first) = block.entries.first() {
                if first.date < self.pending.from {
                    return Err(format!(
                        "trade {} at {} comes after the window was written up to {}: ids and times disagree",
                        first.trade_id, first.date, self.pending.from - 1
                    ));
                }
            }
            if let (Some(last), Some(first)) = (self.carry.last(), block.entries.first()) {
                if first.date < last.date {
                    return Err(format!(
                        "trade {} at {} comes after trade {} at {}: ids and times disagree",
                        first.trade_id, first.date, last.trade_id, last.date
                    ));
                }
            }
            self.carry.extend(block.entries);
            match block.end {
                End::Ids => {
                    self.expect = block.until.expect("checked when answered");
                    let Some(newest) = self.carry.last().map(|e| e.date) else {
                        continue;
                    };
                    if newest > self.pending.from {
                        let at = self.carry.partition_point(|e| e.date < newest);
                        let newest_second = self.carry.split_off(at);
                        let part = Window {
                            from: self.pending.from,
                            until: newest - 1,
                        };
                        written.push((part, std::mem::replace(&mut self.carry, newest_second)));
                        self.pending.from = newest;
                    }
                }
                End::Window | End::Kept(_) => {
                    let rest = std::mem::take(&mut self.carry);
                    if rest.last().is_some_and(|e| e.date > self.pending.until) {
                        return Err(format!(
                            "trades past {} answered for a window cut there",
                            self.pending.until
                        ));
                    }
                    written.push((self.pending, rest));
                    self.finished = true;
                }
            }
        }
        Ok(())
    }

    /// The window will not be whole: no more requests, later answers dropped.
    pub fn give_up(&mut self) {
        self.finished = true;
        self.answered.clear();
        self.carry.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(id: i64, date: i64) -> ClonedEntry {
        ClonedEntry {
            trade_id: id,
            date,
            ..Default::default()
        }
    }

    /// Trades `ids`, the n-th at `date(n)`.
    fn trades(ids: std::ops::Range<i64>, date: impl Fn(i64) -> i64) -> Vec<ClonedEntry> {
        ids.map(|i| trade(i, date(i))).collect()
    }

    fn ids(entries: &[ClonedEntry]) -> Vec<i64> {
        entries.iter().map(|e| e.trade_id).collect()
    }

    const W: Window = Window {
        from: 100,
        until: 199,
    };

    #[test]
    fn blocks_of_whole_pages_until_near_the_end_then_one_to_the_end() {
        // 10 ids a second from id 1000 at second 100: the window holds about 1000 ids.
        let mut b = IdBlocks::new(W, 1000, 200, (999, 99), Some(10.0));
        let mut asked = Vec::new();
        while let Some(ids) = b.next_request() {
            asked.push(ids);
        }
        let closed: Vec<_> = asked.iter().filter(|i| i.until.is_some()).collect();
        // 4 blocks of 200 up to id 1800; the last, with no end, holds the estimated 200 left.
        assert_eq!(closed.len(), 4, "{asked:?}");
        assert!(asked.windows(2).all(|w| w[0].until == Some(w[1].from)));
        assert_eq!(asked.last().unwrap().until, None);
        assert!(!b.wants());
    }

    #[test]
    fn answers_in_any_order_come_back_as_windows_in_order_each_second_once() {
        let mut b = IdBlocks::new(W, 1000, 20, (999, 99), Some(1.0));
        // Two trades a second from second 100: ids 1000.. at 100 + (id - 1000) / 2.
        let at = |i: i64| 100 + (i - 1000) / 2;
        let first = b.next_request().unwrap();
        let second = b.next_request().unwrap();
        assert_eq!((first.until, second.from), (Some(1020), 1020));
        // The second block first: nothing can be written before the first is in.
        let got = b
            .answered(second, trades(1020..1040, at), End::Ids)
            .unwrap();
        assert_eq!(got, Stitched::default());
        // The first: both are written up to the second before the newest (119), which the
        // third block may continue.
        let got = b.answered(first, trades(1000..1020, at), End::Ids).unwrap();
        assert_eq!(got.written.len(), 2);
        assert_eq!(
            got.written[0].0,
            Window {
                from: 100,
                until: 108
            }
        );
        assert_eq!(ids(&got.written[0].1), (1000..1018).collect::<Vec<_>>());
        assert_eq!(
            got.written[1].0,
            Window {
                from: 109,
                until: 118
            }
        );
        assert_eq!(
            b.pending(),
            Window {
                from: 119,
                until: 199
            }
        );
        // The last one reaches the window's end: the rest, the carried second included.
        let last = Ids {
            from: 1040,
            until: None,
        };
        let got = b
            .answered(last, trades(1040..1050, at), End::Window)
            .unwrap();
        assert_eq!(got.written.len(), 1);
        assert_eq!(
            got.written[0].0,
            Window {
                from: 119,
                until: 199
            }
        );
        assert_eq!(ids(&got.written[0].1), (1038..1050).collect::<Vec<_>>());
        assert!(b.finished);
        // A block asked past the end is dropped.
        let past = Ids {
            from: 1050,
            until: Some(1070),
        };
        assert_eq!(
            b.answered(past, vec![], End::Window).unwrap(),
            Stitched::default()
        );
    }

    #[test]
    fn a_kept_part_of_the_last_block_cuts_the_window_at_once() {
        let mut b = IdBlocks::new(W, 1000, 10, (999, 99), Some(1.0));
        let first = b.next_request().unwrap();
        let last = Ids {
            from: 1010,
            until: None,
        };
        // The last block's pages covered up to second 150: the rest is asked for by time now.
        let got = b
            .answered(last, trades(1010..1020, |i| 100 + i - 1000), End::Kept(150))
            .unwrap();
        assert_eq!(
            got.cut,
            Some(Window {
                from: 151,
                until: 199
            })
        );
        assert!(got.written.is_empty());
        let got = b
            .answered(first, trades(1000..1010, |i| 100 + i - 1000), End::Ids)
            .unwrap();
        assert_eq!(got.written.last().unwrap().0.until, 150);
        assert_eq!(
            got.written.iter().map(|(_, e)| e.len()).sum::<usize>(),
            20,
            "every trade once"
        );
        assert!(b.finished);
    }

    #[test]
    fn a_second_split_across_blocks_is_written_once_whole() {
        let mut b = IdBlocks::new(W, 1000, 4, (999, 99), Some(1.0));
        let (one, two) = (b.next_request().unwrap(), b.next_request().unwrap());
        // Ids 1002..1006 all in second 130: spread over both blocks.
        let got = b
            .answered(
                one,
                trades(1000..1004, |i| if i < 1002 { 120 } else { 130 }),
                End::Ids,
            )
            .unwrap();
        assert_eq!(
            got.written[0].0,
            Window {
                from: 100,
                until: 129
            }
        );
        let got = b
            .answered(
                two,
                trades(1004..1008, |i| if i < 1006 { 130 } else { 131 }),
                End::Ids,
            )
            .unwrap();
        assert_eq!(
            got.written[0].0,
            Window {
                from: 130,
                until: 130
            }
        );
        assert_eq!(ids(&got.written[0].1), [1002, 1003, 1004, 1005]);
    }

    #[test]
    fn with_no_density_known_one_block_is_asked_for_first() {
        let mut b = IdBlocks::new(W, 1000, 10, (999, 99), None);
        let first = b.next_request().unwrap();
        assert_eq!(first.until, Some(1010));
        assert!(!b.wants(), "one block until its answer tells the density");
        // Ten ids a second: the window holds about 1000 more, so blocks go on side by side.
        b.answered(first, trades(1000..1010, |_| 100), End::Ids)
            .unwrap();
        assert!(b.wants());
        let (two, three) = (b.next_request().unwrap(), b.next_request().unwrap());
        assert_eq!((two.until, three.until), (Some(1020), Some(1030)));
    }

    #[test]
    fn what_contradicts_the_ids_is_refused() {
        let mut b = IdBlocks::new(W, 1000, 4, (999, 99), Some(1.0));
        let (one, two) = (b.next_request().unwrap(), b.next_request().unwrap());
        assert!(b.answered(one, vec![trade(999, 120)], End::Ids).is_err());
        assert!(b.answered(one, vec![trade(1000, 250)], End::Ids).is_err());
        let backwards = vec![trade(1001, 120), trade(1000, 121)];
        assert!(b.answered(one, backwards, End::Ids).is_err());
        b.answered(two, vec![trade(1004, 110)], End::Ids).unwrap();
        // The first block is written; the second, earlier in time, stops the blocks there.
        let later = b.answered(one, vec![trade(1003, 120)], End::Ids).unwrap();
        assert_eq!(
            later.written[0].0,
            Window {
                from: 100,
                until: 119
            }
        );
        assert!(later.failed.unwrap().contains("disagree"));
        assert!(b.finished);
        assert_eq!(
            b.pending(),
            Window {
                from: 120,
                until: 199
            }
        );
    }
}

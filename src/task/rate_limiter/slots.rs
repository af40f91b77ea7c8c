//! The limiter's schedule as pure arithmetic over instants: which slots of the budget's timeline
//! this limiter may grant in, and how many of them it uses after push-back. No actor, no timer:
//! [`RateLimiter`](super::RateLimiter) asks it when the next grant is due and arms one timer.
//!
//! **The timeline.** A budget of `rate` calls a second is cut into slots of
//! `interval = (1 s + jitter) / rate`; slot `k` starts at unix time `k × interval`. Any `rate + 1`
//! consecutive slots span `1 s + jitter`, so if every call leaves within `jitter / 2` of its
//! slot's start and the network varies its delay by no more than `jitter / 2`, the exchange
//! never sees more than `rate` calls in any one second.
//!
//! **Parts.** The budget is cut into `parts` equal parts; slot `k` belongs to part `k mod parts`.
//! A limiter that owns some parts grants only in their slots, one grant per slot. Limiters of
//! one budget that own disjoint parts and read the same clock (hosts kept within a few
//! milliseconds by NTP) therefore never grant in the same slot: together they spend at most the
//! budget, with no message between them. One limiter alone owns the one part of one.
//!
//! **Push-back.** After a refusal the limiter uses only a `fraction` of its slots (each owned
//! slot adds `fraction` of a grant's credit; a grant costs one): halved at each decrease, then
//! growing back by [`INCREASE_PER_SECOND`] until whole. A pause skips every slot until it ends.
//!
//! It must never grant in a slot it does not own, twice in one slot, or in a slot whose
//! departure allowance has passed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// How much of the owned slots come back each second after a decrease: half to whole in 5 s.
pub const INCREASE_PER_SECOND: f64 = 0.1;
/// What a decrease multiplies the fraction by.
pub const DECREASE_FACTOR: f64 = 0.5;
/// The least fraction decreases go down to: one slot in 64 (at 6 calls/s, one call in 11 s).
pub const MIN_FRACTION: f64 = 1.0 / 64.0;

/// Where the timeline is, in this process's monotonic clock: `unix_ns` nanoseconds after the
/// unix epoch is the instant `at`.
#[derive(Debug, Clone, Copy)]
pub struct Anchor {
    pub at: Instant,
    pub unix_ns: u128,
}

impl Anchor {
    /// The wall clock now: what replicas on different hosts agree on.
    pub fn wall_clock() -> Anchor {
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Anchor {
            at: Instant::now(),
            unix_ns,
        }
    }

    /// The timeline starts now (tests in virtual time, where the wall clock does not move).
    pub fn local() -> Anchor {
        Anchor {
            at: Instant::now(),
            unix_ns: 0,
        }
    }
}

/// Which slots a limiter may use, and which one is next.
#[derive(Debug, Clone)]
pub struct Slots {
    anchor: Anchor,
    /// Slot length in nanoseconds: `(1 s + jitter) / rate`, rounded up.
    interval_ns: u128,
    /// How late after its slot's start a call may still leave: `jitter / 2`.
    allowance: Duration,
    /// Owned parts, as a mask over `0..parts`.
    owned: Vec<bool>,
    /// Slots before this one are spent or skipped.
    next: u64,
    /// Credit towards the next grant; at most one grant's worth, so idle time builds no burst.
    credit: f64,
    /// The fraction right after the last decrease, and when that was.
    decreased: Option<(f64, Instant)>,
    /// No grant in a slot that starts before this.
    paused_until: Option<Instant>,
}

/// One slot a grant may be made in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planned {
    pub slot: u64,
    /// When the slot starts: the grant is due then.
    pub start: Instant,
    /// The call must leave by then, or give the slot up.
    pub depart_by: Instant,
    /// Credit left once the grant is made.
    credit_after: f64,
}

impl Slots {
    /// A limiter's slots of a budget of `rate` calls per second (finite, > 0), owning every part
    /// of one.
    pub fn new(rate: f64, jitter: Duration, anchor: Anchor) -> Slots {
        let mut slots = Slots {
            anchor,
            interval_ns: 1,
            allowance: jitter / 2,
            owned: vec![true],
            next: 0,
            credit: 1.0,
            decreased: None,
            paused_until: None,
        };
        slots.set_rate(rate, jitter, Instant::now());
        slots
    }

    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns as u64)
    }

    /// A new rate or jitter: a new timeline, taken up from the slot `now` is in.
    pub fn set_rate(&mut self, rate: f64, jitter: Duration, now: Instant) {
        let window = 1e9 + jitter.as_nanos() as f64;
        self.interval_ns = ((window / rate).ceil() as u128).max(1);
        self.allowance = jitter / 2;
        self.next = self.slot_at(now);
    }

    /// Owns `owned` of `parts` equal parts of the budget (`parts` ≥ 1; others are ignored).
    pub fn set_share(&mut self, owned: &[u32], parts: u32, now: Instant) {
        let parts = parts.max(1);
        self.owned = vec![false; parts as usize];
        for &p in owned.iter().filter(|&&p| p < parts) {
            self.owned[p as usize] = true;
        }
        self.next = self.next.max(self.slot_at(now));
    }

    pub fn owned_parts(&self) -> usize {
        self.owned.iter().filter(|&&o| o).count()
    }

    pub fn parts(&self) -> usize {
        self.owned.len()
    }

    /// The slot `t` falls in.
    pub fn slot_at(&self, t: Instant) -> u64 {
        let unix = if t >= self.anchor.at {
            self.anchor.unix_ns + (t - self.anchor.at).as_nanos()
        } else {
            self.anchor
                .unix_ns
                .saturating_sub((self.anchor.at - t).as_nanos())
        };
        (unix / self.interval_ns) as u64
    }

    /// When slot `k` starts.
    pub fn start(&self, k: u64) -> Instant {
        let unix = k as u128 * self.interval_ns;
        if unix >= self.anchor.unix_ns {
            self.anchor.at + nanos(unix - self.anchor.unix_ns)
        } else {
            let back = nanos(self.anchor.unix_ns - unix);
            self.anchor.at.checked_sub(back).unwrap_or(self.anchor.at)
        }
    }

    /// The share of slots used at `t`: 1 until a decrease, then growing back.
    pub fn fraction(&self, t: Instant) -> f64 {
        match self.decreased {
            None => 1.0,
            Some((to, at)) => {
                let recovered = INCREASE_PER_SECOND * t.saturating_duration_since(at).as_secs_f64();
                (to + recovered).min(1.0)
            }
        }
    }

    /// The next slot a grant may be made in, seen from `now`: owned, not paused, not past its
    /// allowance, with a grant's worth of credit. `None` when no part is owned.
    pub fn plan(&self, now: Instant) -> Option<Planned> {
        if self.owned_parts() == 0 {
            return None;
        }
        let parts = self.owned.len() as u64;
        // Credit builds over every owned slot since the last grant (a waiter's slots pass while
        // the fraction is below one), capped at one grant. Far behind (idle), start where the
        // cap is reached anyway: 64 owned slots at the least fraction.
        let reach = parts * (1.0 / MIN_FRACTION) as u64;
        let mut k = self.next.max(self.slot_at(now).saturating_sub(reach));
        // Straight past a pause, however long.
        if let Some(until) = self.paused_until {
            let first = self.slot_at(until);
            let first = if self.start(first) < until {
                first + 1
            } else {
                first
            };
            k = k.max(first);
        }
        let mut credit = self.credit;
        loop {
            if self.owned[(k % parts) as usize] {
                let start = self.start(k);
                credit = (credit + self.fraction(start)).min(1.0);
                let depart_by = start + self.allowance;
                // A hair under one is one: fractions that add up to 1 in floating point.
                if credit >= 1.0 - 1e-9 && depart_by >= now {
                    return Some(Planned {
                        slot: k,
                        start,
                        depart_by,
                        credit_after: (credit - 1.0).max(0.0),
                    });
                }
            }
            k += 1;
        }
    }

    /// Makes the grant `plan` planned: its slot and every one before it are spent.
    pub fn take(&mut self, planned: &Planned) {
        self.next = planned.slot + 1;
        self.credit = planned.credit_after;
    }

    /// A refusal of a call made in `slot`: decrease, unless the call was made before the last
    /// decrease (it was already on its way at the old rate). `true` if it decreased.
    pub fn slow_down(&mut self, slot: u64, now: Instant) -> bool {
        if let Some((_, at)) = self.decreased {
            if self.start(slot) < at {
                return false;
            }
        }
        let to = (self.fraction(now) * DECREASE_FACTOR).max(MIN_FRACTION);
        self.decreased = Some((to, now));
        true
    }

    /// No grant before `until`; returns how much later than the pause already in force (or
    /// `now`) that is, for the paused-time count.
    pub fn pause_until(&mut self, until: Instant, now: Instant) -> Duration {
        let before = self.paused_until.unwrap_or(now).max(now);
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        until.saturating_duration_since(before)
    }

    /// Until when grants are paused, if they are at `now`.
    pub fn paused(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|&until| until > now)
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(n.min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JITTER: Duration = Duration::from_millis(20);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Grants `n` times as fast as the slots allow, from `now`; returns the slots granted in.
    fn grant_all(slots: &mut Slots, mut now: Instant, n: usize) -> Vec<Planned> {
        let mut out = Vec::new();
        for _ in 0..n {
            let p = slots.plan(now).expect("an owned slot");
            now = now.max(p.start);
            slots.take(&p);
            out.push(p);
        }
        out
    }

    #[test]
    fn any_rate_plus_one_grants_span_a_second_and_the_jitter() {
        let now = Instant::now();
        for rate in [1.0, 3.0, 6.0, 60.0, 600.0] {
            let mut slots = Slots::new(rate, JITTER, Anchor::local());
            let grants = grant_all(&mut slots, now, rate as usize * 5);
            let n = rate as usize;
            for w in grants.windows(n + 1) {
                let span = w[n].start - w[0].start;
                assert!(span >= ms(1000) + JITTER, "rate {rate}: {span:?}");
                // Calls leave up to the allowance late: still over a second apart.
                assert!(w[n].start - w[0].depart_by >= ms(1000) + JITTER / 2);
            }
            // And no slower than the timeline: every slot used.
            assert!(grants.windows(2).all(|w| w[1].slot == w[0].slot + 1));
        }
    }

    #[test]
    fn owners_of_disjoint_parts_never_share_a_slot_and_together_use_every_one() {
        let anchor = Anchor::local();
        let now = anchor.at;
        let mut members: Vec<Slots> = [vec![0, 3], vec![1], vec![2, 4, 5]]
            .iter()
            .map(|owned| {
                let mut s = Slots::new(6.0, JITTER, anchor);
                s.set_share(owned, 6, now);
                s
            })
            .collect();
        let mut all: Vec<u64> = members
            .iter_mut()
            .flat_map(|m| {
                let n = m.owned_parts() * 10;
                grant_all(m, now, n).into_iter().map(|p| p.slot)
            })
            .collect();
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(all.len(), before, "a slot granted twice");
        // 60 grants over the first 60 slots: the group spends the whole budget.
        assert_eq!(all, (all[0]..all[0] + 60).collect::<Vec<_>>());
    }

    #[test]
    fn no_part_owned_means_no_grant_and_a_share_change_takes_effect_at_once() {
        let now = Instant::now();
        let mut s = Slots::new(6.0, JITTER, Anchor::local());
        s.set_share(&[], 4, now);
        assert_eq!(s.plan(now), None);
        s.set_share(&[2], 4, now);
        let p = s.plan(now).unwrap();
        assert_eq!(p.slot % 4, 2);
        // Parts past the count are ignored rather than owned.
        s.set_share(&[7], 4, now);
        assert_eq!(s.plan(now), None);
    }

    #[test]
    fn a_slot_past_its_allowance_is_skipped() {
        let s = Slots::new(6.0, JITTER, Anchor::local());
        let first = s.plan(s.anchor.at).unwrap();
        // Asked 11 ms into slot 0 (allowance 10 ms): slot 0 is lost, slot 1 is next.
        let late = s.plan(first.start + ms(11)).unwrap();
        assert_eq!(late.slot, first.slot + 1);
        let in_time = s.plan(first.start + ms(9)).unwrap();
        assert_eq!(in_time.slot, first.slot);
    }

    #[test]
    fn a_decrease_halves_the_grants_and_they_recover_in_five_seconds() {
        let now = Instant::now();
        let mut s = Slots::new(10.0, Duration::ZERO, Anchor::local());
        let start = s.plan(now).unwrap();
        s.take(&start);
        assert!(s.slow_down(start.slot, start.start));
        assert_eq!(s.fraction(start.start), 0.5);
        // The next grants come every other slot, then closer as the fraction grows back.
        let grants = grant_all(&mut s, start.start, 60);
        let gaps: Vec<u64> = grants.windows(2).map(|w| w[1].slot - w[0].slot).collect();
        assert_eq!(gaps[0], 2, "{gaps:?}");
        assert_eq!(*gaps.last().unwrap(), 1, "{gaps:?}");
        assert!((s.fraction(start.start + ms(5_000)) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn refusals_of_calls_made_before_the_decrease_do_not_decrease_again() {
        let now = Instant::now();
        let mut s = Slots::new(6.0, JITTER, Anchor::local());
        let calls = grant_all(&mut s, now, 4);
        let at = calls[3].start + ms(50);
        assert!(s.slow_down(calls[2].slot, at));
        // Three calls were in flight; their refusals come back after the decrease.
        assert!(!s.slow_down(calls[3].slot, at + ms(10)));
        assert_eq!(s.fraction(at + ms(10)), 0.5 + INCREASE_PER_SECOND * 0.01);
        // A call granted after the decrease and refused: down again.
        let next = grant_all(&mut s, at, 1)[0];
        assert!(s.slow_down(next.slot, next.start));
        assert!(s.fraction(next.start) < 0.5);
        // Never below the floor.
        for _ in 0..20 {
            let p = grant_all(&mut s, next.start, 1)[0];
            s.slow_down(p.slot, p.start);
        }
        assert!(s.fraction(s.start(s.next)) >= MIN_FRACTION);
    }

    #[test]
    fn a_pause_skips_every_slot_until_it_ends_and_is_counted_once() {
        let now = Instant::now();
        let mut s = Slots::new(6.0, JITTER, Anchor::local());
        assert_eq!(s.pause_until(now + ms(2_000), now), ms(2_000));
        // A shorter pause inside it adds nothing; a longer one adds the difference.
        assert_eq!(s.pause_until(now + ms(1_000), now), Duration::ZERO);
        assert_eq!(s.pause_until(now + ms(3_000), now + ms(500)), ms(1_000));
        let p = s.plan(now).unwrap();
        assert!(p.start >= now + ms(3_000));
        assert!(p.start < now + ms(3_000) + s.interval());
        assert_eq!(s.paused(now), Some(now + ms(3_000)));
        assert_eq!(s.paused(now + ms(3_000)), None);
        // A pause of a day at 600 calls a second is one jump, not 52 million slots looked at.
        let mut fast = Slots::new(600.0, JITTER, Anchor::local());
        fast.pause_until(now + Duration::from_secs(86_400), now);
        let p = fast.plan(now).unwrap();
        assert!(p.start >= now + Duration::from_secs(86_400));
    }

    #[test]
    fn the_wall_clock_decides_the_slots() {
        // Two limiters anchored 1.25 slots apart in wall time but at the same instant agree
        // on which slot an instant is in once their anchors are read from one clock.
        let at = Instant::now();
        let a = Slots::new(
            4.0,
            Duration::ZERO,
            Anchor {
                at,
                unix_ns: 1_000_000_000,
            },
        );
        let b = Slots::new(
            4.0,
            Duration::ZERO,
            Anchor {
                at: at + ms(100),
                unix_ns: 1_100_000_000,
            },
        );
        for t in [at, at + ms(250), at + ms(999)] {
            assert_eq!(a.slot_at(t), b.slot_at(t));
            assert_eq!(a.start(a.slot_at(t)), b.start(b.slot_at(t)));
        }
        assert_eq!(a.slot_at(at), 4);
        assert_eq!(a.start(5), at + ms(250));
    }
}

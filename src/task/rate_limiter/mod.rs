//! `RateLimiter`: a generic actor that grants permission for one call at a time so that the
//! calls *arrive* at most `rate` per second — the original's `RateLimiter` process.
//!
//! `register` resolves when the caller may make its call; waiters are served first come, first
//! served; `set_rate` takes effect from the next grant. Grants fall on the slots of a timeline
//! read from the wall clock ([`slots`]): one grant per slot, slots `(1 s + jitter) / rate`
//! apart, and a grant is good only until `jitter / 2` after its slot starts. A caller that wakes
//! later than that (a loaded host) gives its slot up and goes back to the head of the line
//! ([`register`] does this), so scheduling delays can never squeeze an extra call into the
//! exchange's second.
//!
//! One budget can be shared by limiters in several processes with no message between them:
//! each owns some of the budget's equal parts ([`SetShare`]) and grants only in their slots.
//! Push-back from the one the calls go to is obeyed by all its callers at once: [`SlowDown`]
//! halves the share of slots used (it grows back in seconds), [`PauseFor`] stops every grant
//! for a while.
//!
//! It must never poll: no timer runs while nobody waits, and while somebody waits exactly one
//! timer is armed, for the next slot it may grant in. It knows nothing of what the calls are for.

pub mod slots;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;

use self::slots::{Anchor, Slots};

/// How often the limiter may grant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// At most this many calls per second as the exchange counts them (finite, > 0), for the
    /// whole budget; a limiter that owns part of it grants that part.
    PerSecond(f64),
    /// Grant at once: no limit. For benchmarks and simulators, never for a real exchange.
    Unlimited,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::PerSecond(r) => write!(f, "{r}/s"),
            Rate::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// A rate the limiter cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateError {
    #[error("rate must be a positive, finite number of calls per second, got {0}")]
    NotPositive(f64),
    #[error("a share must own at most all of at least one part, got {owned:?} of {parts}")]
    BadShare { owned: Vec<u32>, parts: u32 },
}

/// The limiter stopped before granting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rate limiter stopped")]
pub struct LimiterClosed;

/// Permission for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// How long the caller waited in line; an operator's view of back-pressure from the rate.
    pub waited: Duration,
    /// The slot granted, to name the call in [`SlowDown`]; 0 when unlimited.
    pub slot: u64,
    /// The call must leave by then; `None` when unlimited.
    depart_by: Option<Instant>,
}

impl Grant {
    /// Whether a call leaving at `now` is still within its slot's allowance.
    pub fn on_time(&self, now: Instant) -> bool {
        self.depart_by.is_none_or(|by| now <= by)
    }
}

/// Why grants are paused, as the one who asked said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseCause {
    /// Too many calls: the exchange asked for a wait (429 with `Retry-After`).
    TooMany,
    /// The caller's address is banned for a while (403, 418).
    Banned,
}

struct Waiter {
    reply: oneshot::Sender<Grant>,
    since: Instant,
}

/// What the limiter has done since it started; for status, metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub granted: u64,
    /// Grants their callers could not use in time (they went back to the head of the line).
    pub missed: u64,
    /// Decreases after [`SlowDown`].
    pub decreases: u64,
    /// Time during which grants were paused by [`PauseFor`].
    pub paused: Duration,
}

pub struct RateLimiter {
    rate: Rate,
    /// The allowance for arrival jitter: slots are `(1 s + jitter) / rate` apart.
    jitter: Duration,
    /// The timeline and what this limiter owns of it; its share is kept while unlimited too.
    slots: Slots,
    /// Callers waiting for a grant, oldest first.
    waiters: VecDeque<Waiter>,
    /// The one timer, armed only while `waiters` is not empty and a slot is owned.
    timer: Option<SpawnHandle>,
    /// Why the last pause was asked for.
    pause_cause: Option<PauseCause>,
    counters: Counters,
}

impl RateLimiter {
    /// A limiter owning the whole budget of `rate`, its timeline read from the wall clock so
    /// that limiters of other processes sharing the budget agree on it.
    pub fn new(rate: Rate, jitter: Duration) -> Result<RateLimiter, RateError> {
        RateLimiter::with_anchor(rate, jitter, Anchor::wall_clock())
    }

    /// As [`RateLimiter::new`], with the timeline at `anchor` (tests use [`Anchor::local`]).
    pub fn with_anchor(
        rate: Rate,
        jitter: Duration,
        anchor: Anchor,
    ) -> Result<RateLimiter, RateError> {
        check_rate(rate)?;
        let per_second = match rate {
            Rate::PerSecond(r) => r,
            // Any timeline: unused until a limited rate is set.
            Rate::Unlimited => 1.0,
        };
        Ok(RateLimiter {
            rate,
            jitter,
            slots: Slots::new(per_second, jitter, anchor),
            waiters: VecDeque::new(),
            timer: None,
            pause_cause: None,
            counters: Counters::default(),
        })
    }

    fn grant(&mut self, waiter: Waiter, now: Instant, slot: u64, depart_by: Option<Instant>) {
        self.counters.granted += 1;
        let _ = waiter.reply.send(Grant {
            waited: now - waiter.since,
            slot,
            depart_by,
        });
    }

    /// Grants to the waiters, in order, whose slots have come; then re-arms the timer.
    fn serve(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while let Some(front) = self.waiters.front() {
            // A caller that gave up must not spend a slot.
            if front.reply.is_closed() {
                self.waiters.pop_front();
                continue;
            }
            let (slot, depart_by) = match self.rate {
                // No rate, but a pause the exchange asked for is still obeyed.
                Rate::Unlimited if self.slots.paused(now).is_some() => break,
                Rate::Unlimited => (0, None),
                Rate::PerSecond(_) => match self.slots.plan(now) {
                    Some(planned) if planned.start <= now => {
                        self.slots.take(&planned);
                        (planned.slot, Some(planned.depart_by))
                    }
                    _ => break,
                },
            };
            let waiter = self.waiters.pop_front().expect("front exists");
            self.grant(waiter, now, slot, depart_by);
        }
        self.arm_timer(ctx);
    }

    /// Keeps the invariant: one timer iff somebody waits and a slot is owned, due at that slot.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if self.waiters.is_empty() {
            return;
        }
        let now = Instant::now();
        let due = match self.rate {
            Rate::Unlimited => match self.slots.paused(now) {
                Some(until) => until,
                None => return,
            },
            Rate::PerSecond(_) => match self.slots.plan(now) {
                Some(planned) => planned.start,
                None => return,
            },
        };
        let delay = due.saturating_duration_since(now);
        self.timer = Some(ctx.run_later(delay, |limiter, ctx| {
            limiter.timer = None;
            limiter.serve(ctx);
        }));
    }

    /// The calls per second this limiter may make: its parts of the budget.
    fn share(&self) -> Option<f64> {
        match self.rate {
            Rate::PerSecond(r) => {
                Some(r * self.slots.owned_parts() as f64 / self.slots.parts() as f64)
            }
            Rate::Unlimited => None,
        }
    }
}

fn check_rate(rate: Rate) -> Result<(), RateError> {
    match rate {
        Rate::PerSecond(r) if !(r.is_finite() && r > 0.0) => Err(RateError::NotPositive(r)),
        _ => Ok(()),
    }
}

impl Default for RateLimiter {
    /// The documented limit of the Poloniex public API: 6 calls per second, 20 ms of jitter.
    fn default() -> Self {
        RateLimiter::new(Rate::PerSecond(6.0), Duration::from_millis(20)).expect("valid default")
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;

    /// After a restart, callers may still be waiting.
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.serve(ctx);
    }
}

impl Supervised for RateLimiter {
    /// Its timer went with the old context; `started` arms a new one for whoever still waits.
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.timer = None;
    }
}

/// Reachable as a named process: `RateLimiter::from_registry()`.
impl SystemService for RateLimiter {}

/// `RateLimiter.register()`: the enclosed channel receives a [`Grant`] when the caller may make
/// one call. The caller holds the receiver, so one that gives up is skipped and spends no slot.
/// Use [`register`].
pub struct Register {
    pub reply: oneshot::Sender<Grant>,
    /// The caller's last grant came too late to use: it goes to the head of the line.
    pub missed: bool,
}

impl Message for Register {
    type Result = ();
}

impl Handler<Register> for RateLimiter {
    type Result = ();

    fn handle(&mut self, register: Register, ctx: &mut Context<Self>) {
        let waiter = Waiter {
            reply: register.reply,
            since: Instant::now(),
        };
        if register.missed {
            self.counters.missed += 1;
            self.waiters.push_front(waiter);
        } else {
            self.waiters.push_back(waiter);
        }
        // Only the head of the line may take a slot that has come: FIFO among waiters.
        self.serve(ctx);
    }
}

/// Waits until `limiter` allows one call, and returns when the call may leave at once. A grant
/// the caller wakes up too late to use (a loaded host) is given back, and the caller waits at
/// the head of the line for the next slot.
pub async fn register(limiter: &Addr<RateLimiter>) -> Result<Grant, LimiterClosed> {
    let since = Instant::now();
    let mut missed = false;
    loop {
        let (reply, rx) = oneshot::channel();
        // do_send ignores the mailbox capacity; if the limiter is gone, `reply` is dropped and:
        limiter.do_send(Register { reply, missed });
        let grant = rx.await.map_err(|_| LimiterClosed)?;
        let now = Instant::now();
        if grant.on_time(now) {
            return Ok(Grant {
                waited: now - since,
                ..grant
            });
        }
        missed = true;
    }
}

/// `RateLimiter.set_rate(rate)`: the whole budget's rate; takes effect from the next grant.
pub struct SetRate(pub Rate);

impl Message for SetRate {
    type Result = Result<(), RateError>;
}

impl Handler<SetRate> for RateLimiter {
    type Result = Result<(), RateError>;

    fn handle(&mut self, SetRate(rate): SetRate, ctx: &mut Context<Self>) -> Self::Result {
        check_rate(rate)?;
        self.rate = rate;
        if let Rate::PerSecond(r) = rate {
            self.slots.set_rate(r, self.jitter, Instant::now());
        }
        self.serve(ctx);
        Ok(())
    }
}

/// Owns `owned` of `parts` equal parts of the budget (each part a number below `parts`); the
/// other parts are other limiters'. Takes effect from the next grant. Owning none stops grants
/// until a share is set again.
pub struct SetShare {
    pub owned: Vec<u32>,
    pub parts: u32,
}

impl Message for SetShare {
    type Result = Result<(), RateError>;
}

impl Handler<SetShare> for RateLimiter {
    type Result = Result<(), RateError>;

    fn handle(&mut self, share: SetShare, ctx: &mut Context<Self>) -> Self::Result {
        if share.parts == 0 || share.owned.iter().any(|&p| p >= share.parts) {
            return Err(RateError::BadShare {
                owned: share.owned,
                parts: share.parts,
            });
        }
        self.slots
            .set_share(&share.owned, share.parts, Instant::now());
        self.serve(ctx);
        Ok(())
    }
}

/// The call made in `slot` was refused as one too many: use fewer slots for a while. Refusals
/// of calls made before the last decrease do not decrease again.
pub struct SlowDown {
    pub slot: u64,
}

impl Message for SlowDown {
    type Result = ();
}

impl Handler<SlowDown> for RateLimiter {
    type Result = ();

    fn handle(&mut self, SlowDown { slot }: SlowDown, ctx: &mut Context<Self>) {
        if self.rate == Rate::Unlimited {
            return;
        }
        let now = Instant::now();
        if self.slots.slow_down(slot, now) {
            self.counters.decreases += 1;
            log::warn!(
                "rate limiter: calls refused as too many; down to {:.0} % of this member's share, back in full within {} s",
                100.0 * self.slots.fraction(now),
                ((1.0 - self.slots.fraction(now)) / slots::INCREASE_PER_SECOND).ceil()
            );
            self.arm_timer(ctx);
        }
    }
}

/// No grant for `duration`, for `cause`; pauses overlap rather than add up.
pub struct PauseFor {
    pub duration: Duration,
    pub cause: PauseCause,
}

impl Message for PauseFor {
    type Result = ();
}

impl Handler<PauseFor> for RateLimiter {
    type Result = ();

    fn handle(&mut self, pause: PauseFor, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let added = self.slots.pause_until(now + pause.duration, now);
        self.counters.paused += added;
        if !added.is_zero() {
            self.pause_cause = Some(pause.cause);
            let why = match pause.cause {
                PauseCause::TooMany => "asked to wait",
                PauseCause::Banned => "banned",
            };
            log::warn!(
                "rate limiter: {why}; no call for {:.1} s",
                pause.duration.as_secs_f64()
            );
        }
        self.arm_timer(ctx);
    }
}

/// What the limiter is doing, for the REPL, metrics, `/health` and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterStatus {
    /// The whole budget's rate.
    pub rate: Rate,
    /// The calls per second this limiter's parts of the budget allow; `None` when unlimited.
    pub share: Option<f64>,
    /// The calls per second it grants now: the share, less after push-back.
    pub current: Option<f64>,
    /// Parts owned, of how many.
    pub parts: (usize, usize),
    pub jitter: Duration,
    pub waiting: usize,
    pub counters: Counters,
    /// How much longer grants are paused, and why; `None` when they are not.
    pub paused: Option<(Duration, PauseCause)>,
    /// Whether a timer is armed; never true while `waiting == 0`.
    pub timer_armed: bool,
}

pub struct GetLimiterStatus;

impl Message for GetLimiterStatus {
    type Result = LimiterStatus;
}

impl Handler<GetLimiterStatus> for RateLimiter {
    type Result = MessageResult<GetLimiterStatus>;

    fn handle(&mut self, _: GetLimiterStatus, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        let share = self.share();
        let paused = self
            .slots
            .paused(now)
            .map(|until| (until - now, self.pause_cause.unwrap_or(PauseCause::TooMany)));
        MessageResult(LimiterStatus {
            rate: self.rate,
            share,
            current: share.map(|s| s * self.slots.fraction(now)),
            parts: (self.slots.owned_parts(), self.slots.parts()),
            jitter: self.jitter,
            waiting: self.waiters.len(),
            counters: self.counters,
            paused,
            timer_armed: self.timer.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JITTER: Duration = Duration::from_millis(20);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn limiter(rate: Rate) -> Addr<RateLimiter> {
        RateLimiter::with_anchor(rate, JITTER, Anchor::local())
            .unwrap()
            .start()
    }

    /// `(1 s + jitter) / rate`: the slot length.
    fn interval(rate: f64) -> Duration {
        Duration::from_nanos(((1e9 + JITTER.as_nanos() as f64) / rate).ceil() as u64)
    }

    /// `actual` is `expected`, or later by at most the timer's lateness (a 1 ms tick).
    fn assert_on_schedule(actual: Duration, expected: Duration) {
        assert!(
            actual + ms(2) >= expected && actual <= expected + ms(2),
            "{actual:?} is not {expected:?}"
        );
    }

    /// Registers `n` callers at once and returns the instant each was granted, in grant order.
    async fn grant_times(limiter: &Addr<RateLimiter>, n: usize) -> Vec<Instant> {
        let waits = (0..n).map(|_| async {
            register(limiter).await.unwrap();
            Instant::now()
        });
        let mut times = futures_util::future::join_all(waits).await;
        times.sort();
        times
    }

    /// Most grants in any half-open one-second window.
    fn max_in_one_second(times: &[Instant]) -> usize {
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= Duration::from_secs(1) {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    async fn status(limiter: &Addr<RateLimiter>) -> LimiterStatus {
        limiter.send(GetLimiterStatus).await.unwrap()
    }

    /// Waits until `n` callers are in line (no sleeping: the limiter says).
    async fn until_waiting(limiter: &Addr<RateLimiter>, n: usize) {
        while status(limiter).await.waiting < n {
            tokio::task::yield_now().await;
        }
    }

    #[actix_rt::test]
    async fn never_more_than_the_rate_in_any_second_and_every_slot_used() {
        tokio::time::pause();
        for rate in [3.0, 6.0, 50.0, 600.0] {
            let limiter = limiter(Rate::PerSecond(rate));
            let n = (rate as usize) * 4;
            let times = grant_times(&limiter, n).await;
            assert!(max_in_one_second(&times) <= rate as usize, "rate {rate}");
            // Not slower than the slots either: lateness does not add up.
            let span = *times.last().unwrap() - times[0];
            assert_on_schedule(span, interval(rate) * (n as u32 - 1));
            assert_eq!(status(&limiter).await.counters.granted, n as u64);
        }
    }

    #[actix_rt::test]
    async fn waiters_are_granted_in_arrival_order() {
        tokio::time::pause();
        let limiter = limiter(Rate::PerSecond(10.0));
        let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut receivers = Vec::new();
        for i in 0..20 {
            let (reply, rx) = oneshot::channel();
            limiter.do_send(Register {
                reply,
                missed: false,
            });
            receivers.push((i, rx));
        }
        for (i, rx) in receivers {
            let order_tx = order_tx.clone();
            actix_rt::spawn(async move {
                rx.await.unwrap();
                order_tx.send((i, Instant::now())).unwrap();
            });
        }
        drop(order_tx);
        let mut seen = Vec::new();
        while let Some(x) = order_rx.recv().await {
            seen.push(x);
        }
        // Grant instants strictly follow registration order.
        for pair in seen.windows(2) {
            let ((i, ti), (j, tj)) = (pair[0], pair[1]);
            assert!(ti < tj || (ti == tj && i < j), "{i}@{ti:?} then {j}@{tj:?}");
        }
        let mut by_time = seen.clone();
        by_time.sort_by_key(|&(i, t)| (t, i));
        assert_eq!(
            by_time.iter().map(|x| x.0).collect::<Vec<_>>(),
            (0..20).collect::<Vec<_>>()
        );
    }

    #[actix_rt::test]
    async fn a_grant_woken_too_late_is_given_back_and_its_caller_goes_first() {
        tokio::time::pause();
        let limiter = limiter(Rate::PerSecond(2.0));
        register(&limiter).await.unwrap();
        // A caller whose grant comes while its thread is busy elsewhere for 100 ms (> 10 ms).
        let (reply, late_rx) = oneshot::channel();
        limiter.do_send(Register {
            reply,
            missed: false,
        });
        let grant = late_rx.await.unwrap();
        tokio::time::advance(ms(100)).await;
        assert!(!grant.on_time(Instant::now()));
        // Meanwhile another caller queued; the late one, registering again, is still first.
        let other = actix_rt::spawn({
            let limiter = limiter.clone();
            async move {
                register(&limiter).await.unwrap();
                Instant::now()
            }
        });
        until_waiting(&limiter, 1).await;
        let again = register_missed(&limiter).await;
        let other = other.await.unwrap();
        assert!(again < other, "the caller that missed goes first");
        assert_eq!(status(&limiter).await.counters.missed, 1);
    }

    async fn register_missed(limiter: &Addr<RateLimiter>) -> Instant {
        let (reply, rx) = oneshot::channel();
        limiter.do_send(Register {
            reply,
            missed: true,
        });
        rx.await.unwrap();
        Instant::now()
    }

    #[actix_rt::test]
    async fn set_rate_takes_effect_from_the_next_grant() {
        tokio::time::pause();
        let limiter = limiter(Rate::PerSecond(10.0));
        let first = grant_times(&limiter, 5).await;
        assert_on_schedule(first[4] - first[0], interval(10.0) * 4);
        limiter
            .send(SetRate(Rate::PerSecond(2.0)))
            .await
            .unwrap()
            .unwrap();
        let second = grant_times(&limiter, 3).await;
        // On the new timeline: at most one new slot after the last grant, then its spacing.
        assert!(second[0] - first[4] <= interval(2.0) + ms(2));
        assert_on_schedule(second[2] - second[0], interval(2.0) * 2);
    }

    #[actix_rt::test]
    async fn set_rate_releases_waiters_when_raised() {
        tokio::time::pause();
        let limiter = limiter(Rate::PerSecond(0.01));
        register(&limiter).await.unwrap();
        let start = Instant::now();
        let waiting = actix_rt::spawn({
            let limiter = limiter.clone();
            async move { register(&limiter).await.unwrap() }
        });
        // The second caller is parked for 100 s; raising the rate re-arms the one timer.
        until_waiting(&limiter, 1).await;
        limiter
            .send(SetRate(Rate::Unlimited))
            .await
            .unwrap()
            .unwrap();
        waiting.await.unwrap();
        assert!(Instant::now() - start < Duration::from_secs(1));
    }

    #[actix_rt::test]
    async fn no_grant_storm_after_idle() {
        tokio::time::pause();
        let limiter = limiter(Rate::PerSecond(5.0));
        grant_times(&limiter, 10).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let s = status(&limiter).await;
        assert_eq!(
            (s.waiting, s.timer_armed),
            (0, false),
            "no timer while idle"
        );
        // A minute of idleness buys nothing: one grant per slot still.
        let times = grant_times(&limiter, 6).await;
        assert!(times
            .windows(2)
            .all(|w| w[1] - w[0] + ms(2) >= interval(5.0)));
        assert!(max_in_one_second(&times) <= 5);
    }

    #[actix_rt::test]
    async fn one_timer_while_waiting() {
        tokio::time::pause();
        let limiter = limiter(Rate::PerSecond(1.0));
        register(&limiter).await.unwrap();
        let mut parked = Vec::new();
        for _ in 0..3 {
            let (reply, rx) = oneshot::channel();
            limiter
                .send(Register {
                    reply,
                    missed: false,
                })
                .await
                .unwrap();
            parked.push(rx);
        }
        let s = status(&limiter).await;
        assert_eq!((s.waiting, s.timer_armed), (3, true));
        for rx in parked {
            rx.await.unwrap();
        }
        let s = status(&limiter).await;
        assert_eq!(
            (s.waiting, s.timer_armed, s.counters.granted),
            (0, false, 4)
        );
    }

    #[actix_rt::test]
    async fn a_caller_that_gives_up_spends_no_slot() {
        tokio::time::pause();
        let limiter = limiter(Rate::PerSecond(1.0));
        register(&limiter).await.unwrap();
        let (gone, rx) = oneshot::channel();
        limiter
            .send(Register {
                reply: gone,
                missed: false,
            })
            .await
            .unwrap();
        drop(rx);
        let start = Instant::now();
        register(&limiter).await.unwrap();
        // Served at the very next slot, not one later.
        assert!(Instant::now() - start <= interval(1.0) + ms(2));
        assert_eq!(status(&limiter).await.counters.granted, 2);
    }

    #[actix_rt::test]
    async fn unlimited_grants_at_once() {
        tokio::time::pause();
        let limiter = limiter(Rate::Unlimited);
        let start = Instant::now();
        let times = grant_times(&limiter, 1000).await;
        assert!(times.iter().all(|&t| t == start));
    }

    #[actix_rt::test]
    async fn a_share_of_none_holds_callers_until_parts_are_owned() {
        tokio::time::pause();
        let limiter = limiter(Rate::PerSecond(6.0));
        let share = |owned: Vec<u32>| SetShare { owned, parts: 3 };
        limiter.send(share(vec![])).await.unwrap().unwrap();
        let waiting = actix_rt::spawn({
            let limiter = limiter.clone();
            async move { register(&limiter).await.unwrap() }
        });
        until_waiting(&limiter, 1).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let s = status(&limiter).await;
        assert_eq!((s.waiting, s.timer_armed, s.share), (1, false, Some(0.0)));
        limiter.send(share(vec![1])).await.unwrap().unwrap();
        let grant = waiting.await.unwrap();
        assert_eq!(grant.slot % 3, 1);
        // One part of three: 2 calls a second, each in a slot of part 1.
        let times = grant_times(&limiter, 6).await;
        assert!(max_in_one_second(&times) <= 2);
        assert_eq!(status(&limiter).await.share, Some(2.0));
        let bad = limiter.send(share(vec![3])).await.unwrap();
        assert!(matches!(bad, Err(RateError::BadShare { .. })));
    }

    #[actix_rt::test]
    async fn slow_down_halves_the_rate_once_per_flight_and_it_recovers() {
        tokio::time::pause();
        let limiter = limiter(Rate::PerSecond(10.0));
        let calls: Vec<Grant> = futures_util::future::join_all((0..3).map(|_| register(&limiter)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // All three refused: one decrease, not three.
        for call in &calls {
            limiter.send(SlowDown { slot: call.slot }).await.unwrap();
        }
        let s = status(&limiter).await;
        assert_eq!(s.counters.decreases, 1);
        assert_eq!(s.current, Some(5.0));
        let times = grant_times(&limiter, 3).await;
        assert!(
            times[1] - times[0] >= interval(10.0) * 2 - ms(2),
            "{:?}",
            times.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
        );
        // Back to the whole share in 5 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(status(&limiter).await.current, Some(10.0));
    }

    #[actix_rt::test]
    async fn a_pause_stops_every_grant_until_it_ends() {
        tokio::time::pause();
        let limiter = limiter(Rate::PerSecond(6.0));
        register(&limiter).await.unwrap();
        limiter
            .send(PauseFor {
                duration: Duration::from_secs(30),
                cause: PauseCause::Banned,
            })
            .await
            .unwrap();
        let s = status(&limiter).await;
        assert_eq!(s.paused.map(|p| p.1), Some(PauseCause::Banned));
        let start = Instant::now();
        let times = grant_times(&limiter, 4).await;
        assert!(times[0] - start >= Duration::from_secs(30));
        assert!(times[0] - start <= Duration::from_secs(30) + interval(6.0) + ms(2));
        let s = status(&limiter).await;
        assert_eq!(
            (s.paused, s.counters.paused),
            (None, Duration::from_secs(30))
        );
    }

    #[test]
    fn bad_rates_are_refused() {
        assert_eq!(
            RateLimiter::new(Rate::PerSecond(0.0), JITTER).err(),
            Some(RateError::NotPositive(0.0))
        );
        assert!(RateLimiter::new(Rate::PerSecond(f64::NAN), JITTER).is_err());
    }
}

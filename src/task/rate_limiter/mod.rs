//! `RateLimiter`: a generic actor that grants permission for one call at a time, at most `rate`
//! per second — the original's `RateLimiter` process.
//!
//! `register` resolves when the caller may make its call; waiters are served first come, first
//! served; `set_rate` takes effect from the next grant. It uses the generic cell rate algorithm
//! (a token bucket of `burst` tokens expressed as one timestamp): over any one-second window it
//! grants at most `rate + burst - 1` times.
//!
//! Grants are exact in real time, not just on paper. Timers fire late: tokio's wheel has 1 ms
//! ticks and the runtime parks with a timeout rounded up to the millisecond, so a timer comes up
//! to about 2 ms after its slot. The limiter takes up to [`TIMER_SLACK`] of lateness as part of
//! the schedule (the next slot counts from the grant's slot, not its late instant), so it does
//! not drift, and it stretches the interval by that slack per second so that uneven lateness can
//! never fit one grant too many into a second. The cost: the limiter runs at `rate × 1000/1002`.
//!
//! It must never poll: no timer runs while nobody waits, and while somebody waits exactly one
//! timer is armed, for the next free slot. It knows nothing of what the calls are for.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Lateness of a timer that the schedule absorbs: one tick of tokio's 1 ms wheel plus the
/// millisecond the runtime's park timeout is rounded up by.
pub const TIMER_SLACK: Duration = Duration::from_millis(2);

/// How often the limiter may grant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// At most this many grants per second (finite, > 0).
    PerSecond(f64),
    /// Grant at once: no limit. For benchmarks and simulators, never for a real exchange.
    Unlimited,
}

impl Rate {
    /// The interval between two grants: `(1 s + TIMER_SLACK) / rate`, rounded *up* to the
    /// nanosecond, so neither rounding nor timer lateness can squeeze one grant too many into
    /// a second (see the module doc).
    fn interval(self) -> Option<Duration> {
        match self {
            Rate::Unlimited => None,
            Rate::PerSecond(r) => {
                let window = 1e9 + TIMER_SLACK.as_nanos() as f64;
                Some(Duration::from_nanos((window / r).ceil() as u64))
            }
        }
    }
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
    #[error("burst must be at least 1")]
    ZeroBurst,
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
}

struct Waiter {
    reply: oneshot::Sender<Grant>,
    since: Instant,
}

pub struct RateLimiter {
    rate: Rate,
    /// `interval` of `rate`, cached; `None` when unlimited.
    interval: Option<Duration>,
    /// Grants allowed back to back after an idle period.
    burst: u32,
    /// Theoretical arrival time (GCRA): when the next grant would be due with no burst credit.
    /// A grant is allowed at `now` if `now >= tat - (burst - 1) * interval`.
    tat: Instant,
    /// Callers waiting for a grant, oldest first.
    waiters: VecDeque<Waiter>,
    /// The one timer, armed only while `waiters` is not empty.
    timer: Option<SpawnHandle>,
    /// Grants given since start, for status and tests.
    granted: u64,
}

impl RateLimiter {
    pub fn new(rate: Rate, burst: u32) -> Result<RateLimiter, RateError> {
        check_rate(rate)?;
        if burst == 0 {
            return Err(RateError::ZeroBurst);
        }
        Ok(RateLimiter {
            rate,
            interval: rate.interval(),
            burst,
            tat: Instant::now(),
            waiters: VecDeque::new(),
            timer: None,
            granted: 0,
        })
    }

    /// Burst credit as a duration: how far ahead of `tat` a grant may still be taken.
    fn tolerance(&self, interval: Duration) -> Duration {
        interval * (self.burst - 1)
    }

    /// Takes a slot at `now` if one is free.
    fn take_slot(&mut self, now: Instant) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        if now + self.tolerance(interval) < self.tat {
            return false;
        }
        // A grant up to TIMER_SLACK late counts from its slot (no drift); idle time beyond
        // that piles up no credit past the burst.
        self.tat = self.tat.max(now.checked_sub(TIMER_SLACK).unwrap_or(now)) + interval;
        true
    }

    /// When the next slot frees up (only meaningful when limited).
    fn next_slot(&self) -> Instant {
        match self.interval {
            Some(interval) => self
                .tat
                .checked_sub(self.tolerance(interval))
                .unwrap_or(self.tat),
            None => Instant::now(),
        }
    }

    /// Grants to as many waiters, in order, as there are free slots now; then re-arms the timer.
    fn serve(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while let Some(front) = self.waiters.front() {
            // A caller that gave up must not spend a slot.
            if front.reply.is_closed() {
                self.waiters.pop_front();
                continue;
            }
            if !self.take_slot(now) {
                break;
            }
            let waiter = self.waiters.pop_front().expect("front exists");
            self.granted += 1;
            let _ = waiter.reply.send(Grant {
                waited: now - waiter.since,
            });
        }
        self.arm_timer(ctx);
    }

    /// Keeps the invariant: one timer iff somebody waits, due at the next free slot.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if self.waiters.is_empty() {
            return;
        }
        let delay = self.next_slot().saturating_duration_since(Instant::now());
        self.timer = Some(ctx.run_later(delay, |limiter, ctx| {
            limiter.timer = None;
            limiter.serve(ctx);
        }));
    }
}

fn check_rate(rate: Rate) -> Result<(), RateError> {
    match rate {
        Rate::PerSecond(r) if !(r.is_finite() && r > 0.0) => Err(RateError::NotPositive(r)),
        _ => Ok(()),
    }
}

impl Default for RateLimiter {
    /// The documented limit of the Poloniex public API: 6 calls per second, no burst.
    fn default() -> Self {
        RateLimiter::new(Rate::PerSecond(6.0), 1).expect("valid default")
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
pub struct Register(pub oneshot::Sender<Grant>);

impl Message for Register {
    type Result = ();
}

impl Handler<Register> for RateLimiter {
    type Result = ();

    fn handle(&mut self, Register(reply): Register, ctx: &mut Context<Self>) {
        let now = Instant::now();
        // Only the head of the line may take a free slot: FIFO among waiters.
        if self.waiters.is_empty() && self.take_slot(now) {
            self.granted += 1;
            let _ = reply.send(Grant {
                waited: Duration::ZERO,
            });
            return;
        }
        self.waiters.push_back(Waiter { reply, since: now });
        if self.timer.is_none() {
            self.arm_timer(ctx);
        }
    }
}

/// Waits until `limiter` allows one call.
pub async fn register(limiter: &Addr<RateLimiter>) -> Result<Grant, LimiterClosed> {
    let (tx, rx) = oneshot::channel();
    // do_send ignores the mailbox capacity; if the limiter is gone, `tx` is dropped and so:
    limiter.do_send(Register(tx));
    rx.await.map_err(|_| LimiterClosed)
}

/// `RateLimiter.set_rate(rate)`: takes effect from the next grant.
pub struct SetRate(pub Rate);

impl Message for SetRate {
    type Result = Result<(), RateError>;
}

impl Handler<SetRate> for RateLimiter {
    type Result = Result<(), RateError>;

    fn handle(&mut self, SetRate(rate): SetRate, ctx: &mut Context<Self>) -> Self::Result {
        check_rate(rate)?;
        let now = Instant::now();
        // `tat` is one old interval after the last grant; move it to one new interval after it,
        // so the next grant follows the last one at the new spacing.
        let last_grant = match self.interval {
            Some(old) => self.tat.checked_sub(old).unwrap_or(now),
            None => now,
        };
        self.rate = rate;
        self.interval = rate.interval();
        self.tat = match self.interval {
            Some(new) => (last_grant + new).min(now + new),
            None => now,
        };
        self.serve(ctx);
        Ok(())
    }
}

/// What the limiter is doing, for the REPL, metrics and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterStatus {
    pub rate: Rate,
    pub burst: u32,
    pub waiting: usize,
    pub granted: u64,
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
        MessageResult(LimiterStatus {
            rate: self.rate,
            burst: self.burst,
            waiting: self.waiters.len(),
            granted: self.granted,
            timer_armed: self.timer.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(rate: f64) -> Duration {
        Rate::PerSecond(rate).interval().unwrap()
    }

    /// `actual` is `expected`, or off by at most the timer slack (lateness never accumulates).
    fn assert_on_schedule(actual: Duration, expected: Duration) {
        assert!(
            actual + TIMER_SLACK >= expected && actual <= expected + TIMER_SLACK,
            "{actual:?} is more than the timer slack from {expected:?}"
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

    #[actix_rt::test]
    async fn exact_rate_and_burst_over_any_second() {
        tokio::time::pause();
        for (rate, burst) in [(3.0, 1), (6.0, 1), (50.0, 1), (7.0, 3), (1000.0, 10)] {
            let limiter = RateLimiter::new(Rate::PerSecond(rate), burst)
                .unwrap()
                .start();
            let n = (rate as usize) * 4 + burst as usize;
            let times = grant_times(&limiter, n).await;
            let allowed = rate as usize + burst as usize - 1;
            let most = max_in_one_second(&times);
            // Never above the bound; below it only by the documented 2/1002 stretch and one
            // grant of timer quantization (grants land on 1 ms ticks, and where the tick grid
            // falls relative to the paused clock differs from run to run).
            let shortfall = (rate * 2.0 / 1002.0).ceil() as usize + 1;
            assert!(
                most <= allowed && most + shortfall >= allowed,
                "rate {rate} burst {burst}: {most}"
            );
            // Not slower than promised either: n grants take (n - burst) intervals, and timer
            // lateness does not add up.
            let span = *times.last().unwrap() - times[0];
            assert_on_schedule(span, interval(rate) * (n as u32 - burst));
        }
    }

    #[actix_rt::test]
    async fn waiters_are_granted_in_arrival_order() {
        tokio::time::pause();
        let limiter = RateLimiter::new(Rate::PerSecond(10.0), 1).unwrap().start();
        let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut receivers = Vec::new();
        for i in 0..20 {
            let (tx, rx) = oneshot::channel();
            limiter.do_send(Register(tx));
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
    async fn set_rate_takes_effect_from_the_next_grant() {
        tokio::time::pause();
        let limiter = RateLimiter::new(Rate::PerSecond(10.0), 1).unwrap().start();
        let first = grant_times(&limiter, 5).await;
        assert_on_schedule(first[4] - first[0], interval(10.0) * 4);
        limiter
            .send(SetRate(Rate::PerSecond(2.0)))
            .await
            .unwrap()
            .unwrap();
        let second = grant_times(&limiter, 3).await;
        // The next grant comes one *new* interval after the last one, then at the new spacing.
        assert_on_schedule(second[0] - first[4], interval(2.0));
        assert_on_schedule(second[2] - second[0], interval(2.0) * 2);
    }

    #[actix_rt::test]
    async fn set_rate_releases_waiters_when_raised() {
        tokio::time::pause();
        let limiter = RateLimiter::new(Rate::PerSecond(0.01), 1).unwrap().start();
        register(&limiter).await.unwrap();
        let start = Instant::now();
        let waiting = actix_rt::spawn({
            let limiter = limiter.clone();
            async move { register(&limiter).await.unwrap() }
        });
        // The second caller is parked for 100 s; raising the rate re-arms the one timer.
        while limiter.send(GetLimiterStatus).await.unwrap().waiting == 0 {
            tokio::task::yield_now().await;
        }
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
        let limiter = RateLimiter::new(Rate::PerSecond(5.0), 2).unwrap().start();
        grant_times(&limiter, 10).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let status = limiter.send(GetLimiterStatus).await.unwrap();
        assert_eq!(
            (status.waiting, status.timer_armed),
            (0, false),
            "no timer while idle"
        );
        // A minute of idleness buys no more than the burst.
        let times = grant_times(&limiter, 6).await;
        let immediate = times.iter().filter(|&&t| t == times[0]).count();
        assert_eq!(immediate, 2);
        assert_eq!(max_in_one_second(&times), 5 + 2 - 1);
    }

    #[actix_rt::test]
    async fn one_timer_while_waiting() {
        tokio::time::pause();
        let limiter = RateLimiter::new(Rate::PerSecond(1.0), 1).unwrap().start();
        register(&limiter).await.unwrap();
        let mut parked = Vec::new();
        for _ in 0..3 {
            let (tx, rx) = oneshot::channel();
            limiter.send(Register(tx)).await.unwrap();
            parked.push(rx);
        }
        let status = limiter.send(GetLimiterStatus).await.unwrap();
        assert_eq!((status.waiting, status.timer_armed), (3, true));
        for rx in parked {
            rx.await.unwrap();
        }
        let status = limiter.send(GetLimiterStatus).await.unwrap();
        assert_eq!(
            (status.waiting, status.timer_armed, status.granted),
            (0, false, 4)
        );
    }

    #[actix_rt::test]
    async fn a_caller_that_gives_up_spends_no_slot() {
        tokio::time::pause();
        let limiter = RateLimiter::new(Rate::PerSecond(1.0), 1).unwrap().start();
        register(&limiter).await.unwrap();
        let (gone, rx) = oneshot::channel();
        limiter.send(Register(gone)).await.unwrap();
        drop(rx);
        let start = Instant::now();
        register(&limiter).await.unwrap();
        // Served at the very next slot, not one later.
        assert_on_schedule(Instant::now() - start, interval(1.0));
        assert_eq!(limiter.send(GetLimiterStatus).await.unwrap().granted, 2);
    }

    #[actix_rt::test]
    async fn unlimited_grants_at_once() {
        tokio::time::pause();
        let limiter = RateLimiter::new(Rate::Unlimited, 1).unwrap().start();
        let start = Instant::now();
        let times = grant_times(&limiter, 1000).await;
        assert!(times.iter().all(|&t| t == start));
    }

    #[test]
    fn bad_rates_are_refused() {
        assert_eq!(
            RateLimiter::new(Rate::PerSecond(0.0), 1).err(),
            Some(RateError::NotPositive(0.0))
        );
        assert!(RateLimiter::new(Rate::PerSecond(f64::NAN), 1).is_err());
        assert_eq!(
            RateLimiter::new(Rate::PerSecond(1.0), 0).err(),
            Some(RateError::ZeroBurst)
        );
    }

    #[test]
    fn interval_rounds_up() {
        assert_eq!(interval(3.0), Duration::from_nanos(334_000_000));
        assert_eq!(interval(1000.0), Duration::from_nanos(1_002_000));
    }
}

//! Exponential backoff with jitter, for retrying transient upstream failures.
//!
//! "Equal jitter": half of each delay is fixed and half is random, so retries of many tasks
//! spread out (no thundering herd) yet a delay is never zero and never above the cap. Pure: the
//! caller supplies the random source and does the waiting.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
        }
    }

    /// The delay before retry number `retry` (0 for the first retry): `base·2^retry`, capped at
    /// `max`, half of it jittered.
    pub fn delay(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        let ceiling = self.base.saturating_mul(factor).min(self.max);
        let half = ceiling / 2;
        let jitter = ceiling - half;
        half + Duration::from_nanos(rng.u64(0..=jitter.as_nanos() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_exponentially_within_bounds_and_caps() {
        let b = Backoff::new(ms(100), ms(5_000));
        let mut rng = fastrand::Rng::with_seed(7);
        for retry in 0..40 {
            let ceiling = (ms(100) * 2u32.saturating_pow(retry.min(20))).min(ms(5_000));
            for _ in 0..50 {
                let d = b.delay(retry, &mut rng);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "retry {retry}: {d:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
        }
        assert!(b.delay(64, &mut rng) <= ms(5_000), "no overflow far out");
        assert!(b.delay(u32::MAX, &mut rng) >= ms(2_500));
    }

    #[test]
    fn jitter_spreads_and_is_reproducible_with_a_seed() {
        let b = Backoff::new(ms(100), ms(5_000));
        let draws = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..20).map(|_| b.delay(3, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1));
        let d = draws(1);
        assert!(d.iter().any(|x| *x != d[0]), "jittered");
    }

    #[test]
    fn never_zero() {
        let b = Backoff::new(ms(1), ms(1));
        let mut rng = fastrand::Rng::with_seed(0);
        assert!((0..1000).all(|_| b.delay(0, &mut rng) > Duration::ZERO));
    }
}

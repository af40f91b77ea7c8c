//! The Binance venue's request-weight budget: weight counted per calendar minute, as Binance
//! counts it, a 429 past the budget, and a ban (418) once the address has been refused too often.
//! The server keeps one per client address, as Binance counts per IP.
//!
//! Binance's rules (docs/simulator.md cites the pages): every call adds its route's weight to
//! the current minute (a call at 00:01:23.456 counts towards the 00:01:00 minute; the count is
//! zero again at 00:02:00); past the limit the answer is 429 with `Retry-After`; an address that
//! goes on after 429s is banned, 418 with `Retry-After` until the ban ends. Calls refused with a
//! 429 still add their weight, so a client that does not back off stays refused; calls refused
//! at the door of a ban add none.
//!
//! Pure: it is told the time and never reads a clock, so its rules are tested without waiting.

use super::SimulatorConfig;

const MINUTE_MS: i64 = 60_000;

/// What became of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the budget.
    Admitted { used: u64 },
    /// Past the budget: 429, to be retried once the minute is over.
    Refused { used: u64, retry_after_secs: u64 },
    /// 418 until `until_ms`. `started`: this call, past the budget, started the ban (and counts
    /// as a violation); otherwise the address was already banned.
    Banned {
        used: u64,
        until_ms: i64,
        retry_after_secs: u64,
        started: bool,
    },
}

impl Admission {
    /// The weight of the current minute, this call's included: the `X-MBX-USED-WEIGHT-1M` header.
    pub fn used(&self) -> u64 {
        match *self {
            Admission::Admitted { used }
            | Admission::Refused { used, .. }
            | Admission::Banned { used, .. } => used,
        }
    }

    /// The weight this call added: none if it was turned away by a ban already running.
    pub fn counted(&self, weight: u64) -> u64 {
        match self {
            Admission::Banned { started: false, .. } => 0,
            _ => weight,
        }
    }
}

/// One budget: a client address's (with `per_address` off, every client's).
#[derive(Debug, Default)]
pub struct WeightBudget {
    /// The minute `used` belongs to, in minutes since the unix epoch.
    minute: i64,
    used: u64,
    /// Calls past the budget answered 429, for `ban_after`. Never reset: after a ban, the next
    /// call past the budget starts another (Binance bans repeat offenders again, for longer).
    refused: u64,
    banned_until_ms: Option<i64>,
}

impl WeightBudget {
    /// Counts a call of `weight` (its route's) arriving at `now_ms` and says how it is answered.
    pub fn admit(&mut self, now_ms: i64, weight: u64, config: &SimulatorConfig) -> Admission {
        let minute = now_ms.div_euclid(MINUTE_MS);
        if minute != self.minute {
            self.minute = minute;
            // Another client on the address may have spent some already.
            self.used = config.foreign_weight_per_minute;
        }
        if let Some(until_ms) = self.banned_until_ms.filter(|&until| until > now_ms) {
            return Admission::Banned {
                used: self.used,
                until_ms,
                retry_after_secs: secs_until(now_ms, until_ms),
                started: false,
            };
        }
        self.used += weight;
        let limit = config.weight_limit_per_minute;
        if limit == 0 || self.used <= limit {
            return Admission::Admitted { used: self.used };
        }
        if config.ban_after > 0 && self.refused >= config.ban_after {
            let until_ms = now_ms + config.ban_secs as i64 * 1000;
            self.banned_until_ms = Some(until_ms);
            return Admission::Banned {
                used: self.used,
                until_ms,
                retry_after_secs: secs_until(now_ms, until_ms),
                started: true,
            };
        }
        self.refused += 1;
        Admission::Refused {
            used: self.used,
            retry_after_secs: secs_to_minute_end(now_ms),
        }
    }
}

/// Whole seconds until the calendar minute of `now_ms` ends: when a refused budget is whole again.
pub fn secs_to_minute_end(now_ms: i64) -> u64 {
    secs_until(now_ms, (now_ms.div_euclid(MINUTE_MS) + 1) * MINUTE_MS)
}

/// Whole seconds from `now_ms` to `then_ms`, rounded up and at least 1: waiting that long is
/// always enough, and a `Retry-After: 0` would invite an immediate retry.
fn secs_until(now_ms: i64, then_ms: i64) -> u64 {
    ((then_ms - now_ms).max(0) as u64).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2018-10-22 00:00:00 UTC: the start of a minute.
    const T0: i64 = 1_540_166_400_000;

    fn config(limit: u64, ban_after: u64) -> SimulatorConfig {
        SimulatorConfig {
            weight_per_call: 4,
            weight_limit_per_minute: limit,
            ban_after,
            ban_secs: 120,
            ..SimulatorConfig::default()
        }
    }

    #[test]
    fn weight_adds_up_within_a_calendar_minute_and_restarts_with_the_next() {
        let (c, mut budget) = (config(10, 0), WeightBudget::default());
        assert_eq!(
            budget.admit(T0 + 59_000, 4, &c),
            Admission::Admitted { used: 4 }
        );
        assert_eq!(
            budget.admit(T0 + 59_998, 4, &c),
            Admission::Admitted { used: 8 }
        );
        // 12 > 10, two milliseconds before the minute ends: retry in (at least) a second.
        assert_eq!(
            budget.admit(T0 + 59_998, 4, &c),
            Admission::Refused {
                used: 12,
                retry_after_secs: 1
            }
        );
        // A calendar minute, not a sliding one: a millisecond later the count starts again.
        assert_eq!(
            budget.admit(T0 + 60_000, 4, &c),
            Admission::Admitted { used: 4 }
        );
    }

    #[test]
    fn another_clients_weight_counts_in_every_minute() {
        let c = SimulatorConfig {
            foreign_weight_per_minute: 5,
            ..config(10, 0)
        };
        let mut budget = WeightBudget::default();
        assert_eq!(budget.admit(T0, 4, &c), Admission::Admitted { used: 9 });
        assert!(matches!(
            budget.admit(T0 + 1, 4, &c),
            Admission::Refused { used: 13, .. }
        ));
        assert_eq!(
            budget.admit(T0 + 60_000, 4, &c),
            Admission::Admitted { used: 9 }
        );
    }

    #[test]
    fn refused_calls_count_their_weight_and_retry_after_is_the_rest_of_the_minute() {
        let (c, mut budget) = (config(8, 0), WeightBudget::default());
        budget.admit(T0 + 1_000, 4, &c);
        budget.admit(T0 + 1_000, 4, &c);
        for (i, used) in [(0, 12), (1, 16), (2, 20)] {
            assert_eq!(
                budget.admit(T0 + 20_500 + i, 4, &c),
                Admission::Refused {
                    used,
                    retry_after_secs: 40
                }
            );
        }
    }

    #[test]
    fn the_call_after_ban_after_refusals_starts_a_ban_that_turns_every_call_away() {
        let (c, mut budget) = (config(4, 2), WeightBudget::default());
        assert!(matches!(
            budget.admit(T0, 4, &c),
            Admission::Admitted { .. }
        ));
        assert!(matches!(budget.admit(T0, 4, &c), Admission::Refused { .. }));
        assert!(matches!(budget.admit(T0, 4, &c), Admission::Refused { .. }));
        let ban = budget.admit(T0 + 500, 4, &c);
        assert_eq!(
            ban,
            Admission::Banned {
                used: 16,
                until_ms: T0 + 120_500,
                retry_after_secs: 120,
                started: true
            }
        );
        assert_eq!(ban.counted(4), 4, "the call that starts a ban was counted");
        // Next minute: the weight is back to zero, but the ban goes on and adds nothing.
        let banned = budget.admit(T0 + 61_000, 4, &c);
        assert_eq!(
            banned,
            Admission::Banned {
                used: 0,
                until_ms: T0 + 120_500,
                retry_after_secs: 60,
                started: false
            }
        );
        assert_eq!(banned.counted(4), 0);
        // Over: admitted again; the next call past the budget is banned at once.
        assert_eq!(
            budget.admit(T0 + 120_500, 4, &c),
            Admission::Admitted { used: 4 }
        );
        assert!(matches!(
            budget.admit(T0 + 120_501, 4, &c),
            Admission::Banned { started: true, .. }
        ));
    }

    #[test]
    fn each_call_adds_its_own_routes_weight() {
        let (c, mut budget) = (config(30, 0), WeightBudget::default());
        assert_eq!(budget.admit(T0, 20, &c), Admission::Admitted { used: 20 });
        assert_eq!(budget.admit(T0, 4, &c), Admission::Admitted { used: 24 });
        assert!(matches!(
            budget.admit(T0, 20, &c),
            Admission::Refused { used: 44, .. }
        ));
    }

    #[test]
    fn no_limit_and_no_ban_when_turned_off() {
        let (c, mut budget) = (config(0, 0), WeightBudget::default());
        for i in 1..=10_000 {
            assert_eq!(budget.admit(T0, 4, &c), Admission::Admitted { used: 4 * i });
        }
        let (c, mut budget) = (config(4, 0), WeightBudget::default());
        budget.admit(T0, 4, &c);
        for _ in 0..100 {
            assert!(matches!(budget.admit(T0, 4, &c), Admission::Refused { .. }));
        }
    }
}

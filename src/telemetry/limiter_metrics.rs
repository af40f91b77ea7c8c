//! The rate limiter's metrics: the share of the budget this member may spend, the rate it
//! spends at after push-back, the decreases, the slots missed and the time paused.
//!
//! The limiter is generic and keeps its own counts ([`LimiterStatus`]); these are set from them
//! when `/metrics` is scraped, so the limiter's hot path counts nothing twice. It must never be
//! set from anywhere but the scrape (the counters are brought up to the limiter's totals).

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::task::rate_limiter::{LimiterStatus, PauseCause};

#[derive(Debug, Default)]
pub struct LimiterMetrics {
    /// `rate_limiter_share_calls_per_second`: this member's part of `default_rate`.
    share: Gauge<f64, AtomicU64>,
    /// `rate_limiter_rate_calls_per_second`: what it grants now, the share less push-back.
    rate: Gauge<f64, AtomicU64>,
    /// `rate_limiter_decreases_total`: halvings after calls refused as too many.
    decreases: Counter,
    /// `rate_limiter_missed_slots_total`: grants woken too late to leave on time (a loaded
    /// host), given back.
    missed: Counter,
    /// `rate_limiter_paused_seconds_total`: time every call waited on the exchange's say-so.
    paused: Counter<f64, AtomicU64>,
    /// `rate_limiter_pause_remaining_seconds`: how long the pause in force lasts still.
    pause_remaining: Gauge<f64, AtomicU64>,
    /// `rate_limiter_banned`: 1 while the pause in force is a ban (403/418).
    banned: Gauge,
}

impl LimiterMetrics {
    pub fn register(registry: &mut Registry) -> LimiterMetrics {
        let m = LimiterMetrics::default();
        registry.register(
            "rate_limiter_share_calls_per_second",
            "This member's share of default_rate: the rate times the parts (todo partitions) it holds, over all parts",
            m.share.clone(),
        );
        registry.register(
            "rate_limiter_rate_calls_per_second",
            "Calls per second the limiter grants now: the share, less after calls refused as too many",
            m.rate.clone(),
        );
        registry.register(
            "rate_limiter_decreases",
            "Times the rate was halved after calls refused as too many",
            m.decreases.clone(),
        );
        registry.register(
            "rate_limiter_missed_slots",
            "Grants whose caller woke too late to leave within the jitter allowance (given back)",
            m.missed.clone(),
        );
        registry.register_with_unit(
            "rate_limiter_paused",
            "Time every call was paused because the exchange asked (Retry-After) or banned this address",
            Unit::Seconds,
            m.paused.clone(),
        );
        registry.register_with_unit(
            "rate_limiter_pause_remaining",
            "How long the pause in force still lasts (0 when none)",
            Unit::Seconds,
            m.pause_remaining.clone(),
        );
        registry.register(
            "rate_limiter_banned",
            "1 while calls are paused because the exchange banned this address (403/418)",
            m.banned.clone(),
        );
        m
    }

    /// Brings every series to what the limiter says.
    pub fn observe(&self, status: &LimiterStatus) {
        // Unlimited: no share to speak of; 0 rather than a made-up number.
        self.share.set(status.share.unwrap_or(0.0));
        self.rate.set(status.current.unwrap_or(0.0));
        let c = &status.counters;
        self.decreases
            .inc_by(c.decreases.saturating_sub(self.decreases.get()));
        self.missed
            .inc_by(c.missed.saturating_sub(self.missed.get()));
        let paused = c.paused.as_secs_f64();
        if paused > self.paused.get() {
            self.paused.inc_by(paused - self.paused.get());
        }
        let (remaining, banned) = status.paused.map_or((0.0, false), |(left, cause)| {
            (left.as_secs_f64(), cause == PauseCause::Banned)
        });
        self.pause_remaining.set(remaining);
        self.banned.set(banned.into());
    }
}

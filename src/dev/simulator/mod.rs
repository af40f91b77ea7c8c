//! The exchange simulator: a deterministic stand-in for an exchange's public trade history,
//! served on a loopback port for tests, benchmarks and the demo (`docs/simulator.md`). It
//! serves one venue at a time ([`Venue`]): Poloniex's legacy `returnTradeHistory` and
//! `returnTicker` (the default) or Binance's `GET /api/v3/aggTrades` and `exchangeInfo`.
//!
//! - [`market`]: the trades themselves, a pure function of (seed, pair, window), and a pair's
//!   ticker.
//! - [`agg_market`]: Binance's aggregate trades, built on [`market`]'s per-second counts.
//! - [`server`]: the HTTP side: the venue's endpoints, the call counting both venues share
//!   (per client address, as the exchanges count), fault injection, and `/stats` (totals and
//!   a line per address); Poloniex's `returnTradeHistory` and `returnTicker` with the
//!   API's answers and errors and its rate limit (429 with `Retry-After`, a ban after too many)
//!   with a violation counter.
//! - [`binance`]: `aggTrades` and `exchangeInfo` with Binance's parameters, errors and weight
//!   header.
//! - [`weight`]: Binance's request-weight budget per calendar minute (429, then 418), one per
//!   client address.
//! - [`clock`]: the time of day the venues go by, the wall clock or a test's.
//!
//! It must never be what production talks to, and it never reaches beyond loopback unless told.

pub mod agg_market;
pub mod binance;
pub mod clock;
pub mod market;
pub mod server;
pub mod weight;

pub use clock::{Clock, ManualClock};
pub use server::{start, start_on, start_with_clock, AddressStats, SimulatorHandle, Stats};

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What the simulator serves and how it misbehaves. Fault rates are fractions of calls, drawn
/// deterministically from (seed, call number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Which exchange's API is served.
    pub venue: Venue,
    /// Seeds the market and the fault draws.
    pub seed: u64,
    /// Pairs that exist; any other gets "Invalid currency pair." (Binance: "Invalid symbol.").
    /// Binance lists each under its own name: `USDT_BTC` (Poloniex's QUOTE_BASE) is `BTCUSDT`,
    /// and a name without `_` is taken as a Binance symbol as it is.
    pub pairs: Vec<String>,
    /// Pairs that stopped trading, each with the unix second from which it trades no more:
    /// listed beside `pairs` (naming one there too is fine), their history ends there, and from
    /// then on Binance's `exchangeInfo` says `BREAK` and Poloniex's `returnTicker` `isFrozen`.
    pub delisted: BTreeMap<String, i64>,
    /// Multiplies every pair's trade rate.
    pub intensity: f64,
    /// Multiplies one pair's mean trade rate (on top of `intensity`), keyed by either of its
    /// names (`USDT_BTC` or `BTCUSDT`): a benchmark's mix of calm and busy pairs. A pair not
    /// named trades at its own rate; 0 (or less) never trades.
    pub activity: BTreeMap<String, f64>,
    /// Poloniex: most trades one answer holds (the newest of the window).
    pub page_limit: usize,
    /// Poloniex: longest window answered; longer ones get the one-month error.
    pub max_window_secs: i64,
    /// Poloniex: calls allowed in any one second; 0 = no limit.
    pub rate_limit: u32,
    /// Poloniex: the `Retry-After` (seconds) of a 429; 0 sends none. (Binance's says when the
    /// minute ends.)
    pub retry_after_secs: u64,
    /// Calls past the limit (Poloniex: the calls per second; Binance: the weight per minute)
    /// answered 429 after which the address is banned (418 with `Retry-After`, every call, for
    /// `ban_secs`); 0 never bans.
    pub ban_after: u64,
    /// How long a ban lasts.
    pub ban_secs: u64,
    /// Fraction of calls answered 429 although under the limit (someone else spends the budget).
    pub refuse_rate: f64,
    /// Added to every answer past the rate check (a 429 comes at once).
    pub latency_ms: u64,
    /// Fraction of calls answered 500/502/503.
    pub error_rate: f64,
    /// Fraction of calls never answered (held for an hour).
    pub hang_rate: f64,
    /// Fraction of calls answered with a truncated, non-JSON body.
    pub malformed_rate: f64,
    /// Fraction of calls answered with a body of more than 8 MiB.
    pub oversized_rate: f64,
    /// HTTP worker threads.
    pub workers: usize,
    /// Poloniex: seconds whose windows always fail: any call whose window holds one is
    /// answered with an API error object, for tests of a window that can never be cloned.
    pub fail_seconds: Vec<i64>,
    /// Binance: the request weight of one `aggTrades` call (Binance documents 4).
    pub weight_per_call: u64,
    /// Binance: the longest `endTime − startTime` of an `aggTrades` call, in seconds; as long
    /// or longer is refused with -1127. `None` (the default): no limit, as on Binance since
    /// 2022-12-05; `Some(3600)` is the hour Binance enforced before.
    pub binance_max_window_secs: Option<i64>,
    /// Binance: the request weight allowed per calendar minute (Binance's `REQUEST_WEIGHT`
    /// limit, 6000); past it, 429. 0 = unlimited.
    pub weight_limit_per_minute: u64,
    /// Binance: unix milliseconds that each hold `burst_trades` more aggregate trades of every
    /// symbol, more than one page: only `fromId` reaches them all.
    pub burst_ms: Vec<i64>,
    /// Binance: the trades one `burst_ms` millisecond adds.
    pub burst_trades: u64,
    /// Binance: weight another client on the same address spends at the start of every minute:
    /// the budget left to the client under test, and what `X-MBX-USED-WEIGHT-1M` counts too.
    /// Spent in every budget (each address's, with `per_address`).
    pub foreign_weight_per_minute: u64,
    /// Count the limits (Poloniex's calls per second, Binance's weight per minute) and bans per
    /// client address, as the exchanges do; off, every client shares one budget.
    pub per_address: bool,
}

/// The exchange whose API the simulator serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Venue {
    /// `GET /public?command=returnTradeHistory` (Poloniex's legacy public API).
    #[default]
    Poloniex,
    /// `GET /api/v3/aggTrades` (Binance's spot REST API).
    Binance,
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Venue::Poloniex => "poloniex",
            Venue::Binance => "binance",
        })
    }
}

impl SimulatorConfig {
    /// The pairs listed, as configured: `pairs`, then the `delisted` ones `pairs` does not
    /// name; each once (`USDT_BTC` and `BTCUSDT` are one pair).
    pub fn listed_pairs(&self) -> Vec<&str> {
        let mut listed: Vec<&str> = Vec::new();
        for pair in self.pairs.iter().chain(self.delisted.keys()) {
            let symbol = agg_market::symbol_of(pair);
            if !listed.iter().any(|p| agg_market::symbol_of(p) == symbol) {
                listed.push(pair);
            }
        }
        listed
    }

    /// The unix second from which `pair` (either name) no longer trades, if it is delisted.
    pub fn delisted_at(&self, pair: &str) -> Option<i64> {
        named(&self.delisted, pair).copied()
    }

    /// Whether `pair` still trades at unix second `now`.
    pub fn trading_at(&self, pair: &str, now: i64) -> bool {
        self.delisted_at(pair).is_none_or(|stop| now < stop)
    }

    /// `pair`'s multiplier in `activity`, under either of its names; 1 if not named.
    pub fn activity_of(&self, pair: &str) -> f64 {
        named(&self.activity, pair).map_or(1.0, |&a| a.max(0.0))
    }
}

/// `map`'s entry for `pair` under either of its names: as written, else any key with the same
/// Binance symbol (`USDT_BTC` and `BTCUSDT` are one pair).
fn named<'a, T>(map: &'a BTreeMap<String, T>, pair: &str) -> Option<&'a T> {
    map.get(pair).or_else(|| {
        let symbol = agg_market::symbol_of(pair);
        map.iter()
            .find(|(key, _)| agg_market::symbol_of(key) == symbol)
            .map(|(_, value)| value)
    })
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            venue: Venue::Poloniex,
            seed: 42,
            pairs: ["BTC_ETH", "BTC_XMR", "BTC_LTC", "USDT_BTC", "USDT_ETH"]
                .map(String::from)
                .to_vec(),
            delisted: BTreeMap::new(),
            intensity: 1.0,
            activity: BTreeMap::new(),
            page_limit: 1000,
            max_window_secs: 30 * 86_400,
            rate_limit: 6,
            retry_after_secs: 1,
            ban_after: 0,
            ban_secs: 60,
            refuse_rate: 0.0,
            latency_ms: 0,
            error_rate: 0.0,
            hang_rate: 0.0,
            malformed_rate: 0.0,
            oversized_rate: 0.0,
            workers: 2,
            fail_seconds: Vec::new(),
            weight_per_call: 4,
            binance_max_window_secs: None,
            weight_limit_per_minute: 6000,
            burst_ms: Vec::new(),
            burst_trades: 2500,
            foreign_weight_per_minute: 0,
            per_address: true,
        }
    }
}

/// A client of a simulator in tests, its calls leaving from `from` if given (any of 127/8
/// reaches a loopback server on Linux: another host, as the simulator counts budgets).
#[cfg(test)]
pub(crate) fn test_client(from: Option<std::net::IpAddr>) -> awc::Client {
    let mut connector = awc::Connector::new();
    if let Some(ip) = from {
        connector = connector.local_address(ip);
    }
    awc::Client::builder()
        .connector(connector)
        .timeout(std::time::Duration::from_secs(10))
        .finish()
}

//! The simulated market: every trade of every pair as a pure function of (seed, pair, time).
//!
//! Each pair has a trade rate that swings over the day and over a few hours (busy and calm
//! periods), its mean from the table below times the configuration's `intensity` and the
//! pair's `activity`. `C(s)`, the number of a pair's trades before second `s`, is the floor of a smooth,
//! strictly increasing function, so it costs O(1) at any second; the trades dated `s` are those
//! numbered `C(s) .. C(s+1)`, and a pair's trade ids are `base_id + number`: consecutive in time
//! order, whatever windows are asked. A trade's other fields are hashed from its number.
//!
//! Pure and deterministic: no I/O, no clock, no global state. Prices are integers in units of
//! 1e-8 and are formatted as decimal strings without ever passing through a float.

use crate::dev::simulator::SimulatorConfig;

/// 2014-01-01 00:00:00 UTC: the market opens; there are no trades before it.
pub const EPOCH: i64 = 1_388_534_400;

/// Built-in pairs: (name, mean trades per second, base price in 1e-8 units).
/// USDT_BTC swings between about 0.05 and 0.65 trades/s, so some of its hours hold more than a
/// 1000-trade page and others do not; BTC_ETH stays under 700 an hour; the rest are calm.
const PAIRS: &[(&str, f64, u64)] = &[
    ("USDT_BTC", 0.35, 650_000_000_000),
    ("USDT_ETH", 0.15, 20_000_000_000),
    ("BTC_ETH", 0.10, 3_143_485),
    ("BTC_XMR", 0.03, 1_500_000),
    ("BTC_LTC", 0.02, 800_000),
];

/// For a pair not in the table but listed in the configuration.
const OTHER_PAIR: (f64, u64) = (0.01, 100_000);

/// The two swings of every pair's rate: (period in seconds, share of the mean rate). Their
/// shares add up to 0.86 < 1, so the rate never drops below 14 % of its mean (strictly
/// increasing `F`, robust to float rounding).
const SWINGS: [(f64, f64); 2] = [(86_400.0, 0.56), (18_000.0, 0.30)];

/// One trade, as the simulator serves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SimTrade {
    pub global_trade_id: i64,
    pub trade_id: i64,
    /// Unix seconds, UTC.
    pub date: i64,
    pub buy: bool,
    pub rate: String,
    pub amount: String,
    pub total: String,
}

/// A pair's parameters, derived from (seed, pair).
struct Model {
    key: u64,
    base_id: i64,
    base_global_id: i64,
    /// Mean trades per second.
    lambda: f64,
    /// (amplitude in trades/s, angular frequency, phase) of each swing.
    swings: [(f64, f64, f64); 2],
    /// F at the epoch, so that C(EPOCH) = 0.
    offset: f64,
    price: u64,
    /// Delisted: no trades from this unix second on.
    stop: Option<i64>,
}

impl Model {
    fn new(cfg: &SimulatorConfig, pair: &str) -> Option<Model> {
        is_listed(cfg, pair).then(|| Model::of(cfg, pair))
    }

    /// The pair's model whether it is listed or not.
    fn of(cfg: &SimulatorConfig, pair: &str) -> Model {
        let (lambda, price) = PAIRS
            .iter()
            .find(|(name, _, _)| *name == pair)
            .map(|&(_, l, p)| (l, p))
            .unwrap_or(OTHER_PAIR);
        let lambda = lambda * cfg.intensity * cfg.activity_of(pair);
        let key = splitmix64(cfg.seed ^ fnv1a(pair.as_bytes()));
        let swings = std::array::from_fn(|i| {
            let (period, share) = SWINGS[i];
            let phase = unit(splitmix64(key ^ (i as u64 + 1))) * std::f64::consts::TAU;
            (lambda * share, std::f64::consts::TAU / period, phase)
        });
        let mut model = Model {
            key,
            // Distinct, stable id ranges per pair, well inside the original int32 for decades of trades.
            base_id: 1_000_000 + (fnv1a(pair.as_bytes()) % 4_000) as i64 * 1_000,
            base_global_id: 100_000_000 + (key % 1_000) as i64,
            lambda,
            swings,
            offset: 0.0,
            price,
            stop: cfg.delisted_at(pair),
        };
        model.offset = model.f(0.0);
        model
    }

    /// The smooth count: ∫ rate, with `t` seconds since the epoch.
    fn f(&self, t: f64) -> f64 {
        let mut v = self.lambda * t;
        for (amp, omega, phase) in self.swings {
            v += amp / omega * (omega * t + phase).sin();
        }
        v
    }

    /// Trades strictly before second `s`.
    fn before(&self, s: i64) -> i64 {
        // A delisted pair's count stands still from its last second on.
        let s = self.stop.map_or(s, |stop| s.min(stop));
        if s <= EPOCH {
            return 0;
        }
        (self.f((s - EPOCH) as f64) - self.offset).floor().max(0.0) as i64
    }

    /// The second of trade number `n`, searching down from `hi` (≥ its second) no lower than `lo`.
    fn second_of(&self, n: i64, lo: i64, hi: i64) -> i64 {
        // Gallop down from `hi`: trades come newest first, so the answer is usually close.
        let (mut below, mut above) = (hi, hi + 1);
        let mut step = 1;
        while below > lo && self.before(below) > n {
            above = below;
            below = (hi - step).max(lo);
            step *= 2;
        }
        last_at_or_below(below, above, n, |s| self.before(s))
    }

    fn trade(&self, n: i64, date: i64) -> SimTrade {
        let Draw {
            price,
            amount,
            side,
        } = Draw::of(self.key, self.price, n);
        let total = (price as u128 * amount as u128 / 100_000_000) as u64;
        SimTrade {
            global_trade_id: self.base_global_id + n * 7,
            trade_id: self.base_id + n,
            date,
            buy: side,
            rate: decimal(price),
            amount: decimal(amount),
            total: decimal(total),
        }
    }
}

/// A pair's trade counts, for a venue that serves the same market under names of its own
/// ([`super::agg_market`]): the same rate, busy and calm periods, listed or not.
pub(crate) struct Counts(Model);

impl Counts {
    pub(crate) fn new(cfg: &SimulatorConfig, pair: &str) -> Counts {
        Counts(Model::of(cfg, pair))
    }

    /// The pair's trades strictly before second `s`; O(1).
    pub(crate) fn before(&self, s: i64) -> i64 {
        self.0.before(s)
    }

    /// The pair's base price, in units of 1e-8.
    pub(crate) fn price(&self) -> u64 {
        self.0.price
    }
}

/// The names of the built-in pairs, whose rates and prices the table above sets.
pub(crate) fn builtin_pairs() -> impl Iterator<Item = &'static str> {
    PAIRS.iter().map(|&(name, _, _)| name)
}

/// Whether the simulator knows `pair`: configured, trading or delisted.
pub fn is_listed(cfg: &SimulatorConfig, pair: &str) -> bool {
    cfg.pairs.iter().any(|p| p == pair) || cfg.delisted.contains_key(pair)
}

/// Trades of `pair` dated within `[from, until]`; O(1). Zero for an unknown pair.
pub fn count_in_window(cfg: &SimulatorConfig, pair: &str, from: i64, until: i64) -> u64 {
    match Model::new(cfg, pair) {
        Some(m) if from <= until => (m.before(until + 1) - m.before(from)) as u64,
        _ => 0,
    }
}

/// The newest `limit` trades of `pair` in `[from, until]`, newest first: what the API answers.
pub fn newest_trades(
    cfg: &SimulatorConfig,
    pair: &str,
    from: i64,
    until: i64,
    limit: usize,
) -> Vec<SimTrade> {
    let Some(m) = Model::new(cfg, pair) else {
        return Vec::new();
    };
    if from > until {
        return Vec::new();
    }
    let (first, end) = (m.before(from), m.before(until + 1));
    let n = ((end - first) as usize).min(limit);
    let mut trades = Vec::with_capacity(n);
    let mut second = until;
    for number in (end - n as i64..end).rev() {
        second = m.second_of(number, from, second);
        trades.push(m.trade(number, second));
    }
    trades
}

/// Every trade of `pair` in `[from, until]`, oldest first: the ground truth for tests.
pub fn trades_in_window(cfg: &SimulatorConfig, pair: &str, from: i64, until: i64) -> Vec<SimTrade> {
    let mut trades = newest_trades(cfg, pair, from, until, usize::MAX);
    trades.reverse();
    trades
}

/// At most this many of a pair's last 24 hours' trades, the newest, make its ticker: a busy
/// pair's day holds tens of thousands, and a ticker of twenty pairs must stay cheap.
pub const TICKER_TRADES: i64 = 5_000;

/// A pair's figures in Poloniex's `returnTicker`, decimal strings with 8 decimals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticker {
    /// The price of the last trade at or before "now" (the pair's base price before any).
    pub last: String,
    pub lowest_ask: String,
    pub highest_bid: String,
    /// `last` against the oldest trade counted, as a fraction (`"-0.01234567"`).
    pub percent_change: String,
    /// Σ `total` (rate × amount) of the trades counted.
    pub base_volume: String,
    /// Σ `amount` of the trades counted.
    pub quote_volume: String,
    pub high_24hr: String,
    pub low_24hr: String,
}

/// `pair`'s ticker as of unix second `now`, over its trades dated in `(now − 24 h, now]` (at
/// most the newest [`TICKER_TRADES`]); `None` for a pair not listed.
pub fn ticker(cfg: &SimulatorConfig, pair: &str, now: i64) -> Option<Ticker> {
    let m = Model::new(cfg, pair)?;
    let end = m.before(now.saturating_add(1));
    let first = m
        .before(now.saturating_sub(86_399))
        .max(end - TICKER_TRADES);
    let draw = |n: i64| Draw::of(m.key, m.price, n);
    let last = if end > 0 {
        draw(end - 1).price
    } else {
        m.price
    };
    let open = if first < end { draw(first).price } else { last };
    let (mut high, mut low, mut base, mut quote) = (last, last, 0u128, 0u128);
    for n in first..end {
        let d = draw(n);
        high = high.max(d.price);
        low = low.min(d.price);
        quote += d.amount as u128;
        // As a trade's `total`: truncated per trade.
        base += d.price as u128 * d.amount as u128 / 100_000_000;
    }
    // A narrow book around the last price (the simulator keeps no order book).
    let spread = (last / 2_000).max(1);
    let change = (last as i128 - open as i128) * 100_000_000 / open as i128;
    Some(Ticker {
        last: decimal(last),
        lowest_ask: decimal(last + spread),
        highest_bid: decimal(last.saturating_sub(spread).max(1)),
        percent_change: format!(
            "{}{}",
            if change < 0 { "-" } else { "" },
            decimal(change.unsigned_abs() as u64)
        ),
        base_volume: decimal_wide(base),
        quote_volume: decimal_wide(quote),
        high_24hr: decimal(high),
        low_24hr: decimal(low),
    })
}

/// As [`decimal`], for a sum.
fn decimal_wide(units: u128) -> String {
    format!("{}.{:08}", units / 100_000_000, units % 100_000_000)
}

/// Trade number `n`'s price and amount (units of 1e-8) and side, hashed from (`key`, `n`)
/// around the pair's base `price`: the same draw for every venue that serves the market.
pub(crate) struct Draw {
    pub price: u64,
    pub amount: u64,
    /// Poloniex: a buy; Binance: the buyer was the maker.
    pub side: bool,
}

impl Draw {
    pub(crate) fn of(key: u64, price: u64, n: i64) -> Draw {
        let h = splitmix64(key ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // Price drifts slowly (±5 % over ~10 000 trades) with ±0.1 % noise per trade.
        let drift = (n as f64 / 1_600.0).sin() * 0.05 + (unit(h >> 11) - 0.5) * 0.002;
        Draw {
            price: ((price as f64) * (1.0 + drift)).round().max(1.0) as u64,
            amount: 10_000 + splitmix64(h) % 1_000_000_000,
            side: h & 1 == 1,
        }
    }
}

/// The last second `s` in `[below, above)` with `before(s) <= n`, given `before(below) <= n <
/// before(above)` and `before` non-decreasing: the second of trade number `n`, by bisection.
pub(crate) fn last_at_or_below(
    mut below: i64,
    mut above: i64,
    n: i64,
    before: impl Fn(i64) -> i64,
) -> i64 {
    while above - below > 1 {
        let mid = below + (above - below) / 2;
        if before(mid) <= n {
            below = mid;
        } else {
            above = mid;
        }
    }
    below
}

/// `12345678901` → `"123.45678901"`: units of 1e-8 as a decimal string, exactly.
pub fn decimal(units: u64) -> String {
    format!("{}.{:08}", units / 100_000_000, units % 100_000_000)
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A hash → [0, 1).
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 1_540_166_400; // 2018-10-22

    fn cfg() -> SimulatorConfig {
        SimulatorConfig::default()
    }

    #[test]
    fn ids_are_consecutive_in_time_order_and_dates_in_the_window() {
        let trades = trades_in_window(&cfg(), "USDT_BTC", DAY, DAY + 7200);
        assert!(trades.len() > 100);
        for w in trades.windows(2) {
            assert_eq!(w[1].trade_id, w[0].trade_id + 1);
            assert!(w[1].date >= w[0].date);
            assert!(w[1].global_trade_id > w[0].global_trade_id);
        }
        assert!(trades.iter().all(|t| (DAY..=DAY + 7200).contains(&t.date)));
    }

    #[test]
    fn a_window_is_its_halves_joined() {
        let c = cfg();
        for (pair, from, until) in [
            ("USDT_BTC", DAY, DAY + 3599),
            ("BTC_XMR", DAY, DAY + 86_399),
            ("BTC_ETH", DAY + 7, DAY + 8),
        ] {
            let whole = trades_in_window(&c, pair, from, until);
            let mid = (from + until) / 2;
            let mut halves = trades_in_window(&c, pair, from, mid);
            halves.extend(trades_in_window(&c, pair, mid + 1, until));
            assert_eq!(whole, halves, "{pair}");
            assert_eq!(whole.len() as u64, count_in_window(&c, pair, from, until));
        }
    }

    #[test]
    fn newest_first_and_the_page_is_the_newest_trades() {
        let c = cfg();
        let all = trades_in_window(&c, "USDT_BTC", DAY, DAY + 86_399);
        let page = newest_trades(&c, "USDT_BTC", DAY, DAY + 86_399, 1000);
        assert_eq!(page.len(), 1000);
        let mut newest: Vec<_> = all[all.len() - 1000..].to_vec();
        newest.reverse();
        assert_eq!(page, newest);
    }

    #[test]
    fn some_busy_hours_exceed_a_page_and_some_do_not() {
        let c = cfg();
        let hours: Vec<u64> = (0..24)
            .map(|h| count_in_window(&c, "USDT_BTC", DAY + h * 3600, DAY + h * 3600 + 3599))
            .collect();
        assert!(hours.iter().any(|&n| n >= 1000), "{hours:?}");
        assert!(hours.iter().any(|&n| n < 1000), "{hours:?}");
        let calm =
            (0..24).map(|h| count_in_window(&c, "BTC_ETH", DAY + h * 3600, DAY + h * 3600 + 3599));
        assert!(
            calm.clone().all(|n| n > 0 && n < 1000),
            "{:?}",
            calm.collect::<Vec<_>>()
        );
    }

    #[test]
    fn deterministic_per_seed_and_pair() {
        let a = trades_in_window(&cfg(), "BTC_ETH", DAY, DAY + 600);
        assert_eq!(a, trades_in_window(&cfg(), "BTC_ETH", DAY, DAY + 600));
        let other = SimulatorConfig { seed: 7, ..cfg() };
        assert_ne!(a, trades_in_window(&other, "BTC_ETH", DAY, DAY + 600));
        let xmr = trades_in_window(&cfg(), "BTC_XMR", DAY, DAY + 600);
        assert_ne!(
            a.first().map(|t| t.trade_id),
            xmr.first().map(|t| t.trade_id)
        );
    }

    #[test]
    fn total_is_rate_times_amount_in_integers() {
        let units = |s: &str| {
            let (int, frac) = s.split_once('.').unwrap();
            assert_eq!(frac.len(), 8, "{s}");
            int.parse::<u128>().unwrap() * 100_000_000 + frac.parse::<u128>().unwrap()
        };
        for t in trades_in_window(&cfg(), "USDT_BTC", DAY, DAY + 600) {
            assert_eq!(
                units(&t.total),
                units(&t.rate) * units(&t.amount) / 100_000_000
            );
        }
    }

    #[test]
    fn unknown_pairs_and_pre_epoch_windows_are_empty() {
        assert_eq!(count_in_window(&cfg(), "BTC_NOPE", DAY, DAY + 100), 0);
        assert!(trades_in_window(&cfg(), "BTC_ETH", 0, EPOCH - 1).is_empty());
        assert_eq!(count_in_window(&cfg(), "BTC_ETH", DAY + 1, DAY), 0);
    }

    #[test]
    fn activity_scales_one_pairs_rate_under_either_name_and_the_ground_truth_follows() {
        let week = (DAY, DAY + 7 * 86_400 - 1);
        let count = |c: &SimulatorConfig, pair: &str| count_in_window(c, pair, week.0, week.1);
        // Twenty pairs, from a few trades a day to a busy one.
        let mut pairs: Vec<String> = (0..17).map(|i| format!("BTC_C{i:02}")).collect();
        pairs.extend(["USDT_BTC", "BTC_ETH", "BTC_LTC"].map(String::from));
        let activity = [
            ("BTC_C00", 0.004),
            ("BTC_C01", 0.0),
            ("BTCUSDT", 10.0),
            ("BTC_ETH", 0.5),
        ];
        let plain = SimulatorConfig {
            pairs: pairs.clone(),
            ..cfg()
        };
        let mixed = SimulatorConfig {
            pairs,
            activity: activity.map(|(k, v)| (k.to_string(), v)).into(),
            ..cfg()
        };
        // The mean rate, within the swings' leftover over a week.
        for (pair, factor) in [("USDT_BTC", 10.0), ("BTC_ETH", 0.5)] {
            let ratio = count(&mixed, pair) as f64 / count(&plain, pair) as f64;
            assert!((ratio / factor - 1.0).abs() < 0.01, "{pair}: {ratio}");
        }
        // 0.004 × 0.01 trades a second: about 24 a week, 3.5 a day.
        let calm_week = count(&mixed, "BTC_C00");
        assert!((20..=28).contains(&calm_week), "{calm_week} a week");
        let calm_day = count_in_window(&mixed, "BTC_C00", DAY, DAY + 86_399);
        assert!((1..=10).contains(&calm_day), "{calm_day} a day");
        assert_eq!(count(&mixed, "BTC_C01"), 0);
        assert!(trades_in_window(&mixed, "BTC_C01", week.0, week.1).is_empty());
        // Pairs not named trade as before, trade for trade.
        assert_eq!(
            trades_in_window(&mixed, "BTC_LTC", DAY, DAY + 86_399),
            trades_in_window(&plain, "BTC_LTC", DAY, DAY + 86_399)
        );
        // Every ground truth agrees with the counts.
        let busy = trades_in_window(&mixed, "USDT_BTC", DAY, DAY + 3599);
        assert_eq!(
            busy.len() as u64,
            count_in_window(&mixed, "USDT_BTC", DAY, DAY + 3599)
        );
        assert!(busy.len() > 10_000, "{}", busy.len());
        assert_eq!(
            newest_trades(&mixed, "USDT_BTC", DAY, DAY + 3599, 1000)[0],
            *busy.last().unwrap()
        );
    }

    #[test]
    fn a_ticker_is_the_last_24_hours_trades() {
        let c = cfg();
        let now = DAY + 86_400 + 1234;
        let t = ticker(&c, "BTC_XMR", now).expect("listed");
        let day = trades_in_window(&c, "BTC_XMR", now - 86_399, now);
        assert!(!day.is_empty() && day.len() < TICKER_TRADES as usize);
        let last = day.last().unwrap();
        assert_eq!(t.last, last.rate);
        let units = |s: &str| {
            let (int, frac) = s.split_once('.').unwrap();
            int.parse::<u128>().unwrap() * 100_000_000 + frac.parse::<u128>().unwrap()
        };
        let sum = |f: fn(&SimTrade) -> &String| day.iter().map(|t| units(f(t))).sum::<u128>();
        assert_eq!(units(&t.quote_volume), sum(|t| &t.amount));
        assert_eq!(units(&t.base_volume), sum(|t| &t.total));
        let rates: Vec<u128> = day.iter().map(|t| units(&t.rate)).collect();
        assert_eq!(units(&t.high_24hr), *rates.iter().max().unwrap());
        assert_eq!(units(&t.low_24hr), *rates.iter().min().unwrap());
        assert!(units(&t.highest_bid) < units(&t.last) && units(&t.last) < units(&t.lowest_ask));
        let (open, close) = (rates[0] as f64, rates[rates.len() - 1] as f64);
        let change: f64 = t.percent_change.parse().unwrap();
        assert!((change - (close - open) / open).abs() < 1e-7, "{change}");
        assert_eq!(ticker(&c, "BTC_NOPE", now), None);
        // A busy day counts only its newest trades.
        let busy = cfg();
        let t = ticker(&busy, "USDT_BTC", now).unwrap();
        let newest = newest_trades(&busy, "USDT_BTC", now - 86_399, now, TICKER_TRADES as usize);
        assert_eq!(newest.len(), TICKER_TRADES as usize);
        assert!(count_in_window(&busy, "USDT_BTC", now - 86_399, now) > TICKER_TRADES as u64);
        let volume: u128 = newest.iter().map(|t| units(&t.amount)).sum();
        assert_eq!(units(&t.quote_volume), volume);
    }

    #[test]
    fn a_delisted_pairs_history_ends_at_its_stop_and_it_is_still_listed() {
        let stop = DAY + 12 * 3600;
        let c = SimulatorConfig {
            delisted: [
                ("BTC_ETH".to_string(), stop),
                ("BTC_DEAD".to_string(), stop),
            ]
            .into(),
            ..cfg()
        };
        assert!(is_listed(&c, "BTC_ETH") && is_listed(&c, "BTC_DEAD"));
        assert_eq!(
            c.listed_pairs().iter().filter(|p| **p == "BTC_ETH").count(),
            1
        );
        let day = trades_in_window(&c, "BTC_ETH", DAY, DAY + 86_399);
        assert!(!day.is_empty());
        assert!(day.iter().all(|t| t.date < stop));
        assert_eq!(day, trades_in_window(&cfg(), "BTC_ETH", DAY, stop - 1));
        assert_eq!(count_in_window(&c, "BTC_ETH", stop, stop + 30 * 86_400), 0);
        assert!(newest_trades(&c, "BTC_ETH", stop, stop + 86_400, 10).is_empty());
        assert!(count_in_window(&c, "BTC_DEAD", DAY, stop - 1) > 0);
        // A day after, its ticker has no trades left: the last price, no volume.
        let t = ticker(&c, "BTC_ETH", stop + 86_400).unwrap();
        assert_eq!(t.last, day.last().unwrap().rate);
        assert_eq!(
            (t.quote_volume.as_str(), t.percent_change.as_str()),
            ("0.00000000", "0.00000000")
        );
        assert!(!c.trading_at("BTC_ETH", stop) && c.trading_at("BTC_ETH", stop - 1));
        assert!(!c.trading_at("ETHBTC", stop), "either name");
    }

    #[test]
    fn formats_decimals() {
        assert_eq!(decimal(283), "0.00000283");
        assert_eq!(decimal(12_345_678_901), "123.45678901");
    }
}

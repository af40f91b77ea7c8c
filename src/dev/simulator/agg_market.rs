//! The Binance venue's market: every aggregate trade of every symbol as a pure function of
//! (seed, symbol, time).
//!
//! It is built on [`super::market`]'s per-second counts, so a symbol trades at the rate, and in
//! the busy and calm periods, of the pair it stands for: `BTCUSDT` as `USDT_BTC`, `ETHUSDT` as
//! `USDT_ETH`, `ETHBTC` as `BTC_ETH` (any built-in or configured `QUOTE_BASE` pair as
//! `BASEQUOTE`), any other symbol at the default rate. Second `s` holds that pair's `C(s+1) −
//! C(s)` trades, each at a millisecond drawn from (key, second, index), sorted; and each of the
//! configuration's `burst_ms` holds `burst_trades` more, all in that one millisecond. So the
//! aggregates before second `s` number `N(s) = C(s) + burst_trades × (bursts before s)`, O(log
//! bursts) at any second, and aggregate number `n` has id `base + n`: ids are consecutive in
//! time order (`T` never decreases as the id grows) whatever is asked. The other fields are
//! hashed from the number; each aggregate stands for one to three underlying trades whose ids
//! (`f` to `l`) are consecutive too.
//!
//! Pure and deterministic: no I/O, no clock, no global state. It knows no present and
//! describes the future as readily as the past: not serving trades that have not happened yet
//! is the server's business ([`super::binance`]).

use serde::{Deserialize, Serialize};

use super::market::{self, decimal, fnv1a, last_at_or_below, splitmix64, Counts, Draw, EPOCH};
use super::SimulatorConfig;

/// Every symbol's aggregate ids start past 2^31 (real ones have for years), so a client that
/// keeps them in 32 bits fails at once.
pub const AGG_ID_BASE: i64 = 3_000_000_000;

/// A symbol's ids start at `AGG_ID_BASE + k × AGG_ID_SPAN`, `k` drawn from its name among
/// `SYMBOL_SLOTS`: ranges of a billion, decades of the busiest pair, kept apart so that a
/// client mixing symbols up shows.
pub const AGG_ID_SPAN: i64 = 1_000_000_000;
const SYMBOL_SLOTS: u64 = 64;

/// Searches for an aggregate's second go no further (about two thousand years).
const LAST_SECOND: i64 = EPOCH + (1 << 36);

const MS_PER_SECOND: i64 = 1000;

/// One aggregate trade, as `GET /api/v3/aggTrades` serves it (its JSON field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggTrade {
    /// Aggregate trade id.
    #[serde(rename = "a")]
    pub id: i64,
    /// Price, a decimal string with 8 decimals.
    #[serde(rename = "p")]
    pub price: String,
    /// Quantity, a decimal string with 8 decimals.
    #[serde(rename = "q")]
    pub qty: String,
    /// The first underlying trade's id.
    #[serde(rename = "f")]
    pub first_trade_id: i64,
    /// The last underlying trade's id.
    #[serde(rename = "l")]
    pub last_trade_id: i64,
    /// Unix milliseconds, UTC.
    #[serde(rename = "T")]
    pub time_ms: i64,
    /// Was the buyer the maker?
    #[serde(rename = "m")]
    pub buyer_is_maker: bool,
    /// Was the trade the best price match? (Always true, as on Binance today.)
    #[serde(rename = "M")]
    pub best_match: bool,
}

/// A configured pair's Binance name: `USDT_BTC` (Poloniex's QUOTE_BASE) → `BTCUSDT`; a name
/// without `_` is a symbol already.
pub fn symbol_of(pair: &str) -> String {
    match pair.split_once('_') {
        Some((quote, base)) => format!("{base}{quote}"),
        None => pair.to_string(),
    }
}

/// Whether the simulator lists `symbol`: some configured pair, trading or delisted, is it,
/// under either name.
pub fn is_listed(cfg: &SimulatorConfig, symbol: &str) -> bool {
    cfg.pairs
        .iter()
        .chain(cfg.delisted.keys())
        .any(|pair| symbol_of(pair) == symbol)
}

/// The first id of `symbol`'s range.
pub fn base_id(symbol: &str) -> i64 {
    AGG_ID_BASE + (fnv1a(symbol.as_bytes()) % SYMBOL_SLOTS) as i64 * AGG_ID_SPAN
}

/// The id of the first aggregate of `symbol` at or after `ms` (it may not have happened yet);
/// `None` for a symbol not listed.
pub fn id_at(cfg: &SimulatorConfig, symbol: &str, ms: i64) -> Option<i64> {
    let m = Model::new(cfg, symbol)?;
    Some(m.base_id + m.number_at(ms))
}

/// Aggregates of `symbol` with `T` in `[from_ms, until_ms]`; O(seconds of the window).
pub fn count_in_window(cfg: &SimulatorConfig, symbol: &str, from_ms: i64, until_ms: i64) -> u64 {
    match Model::new(cfg, symbol) {
        Some(m) if from_ms <= until_ms => {
            (m.number_at(until_ms.saturating_add(1)) - m.number_at(from_ms)) as u64
        }
        _ => 0,
    }
}

/// Every aggregate of `symbol` with `T` in `[from_ms, until_ms]`, oldest first: the ground
/// truth for tests. Empty for a symbol not listed.
pub fn agg_trades_in_window(
    cfg: &SimulatorConfig,
    symbol: &str,
    from_ms: i64,
    until_ms: i64,
) -> Vec<AggTrade> {
    let Some(m) = Model::new(cfg, symbol) else {
        return Vec::new();
    };
    if from_ms > until_ms {
        return Vec::new();
    }
    let first = m.number_at(from_ms);
    let end = m.number_at(until_ms.saturating_add(1));
    m.numbered_from(first, (end - first) as usize, until_ms)
}

/// The first `limit` aggregates of `symbol` with id ≥ `from_id`, oldest first, whenever they
/// happen: what `fromId` pages through.
pub fn agg_trades_from_id(
    cfg: &SimulatorConfig,
    symbol: &str,
    from_id: i64,
    limit: usize,
) -> Vec<AggTrade> {
    agg_trades_from_id_until(cfg, symbol, from_id, limit, i64::MAX)
}

/// As [`agg_trades_from_id`], but none after `until_ms`.
pub fn agg_trades_from_id_until(
    cfg: &SimulatorConfig,
    symbol: &str,
    from_id: i64,
    limit: usize,
    until_ms: i64,
) -> Vec<AggTrade> {
    match Model::new(cfg, symbol) {
        Some(m) => m.numbered_from(from_id.saturating_sub(m.base_id), limit, until_ms),
        None => Vec::new(),
    }
}

/// The pair whose per-second counts `symbol` shares: the built-in or configured `QUOTE_BASE`
/// pair of that Binance name, else the symbol itself (which the market trades at its default
/// rate).
fn market_pair(cfg: &SimulatorConfig, symbol: &str) -> String {
    let stands_for = |pair: &&str| pair.contains('_') && symbol_of(pair) == symbol;
    let builtin: Option<&str> = market::builtin_pairs().find(stands_for);
    builtin
        .or_else(|| {
            cfg.pairs
                .iter()
                .chain(cfg.delisted.keys())
                .map(String::as_str)
                .find(stands_for)
        })
        .unwrap_or(symbol)
        .to_string()
}

/// A symbol's parameters, derived from (seed, symbol) and the configuration's bursts.
struct Model {
    counts: Counts,
    key: u64,
    base_id: i64,
    /// The first underlying trade's id.
    trade_base_id: i64,
    /// In units of 1e-8.
    price: u64,
    /// Sorted, without repeats, none before the market opens.
    bursts: Vec<i64>,
    burst_trades: i64,
}

impl Model {
    fn new(cfg: &SimulatorConfig, symbol: &str) -> Option<Model> {
        if !is_listed(cfg, symbol) {
            return None;
        }
        let counts = Counts::new(cfg, &market_pair(cfg, symbol));
        // A delisted symbol's history ends where its pair's does, bursts included.
        let stop_ms = cfg
            .delisted_at(symbol)
            .map_or(i64::MAX, |s| s.saturating_mul(MS_PER_SECOND));
        let mut bursts: Vec<i64> = cfg
            .burst_ms
            .iter()
            .copied()
            .filter(|&ms| ms >= EPOCH * MS_PER_SECOND && ms < stop_ms)
            .collect();
        bursts.sort_unstable();
        bursts.dedup();
        let base_id = base_id(symbol);
        Some(Model {
            price: counts.price(),
            counts,
            // Apart from the Poloniex side's keys, which hash the pair's name alone.
            key: splitmix64(cfg.seed ^ fnv1a(symbol.as_bytes()).rotate_left(29) ^ 0xB1AA_CE00),
            base_id,
            // Underlying ids run ahead of aggregate ids, as Binance's do.
            trade_base_id: 2 * base_id,
            bursts,
            burst_trades: cfg.burst_trades as i64,
        })
    }

    /// `N(s)`: aggregates strictly before second `s`.
    fn before(&self, s: i64) -> i64 {
        let bursts = self
            .bursts
            .partition_point(|&ms| ms < s.saturating_mul(MS_PER_SECOND));
        self.counts.before(s) + self.burst_trades * bursts as i64
    }

    /// Aggregates with `T` strictly before `ms`.
    fn number_at(&self, ms: i64) -> i64 {
        let s = ms.div_euclid(MS_PER_SECOND);
        let before = self.before(s);
        if self.before(s + 1) == before {
            return before;
        }
        let within = ms - s * MS_PER_SECOND;
        before + self.millis(s).iter().filter(|&&m| m < within).count() as i64
    }

    /// The milliseconds (0..1000) of second `s`'s aggregates, in order: the pair's trades at
    /// hashed milliseconds, and each burst's trades at its own.
    fn millis(&self, s: i64) -> Vec<i64> {
        let regular = self.counts.before(s + 1) - self.counts.before(s);
        let start = s.saturating_mul(MS_PER_SECOND);
        let (lo, hi) = (
            self.bursts.partition_point(|&ms| ms < start),
            self.bursts
                .partition_point(|&ms| ms < start.saturating_add(MS_PER_SECOND)),
        );
        let mut millis: Vec<i64> = (0..regular)
            .map(|i| {
                let h = splitmix64(
                    self.key
                        ^ (s as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
                        ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                (h % MS_PER_SECOND as u64) as i64
            })
            .collect();
        for &burst in &self.bursts[lo..hi] {
            millis.extend(std::iter::repeat_n(
                burst - start,
                self.burst_trades as usize,
            ));
        }
        // Equal milliseconds are interchangeable: numbers are given after sorting.
        millis.sort_unstable();
        millis
    }

    /// The second of aggregate number `n` (≥ 0), searching up from `lo` (≤ that second); `None`
    /// if it lies past [`LAST_SECOND`].
    fn second_of(&self, n: i64, lo: i64) -> Option<i64> {
        // Gallop up from `lo`: pages walk forward, so the answer is usually close.
        let (mut below, mut above, mut step) = (lo, lo + 1, 1);
        while self.before(above) <= n {
            if above >= LAST_SECOND {
                return None;
            }
            below = above;
            step *= 2;
            above = (lo + step).min(LAST_SECOND);
        }
        Some(last_at_or_below(below, above, n, |s| self.before(s)))
    }

    /// Up to `limit` aggregates numbered from `first` on, oldest first, none after `until_ms`.
    fn numbered_from(&self, first: i64, limit: usize, until_ms: i64) -> Vec<AggTrade> {
        let mut trades = Vec::with_capacity(limit.min(10_000));
        let (mut n, mut lo) = (first.max(0), EPOCH);
        while trades.len() < limit {
            let Some(s) = self.second_of(n, lo) else {
                break;
            };
            if s.saturating_mul(MS_PER_SECOND) > until_ms {
                break;
            }
            let start = self.before(s);
            let millis = self.millis(s);
            for (number, ms) in (start..).zip(millis).skip((n - start) as usize) {
                let time_ms = s * MS_PER_SECOND + ms;
                if time_ms > until_ms || trades.len() == limit {
                    return trades;
                }
                trades.push(self.trade(number, time_ms));
            }
            n = self.before(s + 1);
            lo = s + 1;
        }
        trades
    }

    fn trade(&self, n: i64, time_ms: i64) -> AggTrade {
        // As on the Poloniex side.
        let Draw {
            price,
            amount,
            side,
        } = Draw::of(self.key, self.price, n);
        AggTrade {
            id: self.base_id + n,
            price: decimal(price),
            qty: decimal(amount),
            first_trade_id: self.trade_base_id + underlying_before(n),
            last_trade_id: self.trade_base_id + underlying_before(n + 1) - 1,
            time_ms,
            buyer_is_maker: side,
            best_match: true,
        }
    }
}

/// Underlying trades before aggregate `n`: each aggregate holds 1 to 3 (`1 + [n+1 even] +
/// [7 divides n+1]`), in closed form so that any page costs the same.
fn underlying_before(n: i64) -> i64 {
    n + n / 2 + n / 7
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 1_540_166_400_000; // 2018-10-22
    const HOUR_MS: i64 = 3_600_000;

    fn cfg() -> SimulatorConfig {
        SimulatorConfig {
            burst_ms: vec![DAY_MS + 1_800_123],
            ..SimulatorConfig::default()
        }
    }

    #[test]
    fn the_default_pairs_are_listed_under_their_binance_names_in_ranges_of_their_own() {
        let c = cfg();
        let symbols = ["BTCUSDT", "ETHUSDT", "ETHBTC", "XMRBTC", "LTCBTC"];
        assert!(symbols.iter().all(|s| is_listed(&c, s)));
        assert!(!is_listed(&c, "USDT_BTC") && !is_listed(&c, "NOPEUSDT"));
        let mut bases: Vec<i64> = symbols.iter().map(|s| base_id(s)).collect();
        bases.sort_unstable();
        bases.dedup();
        assert_eq!(bases.len(), symbols.len(), "{bases:?}");
        let listed = SimulatorConfig {
            pairs: vec!["BTCUSDT".into(), "DOGEUSDT".into()],
            ..cfg()
        };
        assert!(is_listed(&listed, "BTCUSDT") && is_listed(&listed, "DOGEUSDT"));
    }

    #[test]
    fn ids_are_consecutive_past_2_31_and_time_never_goes_back_across_windows() {
        let c = cfg();
        let mut all = Vec::new();
        for hour in 0..3 {
            let from = DAY_MS + hour * HOUR_MS;
            all.extend(agg_trades_in_window(
                &c,
                "BTCUSDT",
                from,
                from + HOUR_MS - 1,
            ));
        }
        assert!(all.len() > 1000, "{}", all.len());
        assert!(all[0].id > 1 << 31);
        for w in all.windows(2) {
            assert_eq!(w[1].id, w[0].id + 1, "{:?}", w);
            assert!(w[1].time_ms >= w[0].time_ms, "{:?}", w);
            assert_eq!(w[1].first_trade_id, w[0].last_trade_id + 1);
        }
        assert!(all.iter().all(|t| t.first_trade_id <= t.last_trade_id
            && t.last_trade_id - t.first_trade_id < 3
            && t.best_match));
        assert!(all
            .iter()
            .all(|t| (DAY_MS..DAY_MS + 3 * HOUR_MS).contains(&t.time_ms)));
        // Trades spread over the milliseconds, several sometimes in one.
        let ms: std::collections::BTreeSet<i64> = all.iter().map(|t| t.time_ms % 1000).collect();
        assert!(ms.len() > 500, "{}", ms.len());
    }

    #[test]
    fn the_per_second_counts_are_the_poloniex_pairs() {
        let c = cfg();
        let poloniex = SimulatorConfig::default();
        for (symbol, pair) in [
            ("BTCUSDT", "USDT_BTC"),
            ("ETHUSDT", "USDT_ETH"),
            ("ETHBTC", "BTC_ETH"),
        ] {
            let from = DAY_MS / 1000 + 5 * 3600;
            assert_eq!(
                count_in_window(&c, symbol, from * 1000, (from + 3599) * 1000 + 999),
                market::count_in_window(&poloniex, pair, from, from + 3599),
                "{symbol}"
            );
        }
    }

    #[test]
    fn activity_scales_a_symbols_trades_as_its_pairs_and_the_ground_truth_follows() {
        let busy = SimulatorConfig {
            activity: [("USDT_BTC".to_string(), 8.0), ("ETHBTC".to_string(), 0.0)].into(),
            ..cfg()
        };
        let (from, until) = (DAY_MS + 5 * HOUR_MS, DAY_MS + 6 * HOUR_MS - 1);
        let poloniex = SimulatorConfig {
            activity: busy.activity.clone(),
            ..SimulatorConfig::default()
        };
        let (s0, s1) = (from / 1000, until / 1000);
        let count = count_in_window(&busy, "BTCUSDT", from, until);
        assert_eq!(
            count,
            market::count_in_window(&poloniex, "USDT_BTC", s0, s1),
            "the same per-second counts"
        );
        let plain = count_in_window(&cfg(), "BTCUSDT", from, until);
        assert!(
            count > 6 * plain && count < 10 * plain,
            "{count} vs {plain}"
        );
        let all = agg_trades_in_window(&busy, "BTCUSDT", from, until);
        assert_eq!(all.len() as u64, count);
        assert_eq!(
            agg_trades_from_id(&busy, "BTCUSDT", all[0].id, 1000),
            all[..1000]
        );
        assert_eq!(
            id_at(&busy, "BTCUSDT", until + 1),
            Some(all[0].id + count as i64)
        );
        // Activity 0: only the burst's trades.
        let burst = busy.burst_ms[0];
        assert_eq!(
            count_in_window(&busy, "ETHBTC", DAY_MS, DAY_MS + 24 * HOUR_MS),
            busy.burst_trades
        );
        assert!(
            agg_trades_in_window(&busy, "ETHBTC", DAY_MS, DAY_MS + 24 * HOUR_MS)
                .iter()
                .all(|t| t.time_ms == burst)
        );
    }

    #[test]
    fn a_burst_millisecond_holds_more_than_a_page() {
        let c = cfg();
        let burst = c.burst_ms[0];
        let held = agg_trades_in_window(&c, "ETHBTC", burst, burst);
        assert!(held.len() > 1000 && held.len() >= 2500, "{}", held.len());
        assert!(held.iter().all(|t| t.time_ms == burst));
        assert_eq!(
            held.len() as u64,
            count_in_window(&c, "ETHBTC", burst, burst)
        );
        // The ids go on across the burst, before and after it.
        let around = agg_trades_in_window(&c, "ETHBTC", burst - 60_000, burst + 60_000);
        assert!(around.windows(2).all(|w| w[1].id == w[0].id + 1));
        assert!(around.len() > held.len());
        // Without the burst, the millisecond is (almost always) empty.
        let calm = SimulatorConfig {
            burst_ms: Vec::new(),
            ..cfg()
        };
        assert!(agg_trades_in_window(&calm, "ETHBTC", burst, burst).len() < 3);
    }

    #[test]
    fn paging_by_id_and_by_window_agree() {
        let c = cfg();
        let (from, until) = (DAY_MS + HOUR_MS / 2, DAY_MS + HOUR_MS / 2 + 120_000);
        let window = agg_trades_in_window(&c, "ETHBTC", from, until);
        let first = id_at(&c, "ETHBTC", from).unwrap();
        assert_eq!(window[0].id, first);
        let mut paged = Vec::new();
        let mut next = first;
        while paged.len() < window.len() {
            let page = agg_trades_from_id(&c, "ETHBTC", next, 1000);
            assert!(!page.is_empty());
            next = page.last().unwrap().id + 1;
            paged.extend(page);
        }
        paged.truncate(window.len());
        assert_eq!(paged, window);
        // Capped: nothing after the cap, even to fill the page.
        let capped = agg_trades_from_id_until(&c, "ETHBTC", first, 100_000, from + 10_000);
        assert_eq!(capped[..], window[..capped.len()]);
        assert!(capped.iter().all(|t| t.time_ms <= from + 10_000));
        assert!(window[capped.len()].time_ms > from + 10_000);
    }

    #[test]
    fn a_window_is_its_halves_joined_and_the_same_twice() {
        let c = cfg();
        let (from, until) = (DAY_MS, DAY_MS + HOUR_MS - 1);
        let whole = agg_trades_in_window(&c, "BTCUSDT", from, until);
        let mid = from + 1_234_567;
        let mut halves = agg_trades_in_window(&c, "BTCUSDT", from, mid);
        halves.extend(agg_trades_in_window(&c, "BTCUSDT", mid + 1, until));
        assert_eq!(whole, halves);
        assert_eq!(whole, agg_trades_in_window(&c, "BTCUSDT", from, until));
        let other = SimulatorConfig { seed: 7, ..cfg() };
        assert_ne!(whole, agg_trades_in_window(&other, "BTCUSDT", from, until));
    }

    #[test]
    fn fields_are_exact_decimals_and_serialize_as_binance_names() {
        let t = &agg_trades_in_window(&cfg(), "BTCUSDT", DAY_MS, DAY_MS + 60_000)[0];
        for s in [&t.price, &t.qty] {
            let (_, frac) = s.split_once('.').unwrap();
            assert_eq!(frac.len(), 8, "{s}");
        }
        let json = serde_json::to_value(t).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec!["a", "p", "q", "f", "l", "T", "m", "M"];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert!(json["a"].is_i64() && json["T"].is_i64() && json["p"].is_string());
        assert_eq!(serde_json::from_value::<AggTrade>(json).unwrap(), *t);
    }

    #[test]
    fn unknown_symbols_inverted_windows_and_the_time_before_the_market_are_empty() {
        let c = cfg();
        assert!(agg_trades_in_window(&c, "NOPEUSDT", DAY_MS, DAY_MS + 1000).is_empty());
        assert_eq!(id_at(&c, "NOPEUSDT", DAY_MS), None);
        assert!(agg_trades_in_window(&c, "BTCUSDT", DAY_MS + 1, DAY_MS).is_empty());
        assert!(agg_trades_in_window(&c, "BTCUSDT", 0, EPOCH * 1000 - 1).is_empty());
        // fromId below the range starts at the first trade ever.
        let first = agg_trades_from_id(&c, "BTCUSDT", 0, 1);
        assert_eq!(first[0].id, base_id("BTCUSDT"));
        assert!(first[0].time_ms >= EPOCH * 1000);
    }
}

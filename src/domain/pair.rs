//! Currency pairs and chunk validation: what may go into an upstream URL.
//!
//! A chunk is checked here before anything is asked of the upstream: a pair that is not the
//! venue's symbols in the venue's spelling ([`PairRule`]: `BTC_ETH` on Poloniex, `BTCUSDT` on
//! Binance) could smuggle query parameters into the URL, and a reversed or negative window
//! cannot be answered. Pure functions only.

use std::fmt;

use crate::proto::TodoChunk;

/// How a venue spells a pair: upper-case letters and digits only, either two symbols joined by
/// a separator or one run of them. Nothing else is ever accepted, so a pair is always safe in a
/// URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairRule {
    /// Between the two symbols (`_` on Poloniex); `None`: the symbols are written together.
    pub separator: Option<char>,
    /// Shortest and longest symbol (or whole name, without a separator).
    pub len: (usize, usize),
    /// A valid name, for error messages.
    pub example: &'static str,
}

impl PairRule {
    /// `BASE_QUOTE` (Poloniex legacy): two symbols of 2-12 letters or digits.
    pub const UNDERSCORED: PairRule = PairRule {
        separator: Some('_'),
        len: (2, 12),
        example: "BTC_ETH",
    };

    /// `BASEQUOTE` (Binance): 5-20 letters or digits.
    pub const JOINED: PairRule = PairRule {
        separator: None,
        len: (5, 20),
        example: "BTCUSDT",
    };

    fn describe(&self) -> String {
        let (min, max) = self.len;
        match self.separator {
            Some(sep) => format!(
                "two upper-case symbols of {min}-{max} letters or digits joined by '{sep}', like {}",
                self.example
            ),
            None => format!(
                "{min}-{max} upper-case letters or digits, like {}",
                self.example
            ),
        }
    }
}

/// A currency pair known to be safe in a URL: upper-case letters and digits in a venue's
/// spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CurrencyPair(String);

/// Why a string is not a currency pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid currency pair {name:?}: expected {expected}")]
pub struct InvalidPair {
    pub name: String,
    pub expected: String,
}

impl CurrencyPair {
    /// A Poloniex-style `BASE_QUOTE` pair ([`PairRule::UNDERSCORED`]).
    pub fn parse(s: &str) -> Result<CurrencyPair, InvalidPair> {
        CurrencyPair::parse_with(s, PairRule::UNDERSCORED)
    }

    /// A pair as `rule` spells it.
    pub fn parse_with(s: &str, rule: PairRule) -> Result<CurrencyPair, InvalidPair> {
        let (min, max) = rule.len;
        let symbol = |part: &str| {
            (min..=max).contains(&part.len())
                && part
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        };
        let ok = match rule.separator {
            Some(sep) => s
                .split_once(sep)
                .is_some_and(|(base, quote)| symbol(base) && symbol(quote)),
            None => symbol(s),
        };
        if ok {
            Ok(CurrencyPair(s.to_string()))
        } else {
            Err(InvalidPair {
                name: s.to_string(),
                expected: rule.describe(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CurrencyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a chunk cannot be cloned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidChunk {
    #[error(transparent)]
    Pair(#[from] InvalidPair),
    #[error("window starts before 1970: from_unix_ts = {0}")]
    NegativeStart(i64),
    #[error("trade ids end before they start: from_trade_id = {from:?}, until_trade_id = {until}")]
    Ids { from: Option<i64>, until: i64 },
    #[error("window ends before it starts: from_unix_ts = {from} > until_unix_ts = {until}")]
    Reversed { from: i64, until: i64 },
}

/// Checks a chunk, its pair spelled as `rule` says; its pair on success. Windows are
/// inclusive: `from == until` is one second.
pub fn validate_chunk(chunk: &TodoChunk, rule: PairRule) -> Result<CurrencyPair, InvalidChunk> {
    let pair = CurrencyPair::parse_with(&chunk.currency_pair, rule)?;
    if chunk.from_unix_ts < 0 {
        return Err(InvalidChunk::NegativeStart(chunk.from_unix_ts));
    }
    if chunk.from_unix_ts > chunk.until_unix_ts {
        return Err(InvalidChunk::Reversed {
            from: chunk.from_unix_ts,
            until: chunk.until_unix_ts,
        });
    }
    if let Some(until) = chunk.until_trade_id {
        if chunk.from_trade_id.is_none_or(|from| from >= until) {
            return Err(InvalidChunk::Ids {
                from: chunk.from_trade_id,
                until,
            });
        }
    }
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exchange_pairs() {
        for ok in [
            "BTC_ETH",
            "USDT_BTC",
            "BTC_1INCH",
            "AB_CD",
            "ABCDEFGHIJKL_XY",
        ] {
            assert_eq!(CurrencyPair::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_anything_that_could_bend_a_url() {
        for bad in [
            "",
            "BTC",
            "btc_eth",
            "BTC-ETH",
            "BTC_ETH_X",
            "_ETH",
            "BTC_",
            "B_ETH",
            "BTC_ETH&start=0",
            "BTC_ETH ",
            "BTC_ÉTH",
            "ABCDEFGHIJKLM_X1",
            "BTC_ETH\n",
        ] {
            let err = CurrencyPair::parse(bad).unwrap_err();
            assert!(err.to_string().contains("like BTC_ETH"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn joined_pairs_are_letters_and_digits_only() {
        for ok in ["BTCUSDT", "ETHBTC", "1INCHUSDT"] {
            assert_eq!(
                CurrencyPair::parse_with(ok, PairRule::JOINED)
                    .unwrap()
                    .as_str(),
                ok
            );
        }
        for bad in [
            "BTC_USDT",
            "btcusdt",
            "BTC",
            "BTCUSDT&limit=5",
            "BTC USDT",
            "",
        ] {
            let err = CurrencyPair::parse_with(bad, PairRule::JOINED).unwrap_err();
            assert!(err.to_string().contains("like BTCUSDT"), "{bad:?}: {err}");
        }
    }

    fn check(chunk: &TodoChunk) -> Result<CurrencyPair, InvalidChunk> {
        validate_chunk(chunk, PairRule::UNDERSCORED)
    }

    fn chunk(pair: &str, from: i64, until: i64) -> TodoChunk {
        TodoChunk {
            currency_pair: pair.into(),
            from_unix_ts: from,
            until_unix_ts: until,
            task_dbid: 0,
            ..Default::default()
        }
    }

    #[test]
    fn trade_ids_asked_for_must_start_before_they_end() {
        let ids = |from: Option<i64>, until: Option<i64>| TodoChunk {
            from_trade_id: from,
            until_trade_id: until,
            ..chunk("BTC_ETH", 10, 20)
        };
        assert!(check(&ids(Some(5), Some(6))).is_ok());
        assert!(check(&ids(Some(5), None)).is_ok(), "up to the window's end");
        for (from, until) in [(Some(6), 6), (Some(7), 6), (None, 6)] {
            let err = check(&ids(from, Some(until))).unwrap_err();
            assert_eq!(err, InvalidChunk::Ids { from, until });
            assert!(
                err.to_string().contains("trade ids end before they start"),
                "{err}"
            );
        }
    }

    #[test]
    fn validates_windows() {
        assert!(
            check(&chunk("BTC_ETH", 10, 10)).is_ok(),
            "one second is a window"
        );
        assert_eq!(
            check(&chunk("BTC_ETH", -1, 10)),
            Err(InvalidChunk::NegativeStart(-1))
        );
        assert_eq!(
            check(&chunk("BTC_ETH", 11, 10)),
            Err(InvalidChunk::Reversed {
                from: 11,
                until: 10
            })
        );
        assert!(matches!(
            check(&chunk("x", 1, 2)),
            Err(InvalidChunk::Pair(_))
        ));
        let msg = check(&chunk("BTC_ETH", 11, 10)).unwrap_err().to_string();
        assert!(msg.contains("11 > until_unix_ts = 10"), "{msg}");
    }
}

//! Currency pairs and chunk validation: what may go into an upstream URL.
//!
//! A chunk is checked here before anything is asked of the upstream: a pair that is not two
//! upper-case symbols joined by `_` could smuggle query parameters into the URL, and a reversed
//! or negative window cannot be answered. Pure functions only.

use std::fmt;

use crate::proto::TodoChunk;

/// Longest symbol accepted on either side of the `_`.
const MAX_SYMBOL: usize = 12;

/// A currency pair known to be safe in a URL: `BASE_QUOTE`, upper-case letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CurrencyPair(String);

/// Why a string is not a currency pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid currency pair {0:?}: expected two upper-case symbols of 2-{MAX_SYMBOL} letters or digits joined by '_', like BTC_ETH"
)]
pub struct InvalidPair(pub String);

impl CurrencyPair {
    pub fn parse(s: &str) -> Result<CurrencyPair, InvalidPair> {
        let symbol = |part: &str| {
            (2..=MAX_SYMBOL).contains(&part.len())
                && part
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        };
        match s.split_once('_') {
            Some((base, quote)) if symbol(base) && symbol(quote) => Ok(CurrencyPair(s.to_string())),
            _ => Err(InvalidPair(s.to_string())),
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
    #[error("window ends before it starts: from_unix_ts = {from} > until_unix_ts = {until}")]
    Reversed { from: i64, until: i64 },
}

/// Checks a chunk; its pair on success. Windows are inclusive: `from == until` is one second.
pub fn validate_chunk(chunk: &TodoChunk) -> Result<CurrencyPair, InvalidChunk> {
    let pair = CurrencyPair::parse(&chunk.currency_pair)?;
    if chunk.from_unix_ts < 0 {
        return Err(InvalidChunk::NegativeStart(chunk.from_unix_ts));
    }
    if chunk.from_unix_ts > chunk.until_unix_ts {
        return Err(InvalidChunk::Reversed {
            from: chunk.from_unix_ts,
            until: chunk.until_unix_ts,
        });
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

    fn chunk(pair: &str, from: i64, until: i64) -> TodoChunk {
        TodoChunk {
            currency_pair: pair.into(),
            from_unix_ts: from,
            until_unix_ts: until,
            task_dbid: 0,
        }
    }

    #[test]
    fn validates_windows() {
        assert!(
            validate_chunk(&chunk("BTC_ETH", 10, 10)).is_ok(),
            "one second is a window"
        );
        assert_eq!(
            validate_chunk(&chunk("BTC_ETH", -1, 10)),
            Err(InvalidChunk::NegativeStart(-1))
        );
        assert_eq!(
            validate_chunk(&chunk("BTC_ETH", 11, 10)),
            Err(InvalidChunk::Reversed {
                from: 11,
                until: 10
            })
        );
        assert!(matches!(
            validate_chunk(&chunk("x", 1, 2)),
            Err(InvalidChunk::Pair(_))
        ));
        let msg = validate_chunk(&chunk("BTC_ETH", 11, 10))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("11 > until_unix_ts = 10"), "{msg}");
    }
}

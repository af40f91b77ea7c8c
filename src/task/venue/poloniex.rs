//! Poloniex's legacy public API, `GET /public?command=returnTradeHistory&currencyPair=BTC_ETH&start=S&end=E`
//! (docs/upstream.md): the original service's upstream.
//!
//! Pairs are `BASE_QUOTE`; windows are inclusive unix seconds, at most a month; an answer is a
//! JSON list of at most `page_limit` trades, newest first, or an error object with HTTP 200
//! (`{"error": "..."}`: an unknown pair, a window too long, too many calls). Every call costs
//! one unit of the budget. There is no finer position than the second: a second with more than
//! a page of trades cannot be cloned (it is reported).
//!
//! It must never carry a decimal through a float: rate, amount and total stay the strings the
//! API sent.

use serde::Deserialize;

use crate::config::UpstreamSettings;
use crate::domain::pair::{CurrencyPair, PairRule};
use crate::domain::utc::parse_utc_datetime;
use crate::proto::{cloned_entry, ClonedEntry};
use crate::task::answer::{excerpt, Kept, PageOrder, Refusal, UpstreamError, Window};
use crate::task::venue::{Cursor, Reply, Step, Venue};

/// `returnTradeHistory` answers newest first.
const PAGE_ORDER: PageOrder = PageOrder::NewestFirst;

/// Poloniex legacy, as configured.
#[derive(Debug, Clone)]
pub struct Poloniex {
    page_limit: usize,
    max_window_secs: i64,
    calls_per_second: f64,
}

impl Poloniex {
    pub fn new(settings: &UpstreamSettings) -> Poloniex {
        Poloniex {
            page_limit: settings.page_limit,
            max_window_secs: settings.poloniex.max_window_secs,
            calls_per_second: settings.poloniex.calls_per_second,
        }
    }
}

impl Venue for Poloniex {
    fn name(&self) -> &'static str {
        "poloniex"
    }

    fn pair_rule(&self) -> PairRule {
        PairRule::UNDERSCORED
    }

    fn max_window_secs(&self) -> i64 {
        self.max_window_secs
    }

    fn page_limit(&self) -> usize {
        self.page_limit
    }

    fn page_order(&self) -> PageOrder {
        PAGE_ORDER
    }

    fn budget_per_second(&self) -> f64 {
        self.calls_per_second
    }

    fn call_cost(&self) -> u32 {
        1
    }

    fn url(
        &self,
        base_url: &str,
        pair: &CurrencyPair,
        from: i64,
        until: i64,
        _cursor: Option<Cursor>,
    ) -> String {
        format!("{base_url}/public?command=returnTradeHistory&currencyPair={pair}&start={from}&end={until}")
    }

    fn classify(
        &self,
        reply: &Reply,
        from: i64,
        until: i64,
        _gathered: Vec<ClonedEntry>,
        _cursor: Option<Cursor>,
    ) -> Result<Step, UpstreamError> {
        classify_body(reply.body, self.page_limit, from, until).map(Step::Done)
    }

    /// `GET /public?command=returnTicker`: every market, one call of the legacy API's six a
    /// second.
    fn listing_url(&self, base_url: &str) -> String {
        format!("{base_url}/public?command=returnTicker")
    }

    fn listing_cost(&self) -> u32 {
        1
    }

    /// The markets the ticker lists that are not frozen (`isFrozen` "0").
    fn listed_pairs(&self, body: &[u8]) -> Result<Vec<String>, UpstreamError> {
        #[derive(Deserialize)]
        struct Ticker {
            #[serde(rename = "isFrozen", default)]
            is_frozen: serde_json::Value,
        }
        let tickers: std::collections::BTreeMap<String, Ticker> = serde_json::from_slice(body)
            .map_err(|e| {
                UpstreamError::Transient(format!(
                    "returnTicker is not an object of markets ({e}): {}",
                    excerpt(body)
                ))
            })?;
        // "0" in the legacy API; a number is read the same way.
        let frozen = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s != "0",
            serde_json::Value::Number(n) => n.as_i64() != Some(0),
            _ => false,
        };
        Ok(tickers
            .into_iter()
            .filter(|(_, t)| !frozen(&t.is_frozen))
            .map(|(pair, _)| pair)
            .collect())
    }
}

/// A trade as the API sends it; strings are borrowed from the body where possible.
#[derive(Deserialize)]
struct RawTrade<'a> {
    #[serde(rename = "tradeID")]
    trade_id: i64,
    #[serde(borrow)]
    date: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    rate: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    amount: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    total: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Answer<'a> {
    #[serde(borrow)]
    Trades(Vec<RawTrade<'a>>),
    Error {
        error: String,
    },
}

/// Classifies a 200 body for the window `[from, until]`; pure, so every branch is unit-tested.
pub fn classify_body(
    body: &[u8],
    page_limit: usize,
    from: i64,
    until: i64,
) -> Result<Window, UpstreamError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        UpstreamError::Transient(format!(
            "answer is not a trade list nor an error object ({e}): {}",
            excerpt(body)
        ))
    })?;
    let trades = match answer {
        Answer::Error { error } => {
            let lower = error.to_ascii_lowercase();
            return if lower.contains("time window") {
                Ok(Window::TooBig {
                    reason: error,
                    kept: None,
                })
            } else if lower.contains("per second")
                || lower.contains("rate limit")
                || lower.contains("too many")
            {
                Err(UpstreamError::Refused(Refusal::TooMany {
                    retry_after: None,
                    message: error,
                }))
            } else {
                Err(UpstreamError::Permanent(error))
            };
        }
        Answer::Trades(trades) => trades,
    };
    if trades.len() >= page_limit {
        return Ok(Window::TooBig {
            reason: format!("page limit of {page_limit} trades reached"),
            kept: keep_page(&trades, from, until),
        });
    }
    // The API answers newest first; results go out oldest first.
    trades
        .iter()
        .rev()
        .map(|t| entry(t, from, until))
        .collect::<Result<_, _>>()
        .map(Window::Complete)
}

/// What of a full page can be kept: the trades of the part of the window it covers completely
/// ([`PAGE_ORDER`]). `None` if it covers nothing, or a trade cannot be mapped (then the window
/// is asked for again in halves, and the trade is judged there).
fn keep_page(trades: &[RawTrade], from: i64, until: i64) -> Option<Kept> {
    let mut entries: Vec<ClonedEntry> = trades
        .iter()
        .map(|t| entry(t, from, until))
        .collect::<Result<_, _>>()
        .ok()?;
    let oldest = entries.iter().map(|e| e.date).min()?;
    let newest = entries.iter().map(|e| e.date).max()?;
    let (covered_from, covered_until) = PAGE_ORDER.covered(from, until, oldest, newest)?;
    entries.retain(|e| (covered_from..=covered_until).contains(&e.date));
    entries.sort_by_key(|e| (e.date, e.trade_id));
    Some(Kept {
        from: covered_from,
        until: covered_until,
        entries,
    })
}

fn entry(t: &RawTrade, from: i64, until: i64) -> Result<ClonedEntry, UpstreamError> {
    let bad = |what: String| UpstreamError::Permanent(format!("trade {}: {what}", t.trade_id));
    let trade_id = t.trade_id;
    let date =
        parse_utc_datetime(&t.date).ok_or_else(|| bad(format!("unreadable date {:?}", t.date)))?;
    if date < from || date > until {
        return Err(bad(format!(
            "dated {} outside the window [{from}, {until}] asked for",
            t.date
        )));
    }
    let kind = match &*t.kind {
        "buy" => cloned_entry::Type::Buy,
        "sell" => cloned_entry::Type::Sell,
        other => return Err(bad(format!("unknown type {other:?}"))),
    };
    Ok(ClonedEntry {
        trade_id,
        date,
        r#type: kind as i32,
        rate: t.rate.to_string(),
        amount: t.amount.to_string(),
        total: t.total.to_string(),
        time_ms: None,
        first_trade_id: None,
        last_trade_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"[{"globalTradeID": 394604821, "tradeID": 45205037, "date": "2018-10-22 15:03:57", "type": "sell", "rate": "0.03143485", "amount": "0.00009034", "total": "0.00000283", "orderNumber": 1}]"#;
    const AT: i64 = 1_540_220_637;

    fn complete(body: &str, from: i64, until: i64) -> Vec<ClonedEntry> {
        match classify_body(body.as_bytes(), 1000, from, until) {
            Ok(Window::Complete(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn maps_the_documented_example_exactly() {
        let entries = complete(EXAMPLE, AT - 10, AT + 10);
        assert_eq!(
            entries,
            vec![ClonedEntry {
                trade_id: 45205037,
                date: AT,
                r#type: cloned_entry::Type::Sell as i32,
                rate: "0.03143485".into(),
                amount: "0.00009034".into(),
                total: "0.00000283".into(),
                time_ms: None,
                first_trade_id: None,
                last_trade_id: None,
            }]
        );
    }

    #[test]
    fn answers_oldest_first() {
        let body = r#"[
            {"tradeID": 3, "date": "2018-10-22 15:03:59", "type": "buy", "rate": "1", "amount": "2", "total": "2"},
            {"tradeID": 2, "date": "2018-10-22 15:03:58", "type": "sell", "rate": "1", "amount": "1", "total": "1"}]"#;
        let entries = complete(body, AT, AT + 5);
        assert_eq!(
            entries.iter().map(|e| e.trade_id).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(entries[1].r#type, cloned_entry::Type::Buy as i32);
        assert!(
            complete("[]", 0, 10).is_empty(),
            "an empty window is complete"
        );
    }

    #[test]
    fn a_full_page_or_the_window_error_is_too_big() {
        let page: Vec<String> = (0..3)
            .map(|i| format!(r#"{{"tradeID": {i}, "date": "2018-10-22 15:03:57", "type": "buy", "rate": "1", "amount": "1", "total": "1"}}"#))
            .collect();
        let body = format!("[{}]", page.join(","));
        assert!(matches!(
            classify_body(body.as_bytes(), 3, AT, AT),
            Ok(Window::TooBig { .. })
        ));
        assert!(
            matches!(classify_body(body.as_bytes(), 4, AT, AT), Ok(Window::Complete(e)) if e.len() == 3)
        );
        let window = br#"{"error":"Please specify a time window of no more than 1 month."}"#;
        assert_eq!(
            classify_body(window, 1000, 0, 1),
            Ok(Window::TooBig {
                reason: "Please specify a time window of no more than 1 month.".into(),
                kept: None,
            })
        );
    }

    /// A trade of the API at `date` (unix seconds) with `id`.
    fn trade(id: i64, date: i64) -> String {
        format!(
            r#"{{"tradeID": {id}, "date": "{}", "type": "sell", "rate": "1", "amount": "1", "total": "1"}}"#,
            crate::domain::utc::format_utc(date)
        )
    }

    #[test]
    fn a_full_page_keeps_the_part_it_covers_completely() {
        // Newest first, as the API answers: seconds 109, 108, 108, 107, 105 (a full page of 5);
        // the oldest second, 105, may hold more trades than the page shows.
        let dated = [(9, 109), (8, 108), (7, 108), (6, 107), (5, 105)];
        let body = format!(
            "[{}]",
            dated
                .iter()
                .map(|&(i, d)| trade(i, d))
                .collect::<Vec<_>>()
                .join(",")
        );
        let Ok(Window::TooBig {
            kept: Some(kept), ..
        }) = classify_body(body.as_bytes(), 5, 100, 109)
        else {
            panic!("a kept page");
        };
        assert_eq!((kept.from, kept.until), (106, 109));
        let ids: Vec<i64> = kept.entries.iter().map(|e| e.trade_id).collect();
        assert_eq!(ids, [6, 7, 8, 9], "oldest first, second 105 left out");
        // Every trade in one second: nothing covered for sure, halve as before.
        let same = format!("[{},{}]", trade(2, 105), trade(1, 105));
        assert!(matches!(
            classify_body(same.as_bytes(), 2, 100, 105),
            Ok(Window::TooBig { kept: None, .. })
        ));
        // A trade that cannot be mapped: no page kept, the halves will say.
        let bad = format!("[{},{}]", trade(2, 108), trade(1, 99));
        assert!(matches!(
            classify_body(bad.as_bytes(), 2, 100, 109),
            Ok(Window::TooBig { kept: None, .. })
        ));
    }

    #[test]
    fn error_objects_are_classified() {
        assert_eq!(
            classify_body(br#"{"error":"Invalid currency pair."}"#, 1000, 0, 1),
            Err(UpstreamError::Permanent("Invalid currency pair.".into()))
        );
        let rate = classify_body(
            br#"{"error":"Please do not make more than 6 API calls per second."}"#,
            1000,
            0,
            1,
        );
        assert_eq!(
            rate,
            Err(UpstreamError::Refused(Refusal::TooMany {
                retry_after: None,
                message: "Please do not make more than 6 API calls per second.".into()
            }))
        );
    }

    #[test]
    fn malformed_bodies_are_transient_with_an_excerpt() {
        for body in [
            &b"[{\"tradeID\": 1, \"da"[..],
            b"<html>bad gateway</html>",
            b"",
            b"{\"foo\": 1}",
        ] {
            let err = classify_body(body, 1000, 0, 1).unwrap_err();
            assert!(err.is_transient(), "{err}");
        }
        let err = classify_body(b"<html>bad gateway</html>", 1000, 0, 1).unwrap_err();
        assert!(err.to_string().contains("<html>bad gateway"), "{err}");
    }

    #[test]
    fn nonsense_trades_are_permanent_errors() {
        let one = |field: &str| {
            let t = format!(
                r#"[{{"tradeID": 7, "date": "2018-10-22 15:03:57", "type": "sell", "rate": "1", "amount": "1", "total": "1", {field}}}]"#
            );
            classify_body(t.replace(", }", "}").as_bytes(), 1000, AT, AT)
        };
        assert!(one("\"x\": 0").is_ok(), "unknown fields are ignored");
        // Ids past 32 bits are ids (the wire is 64-bit).
        let wide = r#"[{"tradeID": 9999999999, "date": "2018-10-22 15:03:57", "type": "buy", "rate": "1", "amount": "1", "total": "1"}]"#;
        let wide = classify_body(wide.as_bytes(), 1000, AT, AT);
        assert!(matches!(wide, Ok(Window::Complete(e)) if e[0].trade_id == 9_999_999_999));
        let bad = [
            r#"[{"tradeID": 7, "date": "2018-13-22 15:03:57", "type": "sell", "rate": "1", "amount": "1", "total": "1"}]"#,
            r#"[{"tradeID": 7, "date": "2018-10-22 15:03:57", "type": "hold", "rate": "1", "amount": "1", "total": "1"}]"#,
            r#"[{"tradeID": 7, "date": "2018-10-22 15:03:58", "type": "buy", "rate": "1", "amount": "1", "total": "1"}]"#,
        ];
        for body in bad {
            let err = classify_body(body.as_bytes(), 1000, AT, AT).unwrap_err();
            assert!(!err.is_transient(), "{body}: {err}");
            assert!(err.to_string().starts_with("trade "), "{err}");
        }
        // Decimals must be strings: a number could already have lost digits in a float.
        let float = r#"[{"tradeID": 7, "date": "2018-10-22 15:03:57", "type": "buy", "rate": 0.1, "amount": "1", "total": "1"}]"#;
        assert!(classify_body(float.as_bytes(), 1000, AT, AT).is_err());
    }

    #[test]
    fn urls_carry_only_validated_parts() {
        let venue = Poloniex::new(&crate::config::Settings::default().upstream);
        let pair = CurrencyPair::parse("BTC_ETH").unwrap();
        assert_eq!(
            venue.url("https://poloniex.com", &pair, 1, 2, None),
            "https://poloniex.com/public?command=returnTradeHistory&currencyPair=BTC_ETH&start=1&end=2"
        );
    }

    #[test]
    fn the_listing_is_the_markets_not_frozen() {
        let venue = Poloniex::new(&crate::config::Settings::default().upstream);
        assert_eq!(
            venue.listing_url("https://poloniex.com"),
            "https://poloniex.com/public?command=returnTicker"
        );
        let body = br#"{"USDT_BTC":{"id":121,"last":"6500.1","isFrozen":"0"},
            "BTC_DEAD":{"id":9,"last":"0.1","isFrozen":"1"},
            "BTC_ETH":{"id":148,"last":"0.03","isFrozen":"0"}}"#;
        assert_eq!(venue.listed_pairs(body).unwrap(), ["BTC_ETH", "USDT_BTC"]);
    }
}

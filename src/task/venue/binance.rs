//! Binance spot, `GET /api/v3/aggTrades?symbol=BTCUSDT&startTime=MS&endTime=MS&limit=N`
//! (docs/upstream.md, "Binance"): aggregate trades, a history served by time window today.
//!
//! Symbols are written together (`BTCUSDT`). A window is asked for in milliseconds,
//! `[from × 1000, until × 1000 + 999]`, of any length (Binance dropped its one-hour limit on
//! 2022-12-05; `upstream.binance.max_window_secs` sets one again); an answer is a JSON list of at
//! most `limit` trades, **oldest first**, `{a, p, q, f, l, T, m, M}`. A full page therefore
//! covers the window from its start to the second before its newest trade. When a full page
//! holds only the window's first second, the next call continues by aggregate id
//! (`fromId=last + 1`), so a second (or a millisecond) with more than a page of trades is
//! reachable trade by trade. Each call costs `weight_per_call` of the address's weight per
//! minute, which every answer reports in `X-MBX-USED-WEIGHT-1M`.
//!
//! Each trade maps onto a `ClonedEntry`: `trade_id` = the aggregate id, `date` its second and
//! `time_ms` its millisecond, `type` the taker's side (a buyer who is the maker means the
//! taker sold), `rate` = price, `amount` = quantity, `total` = price × quantity, exactly.
//!
//! It must never carry a decimal through a float.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::config::UpstreamSettings;
use crate::domain::decimal;
use crate::domain::pair::{CurrencyPair, PairRule};
use crate::proto::{cloned_entry, ClonedEntry};
use crate::task::answer::{excerpt, Kept, PageOrder, UpstreamError, Window};
use crate::task::venue::{Cursor, Reply, Spent, Step, Venue};

/// Aggregate trades come oldest first.
const PAGE_ORDER: PageOrder = PageOrder::OldestFirst;

/// The request weight of `GET /api/v3/exchangeInfo` (Binance's general endpoints page).
const EXCHANGE_INFO_WEIGHT: u32 = 20;

/// Full pages one task gathers by id before it answers with what they cover: 4 000 trades,
/// about 350 KB of result (an aggregate trade is about 85 bytes on the wire), within Kafka's
/// default message size (1 MB) with room to spare.
pub const GATHER_PAGES: usize = 4;

/// The most it gathers to finish a busy second first: 8 000 trades, about 700 KB.
pub const MAX_GATHER_PAGES: usize = 8;

/// The header that reports the address's weight used in the current minute.
const USED_WEIGHT: &str = "x-mbx-used-weight-1m";

/// Binance spot, as configured.
#[derive(Debug, Clone)]
pub struct Binance {
    page_limit: usize,
    /// Unset since Binance dropped its one-hour limit (2022-12-05); kept for a deployment or
    /// a mirror that has one.
    max_window_secs: Option<i64>,
    weight_per_call: u32,
    weight_limit_per_minute: u64,
}

impl Binance {
    pub fn new(settings: &UpstreamSettings) -> Binance {
        Binance {
            page_limit: settings.page_limit,
            max_window_secs: settings.binance.max_window_secs,
            weight_per_call: settings.binance.weight_per_call,
            weight_limit_per_minute: settings.binance.weight_limit_per_minute,
        }
    }
}

/// One aggregate trade; strings borrowed from the body where possible. `M` is not needed.
#[derive(Deserialize)]
struct AggTrade<'a> {
    a: i64,
    #[serde(borrow)]
    p: Cow<'a, str>,
    #[serde(borrow)]
    q: Cow<'a, str>,
    /// The first and last trade id the aggregate stands for: extras, not needed to clone.
    f: Option<i64>,
    l: Option<i64>,
    #[serde(rename = "T")]
    time: i64,
    m: bool,
}

impl Venue for Binance {
    fn name(&self) -> &'static str {
        "binance"
    }

    fn pair_rule(&self) -> PairRule {
        PairRule::JOINED
    }

    fn max_window_secs(&self) -> i64 {
        self.max_window_secs.unwrap_or(i64::MAX)
    }

    fn page_limit(&self) -> usize {
        self.page_limit
    }

    fn page_order(&self) -> PageOrder {
        PAGE_ORDER
    }

    fn pages_per_request(&self) -> usize {
        GATHER_PAGES
    }

    /// Aggregate ids are consecutive per symbol, and `fromId` pages by them.
    fn pages_by_id(&self) -> usize {
        MAX_GATHER_PAGES
    }

    fn budget_per_second(&self) -> f64 {
        self.weight_limit_per_minute as f64 / 60.0
    }

    fn call_cost(&self) -> u32 {
        self.weight_per_call
    }

    fn url(
        &self,
        base_url: &str,
        pair: &CurrencyPair,
        from: i64,
        until: i64,
        cursor: Option<Cursor>,
    ) -> String {
        let limit = Cursor::limit(cursor, self.page_limit);
        match cursor {
            Some(Cursor { from_id, .. }) => {
                format!("{base_url}/api/v3/aggTrades?symbol={pair}&fromId={from_id}&limit={limit}")
            }
            None => format!(
                "{base_url}/api/v3/aggTrades?symbol={pair}&startTime={}&endTime={}&limit={limit}",
                from * 1000,
                until * 1000 + 999
            ),
        }
    }

    fn classify(
        &self,
        reply: &Reply,
        from: i64,
        until: i64,
        gathered: Vec<ClonedEntry>,
        cursor: Option<Cursor>,
    ) -> Result<Step, UpstreamError> {
        classify_body(reply.body, self.page_limit, from, until, gathered, cursor)
    }

    /// `GET /api/v3/exchangeInfo`, weight 20 (Binance's general endpoints, "Exchange
    /// information"): every symbol with its `status`.
    fn listing_url(&self, base_url: &str) -> String {
        format!("{base_url}/api/v3/exchangeInfo")
    }

    fn listing_cost(&self) -> u32 {
        EXCHANGE_INFO_WEIGHT
    }

    /// The symbols whose `status` is `TRADING` (not `HALT` or `BREAK`).
    fn listed_pairs(&self, body: &[u8]) -> Result<Vec<String>, UpstreamError> {
        #[derive(Deserialize)]
        struct Info {
            symbols: Vec<Symbol>,
        }
        #[derive(Deserialize)]
        struct Symbol {
            symbol: String,
            status: String,
        }
        let info: Info = serde_json::from_slice(body).map_err(|e| {
            UpstreamError::Transient(format!(
                "exchangeInfo is not a list of symbols ({e}): {}",
                excerpt(body)
            ))
        })?;
        let mut pairs: Vec<String> = info
            .symbols
            .into_iter()
            .filter(|s| s.status == "TRADING")
            .map(|s| s.symbol)
            .collect();
        pairs.sort();
        Ok(pairs)
    }

    fn spent(&self, reply: &Reply) -> Option<Spent> {
        let used = reply.header(USED_WEIGHT)?.trim().parse().ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        // The weight is counted per minute of the clock; it is whole again at the next one.
        let into_minute = Duration::from_millis((now.as_millis() % 60_000) as u64);
        Some(Spent {
            used,
            limit: self.weight_limit_per_minute,
            resets_in: Duration::from_secs(60) - into_minute,
        })
    }
}

/// Reads a 200 body for `[from, until]` (seconds), after the trades `gathered` from earlier
/// pages, continuing at `cursor`; pure, so every branch is unit-tested.
pub fn classify_body(
    body: &[u8],
    page_limit: usize,
    from: i64,
    until: i64,
    mut gathered: Vec<ClonedEntry>,
    cursor: Option<Cursor>,
) -> Result<Step, UpstreamError> {
    let trades: Vec<AggTrade> = serde_json::from_slice(body).map_err(|e| {
        UpstreamError::Transient(format!(
            "answer is not a list of aggregate trades ({e}): {}",
            excerpt(body)
        ))
    })?;
    let full = trades.len() >= Cursor::limit(cursor, page_limit);
    let until_id = cursor.and_then(|c| c.until_id);
    let end_ms = until * 1000 + 999;
    let mut newest: Option<&AggTrade> = None;
    let mut past_the_end = false;
    let mut past_the_ids = false;
    for t in &trades {
        // Asked by ids, a page may run past them only over a gap in the ids.
        if until_id.is_some_and(|end| t.a >= end) {
            past_the_ids = true;
            break;
        }
        // Continued by id, a page runs on past the window: the window is all there.
        if t.time > end_ms {
            if cursor.is_none() {
                return Err(permanent(t, "after the window asked for"));
            }
            past_the_end = true;
            break;
        }
        if t.time < from * 1000 {
            return Err(permanent(t, "before the window asked for"));
        }
        if let Some(before) = newest {
            if t.a <= before.a || t.time < before.time {
                return Err(permanent(
                    t,
                    "out of order (the venue answers oldest first)",
                ));
            }
        }
        if let Some(c) = cursor {
            if t.a < c.from_id {
                return Err(permanent(t, "before the id asked from"));
            }
        }
        gathered.push(entry(t)?);
        newest = Some(t);
    }
    if past_the_end || (!full && !past_the_ids) {
        return Ok(Step::Done(Window::Complete(gathered)));
    }
    if past_the_ids {
        return Ok(Step::Done(Window::Ids(gathered)));
    }
    let newest = newest.expect("a full page has trades");
    let newest_second = newest.time.div_euclid(1000);
    let next = Cursor {
        from_id: newest.a + 1,
        until_id,
    };
    // Asked by ids: on to their end, however many pages (the request's size is checked before
    // the first call).
    if let Some(end) = until_id {
        if next.from_id >= end {
            return Ok(Step::Done(Window::Ids(gathered)));
        }
        return Ok(Step::More {
            entries: gathered,
            next,
        });
    }
    // A full page inside the window: the next one by id costs a call as asking for the rest by
    // time would, without asking again for the trades of the page's newest second (which a
    // kept part must leave out, since that second may go on), and without a round trip
    // through Kafka. Up to GATHER_PAGES pages, so that a result stays well within a message;
    // up to MAX_GATHER_PAGES while the newest second holds more than a tenth of a page (a busy
    // second), which the kept part would drop and the rest ask for again.
    let in_newest = gathered
        .iter()
        .rev()
        .take_while(|e| e.date == newest_second)
        .count();
    let pages = gathered.len() / page_limit.max(1);
    if pages < GATHER_PAGES || (pages < MAX_GATHER_PAGES && in_newest * 10 > page_limit) {
        return Ok(Step::More {
            entries: gathered,
            next,
        });
    }
    match PAGE_ORDER.covered(from, until, from, newest_second) {
        Some((covered_from, covered_until)) => {
            gathered.retain(|e| e.date <= covered_until);
            Ok(Step::Done(Window::TooBig {
                reason: format!("page limit of {page_limit} trades reached"),
                kept: Some(Kept {
                    from: covered_from,
                    until: covered_until,
                    entries: gathered,
                }),
            }))
        }
        // Every trade so far is in the window's first second: go on by id.
        None => Ok(Step::More {
            entries: gathered,
            next,
        }),
    }
}

fn permanent(t: &AggTrade, what: &str) -> UpstreamError {
    UpstreamError::Permanent(format!("aggregate trade {} at {} ms: {what}", t.a, t.time))
}

fn entry(t: &AggTrade) -> Result<ClonedEntry, UpstreamError> {
    let total = decimal::multiply(&t.p, &t.q).ok_or_else(|| {
        permanent(
            t,
            &format!(
                "price {:?} or quantity {:?} is not a plain decimal",
                t.p, t.q
            ),
        )
    })?;
    // The buyer was the maker: the taker, whose side a trade is, sold.
    let side = if t.m {
        cloned_entry::Type::Sell
    } else {
        cloned_entry::Type::Buy
    };
    Ok(ClonedEntry {
        trade_id: t.a,
        date: t.time.div_euclid(1000),
        r#type: side as i32,
        rate: t.p.to_string(),
        amount: t.q.to_string(),
        total,
        time_ms: Some(t.time),
        first_trade_id: t.f,
        last_trade_id: t.l,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2018-10-22 00:00:00 UTC.
    const DAY: i64 = 1_540_166_400;

    fn trade(a: i64, ms: i64) -> String {
        format!(
            r#"{{"a":{a},"p":"65000.10000000","q":"0.00200000","f":{a},"l":{a},"T":{ms},"m":{},"M":true}}"#,
            a % 2 == 0
        )
    }

    fn body(trades: &[(i64, i64)]) -> String {
        let list: Vec<String> = trades.iter().map(|&(a, ms)| trade(a, ms)).collect();
        format!("[{}]", list.join(","))
    }

    /// The covered part of a step that must be a kept page.
    fn kept_page(step: Step) -> Kept {
        match step {
            Step::Done(Window::TooBig {
                kept: Some(kept), ..
            }) => kept,
            other => panic!("a kept page: {other:?}"),
        }
    }

    /// The trades and the cursor of a step that must go on by id.
    fn more(step: Step) -> (Vec<ClonedEntry>, Cursor) {
        match step {
            Step::More { entries, next } => (entries, next),
            other => panic!("more: {other:?}"),
        }
    }

    fn ids(entries: &[ClonedEntry]) -> Vec<i64> {
        entries.iter().map(|e| e.trade_id).collect()
    }

    #[test]
    fn maps_an_aggregate_trade_exactly() {
        let b = format!("[{}]", trade(3_000_000_001, DAY * 1000 + 123));
        let Ok(Step::Done(Window::Complete(entries))) =
            classify_body(b.as_bytes(), 1000, DAY, DAY + 59, vec![], None)
        else {
            panic!("complete");
        };
        assert_eq!(
            entries,
            vec![ClonedEntry {
                trade_id: 3_000_000_001,
                date: DAY,
                r#type: cloned_entry::Type::Buy as i32,
                rate: "65000.10000000".into(),
                amount: "0.00200000".into(),
                total: "130.0002".into(),
                time_ms: Some(DAY * 1000 + 123),
                first_trade_id: Some(3_000_000_001),
                last_trade_id: Some(3_000_000_001),
            }]
        );
        let maker = format!("[{}]", trade(2, DAY * 1000));
        let Ok(Step::Done(Window::Complete(e))) =
            classify_body(maker.as_bytes(), 1000, DAY, DAY, vec![], None)
        else {
            panic!("complete");
        };
        assert_eq!(
            e[0].r#type,
            cloned_entry::Type::Sell as i32,
            "the buyer made: the taker sold"
        );
    }

    #[test]
    fn full_pages_go_on_by_id_then_cover_up_to_the_second_before_the_newest_trade() {
        // Oldest first, a full page of 4: seconds DAY, DAY+1, DAY+2, DAY+2.
        let page = body(&[
            (10, DAY * 1000 + 5),
            (11, (DAY + 1) * 1000),
            (12, (DAY + 2) * 1000 + 1),
            (13, (DAY + 2) * 1000 + 900),
        ]);
        // The first full page: the next one by id, nothing dropped.
        let (entries, next) =
            more(classify_body(page.as_bytes(), 4, DAY, DAY + 99, vec![], None).unwrap());
        assert_eq!(
            next,
            Cursor {
                from_id: 14,
                until_id: None
            }
        );
        assert_eq!(ids(&entries), [10, 11, 12, 13]);
        let earlier = |pages: usize| -> Vec<ClonedEntry> {
            (0..pages as i64 * 4)
                .map(|id| ClonedEntry {
                    trade_id: id - 100,
                    date: DAY,
                    ..Default::default()
                })
                .collect()
        };
        let cursor = Some(Cursor {
            from_id: 10,
            until_id: None,
        });
        // GATHER_PAGES full pages, but the newest second holds half a page: on, to finish it.
        let busy = classify_body(
            page.as_bytes(),
            4,
            DAY,
            DAY + 99,
            earlier(GATHER_PAGES - 1),
            cursor,
        );
        assert!(matches!(busy, Ok(Step::More { .. })), "{busy:?}");
        // MAX_GATHER_PAGES full pages end the task: kept up to the second before the newest
        // trade, which may go on.
        let n = (MAX_GATHER_PAGES - 1) * 4;
        let step = classify_body(
            page.as_bytes(),
            4,
            DAY,
            DAY + 99,
            earlier(MAX_GATHER_PAGES - 1),
            cursor,
        )
        .unwrap();
        let kept = kept_page(step);
        assert_eq!((kept.from, kept.until), (DAY, DAY + 1));
        assert_eq!(kept.entries.len(), n + 2);
        assert_eq!(ids(&kept.entries[n..]), [10, 11], "second DAY+2 may go on");
        // Not full: the window is complete.
        let step = classify_body(page.as_bytes(), 5, DAY, DAY + 99, vec![], None).unwrap();
        assert!(matches!(step, Step::Done(Window::Complete(e)) if e.len() == 4));
    }

    #[test]
    fn a_first_second_of_more_than_a_page_goes_on_by_id_until_the_window_is_covered() {
        let ms = DAY * 1000 + 7;
        // A page all in one millisecond: go on from the next id.
        let first = body(&[(100, ms), (101, ms), (102, ms)]);
        let (entries, next) =
            more(classify_body(first.as_bytes(), 3, DAY, DAY + 9, vec![], None).unwrap());
        assert_eq!(
            next,
            Cursor {
                from_id: 103,
                until_id: None
            }
        );
        // The next page, by id: the millisecond goes on, then a later second; full: on by id.
        let second = body(&[(103, ms), (104, ms + 2000), (105, ms + 2001)]);
        let (entries, next) =
            more(classify_body(second.as_bytes(), 3, DAY, DAY + 9, entries, Some(next)).unwrap());
        assert_eq!(
            next,
            Cursor {
                from_id: 106,
                until_id: None
            }
        );
        // By id, a page that runs past the window: the window is complete, the rest dropped.
        let third = body(&[(106, ms + 3000), (107, (DAY + 10) * 1000)]);
        let step = classify_body(third.as_bytes(), 3, DAY, DAY + 9, entries, Some(next)).unwrap();
        assert!(
            matches!(step, Step::Done(Window::Complete(e)) if ids(&e) == [100, 101, 102, 103, 104, 105, 106])
        );
    }

    #[test]
    fn asked_by_ids_pages_end_at_the_last_id_or_the_window_end() {
        let at = |s: i64| DAY * 1000 + s * 1000;
        let ids_of = |step: Step| match step {
            Step::Done(Window::Ids(e)) => ids(&e),
            other => panic!("the ids asked for: {other:?}"),
        };
        // 6 ids at pages of 4: a full page, then one of the 2 left, which ends the ids.
        let cursor = Some(Cursor {
            from_id: 10,
            until_id: Some(16),
        });
        assert_eq!(Cursor::limit(cursor, 4), 4);
        let first = body(&[(10, at(1)), (11, at(1)), (12, at(2)), (13, at(3))]);
        let (entries, next) =
            more(classify_body(first.as_bytes(), 4, DAY, DAY + 99, vec![], cursor).unwrap());
        assert_eq!(
            next,
            Cursor {
                from_id: 14,
                until_id: Some(16)
            }
        );
        assert_eq!(Cursor::limit(Some(next), 4), 2);
        let second = body(&[(14, at(4)), (15, at(4))]);
        let step = classify_body(second.as_bytes(), 4, DAY, DAY + 99, entries, Some(next));
        assert_eq!(ids_of(step.unwrap()), [10, 11, 12, 13, 14, 15]);
        // Ids missing at the venue: the page runs past the last id asked, which is dropped.
        let gap = Some(Cursor {
            from_id: 10,
            until_id: Some(14),
        });
        let page = body(&[(10, at(1)), (12, at(2)), (13, at(3)), (15, at(4))]);
        let step = classify_body(page.as_bytes(), 4, DAY, DAY + 99, vec![], gap);
        assert_eq!(ids_of(step.unwrap()), [10, 12, 13]);
        // The window ends first: complete, the later trade dropped.
        let page = body(&[(10, at(1)), (11, at(100))]);
        let step = classify_body(page.as_bytes(), 4, DAY, DAY + 99, vec![], gap).unwrap();
        assert!(matches!(step, Step::Done(Window::Complete(e)) if ids(&e) == [10]));
        // A page short of the ids asked: the venue has no more, complete.
        let page = body(&[(10, at(1)), (11, at(2))]);
        let step = classify_body(page.as_bytes(), 4, DAY, DAY + 99, vec![], gap).unwrap();
        assert!(matches!(step, Step::Done(Window::Complete(e)) if ids(&e) == [10, 11]));
    }

    #[test]
    fn nonsense_is_refused() {
        let outside = body(&[(1, (DAY + 10) * 1000)]);
        let err = classify_body(outside.as_bytes(), 10, DAY, DAY + 9, vec![], None).unwrap_err();
        assert!(
            !err.is_transient() && err.to_string().contains("after the window"),
            "{err}"
        );
        let backwards = body(&[(2, DAY * 1000), (1, DAY * 1000 + 1)]);
        let err = classify_body(backwards.as_bytes(), 10, DAY, DAY + 9, vec![], None).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
        let float = format!(
            r#"[{{"a":1,"p":0.1,"q":"1","f":1,"l":1,"T":{},"m":true,"M":true}}]"#,
            DAY * 1000
        );
        assert!(classify_body(float.as_bytes(), 10, DAY, DAY, vec![], None).is_err());
        let exponent = format!(
            r#"[{{"a":1,"p":"1e5","q":"1","f":1,"l":1,"T":{},"m":true,"M":true}}]"#,
            DAY * 1000
        );
        let err = classify_body(exponent.as_bytes(), 10, DAY, DAY, vec![], None).unwrap_err();
        assert!(err.to_string().contains("not a plain decimal"), "{err}");
        let html = classify_body(b"<html>", 10, DAY, DAY, vec![], None).unwrap_err();
        assert!(html.is_transient());
        assert!(matches!(
            classify_body(b"[]", 10, DAY, DAY, vec![], None),
            Ok(Step::Done(Window::Complete(e))) if e.is_empty()
        ));
    }

    #[test]
    fn urls_and_the_weight_header() {
        let mut settings = crate::config::Settings::default().upstream;
        settings.venue = crate::config::VenueName::Binance;
        let venue = Binance::new(&settings);
        let pair = CurrencyPair::parse_with("BTCUSDT", PairRule::JOINED).unwrap();
        assert_eq!(
            venue.url("https://api.binance.com", &pair, DAY, DAY + 3599, None),
            format!(
                "https://api.binance.com/api/v3/aggTrades?symbol=BTCUSDT&startTime={}&endTime={}&limit=1000",
                DAY * 1000,
                DAY * 1000 + 3_599_999
            )
        );
        assert_eq!(
            venue.url(
                "http://x",
                &pair,
                DAY,
                DAY,
                Some(Cursor {
                    from_id: 42,
                    until_id: None
                })
            ),
            "http://x/api/v3/aggTrades?symbol=BTCUSDT&fromId=42&limit=1000"
        );
        // Asked by ids, a call asks for the ids left only.
        let ids = Some(Cursor {
            from_id: 42,
            until_id: Some(45),
        });
        assert_eq!(
            venue.url("http://x", &pair, DAY, DAY, ids),
            "http://x/api/v3/aggTrades?symbol=BTCUSDT&fromId=42&limit=3"
        );
        let headers = vec![(USED_WEIGHT.to_string(), "5998".to_string())];
        let reply = Reply {
            status: 200,
            headers: &headers,
            body: b"[]",
        };
        let spent = venue.spent(&reply).unwrap();
        assert_eq!((spent.used, spent.limit), (5998, 6000));
        assert!(spent.resets_in <= Duration::from_secs(60));
    }

    #[test]
    fn the_listing_is_the_symbols_trading_now() {
        let mut settings = crate::config::Settings::default().upstream;
        settings.venue = crate::config::VenueName::Binance;
        let venue = Binance::new(&settings);
        assert_eq!(
            venue.listing_url("https://api.binance.com"),
            "https://api.binance.com/api/v3/exchangeInfo"
        );
        let body = br#"{"timezone":"UTC","symbols":[
            {"symbol":"ETHUSDT","status":"TRADING","baseAsset":"ETH"},
            {"symbol":"LUNAUSDT","status":"BREAK"},
            {"symbol":"BTCUSDT","status":"TRADING"},
            {"symbol":"XYZBTC","status":"HALT"}]}"#;
        assert_eq!(venue.listed_pairs(body).unwrap(), ["BTCUSDT", "ETHUSDT"]);
        assert!(matches!(
            venue.listed_pairs(b"<html>"),
            Err(UpstreamError::Transient(_))
        ));
    }
}

//! The upstream: the Poloniex-style public API, `returnTradeHistory`, over awc.
//!
//! One call per [`Upstream::trade_history`]: no retries here (the caller retries, through the
//! rate limiter). The answer is classified for the caller: a window's trades, a window too big
//! for one call, or an error that is [`UpstreamError::Transient`] (worth another try) or
//! [`UpstreamError::Permanent`] (not). Bodies are size-limited and every call has a timeout.
//!
//! It must never put an unvalidated pair into a URL (it takes a [`CurrencyPair`]) and never
//! carry a decimal through a float: rate, amount and total stay the strings the API sent.

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use crate::config::UpstreamSettings;
use crate::domain::pair::CurrencyPair;
use crate::domain::utc::parse_utc_datetime;
use crate::proto::{cloned_entry, ClonedEntry};

/// How much of an unexpected body goes into an error message.
const BODY_EXCERPT: usize = 200;

/// What one call says about a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// Every trade of the window, oldest first.
    Complete(Vec<ClonedEntry>),
    /// More trades than one call returns, or a window the API refuses as too long.
    TooBig {
        reason: String,
        /// The part of the window the full page covered completely, with its trades: only the
        /// rest needs asking for. `None` when the page covered nothing new (more than a page of
        /// trades in one second) or there was no page.
        kept: Option<Kept>,
    },
}

/// The trades of `[from, until]`, a part of the window asked for, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub from: i64,
    pub until: i64,
    pub entries: Vec<ClonedEntry>,
}

/// Which trades of a window an exchange puts in a page when the window holds more than a
/// page: this decides which end of the window a full page covers completely. It is the
/// upstream's to state, not the requester's to assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOrder {
    /// The newest trades (Poloniex): a full page whose oldest trade is at second `s` holds every
    /// trade after `s`, but trades of `s` itself may go on past the page.
    NewestFirst,
    /// The oldest trades: a full page whose newest trade is at `s` holds every trade before `s`.
    OldestFirst,
}

impl PageOrder {
    /// The part of `[from, until]` a full page spanning the seconds `[oldest, newest]` covers
    /// completely; `None` if none (the page's edge second is the window's own edge).
    pub fn covered(self, from: i64, until: i64, oldest: i64, newest: i64) -> Option<(i64, i64)> {
        match self {
            PageOrder::NewestFirst => (oldest < until).then_some((oldest + 1, until)),
            PageOrder::OldestFirst => (newest > from).then_some((from, newest - 1)),
        }
    }
}

/// Poloniex's `returnTradeHistory` answers newest first.
pub const PAGE_ORDER: PageOrder = PageOrder::NewestFirst;

/// A call that did not describe the window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Timeouts, connection failures, 5xx, malformed or oversized bodies: try again later.
    #[error("transient upstream failure: {0}")]
    Transient(String),
    /// The API refused the request for good (unknown pair, bad request) or answered nonsense.
    #[error("{0}")]
    Permanent(String),
    /// The exchange refused the call because of the caller's rate, not the chunk: every caller
    /// must slow down or wait, and the chunk be tried again.
    #[error("{0}")]
    Refused(Refusal),
}

/// Push-back from the exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// HTTP 429, or the API's "Please do not make more than N API calls per second".
    #[error("too many calls{}: {message}", wait_for(.retry_after))]
    TooMany {
        /// `Retry-After`, when the exchange said how long to wait.
        retry_after: Option<Duration>,
        message: String,
    },
    /// HTTP 403 or 418: this address is banned for a while.
    #[error("HTTP {status}, this address is banned{}: {message}", wait_for(.retry_after))]
    Banned {
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
}

fn wait_for(retry_after: &Option<Duration>) -> String {
    retry_after.map_or(String::new(), |d| {
        format!(" (retry after {} s)", d.as_secs())
    })
}

impl UpstreamError {
    /// Worth another try by this chunk alone (push-back is not: it concerns every caller).
    pub fn is_transient(&self) -> bool {
        matches!(self, UpstreamError::Transient(_))
    }
}

/// One call's result, and whether the upstream answered it at all: any HTTP status is an
/// answer, a transport failure (no connection, no response in time) is not. Readiness wants
/// the difference, which [`UpstreamError::Transient`] does not keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Called {
    /// An HTTP status came back (whatever it was): the upstream is there.
    pub answered: bool,
    /// What the call says about the window, as [`Upstream::trade_history`] returns it.
    pub result: Result<Window, UpstreamError>,
}

pub struct Upstream {
    /// Not `Send`: one client per arbiter, shared by that arbiter's workers (one pool).
    client: awc::Client,
    /// Without a trailing `/`.
    base_url: String,
    page_limit: usize,
    max_body_bytes: usize,
}

impl Upstream {
    pub fn new(settings: &UpstreamSettings) -> Upstream {
        let timeout = settings.request_timeout();
        let connector = awc::Connector::new()
            .timeout(timeout)
            .rustls_0_23(Arc::new(tls_config()))
            // Enough connections for every worker of a big pool to have its own.
            .limit(1024);
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .add_default_header((
                "User-Agent",
                concat!("cloner-worker/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        Upstream {
            client,
            base_url: settings.base_url.trim_end_matches('/').to_string(),
            page_limit: settings.page_limit,
            max_body_bytes: settings.max_body_bytes,
        }
    }

    /// The URL of one `returnTradeHistory` call; the pair is validated, the rest are numbers.
    pub fn url(&self, pair: &CurrencyPair, from: i64, until: i64) -> String {
        format!(
            "{}/public?command=returnTradeHistory&currencyPair={pair}&start={from}&end={until}",
            self.base_url
        )
    }

    /// One call for the trades of `pair` in `[from, until]` (inclusive).
    pub async fn trade_history(
        &self,
        pair: &CurrencyPair,
        from: i64,
        until: i64,
    ) -> Result<Window, UpstreamError> {
        self.call(pair, from, until).await.result
    }

    /// [`Upstream::trade_history`], saying also whether the upstream answered.
    pub async fn call(&self, pair: &CurrencyPair, from: i64, until: i64) -> Called {
        let url = self.url(pair, from, until);
        let response = self
            .client
            .get(&url)
            .insert_header(("Accept", "application/json"))
            .send()
            .await;
        match response {
            Ok(response) => Called {
                answered: true,
                result: self.read_answer(response, &url, from, until).await,
            },
            Err(e) => Called {
                answered: false,
                result: Err(UpstreamError::Transient(format!("GET {url}: {e}"))),
            },
        }
    }

    /// Classifies an HTTP answer: its status, then its body.
    async fn read_answer<S>(
        &self,
        mut response: awc::ClientResponse<S>,
        url: &str,
        from: i64,
        until: i64,
    ) -> Result<Window, UpstreamError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    {
        let status = response.status();
        let body = response
            .body()
            .limit(self.max_body_bytes)
            .await
            .map_err(|e| match e {
                awc::error::PayloadError::Overflow => UpstreamError::Transient(format!(
                    "body larger than {} bytes",
                    self.max_body_bytes
                )),
                e => UpstreamError::Transient(format!("reading the body of GET {url}: {e}")),
            })?;
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok());
        if let Some(error) = classify_status(status.as_u16(), retry_after, &body) {
            return Err(error);
        }
        classify_body(&body, self.page_limit, from, until)
    }
}

/// Classifies an HTTP status that is not a success: push-back, worth another try, or final.
/// `None` for a success (the body says the rest).
pub fn classify_status(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> Option<UpstreamError> {
    let message = || format!("HTTP {status}: {}", excerpt(body));
    // Seconds only; an HTTP date (rare from APIs) counts as not said.
    let retry_after = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match status {
        200..=299 => None,
        429 => Some(UpstreamError::Refused(Refusal::TooMany {
            retry_after,
            message: message(),
        })),
        403 | 418 => Some(UpstreamError::Refused(Refusal::Banned {
            status,
            retry_after,
            message: message(),
        })),
        500..=599 => Some(UpstreamError::Transient(message())),
        _ => Some(UpstreamError::Permanent(message())),
    }
}

/// TLS for https upstreams: rustls with the ring provider and the Mozilla roots.
fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
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
    })
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT)]);
    if body.len() > BODY_EXCERPT {
        format!("{text}… ({} bytes)", body.len())
    } else {
        text.into_owned()
    }
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
    fn the_page_order_decides_which_end_is_covered() {
        assert_eq!(
            PageOrder::NewestFirst.covered(100, 109, 105, 109),
            Some((106, 109))
        );
        assert_eq!(PageOrder::NewestFirst.covered(100, 109, 109, 109), None);
        assert_eq!(
            PageOrder::OldestFirst.covered(100, 109, 100, 104),
            Some((100, 103))
        );
        assert_eq!(PageOrder::OldestFirst.covered(100, 109, 100, 100), None);
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
    fn statuses_are_classified_and_retry_after_read() {
        let refused = |status, retry_after| match classify_status(status, retry_after, b"no") {
            Some(UpstreamError::Refused(r)) => r,
            other => panic!("{status}: {other:?}"),
        };
        assert_eq!(
            refused(429, Some("2")),
            Refusal::TooMany {
                retry_after: Some(Duration::from_secs(2)),
                message: "HTTP 429: no".into()
            }
        );
        assert!(matches!(
            refused(429, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Refusal::TooMany {
                retry_after: None,
                ..
            }
        ));
        for status in [403, 418] {
            assert!(matches!(
                refused(status, Some(" 120 ")),
                Refusal::Banned { retry_after: Some(d), .. } if d == Duration::from_secs(120)
            ));
        }
        assert!(classify_status(200, None, b"").is_none());
        assert!(classify_status(503, Some("5"), b"").unwrap().is_transient());
        assert!(matches!(
            classify_status(404, None, b""),
            Some(UpstreamError::Permanent(_))
        ));
        assert_eq!(
            refused(418, None).to_string(),
            "HTTP 418, this address is banned: HTTP 418: no"
        );
        assert_eq!(
            refused(429, Some("3")).to_string(),
            "too many calls (retry after 3 s): HTTP 429: no"
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
        let mut s = crate::config::Settings::default().upstream;
        s.base_url = "https://poloniex.com/".into();
        let up = Upstream::new(&s);
        let pair = CurrencyPair::parse("BTC_ETH").unwrap();
        assert_eq!(
            up.url(&pair, 1, 2),
            "https://poloniex.com/public?command=returnTradeHistory&currencyPair=BTC_ETH&start=1&end=2"
        );
    }
}

//! The upstream: the configured venue's public trade history ([`crate::task::venue`]), over
//! awc.
//!
//! One HTTP call per [`Upstream::call`]: no retries here (the caller retries, through the
//! rate limiter). The answer is classified for the caller, by its status here and by the
//! venue for the rest: a window's trades, a window too big for one call, a page to continue,
//! push-back, or an error that is [`UpstreamError::Transient`] (worth another try) or
//! [`UpstreamError::Permanent`] (not). Bodies are size-limited and every call has a timeout.
//!
//! It must never put an unvalidated pair into a URL (it takes a [`CurrencyPair`]).

use std::sync::Arc;
use std::time::Duration;

use crate::config::UpstreamSettings;
use crate::domain::pair::CurrencyPair;
use crate::proto::ClonedEntry;
pub use crate::task::answer::{excerpt, Kept, PageOrder, Refusal, UpstreamError, Window};
use crate::task::venue::{Cursor, Reply, Spent, Step, Venue};

/// One call's result, and whether the upstream answered it at all: any HTTP status is an
/// answer, a transport failure (no connection, no response in time) is not. Readiness wants
/// the difference, which [`UpstreamError::Transient`] does not keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Called {
    /// An HTTP status came back (whatever it was): the upstream is there.
    pub answered: bool,
    /// What the call says about the window.
    pub result: Result<Step, UpstreamError>,
    /// The budget the venue says is spent, if it says.
    pub spent: Option<Spent>,
}

pub struct Upstream {
    /// Not `Send`: one client per arbiter, shared by that arbiter's workers (one pool).
    client: awc::Client,
    /// What is called, and how its answers read: built once at start, shared.
    venue: Arc<dyn Venue>,
    /// Without a trailing `/`.
    base_url: String,
    max_body_bytes: usize,
}

impl Upstream {
    /// A client of `venue` as `settings` say (timeout, base URL, body limit).
    pub fn new(settings: &UpstreamSettings, venue: Arc<dyn Venue>) -> Upstream {
        let timeout = settings.request_timeout();
        let mut connector = awc::Connector::new();
        if let Some(addr) = settings.local_address {
            connector = connector.local_address(addr);
        }
        let connector = connector
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
            venue,
            base_url: settings.base_url().trim_end_matches('/').to_string(),
            max_body_bytes: settings.max_body_bytes,
        }
    }

    /// The venue called.
    pub fn venue(&self) -> &dyn Venue {
        self.venue.as_ref()
    }

    /// The URL of one call, built by the venue; the pair is validated, the rest are numbers.
    pub fn url(
        &self,
        pair: &CurrencyPair,
        from: i64,
        until: i64,
        cursor: Option<Cursor>,
    ) -> String {
        self.venue.url(&self.base_url, pair, from, until, cursor)
    }

    /// Every trade of `pair` in `[from, until]` (inclusive) that one call and the pages that
    /// continue it give (no retries, no rate limit: for the console and tests).
    pub async fn trade_history(
        &self,
        pair: &CurrencyPair,
        from: i64,
        until: i64,
    ) -> Result<Window, UpstreamError> {
        let (mut gathered, mut cursor) = (Vec::new(), None);
        loop {
            match self
                .call(pair, from, until, gathered, cursor)
                .await
                .result?
            {
                Step::Done(window) => return Ok(window),
                Step::More { entries, next } => {
                    gathered = entries;
                    cursor = Some(next);
                }
            }
        }
    }

    /// One call for `[from, until]` (continuing at `cursor`, after the trades `gathered` so
    /// far). A window longer than the venue allows is answered [`Window::TooBig`] at once.
    pub async fn call(
        &self,
        pair: &CurrencyPair,
        from: i64,
        until: i64,
        gathered: Vec<ClonedEntry>,
        cursor: Option<Cursor>,
    ) -> Called {
        let max = self.venue.max_window_secs();
        if until - from + 1 > max {
            return Called {
                answered: true,
                result: Ok(Step::Done(Window::TooBig {
                    reason: format!(
                        "{} answers windows of at most {max} s; this one is {} s",
                        self.venue.name(),
                        until - from + 1
                    ),
                    kept: None,
                })),
                spent: None,
            };
        }
        let url = self.url(pair, from, until, cursor);
        let response = self
            .client
            .get(&url)
            .insert_header(("Accept", "application/json"))
            .send()
            .await;
        match response {
            Ok(response) => {
                let (result, spent) = self
                    .read_answer(response, &url, from, until, gathered, cursor)
                    .await;
                Called {
                    answered: true,
                    result,
                    spent,
                }
            }
            Err(e) => Called {
                answered: false,
                result: Err(UpstreamError::Transient(format!("GET {url}: {e}"))),
                spent: None,
            },
        }
    }

    /// The pairs the venue lists as trading (its listing call, [`Venue::listing_url`]); no
    /// retries and no rate limit: one call at the start of `clone --all`.
    pub async fn list_pairs(&self) -> Result<Vec<String>, UpstreamError> {
        let url = self.venue.listing_url(&self.base_url);
        let mut response = self
            .client
            .get(&url)
            .insert_header(("Accept", "application/json"))
            .send()
            .await
            .map_err(|e| UpstreamError::Transient(format!("GET {url}: {e}")))?;
        // Every market of a venue fits well under this (Binance's exchangeInfo: a few MB).
        let body =
            response.body().limit(64 << 20).await.map_err(|e| {
                UpstreamError::Transient(format!("reading the body of GET {url}: {e}"))
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(error) = classify_status(status, retry_after.as_deref(), &body) {
            return Err(error);
        }
        self.venue.listed_pairs(&body)
    }

    /// Classifies an HTTP answer: its status, then (or for a venue whose error bodies say
    /// more) its body, by the venue.
    async fn read_answer<S>(
        &self,
        mut response: awc::ClientResponse<S>,
        url: &str,
        from: i64,
        until: i64,
        gathered: Vec<ClonedEntry>,
        cursor: Option<Cursor>,
    ) -> (Result<Step, UpstreamError>, Option<Spent>)
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    {
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    name.as_str().to_ascii_lowercase(),
                    value.to_str().ok()?.to_string(),
                ))
            })
            .collect();
        let body = match response.body().limit(self.max_body_bytes).await {
            Ok(body) => body,
            Err(awc::error::PayloadError::Overflow) => {
                let e = format!("body larger than {} bytes", self.max_body_bytes);
                return (Err(UpstreamError::Transient(e)), None);
            }
            Err(e) => {
                let e = format!("reading the body of GET {url}: {e}");
                return (Err(UpstreamError::Transient(e)), None);
            }
        };
        let reply = Reply {
            status,
            headers: &headers,
            body: &body,
        };
        let spent = self.venue.spent(&reply);
        if let Some(error) = classify_status(status, reply.header("retry-after"), &body) {
            return (Err(error), spent);
        }
        let result = self.venue.classify(&reply, from, until, gathered, cursor);
        (result, spent)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! What one upstream call says about a window, in the words both sides use: the venue that
//! reads an answer ([`crate::task::venue`]) and the task that acts on it
//! ([`crate::task::chunk_task`]). Here so that neither the venues nor the HTTP client
//! ([`crate::task::upstream`]) need the other's module for them.
//!
//! It must never do I/O: these are values.

use std::time::Duration;

use crate::proto::ClonedEntry;

/// How much of an unexpected body goes into an error message.
const BODY_EXCERPT: usize = 200;

/// What one call says about a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// Every trade of the window, oldest first.
    Complete(Vec<ClonedEntry>),
    /// Every trade of the ids asked for (a request by trade ids, which ended at its last id
    /// before the window's end), oldest first.
    Ids(Vec<ClonedEntry>),
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

/// The start of a body, for error messages.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT)]);
    if body.len() > BODY_EXCERPT {
        format!("{text}… ({} bytes)", body.len())
    } else {
        text.into_owned()
    }
}

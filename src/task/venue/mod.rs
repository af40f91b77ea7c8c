//! Venues: what differs between exchanges that serve their public trade history, behind one
//! trait, so that the rest of the service (the limiter, the tasks, the clone) knows none of them.
//!
//! A [`Venue`] says how a pair is spelled, how long a window one call may ask for, what a call
//! costs in the limiter's unit, how a request is built, and how an answer is read: a window's
//! trades, a full page that covers part of the window ([`Window::TooBig`] with its covered
//! part, per the venue's own [`crate::task::answer::PageOrder`]), a page that covers no whole second yet and continues
//! ([`Step::More`]), or an error that is worth another try or not. The HTTP itself is
//! [`crate::task::upstream::Upstream`]'s.
//!
//! - [`poloniex`]: Poloniex's legacy `returnTradeHistory` (the original service's upstream).
//! - [`binance`]: Binance spot `GET /api/v3/aggTrades`.
//!
//! Adding a venue is a file here and a line in [`from_settings`]. A venue must never build a
//! URL from anything but a validated [`CurrencyPair`] and numbers, nor carry a decimal through
//! a float.

pub mod binance;
pub mod poloniex;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{UpstreamSettings, VenueName};
use crate::domain::pair::{CurrencyPair, PairRule};
use crate::proto::ClonedEntry;
use crate::task::answer::{PageOrder, UpstreamError, Window};

/// One HTTP answer, as a venue reads it.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    pub status: u16,
    /// Header names in lower case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Reply<'_> {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where the next call of a window continues, when a full page covered no whole second or the
/// request asks by trade ids: the venue's own finer position (Binance: the next aggregate id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub from_id: i64,
    /// The request's end, exclusive (TodoChunk's `until_trade_id`); `None`: the window's end.
    pub until_id: Option<i64>,
}

impl Cursor {
    /// The trades the next call asks for: a page, or fewer when the ids asked for end sooner
    /// (so that a request by ids never pays for trades past its end).
    pub fn limit(cursor: Option<Cursor>, page_limit: usize) -> usize {
        match cursor {
            Some(Cursor {
                from_id,
                until_id: Some(until),
            }) => usize::try_from(until - from_id).map_or(1, |left| left.clamp(1, page_limit)),
            _ => page_limit,
        }
    }
}

/// What one call says about a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The window is answered: complete, or too big with the part its pages covered.
    Done(Window),
    /// A full page that covers no whole second yet (more than a page of trades in the
    /// window's first second): its trades, oldest first, and where the next call continues.
    More {
        entries: Vec<ClonedEntry>,
        next: Cursor,
    },
}

/// The budget the venue reports spent, from an answer's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// Used in the venue's current interval, in its unit (this call included).
    pub used: u64,
    /// The venue's limit for the interval.
    pub limit: u64,
    /// Until the interval ends and the budget is whole again.
    pub resets_in: Duration,
}

/// An exchange's public trade history, as the service calls it.
pub trait Venue: Send + Sync {
    /// `poloniex`, `binance`: for logs and errors.
    fn name(&self) -> &'static str;

    /// How the venue spells a pair.
    fn pair_rule(&self) -> PairRule;

    /// The longest window, in seconds, one call may ask for; longer ones are answered
    /// [`Window::TooBig`] without a call.
    fn max_window_secs(&self) -> i64;

    /// The most trades one call returns.
    fn page_limit(&self) -> usize;

    /// Which trades of a window a full page holds: the oldest or the newest.
    fn page_order(&self) -> PageOrder;

    /// Full pages one request gathers before it answers (Binance goes on by id): one by
    /// default.
    fn pages_per_request(&self) -> usize {
        1
    }

    /// The most pages a request by trade ids (TodoChunk's `from_trade_id`, `until_trade_id`)
    /// may hold; 0 on a venue whose API cannot page by id or whose ids are not consecutive.
    fn pages_by_id(&self) -> usize {
        0
    }

    /// What one call costs in the venue's budget unit (calls: 1; Binance: its request
    /// weight). The limiter spaces calls by it.
    fn call_cost(&self) -> u32;

    /// The venue's whole budget per second, in its unit: `default_rate` when that is unset.
    fn budget_per_second(&self) -> f64;

    /// The URL of one call for `[from, until]` (inclusive unix seconds), continuing at
    /// `cursor` if given.
    fn url(
        &self,
        base_url: &str,
        pair: &CurrencyPair,
        from: i64,
        until: i64,
        cursor: Option<Cursor>,
    ) -> String;

    /// Reads an answer for `[from, until]`. `gathered`: the trades of the earlier pages of this
    /// window ([`Step::More`]), which a final step includes. Errors: HTTP statuses are
    /// classified by the caller first ([`crate::task::upstream::classify_status`]), unless the
    /// venue's own error body says more.
    fn classify(
        &self,
        reply: &Reply,
        from: i64,
        until: i64,
        gathered: Vec<ClonedEntry>,
        cursor: Option<Cursor>,
    ) -> Result<Step, UpstreamError>;

    /// What the answer says of the budget spent, if the venue says.
    fn spent(&self, _reply: &Reply) -> Option<Spent> {
        None
    }

    /// The URL of the venue's own list of its pairs (`clone --all`).
    fn listing_url(&self, base_url: &str) -> String;

    /// What the listing call costs in the venue's budget unit.
    fn listing_cost(&self) -> u32;

    /// The pairs the listing says trade now, as the venue spells them, sorted.
    fn listed_pairs(&self, body: &[u8]) -> Result<Vec<String>, UpstreamError>;
}

/// The venue `settings.venue` names, built once at start and handed to what calls it (the
/// pool's tasks, the clone's planner, the consumer's pair check).
pub fn from_settings(settings: &UpstreamSettings) -> Arc<dyn Venue> {
    match settings.venue {
        VenueName::Poloniex => Arc::new(poloniex::Poloniex::new(settings)),
        VenueName::Binance => Arc::new(binance::Binance::new(settings)),
    }
}

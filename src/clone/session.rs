//! What every pair of one clone run shares: the connection to the cluster (the producer, the
//! reader of the finished topic and its [`ResultWaiter`]), the [`Asker`] with its view of the
//! service's backlog, the venue's rules, and how many windows may be in flight.
//!
//! One session per run, however many pairs: one reader of the results, one budget's worth of
//! requests in flight. It must never read the finished topic from before it started (every
//! answer to this run comes after), nor publish before its reader is at the end.

use std::cell::Cell;
use std::sync::Arc;

use actix::Addr;

use crate::clone::asker::Asker;
use crate::clone::group_progress::GroupProgress;
use crate::clone::requester::{self, TopicReader};
use crate::clone::result_waiter::{GetWaiterStats, ResultWaiter, WaiterStats};
use crate::clone::spread::Spread;
use crate::clone::window::{self, PlanError, Planner};
use crate::config::{KafkaRole, Settings};
use crate::kafka::client;
use crate::service::checks::CHECK_TIMEOUT;
use crate::task::answer::PageOrder;
use crate::task::venue::Venue;

/// Pages a request by ids asks for: few, since what is in flight when a run is killed is asked
/// again by the next (the service still answers it, for nobody), and enough that the requests
/// in flight keep the budget busy through Kafka's round trips.
pub const ID_BLOCK_PAGES: usize = 1;

/// A run's shared parts.
pub struct Session<'a> {
    pub asker: Asker<'a>,
    pub waiter: Addr<ResultWaiter>,
    /// Windows asked for at once, across every pair ([`window::lanes`]).
    pub lanes: usize,
    /// The venue called: its longest window and its page size size the plans.
    pub venue: Arc<dyn Venue>,
    settings: &'a Settings,
}

impl<'a> Session<'a> {
    /// Checks the topics, connects, and reads the finished topic from its current end.
    pub async fn connect(settings: &'a Settings) -> anyhow::Result<Session<'a>> {
        // Before the producer: settings the cluster refuses fail here at once (see check_topics).
        let metadata = client::check_topics(
            &settings.kafka,
            KafkaRole::Producer,
            &[&settings.topics.todo, &settings.topics.finished],
            CHECK_TIMEOUT,
        )?;
        let producer = requester::producer(settings)?;
        let todo_partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == settings.topics.todo)
            .map_or(0, |t| t.partitions().len());
        // The limiter's pace tells how long the requests ahead of one take.
        let rate = (!settings.rate_limiter.unlimited).then_some(settings.calls_per_second());
        let venue = crate::task::venue::from_settings(&settings.upstream);
        let lanes = window::lanes(todo_partitions, rate, venue.pages_per_request());
        // Every answer to this run comes after the current end, and nothing older is read.
        let reader = TopicReader::at_end(&settings.kafka, &settings.topics.finished)?;
        let waiter = ResultWaiter::reading(reader);
        // One id per run: results of other runs, even of the same windows, belong to nobody here.
        let run_id = fastrand::i32(1..i32::MAX);
        let asker = Asker {
            waiter: waiter.clone(),
            producer,
            topic: &settings.topics.todo,
            run_id,
            settings: &settings.clone,
            rate,
            in_flight: Cell::new(0),
            spread: Spread::new(todo_partitions),
            last_answer: Cell::new(None),
            group: GroupProgress::new(&settings.kafka, &settings.topics.todo, todo_partitions),
        };
        // Where the service's group stands now: progress is measured from here.
        if let Some(group) = &asker.group {
            group.read().await;
        }
        Ok(Session {
            asker,
            waiter,
            lanes,
            venue,
            settings,
        })
    }

    /// The plan of `[from, until)`: fixed windows (`clone.window_secs`), or sized to the
    /// density seen, no longer than the venue answers, with `pages` pages each.
    pub fn planner(&self, from: i64, until: i64, lanes: usize) -> Result<Planner, PlanError> {
        match self.settings.clone.window_secs {
            Some(secs) => Planner::fixed(from, until, secs, self.venue.max_window_secs()),
            None => Planner::by_density(
                from,
                until,
                self.venue.page_limit(),
                window::pages_per_window(lanes),
                self.venue.max_window_secs(),
            ),
        }
    }

    /// Whether a pair's first window is best asked whole ([`Planner::probe`]): its first page
    /// is then kept whatever the density, which only a venue whose pages are the oldest
    /// trades of a window guarantees.
    pub fn probes(&self) -> bool {
        self.settings.clone.window_secs.is_none()
            && self.venue.page_order() == PageOrder::OldestFirst
    }

    /// The ids one request by ids asks for (the pages one request gathers, whole), when a busy
    /// first window's rest is asked for by ids ([`crate::clone::id_blocks`]): on a venue that
    /// pages by consecutive ids, with windows sized by density. `None`: by time only.
    pub fn id_block(&self) -> Option<i64> {
        let venue = &self.venue;
        let pages = ID_BLOCK_PAGES.min(venue.pages_by_id());
        (self.probes() && pages > 0).then(|| (pages * venue.page_limit()) as i64)
    }

    /// The reader's counters.
    pub async fn waiter_stats(&self) -> WaiterStats {
        self.waiter.send(GetWaiterStats).await.unwrap_or_default()
    }
}

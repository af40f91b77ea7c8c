//! `Asker`: asks the service for one window until it has a final answer.
//!
//! It publishes the window as a TodoChunk and waits for its result through the
//! [`ResultWaiter`]: `RANDOM_ERROR` is asked again up to `clone.max_error_retries` times, no
//! answer within its patience is published again up to `clone.max_republish` times, but only
//! while the service shows no sign of life (no answer to any request of the run, no progress of
//! its group, [`GroupProgress`]). Its patience grows with the requests ahead of it at the
//! service's rate.
//!
//! It must never publish before its waiter is registered (a quick answer would be missed).

use std::cell::Cell;
use std::time::{Duration, Instant};

use actix::Addr;
use anyhow::Context as _;
use prost::Message as _;
use rdkafka::producer::FutureProducer;

use crate::clone::group_progress::GroupProgress;
use crate::clone::id_blocks::{End, Ids};
use crate::clone::requester;
use crate::clone::result_waiter::{Await, ResultWaiter};
use crate::clone::spread::Spread;
use crate::clone::window::Window;
use crate::config::CloneSettings;
use crate::domain::chunk::result_name;
use crate::proto::{cloned_chunk, ClonedChunk, ClonedEntry, TodoChunk};

/// What one request asks for: a window by time, or the trades of some ids in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub window: Window,
    pub ids: Option<Ids>,
}

impl From<Window> for Request {
    fn from(window: Window) -> Self {
        Request { window, ids: None }
    }
}

/// A window's final answer.
pub enum Answer {
    Complete(Vec<ClonedEntry>),
    /// The trades of the ids asked for, and where the service stopped (never
    /// [`End::Kept`]: a kept part is a `TooBig`).
    Ids {
        entries: Vec<ClonedEntry>,
        end: End,
    },
    /// Too big for one call; `kept`: the part the exchange's page covered, with its trades
    /// (from a service that sends them), so that only the rest needs asking for.
    TooBig {
        reason: String,
        kept: Option<(Window, Vec<ClonedEntry>)>,
    },
    Failed(String),
}

/// The covered part of a `WINDOW_TOO_BIG` answer for `window`, if the answer has one that can
/// be trusted: a non-empty prefix or suffix of the window, not all of it, every trade inside
/// it. Anything else is ignored, and the window halved as by a service that sends no pages.
pub fn kept_part(window: Window, result: &ClonedChunk) -> Option<(Window, Vec<ClonedEntry>)> {
    let covered = Window {
        from: result.covered_from_unix_ts?,
        until: result.covered_until_unix_ts?,
    };
    let prefix = covered.from == window.from && covered.until < window.until;
    let suffix = covered.until == window.until && covered.from > window.from;
    let inside = |e: &ClonedEntry| (covered.from..=covered.until).contains(&e.date);
    if covered.from > covered.until || !(prefix || suffix) || !result.entries.iter().all(inside) {
        log::warn!(
            "{window}: ignoring a covered part [{:?}, {:?}] that is not a part of it",
            result.covered_from_unix_ts,
            result.covered_until_unix_ts
        );
        return None;
    }
    Some((covered, result.entries.clone()))
}

/// A window asked for, with what it took.
pub struct Asked {
    pub window: Window,
    /// The ids asked for, if asked by ids.
    pub ids: Option<Ids>,
    pub answer: Answer,
    /// Results received for it.
    pub answers: u32,
    /// The upstream calls they took (a result without the count: one).
    pub calls: u32,
    /// Times it was published again.
    pub republished: u32,
}

/// Publishes requests and waits for their answers.
pub struct Asker<'a> {
    pub waiter: Addr<ResultWaiter>,
    pub producer: FutureProducer,
    pub topic: &'a str,
    pub run_id: i32,
    pub settings: &'a CloneSettings,
    /// Upstream calls per second the service is configured for; `None` if unlimited.
    pub rate: Option<f64>,
    /// Requests published and not answered yet: the service's backlog, as far as this run
    /// knows.
    pub in_flight: Cell<usize>,
    /// Which partition each publication goes to: the least loaded, so that every member of the
    /// service's group has its share of the work.
    pub spread: Spread,
    /// When any request of this run was last answered: while answers keep coming, the service
    /// is alive and only behind, and a request that waits long is not published again.
    pub last_answer: Cell<Option<Instant>>,
    /// The service group's progress through the todo topic: the other sign that it is alive
    /// (behind other clients' requests, it answers none of this run's for a while).
    pub group: Option<GroupProgress>,
}

impl Asker<'_> {
    /// How long a request published now may wait: the timeout, plus the time the requests
    /// ahead of it take at the configured rate.
    fn patience(&self) -> Duration {
        let ahead = match self.rate {
            Some(rate) => Duration::from_secs_f64(self.in_flight.get() as f64 / rate),
            None => Duration::ZERO,
        };
        self.settings.answer_timeout() + ahead
    }

    /// Whether the service is alive: it answered a request of this run, or its group committed
    /// more of the todo topic, within the answer timeout.
    async fn alive(&self) -> bool {
        let within = self.settings.answer_timeout();
        if self
            .last_answer
            .get()
            .is_some_and(|at| at.elapsed() < within)
        {
            return true;
        }
        match &self.group {
            Some(group) => group.advancing(within).await,
            None => false,
        }
    }

    /// Asks for `window` of `pair` until it gets a final answer or runs out of tries. With no
    /// answer in time it is published again only if nothing else was answered either.
    pub async fn ask(&self, pair: std::rc::Rc<str>, request: Request) -> anyhow::Result<Asked> {
        let Request { window, ids } = request;
        let chunk = TodoChunk {
            currency_pair: pair.to_string(),
            from_unix_ts: window.from,
            until_unix_ts: window.until,
            task_dbid: self.run_id,
            from_trade_id: ids.map(|i| i.from),
            until_trade_id: ids.and_then(|i| i.until),
        };
        let key = requester::chunk_key(&chunk);
        let payload = chunk.encode_to_vec();
        let mut asked = Asked {
            window,
            ids,
            answer: Answer::Failed(String::new()),
            answers: 0,
            calls: 0,
            republished: 0,
        };
        let (mut errors, mut unanswered) = (0, 0);
        self.in_flight.set(self.in_flight.get() + 1);
        let answer = 'answered: loop {
            // Registered before publishing, so a quick answer is not missed.
            let mut answer = self
                .waiter
                .send(Await(chunk.clone()))
                .await
                .context("the result waiter stopped")?;
            loop {
                // Held until this publication is answered or given up on.
                let placed = self.spread.place();
                let partition = placed.as_ref().map(|p| p.partition);
                requester::publish_to(&self.producer, self.topic, partition, &key, &payload)
                    .await
                    .context("is the broker reachable? (kafka.bootstrap_servers)")?;
                'waiting: loop {
                    let patience = self.patience();
                    match tokio::time::timeout(patience, &mut answer).await {
                        Ok(Ok(result)) => {
                            asked.answers += 1;
                            asked.calls += result.upstream_calls.unwrap_or(1);
                            self.last_answer.set(Some(Instant::now()));
                            let echo = result.original_todo_chunk.as_ref();
                            if ids.is_some() && echo.is_none_or(|c| c.from_trade_id.is_none()) {
                                break 'answered Answer::Failed(format!(
                                    "the service answered the window by time, not the trade ids asked for: a member of its group is older than asking by ids (TodoChunk field 5, docs/wire.md); upgrade every member of the service's group ({})",
                                    self.topic
                                ));
                            }
                            match cloned_chunk::Result::try_from(result.chunk_result) {
                                Ok(cloned_chunk::Result::Complete) if ids.is_some() => {
                                    let end = match result.covered_until_unix_ts {
                                        Some(_) => End::Window,
                                        None => End::Ids,
                                    };
                                    break 'answered Answer::Ids {
                                        entries: result.entries,
                                        end,
                                    };
                                }
                                Ok(cloned_chunk::Result::Complete) => {
                                    break 'answered Answer::Complete(result.entries)
                                }
                                Ok(cloned_chunk::Result::WindowTooBig) => {
                                    break 'answered Answer::TooBig {
                                        kept: kept_part(window, &result),
                                        reason: result.possible_error_message,
                                    }
                                }
                                _ if errors < self.settings.max_error_retries => {
                                    errors += 1;
                                    asked.republished += 1;
                                    log::warn!(
                                        "{pair} {window}: {} ({}); asking again ({errors} of {})",
                                        result_name(&result),
                                        result.possible_error_message,
                                        self.settings.max_error_retries
                                    );
                                    continue 'answered;
                                }
                                _ => {
                                    break 'answered Answer::Failed(format!(
                                        "{} after {} tries: {}",
                                        result_name(&result),
                                        errors + 1,
                                        result.possible_error_message
                                    ))
                                }
                            }
                        }
                        Ok(Err(_)) => anyhow::bail!("the result waiter stopped"),
                        Err(_) => {
                            // Others were answered, or the service's group works through its
                            // topic: the service is alive, only behind. Publishing again would
                            // add to its backlog; wait on.
                            if self.alive().await {
                                log::debug!("{pair} {window}: no answer within {patience:.0?}, but the service is at work; waiting on");
                                continue 'waiting;
                            }
                            if unanswered < self.settings.max_republish {
                                unanswered += 1;
                                asked.republished += 1;
                                log::warn!(
                                    "{pair} {window}: no answer within {patience:.0?}, none to any other request, and the service's group committed nothing; publishing it again ({unanswered} of {})",
                                    self.settings.max_republish
                                );
                                break 'waiting;
                            }
                            break 'answered Answer::Failed(format!(
                            "no answer after {} publications, none to any other request meanwhile, and the service's group committed nothing; is a service consuming {}?",
                            unanswered + 1,
                            self.topic
                        ));
                        }
                    }
                }
            }
        };
        self.in_flight.set(self.in_flight.get() - 1);
        asked.answer = answer;
        Ok(asked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(covered: Option<(i64, i64)>, dates: &[i64]) -> ClonedChunk {
        ClonedChunk {
            chunk_result: cloned_chunk::Result::WindowTooBig as i32,
            entries: dates
                .iter()
                .map(|&date| ClonedEntry {
                    date,
                    ..Default::default()
                })
                .collect(),
            covered_from_unix_ts: covered.map(|c| c.0),
            covered_until_unix_ts: covered.map(|c| c.1),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_proper_prefix_or_suffix_with_its_trades_inside_is_kept() {
        let w = Window {
            from: 100,
            until: 199,
        };
        let kept = |covered, dates: &[i64]| kept_part(w, &answer(covered, dates)).map(|k| k.0);
        let part = |from, until| Some(Window { from, until });
        assert_eq!(kept(Some((150, 199)), &[150, 199]), part(150, 199));
        assert_eq!(kept(Some((100, 120)), &[100]), part(100, 120));
        assert_eq!(kept(None, &[]), None, "an old-style service: halve");
        for bad in [(100, 199), (120, 150), (150, 250), (99, 150), (160, 150)] {
            assert_eq!(kept(Some(bad), &[]), None, "{bad:?}");
        }
        assert_eq!(
            kept(Some((150, 199)), &[149]),
            None,
            "a trade outside its part"
        );
    }
}

//! `Asker`: asks the service for one window until it has a final answer.
//!
//! It publishes the window as a TodoChunk and waits for its result through the
//! [`ResultWaiter`]: `RANDOM_ERROR` is asked again up to `clone.max_error_retries` times, no
//! answer within its patience is published again up to `clone.max_republish` times. Its
//! patience grows with the requests ahead of it at the service's rate.
//!
//! It must never publish before its waiter is registered (a quick answer would be missed).

use std::cell::Cell;
use std::time::Duration;

use actix::Addr;
use anyhow::Context as _;
use prost::Message as _;
use rdkafka::producer::FutureProducer;

use crate::clone::requester;
use crate::clone::result_waiter::{Await, ResultWaiter};
use crate::clone::spread::Spread;
use crate::clone::window::Window;
use crate::config::CloneSettings;
use crate::domain::chunk::result_name;
use crate::proto::{cloned_chunk, ClonedEntry, TodoChunk};

/// A window's final answer.
pub enum Answer {
    Complete(Vec<ClonedEntry>),
    TooBig(String),
    Failed(String),
}

/// A window asked for, with what it took.
pub struct Asked {
    pub window: Window,
    pub answer: Answer,
    /// Results received for it (each was an upstream call).
    pub answers: u32,
    /// Times it was published again.
    pub republished: u32,
}

/// Publishes requests and waits for their answers.
pub struct Asker<'a> {
    pub waiter: Addr<ResultWaiter>,
    pub producer: FutureProducer,
    pub topic: &'a str,
    pub pair: &'a str,
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

    /// Asks for `window` until it gets a final answer or runs out of tries.
    pub async fn ask(&self, window: Window) -> anyhow::Result<Asked> {
        let chunk = TodoChunk {
            currency_pair: self.pair.to_string(),
            from_unix_ts: window.from,
            until_unix_ts: window.until,
            task_dbid: self.run_id,
        };
        let key = requester::chunk_key(&chunk);
        let payload = chunk.encode_to_vec();
        let mut asked = Asked {
            window,
            answer: Answer::Failed(String::new()),
            answers: 0,
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
                let patience = self.patience();
                match tokio::time::timeout(patience, &mut answer).await {
                    Ok(Ok(result)) => {
                        asked.answers += 1;
                        match cloned_chunk::Result::try_from(result.chunk_result) {
                            Ok(cloned_chunk::Result::Complete) => {
                                break 'answered Answer::Complete(result.entries)
                            }
                            Ok(cloned_chunk::Result::WindowTooBig) => {
                                break 'answered Answer::TooBig(result.possible_error_message)
                            }
                            _ if errors < self.settings.max_error_retries => {
                                errors += 1;
                                asked.republished += 1;
                                log::warn!(
                                    "{window}: {} ({}); asking again ({errors} of {})",
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
                    Err(_) if unanswered < self.settings.max_republish => {
                        unanswered += 1;
                        asked.republished += 1;
                        log::warn!(
                            "{window}: no answer within {patience:.0?}; publishing it again ({unanswered} of {})",
                            self.settings.max_republish
                        );
                    }
                    Err(_) => {
                        break 'answered Answer::Failed(format!(
                            "no answer after {} publications; is a service consuming {}?",
                            unanswered + 1,
                            self.topic
                        ))
                    }
                }
            }
        };
        self.in_flight.set(self.in_flight.get() - 1);
        asked.answer = answer;
        Ok(asked)
    }
}

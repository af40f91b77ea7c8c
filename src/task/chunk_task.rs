//! The short-lived future a worker runs for one chunk — the original's Elixir `Task`.
//!
//! It validates the chunk, then for each try: waits for the rate limiter, calls the upstream
//! once, and classifies the answer. Transient failures are retried with backoff and jitter, each
//! try through the rate limiter again; permanent ones are answered at once. Push-back (429,
//! 403/418) is not the chunk's failure and costs it no try: the limiter is told, so that every
//! worker slows down or pauses, and the chunk waits its turn again.
//!
//! It always ends in a [`ClonedChunk`], except when the rate limiter is gone (shutdown), which
//! is not the chunk's fault and must not be answered as if it were. It must never retry without
//! going through the rate limiter.
//!
//! It measures what only it sees: each try's wait for the rate limiter, each upstream call's
//! duration and outcome, the retries, and whether the upstream answered (readiness).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;

use crate::config::UpstreamSettings;
use crate::domain::chunk::{error_result, result, Describe};
use crate::domain::pair::validate_chunk;
use crate::proto::{cloned_chunk, ClonedChunk, TodoChunk};
use crate::task::backoff::Backoff;
use crate::task::rate_limiter::{register, LimiterClosed, PauseCause, PauseFor, RateLimiter};
use crate::task::rate_limiter::{Grant, SlowDown};
use crate::task::upstream::{Refusal, Upstream, UpstreamError, Window};
use crate::task::venue::{Cursor, Spent, Step, Venue};
use crate::telemetry::metrics::{CallOutcome, Metrics};

/// What every task of one arbiter shares.
pub struct TaskDeps {
    /// The HTTP client; not `Send`, so one per arbiter, shared by its workers' tasks.
    pub upstream: Upstream,
    pub limiter: Addr<RateLimiter>,
    pub backoff: Backoff,
    /// Extra tries after a transient failure.
    pub max_retries: u32,
    /// How long every call waits after a ban that does not say.
    pub ban_pause: Duration,
    /// Whether a full page's covered part is sent back with a `WINDOW_TOO_BIG`.
    pub keep_pages: bool,
    /// Calls that may be on their way at once (one per worker): what the venue's budget must
    /// still hold before any more are made.
    pub calls_in_flight: u64,
    /// The app's metrics: limiter waits, upstream calls, retries, and upstream readiness.
    pub metrics: Arc<Metrics>,
}

impl TaskDeps {
    pub fn new(
        settings: &UpstreamSettings,
        venue: Arc<dyn Venue>,
        ban_pause: Duration,
        limiter: Addr<RateLimiter>,
        metrics: Arc<Metrics>,
        workers: usize,
    ) -> Rc<TaskDeps> {
        Rc::new(TaskDeps {
            upstream: Upstream::new(settings, venue),
            limiter,
            backoff: Backoff::new(
                std::time::Duration::from_millis(settings.backoff_base_ms),
                std::time::Duration::from_millis(settings.backoff_max_ms),
            ),
            max_retries: settings.max_retries,
            ban_pause,
            keep_pages: settings.keep_pages,
            calls_in_flight: workers.max(1) as u64,
            metrics,
        })
    }
}

/// The time an attempt has spent waiting for the rate limiter, which its deadline does not
/// count: a saturated, shared or paused budget is not the attempt's failure.
#[derive(Debug, Default)]
pub struct LimiterTime {
    /// Waits that ended.
    spent: Cell<Duration>,
    /// When the wait going on began (tokio's clock, which tests can pause, as the deadline's).
    since: Cell<Option<tokio::time::Instant>>,
}

impl LimiterTime {
    fn begin(&self) {
        self.since.set(Some(tokio::time::Instant::now()));
    }

    fn end(&self) {
        if let Some(since) = self.since.take() {
            self.spent.set(self.spent.get() + since.elapsed());
        }
    }

    /// All the waiting so far, the one going on included.
    pub fn total(&self) -> Duration {
        self.spent.get() + self.since.get().map_or(Duration::ZERO, |s| s.elapsed())
    }
}

/// Clones one chunk: the answer, or `LimiterClosed` if the system is shutting down. Its waits
/// for the rate limiter add up in `waits`. The answer says how many upstream calls it took.
pub async fn clone_chunk(
    deps: Rc<TaskDeps>,
    chunk: TodoChunk,
    waits: Rc<LimiterTime>,
) -> Result<ClonedChunk, LimiterClosed> {
    let calls = Cell::new(0u32);
    let answer = calling(deps, chunk, waits, &calls).await?;
    Ok(ClonedChunk {
        upstream_calls: Some(calls.get()),
        ..answer
    })
}

/// [`clone_chunk`], counting its calls in `calls`.
async fn calling(
    deps: Rc<TaskDeps>,
    chunk: TodoChunk,
    waits: Rc<LimiterTime>,
    calls: &Cell<u32>,
) -> Result<ClonedChunk, LimiterClosed> {
    let pair = match validate_chunk(&chunk, deps.upstream.venue().pair_rule()) {
        Ok(pair) => pair,
        Err(invalid) => {
            log::warn!("refusing chunk {}: {invalid}", Describe(&chunk));
            return Ok(error_result(&chunk, format!("invalid chunk: {invalid}")));
        }
    };
    // Seeded per task: jitter only has to decorrelate tasks, not be unpredictable.
    let mut rng = fastrand::Rng::new();
    let mut retry = 0;
    let mut refusals = 0;
    // Asked by trade ids: from the first, on a venue that pages by them, within its most.
    let by_ids = chunk.from_trade_id.map(|from_id| Cursor {
        from_id,
        until_id: chunk.until_trade_id,
    });
    if let Some(ids) = by_ids {
        let venue = deps.upstream.venue();
        let most = venue.pages_by_id() * venue.page_limit();
        let asked = ids.until_id.map(|until| until - ids.from_id);
        let refusal = if most == 0 {
            Some(format!("{} cannot be asked by trade ids", venue.name()))
        } else {
            asked.filter(|&n| n > most as i64).map(|n| {
                format!(
                    "{n} trade ids asked for at once; {} answers at most {most}",
                    venue.name()
                )
            })
        };
        if let Some(refusal) = refusal {
            log::warn!("refusing chunk {}: {refusal}", Describe(&chunk));
            return Ok(error_result(&chunk, format!("invalid chunk: {refusal}")));
        }
    }
    // The pages of a window whose first second holds more than one, and where the next goes on.
    let mut gathered = Vec::new();
    let mut cursor = by_ids;
    let metrics = &deps.metrics;
    loop {
        waits.begin();
        let granted = register(&deps.limiter).await;
        waits.end();
        let grant = granted?;
        metrics
            .rate_limiter_wait
            .observe(grant.waited.as_secs_f64());
        let calling = Instant::now();
        let (from, until) = (chunk.from_unix_ts, chunk.until_unix_ts);
        calls.set(calls.get().saturating_add(1));
        let called = deps
            .upstream
            .call(&pair, from, until, gathered.clone(), cursor)
            .await;
        metrics.upstream_call(call_outcome(&called.result), calling.elapsed());
        metrics.health.upstream_answered(called.answered);
        if let Some(spent) = called.spent {
            mind_the_budget(&deps, spent);
        }
        let failure = match called.result {
            Ok(Step::More { entries, next }) => {
                // The window's first second holds more than a page: the next call goes on
                // from where this one stopped, through the limiter like any other.
                gathered = entries;
                cursor = Some(next);
                continue;
            }
            Ok(Step::Done(Window::Complete(entries))) => {
                let answer = result(&chunk, cloned_chunk::Result::Complete, entries, "");
                // Asked by ids: the answer says that it reached the window's end, so that the
                // requester knows no later id is inside it.
                return Ok(match by_ids {
                    Some(_) => ClonedChunk {
                        covered_from_unix_ts: Some(from),
                        covered_until_unix_ts: Some(until),
                        ..answer
                    },
                    None => answer,
                });
            }
            Ok(Step::Done(Window::Ids(entries))) => {
                return Ok(result(&chunk, cloned_chunk::Result::Complete, entries, ""));
            }
            Ok(Step::Done(Window::TooBig { reason, kept })) => {
                let too_big = cloned_chunk::Result::WindowTooBig;
                // The page's covered part goes back with its trades: only the rest is asked for.
                return Ok(match kept {
                    Some(kept) if deps.keep_pages => ClonedChunk {
                        covered_from_unix_ts: Some(kept.from),
                        covered_until_unix_ts: Some(kept.until),
                        ..result(&chunk, too_big, kept.entries, reason)
                    },
                    _ => result(&chunk, too_big, Vec::new(), reason),
                });
            }
            Err(UpstreamError::Permanent(message)) => {
                log::warn!("chunk {}: upstream refused it: {message}", Describe(&chunk));
                return Ok(error_result(&chunk, message));
            }
            Err(UpstreamError::Refused(refusal)) => {
                // Every worker slows down or waits; this chunk tries again in its turn, after a
                // backoff of its own so that it cannot feed a storm of refusals even with the
                // limiter off. No try is spent: the chunk did nothing wrong.
                push_back(&deps, &grant, &refusal);
                let delay = deps.backoff.delay(refusals.min(3), &mut rng);
                refusals += 1;
                log::debug!(
                    "chunk {}: {refusal}; again in {delay:?} (refused {refusals} times)",
                    Describe(&chunk)
                );
                actix_rt::time::sleep(delay).await;
                continue;
            }
            Err(UpstreamError::Transient(message)) => message,
        };
        if retry == deps.max_retries {
            let tries = retry + 1;
            log::warn!(
                "chunk {}: giving up after {tries} tries: {failure}",
                Describe(&chunk)
            );
            let message = format!("upstream failed {tries} times; last: {failure}");
            return Ok(error_result(&chunk, message));
        }
        let delay = deps.backoff.delay(retry, &mut rng);
        log::debug!(
            "chunk {}: try {} failed ({failure}); again in {delay:?}",
            Describe(&chunk),
            retry + 1
        );
        retry += 1;
        metrics.upstream_retries.inc();
        actix_rt::time::sleep(delay).await;
    }
}

/// The venue says how much of the address's budget is spent (another client on the same
/// address spends it too): when what is left cannot hold the calls that may be on their way,
/// every call waits until it is whole again, instead of being refused.
fn mind_the_budget(deps: &TaskDeps, spent: Spent) {
    let cost = u64::from(deps.upstream.venue().call_cost());
    if let Some(duration) = budget_wait(spent, cost, deps.calls_in_flight) {
        log::info!(
            "the venue reports {} of its {} budget used this interval: every call waits {duration:?} for it to renew",
            spent.used,
            spent.limit,
        );
        deps.limiter.do_send(PauseFor {
            duration,
            cause: PauseCause::TooMany,
        });
    }
}

/// How long to wait for the budget to renew, if `in_flight` more calls of `cost` each would
/// take it past its limit.
fn budget_wait(spent: Spent, cost: u64, in_flight: u64) -> Option<Duration> {
    (spent.used + cost * in_flight > spent.limit).then_some(spent.resets_in)
}

/// Tells the limiter what the exchange said: too many calls slow every caller down (and wait
/// as long as it asked), a ban pauses them all.
fn push_back(deps: &TaskDeps, grant: &Grant, refusal: &Refusal) {
    match *refusal {
        Refusal::TooMany { retry_after, .. } => {
            deps.limiter.do_send(SlowDown { slot: grant.slot });
            if let Some(duration) = retry_after {
                deps.limiter.do_send(PauseFor {
                    duration,
                    cause: PauseCause::TooMany,
                });
            }
        }
        Refusal::Banned { retry_after, .. } => deps.limiter.do_send(PauseFor {
            duration: retry_after.unwrap_or(deps.ban_pause),
            cause: PauseCause::Banned,
        }),
    }
}

fn call_outcome(result: &Result<Step, UpstreamError>) -> CallOutcome {
    match result {
        Ok(Step::Done(Window::Complete(_) | Window::Ids(_))) => CallOutcome::Complete,
        // A page to continue is a full page, as a window too big is.
        Ok(Step::Done(Window::TooBig { .. }) | Step::More { .. }) => CallOutcome::TooBig,
        Err(UpstreamError::Permanent(_)) => CallOutcome::Permanent,
        Err(UpstreamError::Transient(_)) => CallOutcome::Transient,
        Err(UpstreamError::Refused(Refusal::TooMany { .. })) => CallOutcome::TooMany,
        Err(UpstreamError::Refused(Refusal::Banned { .. })) => CallOutcome::Banned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_must_hold_every_call_that_may_be_on_its_way() {
        let spent = |used| Spent {
            used,
            limit: 6000,
            resets_in: Duration::from_secs(17),
        };
        // Four workers at 4 a call: 16 must be left.
        assert_eq!(budget_wait(spent(5984), 4, 4), None);
        assert_eq!(
            budget_wait(spent(5985), 4, 4),
            Some(Duration::from_secs(17))
        );
        assert_eq!(
            budget_wait(spent(6400), 4, 1),
            Some(Duration::from_secs(17))
        );
        assert_eq!(budget_wait(spent(12), 4, 4), None);
    }
}

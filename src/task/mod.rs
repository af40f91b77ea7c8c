//! One chunk's work — the Elixir *Task* a worker runs: wait for the rate limiter, call the
//! upstream, classify the answer, retry what is transient.
//!
//! - [`chunk_task`]: `clone_chunk`, the future itself, and what it shares (`TaskDeps`).
//! - [`venue`]: what differs between exchanges, behind one trait: Poloniex legacy
//!   `returnTradeHistory` and Binance `aggTrades`.
//! - [`upstream`]: the HTTP client that calls the configured venue and classifies statuses.
//! - [`rate_limiter`]: `RateLimiter`, a generic actor granting one call at a time on the slots
//!   of a timeline at a rate, of which it may own a share; push-back slows or pauses it.
//! - [`backoff`]: exponential backoff with jitter, generic.
//!
//! The reusable parts ([`rate_limiter`], [`backoff`]) must never know what a chunk or an
//! exchange is.

pub mod answer;
pub mod backoff;
pub mod chunk_task;
pub mod rate_limiter;
pub mod upstream;
pub mod venue;

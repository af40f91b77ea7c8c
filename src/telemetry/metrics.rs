//! The service's Prometheus metrics: what came in, what went out, and where the time goes.
//!
//! One [`Metrics`] per started [`App`](crate::pool::app::App), shared as an `Arc` by the parts that
//! count (the consumer, the manager, the chunk tasks) and rendered by the HTTP endpoint
//! ([`crate::service::http_endpoint`]) as OpenMetrics text. Not a process-global: the tests start several
//! `App`s in one process, each with its own counters.
//!
//! Built on `prometheus-client`: the registry, the metrics and a text encoder that gets the
//! format right (escaping, `_total`, `# EOF`). Every per-chunk update is on a handle made at
//! start: labels are looked up once, never per chunk. Counters and gauges are atomic adds; a
//! histogram observation takes the histogram's lock for a few arithmetic operations: 9 ns alone,
//! 23 ns with two threads observing at once (2-core development machine, 2026-11-28), nothing
//! against the few thousand observations a second the service makes.
//!
//! It must never take an unbounded label value (no chunk keys, no pairs; topics and partitions
//! only for the consumer lag, which is bounded by the partitions this member holds), never
//! wait on more than a histogram's own lock, and never log per chunk.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::domain::chunk::Undecodable;
use crate::domain::pair::InvalidChunk;
use crate::proto::cloned_chunk;
use crate::telemetry::health::Health;
use crate::telemetry::limiter_metrics::LimiterMetrics;

/// Prefix of every metric name.
pub const PREFIX: &str = "cloner";

/// The content type of [`Metrics::render`]'s output (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why a message went to the dead-letter topic; the `reason` label, a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    NoPayload,
    NotATodoChunk,
    InvalidPair,
    NegativeStart,
    ReversedWindow,
    ReversedIds,
}

impl DeadLetterReason {
    pub const ALL: [DeadLetterReason; 6] = [
        DeadLetterReason::NoPayload,
        DeadLetterReason::NotATodoChunk,
        DeadLetterReason::InvalidPair,
        DeadLetterReason::NegativeStart,
        DeadLetterReason::ReversedWindow,
        DeadLetterReason::ReversedIds,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DeadLetterReason::NoPayload => "no_payload",
            DeadLetterReason::NotATodoChunk => "not_a_todo_chunk",
            DeadLetterReason::InvalidPair => "invalid_pair",
            DeadLetterReason::NegativeStart => "negative_start",
            DeadLetterReason::ReversedWindow => "reversed_window",
            DeadLetterReason::ReversedIds => "reversed_ids",
        }
    }
}

impl From<&Undecodable> for DeadLetterReason {
    fn from(reason: &Undecodable) -> Self {
        match reason {
            Undecodable::NoPayload => DeadLetterReason::NoPayload,
            Undecodable::NotATodoChunk(_) => DeadLetterReason::NotATodoChunk,
            Undecodable::Invalid(InvalidChunk::Pair(_)) => DeadLetterReason::InvalidPair,
            Undecodable::Invalid(InvalidChunk::NegativeStart(_)) => DeadLetterReason::NegativeStart,
            Undecodable::Invalid(InvalidChunk::Reversed { .. }) => DeadLetterReason::ReversedWindow,
            Undecodable::Invalid(InvalidChunk::Ids { .. }) => DeadLetterReason::ReversedIds,
        }
    }
}

/// How one upstream call ended; the `outcome` label, a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The window's trades (COMPLETE).
    Complete,
    /// A full page, or the API refused the window as too long (WINDOW_TOO_BIG).
    TooBig,
    /// Refused for good (unknown pair, 4xx, nonsense).
    Permanent,
    /// Worth another try: timeout, transport error, 5xx, malformed or oversized body.
    Transient,
    /// Refused as one call too many (429, or the API's rate error): the calls refused.
    TooMany,
    /// Refused because the address is banned (403, 418).
    Banned,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 6] = [
        CallOutcome::Complete,
        CallOutcome::TooBig,
        CallOutcome::Permanent,
        CallOutcome::Transient,
        CallOutcome::TooMany,
        CallOutcome::Banned,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Complete => "complete",
            CallOutcome::TooBig => "too_big",
            CallOutcome::Permanent => "permanent",
            CallOutcome::Transient => "transient",
            CallOutcome::TooMany => "too_many",
            CallOutcome::Banned => "banned",
        }
    }
}

/// The `result` label of `chunks_finished_total`: the wire names of the three results.
const RESULTS: [cloned_chunk::Result; 3] = [
    cloned_chunk::Result::Complete,
    cloned_chunk::Result::WindowTooBig,
    cloned_chunk::Result::RandomError,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    /// The wire name: `COMPLETE`, `WINDOW_TOO_BIG`, `RANDOM_ERROR`.
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    /// [`DeadLetterReason::label`].
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    /// [`CallOutcome::label`].
    outcome: &'static str,
}

/// A partition of the consumer lag gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    /// The todo topic (bounded: the member consumes one topic).
    topic: String,
    /// Bounded by the topic's partitions, and only those this member holds.
    partition: i32,
}

/// Seconds spent waiting for a rate-limiter grant: from nothing (a free slot) to many seconds
/// (a queue of workers at a few calls per second).
const LIMITER_WAIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Seconds of one upstream call: a loopback simulator answers in well under a millisecond, the
/// real API in tens to hundreds, a hung one at the request timeout (10 s by default).
const UPSTREAM_CALL_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// Everything the service counts. Fields are handles made once at start; recording is an
/// operation on one of them (atomic, or a histogram's short lock).
pub struct Metrics {
    /// Owns the descriptors (names, help, units) and renders every metric below.
    registry: Registry,
    /// `chunks_received_total`: valid chunks taken from Kafka (dead letters are not chunks).
    pub chunks_received: Counter,
    /// `chunks_finished_total{result}`, in the order of [`RESULTS`]: results the broker
    /// acknowledged, so that it matches what a reader of the finished topic sees.
    chunks_finished: [Counter; 3],
    /// `dead_letters_total{reason}`, in the order of [`DeadLetterReason::ALL`]: acknowledged on
    /// the dead-letter topic.
    dead_letters: [Counter; DeadLetterReason::ALL.len()],
    /// `attempts_total`: attempts handed to a worker, first tries and retries alike.
    pub attempts: Counter,
    /// `attempt_retries_total`: attempts that ended without an answer (panic, deadline, dead
    /// worker) and were put back in the queue; the ones that exhausted `max_attempts` are not.
    pub attempt_retries: Counter,
    /// `upstream_retries_total`: transient upstream failures retried inside a task.
    pub upstream_retries: Counter,
    /// `queue_depth`: chunks waiting for a worker; set when scraped (asking the queue costs
    /// nothing per chunk).
    pub queue_depth: Gauge,
    /// `chunks_in_flight`: messages taken from Kafka and not yet finished (result or dead letter
    /// acknowledged); bounded by `consumer.max_in_flight`.
    pub chunks_in_flight: Gauge,
    /// `rate_limiter_wait_seconds`: how long each upstream try waited for its grant.
    pub rate_limiter_wait: Histogram,
    /// `upstream_call_duration_seconds{outcome}`, in the order of [`CallOutcome::ALL`].
    upstream_calls: [Histogram; 6],
    /// The rate limiter's share, rate, decreases, missed slots and pauses; set when scraped.
    pub limiter: LimiterMetrics,
    /// `consumer_lag{topic,partition}`: from librdkafka's statistics, for the partitions this
    /// member holds; a revoked partition is removed, so no stale lag outlives its owner.
    consumer_lag: Family<PartitionLabels, Gauge>,
    /// The partitions `consumer_lag` has series for (`Family` cannot list them), to remove the
    /// ones a statistics report no longer has. Locked once per report, never per chunk.
    lag_partitions: Mutex<Vec<PartitionLabels>>,
    /// What `/health` reports; here because every part that counts also knows what it sees of
    /// the group and the upstream.
    pub health: Health,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix(PREFIX);

        let chunks_received = Counter::default();
        registry.register(
            "chunks_received",
            "Valid chunks taken from the todo topic",
            chunks_received.clone(),
        );

        let finished = Family::<ResultLabel, Counter>::default();
        let chunks_finished = RESULTS.map(|r| {
            finished.get_or_create_owned(&ResultLabel {
                result: r.as_str_name(),
            })
        });
        registry.register(
            "chunks_finished",
            "Results produced and acknowledged by the broker, by result",
            finished,
        );

        let dead = Family::<ReasonLabel, Counter>::default();
        let dead_letters = DeadLetterReason::ALL
            .map(|r| dead.get_or_create_owned(&ReasonLabel { reason: r.label() }));
        registry.register(
            "dead_letters",
            "Messages that cannot be chunks, acknowledged on the dead-letter topic, by reason",
            dead,
        );

        let attempts = Counter::default();
        registry.register(
            "attempts",
            "Attempts handed to a worker (first tries and retries)",
            attempts.clone(),
        );
        let attempt_retries = Counter::default();
        registry.register(
            "attempt_retries",
            "Attempts that ended without an answer (panic, deadline, dead worker) and were queued again",
            attempt_retries.clone(),
        );
        let upstream_retries = Counter::default();
        registry.register(
            "upstream_retries",
            "Transient upstream failures retried inside a task (each retry waits for the rate limiter again)",
            upstream_retries.clone(),
        );

        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Chunks waiting in the queue for a free worker",
            queue_depth.clone(),
        );
        let chunks_in_flight = Gauge::default();
        registry.register(
            "chunks_in_flight",
            "Messages taken from Kafka whose result or dead letter is not yet acknowledged",
            chunks_in_flight.clone(),
        );

        let rate_limiter_wait = Histogram::new(LIMITER_WAIT_BUCKETS);
        registry.register_with_unit(
            "rate_limiter_wait",
            "Time each upstream try waited for a rate-limiter grant",
            Unit::Seconds,
            rate_limiter_wait.clone(),
        );

        let calls =
            Family::<OutcomeLabel, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(UPSTREAM_CALL_BUCKETS)
            });
        let upstream_calls = CallOutcome::ALL
            .map(|o| calls.get_or_create_owned(&OutcomeLabel { outcome: o.label() }));
        registry.register_with_unit(
            "upstream_call_duration",
            "Duration of one upstream returnTradeHistory call, by outcome",
            Unit::Seconds,
            calls,
        );

        let limiter = LimiterMetrics::register(&mut registry);

        let consumer_lag = Family::<PartitionLabels, Gauge>::default();
        registry.register(
            "consumer_lag",
            "Messages between the committed offset and the log end, per partition held (librdkafka statistics)",
            consumer_lag.clone(),
        );

        Arc::new(Metrics {
            registry,
            chunks_received,
            chunks_finished,
            dead_letters,
            attempts,
            attempt_retries,
            upstream_retries,
            queue_depth,
            chunks_in_flight,
            rate_limiter_wait,
            upstream_calls,
            limiter,
            consumer_lag,
            lag_partitions: Mutex::default(),
            health: Health::default(),
        })
    }

    /// A result was acknowledged by the broker. `result` is the wire value; an unknown one
    /// counts as RANDOM_ERROR, as the consumer's own statistics do.
    pub fn chunk_finished(&self, result: i32) {
        let index = match cloned_chunk::Result::try_from(result) {
            Ok(cloned_chunk::Result::Complete) => 0,
            Ok(cloned_chunk::Result::WindowTooBig) => 1,
            _ => 2,
        };
        self.chunks_finished[index].inc();
    }

    /// A dead letter was acknowledged.
    pub fn dead_letter(&self, reason: DeadLetterReason) {
        let index = DeadLetterReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("ALL lists every reason");
        self.dead_letters[index].inc();
    }

    /// One upstream call took `elapsed` and ended as `outcome`.
    pub fn upstream_call(&self, outcome: CallOutcome, elapsed: Duration) {
        let index = CallOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .expect("ALL lists every outcome");
        self.upstream_calls[index].observe(elapsed.as_secs_f64());
    }

    /// Replaces the consumer lag with `lags` (topic, partition, lag): partitions not in it are
    /// removed. Called with each librdkafka statistics report (seconds apart, not per chunk).
    pub fn set_consumer_lag(&self, lags: &[(String, i32, i64)]) {
        let mut known = self.lag_partitions.lock().expect("lag lock");
        let keep: Vec<PartitionLabels> = lags
            .iter()
            .map(|(topic, partition, _)| PartitionLabels {
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        for gone in known.iter().filter(|l| !keep.contains(l)) {
            self.consumer_lag.remove(gone);
        }
        for (labels, (_, _, lag)) in keep.iter().zip(lags) {
            self.consumer_lag.get_or_create(labels).set(*lag);
        }
        *known = keep;
    }

    /// Removes the lag of partitions this member no longer holds (a revocation), so that no
    /// stale lag is reported until the next statistics report.
    pub fn forget_consumer_lag(&self, partitions: &[(String, i32)]) {
        let mut known = self.lag_partitions.lock().expect("lag lock");
        for (topic, partition) in partitions {
            let labels = PartitionLabels {
                topic: topic.clone(),
                partition: *partition,
            };
            self.consumer_lag.remove(&labels);
            known.retain(|l| *l != labels);
        }
    }

    /// Every metric as OpenMetrics text (see [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `name` (with its labels, as rendered) in `text`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_metric_is_rendered_with_its_name_and_type() {
        let text = Metrics::new().render();
        for (name, kind) in [
            ("cloner_chunks_received", "counter"),
            ("cloner_chunks_finished", "counter"),
            ("cloner_dead_letters", "counter"),
            ("cloner_attempts", "counter"),
            ("cloner_attempt_retries", "counter"),
            ("cloner_upstream_retries", "counter"),
            ("cloner_queue_depth", "gauge"),
            ("cloner_chunks_in_flight", "gauge"),
            ("cloner_rate_limiter_wait_seconds", "histogram"),
            ("cloner_upstream_call_duration_seconds", "histogram"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} {kind} in:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
        // Every labelled series exists from the start, at 0: a rate() over it needs no first
        // occurrence.
        for result in ["COMPLETE", "WINDOW_TOO_BIG", "RANDOM_ERROR"] {
            let name = format!("cloner_chunks_finished_total{{result=\"{result}\"}}");
            assert_eq!(sample(&text, &name), Some(0.0), "{name}");
        }
        for reason in DeadLetterReason::ALL {
            let name = format!("cloner_dead_letters_total{{reason=\"{}\"}}", reason.label());
            assert_eq!(sample(&text, &name), Some(0.0), "{name}");
        }
        assert_eq!(sample(&text, "cloner_chunks_received_total"), Some(0.0));
    }

    #[test]
    fn counts_land_in_their_series() {
        let m = Metrics::new();
        m.chunks_received.inc();
        m.chunks_received.inc();
        m.chunk_finished(cloned_chunk::Result::Complete as i32);
        m.chunk_finished(cloned_chunk::Result::WindowTooBig as i32);
        m.chunk_finished(cloned_chunk::Result::WindowTooBig as i32);
        m.chunk_finished(99); // unknown: counted as RANDOM_ERROR
        m.dead_letter(DeadLetterReason::ReversedWindow);
        m.chunks_in_flight.inc();
        let text = m.render();
        let s = |name: &str| sample(&text, name);
        assert_eq!(s("cloner_chunks_received_total"), Some(2.0));
        assert_eq!(
            s("cloner_chunks_finished_total{result=\"COMPLETE\"}"),
            Some(1.0)
        );
        assert_eq!(
            s("cloner_chunks_finished_total{result=\"WINDOW_TOO_BIG\"}"),
            Some(2.0)
        );
        assert_eq!(
            s("cloner_chunks_finished_total{result=\"RANDOM_ERROR\"}"),
            Some(1.0)
        );
        assert_eq!(
            s("cloner_dead_letters_total{reason=\"reversed_window\"}"),
            Some(1.0)
        );
        assert_eq!(s("cloner_chunks_in_flight"), Some(1.0));
    }

    #[test]
    fn dead_letter_reasons_follow_the_decoder() {
        use crate::domain::chunk::decode_todo_chunk;
        use crate::proto::TodoChunk;
        use prost::Message as _;
        let reason = |payload: Option<&[u8]>| {
            DeadLetterReason::from(
                &decode_todo_chunk(payload, crate::domain::pair::PairRule::UNDERSCORED)
                    .unwrap_err(),
            )
        };
        let chunk = |pair: &str, from: i64, until: i64| {
            TodoChunk {
                currency_pair: pair.into(),
                from_unix_ts: from,
                until_unix_ts: until,
                task_dbid: 0,
                ..Default::default()
            }
            .encode_to_vec()
        };
        assert_eq!(reason(None), DeadLetterReason::NoPayload);
        assert_eq!(
            reason(Some(b"\xff\xff\xff")),
            DeadLetterReason::NotATodoChunk
        );
        assert_eq!(
            reason(Some(&chunk("", 0, 1))),
            DeadLetterReason::InvalidPair
        );
        assert_eq!(
            reason(Some(&chunk("BTC_ETH", -5, 1))),
            DeadLetterReason::NegativeStart
        );
        assert_eq!(
            reason(Some(&chunk("BTC_ETH", 9, 1))),
            DeadLetterReason::ReversedWindow
        );
        let reversed_ids = TodoChunk {
            from_trade_id: Some(9),
            until_trade_id: Some(1),
            ..TodoChunk::decode(&chunk("BTC_ETH", 1, 9)[..]).unwrap()
        };
        assert_eq!(
            reason(Some(&reversed_ids.encode_to_vec())),
            DeadLetterReason::ReversedIds
        );
    }

    #[test]
    fn a_histogram_buckets_cumulatively_with_an_exact_sum() {
        let m = Metrics::new();
        m.rate_limiter_wait
            .observe(Duration::from_micros(100).as_secs_f64()); // <= 0.0005
        m.rate_limiter_wait
            .observe(Duration::from_millis(3).as_secs_f64()); // <= 0.005
        m.rate_limiter_wait
            .observe(Duration::from_secs(60).as_secs_f64()); // +Inf
        m.upstream_call(CallOutcome::Transient, Duration::from_millis(20));
        let text = m.render();
        let s = |name: &str| sample(&text, name);
        let wait = "cloner_rate_limiter_wait_seconds";
        assert_eq!(s(&format!("{wait}_count")), Some(3.0));
        assert_eq!(s(&format!("{wait}_sum")), Some(60.0031));
        assert_eq!(s(&format!("{wait}_bucket{{le=\"0.0005\"}}")), Some(1.0));
        assert_eq!(s(&format!("{wait}_bucket{{le=\"0.005\"}}")), Some(2.0));
        assert_eq!(s(&format!("{wait}_bucket{{le=\"10.0\"}}")), Some(2.0));
        assert_eq!(s(&format!("{wait}_bucket{{le=\"+Inf\"}}")), Some(3.0));
        let call = "cloner_upstream_call_duration_seconds";
        assert_eq!(
            s(&format!("{call}_count{{outcome=\"transient\"}}")),
            Some(1.0)
        );
        assert_eq!(
            s(&format!("{call}_count{{outcome=\"complete\"}}")),
            Some(0.0)
        );
        assert_eq!(
            s(&format!(
                "{call}_bucket{{le=\"0.025\",outcome=\"transient\"}}"
            )),
            Some(1.0)
        );
    }

    #[test]
    fn the_lag_follows_the_partitions_held() {
        let m = Metrics::new();
        let lag = |text: &str, p: i32| {
            sample(
                text,
                &format!("cloner_consumer_lag{{topic=\"todo\",partition=\"{p}\"}}"),
            )
        };
        assert!(
            !m.render().contains("cloner_consumer_lag"),
            "no lag before the first report"
        );
        m.set_consumer_lag(&[("todo".into(), 0, 5), ("todo".into(), 1, 7)]);
        let text = m.render();
        assert!(
            text.contains("# TYPE cloner_consumer_lag gauge\n"),
            "{text}"
        );
        assert_eq!((lag(&text, 0), lag(&text, 1)), (Some(5.0), Some(7.0)));

        // A report without partition 1 (handed to another member) removes it.
        m.set_consumer_lag(&[("todo".into(), 0, 2)]);
        let text = m.render();
        assert_eq!((lag(&text, 0), lag(&text, 1)), (Some(2.0), None));

        // A revocation removes it at once, before the next report.
        m.forget_consumer_lag(&[("todo".into(), 0)]);
        let text = m.render();
        assert_eq!(lag(&text, 0), None);
        assert!(!text.contains("cloner_consumer_lag{"), "{text}");
        m.set_consumer_lag(&[("todo".into(), 1, 3)]);
        assert_eq!(lag(&m.render(), 1), Some(3.0));
    }

    #[test]
    fn each_app_counts_on_its_own() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.attempts.inc();
        assert_eq!(sample(&a.render(), "cloner_attempts_total"), Some(1.0));
        assert_eq!(sample(&b.render(), "cloner_attempts_total"), Some(0.0));
    }
}

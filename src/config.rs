//! Layered configuration: the embedded `config/default.toml`, then an optional file, then the
//! environment (`CLONER__…`).
//!
//! Every value is checked once, here ([`Settings::validate`], in `config/validate.rs`), so the
//! actors can trust what they are given; a bad value is reported with the key that holds it and
//! what would be accepted.

mod validate;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The defaults, compiled in so the binary runs with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Seconds of calls at `default_rate` that the default `consumer.max_in_flight` holds.
pub const MAX_IN_FLIGHT_SECS: f64 = 5.0;

/// Prefix of environment overrides: `CLONER__N_WORKERS`, `CLONER__UPSTREAM__BASE_URL`, …
pub const ENV_PREFIX: &str = "CLONER";

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Workers started at boot.
    pub n_workers: usize,
    /// The budget per second, in the venue's unit: calls on Poloniex, request weight on
    /// Binance ([`Settings::calls_per_second`]). Unset in the configuration: the venue's whole
    /// budget ([`UpstreamSettings::budget_per_second`]).
    #[serde(default = "rate_unset")]
    pub default_rate: f64,
    pub rate_limiter: RateLimiterSettings,
    pub manager: ManagerSettings,
    pub worker: WorkerSettings,
    pub upstream: UpstreamSettings,
    pub kafka: KafkaSettings,
    pub topics: TopicSettings,
    pub consumer: ConsumerSettings,
    pub http: HttpSettings,
    pub clone: CloneSettings,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimiterSettings {
    /// Who shares `default_rate`.
    pub split: Split,
    /// Allowance for arrival jitter: slots are `(1 s + jitter) / rate` apart.
    pub jitter_ms: u64,
    /// Pause after a ban that does not say how long.
    pub ban_pause_ms: u64,
    pub unlimited: bool,
}

/// Who shares the rate budget (`rate_limiter.split`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The members of the consumer group, by the todo partitions each holds.
    Group,
    /// Nobody: each replica spends the whole rate.
    Replica,
}

impl RateLimiterSettings {
    pub fn jitter(&self) -> Duration {
        Duration::from_millis(self.jitter_ms)
    }

    pub fn ban_pause(&self) -> Duration {
        Duration::from_millis(self.ban_pause_ms)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManagerSettings {
    pub max_attempts: u32,
    pub queue_bound: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub attempt_deadline_ms: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// The exchange called; its own settings are in its section below.
    pub venue: VenueName,
    /// Overrides the venue's own `base_url` (a proxy, the simulator, a test).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The local address calls leave from (a host with several): exchanges count their limits
    /// per address, so members on different addresses each have the whole budget. Unset: the
    /// system's choice.
    #[serde(default)]
    pub local_address: Option<std::net::IpAddr>,
    pub page_limit: usize,
    pub request_timeout_ms: u64,
    pub max_body_bytes: usize,
    /// Send a full page's covered part back with a `WINDOW_TOO_BIG` (fields 5 and 6).
    pub keep_pages: bool,
    pub max_retries: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub poloniex: PoloniexSettings,
    pub binance: BinanceSettings,
}

/// `default_rate` until the venue's budget fills it in, after loading.
fn rate_unset() -> f64 {
    f64::NAN
}

/// The exchanges the service can call ([`crate::task::venue`]).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VenueName {
    /// Poloniex's legacy `returnTradeHistory`.
    Poloniex,
    /// Binance spot `aggTrades`.
    Binance,
}

impl VenueName {
    pub fn as_str(self) -> &'static str {
        match self {
            VenueName::Poloniex => "poloniex",
            VenueName::Binance => "binance",
        }
    }
}

/// `[upstream.poloniex]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoloniexSettings {
    pub base_url: String,
    /// The longest window the API answers (a month).
    pub max_window_secs: i64,
    /// Calls the API allows in any one second.
    pub calls_per_second: f64,
}

/// `[upstream.binance]`: the figures of Binance's documentation, kept here, not in code.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BinanceSettings {
    pub base_url: String,
    /// The longest window one call may ask for, if the API has a limit. Unset: none, as on
    /// Binance since 2022-12-05 (docs/upstream.md, "Binance").
    #[serde(default)]
    pub max_window_secs: Option<i64>,
    /// The request weight of one `aggTrades` call.
    pub weight_per_call: u32,
    /// The address's request weight per minute (`REQUEST_WEIGHT` in `exchangeInfo`).
    pub weight_limit_per_minute: u64,
}

/// librdkafka properties, passed through as-is (see `config/default.toml`). Its `Debug` shows
/// secrets (`sasl.password`, …) as `[redacted]`, so that no `{:?}` of the settings leaks one.
#[derive(Clone, Deserialize, PartialEq)]
pub struct KafkaSettings {
    /// For every client (consumer, producer, admin).
    #[serde(flatten)]
    pub common: BTreeMap<String, KafkaValue>,
    /// For the consumer only; wins over `common`.
    #[serde(default)]
    pub consumer: BTreeMap<String, KafkaValue>,
    /// For the producer only; wins over `common`.
    #[serde(default)]
    pub producer: BTreeMap<String, KafkaValue>,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn shown(table: &BTreeMap<String, KafkaValue>) -> BTreeMap<&str, String> {
            table
                .iter()
                .map(|(name, value)| {
                    let value = if crate::kafka::security::is_secret(name) {
                        "[redacted]".to_string()
                    } else {
                        value.to_string()
                    };
                    (name.as_str(), value)
                })
                .collect()
        }
        f.debug_struct("KafkaSettings")
            .field("common", &shown(&self.common))
            .field("consumer", &shown(&self.consumer))
            .field("producer", &shown(&self.producer))
            .finish()
    }
}

/// A librdkafka property value as written in TOML or the environment; librdkafka takes strings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum KafkaValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl std::fmt::Display for KafkaValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KafkaValue::Bool(b) => write!(f, "{b}"),
            KafkaValue::Int(i) => write!(f, "{i}"),
            KafkaValue::Float(x) => write!(f, "{x}"),
            KafkaValue::Str(s) => f.write_str(s),
        }
    }
}

/// Topic names, and the shape `topics create` gives them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    pub todo: String,
    pub finished: String,
    pub dead_letter: String,
    pub partitions: i32,
    /// Replicas per partition; `None` (unset, the default) lets `topics create` decide from the
    /// cluster's broker count ([`crate::kafka::topics::decide_replication`]).
    #[serde(default)]
    pub replication: Option<i32>,
    /// `min.insync.replicas` set on the topics; `None` (unset, the default) is 2 when the
    /// replication is at least 3, otherwise the broker's default.
    #[serde(default)]
    pub min_insync_replicas: Option<i32>,
}

/// The topic names of `config/default.toml`: a venue other than Poloniex prefixes them with its
/// name, so that its chunks never reach another venue's service.
const DEFAULT_TOPICS: [&str; 3] = ["todo-chunk", "finished-chunk", "todo-chunk.dlq"];

impl TopicSettings {
    /// Topics still named as by default become `VENUE.NAME` (`binance.todo-chunk`) for a venue
    /// other than Poloniex (the original service's, whose names stay as they were); names set in
    /// a file or the environment are kept.
    pub fn qualify(&mut self, venue: VenueName) {
        if venue == VenueName::Poloniex {
            return;
        }
        for topic in [&mut self.todo, &mut self.finished, &mut self.dead_letter] {
            if DEFAULT_TOPICS.contains(&topic.as_str()) {
                *topic = format!("{}.{topic}", venue.as_str());
            }
        }
    }
}

/// The Kafka side of the service: intake bound, drain and delivery.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    /// `None`: sized from the rate, see [`Settings::max_in_flight`].
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    pub drain_grace_ms: u64,
    pub delivery_timeout_ms: u64,
    pub close_timeout_ms: u64,
}

/// The service's own HTTP endpoint: `/metrics` and `/health`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// `host:port` to listen on; port 0 takes a free one (logged); empty turns it off.
    pub listen: String,
}

/// The `clone` command: how it cuts a range and how long it waits.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloneSettings {
    /// Seconds per window in the first plan, fixed; unset: planned for the requests that keep
    /// the rate busy ([`crate::clone::window::lanes`]), at most [`crate::clone::window::MAX_WINDOW_SECS`].
    #[serde(default)]
    pub window_secs: Option<u32>,
    /// How long a request may go unanswered, on top of the wait for the requests ahead of it,
    /// before it is published again.
    pub answer_timeout_ms: u64,
    /// Times an unanswered request is published again before its window is given up.
    pub max_republish: u32,
    /// Times a window answered RANDOM_ERROR is asked again before it is given up.
    pub max_error_retries: u32,
}

impl CloneSettings {
    pub fn answer_timeout(&self) -> Duration {
        Duration::from_millis(self.answer_timeout_ms)
    }
}

/// Which librdkafka client a property set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaRole {
    Consumer,
    Producer,
    Admin,
}

impl KafkaSettings {
    /// The librdkafka properties for `role`: `common`, then the role's own table, with every
    /// name in librdkafka's dotted form. A property given twice in one table (as `a_b` and
    /// `a.b`) is an error naming it.
    pub fn properties(&self, role: KafkaRole) -> Result<BTreeMap<String, String>, ConfigError> {
        fn add(
            into: &mut BTreeMap<String, String>,
            table: &BTreeMap<String, KafkaValue>,
            key: &'static str,
        ) -> Result<(), ConfigError> {
            let mut seen = BTreeMap::new();
            for (name, value) in table {
                if matches!(name.as_str(), "consumer" | "producer") {
                    continue;
                }
                let dotted = name.replace('_', ".");
                if let Some(other) = seen.insert(dotted.clone(), name.clone()) {
                    return Err(ConfigError::Invalid {
                        key,
                        problem: format!(
                            "librdkafka property `{dotted}` is given twice, as `{other}` and `{name}`; keep one (the `_` form can be overridden from the environment)"
                        ),
                    });
                }
                into.insert(dotted, value.to_string());
            }
            Ok(())
        }
        let mut props = BTreeMap::new();
        add(&mut props, &self.common, "kafka")?;
        match role {
            KafkaRole::Consumer => {
                add(&mut props, &self.consumer, "kafka.consumer")?;
                if props.get("group.protocol").map(String::as_str) == Some("consumer") {
                    // KIP-848: the broker decides these (group.consumer.session.timeout.ms, its
                    // heartbeat interval, its assignors); librdkafka refuses a client that sets
                    // them, and the classic protocol's defaults above do.
                    for classic in CLASSIC_GROUP_ONLY {
                        props.remove(classic);
                    }
                }
            }
            KafkaRole::Producer => add(&mut props, &self.producer, "kafka.producer")?,
            KafkaRole::Admin => {}
        }
        Ok(props)
    }

    /// The consumer group protocol: `consumer` (KIP-848, the broker assigns) or `classic`
    /// (librdkafka's default, the members assign).
    pub fn group_protocol(&self) -> String {
        self.properties(KafkaRole::Consumer)
            .ok()
            .and_then(|p| p.get("group.protocol").cloned())
            .unwrap_or_else(|| "classic".into())
    }

    /// `bootstrap.servers`, for messages.
    pub fn bootstrap_servers(&self) -> String {
        self.properties(KafkaRole::Admin)
            .ok()
            .and_then(|p| p.get("bootstrap.servers").cloned())
            .unwrap_or_default()
    }

    /// Sets a common property (`name` in dotted form), replacing any spelling of it.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.common
            .retain(|k, _| k.replace('_', ".") != name.replace('_', "."));
        self.common
            .insert(name.to_string(), KafkaValue::Str(value.into()));
    }
}

impl ConsumerSettings {
    pub fn drain_grace(&self) -> Duration {
        Duration::from_millis(self.drain_grace_ms)
    }

    pub fn close_timeout(&self) -> Duration {
        Duration::from_millis(self.close_timeout_ms)
    }
}

impl Default for Settings {
    /// The embedded defaults. They are validated by a unit test, so this cannot fail.
    fn default() -> Self {
        Settings::from_sources(None, std::iter::empty())
            .expect("embedded config/default.toml is valid")
    }
}

impl Settings {
    /// Loads the defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::from_sources(file, std::env::vars())
    }

    /// Like [`Settings::load`] with the environment given explicitly, so tests need not touch
    /// the process environment.
    pub fn from_sources(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        // librdkafka properties from the environment are taken as written, not parsed: a
        // password of "0012" must not become 12.
        let kafka_prefix = format!("{ENV_PREFIX}__KAFKA__");
        let (kafka_env, env): (Vec<_>, Vec<_>) = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .partition(|(k, _)| k.to_ascii_uppercase().starts_with(&kafka_prefix));
        let env: config::Map<String, String> = env.into_iter().collect();
        for (key, value) in kafka_env {
            let path = key[kafka_prefix.len()..].to_ascii_lowercase();
            let path = match path.split_once("__") {
                Some((table @ ("consumer" | "producer"), name)) => format!("kafka.{table}.{name}"),
                _ => format!("kafka.{path}"),
            };
            builder = builder.set_override(path, value)?;
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.topics.qualify(settings.upstream.venue);
        if settings.default_rate.is_nan() {
            settings.default_rate = settings.upstream.budget_per_second();
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Chunks in flight at most: `consumer.max_in_flight`, or a few seconds of work at the rate
    /// (`MAX_IN_FLIGHT_SECS` × `default_rate`), at least twice the workers so that none idles;
    /// with the limiter off, four per worker.
    pub fn max_in_flight(&self) -> usize {
        if let Some(n) = self.consumer.max_in_flight {
            return n;
        }
        let workers = 2 * self.n_workers;
        if self.rate_limiter.unlimited {
            return 2 * workers;
        }
        let of_the_rate = (self.calls_per_second() * MAX_IN_FLIGHT_SECS).ceil() as usize;
        of_the_rate.max(workers).min(self.manager.queue_bound)
    }

    /// Upstream calls per second: `default_rate` over what one call costs.
    pub fn calls_per_second(&self) -> f64 {
        self.default_rate / f64::from(self.upstream.call_cost().max(1))
    }

    pub fn attempt_deadline(&self) -> Duration {
        Duration::from_millis(self.worker.attempt_deadline_ms)
    }
}

impl UpstreamSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Where calls go: `base_url` if set, else the venue's own.
    pub fn base_url(&self) -> &str {
        match (&self.base_url, self.venue) {
            (Some(url), _) => url,
            (None, VenueName::Poloniex) => &self.poloniex.base_url,
            (None, VenueName::Binance) => &self.binance.base_url,
        }
    }

    /// The venue's whole budget per second, in its unit: what `default_rate` is when unset
    /// (Poloniex: its calls per second; Binance: its weight per minute over 60).
    pub fn budget_per_second(&self) -> f64 {
        match self.venue {
            VenueName::Poloniex => self.poloniex.calls_per_second,
            VenueName::Binance => self.binance.weight_limit_per_minute as f64 / 60.0,
        }
    }

    /// What one call costs in the venue's budget unit: `default_rate` is in that unit
    /// (Poloniex: 1 call; Binance: the request weight of one `aggTrades` call).
    pub fn call_cost(&self) -> u32 {
        match self.venue {
            VenueName::Poloniex => 1,
            VenueName::Binance => self.binance.weight_per_call,
        }
    }

    /// The longest window one call may ask for, in seconds; `None` when the venue has no limit.
    pub fn max_window_secs(&self) -> Option<i64> {
        match self.venue {
            VenueName::Poloniex => Some(self.poloniex.max_window_secs),
            VenueName::Binance => self.binance.max_window_secs,
        }
    }
}

/// Consumer properties of the classic group protocol only: with `group.protocol = consumer` they
/// are the broker's, and are not passed to librdkafka.
const CLASSIC_GROUP_ONLY: [&str; 4] = [
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "group.protocol.type",
];

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_redacted_in_debug() {
        let mut s = super::Settings::default();
        s.kafka.set("sasl.password", "hunter2-secret");
        s.kafka.consumer.insert(
            "ssl_key_password".into(),
            super::KafkaValue::Str("key-secret".into()),
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(!shown.contains("key-secret"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(shown.contains("bootstrap_servers"), "{shown}");
    }

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn another_venue_gets_topics_of_its_own_unless_named() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let poloniex = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(poloniex.topics.todo, "todo-chunk");
        let binance = Settings::from_sources(
            None,
            env(&[
                ("CLONER__UPSTREAM__VENUE", "binance"),
                ("CLONER__TOPICS__FINISHED", "mine"),
            ]),
        )
        .unwrap();
        assert_eq!(binance.topics.todo, "binance.todo-chunk");
        assert_eq!(binance.topics.dead_letter, "binance.todo-chunk.dlq");
        assert_eq!(binance.topics.finished, "mine", "a name given is kept");
        assert_eq!(binance.upstream.base_url(), "https://api.binance.com");
        assert_eq!(
            binance.default_rate, 100.0,
            "unset: the venue's whole budget"
        );
        assert_eq!(binance.calls_per_second(), 25.0);
        assert_eq!(poloniex.default_rate, 6.0);
        let unknown = Settings::from_sources(None, env(&[("CLONER__UPSTREAM__VENUE", "kraken")]));
        assert!(unknown.is_err());
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let s = Settings::default();
        assert_eq!(s.n_workers, 4);
        assert_eq!(s.default_rate, 6.0);
        assert_eq!(s.upstream.page_limit, 1000);
    }

    #[test]
    fn environment_overrides_top_level_and_nested_keys() {
        let s = Settings::from_sources(
            None,
            env(&[
                ("CLONER__N_WORKERS", "9"),
                ("CLONER__DEFAULT_RATE", "2.5"),
                ("CLONER__UPSTREAM__BASE_URL", "http://127.0.0.1:1234"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.n_workers, 9);
        assert_eq!(s.default_rate, 2.5);
        assert_eq!(s.upstream.base_url(), "http://127.0.0.1:1234");
    }

    #[test]
    fn file_layer_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("cloner-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("local.toml");
        std::fs::write(&file, "n_workers = 7\n[manager]\nmax_attempts = 5\n").unwrap();
        let s = Settings::from_sources(Some(&file), env(&[("CLONER__N_WORKERS", "8")])).unwrap();
        assert_eq!(s.n_workers, 8, "environment wins over the file");
        assert_eq!(s.manager.max_attempts, 5, "the file wins over the defaults");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("CLONER__N_WORKERS", "0", "n_workers"),
            ("CLONER__N_WORKERS", "many", "n_workers"),
            ("CLONER__DEFAULT_RATE", "0", "default_rate"),
            (
                "CLONER__RATE_LIMITER__JITTER_MS",
                "3",
                "rate_limiter.jitter_ms",
            ),
            ("CLONER__RATE_LIMITER__SPLIT", "half", "split"),
            ("CLONER__UPSTREAM__BASE_URL", "ftp://x", "upstream.base_url"),
            ("CLONER__MANAGER__MAX_ATTEMPTS", "0", "manager.max_attempts"),
            ("CLONER__TOPICS__TODO", "bad topic", "topics.todo"),
            ("CLONER__HTTP__LISTEN", "9464", "http.listen"),
            ("CLONER__CLONE__WINDOW_SECS", "0", "clone.window_secs"),
            ("CLONER__TOPICS__PARTITIONS", "0", "topics.partitions"),
            ("CLONER__TOPICS__REPLICATION", "0", "topics.replication"),
            ("CLONER__TOPICS__REPLICATION", "three", "replication"),
            (
                "CLONER__TOPICS__MIN_INSYNC_REPLICAS",
                "0",
                "topics.min_insync_replicas",
            ),
            (
                "CLONER__CONSUMER__MAX_IN_FLIGHT",
                "0",
                "consumer.max_in_flight",
            ),
            (
                "CLONER__CONSUMER__MAX_IN_FLIGHT",
                "20000",
                "consumer.max_in_flight",
            ),
        ];
        for (key, value, named) in cases {
            let err = Settings::from_sources(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(named),
                "{key}={value}: error {err:?} does not name {named}"
            );
        }
    }

    #[test]
    fn replication_and_min_insync_replicas_are_unset_by_default_and_taken_as_set() {
        let s = Settings::default();
        assert_eq!(s.topics.replication, None, "decided from the broker count");
        assert_eq!(s.topics.min_insync_replicas, None);
        let s = Settings::from_sources(
            None,
            env(&[
                ("CLONER__TOPICS__REPLICATION", "3"),
                ("CLONER__TOPICS__MIN_INSYNC_REPLICAS", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (s.topics.replication, s.topics.min_insync_replicas),
            (Some(3), Some(2))
        );
        let err = Settings::from_sources(
            None,
            env(&[
                ("CLONER__TOPICS__REPLICATION", "2"),
                ("CLONER__TOPICS__MIN_INSYNC_REPLICAS", "3"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("topics.min_insync_replicas") && err.contains("topics.replication"),
            "{err}"
        );
    }

    #[test]
    fn kafka_properties_layer_and_take_librdkafka_names() {
        let s = Settings::from_sources(
            None,
            env(&[
                ("CLONER__KAFKA__BOOTSTRAP_SERVERS", "broker-1:9093"),
                ("CLONER__KAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
                ("CLONER__KAFKA__CONSUMER__GROUP_ID", "cloners"),
                ("CLONER__KAFKA__PRODUCER__LINGER_MS", "20"),
                ("CLONER__KAFKA__SASL_PASSWORD", "0012"),
            ]),
        )
        .unwrap();
        let consumer = s.kafka.properties(KafkaRole::Consumer).unwrap();
        assert_eq!(consumer["bootstrap.servers"], "broker-1:9093");
        assert_eq!(consumer["security.protocol"], "SASL_SSL");
        assert_eq!(consumer["group.id"], "cloners");
        assert_eq!(consumer["session.timeout.ms"], "6000");
        assert_eq!(
            consumer["sasl.password"], "0012",
            "taken as written, not parsed"
        );
        assert!(
            !consumer.contains_key("linger.ms"),
            "producer keys stay out"
        );
        let producer = s.kafka.properties(KafkaRole::Producer).unwrap();
        assert_eq!(producer["linger.ms"], "20");
        assert!(!producer.contains_key("group.id"));
        assert_eq!(s.kafka.bootstrap_servers(), "broker-1:9093");
    }

    #[test]
    fn the_consumer_group_protocol_leaves_the_classic_protocols_keys_to_the_broker() {
        let classic = Settings::default();
        assert_eq!(classic.kafka.group_protocol(), "classic");
        let props = classic.kafka.properties(KafkaRole::Consumer).unwrap();
        assert_eq!(props["partition.assignment.strategy"], "cooperative-sticky");
        let s = Settings::from_sources(
            None,
            env(&[("CLONER__KAFKA__CONSUMER__GROUP_PROTOCOL", "consumer")]),
        )
        .unwrap();
        assert_eq!(s.kafka.group_protocol(), "consumer");
        let props = s.kafka.properties(KafkaRole::Consumer).unwrap();
        assert_eq!(props["group.protocol"], "consumer");
        for classic_only in CLASSIC_GROUP_ONLY {
            assert!(!props.contains_key(classic_only), "{classic_only} left out");
        }
        assert_eq!(props["group.id"], "cloner-worker", "the rest is kept");
        // librdkafka itself takes what is left.
        let mut config = rdkafka::ClientConfig::new();
        for (k, v) in &props {
            config.set(k, v);
        }
        config
            .create::<rdkafka::consumer::BaseConsumer>()
            .expect("librdkafka accepts the consumer protocol's properties");
    }

    #[test]
    fn dotted_kafka_names_are_accepted_in_files_but_not_twice() {
        let dir = std::env::temp_dir().join(format!("cloner-config-kafka-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("kafka.toml");
        std::fs::write(&file, "[kafka]\n\"ssl.ca.location\" = \"/ca.pem\"\n").unwrap();
        let s = Settings::from_sources(Some(&file), env(&[])).unwrap();
        assert_eq!(
            s.kafka.properties(KafkaRole::Admin).unwrap()["ssl.ca.location"],
            "/ca.pem"
        );
        let err = Settings::from_sources(
            Some(&file),
            env(&[("CLONER__KAFKA__SSL_CA_LOCATION", "/other.pem")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ssl.ca.location") && err.contains("twice"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir =
            std::env::temp_dir().join(format!("cloner-config-unknown-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("typo.toml");
        std::fs::write(&file, "n_wokers = 7\n").unwrap();
        let err = Settings::from_sources(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("n_wokers"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

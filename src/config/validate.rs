//! [`Settings::validate`]: what serde cannot check (ranges, URL shape, names Kafka accepts),
//! each refusal naming its key and what would be accepted.

use super::{ConfigError, KafkaRole, Settings, VenueName};

impl Settings {
    /// Checks what serde cannot: ranges and URL shape.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, problem: String) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid { key, problem })
        }
        if self.n_workers == 0 || self.n_workers > 1024 {
            return invalid(
                "n_workers",
                format!("must be between 1 and 1024, got {}", self.n_workers),
            );
        }
        if !(self.default_rate.is_finite() && self.default_rate > 0.0) {
            return invalid(
                "default_rate",
                format!(
                    "must be a positive number of calls per second, got {} (to turn the limiter off set rate_limiter.unlimited = true)",
                    self.default_rate
                ),
            );
        }
        let jitter = self.rate_limiter.jitter_ms;
        if !(4..=500).contains(&jitter) {
            return invalid(
                "rate_limiter.jitter_ms",
                format!("must be between 4 and 500 ms (timers alone are 2 ms late), got {jitter}"),
            );
        }
        if self.manager.max_attempts == 0 {
            return invalid("manager.max_attempts", "must be at least 1".into());
        }
        if self.manager.queue_bound == 0 {
            return invalid("manager.queue_bound", "must be at least 1".into());
        }
        if self.worker.attempt_deadline_ms == 0 {
            return invalid("worker.attempt_deadline_ms", "must be at least 1".into());
        }
        let u = &self.upstream;
        let base_url = u.base_url();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return invalid(
                "upstream.base_url",
                format!("must start with http:// or https://, got {base_url:?}"),
            );
        }
        let max_window = match u.venue {
            VenueName::Poloniex => "upstream.poloniex.max_window_secs",
            VenueName::Binance => "upstream.binance.max_window_secs",
        };
        if u.max_window_secs().is_some_and(|secs| secs < 1) {
            return invalid(max_window, "must be at least 1 (or unset: no limit)".into());
        }
        if u.venue == VenueName::Binance && u.binance.weight_per_call == 0 {
            return invalid(
                "upstream.binance.weight_per_call",
                "must be at least 1".into(),
            );
        }
        if u.page_limit == 0 {
            return invalid("upstream.page_limit", "must be at least 1".into());
        }
        if u.request_timeout_ms == 0 {
            return invalid("upstream.request_timeout_ms", "must be at least 1".into());
        }
        if u.max_body_bytes < 1024 {
            return invalid(
                "upstream.max_body_bytes",
                format!("must be at least 1024, got {}", u.max_body_bytes),
            );
        }
        if u.backoff_base_ms > u.backoff_max_ms {
            return invalid(
                "upstream.backoff_base_ms",
                format!(
                    "must not exceed upstream.backoff_max_ms ({} > {})",
                    u.backoff_base_ms, u.backoff_max_ms
                ),
            );
        }
        for role in [KafkaRole::Consumer, KafkaRole::Producer] {
            self.kafka.properties(role)?;
        }
        if self.clone.window_secs == Some(0) {
            return invalid("clone.window_secs", "must be at least 1".into());
        }
        if self.clone.answer_timeout_ms == 0 {
            return invalid("clone.answer_timeout_ms", "must be at least 1".into());
        }
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return invalid(
                "http.listen",
                format!(
                    "must be an address and port such as 0.0.0.0:9464 (or empty to turn it off), got {:?}",
                    self.http.listen
                ),
            );
        }
        let t = &self.topics;
        for (key, name) in [
            ("topics.todo", &t.todo),
            ("topics.finished", &t.finished),
            ("topics.dead_letter", &t.dead_letter),
        ] {
            if !valid_topic_name(name) {
                return invalid(
                    key,
                    format!("{name:?} is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"),
                );
            }
        }
        if t.todo == t.finished || t.todo == t.dead_letter {
            return invalid(
                "topics.todo",
                format!(
                    "must differ from topics.finished and topics.dead_letter, got {:?}",
                    t.todo
                ),
            );
        }
        if t.partitions < 1 {
            return invalid(
                "topics.partitions",
                format!("must be at least 1, got {}", t.partitions),
            );
        }
        if let Some(replication) = t.replication.filter(|r| *r < 1) {
            return invalid(
                "topics.replication",
                format!(
                    "must be at least 1, got {replication} (leave it unset to decide from the broker count)"
                ),
            );
        }
        if let Some(min) = t.min_insync_replicas {
            if min < 1 {
                return invalid(
                    "topics.min_insync_replicas",
                    format!("must be at least 1, got {min} (leave it unset for the default)"),
                );
            }
            if let Some(replication) = t.replication.filter(|r| min > *r) {
                return invalid(
                    "topics.min_insync_replicas",
                    format!(
                        "must not exceed topics.replication ({min} > {replication}): no acks=all write could succeed"
                    ),
                );
            }
        }
        let c = &self.consumer;
        if let Some(n) = c
            .max_in_flight
            .filter(|&n| n == 0 || n > self.manager.queue_bound)
        {
            return invalid(
                "consumer.max_in_flight",
                format!(
                    "must be between 1 and manager.queue_bound ({}), got {n}",
                    self.manager.queue_bound
                ),
            );
        }
        if c.delivery_timeout_ms == 0 {
            return invalid("consumer.delivery_timeout_ms", "must be at least 1".into());
        }
        if c.close_timeout_ms == 0 {
            return invalid("consumer.close_timeout_ms", "must be at least 1".into());
        }
        Ok(())
    }
}

/// Kafka's rule for topic names.
fn valid_topic_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

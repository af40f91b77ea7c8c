//! `BrokerWatch`: what the service says when its brokers go away — once.
//!
//! librdkafka reports a lost broker many times over: an error callback for every failed
//! connection and for "all brokers down", and a `FAIL` log line per reconnect attempt, every few
//! seconds for as long as the broker is gone. An operator needs one line that says what is
//! wrong and that nothing is lost, then one when it is over. The watch turns the first
//! connectivity error into one ERROR line, the repeats into debug lines, and the first sign of
//! life afterwards (a broker `UP` in the statistics, a message, an acknowledged delivery) into
//! one INFO line.
//!
//! A definite refusal of the security settings (a password changed on the broker while the
//! service runs, a certificate renewed by another CA) is not an outage: it is logged at ERROR as
//! [`SecurityFailure`] words it, with the key to fix, each time librdkafka reports it (at most
//! every 30 s: librdkafka suppresses repeats).
//!
//! It must never hide an error that is not about reaching the brokers: those are logged as
//! librdkafka gives them. Nor log a secret: the lines are scrubbed of the configured ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;

use crate::kafka::security::{redact, SecurityFailure};

/// Shared by the service's clients (consumer and producer): one watch, one line per outage.
#[derive(Debug)]
pub struct BrokerWatch {
    /// `kafka.bootstrap_servers`, for the line.
    bootstrap: String,
    /// The clients' librdkafka properties: what a refusal's line quotes, and the secrets it
    /// scrubs from every line.
    properties: BTreeMap<String, String>,
    /// Set by the first connectivity error, cleared by the first sign of life.
    down: AtomicBool,
}

impl BrokerWatch {
    /// For clients with these librdkafka `properties` (their `bootstrap.servers` is quoted).
    pub fn new(properties: BTreeMap<String, String>) -> BrokerWatch {
        BrokerWatch {
            bootstrap: properties
                .get("bootstrap.servers")
                .cloned()
                .unwrap_or_default(),
            properties,
            down: AtomicBool::new(false),
        }
    }

    /// A definite refusal of the security settings, if `text` is one: logged, with the key
    /// to fix. A protocol mix-up is not one here: for settings that have worked, a connection
    /// closed during its first request is a broker going away, an outage.
    fn refused(&self, code: Option<RDKafkaErrorCode>, text: &str) -> bool {
        match self.refusal(code, text) {
            Some(failure) => {
                log::error!("{failure}; librdkafka keeps trying");
                true
            }
            None => false,
        }
    }

    fn refusal(&self, code: Option<RDKafkaErrorCode>, text: &str) -> Option<SecurityFailure> {
        SecurityFailure::from_librdkafka(code, text, &self.properties)
            .filter(SecurityFailure::is_definite)
    }

    /// Whether the brokers are known to be unreachable now.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// A connectivity error: ERROR the first time, debug while it lasts.
    fn unreachable(&self, what: &str) {
        if self.down.swap(true, Ordering::Relaxed) {
            log::debug!("kafka still unreachable: {what}");
        } else {
            log::error!(
                "Kafka at {} cannot be reached ({what}); librdkafka keeps trying. Nothing is lost meanwhile: results wait to be produced and offsets to be committed",
                self.bootstrap
            );
        }
    }

    /// A sign that the brokers answer: INFO once after an outage, nothing otherwise. Cheap
    /// enough for every message.
    pub fn answered(&self) {
        if self.is_down() && self.down.swap(false, Ordering::Relaxed) {
            log::info!("Kafka at {} answers again", self.bootstrap);
        }
    }

    /// librdkafka's error callback, through the watch.
    pub fn error(&self, error: KafkaError, reason: &str) {
        let reason = &redact(reason, &self.properties);
        // The FAIL log line said it already (the error event repeats it).
        if self.refusal(error.rdkafka_error_code(), reason).is_some() {
            return;
        }
        match error.rdkafka_error_code() {
            Some(code) if is_connectivity(code) => self.unreachable(reason),
            _ => log::error!("librdkafka: {error}: {reason}"),
        }
    }

    /// librdkafka's log callback, through the watch: its per-attempt connection failures
    /// (`FAIL`) count as connectivity errors; every other line keeps its level.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let message = &redact(message, &self.properties);
        if fac == "FAIL" {
            if self.refused(None, message) {
                return;
            }
            return self.unreachable(message);
        }
        let level = log_level(level);
        log::log!(target: "librdkafka", level, "librdkafka: {fac} {message}");
    }
}

/// Errors that mean "the brokers cannot be reached", not "this request was refused".
pub fn is_connectivity(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::NetworkException
    )
}

/// The service's producer context: its errors and log lines through the [`BrokerWatch`].
pub struct WatchedContext(pub std::sync::Arc<BrokerWatch>);

impl ClientContext for WatchedContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.0.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(error, reason);
    }
}

/// The `log` level of a librdkafka log line.
pub fn log_level(level: RDKafkaLogLevel) -> log::Level {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => log::Level::Error,
        RDKafkaLogLevel::Warning => log::Level::Warn,
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => log::Level::Info,
        RDKafkaLogLevel::Debug => log::Level::Debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> BrokerWatch {
        BrokerWatch::new(BTreeMap::from([(
            "bootstrap.servers".to_string(),
            "b:9092".to_string(),
        )]))
    }

    #[test]
    fn a_refused_password_is_not_an_outage() {
        let watch = watch();
        watch.log(
            RDKafkaLogLevel::Error,
            "FAIL",
            "sasl_ssl://b:9092/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512",
        );
        watch.error(
            KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL authentication error: Authentication failed",
        );
        assert!(!watch.is_down());
    }

    #[test]
    fn a_disconnect_during_the_first_request_is_still_an_outage() {
        let watch = watch();
        watch.log(
            RDKafkaLogLevel::Info,
            "FAIL",
            "b:9092/1: Disconnected: connection closed by peer: receive 0 after POLLIN (after 2ms in state APIVERSION_QUERY)",
        );
        assert!(watch.is_down(), "a broker going away mid-connect");
    }

    #[test]
    fn an_outage_is_one_transition_each_way() {
        let watch = watch();
        watch.answered();
        assert!(!watch.is_down(), "nothing to recover from");
        let transport = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        watch.error(transport.clone(), "connection refused");
        assert!(watch.is_down());
        watch.error(transport, "connection refused");
        watch.log(RDKafkaLogLevel::Error, "FAIL", "Connect to b:9092 failed");
        assert!(watch.is_down(), "still down, and said once");
        watch.answered();
        assert!(!watch.is_down(), "answered again");
    }

    #[test]
    fn other_errors_do_not_count_as_an_outage() {
        let watch = watch();
        let refused = KafkaError::Global(RDKafkaErrorCode::TopicAuthorizationFailed);
        watch.error(refused, "not authorized");
        watch.log(RDKafkaLogLevel::Warning, "REQTMOUT", "timed out");
        assert!(!watch.is_down());
    }
}

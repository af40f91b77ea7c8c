//! The start-up probe: does the cluster answer these settings, and if not, why.
//!
//! A librdkafka client whose password is wrong, whose CA does not know the broker's certificate
//! or which speaks plaintext to a TLS port never fails: it reconnects for ever, and a metadata
//! request just waits out its timeout. So before the service (or `clone`, or `topics`) makes
//! its real clients, [`reach`] makes a short-lived one of the same role and properties, asks it
//! for the cluster's metadata on a thread of its own, and meanwhile serves the client's log and
//! error events: the first refusal that [`SecurityFailure`] recognises ends the wait at once,
//! with the key to fix, instead of "cannot be reached" after the whole timeout.
//!
//! The probe goes first so that the real clients do not start their own reconnect loop (and
//! its log lines) with settings known to be wrong. It must never log a secret: librdkafka's
//! lines are forwarded with the configured secrets scrubbed ([`redact`]), and its configuration
//! dump (`debug=conf`) redacts them itself.

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, Producer as _, ProducerContext};
use rdkafka::ClientContext;

use crate::config::{KafkaRole, KafkaSettings};
use crate::kafka::client::KafkaSetupError;
use crate::kafka::security::{redact, SecurityFailure};

/// How long a refusal that a retry could get past (a disconnect during the first request can
/// also be a broker shutting down) waits for the metadata to come anyway, through another
/// attempt or another bootstrap broker, before it fails the start.
const SECOND_CHANCE: Duration = Duration::from_secs(2);

/// How often the probe's log and error events are served while the metadata request waits.
const SERVE_EVERY: Duration = Duration::from_millis(50);

/// A cluster that answered the probe.
pub struct Reached {
    /// Every topic the client may describe, and the brokers.
    pub metadata: Metadata,
    probe: Arc<ProbeClient>,
}

impl Reached {
    /// Why the cluster does not list `topic`, asked of it by name: e.g.
    /// `TopicAuthorizationFailed` when the ACLs hide it from this user, `UnknownTopicOrPartition`
    /// when it does not exist. `None` if it is listed after all, or the request fails.
    pub fn topic_error(&self, topic: &str, timeout: Duration) -> Option<RDKafkaErrorCode> {
        let metadata = self
            .probe
            .client()
            .fetch_metadata(Some(topic), timeout)
            .ok()?;
        let error = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)?
            .error()?;
        Some(error.into())
    }
}

/// The cluster's metadata, asked with `role`'s properties, within `timeout`; or why not: a
/// [`KafkaSetupError::Security`] as soon as librdkafka reports a refusal of the settings,
/// [`KafkaSetupError::Unreachable`] when nothing answered in time.
pub fn reach(
    kafka: &KafkaSettings,
    role: KafkaRole,
    timeout: Duration,
) -> Result<Reached, KafkaSetupError> {
    let properties = kafka.properties(role)?;
    let mut config = ClientConfig::new();
    for (name, value) in &properties {
        config.set(name, value);
    }
    // A peer's close is a FAIL line at librdkafka's info level, which it would not even
    // produce under RUST_LOG=warn; the lines are still filtered by the logger when forwarded.
    config.set_log_level(RDKafkaLogLevel::Info);
    // A producer's metadata request for one topic would have the broker create it, with the
    // broker's defaults rather than what `topics create` decides.
    config.set("allow.auto.create.topics", "false");
    let context = ProbeContext {
        properties: properties.clone(),
        refused: Mutex::new(None),
    };
    let probe = Arc::new(ProbeClient::new(role, &config, context)?);
    let (answered, answer) = mpsc::channel();
    {
        let probe = probe.clone();
        // Not joined: after a refusal it may still wait out its request (at most `timeout`),
        // then it drops its handle on the client.
        std::thread::Builder::new()
            .name("kafka-probe".into())
            .spawn(move || {
                let _ = answered.send(probe.client().fetch_metadata(None, timeout));
            })
            .expect("a thread for the Kafka probe");
    }
    let bootstrap = kafka.bootstrap_servers();
    let started = Instant::now();
    let mut refused_at = None;
    loop {
        probe.serve(SERVE_EVERY);
        let refusal = probe.context().refusal();
        if let Some(refusal) = &refusal {
            let since = *refused_at.get_or_insert_with(Instant::now);
            if refusal.is_definite() || since.elapsed() >= SECOND_CHANCE {
                log::debug!(
                    "kafka probe of {bootstrap}: refused after {:?}",
                    started.elapsed()
                );
                return Err(KafkaSetupError::Security(Box::new(refusal.clone())));
            }
        }
        match answer.try_recv() {
            Ok(Ok(metadata)) => {
                if let Some(refusal) = refusal {
                    log::warn!("{refusal}; the cluster answered through another attempt");
                }
                log::debug!(
                    "kafka probe of {bootstrap}: answered after {:?}",
                    started.elapsed()
                );
                return Ok(Reached { metadata, probe });
            }
            Ok(Err(source)) => {
                // The last events may say why.
                probe.serve(Duration::ZERO);
                if let Some(refusal) = probe.context().refusal() {
                    return Err(KafkaSetupError::Security(Box::new(refusal)));
                }
                return Err(KafkaSetupError::Unreachable {
                    bootstrap,
                    timeout,
                    source,
                });
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => unreachable!("the probe thread answers"),
        }
    }
}

/// The probe's client: a consumer for the consumer's properties (it never subscribes, so it
/// joins no group), a producer otherwise, so that librdkafka warns about no property as one
/// of the other kind.
enum ProbeClient {
    Consumer(BaseConsumer<ProbeContext>),
    Producer(BaseProducer<ProbeContext>),
}

impl ProbeClient {
    fn new(
        role: KafkaRole,
        config: &ClientConfig,
        context: ProbeContext,
    ) -> Result<ProbeClient, KafkaSetupError> {
        let made = match role {
            KafkaRole::Consumer => {
                BaseConsumer::from_config_and_context(config, context).map(ProbeClient::Consumer)
            }
            KafkaRole::Producer | KafkaRole::Admin => {
                BaseProducer::from_config_and_context(config, context).map(ProbeClient::Producer)
            }
        };
        made.map_err(|source| KafkaSetupError::client(role, source))
    }

    fn client(&self) -> &Client<ProbeContext> {
        match self {
            ProbeClient::Consumer(c) => c.client(),
            ProbeClient::Producer(p) => p.client(),
        }
    }

    fn context(&self) -> &ProbeContext {
        self.client().context()
    }

    /// Serves the events waiting (log lines, errors), waiting up to `wait` for one.
    fn serve(&self, wait: Duration) {
        match self {
            ProbeClient::Consumer(c) => {
                // Errors come back here too; the context has seen them already.
                let _ = c.poll(wait);
            }
            ProbeClient::Producer(p) => p.poll(wait),
        }
    }
}

/// Keeps the first refusal librdkafka reports; forwards its log lines, secrets scrubbed.
struct ProbeContext {
    properties: BTreeMap<String, String>,
    refused: Mutex<Option<SecurityFailure>>,
}

impl ProbeContext {
    fn refusal(&self) -> Option<SecurityFailure> {
        self.refused.lock().expect("not poisoned").clone()
    }

    fn saw(&self, code: Option<RDKafkaErrorCode>, text: &str) -> bool {
        let Some(failure) = SecurityFailure::from_librdkafka(code, text, &self.properties) else {
            return false;
        };
        self.refused
            .lock()
            .expect("not poisoned")
            .get_or_insert(failure);
        true
    }
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // A refusal becomes the start's error, said once; other connection failures are said by
        // the error that ends the wait, if nothing answers.
        if fac == "FAIL" {
            if !self.saw(None, message) {
                log::debug!(target: "librdkafka", "librdkafka (probe): {fac} {}", redact(message, &self.properties));
            }
            return;
        }
        let level = crate::kafka::broker_watch::log_level(level);
        log::log!(target: "librdkafka", level, "librdkafka (probe): {fac} {}", redact(message, &self.properties));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if !self.saw(error.rdkafka_error_code(), reason) {
            log::debug!("kafka probe: {error}: {}", redact(reason, &self.properties));
        }
    }
}

impl ConsumerContext for ProbeContext {}

impl ProducerContext for ProbeContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

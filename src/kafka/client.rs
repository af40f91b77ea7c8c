//! librdkafka clients from configuration.
//!
//! Every property of the `[kafka]` tables goes to librdkafka as written; on top, the ones that
//! the reliability contract (`docs/reliability.md`) depends on are enforced here, whatever the
//! configuration says: an idempotent producer with `acks=all`, and a consumer whose offsets are
//! stored by the service only (after a chunk's result is acknowledged) and committed by
//! librdkafka from that store.
//!
//! It must never hide a librdkafka error: each is returned with the property or broker at fault.
//! Nor may it put a secret in one: a property's value is never quoted.

use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientContext;

use crate::config::{ConfigError, KafkaRole, KafkaSettings, Settings};
use crate::kafka::probe;
use crate::kafka::security::SecurityFailure;

/// Why a Kafka client could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// librdkafka's words, without the value it was given: that may be a secret under a
    /// misspelt name (see [`KafkaSetupError::client`]).
    #[error("librdkafka refused the {role:?} configuration: {reason}; check the [kafka] tables")]
    Client { role: KafkaRole, reason: String },
    /// The cluster answered, and refused the security settings (credentials, CA, protocol):
    /// the message names the key to fix.
    #[error(transparent)]
    Security(Box<SecurityFailure>),
    #[error(
        "cannot reach Kafka at {bootstrap} within {timeout:?}: {source}. Is the broker up? Set kafka.bootstrap_servers (CLONER__KAFKA__BOOTSTRAP_SERVERS) to it; scripts/kafka-up starts a local one"
    )]
    Unreachable {
        bootstrap: String,
        timeout: Duration,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "topic `{topic}` does not exist on {bootstrap}; create it with `cloner-worker topics create` (or the broker's own tools)"
    )]
    MissingTopic { topic: String, bootstrap: String },
    /// The topic exists, or may: the cluster's ACLs hide it from this user.
    #[error(
        "user {user} may not use topic `{topic}` on {bootstrap} (TOPIC_AUTHORIZATION_FAILED): the cluster's ACLs must allow it the service's topics (serve: Describe and Read on the todo topic, Describe and Write on the results and dead-letter topics, Read on the group kafka.consumer.group_id; clone: Write on the todo topic, Read on the results topic); grant them (kafka-acls), or set kafka.sasl_username / kafka.sasl_password (CLONER__KAFKA__SASL_USERNAME / CLONER__KAFKA__SASL_PASSWORD) to a user who has them"
    )]
    NotAuthorized {
        topic: String,
        bootstrap: String,
        /// `sasl.username`, or how the client is known without one.
        user: String,
    },
}

impl KafkaSetupError {
    /// librdkafka's refusal to make a `role` client. A property it does not know is reported
    /// with its value, which under a misspelt name (`sasl_pasword`) is a secret: only the
    /// description and the name are kept.
    pub fn client(role: KafkaRole, source: KafkaError) -> KafkaSetupError {
        let reason = match source {
            KafkaError::ClientConfig(_, description, name, _value) => {
                format!("{description} (property {name})")
            }
            other => other.to_string(),
        };
        KafkaSetupError::Client { role, reason }
    }
}

/// The librdkafka configuration for `role`.
pub fn client_config(
    kafka: &KafkaSettings,
    role: KafkaRole,
) -> Result<ClientConfig, KafkaSetupError> {
    let mut config = ClientConfig::new();
    for (name, value) in kafka.properties(role)? {
        config.set(name, value);
    }
    for &(_, name, value) in ENFORCED.iter().filter(|(r, ..)| *r == role) {
        if let Some(given) = config.get(name).filter(|given| *given != value) {
            log::warn!(
                "kafka property {name} = {given} is replaced by {value}: at-least-once delivery depends on it"
            );
        }
        config.set(name, value);
    }
    Ok(config)
}

/// What the reliability contract needs, whatever the configuration says. Consumer: offsets are
/// stored by the service once a chunk's result is acknowledged, in partition order, and
/// librdkafka commits what is stored, never what was merely read. Producer: no result is lost
/// or duplicated by the producer's own retries.
const ENFORCED: [(KafkaRole, &str, &str); 4] = [
    (KafkaRole::Consumer, "enable.auto.offset.store", "false"),
    (KafkaRole::Consumer, "enable.auto.commit", "true"),
    (KafkaRole::Producer, "enable.idempotence", "true"),
    (KafkaRole::Producer, "acks", "all"),
];

/// The producer of results and dead letters; `consumer.delivery_timeout_ms` (librdkafka's
/// `delivery.timeout.ms`) bounds one delivery's retries.
pub fn producer(settings: &Settings) -> Result<FutureProducer, KafkaSetupError> {
    producer_with(settings, DefaultClientContext)
}

/// [`producer`] with `context` (the service's reports lost brokers through its watch).
pub fn producer_with<C: ClientContext + 'static>(
    settings: &Settings,
    context: C,
) -> Result<FutureProducer<C>, KafkaSetupError> {
    let mut config = client_config(&settings.kafka, KafkaRole::Producer)?;
    config.set(
        "message.timeout.ms",
        settings.consumer.delivery_timeout_ms.to_string(),
    );
    FutureProducer::from_config_and_context(&config, context)
        .map_err(|source| KafkaSetupError::client(KafkaRole::Producer, source))
}

/// A consumer of type `T` (stream or base) with `context`.
pub fn consumer<T, C>(kafka: &KafkaSettings, context: C) -> Result<T, KafkaSetupError>
where
    C: ConsumerContext,
    T: FromClientConfigAndContext<C>,
{
    let config = client_config(kafka, KafkaRole::Consumer)?;
    T::from_config_and_context(&config, context)
        .map_err(|source| KafkaSetupError::client(KafkaRole::Consumer, source))
}

pub fn admin(kafka: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, KafkaSetupError> {
    let config = client_config(kafka, KafkaRole::Admin)?;
    AdminClient::from_config(&config)
        .map_err(|source| KafkaSetupError::client(KafkaRole::Admin, source))
}

/// Asks the cluster for its metadata with `role`'s properties (blocking, up to `timeout`) and
/// checks that `topics` exist: fails with an error that says what to do when the cluster
/// refuses the security settings (at once, see [`probe`]), cannot be reached, or a topic is
/// missing or hidden by the ACLs. librdkafka itself would retry in silence forever. Call it before making the real
/// clients, so that they never start a reconnect loop with settings known to be wrong. The
/// metadata is returned, so a caller that needs the brokers or the topics asks once.
pub fn check_topics(
    kafka: &KafkaSettings,
    role: KafkaRole,
    topics: &[&str],
    timeout: Duration,
) -> Result<Metadata, KafkaSetupError> {
    let reached = probe::reach(kafka, role, timeout)?;
    let bootstrap = kafka.bootstrap_servers();
    for topic in topics {
        let found = reached
            .metadata
            .topics()
            .iter()
            .any(|t| t.name() == *topic && t.error().is_none() && !t.partitions().is_empty());
        if found {
            continue;
        }
        // The listing leaves out what the ACLs hide; asked by name, the cluster says which.
        if reached.topic_error(topic, timeout) == Some(RDKafkaErrorCode::TopicAuthorizationFailed) {
            let user = kafka.properties(role)?.get("sasl.username").cloned();
            return Err(KafkaSetupError::NotAuthorized {
                topic: topic.to_string(),
                bootstrap,
                user: user.unwrap_or_else(|| "(no kafka.sasl_username)".into()),
            });
        }
        return Err(KafkaSetupError::MissingTopic {
            topic: topic.to_string(),
            bootstrap,
        });
    }
    Ok(reached.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_secret_is_not_quoted() {
        let mut settings = Settings::default();
        settings.kafka.set("sasl.pasword", "hunter2-secret");
        let Err(err) = admin(&settings.kafka) else {
            panic!("librdkafka refuses an unknown property");
        };
        // With its causes, as `main` prints it.
        let message = format!("{:?}", anyhow::Error::from(err));
        assert!(!message.contains("hunter2-secret"), "{message}");
        assert!(message.contains("sasl.pasword"), "{message}");
    }

    #[test]
    fn reliability_properties_win_over_configuration() {
        let mut settings = Settings::default();
        settings
            .kafka
            .producer
            .insert("acks".into(), crate::config::KafkaValue::Str("1".into()));
        settings.kafka.consumer.insert(
            "enable_auto_offset_store".into(),
            crate::config::KafkaValue::Bool(true),
        );
        let producer = client_config(&settings.kafka, KafkaRole::Producer).unwrap();
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        let consumer = client_config(&settings.kafka, KafkaRole::Consumer).unwrap();
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("group.id"), Some("cloner-worker"));
    }
}

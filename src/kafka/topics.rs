//! `cloner-worker topics create|delete|list`: the service's topics through the admin API.
//!
//! Creating a topic that exists is not an error (the command can run at every deploy). A broker
//! that does not implement the admin API (librdkafka's mock cluster is one) gets an error that
//! says so, within the request timeout, instead of a hang.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Settings;
use crate::kafka::client::{self, KafkaSetupError};

/// How long one admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a topics command failed.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error(transparent)]
    Setup(Box<KafkaSetupError>),
    #[error(
        "the broker at {bootstrap} does not support {operation} ({code}); create the topics with the broker's own tools (a local test broker, scripts/kafka-up, creates them itself)"
    )]
    Unsupported {
        bootstrap: String,
        operation: &'static str,
        code: String,
    },
    #[error(
        "the broker at {bootstrap} gave no answer to {operation} within {timeout:?}; it may not support it (librdkafka's mock cluster, which scripts/kafka-up starts, does not, and creates its topics itself): create the topics with the broker's own tools"
    )]
    NoAnswer {
        bootstrap: String,
        operation: &'static str,
        timeout: Duration,
    },
    #[error("{operation} failed at {bootstrap}: {source}")]
    Request {
        bootstrap: String,
        operation: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("topic `{topic}`: {code}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

impl From<KafkaSetupError> for TopicsError {
    fn from(e: KafkaSetupError) -> Self {
        TopicsError::Setup(Box::new(e))
    }
}

/// What became of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    AlreadyExisted,
    Deleted,
    DidNotExist,
}

/// The service's topics: todo, finished, dead letters.
pub fn service_topics(settings: &Settings) -> [&str; 3] {
    [
        settings.topics.todo.as_str(),
        settings.topics.finished.as_str(),
        settings.topics.dead_letter.as_str(),
    ]
}

fn options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT))
}

fn request_error(settings: &Settings, operation: &'static str, err: KafkaError) -> TopicsError {
    let bootstrap = settings.kafka.bootstrap_servers();
    let code = match &err {
        KafkaError::AdminOp(code) => Some(*code),
        other => other.rdkafka_error_code(),
    };
    match code {
        Some(
            code @ (RDKafkaErrorCode::UnsupportedVersion
            | RDKafkaErrorCode::UnsupportedFeature
            | RDKafkaErrorCode::InvalidRequest),
        ) => TopicsError::Unsupported {
            bootstrap,
            operation,
            code: code.to_string(),
        },
        Some(RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut) => {
            TopicsError::NoAnswer {
                bootstrap,
                operation,
                timeout: ADMIN_TIMEOUT,
            }
        }
        _ => TopicsError::Request {
            bootstrap,
            operation,
            source: err,
        },
    }
}

/// An admin client, once the broker has answered (an unreachable one is an error that says what
/// to do, not a silent wait), the bootstrap address for messages, and the cluster's metadata as
/// that answer brought it (its brokers and topics; asked for once).
fn connect(
    settings: &Settings,
) -> Result<(AdminClient<DefaultClientContext>, String, Metadata), TopicsError> {
    let admin = client::admin(&settings.kafka)?;
    let bootstrap = settings.kafka.bootstrap_servers();
    let metadata = client::check_topics(admin.inner(), &bootstrap, &[], ADMIN_TIMEOUT)?;
    Ok((admin, bootstrap, metadata))
}

/// Creates `names` with the configured partitions and replication.
pub async fn create(
    settings: &Settings,
    names: &[&str],
) -> Result<Vec<(String, TopicOutcome)>, TopicsError> {
    let (admin, bootstrap, _) = connect(settings)?;
    let new: Vec<NewTopic> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.topics.partitions,
                TopicReplication::Fixed(settings.topics.replication),
            )
        })
        .collect();
    let results = admin
        .create_topics(&new, &options())
        .await
        .map_err(|e| request_error(settings, "CreateTopics", e))?;
    outcomes(
        results,
        &bootstrap,
        "CreateTopics",
        (TopicOutcome::Created, TopicOutcome::AlreadyExisted),
        RDKafkaErrorCode::TopicAlreadyExists,
    )
}

/// Deletes `names`; a topic that does not exist is reported, not an error.
pub async fn delete(
    settings: &Settings,
    names: &[&str],
) -> Result<Vec<(String, TopicOutcome)>, TopicsError> {
    let (admin, bootstrap, _) = connect(settings)?;
    let results = admin
        .delete_topics(names, &options())
        .await
        .map_err(|e| request_error(settings, "DeleteTopics", e))?;
    outcomes(
        results,
        &bootstrap,
        "DeleteTopics",
        (TopicOutcome::Deleted, TopicOutcome::DidNotExist),
        RDKafkaErrorCode::UnknownTopicOrPartition,
    )
}

/// Per-topic results of an admin `operation`: `done` on success, `benign` where the error is
/// `benign_code` (the topic was already as asked), an error otherwise.
fn outcomes(
    results: Vec<rdkafka::admin::TopicResult>,
    bootstrap: &str,
    operation: &'static str,
    (done, benign): (TopicOutcome, TopicOutcome),
    benign_code: RDKafkaErrorCode,
) -> Result<Vec<(String, TopicOutcome)>, TopicsError> {
    results
        .into_iter()
        .map(|result| match result {
            Ok(topic) => Ok((topic, done.clone())),
            Err((topic, code)) if code == benign_code => Ok((topic, benign.clone())),
            Err((_, code)) if is_unsupported(code) => Err(TopicsError::Unsupported {
                bootstrap: bootstrap.to_string(),
                operation,
                code: code.to_string(),
            }),
            Err((topic, code)) => Err(TopicsError::Topic { topic, code }),
        })
        .collect()
}

fn is_unsupported(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnsupportedVersion
            | RDKafkaErrorCode::UnsupportedFeature
            | RDKafkaErrorCode::InvalidRequest
    )
}

/// A topic as `topics list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: usize,
    /// Replicas of partition 0.
    pub replication: usize,
}

/// Every topic of the cluster except its internal ones, by name.
pub fn list(settings: &Settings) -> Result<Vec<TopicInfo>, TopicsError> {
    let (_, _, metadata) = connect(settings)?;
    let mut topics: Vec<TopicInfo> = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| TopicInfo {
            name: t.name().to_string(),
            partitions: t.partitions().len(),
            replication: t.partitions().first().map_or(0, |p| p.replicas().len()),
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

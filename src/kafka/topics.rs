//! `cloner-worker topics create|delete|list|brokers`: the service's topics through the admin API.
//!
//! Creating a topic that exists is not an error (the command can run at every deploy). Unless
//! configured, the replication and `min.insync.replicas` follow the cluster's broker count
//! ([`decide_replication`]), so that `acks=all` guards against a broker's loss. A broker
//! that does not implement the admin API (librdkafka's mock cluster is one) gets an error that
//! says so, within the request timeout, instead of a hang.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{KafkaRole, Settings};
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
    #[error("cannot create the topics on {bootstrap}: {reason}")]
    Refused {
        bootstrap: String,
        reason: ReplicationRefused,
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
    let metadata = client::check_topics(&settings.kafka, KafkaRole::Admin, &[], ADMIN_TIMEOUT)?;
    let admin = client::admin(&settings.kafka)?;
    let bootstrap = settings.kafka.bootstrap_servers();
    Ok((admin, bootstrap, metadata))
}

/// Creates `names` with the configured partitions, and with the replication and
/// `min.insync.replicas` that [`decide_replication`] chooses for the brokers the cluster's
/// metadata lists; returns that choice with what became of each topic. A topic that exists is
/// left as it is, whatever its replication.
pub async fn create(
    settings: &Settings,
    names: &[&str],
) -> Result<(ReplicationPlan, Vec<(String, TopicOutcome)>), TopicsError> {
    let (admin, bootstrap, metadata) = connect(settings)?;
    let plan = decide_replication(
        metadata.brokers().len(),
        settings.topics.replication,
        settings.topics.min_insync_replicas,
    )
    .map_err(|reason| TopicsError::Refused {
        bootstrap: bootstrap.clone(),
        reason,
    })?;
    log::info!("creating {names:?} on {bootstrap}: {}", plan.note);
    let min_insync = plan.min_insync_replicas.map(|m| m.to_string());
    let new: Vec<NewTopic> = names
        .iter()
        .map(|name| {
            let topic = NewTopic::new(
                name,
                settings.topics.partitions,
                TopicReplication::Fixed(plan.replication),
            );
            match &min_insync {
                Some(min) => topic.set("min.insync.replicas", min),
                None => topic,
            }
        })
        .collect();
    let results = admin
        .create_topics(&new, &options())
        .await
        .map_err(|e| request_error(settings, "CreateTopics", e))?;
    let outcomes = outcomes(
        results,
        &bootstrap,
        "CreateTopics",
        (TopicOutcome::Created, TopicOutcome::AlreadyExisted),
        RDKafkaErrorCode::TopicAlreadyExists,
    )?;
    Ok((plan, outcomes))
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

/// A broker as the cluster's metadata names it (`topics brokers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    /// `host:port`, as the broker advertises it.
    pub address: String,
}

/// The brokers that the metadata of the broker first answering lists, by id. A broker appears
/// once it has registered with the cluster, which is what `scripts/kafka-up` waits for.
pub fn brokers(settings: &Settings) -> Result<Vec<BrokerInfo>, TopicsError> {
    let (_, _, metadata) = connect(settings)?;
    let mut brokers: Vec<BrokerInfo> = metadata
        .brokers()
        .iter()
        .map(|b| BrokerInfo {
            id: b.id(),
            address: format!("{}:{}", b.host(), b.port()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    Ok(brokers)
}

/// The replication `topics create` gives the topics, with `min.insync.replicas`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationPlan {
    /// Replicas of each partition.
    pub replication: i32,
    /// `min.insync.replicas` set on the topics; `None` leaves the broker's default (1 unless
    /// the cluster changed it).
    pub min_insync_replicas: Option<i32>,
    /// One line on what was decided and why, for the operator.
    pub note: String,
}

/// Why the configured replication cannot be used on the cluster that answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationRefused {
    #[error("the cluster's metadata lists no broker; nothing can hold a replica")]
    NoBrokers,
    #[error(
        "topics.replication is {replication} but {} answered, and a partition cannot have more replicas than the cluster has brokers: set topics.replication (CLONER__TOPICS__REPLICATION) to at most {brokers}, or leave it unset to decide from the broker count",
        brokers_answered(*brokers)
    )]
    ReplicationAboveBrokers { replication: i32, brokers: usize },
    #[error(
        "topics.min_insync_replicas is {min_insync_replicas} but the replication is {replication} ({}), so no acks=all write could succeed: set topics.min_insync_replicas (CLONER__TOPICS__MIN_INSYNC_REPLICAS) to at most {replication}, or leave it unset",
        if *replication_set { "topics.replication".to_string() } else { format!("decided because {} answered; topics.replication is unset", brokers_answered(*brokers)) }
    )]
    MinInsyncAboveReplication {
        min_insync_replicas: i32,
        replication: i32,
        replication_set: bool,
        brokers: usize,
    },
}

/// "only one broker" / "2 brokers", for messages.
fn brokers_answered(brokers: usize) -> String {
    match brokers {
        1 => "only one broker".to_string(),
        n => format!("{n} brokers"),
    }
}

/// The replication that makes `acks=all` mean something on a cluster of `brokers` brokers, from
/// the configured `topics.replication` and `topics.min_insync_replicas` (`None` when unset).
///
/// Unset replication: 3 on 3 or more brokers, otherwise the broker count. Unset
/// `min.insync.replicas`: 2 when the replication is at least 3 (an acknowledged write is then on
/// two brokers, and writes go on with one broker down), otherwise left to the broker (1): with
/// 2 replicas a minimum of 2 would stop every write while either replica's broker is down. Set
/// values are used as given (the configuration checked that they are at least 1 and that the
/// minimum does not exceed a set replication); a replication above the broker count, or a
/// minimum above the replication decided here, is refused.
pub fn decide_replication(
    brokers: usize,
    replication: Option<i32>,
    min_insync_replicas: Option<i32>,
) -> Result<ReplicationPlan, ReplicationRefused> {
    if brokers == 0 {
        return Err(ReplicationRefused::NoBrokers);
    }
    let broker_count = i32::try_from(brokers).unwrap_or(i32::MAX);
    let (replication_decided, replication_note) = match replication {
        Some(r) if r > broker_count => {
            return Err(ReplicationRefused::ReplicationAboveBrokers {
                replication: r,
                brokers,
            })
        }
        Some(r) => (
            r,
            format!(
                "replication {r} as set in topics.replication ({} answered)",
                brokers_answered(brokers)
            ),
        ),
        None if brokers >= 3 => (
            3,
            format!("replication 3 because {brokers} brokers answered (topics.replication unset)"),
        ),
        None if brokers == 1 => (
            1,
            "replication is 1 because only one broker answered (topics.replication unset), so acks=all protects against nothing more than that broker (on 3 or more brokers it would be 3, with min.insync.replicas 2)".to_string(),
        ),
        None => (
            broker_count,
            format!(
                "replication {broker_count} because {brokers} brokers answered (topics.replication unset; 3 or more would give 3)"
            ),
        ),
    };
    let r = replication_decided;
    let (min_insync, min_note) = match min_insync_replicas {
        Some(m) if m > r => {
            return Err(ReplicationRefused::MinInsyncAboveReplication {
                min_insync_replicas: m,
                replication: r,
                replication_set: replication.is_some(),
                brokers,
            })
        }
        Some(m) if m == r && r > 1 => (
            Some(m),
            Some(format!("min.insync.replicas {m} as set in topics.min_insync_replicas, equal to the replication, so every acks=all write stops while any replica's broker is down")),
        ),
        Some(m) => (
            Some(m),
            Some(format!("min.insync.replicas {m} as set in topics.min_insync_replicas")),
        ),
        None if r >= 3 => (
            Some(2),
            Some("min.insync.replicas 2 (topics.min_insync_replicas unset): an acknowledged write is on at least 2 brokers, and writes go on with one broker down".to_string()),
        ),
        None if r == 2 => (
            None,
            Some("min.insync.replicas left to the broker (default 1): 2 would stop every acks=all write while either replica's broker is down".to_string()),
        ),
        None => (None, None),
    };
    let mut note = replication_note;
    if replication.is_some() && r == 1 {
        note.push_str(", so acks=all protects against nothing more than one broker");
    }
    if let Some(min_note) = min_note {
        note.push_str("; ");
        note.push_str(&min_note);
    }
    Ok(ReplicationPlan {
        replication: r,
        min_insync_replicas: min_insync,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (replication, min.insync.replicas) decided for `brokers` with nothing configured.
    fn unset(brokers: usize) -> (i32, Option<i32>) {
        let plan = decide_replication(brokers, None, None).unwrap();
        (plan.replication, plan.min_insync_replicas)
    }

    #[test]
    fn unset_replication_follows_the_broker_count_up_to_three() {
        assert_eq!(unset(1), (1, None));
        assert_eq!(unset(2), (2, None));
        assert_eq!(unset(3), (3, Some(2)));
        assert_eq!(unset(5), (3, Some(2)));
    }

    #[test]
    fn one_broker_says_what_acks_all_protects() {
        let note = decide_replication(1, None, None).unwrap().note;
        assert!(note.contains("replication is 1"), "{note}");
        assert!(note.contains("only one broker answered"), "{note}");
        assert!(
            note.contains("acks=all protects against nothing more than that broker"),
            "{note}"
        );
        assert!(
            !note.contains("min.insync.replicas left"),
            "the broker's own minimum goes without saying on one broker: {note}"
        );
    }

    #[test]
    fn the_note_on_three_brokers_is_the_one_the_readme_shows() {
        assert_eq!(
            decide_replication(3, None, None).unwrap().note,
            "replication 3 because 3 brokers answered (topics.replication unset); min.insync.replicas 2 (topics.min_insync_replicas unset): an acknowledged write is on at least 2 brokers, and writes go on with one broker down"
        );
    }

    #[test]
    fn notes_say_why() {
        let two = decide_replication(2, None, None).unwrap().note;
        assert!(
            two.contains("replication 2 because 2 brokers answered"),
            "{two}"
        );
        assert!(
            two.contains("min.insync.replicas left to the broker"),
            "{two}"
        );
        let five = decide_replication(5, None, None).unwrap().note;
        assert!(
            five.contains("replication 3 because 5 brokers answered"),
            "{five}"
        );
        assert!(five.contains("min.insync.replicas 2"), "{five}");
        let set = decide_replication(5, Some(4), Some(3)).unwrap().note;
        assert!(
            set.contains("replication 4 as set in topics.replication"),
            "{set}"
        );
        assert!(
            set.contains("min.insync.replicas 3 as set in topics.min_insync_replicas"),
            "{set}"
        );
    }

    #[test]
    fn set_values_are_used_as_given() {
        let plan = |b, r, m| {
            let p = decide_replication(b, r, m).unwrap();
            (p.replication, p.min_insync_replicas)
        };
        // A set replication: min.insync.replicas still defaults from it.
        assert_eq!(plan(1, Some(1), None), (1, None));
        assert_eq!(plan(2, Some(1), None), (1, None));
        assert_eq!(plan(3, Some(2), None), (2, None));
        assert_eq!(plan(3, Some(3), None), (3, Some(2)));
        assert_eq!(plan(5, Some(5), None), (5, Some(2)));
        // A set minimum, with the replication set or decided.
        assert_eq!(plan(1, None, Some(1)), (1, Some(1)));
        assert_eq!(plan(2, None, Some(2)), (2, Some(2)));
        assert_eq!(plan(3, None, Some(1)), (3, Some(1)));
        assert_eq!(plan(5, None, Some(3)), (3, Some(3)));
        assert_eq!(plan(5, Some(5), Some(4)), (5, Some(4)));
        let all = decide_replication(3, None, Some(3)).unwrap().note;
        assert!(
            all.contains("every acks=all write stops while any replica's broker is down"),
            "{all}"
        );
        let one = decide_replication(3, Some(1), None).unwrap().note;
        assert!(
            one.contains("acks=all protects against nothing more than one broker"),
            "{one}"
        );
    }

    #[test]
    fn a_replication_above_the_broker_count_is_refused_naming_the_key() {
        for (brokers, replication) in [(1, 2), (1, 3), (2, 3), (3, 4), (5, 6)] {
            let err = decide_replication(brokers, Some(replication), None).unwrap_err();
            assert_eq!(
                err,
                ReplicationRefused::ReplicationAboveBrokers {
                    replication,
                    brokers
                }
            );
            let msg = err.to_string();
            assert!(msg.contains("topics.replication"), "{msg}");
            assert!(msg.contains(&format!("at most {brokers}")), "{msg}");
        }
        let msg = decide_replication(1, Some(3), None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("but only one broker answered"), "{msg}");
        let msg = decide_replication(2, Some(3), None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("but 2 brokers answered"), "{msg}");
    }

    #[test]
    fn a_minimum_above_the_replication_is_refused_naming_the_key() {
        // Decided replication: 1 on one broker, 2 on two, 3 on five.
        for (brokers, min, replication) in [(1, 2, 1), (2, 3, 2), (5, 4, 3)] {
            let err = decide_replication(brokers, None, Some(min)).unwrap_err();
            assert_eq!(
                err,
                ReplicationRefused::MinInsyncAboveReplication {
                    min_insync_replicas: min,
                    replication,
                    replication_set: false,
                    brokers
                }
            );
            let msg = err.to_string();
            assert!(msg.contains("topics.min_insync_replicas"), "{msg}");
            assert!(msg.contains("topics.replication is unset"), "{msg}");
            assert!(msg.contains(&format!("at most {replication}")), "{msg}");
        }
        // A set replication below a set minimum is refused by the configuration already; the
        // decision refuses it too.
        let msg = decide_replication(3, Some(2), Some(3))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("topics.min_insync_replicas is 3"), "{msg}");
    }

    #[test]
    fn no_broker_is_refused() {
        assert_eq!(
            decide_replication(0, None, None),
            Err(ReplicationRefused::NoBrokers)
        );
    }
}

//! The control port's commands: [`parse_command`] reads a line into a [`Command`], and a
//! command prints back as the line it came from. Request types and error names are spelled as
//! librdkafka spells them ([`REQUEST_TYPES`], [`ERROR_NAMES`]).
//!
//! Pure: nothing here talks to the cluster.

use std::fmt;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// A control request, one line on the control port (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `create TOPIC PARTITIONS`
    Create { topic: String, partitions: i32 },
    /// `down BROKER_ID`: the broker closes its connections and refuses new ones. Its partitions
    /// keep it as their leader (the mock moves no leader by itself).
    Down { broker: i32 },
    /// `up BROKER_ID`
    Up { broker: i32 },
    /// `leader TOPIC PARTITION BROKER_ID`
    Leader {
        topic: String,
        partition: i32,
        broker: i32,
    },
    /// `coordinator GROUP BROKER_ID`: the consumer group's coordinator.
    Coordinator { group: String, broker: i32 },
    /// `rtt BROKER_ID MILLISECONDS`: every response of the broker is delayed this long.
    Rtt { broker: i32, millis: u32 },
    /// `errors REQUEST_TYPE ERROR_NAME…`: the next requests of that type, from any client to
    /// any broker, fail with these errors, in order, one error per request.
    Errors {
        request: RDKafkaApiKey,
        errors: Vec<RDKafkaRespErr>,
    },
    /// `errors REQUEST_TYPE clear`
    ClearErrors { request: RDKafkaApiKey },
}

/// The request types `errors` accepts, as librdkafka names them.
pub const REQUEST_TYPES: &[(&str, RDKafkaApiKey)] = &[
    ("Produce", RDKafkaApiKey::Produce),
    ("Fetch", RDKafkaApiKey::Fetch),
    ("ListOffsets", RDKafkaApiKey::ListOffsets),
    ("Metadata", RDKafkaApiKey::Metadata),
    ("OffsetCommit", RDKafkaApiKey::OffsetCommit),
    ("OffsetFetch", RDKafkaApiKey::OffsetFetch),
    ("FindCoordinator", RDKafkaApiKey::FindCoordinator),
    ("JoinGroup", RDKafkaApiKey::JoinGroup),
    ("Heartbeat", RDKafkaApiKey::Heartbeat),
    ("LeaveGroup", RDKafkaApiKey::LeaveGroup),
    ("SyncGroup", RDKafkaApiKey::SyncGroup),
    ("InitProducerId", RDKafkaApiKey::InitProducerId),
];

/// The error names `errors` accepts, librdkafka's (`RD_KAFKA_RESP_ERR_` and this), then the
/// Kafka protocol's own name where it differs.
pub const ERROR_NAMES: &[(&str, RDKafkaRespErr)] = {
    use RDKafkaRespErr::*;
    &[
        ("NOT_ENOUGH_REPLICAS", RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS),
        (
            "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ),
        (
            "NOT_LEADER_FOR_PARTITION",
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ),
        (
            "NOT_LEADER_OR_FOLLOWER",
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ),
        (
            "LEADER_NOT_AVAILABLE",
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        ),
        ("REQUEST_TIMED_OUT", RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT),
        ("MSG_SIZE_TOO_LARGE", RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE),
        ("MESSAGE_TOO_LARGE", RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE),
        (
            "TOPIC_AUTHORIZATION_FAILED",
            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        ),
        (
            "UNKNOWN_TOPIC_OR_PART",
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        ),
        (
            "UNKNOWN_TOPIC_OR_PARTITION",
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        ),
        (
            "COORDINATOR_NOT_AVAILABLE",
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        ),
        (
            "COORDINATOR_LOAD_IN_PROGRESS",
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        ),
        ("NOT_COORDINATOR", RD_KAFKA_RESP_ERR_NOT_COORDINATOR),
        (
            "REBALANCE_IN_PROGRESS",
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        ),
        ("UNKNOWN_MEMBER_ID", RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID),
        ("ILLEGAL_GENERATION", RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION),
        (
            "BROKER_NOT_AVAILABLE",
            RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE,
        ),
        ("NETWORK_EXCEPTION", RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION),
        // librdkafka's own: the mock broker drops the client's connection instead of answering.
        ("_TRANSPORT", RD_KAFKA_RESP_ERR__TRANSPORT),
    ]
};

/// The forms of every command, for the error that says what is expected.
pub(super) const USAGE: &[(&str, &str)] = &[
    ("create", "`create TOPIC PARTITIONS`"),
    ("down", "`down BROKER_ID`"),
    ("up", "`up BROKER_ID`"),
    ("leader", "`leader TOPIC PARTITION BROKER_ID`"),
    ("coordinator", "`coordinator GROUP BROKER_ID`"),
    ("rtt", "`rtt BROKER_ID MILLISECONDS`"),
    (
        "errors",
        "`errors REQUEST_TYPE ERROR_NAME…` or `errors REQUEST_TYPE clear`",
    ),
];

/// Reads one control line; the error says what was expected.
pub fn parse_command(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some(&verb) = words.first() else {
        return Err(format!("expected a command, one of {}", all_usage()));
    };
    let Some(&(_, usage)) = USAGE.iter().find(|(v, _)| *v == verb) else {
        return Err(format!(
            "unknown command {verb:?}; expected one of {}",
            all_usage()
        ));
    };
    let malformed = || format!("expected {usage}, got {line:?}");
    Ok(match words[1..] {
        [topic, partitions] if verb == "create" => Command::Create {
            topic: topic.to_string(),
            partitions: number("partitions", partitions, 1)?,
        },
        [broker] if verb == "down" => Command::Down {
            broker: broker_id(broker)?,
        },
        [broker] if verb == "up" => Command::Up {
            broker: broker_id(broker)?,
        },
        [topic, partition, broker] if verb == "leader" => Command::Leader {
            topic: topic.to_string(),
            partition: number("the partition", partition, 0)?,
            broker: broker_id(broker)?,
        },
        [group, broker] if verb == "coordinator" => Command::Coordinator {
            group: group.to_string(),
            broker: broker_id(broker)?,
        },
        [broker, millis] if verb == "rtt" => Command::Rtt {
            broker: broker_id(broker)?,
            millis: millis.parse().map_err(|_| {
                format!(
                    "milliseconds must be a number from 0 to {}, got {millis:?}",
                    u32::MAX
                )
            })?,
        },
        [request, "clear"] if verb == "errors" => Command::ClearErrors {
            request: request_type(request)?,
        },
        [request, ref errors @ ..] if verb == "errors" && !errors.is_empty() => {
            let request = request_type(request)?;
            if errors.contains(&"clear") {
                return Err(malformed());
            }
            Command::Errors {
                request,
                errors: errors
                    .iter()
                    .map(|e| error_code(e))
                    .collect::<Result<_, _>>()?,
            }
        }
        _ => return Err(malformed()),
    })
}

fn all_usage() -> String {
    USAGE
        .iter()
        .map(|(_, usage)| *usage)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An integer of at least `min`.
fn number(what: &str, text: &str, min: i32) -> Result<i32, String> {
    match text.parse::<i32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!(
            "{what} must be a number of at least {min}, got {text:?}"
        )),
    }
}

fn broker_id(text: &str) -> Result<i32, String> {
    match text.parse::<i32>() {
        Ok(id) if id >= 1 => Ok(id),
        _ => Err(format!("broker ids are numbers from 1, got {text:?}")),
    }
}

/// A request type of [`REQUEST_TYPES`], in any case.
fn request_type(name: &str) -> Result<RDKafkaApiKey, String> {
    REQUEST_TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|&(_, key)| key)
        .ok_or_else(|| {
            let known: Vec<&str> = REQUEST_TYPES.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown request type {name:?}; accepted: {}",
                known.join(", ")
            )
        })
}

/// An error name of [`ERROR_NAMES`], in any case, with or without `RD_KAFKA_RESP_ERR_`.
fn error_code(name: &str) -> Result<RDKafkaRespErr, String> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("RD_KAFKA_RESP_ERR_").unwrap_or(&upper);
    ERROR_NAMES
        .iter()
        .find(|(known, _)| *known == bare)
        .map(|&(_, code)| code)
        .ok_or_else(|| {
            let known: Vec<&str> = ERROR_NAMES.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown error name {name:?}; accepted: {}",
                known.join(", ")
            )
        })
}

/// The first name of `value` in `table`.
fn name_of<T: PartialEq>(table: &[(&'static str, T)], value: &T) -> &'static str {
    table
        .iter()
        .find(|(_, v)| v == value)
        .map(|(name, _)| *name)
        .expect("only values of the table are parsed")
}

/// The command's line, as [`parse_command`] reads it.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Create { topic, partitions } => write!(f, "create {topic} {partitions}"),
            Command::Down { broker } => write!(f, "down {broker}"),
            Command::Up { broker } => write!(f, "up {broker}"),
            Command::Leader {
                topic,
                partition,
                broker,
            } => write!(f, "leader {topic} {partition} {broker}"),
            Command::Coordinator { group, broker } => write!(f, "coordinator {group} {broker}"),
            Command::Rtt { broker, millis } => write!(f, "rtt {broker} {millis}"),
            Command::Errors { request, errors } => {
                write!(f, "errors {}", name_of(REQUEST_TYPES, request))?;
                for error in errors {
                    write!(f, " {}", name_of(ERROR_NAMES, error))?;
                }
                Ok(())
            }
            Command::ClearErrors { request } => {
                write!(f, "errors {} clear", name_of(REQUEST_TYPES, request))
            }
        }
    }
}

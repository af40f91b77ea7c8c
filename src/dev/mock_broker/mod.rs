//! A Kafka broker without Apache Kafka: librdkafka's mock cluster (`docs/kafka-here.md`), for
//! the tests, the benchmarks and the demo.
//!
//! The mock serves the real protocol on loopback ports (one per broker), to this process and to
//! any other, but does not implement CreateTopics; topics are created through its own API
//! instead — at start, and afterwards through a small control port that speaks one line per
//! request and answers `ok` or `error: WHY`. The same port injects the mock's faults:
//!
//! ```text
//! create TOPIC PARTITIONS              a topic, replication min(3, brokers)
//! down BROKER_ID                       the broker drops its connections and refuses new ones
//! up BROKER_ID                         it accepts connections again
//! leader TOPIC PARTITION BROKER_ID     moves the partition's leader
//! coordinator GROUP BROKER_ID          moves the consumer group's coordinator
//! rtt BROKER_ID MILLISECONDS           delays the broker's every response (0: none)
//! errors REQUEST_TYPE ERROR_NAME…      the next requests of that type fail, one error each
//! errors REQUEST_TYPE clear            forgets that type's errors not yet used
//! ```
//!
//! Broker ids start at 1. Request types and error names are spelled as librdkafka spells them
//! (`Produce`, `NOT_ENOUGH_REPLICAS`); [`REQUEST_TYPES`] and [`ERROR_NAMES`] list those
//! accepted. [`parse_command`] reads a line into a [`Command`], [`MockBroker::execute`] applies
//! it, and [`control`] / [`send`] are the client side.
//!
//! It must never be what production talks to: it keeps everything in memory and forgets it when
//! the process ends.

mod client;
mod command;

pub use client::{control, create_topic_via_control, send, ControlError};
pub use command::{parse_command, Command, ERROR_NAMES, REQUEST_TYPES};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::DefaultProducerContext;

/// A running mock cluster.
pub struct MockBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
    brokers: i32,
    /// The topics created through [`MockBroker::create_topic`], with their partition counts:
    /// `leader` refuses any other topic, which the mock would otherwise create on the spot.
    topics: Mutex<BTreeMap<String, i32>>,
}

impl MockBroker {
    /// Starts a mock cluster of `brokers` brokers (ids 1 to `brokers`), each on a free loopback
    /// port.
    pub fn start(brokers: i32) -> anyhow::Result<MockBroker> {
        anyhow::ensure!(brokers >= 1, "at least one broker is needed, got {brokers}");
        let cluster = MockCluster::new(brokers)
            .map_err(|e| anyhow::anyhow!("librdkafka's mock cluster did not start: {e}"))?;
        Ok(MockBroker {
            cluster,
            brokers,
            topics: Mutex::new(BTreeMap::new()),
        })
    }

    /// How many brokers the cluster has; their ids are 1 to this.
    pub fn brokers(&self) -> i32 {
        self.brokers
    }

    /// The replication factor topics are created with: min(3, brokers), as the mock gives the
    /// topics it creates by itself. The mock only reports the replicas in Metadata; it does not
    /// replicate, so `acks=all` waits for nothing more than `acks=1`.
    pub fn replication(&self) -> i32 {
        self.brokers.min(3)
    }

    /// The brokers' `host:port` list, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates `topic` with `partitions` (replication [`MockBroker::replication`]). Creating it
    /// again changes nothing, whatever the partitions asked for.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        anyhow::ensure!(
            partitions >= 1,
            "partitions must be at least 1, got {partitions}"
        );
        anyhow::ensure!(
            !topic.is_empty() && !topic.contains(char::is_whitespace),
            "a topic name without blanks is needed, got {topic:?}"
        );
        match self
            .cluster
            .create_topic(topic, partitions, self.replication())
        {
            Ok(()) => {
                self.topics
                    .lock()
                    .unwrap()
                    .insert(topic.to_string(), partitions);
                Ok(())
            }
            Err(KafkaError::MockCluster(RDKafkaErrorCode::TopicAlreadyExists)) => Ok(()),
            Err(e) => Err(anyhow::anyhow!("creating topic {topic}: {e}")),
        }
    }

    /// Applies a control command (see the module's documentation).
    pub fn execute(&self, command: &Command) -> anyhow::Result<()> {
        let mock = |what: &str, result: rdkafka::error::KafkaResult<()>| {
            result.map_err(|e| anyhow::anyhow!("the mock refused to {what}: {e}"))
        };
        match command {
            Command::Create { topic, partitions } => self.create_topic(topic, *partitions),
            Command::Down { broker } => {
                self.check_broker(*broker)?;
                mock("take the broker down", self.cluster.broker_down(*broker))
            }
            Command::Up { broker } => {
                self.check_broker(*broker)?;
                mock("bring the broker up", self.cluster.broker_up(*broker))
            }
            Command::Leader {
                topic,
                partition,
                broker,
            } => {
                self.check_broker(*broker)?;
                let partitions = self.topics.lock().unwrap().get(topic).copied();
                let Some(partitions) = partitions else {
                    anyhow::bail!("no topic {topic:?} was created through this broker");
                };
                anyhow::ensure!(
                    *partition < partitions,
                    "topic {topic} has partitions 0 to {}, got {partition}",
                    partitions - 1
                );
                mock(
                    "move the leader",
                    self.cluster
                        .partition_leader(topic, *partition, Some(*broker)),
                )
            }
            Command::Coordinator { group, broker } => {
                self.check_broker(*broker)?;
                mock(
                    "move the coordinator",
                    self.cluster
                        .coordinator(MockCoordinator::Group(group.clone()), *broker),
                )
            }
            Command::Rtt { broker, millis } => {
                self.check_broker(*broker)?;
                mock(
                    "set the round-trip time",
                    self.cluster
                        .broker_round_trip_time(*broker, Duration::from_millis((*millis).into())),
                )
            }
            Command::Errors { request, errors } => {
                self.cluster.request_errors(*request, errors);
                Ok(())
            }
            Command::ClearErrors { request } => {
                self.cluster.clear_request_errors(*request);
                Ok(())
            }
        }
    }

    /// A broker id of this cluster, or an error naming the ids there are.
    fn check_broker(&self, broker: i32) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=self.brokers).contains(&broker),
            "no broker {broker}: this cluster's brokers are {}",
            if self.brokers == 1 {
                "1 only".to_string()
            } else {
                format!("1 to {}", self.brokers)
            }
        );
        Ok(())
    }

    /// Serves the control port on `listener` until the process ends, one connection at a time
    /// (requests are rare and quick).
    pub fn serve_control(&self, listener: TcpListener) -> ! {
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = self.answer(stream) {
                        log::warn!("control connection: {e}");
                    }
                }
                Err(e) => log::warn!("control port: accept failed: {e}"),
            }
        }
    }

    fn answer(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut writer = stream.try_clone()?;
        for line in BufReader::new(stream).lines() {
            let line = line?;
            let done = parse_command(&line).and_then(|command| {
                self.execute(&command).map_err(|e| e.to_string())?;
                log::info!("control: {command}");
                Ok(())
            });
            let reply = match done {
                Ok(()) => "ok".to_string(),
                Err(e) => {
                    log::info!("control: refused {line:?}: {e}");
                    format!("error: {e}")
                }
            };
            writeln!(writer, "{reply}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::command::USAGE;
    use super::*;

    fn parsed(line: &str) -> Command {
        parse_command(line).unwrap_or_else(|e| panic!("{line:?} parses: {e}"))
    }

    fn refused(line: &str) -> String {
        match parse_command(line) {
            Ok(command) => panic!("{line:?} is refused, not read as {command:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn every_command_is_parsed() {
        use RDKafkaRespErr::*;
        assert_eq!(
            parsed("create t.todo 2"),
            Command::Create {
                topic: "t.todo".into(),
                partitions: 2
            }
        );
        assert_eq!(parsed("down 2"), Command::Down { broker: 2 });
        assert_eq!(parsed("  up   3 "), Command::Up { broker: 3 });
        assert_eq!(
            parsed("leader t.todo 0 3"),
            Command::Leader {
                topic: "t.todo".into(),
                partition: 0,
                broker: 3
            }
        );
        assert_eq!(
            parsed("coordinator g-1 2"),
            Command::Coordinator {
                group: "g-1".into(),
                broker: 2
            }
        );
        assert_eq!(
            parsed("rtt 1 250"),
            Command::Rtt {
                broker: 1,
                millis: 250
            }
        );
        assert_eq!(
            parsed("errors Produce NOT_ENOUGH_REPLICAS NOT_ENOUGH_REPLICAS"),
            Command::Errors {
                request: RDKafkaApiKey::Produce,
                errors: vec![
                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS
                ]
            }
        );
        assert_eq!(
            parsed("errors FindCoordinator clear"),
            Command::ClearErrors {
                request: RDKafkaApiKey::FindCoordinator
            }
        );
    }

    #[test]
    fn request_types_and_error_names_are_read_in_any_case_and_with_their_aliases() {
        use RDKafkaRespErr::*;
        let errors = |line: &str| match parsed(line) {
            Command::Errors { request, errors } => (request, errors),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            errors("errors heartbeat not_leader_or_follower RD_KAFKA_RESP_ERR_MESSAGE_TOO_LARGE"),
            (
                RDKafkaApiKey::Heartbeat,
                vec![
                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE
                ]
            )
        );
        assert_eq!(
            errors("errors Fetch UNKNOWN_TOPIC_OR_PARTITION _TRANSPORT").1,
            vec![
                RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                RD_KAFKA_RESP_ERR__TRANSPORT
            ]
        );
        // Every name of both tables is accepted for what the table says.
        for &(name, key) in REQUEST_TYPES {
            assert_eq!(errors(&format!("errors {name} NETWORK_EXCEPTION")).0, key);
        }
        for &(name, code) in ERROR_NAMES {
            assert_eq!(errors(&format!("errors Produce {name}")).1, vec![code]);
        }
    }

    #[test]
    fn a_command_written_out_reads_back_as_itself() {
        for line in [
            "create t 2",
            "down 1",
            "up 2",
            "leader t 1 3",
            "coordinator g 1",
            "rtt 3 0",
            "errors Produce NOT_ENOUGH_REPLICAS NOT_LEADER_FOR_PARTITION",
            "errors OffsetCommit clear",
        ] {
            let command = parsed(line);
            assert_eq!(command.to_string(), line);
            assert_eq!(parsed(&command.to_string()), command);
        }
        // Aliases are written out with librdkafka's name.
        assert_eq!(
            parsed("errors produce MESSAGE_TOO_LARGE").to_string(),
            "errors Produce MSG_SIZE_TOO_LARGE"
        );
    }

    #[test]
    fn every_malformed_command_says_what_is_expected() {
        for (line, expected) in [
            ("", "expected a command, one of `create TOPIC PARTITIONS`, `down BROKER_ID`"),
            ("delete t.todo", "unknown command \"delete\"; expected one of `create TOPIC PARTITIONS`"),
            ("CREATE t 2", "unknown command \"CREATE\""),
            ("create t.todo", "expected `create TOPIC PARTITIONS`, got \"create t.todo\""),
            ("create t.todo 2 3", "expected `create TOPIC PARTITIONS`"),
            ("create t.todo two", "partitions must be a number of at least 1, got \"two\""),
            ("create t.todo 0", "partitions must be a number of at least 1, got \"0\""),
            ("down", "expected `down BROKER_ID`, got \"down\""),
            ("down 1 2", "expected `down BROKER_ID`"),
            ("down 0", "broker ids are numbers from 1, got \"0\""),
            ("down one", "broker ids are numbers from 1, got \"one\""),
            ("up", "expected `up BROKER_ID`"),
            ("up -1", "broker ids are numbers from 1"),
            ("leader t 0", "expected `leader TOPIC PARTITION BROKER_ID`"),
            ("leader t -1 1", "the partition must be a number of at least 0, got \"-1\""),
            ("leader t 0 x", "broker ids are numbers from 1"),
            ("coordinator g", "expected `coordinator GROUP BROKER_ID`"),
            ("coordinator g 0", "broker ids are numbers from 1"),
            ("rtt 1", "expected `rtt BROKER_ID MILLISECONDS`"),
            ("rtt 1 -5", "milliseconds must be a number from 0 to 4294967295, got \"-5\""),
            ("rtt 1 1.5", "milliseconds must be a number"),
            ("rtt 0 5", "broker ids are numbers from 1"),
            ("errors", "expected `errors REQUEST_TYPE ERROR_NAME…` or `errors REQUEST_TYPE clear`, got \"errors\""),
            ("errors Produce", "expected `errors REQUEST_TYPE ERROR_NAME…` or `errors REQUEST_TYPE clear`"),
            ("errors Produce clear NOT_ENOUGH_REPLICAS", "expected `errors REQUEST_TYPE ERROR_NAME…`"),
            ("errors Produce NOT_ENOUGH_REPLICAS clear", "expected `errors REQUEST_TYPE ERROR_NAME…`"),
            ("errors Produce NO_SUCH_ERROR", "unknown error name \"NO_SUCH_ERROR\"; accepted: NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND, NOT_LEADER_FOR_PARTITION,"),
            ("errors Produce OK NOT_ENOUGH_REPLICAS", "unknown error name \"OK\""),
            ("errors Frobnicate NOT_ENOUGH_REPLICAS", "unknown request type \"Frobnicate\"; accepted: Produce, Fetch, ListOffsets, Metadata,"),
            ("errors Frobnicate clear", "unknown request type \"Frobnicate\""),
        ] {
            let err = refused(line);
            assert!(err.contains(expected), "{line:?}: {err:?} should contain {expected:?}");
        }
        // The lists of accepted names are complete.
        let err = refused("errors Produce NOPE");
        assert!(
            ERROR_NAMES.iter().all(|(name, _)| err.contains(name)),
            "{err}"
        );
        let err = refused("errors Nope NOT_COORDINATOR");
        assert!(
            REQUEST_TYPES.iter().all(|(name, _)| err.contains(name)),
            "{err}"
        );
        let err = refused("nope");
        assert!(USAGE.iter().all(|(_, usage)| err.contains(usage)), "{err}");
    }

    #[test]
    fn a_topic_needs_a_partition_and_a_name_without_blanks() {
        let broker = MockBroker::start(1).unwrap();
        assert!(broker.create_topic("t", 2).is_ok());
        assert!(
            broker.create_topic("t", 2).is_ok(),
            "again: nothing changes"
        );
        let err = broker.create_topic("t", 0).unwrap_err().to_string();
        assert!(err.contains("at least 1"), "{err}");
        let err = broker.create_topic("", 1).unwrap_err().to_string();
        assert!(err.contains("without blanks"), "{err}");
    }

    #[test]
    fn commands_name_the_brokers_topics_and_partitions_there_are() {
        let broker = MockBroker::start(3).unwrap();
        assert_eq!(broker.replication(), 3);
        broker.create_topic("t", 2).unwrap();
        broker.create_topic("t", 5).unwrap();
        let run = |line: &str| broker.execute(&parsed(line)).map_err(|e| e.to_string());
        for line in [
            "down 3",
            "up 3",
            "leader t 1 2",
            "coordinator g 3",
            "rtt 2 0",
            "errors Produce NOT_ENOUGH_REPLICAS",
            "errors Produce clear",
        ] {
            assert_eq!(run(line), Ok(()), "{line}");
        }
        for (line, expected) in [
            ("down 4", "no broker 4: this cluster's brokers are 1 to 3"),
            ("up 4", "no broker 4"),
            ("rtt 9 10", "no broker 9"),
            ("coordinator g 4", "no broker 4"),
            ("leader t 0 4", "no broker 4"),
            (
                "leader nope 0 1",
                "no topic \"nope\" was created through this broker",
            ),
            ("leader t 2 1", "topic t has partitions 0 to 1, got 2"),
        ] {
            let err = run(line).unwrap_err();
            assert!(err.contains(expected), "{line:?}: {err:?}");
        }
        let one = MockBroker::start(1).unwrap();
        assert_eq!(one.replication(), 1);
        let err = one.execute(&parsed("down 2")).unwrap_err().to_string();
        assert!(err.contains("brokers are 1 only"), "{err}");
    }

    #[test]
    fn the_client_gets_ok_or_the_reason_over_the_control_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The broker's own thread: MockBroker stays where it was made. It serves until the test
        // process ends.
        std::thread::spawn(move || {
            let broker = MockBroker::start(2).unwrap();
            broker.serve_control(listener)
        });
        create_topic_via_control(addr, "t", 2).unwrap();
        send(
            addr,
            &Command::Leader {
                topic: "t".into(),
                partition: 1,
                broker: 2,
            },
        )
        .unwrap();
        control(addr, "down 2").unwrap();
        match control(addr, "down 3") {
            Err(ControlError::Refused { line, reason }) => {
                assert_eq!(line, "down 3");
                assert_eq!(reason, "no broker 3: this cluster's brokers are 1 to 2");
            }
            other => panic!("{other:?}"),
        }
        let err = control(addr, "up 1\nup 2").unwrap_err().to_string();
        assert!(err.contains("one command per line"), "{err}");
    }
}

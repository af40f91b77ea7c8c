//! A Kafka broker without Apache Kafka: librdkafka's mock cluster (`docs/kafka-here.md`), for
//! the tests, the benchmarks and the demo.
//!
//! The mock serves the real protocol on a loopback port, to this process and to any other, but
//! does not implement CreateTopics; topics are created through its own API instead — at start,
//! and afterwards through a small control port that speaks one line per request:
//!
//! ```text
//! create NAME PARTITIONS   ->   ok | error: WHY
//! ```
//!
//! It must never be what production talks to: it keeps everything in memory and forgets it when
//! the process ends.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// A running mock cluster.
pub struct MockBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl MockBroker {
    /// Starts a one-broker mock cluster on a free loopback port.
    pub fn start() -> anyhow::Result<MockBroker> {
        let cluster = MockCluster::new(1)
            .map_err(|e| anyhow::anyhow!("librdkafka's mock cluster did not start: {e}"))?;
        Ok(MockBroker { cluster })
    }

    /// `host:port`, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates `topic` with `partitions` (replication 1). Creating it again changes nothing.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        anyhow::ensure!(
            partitions >= 1,
            "partitions must be at least 1, got {partitions}"
        );
        anyhow::ensure!(
            !topic.is_empty() && !topic.contains(char::is_whitespace),
            "a topic name without blanks is needed, got {topic:?}"
        );
        self.cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| anyhow::anyhow!("creating topic {topic}: {e}"))
    }

    /// Serves the control port on `listener` until the process ends, one connection at a time
    /// (requests are rare and quick: one per test topic).
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
            let created = parse_request(&line).and_then(|(name, n)| {
                self.create_topic(name, n).map_err(|e| e.to_string())?;
                log::info!("created topic {name} with {n} partitions");
                Ok(())
            });
            let reply = match created {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("error: {e}"),
            };
            writeln!(writer, "{reply}")?;
        }
        Ok(())
    }
}

/// A control request: `create NAME PARTITIONS`, as (name, partitions).
fn parse_request(line: &str) -> Result<(&str, i32), String> {
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["create", name, partitions] => partitions
            .parse()
            .map(|n| (name, n))
            .map_err(|_| format!("partitions must be a number, got {partitions:?}")),
        _ => Err(format!("expected `create NAME PARTITIONS`, got {line:?}")),
    }
}

/// Client side of the control port: creates `topic` on the mock broker whose control port is
/// `control`.
pub fn create_topic_via_control(
    control: SocketAddr,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(control)
        .map_err(|e| anyhow::anyhow!("mock broker control port {control}: {e}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    writeln!(writer, "create {topic} {partitions}")?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    match reply.trim() {
        "ok" => Ok(()),
        other => anyhow::bail!("mock broker refused topic {topic}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_requests_are_parsed_or_refused_with_what_is_expected() {
        assert_eq!(parse_request("create t.todo 2"), Ok(("t.todo", 2)));
        let err = parse_request("create t.todo two").unwrap_err();
        assert!(err.contains("must be a number"), "{err}");
        let err = parse_request("delete t.todo").unwrap_err();
        assert!(err.contains("expected `create NAME PARTITIONS`"), "{err}");
    }

    #[test]
    fn a_topic_needs_a_partition_and_a_name_without_blanks() {
        let broker = MockBroker::start().unwrap();
        assert!(broker.create_topic("t", 2).is_ok());
        let err = broker.create_topic("t", 0).unwrap_err().to_string();
        assert!(err.contains("at least 1"), "{err}");
        let err = broker.create_topic("", 1).unwrap_err().to_string();
        assert!(err.contains("without blanks"), "{err}");
    }
}

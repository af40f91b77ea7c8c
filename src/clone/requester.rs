//! The requesting side's two primitives: publish TodoChunks, read ClonedChunks back.
//!
//! Used by the `clone` command, the demo, the tests and the benchmarks. The reader takes every
//! partition of a topic by assignment, from the beginning or from the current end, outside any
//! consumer group: it joins nothing, so it reads at once and commits nothing.
//!
//! It must never be part of the service's own path: the service consumes through
//! [`crate::service::consumer`].

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{KafkaRole, KafkaSettings, Settings};
use crate::kafka::client;
use crate::proto::{ClonedChunk, TodoChunk};

/// The key a chunk is published with: results carry it back. A chunk asked by trade ids has
/// them in its key too, so that the blocks of one window never share a key (a compacted todo
/// topic would keep only one of them).
pub fn chunk_key(chunk: &TodoChunk) -> String {
    let base = format!(
        "{}:{}:{}:{}",
        chunk.currency_pair, chunk.from_unix_ts, chunk.until_unix_ts, chunk.task_dbid
    );
    match (chunk.from_trade_id, chunk.until_trade_id) {
        (Some(from), Some(until)) => format!("{base}:{from}-{until}"),
        (Some(from), None) => format!("{base}:{from}-"),
        _ => base,
    }
}

/// Publishes `chunks` to `topic`, keyed by [`chunk_key`], and waits until all are acknowledged.
pub async fn publish_chunks(
    producer: &FutureProducer,
    topic: &str,
    chunks: &[TodoChunk],
) -> anyhow::Result<()> {
    let sends = chunks.iter().map(|chunk| async move {
        publish_raw(producer, topic, &chunk_key(chunk), &chunk.encode_to_vec()).await
    });
    for result in futures_util::future::join_all(sends).await {
        result?;
    }
    Ok(())
}

/// Publishes raw payloads (anything, for dead-letter tests) to `topic` with `key`.
pub async fn publish_raw(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> anyhow::Result<()> {
    publish_to(producer, topic, None, key, payload).await
}

/// [`publish_raw`] to `partition`, or where the producer's partitioner puts `key` if `None`.
pub async fn publish_to(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: &str,
    payload: &[u8],
) -> anyhow::Result<()> {
    let mut record = FutureRecord::to(topic).key(key).payload(payload);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    producer
        .send(record, Timeout::Never)
        .await
        .map(|_| ())
        .map_err(|(e, _)| anyhow::anyhow!("publishing {key} to {topic}: {e}"))
}

/// A producer with the service's producer properties.
pub fn producer(settings: &Settings) -> anyhow::Result<FutureProducer> {
    Ok(client::producer(settings)?)
}

/// One record read back: its key, payload, headers and where it was.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

impl Record {
    /// The payload as a ClonedChunk.
    pub fn cloned_chunk(&self) -> anyhow::Result<ClonedChunk> {
        ClonedChunk::decode(self.payload.as_deref().unwrap_or_default())
            .context("a result that is not a ClonedChunk")
    }

    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Reads every partition of a topic, without a group.
pub struct TopicReader {
    consumer: StreamConsumer,
    topic: String,
}

/// How long a reader waits for the topic's metadata and watermarks.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a topic that shows no partitions is asked for again before it is called missing.
const TOPIC_APPEARS_WITHIN: Duration = Duration::from_secs(5);

impl TopicReader {
    /// Assigns every partition of `topic` from the beginning.
    pub fn new(kafka: &KafkaSettings, topic: &str) -> anyhow::Result<TopicReader> {
        TopicReader::assign(kafka, topic, |_, _| Ok(Offset::Beginning))
    }

    /// Assigns every partition of `topic` from its current end: only records produced from now
    /// on are read. The ends are resolved before this returns (it blocks for up to 10 s), so a
    /// record produced after it returns is never missed.
    pub fn at_end(kafka: &KafkaSettings, topic: &str) -> anyhow::Result<TopicReader> {
        TopicReader::assign(kafka, topic, |consumer, partition| {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
                .with_context(|| format!("the end of {topic} partition {partition}"))?;
            Ok(Offset::Offset(high))
        })
    }

    fn assign(
        kafka: &KafkaSettings,
        topic: &str,
        start: impl Fn(&StreamConsumer, i32) -> anyhow::Result<Offset>,
    ) -> anyhow::Result<TopicReader> {
        // The consumer properties (security, fetch tuning), but it never joins or commits: the
        // group id only satisfies librdkafka.
        let mut config = client::client_config(kafka, KafkaRole::Consumer)?;
        config
            .set("group.id", format!("cloner-reader-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // A reader has no use for the group consumer's statistics (its default context
            // would log each report).
            .set("statistics.interval.ms", "0");
        let consumer: StreamConsumer = config.create().context("creating a topic reader")?;
        // A topic created a moment ago may not be in the metadata of the broker asked yet (a
        // cluster of several): asked again for a few seconds before it is called missing.
        let deadline = std::time::Instant::now() + TOPIC_APPEARS_WITHIN;
        let partitions = loop {
            let metadata = consumer
                .fetch_metadata(Some(topic), METADATA_TIMEOUT)
                .with_context(|| format!("metadata of {topic}"))?;
            let partitions = metadata
                .topics()
                .first()
                .map(|t| t.partitions().len())
                .unwrap_or(0);
            if partitions > 0 || std::time::Instant::now() >= deadline {
                break partitions;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        anyhow::ensure!(
            partitions > 0,
            "topic {topic} has no partitions: does it exist? (`cloner-worker topics create` creates the configured topics)"
        );
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, start(&consumer, p)?)?;
        }
        consumer
            .assign(&tpl)
            .context("assigning the topic's partitions")?;
        Ok(TopicReader {
            consumer,
            topic: topic.to_string(),
        })
    }

    /// The next record; waits for one.
    pub async fn next(&self) -> anyhow::Result<Record> {
        let message = self
            .consumer
            .recv()
            .await
            .with_context(|| format!("reading {}", self.topic))?;
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Record {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
            partition: message.partition(),
            offset: message.offset(),
        })
    }

    /// Reads until `n` records have come, or fails after `timeout`.
    pub async fn take(&self, n: usize, timeout: Duration) -> anyhow::Result<Vec<Record>> {
        let mut records = Vec::with_capacity(n);
        let read = async {
            while records.len() < n {
                records.push(self.next().await?);
            }
            anyhow::Ok(())
        };
        let outcome = tokio::time::timeout(timeout, read).await;
        match outcome {
            Ok(result) => result?,
            Err(_) => anyhow::bail!(
                "only {} of {n} records on {} within {timeout:?}",
                records.len(),
                self.topic
            ),
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocks_of_one_window_have_keys_of_their_own() {
        let by_time = TodoChunk {
            currency_pair: "BTCUSDT".into(),
            from_unix_ts: 1,
            until_unix_ts: 9,
            task_dbid: 7,
            ..Default::default()
        };
        let block = |from, until| TodoChunk {
            from_trade_id: Some(from),
            until_trade_id: until,
            ..by_time.clone()
        };
        assert_eq!(chunk_key(&by_time), "BTCUSDT:1:9:7");
        assert_eq!(chunk_key(&block(100, Some(1100))), "BTCUSDT:1:9:7:100-1100");
        assert_eq!(chunk_key(&block(1100, None)), "BTCUSDT:1:9:7:1100-");
    }
}

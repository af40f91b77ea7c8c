//! `GroupProgress`: whether the service's consumer group is working through the todo topic,
//! read from its committed offsets: the clone's second sign that the service is alive.
//!
//! The first sign is answers to this run's own requests. When a service is behind other
//! clients' requests (a backlog another clone published, a long 429 storm), none of this run's
//! are answered for a while, yet the service is alive: its group's committed offsets advance,
//! its lag is being worked off. Publishing again then would only add to the backlog, and
//! giving a window up would be wrong.
//!
//! It reads the offsets with a consumer of the service's group (`kafka.consumer` properties,
//! `group.id` included) that never subscribes, never joins the group and never commits. It
//! must never do any of these: it would take partitions from the service.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _, DefaultConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{KafkaRole, KafkaSettings};
use crate::kafka::client;

/// Offsets are read at most this often, however many requests ask.
const READ_EVERY: Duration = Duration::from_millis(250);

/// How long one read of the offsets may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// librdkafka's `auto.commit.interval.ms` when the configuration does not set it.
const LIBRDKAFKA_COMMIT_INTERVAL_MS: u64 = 5000;

/// The service group's progress through the todo topic.
pub struct GroupProgress {
    consumer: Arc<BaseConsumer>,
    topic: String,
    partitions: i32,
    /// How often the service commits: progress shows up this late.
    commit_interval: Duration,
    /// The sum of the committed offsets at the last read, if it succeeded.
    committed: Cell<Option<i64>>,
    /// When offsets were first read successfully: progress is measured from then.
    since: Cell<Option<Instant>>,
    /// When offsets were last read (successfully or not).
    read_at: Cell<Option<Instant>>,
    /// When a read last found the sum larger than the read before.
    advanced_at: Cell<Option<Instant>>,
}

impl GroupProgress {
    /// Progress of the group `kafka`'s consumer properties name, on the `partitions` of
    /// `topic`. `None` if no consumer can be made (then only answers count as signs of life).
    pub fn new(kafka: &KafkaSettings, topic: &str, partitions: usize) -> Option<GroupProgress> {
        let made = client::client_config(kafka, KafkaRole::Consumer)
            .map_err(|e| e.to_string())
            .and_then(|mut config| {
                // Its statistics would only be logged: nothing reads them here.
                config.set("statistics.interval.ms", "0");
                let interval = config
                    .get("auto.commit.interval.ms")
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(LIBRDKAFKA_COMMIT_INTERVAL_MS);
                let consumer: BaseConsumer = config
                    .create_with_context(DefaultConsumerContext)
                    .map_err(|e| e.to_string())?;
                Ok((consumer, Duration::from_millis(interval)))
            });
        match made {
            Ok((consumer, commit_interval)) => Some(GroupProgress {
                consumer: Arc::new(consumer),
                topic: topic.to_string(),
                partitions: partitions as i32,
                commit_interval,
                committed: Cell::new(None),
                since: Cell::new(None),
                read_at: Cell::new(None),
                advanced_at: Cell::new(None),
            }),
            Err(e) => {
                log::warn!("cannot read the service group's progress ({e}); only answers show that it is alive");
                None
            }
        }
    }

    /// Whether the group committed more of the topic within `within`, give or take how often
    /// it commits (reading the offsets first, unless they were read just now). Until the
    /// offsets have been watched for that long, it cannot tell, and says yes.
    pub async fn advancing(&self, within: Duration) -> bool {
        if self
            .read_at
            .get()
            .is_none_or(|at| at.elapsed() >= READ_EVERY)
        {
            self.read().await;
        }
        let within = within + self.commit_interval + READ_EVERY;
        let too_early = self.since.get().is_some_and(|at| at.elapsed() < within);
        too_early
            || self
                .advanced_at
                .get()
                .is_some_and(|at| at.elapsed() < within)
    }

    /// Reads the committed offsets' sum (in the blocking pool: librdkafka waits for the
    /// coordinator) and notes whether it grew.
    pub async fn read(&self) {
        self.read_at.set(Some(Instant::now()));
        let consumer = Arc::clone(&self.consumer);
        let mut list = TopicPartitionList::new();
        for partition in 0..self.partitions {
            list.add_partition(&self.topic, partition);
        }
        let read =
            tokio::task::spawn_blocking(move || consumer.committed_offsets(list, READ_TIMEOUT))
                .await;
        let list = match read
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            Ok(list) => list,
            Err(e) => {
                log::debug!("reading the service group's committed offsets: {e}");
                return;
            }
        };
        // A partition with nothing committed yet counts as 0.
        let sum: i64 = list
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            })
            .sum();
        match self.committed.get() {
            Some(before) if sum > before => self.advanced_at.set(Some(Instant::now())),
            Some(_) => {}
            None => self.since.set(Some(Instant::now())),
        }
        self.committed.set(Some(sum));
    }
}

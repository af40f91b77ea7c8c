//! A run of `serve` under a fault, on a cluster of the test's own: the mock
//! ([`BrokerProcess`], for the faults only it can inject) or Apache Kafka ([`ApacheCluster`],
//! for brokers really killed). A simulator in this process, a couple of hundred small chunks
//! published, a reader of the results from the start; the test injects its fault once results
//! are coming, then [`Run::finish`] checks that nothing was lost and every answer is right:
//! every chunk has a result with its key, each result is the simulator's ground truth, and after
//! a SIGTERM the service exits 0 with the todo topic committed to its end. So no offset was
//! committed ahead of its result: a committed chunk whose result was lost would have none. The
//! duplicates a fault caused are returned, for the test to bound.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use cloner_worker::clone::requester::{self, chunk_key, Record, TopicReader};
use cloner_worker::config::Settings;
use cloner_worker::dev::simulator::SimulatorHandle;
use cloner_worker::proto::{cloned_chunk, TodoChunk};

use super::cluster::ApacheCluster;
use super::kafka::*;
use super::process::*;
use super::*;

/// Chunks per run: at 2 workers and 40 ms a call, about five seconds of work.
pub const CHUNKS: i32 = 200;

/// Results read before a fault is injected: the run is under way.
pub const BEFORE_FAULT: usize = 20;

/// The run's brokers.
pub enum Brokers {
    Mock(BrokerProcess),
    Apache(ApacheCluster),
}

/// A run under test: brokers of its own, the simulator, the service's settings, the chunks
/// (published) and a reader of the results from the start.
pub struct Run {
    pub brokers: Brokers,
    pub sim: SimulatorHandle,
    pub settings: Settings,
    pub chunks: Vec<TodoChunk>,
    pub results: TopicReader,
    pub seen: Vec<Record>,
}

impl Run {
    /// Three mock brokers, topics and a group of `test`'s own; `setup` sends control commands
    /// (leaders, coordinator) before anything is published.
    pub async fn new(test: &str, setup: impl Fn(&BrokerProcess, &Settings)) -> Run {
        let broker = BrokerProcess::start(3);
        let sim = start_simulator(slow_simulator(40)).await;
        let settings = settings_on(&broker, Run::base(&sim), test);
        setup(&broker, &settings);
        Run::publish(Brokers::Mock(broker), sim, settings, CHUNKS).await
    }

    /// `cluster` (Apache Kafka), with topics created through the admin API as `topics create`
    /// creates them (on 3 brokers: replication 3, `min.insync.replicas` 2) and `chunks` chunks.
    pub async fn on_apache(test: &str, cluster: ApacheCluster, chunks: i32) -> Run {
        let sim = start_simulator(slow_simulator(40)).await;
        let settings = settings_on_cluster(&cluster.bootstrap, Run::base(&sim), test).await;
        Run::publish(Brokers::Apache(cluster), sim, settings, chunks).await
    }

    /// Two workers, eight chunks in flight at most, a grace period long enough for a drain
    /// through a fault.
    fn base(sim: &SimulatorHandle) -> Settings {
        let mut base = unlimited_settings(sim, 2);
        base.consumer.max_in_flight = Some(8);
        base.consumer.drain_grace_ms = 10_000;
        base
    }

    async fn publish(brokers: Brokers, sim: SimulatorHandle, settings: Settings, n: i32) -> Run {
        let chunks = minute_chunks("BTC_LTC", n);
        let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
        let producer = requester::producer(&settings).unwrap();
        requester::publish_chunks(&producer, &settings.topics.todo, &chunks)
            .await
            .unwrap();
        Run {
            brokers,
            sim,
            settings,
            chunks,
            results,
            seen: Vec::new(),
        }
    }

    /// `serve` on this run's brokers (its settings name them), with `extra` environment.
    pub fn serve(&self, extra: &[(&str, &str)]) -> ServiceProcess {
        ServiceProcess::start_with_env(&self.settings, extra)
    }

    /// Sends a control command to the mock, which must accept it.
    pub fn control(&self, line: &str) {
        let Brokers::Mock(broker) = &self.brokers else {
            panic!("`{line}`: only the mock has a control port");
        };
        broker
            .control(line)
            .unwrap_or_else(|e| panic!("`{line}` is accepted: {e}"));
    }

    /// The Apache cluster of this run.
    pub fn cluster(&self) -> &ApacheCluster {
        match &self.brokers {
            Brokers::Apache(c) => c,
            Brokers::Mock(_) => panic!("this run is on the mock"),
        }
    }

    /// Reads results until `n` have come in all (within the test deadline).
    pub async fn read_until(&mut self, n: usize, service: &ServiceProcess) {
        while self.seen.len() < n {
            match tokio::time::timeout(TEST_DEADLINE, next_record(&self.results)).await {
                Ok(record) => self.seen.push(record),
                Err(_) => panic!(
                    "{} of {n} results within {TEST_DEADLINE:?}; the service's log:\n{}",
                    self.seen.len(),
                    service.log.join("\n")
                ),
            }
        }
    }

    /// Every chunk answered, right; then a SIGTERM, exit 0, and the todo topic committed to its
    /// end. Prints the duplicates and returns them (results minus distinct keys).
    pub async fn finish(mut self, test: &str, mut service: ServiceProcess) -> usize {
        let wanted: BTreeSet<String> = self.chunks.iter().map(chunk_key).collect();
        let fault = Instant::now();
        loop {
            let keys: BTreeSet<String> = self.seen.iter().map(Record::key_str).collect();
            if wanted.is_subset(&keys) {
                break;
            }
            match tokio::time::timeout(TEST_DEADLINE, next_record(&self.results)).await {
                Ok(record) => self.seen.push(record),
                Err(_) => {
                    let missing: Vec<&String> = wanted.difference(&keys).take(10).collect();
                    let status = service.terminate(EXIT_TIMEOUT);
                    let todo = committed_and_end(&self.settings, &self.settings.topics.todo);
                    let finished =
                        committed_and_end(&self.settings, &self.settings.topics.finished);
                    panic!(
                        "{test}: {} of {} chunks answered ({} results read), no result for {TEST_DEADLINE:?} (missing e.g. {missing:?}); \
                         after a SIGTERM the service exited {status}; todo (committed, end) by partition {todo:?}, finished {finished:?}; the service's log:\n{}",
                        keys.len(),
                        wanted.len(),
                        self.seen.len(),
                        service.log.join("\n")
                    )
                }
            }
        }
        eprintln!(
            "{test}: every chunk answered {:?} after the last wait on the fault",
            fault.elapsed()
        );
        let status = service.terminate(EXIT_TIMEOUT);
        let log = service.log.join("\n");
        assert!(
            status.success(),
            "{test}: exits 0 ({status}); the log:\n{log}"
        );
        for (partition, (committed, end)) in
            committed_and_end(&self.settings, &self.settings.topics.todo)
        {
            assert_eq!(
                committed, end,
                "{test}: todo partition {partition} committed to its end; the log:\n{log}"
            );
        }
        // Every result, those produced during the drain included, read again and checked.
        let produced: i64 = committed_and_end(&self.settings, &self.settings.topics.finished)
            .values()
            .map(|(_, end)| end)
            .sum();
        let reader =
            TopicReader::new(&self.settings.kafka, &self.settings.topics.finished).unwrap();
        let mut all = Vec::new();
        while all.len() < produced as usize {
            match tokio::time::timeout(TEST_DEADLINE, next_record(&reader)).await {
                Ok(record) => all.push(record),
                Err(_) => panic!(
                    "{test}: {} of the {produced} results read again within {TEST_DEADLINE:?}",
                    all.len()
                ),
            }
        }
        if std::env::var_os("FAULT_RUN_LOG").is_some() {
            eprintln!("{test}: the service's log:\n{log}");
        }
        let by_key = check_answers(&self.sim, &self.chunks, &all);
        let duplicates = all.len() - by_key.len();
        eprintln!(
            "{test}: {} results for {} chunks: {duplicates} duplicates (results minus distinct keys)",
            all.len(),
            self.chunks.len(),
        );
        self.sim.stop().await;
        duplicates
    }
}

/// The next record of `reader`. Its own errors (a broker down: the reader is a client of the
/// cluster too) are printed and passed over; the caller bounds the wait.
pub async fn next_record(reader: &TopicReader) -> Record {
    loop {
        match reader.next().await {
            Ok(record) => return record,
            Err(e) => eprintln!("the results' reader: {e:#}"),
        }
    }
}

/// Every result carries its chunk's key and is the simulator's answer (`COMPLETE` ones entry by
/// entry); every chunk has one. The results by key.
pub fn check_answers(
    sim: &SimulatorHandle,
    chunks: &[TodoChunk],
    records: &[Record],
) -> BTreeMap<String, usize> {
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for record in records {
        let answer = record.cloned_chunk().expect("results decode");
        let chunk = answer
            .original_todo_chunk
            .as_ref()
            .expect("answers carry their chunk");
        assert_eq!(record.key_str(), chunk_key(chunk), "a result has its key");
        let expected = expected_result(sim.config(), chunk);
        assert_eq!(
            answer.chunk_result, expected as i32,
            "the answer to {chunk:?}: {}",
            answer.possible_error_message
        );
        if expected == cloned_chunk::Result::Complete {
            assert_matches_ground_truth(sim.config(), &answer);
        }
        *by_key.entry(record.key_str()).or_default() += 1;
    }
    for chunk in chunks {
        assert!(by_key.contains_key(&chunk_key(chunk)), "{chunk:?} answered");
    }
    by_key
}

/// Reads results until `fresh` chunks not answered before have their first answer; the results
/// read meanwhile for chunks answered before (duplicates).
pub async fn duplicates_until_fresh(
    results: &TopicReader,
    answered: &mut BTreeMap<String, usize>,
    fresh: usize,
) -> usize {
    let (mut new, mut again) = (0, 0);
    while new < fresh {
        let record = tokio::time::timeout(TEST_DEADLINE, results.next())
            .await
            .unwrap_or_else(|_| panic!("no result within {TEST_DEADLINE:?}"))
            .unwrap();
        let count = answered.entry(record.key_str()).or_default();
        *count += 1;
        if *count == 1 {
            new += 1;
        } else {
            again += 1;
        }
    }
    again
}

/// `n mean max [each]` of a list of counts.
pub fn summary(counts: &[usize]) -> String {
    let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
    let max = counts.iter().max().copied().unwrap_or(0);
    format!("{:>2}  {mean:>5.1}  {max:>3}  {counts:?}", counts.len())
}

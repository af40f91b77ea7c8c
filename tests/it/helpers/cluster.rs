//! An Apache Kafka cluster of a test's own, for the tests that SIGKILL and restart brokers:
//! `scripts/kafka-up --apache --brokers N` with `KAFKA_RUN_DIR` in a temporary directory, so the
//! suite's shared cluster is not disturbed. The script is the one users and CI run, so these
//! tests prove it too: its `bootstrap` and `brokers` files, and its restart of only the nodes
//! that are down.
//!
//! Dropped, the cluster's nodes are SIGKILLed (nothing of a test cluster needs to be kept) and
//! its directory removed, unless the test failed: then its path is printed, for the logs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::metadata::Metadata;

use cloner_worker::config::Settings;

use super::kafka::unique;
use super::process::signal;

/// A node as `.run/kafka/brokers` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub id: i32,
    pub pid: u32,
    pub port: u16,
}

pub struct ApacheCluster {
    /// `KAFKA_RUN_DIR` of its kafka-up: node folders, logs and the files below.
    pub dir: PathBuf,
    /// Every broker, comma-separated, as kafka-up wrote it.
    pub bootstrap: String,
    /// Extra environment for kafka-up (security listeners, SCRAM users), kept for restarts.
    env: Vec<(String, String)>,
}

impl ApacheCluster {
    /// Starts `brokers` nodes; panics with kafka-up's output if it fails.
    pub fn start(brokers: usize) -> ApacheCluster {
        ApacheCluster::start_with_env(brokers, &[])
    }

    /// [`ApacheCluster::start`] with extra environment for kafka-up
    /// (`KAFKA_EXTRA_PROPERTIES`, `KAFKA_FORMAT_ARGS`).
    pub fn start_with_env(brokers: usize, env: &[(&str, &str)]) -> ApacheCluster {
        let dir = std::env::temp_dir().join(unique("cloner-kafka"));
        let mut cluster = ApacheCluster {
            dir,
            bootstrap: String::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        cluster.kafka_up(&["--apache", "--brokers", &brokers.to_string()]);
        cluster.bootstrap = std::fs::read_to_string(cluster.dir.join("bootstrap"))
            .expect("kafka-up writes the bootstrap file")
            .trim()
            .to_string();
        assert_eq!(cluster.nodes().len(), brokers, "one line per node");
        cluster
    }

    /// Runs scripts/kafka-up with `args` on this cluster's directory; its output.
    fn kafka_up(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-up");
        let out = Command::new(script)
            .args(args)
            .env("KAFKA_RUN_DIR", &self.dir)
            .env_remove("KAFKA_BOOTSTRAP")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("scripts/kafka-up runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "scripts/kafka-up {args:?} failed:\n{text}"
        );
        eprintln!("{}", text.trim_end());
        text
    }

    /// The nodes, as `brokers` lists them now.
    pub fn nodes(&self) -> Vec<Node> {
        let text = std::fs::read_to_string(self.dir.join("brokers")).expect("the brokers file");
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(f.len(), 3, "`ID PID PORT`, not {line:?}");
                Node {
                    id: f[0].parse().expect("an id"),
                    pid: f[1].parse().expect("a pid"),
                    port: f[2].parse().expect("a port"),
                }
            })
            .collect()
    }

    pub fn node(&self, id: i32) -> Node {
        self.nodes()
            .into_iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// SIGKILLs node `id` and waits until it is gone (not even a zombie), up to 30 s.
    pub fn kill(&self, id: i32) {
        let node = self.node(id);
        signal(node.pid, "KILL");
        let deadline = Instant::now() + Duration::from_secs(30);
        while is_running(node.pid) {
            assert!(
                Instant::now() < deadline,
                "node {id} still runs 30 s after SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Brings back the nodes that are down (kafka-up again), waiting until every broker answers;
    /// kafka-up's output.
    pub fn restart_stopped(&self) -> String {
        self.kafka_up(&["--apache"])
    }
}

/// The cluster's metadata (all topics), asked of `bootstrap`.
pub fn metadata(bootstrap: &str) -> Metadata {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("a metadata client");
    consumer
        .fetch_metadata(None, Duration::from_secs(30))
        .expect("the cluster's metadata")
}

/// The leader of `topic`'s `partition`.
pub fn leader_of(bootstrap: &str, topic: &str, partition: i32) -> i32 {
    let metadata = metadata(bootstrap);
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .unwrap_or_else(|| panic!("{topic} in the metadata"));
    t.partitions()
        .iter()
        .find(|p| p.id() == partition)
        .map(|p| p.leader())
        .unwrap_or_else(|| panic!("{topic}-{partition} in the metadata"))
}

/// The replication of `topic` (replicas of each partition, all equal) and its
/// `min.insync.replicas`, read back from the cluster.
pub async fn replication_of(run_settings: &Settings, topic: &str) -> (usize, String) {
    let bootstrap = run_settings.kafka.bootstrap_servers();
    let metadata = metadata(&bootstrap);
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .unwrap_or_else(|| panic!("{topic} in the metadata"));
    let replicas: Vec<usize> = t.partitions().iter().map(|p| p.replicas().len()).collect();
    assert!(
        replicas.windows(2).all(|w| w[0] == w[1]),
        "{topic}: every partition has as many replicas: {replicas:?}"
    );
    let admin = cloner_worker::kafka::client::admin(&run_settings.kafka).unwrap();
    let configs = admin
        .describe_configs(
            [&ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("DescribeConfigs is answered");
    let config = configs
        .into_iter()
        .next()
        .expect("one resource")
        .expect("the topic's configuration");
    let min_insync = config
        .get("min.insync.replicas")
        .and_then(|e| e.value.clone())
        .expect("min.insync.replicas is described");
    (replicas[0], min_insync)
}

/// Whether `pid` is a live process (a zombie is not).
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

impl Drop for ApacheCluster {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.dir.join("brokers")) {
            for pid in text.lines().filter_map(|l| l.split_whitespace().nth(1)) {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        if std::thread::panicking() {
            eprintln!("the failed test's Kafka cluster: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

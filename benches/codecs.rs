//! The service's results compressed with each codec, on a real broker: what `compression.type`
//! (`[kafka.producer]`) costs and saves, to choose its default.
//!
//! For each codec (none, lz4, zstd, and gzip and snappy for reference) and two shapes of result
//! — *pages* (45 minutes of the simulator's busy USDT_BTC, about 1 000 trades each: what a clone
//! of a busy pair asks for) and *small* (a minute of BTC_LTC, a few trades: the quiet pairs) —
//! ClonedChunks built from the simulator's ground truth are produced to a topic of their own
//! with the service's producer properties (`client::producer`: acks=all, idempotent, linger 5
//! ms) and that codec, up to 1 000 deliveries in flight. Printed per codec and shape:
//!
//! - results/s and MB/s (uncompressed protobuf bytes), from the first send to the last ack;
//! - CPU ms per 1 000 results of this process (librdkafka compresses in its own threads here);
//! - bytes per result as the broker stores them (the partitions' log segments on disk, one
//!   replica), and the ratio to the protobuf size. Only on the suite's own cluster
//!   (`scripts/kafka-up --apache`), whose data is in `.run/kafka/node-*/data`; elsewhere `-`.
//!
//! The broker: `KAFKA_BOOTSTRAP`, or the cluster in `.run/kafka` (`scripts/kafka-up --apache`).
//! `BENCH_PAGES` (default 600) and `BENCH_SMALL` (default 6000) set the counts.
//!
//! Run: `scripts/bench-codecs` (starts a 3-node cluster if none runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::stream::{FuturesUnordered, StreamExt};
use prost::Message as _;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

use cloner_worker::config::{KafkaValue, Settings};
use cloner_worker::dev::simulator::{market, SimulatorConfig};
use cloner_worker::kafka::{client, topics};
use cloner_worker::proto::{cloned_chunk, ClonedChunk, ClonedEntry, TodoChunk};

const IN_FLIGHT: usize = 1000;
const DAY: i64 = 1_540_166_400; // 2018-10-22, the tests' day

/// A ClonedChunk of the window, from the simulator's trades.
fn result(cfg: &SimulatorConfig, pair: &str, from: i64, until: i64) -> Vec<u8> {
    let entries = market::trades_in_window(cfg, pair, from, until)
        .into_iter()
        .map(|t| ClonedEntry {
            trade_id: t.trade_id,
            date: t.date,
            r#type: i32::from(t.buy),
            rate: t.rate,
            amount: t.amount,
            total: t.total,
            time_ms: None,
            first_trade_id: None,
            last_trade_id: None,
        })
        .collect();
    ClonedChunk {
        chunk_result: cloned_chunk::Result::Complete as i32,
        original_todo_chunk: Some(TodoChunk {
            currency_pair: pair.into(),
            from_unix_ts: from,
            until_unix_ts: until,
            task_dbid: 0,
            ..Default::default()
        }),
        entries,
        possible_error_message: String::new(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// This process's CPU time (user + system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command; 100 Hz.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The suite's own cluster directory, when the broker is that one.
fn local_cluster() -> Option<PathBuf> {
    if std::env::var_os("KAFKA_BOOTSTRAP").is_some() {
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".run/kafka");
    let kind = std::fs::read_to_string(dir.join("kind")).ok()?;
    (kind.trim() == "apache").then_some(dir)
}

/// Bytes of `topic`'s log segments, one replica of each partition (the largest).
fn bytes_on_disk(cluster: &Path, topic: &str) -> u64 {
    let mut by_partition: BTreeMap<String, u64> = BTreeMap::new();
    for node in std::fs::read_dir(cluster).into_iter().flatten().flatten() {
        for dir in std::fs::read_dir(node.path().join("data"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = dir.file_name().to_string_lossy().to_string();
            if name.rsplit_once('-').map(|(t, _)| t) != Some(topic) {
                continue;
            }
            let size: u64 = std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|f| f.path().extension().is_some_and(|e| e == "log"))
                .filter_map(|f| f.metadata().ok().map(|m| m.len()))
                .sum();
            let e = by_partition.entry(name).or_default();
            *e = (*e).max(size);
        }
    }
    by_partition.values().sum()
}

struct Figures {
    per_second: f64,
    mb_per_second: f64,
    cpu_ms_per_1000: f64,
    on_disk_per_result: Option<f64>,
    protobuf_per_result: f64,
}

async fn produce_all(
    base: &Settings,
    codec: &str,
    shape: &str,
    payloads: &[Vec<u8>],
) -> anyhow::Result<Figures> {
    let mut settings = base.clone();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos();
    let topic = format!(
        "bench.codecs.{shape}.{codec}-{}-{nanos}",
        std::process::id()
    );
    settings.topics.todo = format!("{topic}.unused-todo");
    settings.topics.finished = topic.clone();
    settings.topics.dead_letter = format!("{topic}.unused-dlq");
    settings.kafka.producer.insert(
        "compression_type".into(),
        KafkaValue::Str(codec.to_string()),
    );
    topics::create(&settings, &[&topic])
        .await
        .with_context(|| format!("creating {topic}"))?;
    let producer = client::producer(&settings)?;
    let cpu = cpu_time();
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    for (i, payload) in payloads.iter().enumerate() {
        if pending.len() >= IN_FLIGHT {
            if let Some(done) = pending.next().await {
                done?;
            }
        }
        let producer = producer.clone();
        let (t, k, p) = (topic.clone(), i.to_string(), payload.clone());
        pending.push(async move {
            producer
                .send(FutureRecord::to(&t).key(&k).payload(&p), Timeout::Never)
                .await
                .map(|_| ())
                .map_err(|(e, _)| anyhow::anyhow!("producing to {t}: {e}"))
        });
    }
    while let Some(done) = pending.next().await {
        done?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_time().saturating_sub(cpu);
    let protobuf: usize = payloads.iter().map(Vec::len).sum();
    let n = payloads.len() as f64;
    Ok(Figures {
        per_second: n / elapsed,
        mb_per_second: protobuf as f64 / 1e6 / elapsed,
        cpu_ms_per_1000: cpu.as_secs_f64() * 1000.0 / n * 1000.0,
        on_disk_per_result: local_cluster().map(|c| bytes_on_disk(&c, &topic) as f64 / n),
        protobuf_per_result: protobuf as f64 / n,
    })
}

fn main() -> anyhow::Result<()> {
    let bootstrap = match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(b) => b,
        Err(_) => {
            let dir = local_cluster().context(
                "no broker: start one with scripts/kafka-up --apache (scripts/bench-codecs does), or set KAFKA_BOOTSTRAP",
            )?;
            std::fs::read_to_string(dir.join("bootstrap"))?
                .trim()
                .to_string()
        }
    };
    let count = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (n_pages, n_small) = (count("BENCH_PAGES", 600), count("BENCH_SMALL", 6000));
    let cfg = SimulatorConfig::default();
    let pages: Vec<Vec<u8>> = (0..n_pages as i64)
        .map(|i| result(&cfg, "USDT_BTC", DAY + i * 2700, DAY + i * 2700 + 2699))
        .collect();
    let small: Vec<Vec<u8>> = (0..n_small as i64)
        .map(|i| result(&cfg, "BTC_LTC", DAY + i * 60, DAY + i * 60 + 59))
        .collect();
    let mut settings = Settings::default();
    settings.kafka.set("bootstrap.servers", bootstrap.clone());
    println!(
        "results produced with the service's producer (acks=all, idempotent, linger.ms 5), {IN_FLIGHT} in flight, to {bootstrap}"
    );
    println!(
        "{:<6} {:<7} {:>8} {:>9} {:>8} {:>13} {:>15} {:>7}",
        "shape", "codec", "n", "results/s", "MB/s", "CPU ms/1000", "bytes on broker", "ratio"
    );
    let system = actix_rt::System::new();
    for (shape, payloads) in [("pages", &pages), ("small", &small)] {
        for codec in ["none", "lz4", "zstd", "snappy", "gzip"] {
            let f = system.block_on(produce_all(&settings, codec, shape, payloads))?;
            let (disk, ratio) = match f.on_disk_per_result {
                Some(d) => (
                    format!("{d:.0}"),
                    format!("{:.3}", d / f.protobuf_per_result),
                ),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{shape:<6} {codec:<7} {:>8} {:>9.0} {:>8.1} {:>13.1} {disk:>15} {ratio:>7}",
                payloads.len(),
                f.per_second,
                f.mb_per_second,
                f.cpu_ms_per_1000,
            );
        }
        println!(
            "{shape}: {:.0} protobuf bytes per result",
            payloads.iter().map(Vec::len).sum::<usize>() as f64 / payloads.len() as f64
        );
    }
    Ok(())
}

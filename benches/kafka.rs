//! The Kafka path against one broker, in one run: what the service costs on top of Kafka itself.
//!
//! 1. **Passthrough** — raw rdkafka: N messages the size of an encoded TodoChunk (the very
//!    chunks of (2), with their keys), published beforehand to a 2-partition topic, read by a
//!    `StreamConsumer` in a group and produced to another topic by a `FutureProducer` with the
//!    service's producer properties (acks=all, idempotent, the configured linger), up to 1000
//!    deliveries in flight. Timed from the first message received to the last delivery ack.
//! 2. **Service end to end** — the same N TodoChunks (one minute of BTC_LTC each: COMPLETE with
//!    a few trades) published beforehand to the todo topic; the service started in-process
//!    (`service::start`), rate limiter off, 64 workers, `consumer.max_in_flight` 1000, against
//!    an exchange simulator in another process (no rate limit, no latency). Timed like (1):
//!    from the service's first message received (its consumer's counter, looked at every
//!    millisecond, so the group join is left out as in (1)) to the N-th result read back from
//!    the finished topic. The ratio (2)/(1) is the share of Kafka's own throughput the service
//!    keeps (goal >= 0.5). For reference, the same chunks are then pushed straight into
//!    `WorkerManager.add_task` of the same service: the actor tree and the upstream calls
//!    without Kafka.
//! 3. **Latency at light load** — a fresh service with linger.ms=0 on every producer (the
//!    publisher's too); chunks published one at a time, each once the previous result was read;
//!    time from just before the send to the result read on the finished topic; p50 and p99
//!    (goal p50 < 10 ms).
//!
//! Under (1) and (2) a `cpu per message` line splits the CPU time of the timed window by
//! thread (`/proc/PID/task/*/schedstat`): the main thread, which runs the whole actix system
//! (every actor, the HTTP client, the rdkafka futures, the result reader), the whole bench
//! process (librdkafka's threads and the mock broker too), and the simulator process. A main
//! thread near 100 % busy is the bottleneck.
//!
//! The broker is librdkafka's mock cluster, in this process, unless `KAFKA_BOOTSTRAP` names a
//! real one (topics are then created through the admin API). Every phase has its own topics
//! and consumer group. The service's singletons are registered once per actix `System`, so
//! phases 1–2 run in one System and phase 3 in a second one.
//!
//! The mock cluster answers a fetch that finds no data only after the full `fetch.wait.max.ms`
//! (default 500 ms), even if data arrives meanwhile (librdkafka `rdkafka_mock_handlers.c`); a
//! real broker answers as soon as data arrives. So on the mock every consumer here (the
//! service's included) gets `fetch.wait.max.ms` = `BENCH_FETCH_WAIT_MS` (default 1); on a real
//! broker it is left alone unless that variable is set.
//!
//! Environment: `BENCH_N` (default 20000), `BENCH_LATENCY_N` (default 200),
//! `BENCH_MAX_IN_FLIGHT` (the service's, default 1000), `BENCH_LINGER_MS` (producer linger for
//! phases 1 and 2; default: the service's configured value), `BENCH_FETCH_WAIT_MS`,
//! `KAFKA_BOOTSTRAP`, `RUST_LOG`.
//!
//! Run: `scripts/bench-kafka` (or `cargo bench --bench kafka`); about 15 s once built.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use anyhow::Context as _;
use futures_util::stream::{FuturesUnordered, StreamExt};
use prost::Message as _;
use rdkafka::consumer::{Consumer, DefaultConsumerContext, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

mod common;

use common::{small_windows, SimulatorProcess};

use cloner_worker::clone::requester::{self, TopicReader};
use cloner_worker::config::{KafkaRole, KafkaValue, Settings};
use cloner_worker::dev::mock_broker::MockBroker;
use cloner_worker::kafka::client;
use cloner_worker::pool::app::Hooks;
use cloner_worker::pool::manager::AddTask;
use cloner_worker::proto::{cloned_chunk, TodoChunk};
use cloner_worker::service;
use cloner_worker::service::consumer::GetConsumerStats;

/// Deliveries the passthrough keeps in flight (as many as the service below).
const PASSTHROUGH_IN_FLIGHT: usize = 1000;
const N_WORKERS: usize = 64;
/// The service's `consumer.max_in_flight` unless `BENCH_MAX_IN_FLIGHT` says otherwise.
const MAX_IN_FLIGHT: usize = 1000;
/// Longest any phase may wait for its messages.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

/// The mock cluster in this process, or the broker `KAFKA_BOOTSTRAP` names.
struct Broker {
    mock: Option<MockBroker>,
    bootstrap: String,
}

impl Broker {
    fn start() -> anyhow::Result<Broker> {
        match std::env::var("KAFKA_BOOTSTRAP") {
            Ok(bootstrap) if !bootstrap.is_empty() => Ok(Broker {
                mock: None,
                bootstrap,
            }),
            _ => {
                let mock = MockBroker::start(1)?;
                let bootstrap = mock.bootstrap_servers();
                Ok(Broker {
                    mock: Some(mock),
                    bootstrap,
                })
            }
        }
    }

    fn describe(&self) -> String {
        match self.mock {
            Some(_) => format!("librdkafka mock cluster (in process) at {}", self.bootstrap),
            None => format!("KAFKA_BOOTSTRAP={}", self.bootstrap),
        }
    }

    /// Creates `names` with 2 partitions each.
    async fn create_topics(&self, settings: &Settings, names: &[&str]) -> anyhow::Result<()> {
        match &self.mock {
            Some(mock) => {
                for name in names {
                    mock.create_topic(name, 2)?;
                }
            }
            None => {
                let mut settings = settings.clone();
                settings.topics.partitions = 2;
                cloner_worker::kafka::topics::create(&settings, names).await?;
            }
        }
        Ok(())
    }
}

/// What every phase shares: broker, simulator, knobs.
struct Bench {
    broker: Broker,
    sim_url: String,
    run_id: String,
    n: usize,
    latency_n: usize,
    sim_pid: u32,
    /// The service's `consumer.max_in_flight`.
    max_in_flight: usize,
    /// `fetch.wait.max.ms` for every consumer, when set.
    fetch_wait_ms: Option<u64>,
    /// Producer `linger.ms` for phases 1 and 2, when overridden.
    linger_ms: Option<i64>,
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {value:?}")),
    )
}

/// CPU time (ns) of each thread of process `pid`, from `/proc/PID/task/*/schedstat`; empty
/// where that is not available.
fn thread_cpu_ns(pid: u32) -> HashMap<u32, u64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashMap::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            Some((tid, stat.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// CPU used so far by this process's threads and the simulator's.
struct CpuSnapshot {
    bench: HashMap<u32, u64>,
    sim: HashMap<u32, u64>,
}

impl CpuSnapshot {
    fn take(sim_pid: u32) -> CpuSnapshot {
        CpuSnapshot {
            bench: thread_cpu_ns(std::process::id()),
            sim: thread_cpu_ns(sim_pid),
        }
    }

    /// CPU per message between `self` and `later`, over `elapsed`, for `n` messages: the
    /// main thread (the actix thread: every actor, the HTTP client, the rdkafka futures), the
    /// whole bench process (librdkafka's threads and the mock broker included), the simulator.
    fn describe(&self, later: &CpuSnapshot, elapsed: Duration, n: usize) -> String {
        /// µs of CPU between the snapshots, of thread `only` or of all.
        fn used(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>, only: Option<u32>) -> f64 {
            after
                .iter()
                .filter(|(tid, _)| only.is_none_or(|t| t == **tid))
                .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
                .sum::<u64>() as f64
                / 1e3
        }
        let main = used(&self.bench, &later.bench, Some(std::process::id()));
        let bench = used(&self.bench, &later.bench, None);
        let sim = used(&self.sim, &later.sim, None);
        if bench == 0.0 {
            return "cpu: not available (no /proc schedstat)".into();
        }
        let per = |us: f64| us / n as f64;
        format!(
            "cpu per message: main (actix) thread {:.1} us ({:.0} % busy), whole bench process {:.1} us, simulator {:.1} us",
            per(main),
            main / (elapsed.as_secs_f64() * 1e6) * 100.0,
            per(bench),
            per(sim)
        )
    }
}

impl Bench {
    /// Settings for `phase`: the broker, unique topics and group, the simulator.
    fn settings(&self, phase: &str) -> anyhow::Result<Settings> {
        let mut settings = Settings {
            n_workers: N_WORKERS,
            ..Settings::default()
        };
        settings.rate_limiter.unlimited = true;
        settings.consumer.max_in_flight = Some(self.max_in_flight);
        settings
            .kafka
            .set("bootstrap.servers", self.broker.bootstrap.clone());
        let prefix = format!("bench-kafka-{}-{phase}", self.run_id);
        settings.topics.todo = format!("{prefix}-todo");
        settings.topics.finished = format!("{prefix}-finished");
        settings.topics.dead_letter = format!("{prefix}-dlq");
        settings.kafka.consumer.insert(
            "group_id".into(),
            KafkaValue::Str(format!("{prefix}-group")),
        );
        if let Some(ms) = self.fetch_wait_ms {
            settings
                .kafka
                .consumer
                .insert("fetch_wait_max_ms".into(), KafkaValue::Int(ms as i64));
        }
        if let Some(ms) = self.linger_ms {
            settings
                .kafka
                .producer
                .insert("linger_ms".into(), KafkaValue::Int(ms));
        }
        settings.upstream.base_url = Some(self.sim_url.clone());
        // Served as in production (the metrics are counted either way), on a free port: the
        // bench starts more than one service in this process.
        settings.http.listen = "127.0.0.1:0".into();
        settings.validate()?;
        Ok(settings)
    }
}

/// `linger.ms` as a producer of `settings` gets it.
fn linger(settings: &Settings) -> String {
    settings
        .kafka
        .properties(KafkaRole::Producer)
        .ok()
        .and_then(|p| p.get("linger.ms").cloned())
        .unwrap_or_else(|| "librdkafka default".into())
}

/// One delivery acknowledged, or the reason it was not.
fn delivered(result: <DeliveryFuture as std::future::Future>::Output) -> anyhow::Result<()> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => anyhow::bail!("delivery failed: {e}"),
        Err(_) => anyhow::bail!("delivery canceled (producer gone)"),
    }
}

/// Phase 1: msgs/s of a raw consume→produce loop.
async fn passthrough(bench: &Bench, chunks: &[TodoChunk]) -> anyhow::Result<(f64, String, String)> {
    let settings = bench.settings("passthrough")?;
    let (input, output) = (&settings.topics.todo, &settings.topics.finished);
    bench
        .broker
        .create_topics(&settings, &[input, output])
        .await?;
    let producer: FutureProducer = client::producer(&settings)?;
    requester::publish_chunks(&producer, input, chunks).await?;

    let consumer: StreamConsumer =
        client::consumer(&settings.kafka, DefaultConsumerContext).context("consumer")?;
    consumer.subscribe(&[input])?;
    let n = chunks.len();
    let mut pending = FuturesUnordered::new();
    let (mut received, mut acked) = (0, 0);
    let mut first: Option<Instant> = None;
    let mut cpu_start = None;
    let work = async {
        while acked < n {
            if received < n && pending.len() < PASSTHROUGH_IN_FLIGHT {
                tokio::select! {
                    biased;
                    Some(done) = pending.next(), if !pending.is_empty() => {
                        delivered(done)?;
                        acked += 1;
                    }
                    message = consumer.recv() => {
                        let message = message?;
                        if first.is_none() {
                            first = Some(Instant::now());
                            cpu_start = Some(CpuSnapshot::take(bench.sim_pid));
                        }
                        let mut record = FutureRecord::<[u8], [u8]>::to(output)
                            .payload(message.payload().unwrap_or_default());
                        if let Some(key) = message.key() {
                            record = record.key(key);
                        }
                        let delivery = producer
                            .send_result(record)
                            .map_err(|(e, _)| anyhow::anyhow!("enqueuing: {e}"))?;
                        pending.push(delivery);
                        received += 1;
                    }
                }
            } else {
                delivered(pending.next().await.expect("a delivery in flight"))?;
                acked += 1;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(PHASE_TIMEOUT, work)
        .await
        .map_err(|_| anyhow::anyhow!("passthrough: {acked} of {n} acknowledged in time"))??;
    let elapsed = first.expect("messages received").elapsed();
    let cpu = cpu_start.expect("messages received").describe(
        &CpuSnapshot::take(bench.sim_pid),
        elapsed,
        n,
    );
    Ok((n as f64 / elapsed.as_secs_f64(), linger(&settings), cpu))
}

/// What phase 2 saw.
struct ServiceRun {
    rate: f64,
    /// N / time from the first result read to the N-th.
    rate_from_first_result: f64,
    /// The same chunks straight into `WorkerManager.add_task`, no Kafka.
    actors_only: f64,
    actors_cpu: String,
    cpu: String,
    trades: u64,
    linger: String,
}

/// Phase 2: chunks/s through the service, from its first message received to the N-th result.
async fn service_end_to_end(bench: &Bench, chunks: &[TodoChunk]) -> anyhow::Result<ServiceRun> {
    let settings = bench.settings("service")?;
    let topics = cloner_worker::kafka::topics::service_topics(&settings);
    bench.broker.create_topics(&settings, &topics).await?;
    let producer = requester::producer(&settings)?;
    requester::publish_chunks(&producer, &settings.topics.todo, chunks).await?;
    let reader = TopicReader::new(&settings.kafka, &settings.topics.finished)?;

    let running = service::start(&settings, Hooks::default()).await?;
    let (app, consumer) = (running.app.clone(), running.consumer.clone());
    let n = chunks.len();
    // The first message received: the consumer's counter, looked at every millisecond (the
    // group join before it is not the service's throughput).
    let wait_first = async {
        loop {
            if consumer.send(GetConsumerStats).await?.received > 0 {
                return anyhow::Ok((Instant::now(), CpuSnapshot::take(bench.sim_pid)));
            }
            actix_rt::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let (start, cpu_start) = tokio::time::timeout(PHASE_TIMEOUT, wait_first)
        .await
        .context("the service received nothing")??;
    let mut first_result = None;
    let mut trades = 0u64;
    let mut keys = std::collections::HashSet::with_capacity(n);
    let read = async {
        for _ in 0..n {
            let record = reader.next().await?;
            first_result.get_or_insert_with(Instant::now);
            let result = record.cloned_chunk()?;
            keys.insert(record.key_str());
            anyhow::ensure!(
                result.chunk_result == cloned_chunk::Result::Complete as i32,
                "{}: {}",
                record.key_str(),
                result.possible_error_message
            );
            trades += result.entries.len() as u64;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(PHASE_TIMEOUT, read)
        .await
        .context("the service's results did not all come")??;
    let end = Instant::now();
    let cpu = cpu_start.describe(&CpuSnapshot::take(bench.sim_pid), end - start, n);
    let first_result = first_result.expect("results read");

    anyhow::ensure!(keys.len() == n, "{} distinct results among {n}", keys.len());
    // A result can be read before its delivery report reaches the service: wait for those.
    let mut stats = consumer.send(GetConsumerStats).await?;
    for _ in 0..5_000 {
        if stats.in_flight == 0 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(1)).await;
        stats = consumer.send(GetConsumerStats).await?;
    }
    anyhow::ensure!(
        stats.received == n as u64 && stats.complete == n as u64,
        "the service saw {stats}, {n} expected"
    );

    // For comparison, the same chunks through the same actor tree without Kafka.
    let actors_start = Instant::now();
    let actors_cpu = CpuSnapshot::take(bench.sim_pid);
    let mut answers = futures_util::stream::iter(chunks.iter().cloned())
        .map(|chunk| app.manager.send(AddTask(chunk)))
        .buffer_unordered(bench.max_in_flight);
    while let Some(answer) = answers.next().await {
        let answer = answer?.map_err(|e| anyhow::anyhow!("add_task: {e}"))?;
        anyhow::ensure!(answer.chunk_result == cloned_chunk::Result::Complete as i32);
    }
    let actors_elapsed = actors_start.elapsed();
    let actors_only = n as f64 / actors_elapsed.as_secs_f64();
    let actors_cpu = actors_cpu.describe(&CpuSnapshot::take(bench.sim_pid), actors_elapsed, n);
    drop(answers);
    running.shutdown(Duration::from_secs(5)).await?;
    drop(app);
    Ok(ServiceRun {
        rate: n as f64 / (end - start).as_secs_f64(),
        rate_from_first_result: n as f64 / (end - first_result).as_secs_f64(),
        actors_only,
        actors_cpu,
        cpu,
        trades,
        linger: linger(&settings),
    })
}

/// What phase 3 saw, in ms.
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
    ack_p50: f64,
    linger: String,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Phase 3: publish→result latency, one chunk at a time, linger.ms=0 everywhere.
async fn latency(bench: &Bench) -> anyhow::Result<Latency> {
    let mut settings = bench.settings("latency")?;
    settings
        .kafka
        .producer
        .insert("linger_ms".into(), KafkaValue::Int(0));
    settings.validate()?;
    let topics = cloner_worker::kafka::topics::service_topics(&settings);
    bench.broker.create_topics(&settings, &topics).await?;
    let reader = TopicReader::new(&settings.kafka, &settings.topics.finished)?;
    let running = service::start(&settings, Hooks::default()).await?;
    let producer = requester::producer(&settings)?;

    // The first chunks wait for the group join; then a few more to warm up.
    let warmup = 20;
    let chunks = small_windows(warmup + bench.latency_n);
    let mut total = Vec::with_capacity(bench.latency_n);
    let mut acks = Vec::with_capacity(bench.latency_n);
    for (i, chunk) in chunks.iter().enumerate() {
        let key = requester::chunk_key(chunk);
        let payload = chunk.encode_to_vec();
        let sent = Instant::now();
        producer
            .send(
                FutureRecord::to(&settings.topics.todo)
                    .key(&key)
                    .payload(&payload),
                Timeout::Never,
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("publishing {key}: {e}"))?;
        let acked = sent.elapsed();
        let record = tokio::time::timeout(PHASE_TIMEOUT, reader.next())
            .await
            .with_context(|| format!("no result for {key}"))??;
        let took = sent.elapsed();
        anyhow::ensure!(
            record.key_str() == key,
            "result {} for {key}",
            record.key_str()
        );
        if i >= warmup {
            total.push(took.as_secs_f64() * 1e3);
            acks.push(acked.as_secs_f64() * 1e3);
        }
    }
    running.shutdown(Duration::from_secs(5)).await?;
    total.sort_by(f64::total_cmp);
    acks.sort_by(f64::total_cmp);
    Ok(Latency {
        p50: percentile(&total, 50.0),
        p99: percentile(&total, 99.0),
        max: *total.last().expect("samples"),
        ack_p50: percentile(&acks, 50.0),
        linger: linger(&settings),
    })
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; there is nothing to filter.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let broker = Broker::start()?;
    let fetch_wait_ms = env_number("BENCH_FETCH_WAIT_MS").or(broker.mock.as_ref().map(|_| 1));
    let sim = SimulatorProcess::start();
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() % 1_000_000_000
    );
    let bench = Bench {
        broker,
        sim_url: sim.base_url.clone(),
        sim_pid: sim.child.id(),
        run_id,
        n: env_number("BENCH_N").unwrap_or(20_000),
        latency_n: env_number("BENCH_LATENCY_N").unwrap_or(200),
        fetch_wait_ms,
        max_in_flight: env_number("BENCH_MAX_IN_FLIGHT").unwrap_or(MAX_IN_FLIGHT),
        linger_ms: env_number("BENCH_LINGER_MS"),
    };
    let chunks = small_windows(bench.n);
    let payload_bytes = chunks[0].encode_to_vec().len();
    println!("broker: {}", bench.broker.describe());
    println!(
        "consumers' fetch.wait.max.ms: {}",
        bench
            .fetch_wait_ms
            .map_or("librdkafka default (500)".into(), |ms| ms.to_string())
    );

    // The service's singletons are registered once per actix System: a System per service.
    let (pass, svc) = actix_rt::System::new().block_on(async {
        let pass = passthrough(&bench, &chunks).await?;
        let svc = service_end_to_end(&bench, &chunks).await?;
        System::current().stop();
        anyhow::Ok((pass, svc))
    })?;
    let (pass_rate, pass_linger, pass_cpu) = pass;
    println!("passthrough (raw rdkafka consume->produce): {pass_rate:.0} msgs/s");
    println!(
        "  {} msgs of {payload_bytes} B, 2 partitions, up to {PASSTHROUGH_IN_FLIGHT} deliveries in flight, acks=all, idempotent, linger.ms={pass_linger}; timed from the first message received to the last delivery ack",
        bench.n
    );
    println!("  {pass_cpu}");
    println!(
        "service end to end (limiter off, simulator 0 ms): {:.0} chunks/s",
        svc.rate
    );
    println!(
        "  {} chunks ({} trades), {N_WORKERS} workers, max_in_flight {}, linger.ms={}; timed from the service's first message received to the {}-th result read ({:.0} chunks/s from the first result read)",
        bench.n, svc.trades, bench.max_in_flight, svc.linger, bench.n, svc.rate_from_first_result
    );
    println!("  {}", svc.cpu);
    println!(
        "  without Kafka, the same chunks straight into WorkerManager.add_task ({} in flight): {:.0} chunks/s",
        bench.max_in_flight, svc.actors_only
    );
    println!("    {}", svc.actors_cpu);
    println!("ratio: {:.2} (goal >= 0.5)", svc.rate / pass_rate);

    let lat = actix_rt::System::new().block_on(async {
        let lat = latency(&bench).await?;
        System::current().stop();
        anyhow::Ok(lat)
    })?;
    println!(
        "latency produce->result at light load: p50 {:.1} ms, p99 {:.1} ms (goal p50 < 10 ms)",
        lat.p50, lat.p99
    );
    println!(
        "  {} chunks one at a time, each published once the previous result was read; from just before the send to the result read; max {:.1} ms; publish ack p50 {:.1} ms; linger.ms={} on the publisher and the service",
        bench.latency_n, lat.max, lat.ack_p50, lat.linger
    );
    drop(sim);
    drop(bench);
    Ok(())
}

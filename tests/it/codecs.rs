//! Compressed batches on the wire: TodoChunks produced by a client no one here wrote (Apache
//! Kafka's Java client, `tests/clients/CodecProducer.java`) with each codec Kafka has — gzip,
//! snappy, lz4, zstd — are all answered, and the service's own results compressed with zstd are
//! read back. On the suite's own cluster the broker's log segments are dumped
//! (`kafka.tools.DumpLogSegments`) to prove the batches really were compressed with each codec:
//! otherwise this test could pass without a single zstd batch.
//!
//! A codec this build could not read is fatal, never an endless retry
//! (`service::failure::ConsumeError`, unit-tested there): the partition would stall behind it.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use prost::Message as _;

use cloner_worker::clone::requester::{chunk_key, TopicReader};
use cloner_worker::proto::cloned_chunk;

use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

/// Every codec a Kafka producer may use.
const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];

/// Chunks per codec.
const PER_CODEC: i32 = 50;

/// The class path of the Apache Kafka jars (resolved by Maven on first use).
fn kafka_classpath() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/apache-kafka/classpath");
    let out = Command::new(script)
        .output()
        .expect("scripts/apache-kafka/classpath runs");
    assert!(
        out.status.success(),
        "scripts/apache-kafka/classpath: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Produces `lines` (`CODEC\tKEY\tVALUE_HEX`) with the Java client to `topic`.
fn java_produce(bootstrap: &str, topic: &str, lines: &[String]) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/CodecProducer.java");
    let mut child = Command::new("java")
        .args(["-cp", &kafka_classpath()])
        .arg(source)
        .args([bootstrap, topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("java runs");
    {
        let mut stdin = child.stdin.take().unwrap();
        for line in lines {
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains(&format!("produced {}", lines.len())),
        "the Java producer: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The codecs of the batches in `topic`'s segments on the suite's own cluster (its data is in
/// `.run/kafka/node-*/data`), by Kafka's own segment dump; `None` on a cluster elsewhere.
fn codecs_on_disk(topic: &str) -> Option<BTreeSet<String>> {
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join(".run/kafka");
    let kind = std::fs::read_to_string(run.join("kind")).ok()?;
    if kind.trim() != "apache" || std::env::var_os("KAFKA_BOOTSTRAP").is_some() {
        return None;
    }
    let mut segments: Vec<PathBuf> = Vec::new();
    for node in std::fs::read_dir(&run).unwrap().flatten() {
        let data = node.path().join("data");
        let Ok(dirs) = std::fs::read_dir(&data) else {
            continue;
        };
        for dir in dirs.flatten() {
            let name = dir.file_name().to_string_lossy().to_string();
            if name.rsplit_once('-').map(|(t, _)| t) == Some(topic) {
                for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
                    if f.path().extension().is_some_and(|e| e == "log") {
                        segments.push(f.path());
                    }
                }
            }
        }
    }
    assert!(
        !segments.is_empty(),
        "{topic} has segments under {}",
        run.display()
    );
    let files = segments
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new("java")
        .args([
            "-cp",
            &kafka_classpath(),
            "kafka.tools.DumpLogSegments",
            "--files",
        ])
        .arg(files)
        .output()
        .expect("DumpLogSegments runs");
    let dump = String::from_utf8_lossy(&out.stdout);
    Some(
        dump.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "compresscodec:")
            .map(|w| w[1].to_lowercase())
            .collect(),
    )
}

#[actix_rt::test]
async fn todo_chunks_compressed_with_every_codec_by_the_java_client_are_answered() {
    let sim = start_simulator(no_rate_limit()).await;
    let settings = service_settings(&sim, 8, 100, "codecs").await;
    let chunks = minute_chunks("BTC_LTC", PER_CODEC * CODECS.len() as i32);
    let lines: Vec<String> = chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let codec = CODECS[i / PER_CODEC as usize];
            let hex: String = chunk
                .encode_to_vec()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{codec}\t{}\t{hex}", chunk_key(chunk))
        })
        .collect();
    java_produce(
        &settings.kafka.bootstrap_servers(),
        &settings.topics.todo,
        &lines,
    );
    if let Some(codecs) = codecs_on_disk(&settings.topics.todo) {
        eprintln!("the todo topic's batches on disk are compressed with {codecs:?}");
        for codec in CODECS {
            assert!(
                codecs.contains(codec),
                "a {codec} batch on disk: {codecs:?}"
            );
        }
    }

    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    // The service's own results compressed with zstd, which the reader must decompress.
    let mut service = ServiceProcess::start_with_env(
        &settings,
        &[("CLONER__KAFKA__PRODUCER__COMPRESSION_TYPE", "zstd")],
    );
    let records = results
        .take(chunks.len(), TEST_DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}; the service's log:\n{}", service.log.join("\n")));
    let by_key = results_by_key(&records);
    for chunk in &chunks {
        let answers = by_key
            .get(&chunk_key(chunk))
            .unwrap_or_else(|| panic!("{chunk:?} is answered"));
        assert_eq!(
            answers[0].chunk_result,
            cloned_chunk::Result::Complete as i32
        );
        assert_matches_ground_truth(sim.config(), &answers[0]);
    }
    assert!(service.terminate(EXIT_TIMEOUT).success());
    assert!(
        !service.log.iter().any(|l| l.contains("Decompression")),
        "no decompression failure: {}",
        service.log.join("\n")
    );
    if let Some(codecs) = codecs_on_disk(&settings.topics.finished) {
        // librdkafka sends a batch as it is when compressing would not make it smaller (a
        // batch of one small result), so `none` may stand beside zstd, and nothing else.
        assert!(
            codecs.contains("zstd") && codecs.iter().all(|c| c == "zstd" || c == "none"),
            "the results are zstd batches (or too small to compress): {codecs:?}"
        );
    }
    sim.stop().await;
}

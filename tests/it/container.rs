//! The container stack (`Dockerfile`, `compose.yaml`, `.dockerignore`), checked without a Docker
//! engine, which these machines do not have.
//!
//! What is proved: compose.yaml parses and has the stack the README describes (Kafka healthy
//! before the topics are created, the topics before the workers start, two worker replicas that
//! drain within their stop grace period); every `CLONER__*` variable it sets is a real
//! configuration key with the value meant; the Dockerfile builds with a toolchain no older than
//! `rust-version`, copies only what exists and is in the build context, and runs both binaries
//! as a non-root user; the healthchecks' bash-only HTTP request tells 200 from 503; and the
//! binary, given nothing but the worker's environment (no config file, no working-directory
//! `config/`), clones a chunk through Kafka.
//!
//! What is not: that an engine builds the image and the stack comes up (the images it pulls,
//! the network, the healthchecks' timing).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_norway::Value;

use cloner_worker::clone::requester::{self, chunk_key, TopicReader};
use cloner_worker::config::{KafkaRole, Settings, Split};
use cloner_worker::dev::simulator::SimulatorConfig;
use cloner_worker::proto::cloned_chunk;

use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// compose.yaml

/// compose.yaml with its anchors and merge keys (`<<: *cloner-image`) resolved, as Compose
/// resolves them.
fn compose() -> Value {
    let mut value: Value =
        serde_norway::from_str(&read("compose.yaml")).expect("compose.yaml parses");
    value.apply_merge().expect("merge keys resolve");
    value
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("compose.yaml has no service {name}"))
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

/// A list of strings (`command`, `entrypoint`, a healthcheck's `test`).
fn strings(value: &Value, what: &str) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{what} is not a list: {value:?}"))
        .iter()
        .map(|v| str_of(v, what).to_string())
        .collect()
}

/// A scalar as Compose passes it to a container: numbers and booleans as written.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A service's `environment`, in either of Compose's forms (a map, or a list of `K=V`).
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| (str_of(k, "a variable name").to_string(), scalar(v)))
            .collect(),
        Value::Sequence(list) => list
            .iter()
            .map(|kv| {
                let kv = str_of(kv, "an environment entry");
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("environment is neither a map nor a list: {other:?}"),
    }
}

/// The settings a container with this environment runs with: the embedded defaults and the
/// environment, nothing else (as in the image, which has no config file).
fn container_settings(env: &BTreeMap<String, String>) -> Settings {
    Settings::from_sources(None, env.clone())
        .unwrap_or_else(|e| panic!("the environment {env:?} is not a valid configuration: {e}"))
}

fn depends_on_condition<'a>(service: &'a Value, on: &str) -> &'a str {
    str_of(
        &service["depends_on"][on]["condition"],
        &format!("depends_on.{on}.condition"),
    )
}

/// The value after `flag` in an argument list.
fn flag_value<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} not in {args:?}"));
    args.get(i + 1)
        .unwrap_or_else(|| panic!("{flag} has no value in {args:?}"))
}

/// A Compose duration: `45s`, `1m30s`, `500ms`.
fn compose_duration(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("duration {text:?}"));
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += match &rest[..unit] {
            "h" => Duration::from_secs(n * 3600),
            "m" => Duration::from_secs(n * 60),
            "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            other => panic!("unit {other:?} in duration {text:?}"),
        };
        rest = &rest[unit..];
    }
    total
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// The bash script of a `["CMD", "bash", "-c", SCRIPT]` healthcheck.
fn healthcheck_script(service: &Value, name: &str) -> String {
    let test = strings(
        &service["healthcheck"]["test"],
        &format!("{name}.healthcheck.test"),
    );
    assert_eq!(
        test[..3],
        ["CMD", "bash", "-c"],
        "{name}: the runtime image has bash but no curl or shell-form default; {test:?}"
    );
    test[3].clone()
}

/// The port a healthcheck script connects to (`/dev/tcp/127.0.0.1/PORT`).
fn healthcheck_port(script: &str) -> u16 {
    script
        .split("/dev/tcp/127.0.0.1/")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no /dev/tcp/127.0.0.1/PORT in {script:?}"))
}

#[test]
fn compose_has_the_stack_in_the_order_it_needs() {
    let compose = compose();
    assert!(
        compose.get("version").is_none(),
        "the Compose Specification has no `version:` key"
    );
    let names: Vec<&str> = compose["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .map(|k| str_of(k, "a service name"))
        .collect();
    assert_eq!(names, ["kafka", "topics-init", "simulator", "worker"]);

    // Kafka: the Apache image at a fixed 3.x/4.x release, one KRaft node, kafka:9092 for the
    // stack, a healthcheck with the image's own scripts.
    let kafka = service(&compose, "kafka");
    let image = str_of(&kafka["image"], "kafka.image");
    let tag = image
        .strip_prefix("apache/kafka:")
        .unwrap_or_else(|| panic!("kafka runs the apache/kafka image, not {image}"));
    let major: u32 = tag.split('.').next().unwrap().parse().unwrap_or(0);
    assert!(
        (3..=4).contains(&major) && tag.split('.').count() == 3,
        "a pinned 3.x.y or 4.x.y release, not {tag:?}"
    );
    let kenv = environment(kafka);
    assert_eq!(kenv["KAFKA_PROCESS_ROLES"], "broker,controller");
    assert!(kenv["KAFKA_ADVERTISED_LISTENERS"]
        .split(',')
        .any(|l| l.ends_with("//kafka:9092")));
    for internal in [
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ] {
        assert_eq!(kenv[internal], "1", "{internal} on a single broker");
    }
    let test = strings(&kafka["healthcheck"]["test"], "kafka.healthcheck.test");
    assert!(
        test.iter().any(|t| t.contains("/opt/kafka/bin/")),
        "{test:?}"
    );

    // Our image for the three others, built from this directory.
    for name in ["topics-init", "simulator", "worker"] {
        let s = service(&compose, name);
        assert_eq!(
            str_of(&s["image"], "image"),
            "cloner-worker:local",
            "{name}"
        );
        assert_eq!(scalar(&s["build"]["context"]), ".", "{name}");
    }

    let init = service(&compose, "topics-init");
    assert_eq!(strings(&init["command"], "command"), ["topics", "create"]);
    assert_eq!(depends_on_condition(init, "kafka"), "service_healthy");

    let simulator = service(&compose, "simulator");
    assert_eq!(
        strings(&simulator["entrypoint"], "entrypoint"),
        ["exchange-simulator"]
    );
    let args = strings(&simulator["command"], "simulator.command");
    assert_eq!(
        flag_value(&args, "--host"),
        "0.0.0.0",
        "reachable by the workers"
    );
    assert_eq!(flag_value(&args, "--port"), "8080");
    let rate_limit: f64 = flag_value(&args, "--rate-limit").parse().unwrap();
    assert!(rate_limit > 0.0, "the exchange's limit is on");

    let worker = service(&compose, "worker");
    let replicas = worker["deploy"]["replicas"]
        .as_u64()
        .expect("deploy.replicas");
    assert_eq!(replicas, 2);
    assert!(
        worker.get("container_name").is_none() && worker.get("ports").is_none(),
        "replicas clash on a fixed container name or host port"
    );
    assert_eq!(
        depends_on_condition(worker, "topics-init"),
        "service_completed_successfully"
    );
    assert_eq!(depends_on_condition(worker, "simulator"), "service_healthy");

    // What the workers are configured with must fit the stack around them.
    let settings = container_settings(&environment(worker));
    // The replicas share default_rate as one group's budget: it is the exchange's limit, not
    // a replica's, whatever the replica count.
    assert_eq!(settings.rate_limiter.split, Split::Group);
    assert!(
        settings.default_rate <= rate_limit,
        "default_rate {} exceeds the simulator's --rate-limit {rate_limit}",
        settings.default_rate
    );
    let grace = compose_duration(str_of(&worker["stop_grace_period"], "stop_grace_period"));
    assert!(
        grace > settings.consumer.drain_grace(),
        "stop_grace_period {grace:?} must exceed the drain's grace {:?}, or the engine kills a draining worker",
        settings.consumer.drain_grace()
    );
    let listen_port = port_of(&settings.http.listen);
    assert_eq!(
        healthcheck_port(&healthcheck_script(worker, "worker")),
        listen_port,
        "the worker's healthcheck asks the port http.listen serves"
    );
    assert!(healthcheck_script(worker, "worker").contains("GET /health "));
    assert_eq!(
        healthcheck_port(&healthcheck_script(simulator, "simulator")),
        flag_value(&args, "--port").parse::<u16>().unwrap()
    );
}

#[test]
fn every_cloner_variable_in_compose_is_a_configuration_key_with_the_value_meant() {
    let compose = compose();
    // The check has teeth: a misspelt key is refused, not ignored.
    let misspelt = [(
        "CLONER__UPSTREAM__BASE_ULR".to_string(),
        "http://simulator:8080".to_string(),
    )];
    let err = Settings::from_sources(None, misspelt).expect_err("an unknown key is refused");
    assert!(err.to_string().contains("base_ulr"), "{err}");

    for name in ["topics-init", "simulator", "worker", "kafka"] {
        let env = environment(service(&compose, name));
        // Every CLONER__ variable is read; none is silently dropped on the way.
        let settings = container_settings(&env);
        for (key, value) in env.iter().filter(|(k, _)| k.starts_with("CLONER__")) {
            assert!(!value.is_empty(), "{name}: {key} is empty");
        }
        if name == "topics-init" {
            assert_eq!(settings.kafka.bootstrap_servers(), "kafka:9092");
            assert_eq!(
                (
                    settings.topics.todo.as_str(),
                    settings.topics.finished.as_str()
                ),
                ("todo-chunk", "finished-chunk")
            );
            assert_eq!(settings.topics.dead_letter, "todo-chunk.dlq");
            assert_eq!(settings.topics.partitions, 2);
            // Unset: topics create decides from the broker count, 1 on the stack's one broker
            // (3, with min.insync.replicas 2, on a cluster of 3 or more).
            assert_eq!(settings.topics.replication, None);
            assert_eq!(settings.topics.min_insync_replicas, None);
        }
    }

    let env = environment(service(&compose, "worker"));
    let settings = container_settings(&env);
    assert_eq!(settings.kafka.bootstrap_servers(), "kafka:9092");
    let consumer = settings.kafka.properties(KafkaRole::Consumer).unwrap();
    assert_eq!(consumer["group.id"], "cloner-worker");
    assert_eq!(settings.upstream.base_url(), "http://simulator:8080");
    assert_eq!(settings.http.listen, "0.0.0.0:9464");
    assert_eq!(settings.default_rate, 6.0);
    assert_eq!(settings.topics.todo, "todo-chunk");
    assert_eq!(settings.topics.finished, "finished-chunk");
    assert!(env["RUST_LOG"].starts_with("info"), "{env:?}");
    // The rest is the embedded defaults: nothing else had to be set for a container.
    let defaults = Settings::default();
    assert_eq!(settings.consumer, defaults.consumer);
    assert_eq!(settings.n_workers, defaults.n_workers);
}

// ---------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore

/// One Dockerfile instruction: its keyword (upper case) and its arguments, continuation lines
/// joined and comment lines dropped, as the builder reads them.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn dockerfile() -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        instructions.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
        current.clear();
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends inside a continuation"
    );
    instructions
}

/// The stages: each `FROM` and the instructions up to the next.
fn stages(instructions: &[Instruction]) -> Vec<&[Instruction]> {
    let starts: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "FROM")
        .map(|(n, _)| n)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| &instructions[s..*starts.get(k + 1).unwrap_or(&instructions.len())])
        .collect()
}

fn version_tuple(v: &str) -> Vec<u32> {
    v.split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("version {v:?}")))
        .collect()
}

/// A JSON-form (exec form) instruction's arguments.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not exec form, {args:?}: {e}"))
}

/// `.dockerignore`'s patterns, enough of its syntax for what it holds: `dir/`, `name`, `*.ext`.
fn ignored_by_dockerignore(path: &str) -> bool {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|pattern| {
            let pattern = pattern.trim_end_matches('/');
            assert!(
                !pattern.starts_with('!') && !pattern.contains("**"),
                "the test reads only simple .dockerignore patterns: {pattern}"
            );
            match pattern.strip_prefix('*') {
                Some(suffix) => !path.contains('/') && path.ends_with(suffix),
                None => path == pattern || path.starts_with(&format!("{pattern}/")),
            }
        })
}

/// COPY's sources and destination, flags (`--from=…`, `--chown=…`) apart.
fn copy_parts(args: &str) -> (Vec<String>, Option<String>, String) {
    let mut from = None;
    let mut paths = Vec::new();
    for word in args.split_whitespace() {
        if let Some(stage) = word.strip_prefix("--from=") {
            from = Some(stage.to_string());
        } else if !word.starts_with("--") {
            paths.push(word.to_string());
        }
    }
    let dest = paths.pop().expect("COPY has a destination");
    (paths, from, dest)
}

/// The binaries the package builds: the package's own and `src/bin/*.rs`.
fn package_binaries() -> Vec<String> {
    let mut bins = vec!["cloner-worker".to_string()];
    for entry in std::fs::read_dir(repo("src/bin")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            bins.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    bins.sort();
    bins
}

#[test]
fn the_dockerfile_builds_with_a_supported_toolchain_and_runs_as_a_user_from_env_alone() {
    let instructions = dockerfile();
    let stages = stages(&instructions);
    assert!(stages.len() >= 2, "a build stage and a runtime stage");

    // The builder's Rust is no older than Cargo.toml's rust-version, and on Debian bookworm
    // like the runtime (the same OpenSSL 3 and glibc it links against).
    let global_args: BTreeMap<String, String> = instructions
        .iter()
        .take_while(|i| i.keyword != "FROM")
        .filter(|i| i.keyword == "ARG")
        .filter_map(|i| i.args.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect();
    let mut builder_image = stages[0][0]
        .args
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    for (name, value) in &global_args {
        builder_image = builder_image.replace(&format!("${{{name}}}"), value);
    }
    let tag = builder_image
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("the builder is an official Rust image, not {builder_image}"));
    assert!(tag.ends_with("-bookworm"), "a bookworm variant: {tag}");
    let rust = tag.split('-').next().unwrap();
    let manifest = read("Cargo.toml");
    let required = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("Cargo.toml has a rust-version")
        .trim_matches('"');
    assert!(
        version_tuple(rust) >= version_tuple(required),
        "the image's Rust {rust} is older than rust-version {required}"
    );
    let runtime_base = stages.last().unwrap()[0].args.as_str();
    assert!(runtime_base.contains("bookworm"), "{runtime_base}");

    let build = stages[0]
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("the builder runs cargo build");
    for flag in ["--release", "--locked", "--bins"] {
        assert!(
            build.args.contains(flag),
            "cargo build {flag}: {}",
            build.args
        );
    }

    // Every path copied from the build context exists and is not kept out by .dockerignore.
    let mut copied_from_context = Vec::new();
    for instruction in instructions.iter().filter(|i| i.keyword == "COPY") {
        let (sources, from, _) = copy_parts(&instruction.args);
        if from.is_none() {
            copied_from_context.extend(sources);
        }
    }
    assert!(
        copied_from_context.iter().any(|s| s == "Cargo.lock"),
        "--locked needs it"
    );
    for source in &copied_from_context {
        let path = source.trim_end_matches('/');
        assert!(
            repo(path).exists(),
            "COPY {source}: no such path in the repository"
        );
        assert!(
            !ignored_by_dockerignore(path),
            "COPY {source}: .dockerignore leaves it out"
        );
    }
    for heavy in ["target", ".git", ".run"] {
        assert!(
            ignored_by_dockerignore(heavy),
            ".dockerignore keeps {heavy}/ out"
        );
    }

    // The runtime stage: both binaries from the builder, no file from the context (its
    // configuration is the environment), a non-root user, the service as entrypoint.
    let runtime = stages.last().unwrap();
    let mut binaries = Vec::new();
    for instruction in runtime.iter().filter(|i| i.keyword == "COPY") {
        let (sources, from, _) = copy_parts(&instruction.args);
        assert!(
            from.is_some(),
            "the runtime copies nothing from the build context: {}",
            instruction.args
        );
        binaries.extend(
            sources
                .iter()
                .map(|s| s.rsplit('/').next().unwrap().to_string()),
        );
    }
    binaries.sort();
    assert_eq!(
        binaries,
        package_binaries(),
        "every binary of the package, no more"
    );

    let user = runtime
        .iter()
        .rfind(|i| i.keyword == "USER")
        .expect("the runtime stage sets USER")
        .args
        .clone();
    let uid = user.split(':').next().unwrap();
    assert!(
        uid != "root" && uid != "0" && !uid.is_empty(),
        "runs as a non-root user, not {user:?}"
    );
    if uid.chars().all(|c| c.is_ascii_digit()) {
        assert!(
            runtime
                .iter()
                .any(|i| i.keyword == "RUN" && i.args.contains(&format!("--uid {uid}"))),
            "uid {uid} is created in the runtime stage"
        );
    }
    let last = |keyword: &str| {
        runtime
            .iter()
            .rfind(|i| i.keyword == keyword)
            .unwrap_or_else(|| panic!("the runtime stage has {keyword}"))
            .args
            .clone()
    };
    assert_eq!(exec_form(&last("ENTRYPOINT")), ["cloner-worker"]);
    assert_eq!(exec_form(&last("CMD")), ["serve"]);
    let exposed: Vec<u16> = last("EXPOSE")
        .split_whitespace()
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    assert!(
        exposed.contains(&port_of(&Settings::default().http.listen)),
        "EXPOSE the default http.listen port: {exposed:?}"
    );
    for env in runtime.iter().filter(|i| i.keyword == "ENV") {
        assert!(
            !env.args.contains("CLONER_CONFIG"),
            "configuration by environment only, no file: {}",
            env.args
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Healthchecks

/// Runs a healthcheck script the way the engine does (`bash -c`, Debian's PATH); its success.
/// Bounded: a script still running after `timeout` is killed and fails the test.
fn run_healthcheck(script: &str, timeout: Duration) -> bool {
    let child = Command::new("bash")
        .args(["-c", script])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bash runs");
    match output_within(child, timeout) {
        Some(output) => output.status.success(),
        None => panic!("the healthcheck did not finish within {timeout:?}: {script}"),
    }
}

/// A one-connection HTTP server that answers `status_line` (what /health says when not ready).
fn answer_once(status_line: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let _ = write!(stream, "{status_line}\r\ncontent-length: 0\r\n\r\n");
    });
    port
}

#[actix_rt::test]
async fn the_healthchecks_tell_a_healthy_endpoint_from_one_that_is_not_with_bash_alone() {
    let compose = compose();
    let sim = start_simulator(SimulatorConfig::default()).await;
    let sim_port = port_of(&sim.base_url());
    for name in ["simulator", "worker"] {
        let script = healthcheck_script(service(&compose, name), name);
        let at = |port: u16| {
            script.replace(
                &format!("/dev/tcp/127.0.0.1/{}", healthcheck_port(&script)),
                &format!("/dev/tcp/127.0.0.1/{port}"),
            )
        };
        // The simulator's GET /health answers 200, from the same HTTP server (actix-web) as the
        // service's /health.
        let healthy = at(sim_port);
        let ok = tokio::task::spawn_blocking(move || run_healthcheck(&healthy, TEST_DEADLINE))
            .await
            .unwrap();
        assert!(ok, "{name}: a 200 from /health is healthy");
        let unready = at(answer_once("HTTP/1.1 503 Service Unavailable"));
        let ok = tokio::task::spawn_blocking(move || run_healthcheck(&unready, TEST_DEADLINE))
            .await
            .unwrap();
        assert!(!ok, "{name}: a 503 is unhealthy");
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let nobody = at(closed);
        let ok = tokio::task::spawn_blocking(move || run_healthcheck(&nobody, TEST_DEADLINE))
            .await
            .unwrap();
        assert!(!ok, "{name}: nothing listening is unhealthy");
    }
    sim.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The binary with the container's configuration

#[actix_rt::test]
async fn the_worker_clones_a_chunk_with_nothing_but_the_containers_environment() {
    let compose = compose();
    let worker_env = environment(service(&compose, "worker"));
    let args = strings(
        &service(&compose, "simulator")["command"],
        "simulator.command",
    );
    let sim = start_simulator(SimulatorConfig {
        rate_limit: flag_value(&args, "--rate-limit").parse().unwrap(),
        ..SimulatorConfig::default()
    })
    .await;

    // The worker's settings as the container has them, then this test's broker, simulator,
    // topics (created here) and group instead of the stack's hosts and shared names.
    let mut base = container_settings(&worker_env);
    base.upstream.base_url = Some(sim.base_url());
    let settings = kafka_settings(base, "container").await;
    let group = settings.kafka.properties(KafkaRole::Consumer).unwrap()["group.id"].clone();
    let mut env = worker_env.clone();
    for (key, value) in [
        ("CLONER__KAFKA__BOOTSTRAP_SERVERS", bootstrap()),
        ("CLONER__UPSTREAM__BASE_URL", sim.base_url()),
        ("CLONER__TOPICS__TODO", settings.topics.todo.clone()),
        ("CLONER__TOPICS__FINISHED", settings.topics.finished.clone()),
        (
            "CLONER__TOPICS__DEAD_LETTER",
            settings.topics.dead_letter.clone(),
        ),
        ("CLONER__KAFKA__CONSUMER__GROUP_ID", group.clone()),
        // Parallel tests must not fight for the container's fixed port.
        ("CLONER__HTTP__LISTEN", "127.0.0.1:0".to_string()),
    ] {
        env.insert(key.to_string(), value);
    }

    // A working directory with no config/ in it, and no environment but the container's: the
    // binary's embedded defaults are all it has besides.
    let cwd = std::env::temp_dir().join(unique("cloner-container-cwd"));
    std::fs::create_dir(&cwd).unwrap();
    let mut command = cloner_worker();
    command
        .arg("serve")
        .env_clear()
        .envs(&env)
        .current_dir(&cwd);
    let mut service = ServiceProcess::spawn(command);

    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let chunk = hourly_chunks("BTC_ETH", DAY, 1, 7).remove(0);
    assert_eq!(
        expected_result(sim.config(), &chunk),
        cloned_chunk::Result::Complete,
        "the chunk is one whose every trade can be compared"
    );
    let producer = requester::producer(&settings).unwrap();
    requester::publish_chunks(
        &producer,
        &settings.topics.todo,
        std::slice::from_ref(&chunk),
    )
    .await
    .unwrap();

    let records = match results.take(1, TEST_DEADLINE).await {
        Ok(records) => records,
        Err(e) => {
            service.kill();
            service.wait_exit(Duration::from_secs(10));
            panic!("{e}; the service's log:\n{}", service.log.join("\n"));
        }
    };
    let consuming = service.wait_for("that it consumes", TEST_DEADLINE, |l| {
        l.contains("consuming ")
    });
    assert!(
        consuming.contains(&settings.topics.todo)
            && consuming.contains(&bootstrap())
            && consuming.contains(&group),
        "it runs with the environment's topics, broker and group: {consuming}"
    );
    assert_eq!(records[0].key_str(), chunk_key(&chunk));
    let answer = records[0].cloned_chunk().unwrap();
    assert_eq!(answer.chunk_result, cloned_chunk::Result::Complete as i32);
    assert_eq!(answer.original_todo_chunk.as_ref(), Some(&chunk));
    assert!(!answer.entries.is_empty());
    assert_matches_ground_truth(sim.config(), &answer);

    assert!(
        service.terminate(Duration::from_secs(60)).success(),
        "exit 0 on SIGTERM, as `docker stop` sends; its log:\n{}",
        service.log.join("\n")
    );
    assert!(
        std::fs::read_dir(&cwd).unwrap().next().is_none(),
        "the service writes nothing to its working directory"
    );
    std::fs::remove_dir(&cwd).unwrap();
    sim.stop().await;
}

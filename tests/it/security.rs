//! `serve` and `clone` against a SASL_SSL listener: a 1-node Apache Kafka cluster of the test's
//! own ([`ApacheCluster`], `scripts/kafka-up --apache`) with a throw-away CA, a broker
//! certificate for 127.0.0.1 and localhost signed by it (PKCS12 keystore), two SCRAM-SHA-512
//! users created by the storage formatter (`KAFKA_FORMAT_ARGS --add-scram`), and ACLs
//! (`StandardAuthorizer`): `alice` may use every topic and group, `bob` nothing. The SASL_SSL
//! listener is added beside kafka-up's PLAINTEXT one (`KAFKA_EXTRA_LISTENERS`); the test itself
//! creates the topics, publishes the chunks and reads the results through PLAINTEXT (the super
//! user), so that what goes through SASL_SSL is the service and the clone only.
//!
//! What is proved:
//! - with the right user, password and CA, and the ACLs in force, `serve` consumes chunks and
//!   produces their results (the ground truth), and `clone` gets an hour through it;
//!   librdkafka's own debug lines say it authenticated as the user, and its configuration dump
//!   shows the password redacted;
//! - a wrong password, a user the ACLs allow nothing, a SASL mechanism the listener does not
//!   enable, a CA that did not sign the broker's certificate, a SASL_SSL client on the
//!   PLAINTEXT port and a PLAINTEXT client on the SASL_SSL port each make `serve` and `clone`
//!   exit non-zero well within the metadata timeout (the time each took is printed), with a
//!   message naming the key to fix;
//! - no line any of those runs writes, at RUST_LOG=debug or trace with librdkafka's debug
//!   contexts on (`debug=all` for the failures), holds a password: the one tried, the right
//!   one, the other user's, the keystore's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer as _};

use cloner_worker::clone::requester::TopicReader;
use cloner_worker::config::{KafkaRole, Settings};
use cloner_worker::dev::simulator::market;
use cloner_worker::kafka::client;

use crate::helpers::cluster::ApacheCluster;
use crate::helpers::kafka::*;
use crate::helpers::process::*;
use crate::helpers::*;

const USER: &str = "alice";
/// Distinctive, so that a log line holding it cannot be a coincidence.
const PASSWORD: &str = "alice-s3cret-7f2c91";
const WRONG_PASSWORD: &str = "not-alices-9b31d4";
/// A user the ACLs allow nothing.
const OTHER_USER: &str = "bob";
const OTHER_PASSWORD: &str = "bobs-s3cret-c0ffee";
const KEYSTORE_PASSWORD: &str = "keystore-pw-58a2e";

/// A failed start must be this much quicker than waiting out the start-up checks' metadata
/// timeout (10 s), which is what a retry loop would cost.
const FAIL_WITHIN: Duration = Duration::from_secs(8);

/// The cluster, its SASL_SSL address and the throw-away TLS material.
struct SecureCluster {
    cluster: ApacheCluster,
    /// `127.0.0.1:PORT` of the SASL_SSL listener.
    sasl_ssl: String,
    /// ca.pem (signed the broker's certificate), other-ca.pem (did not), broker.p12.
    tls: PathBuf,
}

impl SecureCluster {
    fn start() -> SecureCluster {
        let tls = std::env::temp_dir().join(unique("cloner-tls"));
        std::fs::create_dir_all(&tls).unwrap();
        make_certificates(&tls);
        let port = free_port();
        let extra = tls.join("sasl-ssl.properties");
        std::fs::write(
            &extra,
            format!(
                "# The SASL_SSL listener of tests/it/security.rs.\n\
                 sasl.enabled.mechanisms=SCRAM-SHA-512\n\
                 listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
                 ssl.keystore.type=PKCS12\n\
                 ssl.keystore.location={}\n\
                 ssl.keystore.password={KEYSTORE_PASSWORD}\n\
                 # ACLs: PLAINTEXT and CONTROLLER clients are User:ANONYMOUS, the super user.\n\
                 authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
                 super.users=User:ANONYMOUS\n",
                tls.join("broker.p12").display()
            ),
        )
        .unwrap();
        let listener = format!("SASL_SSL://127.0.0.1:{port}");
        let scram = format!(
            "--add-scram SCRAM-SHA-512=[name={USER},password={PASSWORD}] \
             --add-scram SCRAM-SHA-512=[name={OTHER_USER},password={OTHER_PASSWORD}]"
        );
        let started = Instant::now();
        let cluster = ApacheCluster::start_with_env(
            1,
            &[
                ("KAFKA_EXTRA_LISTENERS", &listener),
                ("KAFKA_EXTRA_PROPERTIES", extra.to_str().unwrap()),
                ("KAFKA_FORMAT_ARGS", &scram),
                // One node with a few topics; the suite's own cluster may run beside it.
                ("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m"),
            ],
        );
        eprintln!(
            "SASL_SSL cluster up in {:.1} s: PLAINTEXT {}, SASL_SSL 127.0.0.1:{port}",
            started.elapsed().as_secs_f64(),
            cluster.bootstrap
        );
        grant_all(&cluster.bootstrap, &format!("User:{USER}"));
        SecureCluster {
            cluster,
            sasl_ssl: format!("127.0.0.1:{port}"),
            tls,
        }
    }

    /// Waits until `settings`' topics are visible to the SASL user: the ACLs are in force on
    /// the broker (they are replayed from the metadata log after CreateAcls answers).
    fn wait_for_acls(&self, settings: &Settings) {
        let mut kafka = settings.kafka.clone();
        for (key, value) in self.client_env() {
            let name = key
                .trim_start_matches("CLONER__KAFKA__")
                .to_ascii_lowercase();
            kafka.set(&name.replace('_', "."), value);
        }
        let topics = [
            settings.topics.todo.as_str(),
            settings.topics.finished.as_str(),
        ];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client::check_topics(&kafka, KafkaRole::Admin, &topics, Duration::from_secs(10)) {
                Ok(_) => return,
                Err(err) if Instant::now() > deadline => {
                    panic!("{USER}'s ACLs not in force after 30 s: {err}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// What a client of the SASL_SSL listener sets, as an operator would: the environment.
    fn client_env(&self) -> Vec<(String, String)> {
        [
            ("CLONER__KAFKA__BOOTSTRAP_SERVERS", self.sasl_ssl.as_str()),
            ("CLONER__KAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
            ("CLONER__KAFKA__SASL_MECHANISMS", "SCRAM-SHA-512"),
            ("CLONER__KAFKA__SASL_USERNAME", USER),
            ("CLONER__KAFKA__SASL_PASSWORD", PASSWORD),
            (
                "CLONER__KAFKA__SSL_CA_LOCATION",
                self.tls.join("ca.pem").to_str().unwrap(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// `cloner-worker ARGS` as a client of the SASL_SSL listener on `settings`' topics, with
    /// `overrides` (which win) on top.
    fn command(&self, settings: &Settings, args: &[&str], overrides: &[(&str, &str)]) -> Command {
        let mut command = cloner_worker();
        command
            .args(args)
            .envs(service_env_on(settings, &self.sasl_ssl))
            .envs(self.client_env())
            .env("RUST_BACKTRACE", "0")
            .envs(overrides.iter().copied());
        command
    }
}

impl Drop for SecureCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the failed test's certificates: {}", self.tls.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.tls);
        }
    }
}

/// Allows `principal` everything on every topic and group, through the PLAINTEXT listener
/// (User:ANONYMOUS, the super user). rdkafka 0.39 has no ACL admin API: this is librdkafka's
/// CreateAcls through its C bindings.
fn grant_all(bootstrap: &str, principal: &str) {
    use rdkafka::bindings as rd;
    use std::ffi::{CStr, CString};
    let client: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("an admin connection");
    let rk = client.client().native_ptr();
    let (any, principal) = (CString::new("*").unwrap(), CString::new(principal).unwrap());
    let mut errstr = [0 as std::ffi::c_char; 512];
    // SAFETY: every pointer passed is live for the call (the CStrings, the bindings until
    // destroyed at the end, the client), the result event is read before it is destroyed, and
    // each object is destroyed once.
    unsafe {
        let mut acls: Vec<*mut rd::rd_kafka_AclBinding_t> = [
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP,
        ]
        .into_iter()
        .map(|resource| {
            let acl = rd::rd_kafka_AclBinding_new(
                resource,
                any.as_ptr(),
                rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                principal.as_ptr(),
                any.as_ptr(),
                rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ALL,
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            assert!(!acl.is_null(), "{:?}", CStr::from_ptr(errstr.as_ptr()));
            acl
        })
        .collect();
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_CreateAcls(rk, acls.as_mut_ptr(), acls.len(), std::ptr::null(), queue);
        let event = rd::rd_kafka_queue_poll(queue, 30_000);
        assert!(!event.is_null(), "CreateAcls answered within 30 s");
        assert_eq!(
            rd::rd_kafka_event_error(event),
            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
            "CreateAcls: {:?}",
            CStr::from_ptr(rd::rd_kafka_event_error_string(event))
        );
        let result = rd::rd_kafka_event_CreateAcls_result(event);
        let mut n = 0;
        let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut n);
        assert_eq!(n, acls.len(), "one result per ACL");
        for i in 0..n {
            let error = rd::rd_kafka_acl_result_error(*results.add(i));
            assert!(
                error.is_null(),
                "ACL {i}: {:?}",
                CStr::from_ptr(rd::rd_kafka_error_string(error))
            );
        }
        rd::rd_kafka_event_destroy(event);
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_AclBinding_destroy_array(acls.as_mut_ptr(), acls.len());
    }
}

/// A port free now (bound, then released): kafka-up's way too.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two throw-away CAs, and a certificate for 127.0.0.1 and localhost signed by the first, in
/// the PKCS12 keystore the broker reads.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let (ok, _, err) = run({
            let mut c = Command::new("openssl");
            c.args(args).current_dir(dir);
            c
        });
        assert!(ok, "openssl {args:?} failed: {err}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (key, pem, subject) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN=cloner-test-{ca}"),
        );
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            key.as_str(),
            "-out",
            pem.as_str(),
            "-days",
            "2",
            "-subj",
            subject.as_str(),
        ]);
        openssl(&args);
    }
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&args);
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "broker.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "broker.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    ]);
    let pass = format!("pass:{KEYSTORE_PASSWORD}");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        "broker.pem",
        "-inkey",
        "broker.key",
        "-certfile",
        "ca.pem",
        "-name",
        "broker",
        "-out",
        "broker.p12",
        "-passout",
        &pass,
    ]);
}

/// Runs `command` (stdin closed, output piped) to its exit within `limit`; its output and how
/// long it took. Killed at the limit, and the test fails saying so.
async fn run_within(command: Command, what: &str, limit: Duration) -> (Output, Duration) {
    let mut command = tokio::process::Command::from(command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not exit within {limit:?}"))
        .expect("the command runs");
    (output, started.elapsed())
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// No line of `log` holds a password (the right one or the one tried) or the keystore's.
fn assert_no_secret(log: &str, what: &str) {
    for secret in [PASSWORD, WRONG_PASSWORD, OTHER_PASSWORD, KEYSTORE_PASSWORD] {
        if let Some(line) = log.lines().find(|l| l.contains(secret)) {
            panic!("{what} logged a secret: {line}");
        }
    }
}

#[actix_rt::test]
async fn serve_and_clone_work_over_sasl_ssl_and_log_no_secret() {
    let secure = SecureCluster::start();
    let sim = start_simulator(no_rate_limit()).await;
    // Topics, chunks and results through PLAINTEXT: only the service and the clone use SASL.
    let settings = settings_on_cluster(
        &secure.cluster.bootstrap,
        unlimited_settings(&sim, 4),
        "sasl",
    )
    .await;
    secure.wait_for_acls(&settings);
    let results = TopicReader::new(&settings.kafka, &settings.topics.finished).unwrap();
    let chunks = minute_chunks("BTC_LTC", 20);
    publish(&settings, &chunks).await;

    let debug = [
        ("RUST_LOG", "debug,actix_server=warn"),
        // librdkafka's own: the SASL exchange, the connections, its configuration dump.
        ("CLONER__KAFKA__DEBUG", "security,broker,conf"),
    ];
    let mut service = ServiceProcess::spawn(secure.command(&settings, &["serve"], &debug));
    let mut seen = Vec::new();
    all_answered(&results, &chunks, &mut seen).await;
    for record in &seen {
        assert_matches_ground_truth(sim.config(), &record.cloned_chunk().unwrap());
    }

    // clone, through the running service, over SASL_SSL too.
    let out = secure.tls.join("hour.csv");
    let (from, until) = (DAY.to_string(), (DAY + 3600).to_string());
    let clone = secure.command(
        &settings,
        &[
            "clone",
            "USDT_BTC",
            "--from",
            &from,
            "--until",
            &until,
            "--out",
            out.to_str().unwrap(),
            "--progress",
            "log",
        ],
        &debug,
    );
    let (output, took) = run_within(clone, "clone", TEST_DEADLINE).await;
    let clone_log = text(&output);
    assert!(output.status.success(), "clone failed:\n{clone_log}");
    let written = std::fs::read_to_string(&out).unwrap();
    let trades = market::trades_in_window(sim.config(), "USDT_BTC", DAY, DAY + 3599);
    assert!(!trades.is_empty(), "the hour has trades");
    assert_eq!(
        written.lines().count(),
        trades.len() + 1,
        "every trade of the hour, and the header"
    );
    eprintln!(
        "clone over SASL_SSL: {} trades in {:.1} s",
        trades.len(),
        took.as_secs_f64()
    );

    assert!(
        service.terminate(EXIT_TIMEOUT).success(),
        "exit 0 on SIGTERM"
    );
    let service_log = service.log.join("\n");
    for (what, log) in [("serve", &service_log), ("clone", &clone_log)] {
        assert!(
            log.contains(&format!("Authenticated as {USER} using SCRAM-SHA-512")),
            "{what} authenticated through SASL (librdkafka's security debug line); its log:\n{log}"
        );
        assert!(
            log.contains("sasl.password = [redacted]"),
            "{what}'s librdkafka configuration dump redacts the password; its log:\n{log}"
        );
        assert_no_secret(log, what);
    }
}

/// A setting got wrong, and what the error must name.
struct Wrong<'a> {
    what: &'a str,
    /// Environment variables, and their wrong values.
    settings: &'a [(&'a str, &'a str)],
    named: &'a [&'a str],
}

#[actix_rt::test]
async fn wrong_security_settings_fail_at_start_naming_the_key_and_log_no_secret() {
    let secure = SecureCluster::start();
    let sim = start_simulator(no_rate_limit()).await;
    let settings = settings_on_cluster(
        &secure.cluster.bootstrap,
        unlimited_settings(&sim, 4),
        "sasl-wrong",
    )
    .await;
    let other_ca = secure.tls.join("other-ca.pem");
    let cases = [
        Wrong {
            what: "a wrong password",
            settings: &[("CLONER__KAFKA__SASL_PASSWORD", WRONG_PASSWORD)],
            named: &[
                "SASL authentication failed for user alice",
                "kafka.sasl_password",
                "CLONER__KAFKA__SASL_PASSWORD",
            ],
        },
        Wrong {
            what: "a user the ACLs allow nothing",
            settings: &[
                ("CLONER__KAFKA__SASL_USERNAME", OTHER_USER),
                ("CLONER__KAFKA__SASL_PASSWORD", OTHER_PASSWORD),
            ],
            named: &["user bob may not use topic", "ACLs", "kafka.sasl_username"],
        },
        Wrong {
            what: "a CA that did not sign the broker's certificate",
            settings: &[("CLONER__KAFKA__SSL_CA_LOCATION", other_ca.to_str().unwrap())],
            named: &[
                "certificate is not trusted",
                "kafka.ssl_ca_location",
                "CLONER__KAFKA__SSL_CA_LOCATION",
            ],
        },
        Wrong {
            what: "a SASL mechanism the listener does not enable",
            settings: &[("CLONER__KAFKA__SASL_MECHANISMS", "SCRAM-SHA-256")],
            named: &[
                "does not accept SASL mechanism SCRAM-SHA-256",
                "kafka.sasl_mechanisms",
                "CLONER__KAFKA__SASL_MECHANISMS",
            ],
        },
        Wrong {
            what: "a SASL_SSL client on the PLAINTEXT port",
            settings: &[(
                "CLONER__KAFKA__BOOTSTRAP_SERVERS",
                secure.cluster.bootstrap.as_str(),
            )],
            named: &[
                "kafka.security_protocol = SASL_SSL",
                "CLONER__KAFKA__SECURITY_PROTOCOL",
            ],
        },
        Wrong {
            what: "a PLAINTEXT client on the SASL_SSL port",
            settings: &[("CLONER__KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")],
            named: &[
                "kafka.security_protocol = PLAINTEXT",
                "CLONER__KAFKA__SECURITY_PROTOCOL",
            ],
        },
    ];
    let (from, until) = (DAY.to_string(), (DAY + 3600).to_string());
    let runs: [(&str, Vec<&str>); 2] = [
        ("serve", vec!["serve"]),
        (
            "clone",
            vec!["clone", "USDT_BTC", "--from", &from, "--until", &until],
        ),
    ];
    let mut timings = Vec::new();
    for wrong in &cases {
        for (name, args) in &runs {
            let mut overrides = wrong.settings.to_vec();
            overrides.extend([("RUST_LOG", "trace"), ("CLONER__KAFKA__DEBUG", "all")]);
            let command = secure.command(&settings, args, &overrides);
            let what = format!("{name} with {}", wrong.what);
            let (output, took) = run_within(command, &what, TEST_DEADLINE).await;
            let log = text(&output);
            assert!(!output.status.success(), "{what} exited 0:\n{log}");
            let error = log
                .lines()
                .find(|l| l.starts_with("Error: "))
                .unwrap_or_else(|| panic!("{what}: no `Error:` line; its output:\n{log}"));
            for key in wrong.named {
                assert!(error.contains(key), "{what}: {key} not named in: {error}");
            }
            assert!(
                took < FAIL_WITHIN,
                "{what} took {took:?} to fail, not the few seconds a refusal should: {error}"
            );
            assert_no_secret(&log, &what);
            eprintln!(
                "{what}: exit {:?} after {took:.2?}: {error}",
                output.status.code()
            );
            timings.push((what, took));
        }
    }
    eprintln!("time to fail:");
    for (what, took) in timings {
        eprintln!("  {:>6} ms  {what}", took.as_millis());
    }
}

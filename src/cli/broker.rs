//! `cloner-worker broker`: librdkafka's mock cluster of `--brokers` brokers hosted until the
//! process is killed, with the configured topics and a control port that creates topics and
//! injects faults (see [`crate::dev::mock_broker`]); `scripts/kafka-up` starts it for the tests.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::config::Settings;
use crate::dev::mock_broker::MockBroker;
use crate::kafka::topics;

#[derive(Args)]
pub struct BrokerArgs {
    /// How many brokers the mock cluster has (ids 1 to N); topics get min(3, N) replicas.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    brokers: i32,
    /// Write the bootstrap address here once the broker is up.
    #[arg(long)]
    bootstrap_file: Option<PathBuf>,
    /// Write the control address (topics and faults) here once the broker is up.
    #[arg(long)]
    control_file: Option<PathBuf>,
}

impl BrokerArgs {
    pub fn run(self, settings: &Settings) -> anyhow::Result<()> {
        let broker = MockBroker::start(self.brokers)?;
        for topic in topics::service_topics(settings) {
            broker.create_topic(topic, settings.topics.partitions)?;
        }
        let control =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the control port")?;
        let control_addr = control.local_addr()?;
        let bootstrap = broker.bootstrap_servers();
        // Written whole, then renamed: a reader never sees half an address.
        for (path, value) in [
            (&self.bootstrap_file, &bootstrap),
            (&self.control_file, &control_addr.to_string()),
        ] {
            if let Some(path) = path {
                let mut tmp = path.as_os_str().to_owned();
                tmp.push(".partial");
                std::fs::write(&tmp, value)
                    .with_context(|| format!("writing {}", path.display()))?;
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        log::info!(
            "mock cluster of {} broker(s), topics with {} replica(s), at {bootstrap}; control port {control_addr}",
            broker.brokers(),
            broker.replication()
        );
        println!("bootstrap={bootstrap} control={control_addr}");
        std::io::Write::flush(&mut std::io::stdout())?;
        broker.serve_control(control)
    }
}

//! `cloner-worker serve`: the actor tree fed from Kafka, until a shutdown signal, then a drain.
//!
//! Before anything starts it checks what would otherwise fail in silence: the consumer group
//! could wait longer between polls than the broker allows, the upstream host does not answer, or
//! the broker is unreachable or lacks a topic. Each is an error that says what to do.
//!
//! It serves `/metrics` and `/health` on `http.listen` ([`HttpEndpoint`]) from before the
//! consumer joins its group until after the drain.
//!
//! It must never exit between taking a chunk and committing past it without producing the
//! chunk's result: on shutdown it drains (see [`Drain`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub mod consumer;
pub mod http_endpoint;
pub mod offset_tracker;

use actix::prelude::*;
use anyhow::Context as _;

use crate::config::{KafkaRole, Settings};
use crate::pool::app::{App, Hooks};

use crate::service::consumer::{Drain, DrainReport, TodoChunkConsumer};
use crate::service::http_endpoint::HttpEndpoint;

/// How long start-up checks wait for the broker or the upstream.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// A started service.
pub struct Running {
    pub app: App,
    pub consumer: Addr<TodoChunkConsumer>,
    /// `/metrics` and `/health`; `None` when `http.listen` is empty. Stop it after the drain
    /// (dropping it leaves it serving until the actix system stops).
    pub http: Option<HttpEndpoint>,
    /// Resolves, with the reason, if the producer fails for good: then the service must drain
    /// and exit, so that a restart gets a new one.
    pub fatal: Pin<Box<dyn Future<Output = String>>>,
}

/// Runs the service until `shutdown` resolves (or the producer fails for good), then drains;
/// the drain's report, or the producer's failure after the drain.
pub async fn serve(
    settings: &Settings,
    hooks: Hooks,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<DrainReport> {
    let running = start(settings, hooks).await?;
    let fatal = tokio::select! {
        () = shutdown => {
            log::info!("shutdown requested");
            None
        }
        reason = running.fatal => Some(reason),
    };
    let report = running
        .consumer
        .send(Drain {
            grace: settings.consumer.drain_grace(),
        })
        .await
        .context("the consumer stopped before it could drain")?;
    log::info!("drained: {}", report.stats);
    if let Some(http) = running.http {
        http.stop().await;
    }
    match fatal {
        None => Ok(report),
        Some(reason) => anyhow::bail!(
            "stopped: the Kafka producer failed for good ({reason}); start the service again (chunks not committed are delivered again)"
        ),
    }
}

/// Checks, then starts the actor tree, the HTTP endpoint and the consumer.
pub async fn start(settings: &Settings, hooks: Hooks) -> anyhow::Result<Running> {
    check_poll_interval(settings)?;
    probe_upstream(&settings.upstream.base_url, CHECK_TIMEOUT).await?;
    let app = App::start(settings, hooks);
    app.metrics.health.upstream_answered(true);
    // Before the consumer: a taken port stops the start before this member joins its group, and
    // /health can say "not joined" while it joins.
    let http = HttpEndpoint::start(
        &settings.http.listen,
        app.metrics.clone(),
        app.queue.clone(),
    )?;
    let consumer = TodoChunkConsumer::new(
        settings,
        app.manager.clone(),
        app.metrics.clone(),
        CHECK_TIMEOUT,
    )
    .context("connecting to Kafka")?;
    let fatal = Box::pin(consumer.fatal_errors());
    let consumer = consumer.start();
    log::info!(
        "consuming {} at {} (group {}); results to {}, dead letters to {}; up to {} chunks in flight",
        settings.topics.todo,
        settings.kafka.bootstrap_servers(),
        settings
            .kafka
            .properties(KafkaRole::Consumer)?
            .get("group.id")
            .map_or("(none)", |g| g.as_str()),
        settings.topics.finished,
        settings.topics.dead_letter,
        settings.consumer.max_in_flight
    );
    Ok(Running {
        app,
        consumer,
        http,
        fatal,
    })
}

/// Intake waits for a free in-flight slot without polling Kafka. The longest such wait is one
/// chunk's worst case; the group evicts a member that does not poll within
/// `max.poll.interval.ms`, so that must be longer.
fn check_poll_interval(settings: &Settings) -> anyhow::Result<()> {
    let props = settings.kafka.properties(KafkaRole::Consumer)?;
    let interval_ms: u64 = match props.get("max.poll.interval.ms") {
        Some(v) => v
            .parse()
            .with_context(|| format!("kafka.consumer.max_poll_interval_ms: not a number: {v:?}"))?,
        None => 300_000, // librdkafka's default
    };
    let worst_chunk_ms =
        settings.worker.attempt_deadline_ms * u64::from(settings.manager.max_attempts);
    anyhow::ensure!(
        interval_ms > worst_chunk_ms,
        "kafka.consumer.max_poll_interval_ms ({interval_ms}) must exceed one chunk's worst case, worker.attempt_deadline_ms x manager.max_attempts ({worst_chunk_ms}): while every in-flight slot is taken the consumer does not poll, and the group would evict it"
    );
    Ok(())
}

/// Connects to the upstream's host and port: a wrong `upstream.base_url` fails here, at start,
/// not as a RANDOM_ERROR on every chunk. Sends nothing, so it costs no rate-limit slot.
pub async fn probe_upstream(base_url: &str, timeout: Duration) -> anyhow::Result<()> {
    let (host, port) = host_and_port(base_url)
        .with_context(|| format!("upstream.base_url {base_url:?} has no host"))?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => anyhow::bail!(
            "cannot reach the upstream at {base_url} ({host}:{port}): {e}; set upstream.base_url (CLONER__UPSTREAM__BASE_URL) to a reachable API"
        ),
        Err(_) => anyhow::bail!(
            "the upstream at {base_url} did not answer within {timeout:?}; set upstream.base_url (CLONER__UPSTREAM__BASE_URL) to a reachable API"
        ),
    }
}

/// `http://host:port/path` → (host, port), with the scheme's port by default.
fn host_and_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit('@').next()?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map(str::parse).transpose().ok()?;
        (host.to_string(), port.unwrap_or(default_port))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().ok()?),
            None => (authority.to_string(), default_port),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed when this is called, so
/// a signal that comes before the future is awaited still counts.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_upstream_urls() {
        let cases = [
            ("https://poloniex.com", Some(("poloniex.com", 443))),
            ("http://127.0.0.1:9000", Some(("127.0.0.1", 9000))),
            ("http://127.0.0.1:9000/api?x=1", Some(("127.0.0.1", 9000))),
            ("http://[::1]:81/", Some(("::1", 81))),
            ("http://user@host", Some(("host", 80))),
            ("http://", None),
            ("no-scheme", None),
        ];
        for (url, expected) in cases {
            let got = host_and_port(url);
            assert_eq!(
                got.as_ref().map(|(h, p)| (h.as_str(), *p)),
                expected,
                "{url}"
            );
        }
    }

    #[test]
    fn a_poll_interval_shorter_than_a_chunk_is_refused() {
        let mut settings = Settings::default();
        assert!(check_poll_interval(&settings).is_ok(), "the defaults fit");
        settings.kafka.consumer.insert(
            "max_poll_interval_ms".into(),
            crate::config::KafkaValue::Int(60_000),
        );
        let err = check_poll_interval(&settings).unwrap_err().to_string();
        assert!(err.contains("max_poll_interval_ms"), "{err}");
    }

    #[actix_rt::test]
    async fn an_unreachable_upstream_is_named() {
        // A port nobody listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let err = probe_upstream(&url, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&url) && err.contains("upstream.base_url"),
            "{err}"
        );
    }
}

//! `cloner-worker serve`: the actor tree fed from Kafka, until a shutdown signal, then a drain.
//!
//! A TodoChunk's way through the service, one file each:
//!
//! 1. [`checks`]: before anything starts, what would otherwise fail in silence.
//! 2. [`intake`]: the message is read from the todo topic once an in-flight permit is free.
//! 3. [`consumer`]: `TodoChunkConsumer` decodes it and asks the pool
//!    ([`WorkerManager.add_task`](crate::pool::manager::AddTask)), or refuses it as a
//!    [`dead_letter`].
//! 4. [`delivery`]: the answer (or dead letter) is produced and acknowledged by the broker.
//! 5. [`offset_tracker`]: only then, and only in order per partition, its offset may be
//!    stored ([`offsets`]); librdkafka commits what is stored. [`group`] commits before a
//!    partition is revoked, and gives the rate limiter this member's share of the exchange's
//!    budget after every change ([`budget_share`]).
//! 6. [`http_endpoint`]: `/metrics` and `/health` on `http.listen`, from before the consumer
//!    joins its group until after the drain.
//!
//! What stops the service by itself (a producer failed for good, a record that cannot be read,
//! a results topic that cannot be written) is raised through [`failure`]; the service then
//! drains and exits non-zero.
//!
//! It must never exit between taking a chunk and committing past it without producing the
//! chunk's result: on shutdown it drains ([`Running::shutdown`]).

pub mod budget_share;
pub mod checks;
pub mod consumer;
pub mod dead_letter;
pub mod delivery;
pub mod failure;
pub mod group;
pub mod http_endpoint;
pub mod intake;
pub mod offset_tracker;
pub mod offsets;

use std::future::Future;
use std::time::Duration;

use actix::prelude::*;

use crate::config::{ConfigError, KafkaRole, Settings};
use crate::kafka::client::KafkaSetupError;
use crate::pool::app::{App, Hooks};
use crate::service::checks::{CheckError, CHECK_TIMEOUT};
use crate::service::consumer::{Drain, DrainReport, FinalCommit, TodoChunkConsumer};
use crate::service::failure::{Failure, Fatal};
use crate::service::http_endpoint::{HttpEndpoint, HttpEndpointError};

/// Why the service did not start; each says what to set.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Http(#[from] HttpEndpointError),
    #[error("connecting to Kafka: {0}")]
    Kafka(#[from] KafkaSetupError),
}

/// Why the service stopped other than on request.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    /// The consumer actor was gone before the drain: nothing could be committed (what is not
    /// committed is delivered again).
    #[error("the consumer stopped before it could drain")]
    ConsumerGone,
    /// The drain ended, but what was finished could not be committed: those chunks are
    /// delivered again.
    #[error("stopped, but {0}: the chunks finished since the last commit will be delivered again")]
    CommitFailed(FinalCommit),
    /// The service drained and stopped by itself: its producer failed for good, or a record
    /// could not be read.
    #[error("stopped: {0}; start the service again (chunks not committed are delivered again)")]
    Failed(Fatal),
}

/// A started service.
pub struct Running {
    pub app: App,
    pub consumer: Addr<TodoChunkConsumer>,
    /// `/metrics` and `/health`; `None` when `http.listen` is empty. Stopped by
    /// [`Running::shutdown`] (dropped, it would serve until the actix system stops).
    pub http: Option<HttpEndpoint>,
    /// Resolves if the service must stop by itself.
    failure: Failure,
    /// How long the drain waits on the broker, each time (`consumer.close_timeout_ms`).
    close_timeout: Duration,
}

impl Running {
    /// Resolves, with why, if the service must stop by itself (see [`Fatal`]): then it must
    /// drain and exit, so that a restart takes over. Never resolves otherwise.
    pub async fn failed(&mut self) -> Fatal {
        self.failure.wait().await
    }

    /// The one way a started service stops: the consumer drains (intake stops, in-flight
    /// chunks get `grace` to finish, what is done is committed, the member leaves the group,
    /// each wait on the broker bounded), then the HTTP endpoint stops. The report says whether
    /// the final commit was made.
    pub async fn shutdown(self, grace: Duration) -> Result<DrainReport, ServeError> {
        let drain = Drain {
            grace,
            close_timeout: self.close_timeout,
        };
        let report = self
            .consumer
            .send(drain)
            .await
            .map_err(|_| ServeError::ConsumerGone)?;
        log::info!("drained: {}", report.stats);
        if let Some(http) = self.http {
            http.stop().await;
        }
        Ok(report)
    }
}

/// Runs the service until `shutdown` resolves (or it must stop by itself, see [`Fatal`]), then
/// drains; the drain's report, or after the drain why it stopped by itself or could not commit.
pub async fn serve(
    settings: &Settings,
    hooks: Hooks,
    shutdown: impl Future<Output = ()>,
) -> Result<DrainReport, ServeError> {
    let mut running = start(settings, hooks).await?;
    let failure = tokio::select! {
        () = shutdown => {
            log::info!("shutdown requested");
            None
        }
        failure = running.failed() => Some(failure),
    };
    let report = running.shutdown(settings.consumer.drain_grace()).await?;
    match failure {
        Some(failure) => Err(ServeError::Failed(failure)),
        None if !report.commit.is_ok() => Err(ServeError::CommitFailed(report.commit)),
        None => Ok(report),
    }
}

/// Checks, then starts the actor tree, the HTTP endpoint and the consumer.
pub async fn start(settings: &Settings, hooks: Hooks) -> Result<Running, StartError> {
    checks::results_fit(settings)?;
    checks::probe_upstream(settings.upstream.base_url(), CHECK_TIMEOUT).await?;
    let app = App::start(settings, hooks);
    app.metrics.health.upstream_answered(true);
    // Before the consumer: a taken port stops the start before this member joins its group, and
    // /health can say "not joined" while it joins.
    let http = HttpEndpoint::start(
        &settings.http.listen,
        app.metrics.clone(),
        app.queue.clone(),
        app.limiter.clone(),
    )?;
    let consumer = TodoChunkConsumer::new(
        settings,
        app.manager.clone(),
        app.limiter.clone().recipient(),
        app.metrics.clone(),
        app.venue.pair_rule(),
        CHECK_TIMEOUT,
    )?;
    let failure = consumer.failure();
    let consumer = consumer.start();
    log::info!(
        "consuming {} at {} (group {}, {} protocol); results to {}, dead letters to {}; up to {} chunks in flight",
        settings.topics.todo,
        settings.kafka.bootstrap_servers(),
        settings
            .kafka
            .properties(KafkaRole::Consumer)?
            .get("group.id")
            .map_or("(none)", |g| g.as_str()),
        settings.kafka.group_protocol(),
        settings.topics.finished,
        settings.topics.dead_letter,
        settings.max_in_flight()
    );
    Ok(Running {
        app,
        consumer,
        http,
        failure,
        close_timeout: settings.consumer.close_timeout(),
    })
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

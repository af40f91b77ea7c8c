//! The service's HTTP endpoint on `http.listen`: `GET /metrics` (OpenMetrics text, for
//! Prometheus) and `GET /health` (200 when ready, 503 saying which condition is missing).
//!
//! One actix-web worker thread: a scrape is rare and cheap, and the service's own work is on
//! the system arbiter. The queue depth and the rate limiter's status are asked of them at each
//! request; everything else is read from [`Metrics`].
//!
//! It must never keep the process alive or react to signals on its own (the service decides
//! when to stop, and stops it after the drain), and never serve anything that changes state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::{http::header, web, HttpResponse, HttpServer};
use serde::Serialize;

use crate::pool::job::Job;
use crate::pool::queue::{Len, Queue};
use crate::task::rate_limiter::{GetLimiterStatus, LimiterStatus, PauseCause, RateLimiter};
use crate::telemetry::health::Readiness;
use crate::telemetry::metrics::{Metrics, CONTENT_TYPE};

/// How long a request waits for the queue's length or the limiter's status before it reports
/// the last one.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the endpoint did not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpEndpointError {
    #[error(
        "cannot serve /metrics and /health on {listen} ({source}); set http.listen (CLONER__HTTP__LISTEN) to a free address, port 0 for any free port, or \"\" to turn the endpoint off"
    )]
    Bind {
        /// The configured address, as given (what the operator has to change).
        listen: String,
        /// The OS's reason (in use, not an address of this host, no permission).
        #[source]
        source: std::io::Error,
    },
}

/// What the handlers read.
struct State {
    /// Rendered by `/metrics`; its health by `/health`.
    metrics: Arc<Metrics>,
    /// Asked for its length at each scrape (the `queue_depth` gauge).
    queue: Addr<Queue<Job>>,
    /// Asked for its status at each scrape and each `/health` (share, rate, pauses).
    limiter: Addr<RateLimiter>,
}

/// A running endpoint.
pub struct HttpEndpoint {
    /// Where it listens (the real port when `http.listen` asked for port 0).
    addr: SocketAddr,
    /// Stops the server.
    handle: actix_web::dev::ServerHandle,
}

impl HttpEndpoint {
    /// Binds `listen` and serves on the current actix system; `None` when `listen` is empty
    /// (the endpoint is off). Logs the address it serves on.
    pub fn start(
        listen: &str,
        metrics: Arc<Metrics>,
        queue: Addr<Queue<Job>>,
        limiter: Addr<RateLimiter>,
    ) -> Result<Option<HttpEndpoint>, HttpEndpointError> {
        if listen.is_empty() {
            log::info!("http.listen is empty: not serving /metrics and /health");
            return Ok(None);
        }
        let state = web::Data::new(State {
            metrics,
            queue,
            limiter,
        });
        let server = HttpServer::new(move || {
            actix_web::App::new()
                .app_data(state.clone())
                .route("/metrics", web::get().to(metrics_page))
                .route("/health", web::get().to(health_page))
        })
        .workers(1)
        // The service handles SIGINT/SIGTERM (it drains first) and stops this afterwards.
        .disable_signals()
        .shutdown_timeout(1)
        .bind(listen)
        .map_err(|source| HttpEndpointError::Bind {
            listen: listen.to_string(),
            source,
        })?;
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        log::info!("serving /metrics and /health on http://{addr}");
        Ok(Some(HttpEndpoint { addr, handle }))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving; in-flight requests get a second.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

async fn metrics_page(state: web::Data<State>) -> HttpResponse {
    match actix_rt::time::timeout(ASK_TIMEOUT, state.queue.send(Len::new())).await {
        Ok(Ok(depth)) => {
            state.metrics.queue_depth.set(depth as i64);
        }
        // A busy or stopping queue: the gauge keeps its last value rather than failing the scrape.
        Ok(Err(_)) | Err(_) => log::debug!("queue depth unavailable for this scrape"),
    }
    if let Some(status) = limiter_status(&state).await {
        state.metrics.limiter.observe(&status);
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .body(state.metrics.render())
}

/// The limiter's status, or `None` if it does not answer in time (the series keep their values).
async fn limiter_status(state: &State) -> Option<LimiterStatus> {
    match actix_rt::time::timeout(ASK_TIMEOUT, state.limiter.send(GetLimiterStatus)).await {
        Ok(Ok(status)) => Some(status),
        Ok(Err(_)) | Err(_) => {
            log::debug!("rate limiter status unavailable for this request");
            None
        }
    }
}

/// `/health`'s body: readiness, then the rate budget.
#[derive(Serialize)]
struct HealthBody {
    #[serde(flatten)]
    readiness: Readiness,
    /// Absent when the limiter did not answer in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limiter: Option<BudgetHealth>,
}

#[derive(Serialize)]
struct BudgetHealth {
    /// This member's part of `default_rate`; null when the limiter is off.
    share_calls_per_second: Option<f64>,
    /// What it grants now: the share, less after calls refused as too many.
    rate_calls_per_second: Option<f64>,
    /// How much longer every call waits on the exchange's say-so; null when none does.
    paused_seconds: Option<f64>,
    /// `"retry_after"` (429 with Retry-After) or `"banned"` (403/418); null when not paused.
    paused_because: Option<&'static str>,
}

impl From<LimiterStatus> for BudgetHealth {
    fn from(status: LimiterStatus) -> BudgetHealth {
        BudgetHealth {
            share_calls_per_second: status.share,
            rate_calls_per_second: status.current,
            paused_seconds: status.paused.map(|(left, _)| left.as_secs_f64()),
            paused_because: status.paused.map(|(_, cause)| match cause {
                PauseCause::TooMany => "retry_after",
                PauseCause::Banned => "banned",
            }),
        }
    }
}

/// `/health`: readiness (which decides 200 or 503), and the rate budget: a paused or banned
/// member is ready (restarting it would not help) but says why it makes no calls.
async fn health_page(state: web::Data<State>) -> HttpResponse {
    let readiness = state.metrics.health.readiness();
    let body = HealthBody {
        readiness,
        rate_limiter: limiter_status(&state).await.map(BudgetHealth::from),
    };
    let mut response = if readiness.ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.json(body)
}

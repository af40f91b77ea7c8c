//! What an operator sees: the Prometheus [`metrics`] and the readiness behind `/health`
//! ([`health`]), with the rate limiter's own gauges in [`limiter_metrics`]. Served over HTTP by
//! [`crate::service::http_endpoint`].
//!
//! It must never decide anything: it counts and reports what the service saw. A new metric is
//! declared in [`metrics::Metrics`] and counted where its fact is known.

pub mod health;
pub mod limiter_metrics;
pub mod metrics;

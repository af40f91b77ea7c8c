//! Boots the actor tree from [`Settings`] and registers its singletons as system services, in
//! the order the original's application supervisor started them:
//! `Queue` → `RateLimiter` → `WorkerManager` → `Registry` → `WorkerSupervisor` (→ workers).
//! Each runs under an actix `Supervisor`, so one that stops is restarted with its state (and
//! its address stays valid); the workers have supervisors of their own.
//!
//! Start it once per actix `System`, from inside it. It must never block: it only starts actors.

use actix::prelude::*;
use actix::registry::SystemRegistry;
use std::sync::Arc;

use crate::config::Settings;
use crate::pool::job::Job;
use crate::pool::manager::WorkerManager;
use crate::pool::protocol::{RegistryLinks, WorkerLinks};
use crate::pool::queue::Queue;
use crate::pool::registry::Registry;
use crate::pool::supervisor::WorkerSupervisor;
use crate::pool::worker::FaultHook;
use crate::task::chunk_task::TaskDeps;
use crate::task::rate_limiter::{Rate, RateLimiter};
use crate::telemetry::metrics::Metrics;

/// The addresses of the singletons; each is also reachable with `X::from_registry()`.
#[derive(Clone)]
pub struct App {
    /// The venue the tasks call, built once here and handed to them (and to the consumer,
    /// which checks how a chunk spells its pair).
    pub venue: std::sync::Arc<dyn crate::task::venue::Venue>,
    pub queue: Addr<Queue<Job>>,
    pub limiter: Addr<RateLimiter>,
    pub manager: Addr<WorkerManager>,
    pub registry: Addr<Registry>,
    pub supervisor: Addr<WorkerSupervisor>,
    /// This tree's counters and readiness, for the consumer and the HTTP endpoint; one per
    /// `App`, so that apps started in one process (tests) do not count into each other.
    pub metrics: Arc<Metrics>,
}

/// Options that are not configuration: test hooks.
#[derive(Default, Clone)]
pub struct Hooks {
    /// Makes chosen task attempts panic or hang (tests only).
    pub fault: Option<FaultHook>,
}

impl App {
    /// Starts the tree on the current arbiter. Panics if called twice in one `System` (the
    /// system registry holds one of each singleton).
    pub fn start(settings: &Settings, hooks: Hooks) -> App {
        let metrics = Metrics::new();
        let venue = crate::task::venue::from_settings(&settings.upstream);
        // Each singleton under a supervisor: one that stops is restarted with its state.
        let bound = settings.manager.queue_bound;
        let queue = Supervisor::start(move |_| Queue::<Job>::new(bound));
        SystemRegistry::set(queue.clone());

        let rate = if settings.rate_limiter.unlimited {
            Rate::Unlimited
        } else {
            Rate::PerSecond(settings.calls_per_second())
        };
        let limiter =
            RateLimiter::new(rate, settings.rate_limiter.jitter()).expect("settings are validated");
        let limiter = Supervisor::start(move |_| limiter);
        SystemRegistry::set(limiter.clone());

        let manager = WorkerManager::new(queue.clone(), settings.manager.max_attempts)
            .with_metrics(metrics.clone());
        let manager = Supervisor::start(move |_| manager);
        SystemRegistry::set(manager.clone());

        let registry = Registry::new(RegistryLinks {
            up: manager.clone().recipient(),
            down: manager.clone().recipient(),
        });
        let registry = Supervisor::start(move |_| registry);
        SystemRegistry::set(registry.clone());

        let deps = TaskDeps::new(
            &settings.upstream,
            venue.clone(),
            settings.rate_limiter.ban_pause(),
            limiter.clone(),
            metrics.clone(),
            settings.n_workers,
        );
        let links = WorkerLinks {
            register: registry.clone().recipient(),
            stopped: registry.clone().recipient(),
            finished: manager.clone().recipient(),
        };
        let supervisor = WorkerSupervisor::start_workers(
            settings.n_workers,
            deps,
            links,
            settings.attempt_deadline(),
            hooks.fault,
        );
        let supervisor = Supervisor::start(move |_| supervisor);
        SystemRegistry::set(supervisor.clone());

        log::info!(
            "started {} workers; rate {rate} ({} ms of jitter allowed); upstream {} at {}",
            settings.n_workers,
            settings.rate_limiter.jitter_ms,
            settings.upstream.venue.as_str(),
            settings.upstream.base_url()
        );
        App {
            venue,
            queue,
            limiter,
            manager,
            registry,
            supervisor,
            metrics,
        }
    }
}

//! placeholder crate doc (written last)
pub mod app;
pub mod backoff;
pub mod chunk;
pub mod chunk_task;
pub mod config;
pub mod job;
pub mod pair;
pub mod queue;
pub mod rate_limiter;
pub mod registry;
pub mod repl;
pub mod simulator;
pub mod supervisor;
pub mod upstream;
pub mod worker;
pub mod worker_manager;

pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/assignment_messages.rs"));
}

//! placeholder crate doc (written last)
pub mod backoff;
pub mod config;
pub mod pair;
pub mod queue;
pub mod rate_limiter;
pub mod simulator;
pub mod upstream;

pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/assignment_messages.rs"));
}

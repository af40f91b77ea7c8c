//! placeholder crate doc (written last)
pub mod config;
pub mod queue;
pub mod rate_limiter;
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/assignment_messages.rs"));
}

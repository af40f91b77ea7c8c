//! placeholder crate doc (written last)
pub mod config;
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/assignment_messages.rs"));
}

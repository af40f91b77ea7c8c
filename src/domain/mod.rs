//! The words of the problem, with no I/O: the wire types' helpers ([`chunk`]), what a currency
//! pair and a valid chunk are ([`pair`]), and UTC dates ([`utc`]).
//!
//! Everything here is pure: it must never touch the network, Kafka, a clock or an actor.

pub mod chunk;
pub mod decimal;
pub mod pair;
pub mod utc;

//! The command line's parts that are more than glue: the iex-style console ([`repl`]) and the
//! end-to-end [`demo`].

pub mod demo;
pub mod repl;

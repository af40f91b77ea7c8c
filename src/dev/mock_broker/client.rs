//! The control port's client side: one command per connection, `ok` or why not.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::Command;

/// Why a control request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The control port could not be reached, or did not answer.
    #[error("mock broker control port {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The broker answered `error: REASON`.
    #[error("the mock broker refused `{line}`: {reason}")]
    Refused { line: String, reason: String },
}

/// Client side of the control port at `addr`: sends one command line and waits (up to 10 s)
/// for its answer; `Ok` on `ok`.
pub fn control(addr: SocketAddr, line: &str) -> Result<(), ControlError> {
    let io = |source| ControlError::Io { addr, source };
    if line.contains(['\n', '\r']) {
        return Err(ControlError::Refused {
            line: line.to_string(),
            reason: "one command per line, without line breaks".into(),
        });
    }
    let timeout = Duration::from_secs(10);
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut writer = stream.try_clone().map_err(io)?;
    writeln!(writer, "{line}").map_err(io)?;
    let mut reply = String::new();
    let read = BufReader::new(stream).read_line(&mut reply).map_err(io)?;
    if read == 0 {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed without an answer",
        )));
    }
    match reply.trim() {
        "ok" => Ok(()),
        other => Err(ControlError::Refused {
            line: line.to_string(),
            reason: other.strip_prefix("error: ").unwrap_or(other).to_string(),
        }),
    }
}

/// [`control`] with a typed command.
pub fn send(addr: SocketAddr, command: &Command) -> Result<(), ControlError> {
    control(addr, &command.to_string())
}

/// Creates `topic` on the mock broker whose control port is `addr`.
pub fn create_topic_via_control(
    addr: SocketAddr,
    topic: &str,
    partitions: i32,
) -> Result<(), ControlError> {
    send(
        addr,
        &Command::Create {
            topic: topic.to_string(),
            partitions,
        },
    )
}

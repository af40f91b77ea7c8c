//! The service's HTTP endpoint seen from a test: a plain GET, a sample of `/metrics`, and the
//! address a `serve` child logs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::helpers::process::ServiceProcess;
use crate::helpers::TEST_DEADLINE;

/// A plain HTTP/1.1 GET: (status, content type, body).
pub fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// The value of the sample `series` (name and labels as rendered) in a `/metrics` page.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The address from the service's `serving /metrics and /health on http://ADDR` line.
pub fn endpoint_addr(service: &mut ServiceProcess) -> String {
    let line = service.wait_for("the HTTP endpoint", TEST_DEADLINE, |l| {
        l.contains("serving /metrics and /health on http://")
    });
    line.split("http://")
        .nth(1)
        .expect("an address")
        .trim()
        .to_string()
}

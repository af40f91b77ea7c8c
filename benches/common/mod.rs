//! Shared by the benchmarks: the exchange simulator as a process of its own (so that its CPU is
//! not the benchmark's), and the small windows both throughput benchmarks clone.

#![allow(dead_code)] // each benchmark uses its own part of this

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use cloner_worker::proto::TodoChunk;

/// 2018-10-22 00:00:00 UTC.
pub const DAY: i64 = 1_540_166_400;

/// `n` one-minute windows of BTC_LTC from [`DAY`]: COMPLETE with a few trades each.
pub fn small_windows(n: usize) -> Vec<TodoChunk> {
    (0..n as i32)
        .map(|i| TodoChunk {
            currency_pair: "BTC_LTC".into(),
            from_unix_ts: DAY + i64::from(i) * 60,
            until_unix_ts: DAY + i64::from(i) * 60 + 59,
            task_dbid: i + 1,
            ..Default::default()
        })
        .collect()
}

/// The simulator binary on a free port, rate limit off; killed on drop.
pub struct SimulatorProcess {
    pub child: Child,
    pub base_url: String,
}

impl SimulatorProcess {
    pub fn start() -> SimulatorProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_exchange-simulator"))
            .args(["--port", "0", "--rate-limit", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("exchange-simulator starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("simulator says where it listens");
        let base_url = line.trim().rsplit(' ').next().expect("a URL").to_string();
        SimulatorProcess { child, base_url }
    }
}

impl Drop for SimulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

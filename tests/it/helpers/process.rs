//! Child processes, in one place: the package's binaries (named nowhere else), the service
//! (`cloner-worker serve`) with its log read as it runs, the `clone` command, commands run to
//! their exit, waiting with a time limit, and signals.
//!
//! No test leaves a process behind: whatever state it is in, a child is SIGKILLed and reaped
//! when the test is done with it — a [`ServiceProcess`] when dropped (a failing test's unwinding
//! included), a `clone` child when dropped (tokio's `kill_on_drop`), a command that outlives
//! its time in [`output_within`].

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cloner_worker::config::Settings;

use super::kafka::service_env;
use super::TEST_DEADLINE;

/// `cloner-worker`, as cargo built it for these tests.
pub fn cloner_worker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cloner-worker"))
}

/// `exchange-simulator`, as cargo built it for these tests.
pub fn exchange_simulator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_exchange-simulator"))
}

/// Runs `command` to its exit (stdin closed, stdout and stderr captured); (success, stdout,
/// stderr).
pub fn run(mut command: Command) -> (bool, String, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} runs: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `cloner-worker ARGS` with `env` (no backtraces) to its exit; (success, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(String, String)]) -> (bool, String, String) {
    let mut command = cloner_worker();
    command
        .args(args)
        .envs(env.iter().cloned())
        .env("RUST_BACKTRACE", "0");
    run(command)
}

/// Waits for `child` to exit and collects what it wrote to its piped streams, for at most
/// `timeout`. A child still running then is SIGKILLed and reaped, and the answer is `None`: the
/// caller fails the test saying what it waited for.
pub fn output_within(child: Child, timeout: Duration) -> Option<Output> {
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(timeout) {
        Ok(output) => Some(output.expect("the child is reaped")),
        Err(_) => {
            // It may exit by itself meanwhile: then the signal finds nobody, which is as good.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let _ = finished.recv_timeout(Duration::from_secs(10));
            None
        }
    }
}

/// Starts `cloner-worker clone ARGS` with the environment of a service on `settings`' topics,
/// progress as log lines, stdout and stderr piped; SIGKILLed when dropped.
pub fn spawn_clone(
    settings: &Settings,
    args: &[&str],
    extra: &[(&str, &str)],
) -> tokio::process::Child {
    let mut command = cloner_worker();
    command
        .arg("clone")
        .args(args)
        .args(["--progress", "log"])
        .envs(service_env(settings))
        .envs(extra.iter().copied())
        .env("RUST_LOG", "info,actix_server=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .expect("cloner-worker clone starts")
}

/// Runs `cloner-worker clone ARGS` (see [`spawn_clone`]) to its end; its exit status, stdout
/// and stderr.
pub async fn run_clone(settings: &Settings, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let child = spawn_clone(settings, args, extra);
    tokio::time::timeout(TEST_DEADLINE, child.wait_with_output())
        .await
        .expect("clone finishes within the test deadline")
        .expect("clone's output")
}

/// `cloner-worker serve` as a child process; its log lines arrive on a channel. Killed on drop.
pub struct ServiceProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, for failure messages.
    pub log: Vec<String>,
    /// Where the next [`ServiceProcess::wait_for`] starts looking in `log`: just past the line
    /// the last one returned, so that each wait is for a line that came after the last.
    cursor: usize,
}

impl ServiceProcess {
    pub fn start(settings: &Settings) -> ServiceProcess {
        ServiceProcess::start_with_env(settings, &[])
    }

    /// [`ServiceProcess::start`] with `extra` environment variables, which win over
    /// [`service_env`]'s and the log filter (e.g. `CLONER__HTTP__LISTEN`, `RUST_LOG`).
    pub fn start_with_env(settings: &Settings, extra: &[(&str, &str)]) -> ServiceProcess {
        let mut command = cloner_worker();
        command
            .arg("serve")
            .envs(service_env(settings))
            .env("RUST_LOG", "info,actix_server=warn")
            .envs(extra.iter().copied());
        ServiceProcess::spawn(command)
    }

    /// Like [`ServiceProcess::start`] for a command the caller built (its own arguments,
    /// environment and working directory): only its standard streams are set here.
    pub fn spawn(mut command: Command) -> ServiceProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the service process starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ServiceProcess {
            child,
            lines,
            log: Vec::new(),
            cursor: 0,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (on the process's own log lines) for the first line after the one the previous
    /// `wait_for` returned that satisfies `pred`; the line. Lines already read (by
    /// [`ServiceProcess::wait_exit`], or passed over by an earlier wait) count if they came
    /// after it.
    /// Blocking: call it from a plain thread or with `spawn_blocking`-free code, since the
    /// service is another process and the simulator runs on its own threads.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        if let Some(i) = self.log[self.cursor..].iter().position(|l| pred(l)) {
            self.cursor += i + 1;
            return self.log[self.cursor - 1].clone();
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if pred(&line) {
                        self.cursor = self.log.len();
                        return line;
                    }
                }
                Err(_) => panic!(
                    "the service did not log {what} within {timeout:?}; its log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM and waits for the exit; the status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        signal(self.pid(), "TERM");
        self.wait_exit(timeout)
    }

    /// SIGKILL, no drain.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }

    /// Waits for the process to exit, collecting its remaining log.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        // The log channel closes when the process's stderr does, i.e. when it exits.
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "the service did not exit within {timeout:?}; its log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
        self.child.wait().expect("reap")
    }

    /// Resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends signal `name` (`TERM`, `INT`, `KILL`) to `pid`, which must exist.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

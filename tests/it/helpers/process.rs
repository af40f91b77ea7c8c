//! Child processes, in one place: the package's binaries (named nowhere else), the service
//! (`cloner-worker serve`) with its log read as it runs, the `clone` command, a test's own mock
//! broker (`cloner-worker broker`), commands run to their exit, waiting with a time limit, and
//! signals.
//!
//! No test leaves a process behind: whatever state it is in, a child is SIGKILLed and reaped
//! when the test is done with it — a [`ServiceProcess`] or a [`BrokerProcess`] when dropped (a
//! failing test's unwinding included), a `clone` child when dropped (tokio's `kill_on_drop`), a
//! command that outlives its time in [`output_within`].

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cloner_worker::config::Settings;
use cloner_worker::dev::mock_broker;

use super::kafka::{service_env, unique};
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

    /// [`ServiceProcess::start`], returned once it holds its partitions: it answers from the
    /// first request on (nothing answers while the group forms).
    pub fn start_assigned(settings: &Settings) -> ServiceProcess {
        let mut service = ServiceProcess::start(settings);
        service.wait_for("its partitions", TEST_DEADLINE, |l| {
            l.contains("partitions assigned")
        });
        service
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

/// What a member holds after a rebalance, from the `now holding: …` line `serve` logs.
pub fn holding(line: &str) -> Option<&str> {
    line.split("now holding: ").nth(1)
}

/// A `now holding` line naming one partition.
pub fn holds_one_partition(line: &str) -> bool {
    holding(line).is_some_and(|h| !h.contains(", ") && h != "none")
}

/// A `now holding` line naming two partitions or more.
pub fn holds_two_partitions(line: &str) -> bool {
    holding(line).is_some_and(|h| h.contains(", "))
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cloner-worker broker --brokers N` as a child process, a mock cluster of the test's own: one
/// whose brokers a test may take down, slow or fail without disturbing the tests that share the
/// broker `scripts/kafka-up` started. It runs in a temporary directory of its own, with its log
/// in `broker.log` there. SIGKILLed and reaped when dropped; the directory is removed then,
/// unless the test is failing (its path is printed, for the log).
pub struct BrokerProcess {
    child: Child,
    dir: PathBuf,
    /// The brokers' `host:port` list, for `bootstrap.servers`.
    pub bootstrap: String,
    /// The control port (`docs/kafka-here.md`).
    pub control: SocketAddr,
}

impl BrokerProcess {
    /// Starts `brokers` brokers and waits (up to 30 s) for the line in which the broker says
    /// where it listens, which it prints once it does.
    pub fn start(brokers: i32) -> BrokerProcess {
        let dir = std::env::temp_dir().join(unique("cloner-broker"));
        std::fs::create_dir_all(&dir).expect("the broker's directory");
        let log = std::fs::File::create(dir.join("broker.log")).expect("the broker's log");
        let mut child = cloner_worker()
            .args(["broker", "--brokers", &brokers.to_string()])
            .current_dir(&dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("cloner-worker broker starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, first_line) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = tx.send(line);
            // The rest, to its end, so that the broker never blocks on a full pipe.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });
        let mut broker = BrokerProcess {
            child,
            dir,
            bootstrap: String::new(),
            control: ([127, 0, 0, 1], 0).into(),
        };
        // From here on a failure drops `broker`, which kills the child.
        let line = match first_line.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => panic!(
                "cloner-worker broker did not say where it listens within 30 s; its log:\n{}",
                broker.log()
            ),
        };
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(key))
                .map(str::to_string)
        };
        match (field("bootstrap="), field("control=")) {
            (Some(bootstrap), Some(control)) => {
                broker.bootstrap = bootstrap;
                broker.control = control.parse().expect("a control address");
            }
            _ => panic!(
                "cloner-worker broker printed {line:?} instead of `bootstrap=… control=…`; its log:\n{}",
                broker.log()
            ),
        }
        broker
    }

    /// Sends one control command; `Ok` when the broker answers `ok`.
    pub fn control(&self, line: &str) -> Result<(), mock_broker::ControlError> {
        mock_broker::control(self.control, line)
    }

    /// The broker's log so far (every control command is logged).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "the failed test's broker log: {}",
                self.dir.join("broker.log").display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
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

//! Test support: start a real `fjord server` process on an ephemeral loopback
//! port with a temporary data directory, and drive it from integration tests.
//!
//! ```text
//!   test ──spawn──> fjord server --override listeners=PLAINTEXT://127.0.0.1:0
//!    │                  │ stderr/stdout
//!    │                  ▼
//!    │          drain threads ──> shared log buffer ──> logs()
//!    │                  │ "listening on PLAINTEXT://127.0.0.1:PORT"
//!    ◀──── bootstrap() ─┘
//! ```
//!
//! The broker's output is drained continuously by background threads, so the
//! pipe never fills up and blocks the broker; the collected text is available
//! through [`BrokerProcess::logs`] and is printed automatically when a test
//! panics while the broker is still owned. Dropping a [`BrokerProcess`] kills
//! the process, so no broker outlives its test.
//!
//! ```no_run
//! use fjord_testkit::BrokerProcess;
//!
//! let broker = BrokerProcess::builder("target/release/fjord")
//!     .override_config("num.partitions", "3")
//!     .start()
//!     .expect("broker starts");
//! let bootstrap = broker.bootstrap(); // "127.0.0.1:PORT"
//! # drop(bootstrap);
//! ```

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The text the broker logs once its listener is bound.
const LISTENING_MARKER: &str = "listening on PLAINTEXT://";

/// How long a start may take before it is considered failed.
const START_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);

/// How often a restart on the previous port is retried when the port is
/// briefly unavailable (the old socket may still be closing).
const RESTART_ATTEMPTS_MAX: u32 = 10;

/// Upper bound on the kept log text, so a chatty broker cannot exhaust memory.
const LOG_BYTES_MAX: usize = 64 * 1024 * 1024;

/// How much of the log tail is printed when a test panics.
const LOG_TAIL_ON_PANIC_BYTES: usize = 32 * 1024;

/// Configures and starts a [`BrokerProcess`].
#[derive(Debug, Clone)]
pub struct BrokerBuilder {
    binary: PathBuf,
    overrides: Vec<(String, String)>,
    start_timeout: Duration,
    stop_timeout: Duration,
    env: Vec<(String, String)>,
}

impl BrokerBuilder {
    /// Adds `--override key=value` to the server command line. Later calls
    /// for the same key win; `listeners` and `log.dirs` are managed by the
    /// kit and are ignored here.
    pub fn override_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.overrides.retain(|(k, _)| *k != key);
        self.overrides.push((key, value.into()));
        self
    }

    /// Sets how long [`BrokerBuilder::start`] and [`BrokerProcess::restart`]
    /// wait for the listening line (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Sets how long [`BrokerProcess::stop`] waits after SIGTERM before it
    /// sends SIGKILL (default 20 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Sets an environment variable for the broker process.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the broker with a fresh temporary data directory and an
    /// ephemeral port, and waits until it is listening.
    pub fn start(self) -> Result<BrokerProcess> {
        let data_dir = tempfile::Builder::new()
            .prefix("fjord-test-")
            .tempdir()
            .context("create the broker data directory")?;
        let mut broker = BrokerProcess {
            builder: self,
            data_dir,
            address: None,
            running: None,
            logs: Arc::new(Mutex::new(String::new())),
            starts: 0,
        };
        broker.spawn_and_wait(0)?;
        Ok(broker)
    }
}

/// A running child process plus the threads draining its output.
#[derive(Debug)]
struct Running {
    child: Child,
    drains: Vec<JoinHandle<()>>,
}

/// A real `fjord server` process bound to `127.0.0.1` with a temporary data
/// directory. Dropping it kills the process and removes the directory.
#[derive(Debug)]
pub struct BrokerProcess {
    builder: BrokerBuilder,
    data_dir: tempfile::TempDir,
    address: Option<SocketAddr>,
    running: Option<Running>,
    logs: Arc<Mutex<String>>,
    starts: u32,
}

impl BrokerProcess {
    /// Returns a builder for a broker run from the `fjord` binary at `binary`
    /// (in the `fjord` crate's integration tests: `env!("CARGO_BIN_EXE_fjord")`).
    pub fn builder(binary: impl Into<PathBuf>) -> BrokerBuilder {
        BrokerBuilder {
            binary: binary.into(),
            overrides: Vec::new(),
            start_timeout: START_TIMEOUT_DEFAULT,
            stop_timeout: STOP_TIMEOUT_DEFAULT,
            env: Vec::new(),
        }
    }

    /// Starts a broker with default settings.
    pub fn start(binary: impl Into<PathBuf>) -> Result<BrokerProcess> {
        Self::builder(binary).start()
    }

    /// Starts a broker with extra `--override key=value` settings.
    pub fn start_with(
        binary: impl Into<PathBuf>,
        overrides: &[(&str, &str)],
    ) -> Result<BrokerProcess> {
        let mut builder = Self::builder(binary);
        for (key, value) in overrides {
            builder = builder.override_config(*key, *value);
        }
        builder.start()
    }

    /// The address the broker listens on, as logged by the broker.
    pub fn address(&self) -> SocketAddr {
        self.address.expect("a started broker has an address")
    }

    /// The `bootstrap.servers` value for clients: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        self.address().to_string()
    }

    /// The broker's `log.dirs` directory. It survives [`BrokerProcess::stop`],
    /// [`BrokerProcess::kill`] and [`BrokerProcess::restart`].
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The directory of one partition: `<log.dirs>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{partition}"))
    }

    /// The process id, if the broker is running.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    /// Everything the broker wrote to stderr and stdout so far, across restarts.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The last `bytes_max` bytes of [`BrokerProcess::logs`] (cut at a char boundary).
    pub fn logs_tail(&self, bytes_max: usize) -> String {
        let logs = self.logs();
        let mut start = logs.len().saturating_sub(bytes_max);
        while !logs.is_char_boundary(start) {
            start += 1;
        }
        logs[start..].to_string()
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.running.as_mut() {
            Some(running) => matches!(running.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Graceful stop: sends SIGTERM and waits (bounded) for the exit. If the
    /// broker does not exit in time it is killed and an error is returned.
    /// On success returns the exit status (a clean shutdown exits with 0).
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let Some(mut running) = self.running.take() else {
            bail!("broker is not running");
        };
        let pid = running.child.id();
        // Unsafe code is forbidden in the workspace, so signals go through kill(1).
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("run kill -TERM")?;
        if !status.success() {
            // The process may already be gone; wait() below tells.
            self.append_log(&format!("[testkit] kill -TERM {pid} failed: {status}\n"));
        }
        let deadline = Instant::now() + self.builder.stop_timeout;
        loop {
            if let Some(status) = running.child.try_wait().context("wait for the broker")? {
                join_drains(running.drains);
                self.append_log(&format!(
                    "[testkit] broker exited after SIGTERM: {status}\n"
                ));
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = running.child.kill();
                let _ = running.child.wait();
                join_drains(running.drains);
                self.append_log("[testkit] broker did not stop in time after SIGTERM; killed\n");
                bail!(
                    "broker did not exit within {:?} after SIGTERM; it was killed",
                    self.builder.stop_timeout
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Crash: sends SIGKILL and reaps the process.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut running) = self.running.take() else {
            bail!("broker is not running");
        };
        running.child.kill().context("SIGKILL the broker")?;
        running.child.wait().context("reap the broker")?;
        join_drains(running.drains);
        self.append_log("[testkit] broker killed with SIGKILL\n");
        Ok(())
    }

    /// Starts the broker again with the same data directory, settings and
    /// port, so clients holding the old bootstrap address can reconnect. If
    /// the broker is still running it is stopped gracefully first.
    pub fn restart(&mut self) -> Result<()> {
        if self.running.is_some() {
            self.stop()?;
        }
        let port = self.address().port();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.spawn_and_wait(port) {
                Ok(()) => return Ok(()),
                Err(err)
                    if attempt < RESTART_ATTEMPTS_MAX
                        && format!("{err:#}").to_ascii_lowercase().contains("in use") =>
                {
                    // The process died before listening because the port is
                    // still held by the closing socket. Retry shortly.
                    self.append_log(&format!(
                        "[testkit] restart attempt {attempt} failed: {err:#}\n"
                    ));
                    thread::sleep(Duration::from_millis(500));
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn append_log(&self, text: &str) {
        append_bounded(&self.logs, text);
    }

    fn spawn_and_wait(&mut self, port: u16) -> Result<()> {
        self.starts += 1;
        self.append_log(&format!(
            "[testkit] starting broker (start #{}) on port {port}\n",
            self.starts
        ));
        let mut command = Command::new(&self.builder.binary);
        command
            .arg("server")
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--override")
            .arg(format!("log.dirs={}", self.data_dir.path().display()));
        for (key, value) in &self.builder.overrides {
            if key == "listeners" || key == "log.dirs" {
                continue;
            }
            command.arg("--override").arg(format!("{key}={value}"));
        }
        command
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("FJORD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("RUST_BACKTRACE", "1");
        for (key, value) in &self.builder.env {
            command.env(key, value);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("spawn {}", self.builder.binary.display()))?;

        let (address_tx, address_rx) = mpsc::channel::<Option<SocketAddr>>();
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let drains = vec![
            spawn_drain(stderr, Arc::clone(&self.logs), address_tx.clone()),
            spawn_drain(stdout, Arc::clone(&self.logs), address_tx),
        ];
        let mut running = Running { child, drains };

        let deadline = Instant::now() + self.builder.start_timeout;
        let mut streams_open = 2;
        loop {
            let now = Instant::now();
            if now >= deadline {
                let _ = running.child.kill();
                let _ = running.child.wait();
                join_drains(running.drains);
                bail!(
                    "broker did not log {LISTENING_MARKER:?} within {:?}; log tail:\n{}",
                    self.builder.start_timeout,
                    self.logs_tail(8 * 1024)
                );
            }
            match address_rx.recv_timeout((deadline - now).min(Duration::from_millis(100))) {
                Ok(Some(address)) => {
                    if port != 0 && address.port() != port {
                        let _ = running.child.kill();
                        let _ = running.child.wait();
                        join_drains(running.drains);
                        bail!(
                            "broker restarted on port {} instead of {port}",
                            address.port()
                        );
                    }
                    self.address = Some(address);
                    self.running = Some(running);
                    return Ok(());
                }
                Ok(None) => streams_open -= 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => streams_open = 0,
            }
            if streams_open == 0 || matches!(running.child.try_wait(), Ok(Some(_))) {
                // Give the drains a moment to collect the last words.
                let status = running.child.wait().ok();
                join_drains(running.drains);
                return Err(anyhow!(
                    "broker exited before listening (status {status:?}); log tail:\n{}",
                    self.logs_tail(8 * 1024)
                ));
            }
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
            join_drains(running.drains);
        }
        if thread::panicking() {
            eprintln!(
                "---- fjord broker log (last {} KiB, data dir {}) ----\n{}\n---- end of broker log ----",
                LOG_TAIL_ON_PANIC_BYTES / 1024,
                self.data_dir.path().display(),
                self.logs_tail(LOG_TAIL_ON_PANIC_BYTES)
            );
        }
    }
}

fn join_drains(drains: Vec<JoinHandle<()>>) {
    // The pipes close when the process exits, so the drains end on their own.
    // A grandchild holding the pipe open must not hang the test: bound the wait.
    let deadline = Instant::now() + Duration::from_secs(5);
    for drain in drains {
        while !drain.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if drain.is_finished() {
            let _ = drain.join();
        }
    }
}

fn append_bounded(logs: &Mutex<String>, text: &str) {
    if let Ok(mut logs) = logs.lock() {
        if logs.len() + text.len() <= LOG_BYTES_MAX {
            logs.push_str(text);
        }
    }
}

/// Reads `stream` line by line into `logs` until EOF, reporting the first
/// listening address through `address_tx` and `None` at EOF.
fn spawn_drain(
    stream: impl Read + Send + 'static,
    logs: Arc<Mutex<String>>,
    address_tx: mpsc::Sender<Option<SocketAddr>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut raw = Vec::new();
        let mut reported = false;
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = strip_ansi(&String::from_utf8_lossy(&raw));
            append_bounded(&logs, &line);
            if !line.ends_with('\n') {
                append_bounded(&logs, "\n");
            }
            if !reported {
                if let Some(address) = parse_listening_address(&line) {
                    reported = true;
                    let _ = address_tx.send(Some(address));
                }
            }
        }
        let _ = address_tx.send(None);
    })
}

/// Extracts `IP:PORT` from a line containing `listening on PLAINTEXT://IP:PORT`.
fn parse_listening_address(line: &str) -> Option<SocketAddr> {
    let start = line.find(LISTENING_MARKER)? + LISTENING_MARKER.len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| {
            !(c.is_ascii_alphanumeric() || c == '.' || c == ':' || c == '[' || c == ']')
        })
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Removes ANSI escape sequences (colors) from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters until a final byte in @..~
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        let line = "2024-01-01T00:00:00Z  INFO fjord: listening on PLAINTEXT://127.0.0.1:40123 data in /tmp/x\n";
        assert_eq!(
            parse_listening_address(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        let line = "INFO listening on PLAINTEXT://127.0.0.1:9092, data in /tmp/x";
        assert_eq!(
            parse_listening_address(line),
            Some("127.0.0.1:9092".parse().unwrap())
        );
        assert_eq!(
            parse_listening_address("listening on PLAINTEXT://127.0.0.1:0x"),
            None
        );
        assert_eq!(parse_listening_address("nothing here"), None);
    }

    #[test]
    fn strips_colors() {
        let line =
            "\u{1b}[2m2024\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m listening on PLAINTEXT://127.0.0.1:1";
        assert_eq!(
            strip_ansi(line),
            "2024  INFO listening on PLAINTEXT://127.0.0.1:1"
        );
    }
}

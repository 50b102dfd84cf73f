//! One real `fjord server` process on an ephemeral loopback port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::process::{LineWait, ManagedProcess};

/// The text the broker logs once its listener is bound.
pub(crate) const LISTENING_MARKER: &str = "listening on PLAINTEXT://";

/// How long a start may take before it is considered failed.
pub(crate) const START_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// How long a graceful stop may take before the process is killed.
pub(crate) const STOP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);

/// How often a restart on the previous port is retried when the port is
/// briefly unavailable (the old socket may still be closing).
pub(crate) const RESTART_ATTEMPTS_MAX: u32 = 10;

/// Pause between two restart attempts on a port still in use.
pub(crate) const RESTART_RETRY_DELAY: Duration = Duration::from_millis(500);

/// How much of the log tail is printed when a test panics.
const LOG_TAIL_ON_PANIC_BYTES: usize = 32 * 1024;

/// How much of the log tail an error message carries.
pub(crate) const LOG_TAIL_IN_ERROR_BYTES: usize = 8 * 1024;

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
            process: ManagedProcess::new("broker"),
        };
        broker.spawn_and_wait(0)?;
        Ok(broker)
    }
}

/// A real `fjord server` process bound to `127.0.0.1` with a temporary data
/// directory. Dropping it kills the process and removes the directory.
#[derive(Debug)]
pub struct BrokerProcess {
    builder: BrokerBuilder,
    data_dir: tempfile::TempDir,
    address: Option<SocketAddr>,
    process: ManagedProcess,
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
        self.process.pid()
    }

    /// Everything the broker wrote to stderr and stdout so far, across restarts.
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// The last `bytes_max` bytes of [`BrokerProcess::logs`] (cut at a char boundary).
    pub fn logs_tail(&self, bytes_max: usize) -> String {
        self.process.logs_tail(bytes_max)
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Graceful stop: sends SIGTERM and waits (bounded) for the exit. If the
    /// broker does not exit in time it is killed and an error is returned.
    /// On success returns the exit status (a clean shutdown exits with 0).
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.process.stop(self.builder.stop_timeout)
    }

    /// Crash: sends SIGKILL and reaps the process.
    pub fn kill(&mut self) -> Result<()> {
        self.process.kill().map(drop)
    }

    /// Starts the broker again with the same data directory, settings and
    /// port, so clients holding the old bootstrap address can reconnect. If
    /// the broker is still running it is stopped gracefully first.
    pub fn restart(&mut self) -> Result<()> {
        if self.process.is_running() {
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
                        && reports_port_in_use(&format!("{err:#}")) =>
                {
                    // The process died before listening because the port is
                    // still held by the closing socket. Retry shortly.
                    self.process
                        .note(&format!("restart attempt {attempt} failed: {err:#}"));
                    thread::sleep(RESTART_RETRY_DELAY);
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn spawn_and_wait(&mut self, port: u16) -> Result<()> {
        let overrides = [
            (
                "listeners".to_string(),
                format!("PLAINTEXT://127.0.0.1:{port}"),
            ),
            (
                "log.dirs".to_string(),
                self.data_dir.path().display().to_string(),
            ),
        ]
        .into_iter()
        .chain(
            self.builder
                .overrides
                .iter()
                .filter(|(key, _)| key != "listeners" && key != "log.dirs")
                .cloned(),
        );
        let command = server_command(&self.builder.binary, overrides, &self.builder.env);
        self.process.note(&format!("starting on port {port}"));
        self.process.spawn(command)?;
        let timeout = self.builder.start_timeout;
        match self.process.await_line(timeout, parse_listening_address) {
            LineWait::Found(address) => {
                if port != 0 && address.port() != port {
                    self.process.terminate();
                    bail!(
                        "broker restarted on port {} instead of {port}",
                        address.port()
                    );
                }
                self.address = Some(address);
                Ok(())
            }
            LineWait::Exited(status) => bail!(
                "broker exited before listening (status {status:?}); log tail:\n{}",
                self.logs_tail(LOG_TAIL_IN_ERROR_BYTES)
            ),
            LineWait::TimedOut => {
                self.process.terminate();
                bail!(
                    "broker did not log {LISTENING_MARKER:?} within {timeout:?}; log tail:\n{}",
                    self.logs_tail(LOG_TAIL_IN_ERROR_BYTES)
                )
            }
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.process.terminate();
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

/// `binary server --override k=v …` with the environment every test broker
/// gets: no colors, `RUST_LOG` from `FJORD_TEST_LOG` (default `info`), and
/// backtraces on.
pub(crate) fn server_command(
    binary: &Path,
    overrides: impl IntoIterator<Item = (String, String)>,
    env: &[(String, String)],
) -> Command {
    let mut command = Command::new(binary);
    command.arg("server");
    for (key, value) in overrides {
        command.arg("--override").arg(format!("{key}={value}"));
    }
    command
        .env("NO_COLOR", "1")
        .env(
            "RUST_LOG",
            std::env::var("FJORD_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("RUST_BACKTRACE", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Whether a failed start's output says a port was taken
/// ("Address already in use", Rust's `AddrInUse`).
pub(crate) fn reports_port_in_use(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("in use") || text.contains("addrinuse")
}

/// Extracts `IP:PORT` from a line containing `listening on PLAINTEXT://IP:PORT`.
pub(crate) fn parse_listening_address(line: &str) -> Option<SocketAddr> {
    address_after(line, LISTENING_MARKER)
}

/// What a controller-only node logs once its CONTROLLER listener is bound.
pub(crate) const CONTROLLER_LISTENING_MARKER: &str = "listening on CONTROLLER://";

/// Extracts `IP:PORT` from a line containing `listening on CONTROLLER://IP:PORT`.
pub(crate) fn parse_controller_listening_address(line: &str) -> Option<SocketAddr> {
    address_after(line, CONTROLLER_LISTENING_MARKER)
}

/// The `IP:PORT` right after `marker` in `line`.
fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let start = line.find(marker)? + marker.len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| {
            !(c.is_ascii_alphanumeric() || c == '.' || c == ':' || c == '[' || c == ']')
        })
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
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
        assert_eq!(
            parse_listening_address("listening on CONTROLLER://127.0.0.1:9093"),
            None
        );
        // What a controller-only node logs instead.
        let line = "INFO fjord controller listening on CONTROLLER://127.0.0.1:9093, metadata in /x";
        assert_eq!(
            parse_controller_listening_address(line),
            Some("127.0.0.1:9093".parse().unwrap())
        );
        assert_eq!(
            parse_controller_listening_address("listening on PLAINTEXT://127.0.0.1:9092"),
            None
        );
    }

    #[test]
    fn recognises_port_conflicts() {
        assert!(reports_port_in_use(
            "Error: bind 127.0.0.1:9092: Address already in use (os error 98)"
        ));
        assert!(reports_port_in_use("kind: AddrInUse"));
        assert!(!reports_port_in_use("Error: invalid configuration"));
    }
}

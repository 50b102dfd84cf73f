//! A child process the kit owns: output drained into a log that survives
//! restarts, signals for crash, graceful stop, pause and resume, and a drop
//! that never leaves the process behind.
//!
//! Nothing here knows about `fjord`; [`crate::BrokerProcess`] and
//! [`crate::Cluster`] build their commands and readiness checks on top.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::log::{join_drains, spawn_drain, LogBuffer};

/// How long [`ManagedProcess::pause`] and [`ManagedProcess::resume`] wait for
/// the kernel to report the new state.
const SIGNAL_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a graceful stop checks whether the process has exited.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long a line wait sleeps at most before it checks whether the process
/// is still alive (appends wake it earlier).
const LINE_WAIT_SLICE: Duration = Duration::from_millis(50);

/// One child process at a time, plus everything it ever wrote.
///
/// Every method takes `&self`, so a test can share the handle with helper
/// threads (for example one that pauses the process while another drives a
/// client). Calls are serialized, so a graceful stop holds the others back
/// for up to its timeout. Dropping the handle sends SIGCONT to a paused
/// process, then SIGKILL, and reaps it.
///
/// ```
/// use std::process::Command;
/// use std::time::Duration;
/// use fjord_testkit::ManagedProcess;
///
/// let process = ManagedProcess::new("sleeper");
/// let mut command = Command::new("sh");
/// command.args(["-c", "echo ready; exec sleep 60"]);
/// process.spawn(command).unwrap();
/// process
///     .wait_for_line(Duration::from_secs(10), |line| (line == "ready").then_some(()))
///     .unwrap();
/// process.pause().unwrap();
/// process.resume().unwrap();
/// let status = process.kill().unwrap();
/// assert!(!status.success());
/// ```
#[derive(Debug)]
pub struct ManagedProcess {
    label: String,
    log: Arc<LogBuffer>,
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    running: Option<Running>,
    last_exit: Option<ExitStatus>,
    starts: u32,
    /// Where the output of the current (or last) run starts in the log.
    run_log_start: usize,
}

/// A spawned child that has not been reaped, so its pid cannot be reused and
/// signalling it is safe.
#[derive(Debug)]
struct Running {
    child: Child,
    drains: Vec<JoinHandle<()>>,
    paused: bool,
}

/// What a line wait ended with.
#[derive(Debug)]
pub(crate) enum LineWait<T> {
    Found(T),
    Exited(Option<ExitStatus>),
    TimedOut,
}

impl ManagedProcess {
    /// A handle with nothing running yet; `label` prefixes the kit's notes in
    /// the log (`[testkit] node 2: killed with SIGKILL`).
    pub fn new(label: impl Into<String>) -> ManagedProcess {
        ManagedProcess {
            label: label.into(),
            log: Arc::new(LogBuffer::new()),
            slot: Mutex::new(Slot::default()),
        }
    }

    /// The label given to [`ManagedProcess::new`].
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Spawns `command` with stdin closed and stdout and stderr drained into
    /// the log; returns the pid. Fails if a previous run is still alive.
    pub fn spawn(&self, mut command: Command) -> Result<u32> {
        let mut slot = self.lock();
        self.reap_if_exited(&mut slot);
        if let Some(running) = &slot.running {
            bail!(
                "{} is already running as pid {}",
                self.label,
                running.child.id()
            );
        }
        slot.starts += 1;
        let program = command.get_program().to_string_lossy().into_owned();
        self.note(&format!("start #{}: {program}", slot.starts));
        slot.run_log_start = self.log.len();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("spawn {program} for {}", self.label))?;
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let drains = vec![
            spawn_drain(stderr, Arc::clone(&self.log)),
            spawn_drain(stdout, Arc::clone(&self.log)),
        ];
        slot.running = Some(Running {
            child,
            drains,
            paused: false,
        });
        Ok(pid)
    }

    /// The pid while the process is alive (paused counts as alive).
    pub fn pid(&self) -> Option<u32> {
        let mut slot = self.lock();
        self.reap_if_exited(&mut slot);
        slot.running.as_ref().map(|r| r.child.id())
    }

    /// Whether the process is alive (paused counts as alive). A process found
    /// to have exited is reaped here, and its status kept for
    /// [`ManagedProcess::last_exit_status`].
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Whether the process is alive and paused by [`ManagedProcess::pause`].
    pub fn is_paused(&self) -> bool {
        let mut slot = self.lock();
        self.reap_if_exited(&mut slot);
        slot.running.as_ref().is_some_and(|r| r.paused)
    }

    /// The exit status of the last run that ended, if one has.
    pub fn last_exit_status(&self) -> Option<ExitStatus> {
        let mut slot = self.lock();
        self.reap_if_exited(&mut slot);
        slot.last_exit
    }

    /// How many times [`ManagedProcess::spawn`] has been called.
    pub fn starts(&self) -> u32 {
        self.lock().starts
    }

    /// Freezes the process with SIGSTOP and waits until the kernel reports it
    /// stopped. Its sockets stay open but nothing answers, like a long GC
    /// pause or a hung host.
    pub fn pause(&self) -> Result<()> {
        let mut slot = self.lock();
        self.reap_if_exited(&mut slot);
        let Some(running) = slot.running.as_mut() else {
            bail!("{} is not running", self.label);
        };
        let pid = running.child.id();
        send_signal(pid, "STOP")?;
        running.paused = true;
        wait_for_state(pid, |state| matches!(state, 'T' | 't'))
            .with_context(|| format!("{} (pid {pid}) did not stop after SIGSTOP", self.label))?;
        self.note("paused with SIGSTOP");
        Ok(())
    }

    /// Continues a paused process with SIGCONT and waits until the kernel
    /// reports it no longer stopped.
    pub fn resume(&self) -> Result<()> {
        let mut slot = self.lock();
        self.reap_if_exited(&mut slot);
        let Some(running) = slot.running.as_mut() else {
            bail!("{} is not running", self.label);
        };
        let pid = running.child.id();
        send_signal(pid, "CONT")?;
        running.paused = false;
        wait_for_state(pid, |state| !matches!(state, 'T' | 't')).with_context(|| {
            format!("{} (pid {pid}) did not continue after SIGCONT", self.label)
        })?;
        self.note("resumed with SIGCONT");
        Ok(())
    }

    /// Crash: SIGKILL (which also ends a paused process), then reap. Returns
    /// the exit status.
    pub fn kill(&self) -> Result<ExitStatus> {
        let mut slot = self.lock();
        self.reap_if_exited(&mut slot);
        let Some(mut running) = slot.running.take() else {
            bail!("{} is not running", self.label);
        };
        running
            .child
            .kill()
            .with_context(|| format!("SIGKILL {}", self.label))?;
        let status = running
            .child
            .wait()
            .with_context(|| format!("reap {}", self.label))?;
        join_drains(running.drains);
        slot.last_exit = Some(status);
        self.note(&format!("killed with SIGKILL: {status}"));
        Ok(status)
    }

    /// Graceful stop: SIGTERM (followed by SIGCONT if paused, since a stopped
    /// process only acts on the signal once continued), then waits up to
    /// `timeout` for the exit. A process still alive after that is killed
    /// and an error is returned.
    pub fn stop(&self, timeout: Duration) -> Result<ExitStatus> {
        let mut slot = self.lock();
        self.reap_if_exited(&mut slot);
        let Some(mut running) = slot.running.take() else {
            bail!("{} is not running", self.label);
        };
        let pid = running.child.id();
        let signalled = send_signal(pid, "TERM").and_then(|()| {
            if running.paused {
                send_signal(pid, "CONT")?;
            }
            Ok(())
        });
        if let Err(err) = signalled {
            // The process may have exited meanwhile; the wait below tells.
            self.note(&format!("signalling a graceful stop failed: {err:#}"));
        }
        let deadline = Instant::now() + timeout;
        let waited = loop {
            match running.child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(STOP_POLL_INTERVAL),
                Ok(None) => break Err(None),
                Err(err) => break Err(Some(err)),
            }
        };
        match waited {
            Ok(status) => {
                join_drains(running.drains);
                slot.last_exit = Some(status);
                self.note(&format!("exited after SIGTERM: {status}"));
                Ok(status)
            }
            Err(wait_error) => {
                let _ = running.child.kill();
                slot.last_exit = running.child.wait().ok();
                join_drains(running.drains);
                self.note(&format!(
                    "did not exit within {timeout:?} after SIGTERM; killed"
                ));
                match wait_error {
                    Some(err) => Err(err).with_context(|| format!("wait for {}", self.label)),
                    None => bail!(
                        "{} did not exit within {timeout:?} after SIGTERM; it was killed",
                        self.label
                    ),
                }
            }
        }
    }

    /// Waits until the current run writes a line for which `find` returns
    /// `Some`, and returns that value. Fails if the process exits first or
    /// `timeout` passes (the process is left running then).
    pub fn wait_for_line<T>(
        &self,
        timeout: Duration,
        find: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        match self.await_line(timeout, find) {
            LineWait::Found(found) => Ok(found),
            LineWait::Exited(status) => bail!(
                "{} exited (status {status:?}) before logging the expected line; log tail:\n{}",
                self.label,
                self.logs_tail(8 * 1024)
            ),
            LineWait::TimedOut => bail!(
                "{} did not log the expected line within {timeout:?}; log tail:\n{}",
                self.label,
                self.logs_tail(8 * 1024)
            ),
        }
    }

    /// Everything every run wrote to stderr and stdout, interleaved with the
    /// kit's `[testkit]` notes.
    pub fn logs(&self) -> String {
        self.log.text()
    }

    /// The last `bytes_max` bytes of [`ManagedProcess::logs`] (cut at a char
    /// boundary).
    pub fn logs_tail(&self, bytes_max: usize) -> String {
        self.log.tail(bytes_max)
    }

    /// What the current (or last) run wrote, with the kit's notes since its start.
    pub fn run_logs(&self) -> String {
        let start = self.lock().run_log_start;
        self.log.since(start)
    }

    /// Adds a `[testkit] <label>: <text>` line to the log.
    pub fn note(&self, text: &str) {
        self.log
            .append(&format!("[testkit] {}: {text}\n", self.label));
    }

    /// Where the current run's output starts in the log: the cursor to start
    /// [`ManagedProcess::poll_line`] from.
    pub(crate) fn run_log_start(&self) -> usize {
        self.lock().run_log_start
    }

    /// Without blocking: the first line from `*cursor` on that `find` accepts,
    /// else whether the run has ended. Lines written just before an exit are
    /// still offered, since the drains are joined before the final look.
    pub(crate) fn poll_line<T>(
        &self,
        cursor: &mut usize,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Option<LineWait<T>> {
        if let Some(found) = self.log.scan(cursor, &mut find) {
            return Some(LineWait::Found(found));
        }
        let mut slot = self.lock();
        self.reap_if_exited(&mut slot);
        if slot.running.is_some() {
            return None;
        }
        let status = slot.last_exit;
        drop(slot);
        Some(match self.log.scan(cursor, &mut find) {
            Some(found) => LineWait::Found(found),
            None => LineWait::Exited(status),
        })
    }

    /// Blocking form of [`ManagedProcess::poll_line`] for the current run.
    pub(crate) fn await_line<T>(
        &self,
        timeout: Duration,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> LineWait<T> {
        let deadline = Instant::now() + timeout;
        let mut cursor = self.run_log_start();
        loop {
            if let Some(outcome) = self.poll_line(&mut cursor, &mut find) {
                return outcome;
            }
            let now = Instant::now();
            if now >= deadline {
                return LineWait::TimedOut;
            }
            self.log
                .wait_for_more(cursor, (deadline - now).min(LINE_WAIT_SLICE));
        }
    }

    /// Ends the process without reporting errors: SIGCONT if paused, SIGKILL,
    /// reap. Used on drop and on failed starts.
    pub(crate) fn terminate(&self) {
        let mut slot = self.lock();
        if let Some(mut running) = slot.running.take() {
            if running.paused {
                let _ = send_signal(running.child.id(), "CONT");
            }
            let _ = running.child.kill();
            slot.last_exit = running.child.wait().ok();
            join_drains(running.drains);
            self.note("terminated");
        }
    }

    fn reap_if_exited(&self, slot: &mut Slot) {
        let Some(running) = slot.running.as_mut() else {
            return;
        };
        let status = match running.child.try_wait() {
            Ok(Some(status)) => Some(status),
            Ok(None) => return,
            Err(_) => None,
        };
        let running = slot.running.take().expect("checked above");
        join_drains(running.drains);
        slot.last_exit = status;
        self.note(&format!("exited on its own: {status:?}"));
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Every update of the slot is a plain assignment, so the state is
        // usable after a panic elsewhere; drop must still reach the child.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Sends `SIG<name>` to `pid` through kill(1): unsafe code is forbidden in
/// the workspace, and std only knows SIGKILL.
pub(crate) fn send_signal(pid: u32, name: &str) -> Result<()> {
    let output = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run kill -s {name} {pid}"))?;
    if !output.status.success() {
        bail!(
            "kill -s {name} {pid} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The scheduler state letter of `pid` from `/proc/<pid>/stat` ('S'
/// sleeping, 'R' running, 'T' stopped, 'Z' zombie…), if readable.
pub fn process_state(pid: u32) -> Option<char> {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // The command name is in parentheses and may itself contain ") ".
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.trim_start().chars().next()
}

/// Waits until the state of `pid` satisfies `accept`. Where `/proc` is not
/// available the state cannot be observed and this returns at once.
fn wait_for_state(pid: u32, accept: impl Fn(char) -> bool) -> Result<()> {
    let deadline = Instant::now() + SIGNAL_SETTLE_TIMEOUT;
    loop {
        let Some(state) = process_state(pid) else {
            return Ok(());
        };
        if accept(state) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("state is still {state:?} after {SIGNAL_SETTLE_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
#[path = "process_test.rs"]
mod tests;

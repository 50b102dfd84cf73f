//! Runs the `fjord` binary as an operator tool (`fjord topics ...`) with a
//! deadline, capturing its exit code and output; an overrun kills it and fails
//! the test instead of hanging CI.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::fjord_bin;

/// Upper bound for one tool invocation.
pub(crate) const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// What one run of the binary produced.
#[derive(Debug)]
pub(crate) struct ToolRun {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl ToolRun {
    /// Whether the tool exited with status 0.
    #[allow(dead_code)]
    pub(crate) fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `fjord ARGS...`, killing it after [`TOOL_TIMEOUT`].
pub(crate) fn run_tool(args: &[&str]) -> ToolRun {
    run_tool_with(args, "", TOOL_TIMEOUT)
}

/// Runs `fjord ARGS...` with `stdin` as its input, killing it after `timeout`; fails the
/// test if it had to be killed.
pub(crate) fn run_tool_with(args: &[&str], stdin: &str, timeout: Duration) -> ToolRun {
    let start = Instant::now();
    let mut child = Command::new(fjord_bin())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fjord");
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.to_string();
    // Writing ends by dropping the pipe, so the tool sees the end of its input.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    let run = ToolRun {
        code: status.and_then(|s| s.code()),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    };
    assert!(
        status.is_some(),
        "fjord {args:?} did not finish within {timeout:?}: {run:?}"
    );
    run
}

/// Runs the tool, asserts it succeeded and returns its stdout.
pub(crate) fn tool_ok(args: &[&str]) -> String {
    let run = run_tool(args);
    assert_eq!(run.code, Some(0), "fjord {args:?} failed: {run:?}");
    run.stdout
}

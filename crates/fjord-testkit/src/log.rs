//! The collected output of one process, kept across restarts.
//!
//! Drain threads append whole lines, so a reader never sees half a line, and
//! waiters are woken on every append instead of polling on a fixed sleep.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Upper bound on the kept log text, so a chatty process cannot exhaust memory.
const LOG_BYTES_MAX: usize = 64 * 1024 * 1024;

/// How long the drains of an exited process may take to reach end of file.
/// A grandchild holding the pipe open must not hang the test.
const DRAIN_JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Text appended by the drains of a process and by the kit's own notes.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    text: Mutex<String>,
    appended: Condvar,
}

impl LogBuffer {
    pub(crate) fn new() -> LogBuffer {
        LogBuffer::default()
    }

    /// Appends `text` unless the buffer would pass [`LOG_BYTES_MAX`].
    pub(crate) fn append(&self, text: &str) {
        let mut log = self.lock();
        if log.len() + text.len() <= LOG_BYTES_MAX {
            log.push_str(text);
        }
        drop(log);
        self.appended.notify_all();
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn text(&self) -> String {
        self.lock().clone()
    }

    /// The text from byte `offset` on (empty if `offset` is past the end).
    pub(crate) fn since(&self, offset: usize) -> String {
        let log = self.lock();
        log.get(offset..).unwrap_or_default().to_string()
    }

    /// The last `bytes_max` bytes, cut forward to a char boundary.
    pub(crate) fn tail(&self, bytes_max: usize) -> String {
        let log = self.lock();
        let mut start = log.len().saturating_sub(bytes_max);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_string()
    }

    /// Offers every complete line from `*cursor` on to `find` and advances the
    /// cursor past each line offered; returns the first match.
    pub(crate) fn scan<T>(
        &self,
        cursor: &mut usize,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let log = self.lock();
        while let Some(rest) = log.get(*cursor..) {
            let Some(end) = rest.find('\n') else {
                break;
            };
            *cursor += end + 1;
            if let Some(found) = find(&rest[..end]) {
                return Some(found);
            }
        }
        None
    }

    /// Blocks until the buffer is longer than `len` or `timeout` passes.
    pub(crate) fn wait_for_more(&self, len: usize, timeout: Duration) {
        let log = self.lock();
        let _unused = self
            .appended
            .wait_timeout_while(log, timeout, |log| log.len() <= len)
            .unwrap_or_else(PoisonError::into_inner);
    }

    fn lock(&self) -> MutexGuard<'_, String> {
        // The text stays consistent even if a holder panicked: every append
        // is a single push_str.
        self.text.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads `stream` line by line into `log` until end of file, with colors
/// stripped, so the pipe never fills up and blocks the process.
pub(crate) fn spawn_drain(
    stream: impl Read + Send + 'static,
    log: Arc<LogBuffer>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let mut line = strip_ansi(&String::from_utf8_lossy(&raw));
            if !line.ends_with('\n') {
                line.push('\n');
            }
            log.append(&line);
        }
    })
}

/// Joins drains whose process has exited, waiting at most
/// [`DRAIN_JOIN_TIMEOUT`] in total; drains still running are left detached.
pub(crate) fn join_drains(drains: Vec<JoinHandle<()>>) {
    let deadline = Instant::now() + DRAIN_JOIN_TIMEOUT;
    for drain in drains {
        while !drain.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if drain.is_finished() {
            let _ = drain.join();
        }
    }
}

/// Removes ANSI escape sequences (colors) from a log line.
pub(crate) fn strip_ansi(line: &str) -> String {
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
    fn strips_colors() {
        let line =
            "\u{1b}[2m2024\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m listening on PLAINTEXT://127.0.0.1:1";
        assert_eq!(
            strip_ansi(line),
            "2024  INFO listening on PLAINTEXT://127.0.0.1:1"
        );
    }

    #[test]
    fn scan_offers_each_complete_line_once() {
        let log = LogBuffer::new();
        log.append("one\ntwo\n");
        log.append("thr");
        let mut cursor = 0;
        let mut seen = Vec::new();
        let found = log.scan(&mut cursor, |line| {
            seen.push(line.to_string());
            None::<()>
        });
        assert_eq!(found, None);
        assert_eq!(seen, ["one", "two"]);
        assert_eq!(
            cursor,
            "one\ntwo\n".len(),
            "the partial line is not consumed"
        );
        log.append("ee\nfour\n");
        let found = log.scan(&mut cursor, |line| {
            line.starts_with('t').then(|| line.to_string())
        });
        assert_eq!(found.as_deref(), Some("three"));
        let found = log.scan(&mut cursor, |line| Some(line.to_string()));
        assert_eq!(found.as_deref(), Some("four"));
        assert_eq!(log.scan(&mut cursor, |line| Some(line.to_string())), None);
    }

    #[test]
    fn tail_and_since_respect_char_boundaries() {
        let log = LogBuffer::new();
        log.append("héllo\n");
        assert_eq!(log.tail(4), "llo\n");
        assert_eq!(log.tail(5), "llo\n", "cut forward past the two-byte é");
        assert_eq!(log.tail(6), "éllo\n");
        assert_eq!(log.tail(100), "héllo\n");
        assert_eq!(log.since(1), "éllo\n");
        assert_eq!(log.since(100), "");
    }

    #[test]
    fn wait_for_more_wakes_on_append() {
        let log = Arc::new(LogBuffer::new());
        let writer = Arc::clone(&log);
        let started = Instant::now();
        let handle = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            writer.append("late\n");
        });
        log.wait_for_more(0, Duration::from_secs(10));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken by the append"
        );
        assert_eq!(log.text(), "late\n");
        handle.join().unwrap();
        let started = Instant::now();
        log.wait_for_more(log.len(), Duration::from_millis(100));
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "times out without appends"
        );
    }
}

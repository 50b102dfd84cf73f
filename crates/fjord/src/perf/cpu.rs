//! Broker CPU cost of a perf run, read from Linux's `/proc/PID/stat`.
//!
//! Throughput alone hides how hard the broker worked for it; CPU seconds per
//! GB moved is the number that tells whether a change made the broker cheaper.
//! The broker is found by `--broker-pid`, or else as the only local process
//! whose command line is `fjord server ...`. Where `/proc` does not exist the
//! probe is simply skipped.
//!
//! `utime` and `stime` in `/proc/PID/stat` are counted in clock ticks of
//! `USER_HZ`. Reading the real value needs `sysconf(_SC_CLK_TCK)` (libc, and
//! this workspace forbids `unsafe`), so we use 100 Hz: the value Linux exports
//! to user space on every mainstream architecture, whatever the kernel's
//! internal `HZ` is.

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use super::stats::MB;

/// Clock ticks per second for `/proc/PID/stat` times (Linux `USER_HZ`).
pub(super) const USER_HZ: u64 = 100;

/// CPU time a process has used so far, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CpuTicks {
    /// Time spent in user mode (`utime`, field 14).
    pub(super) user: u64,
    /// Time spent in kernel mode (`stime`, field 15).
    pub(super) system: u64,
}

/// Extracts `utime` and `stime` from the contents of `/proc/PID/stat`.
///
/// Field 2, `comm`, is the executable name in parentheses and may itself
/// contain spaces and parentheses, so the fields are counted from the *last*
/// `)`: after it come `state` (field 3) ... `utime` (14) and `stime` (15).
pub(super) fn parse_stat(text: &str) -> anyhow::Result<CpuTicks> {
    let Some(close) = text.rfind(')') else {
        bail!("malformed /proc stat line: no ')' after comm");
    };
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    let field = |n: usize| -> anyhow::Result<u64> {
        let raw = fields
            .get(n - 3)
            .with_context(|| format!("malformed /proc stat line: field {n} missing"))?;
        raw.parse()
            .with_context(|| format!("malformed /proc stat line: field {n} is {raw:?}"))
    };
    Ok(CpuTicks {
        user: field(14)?,
        system: field(15)?,
    })
}

/// Whether a raw `/proc/PID/cmdline` (NUL-separated argv) is `fjord server ...`:
/// the program's file name is `fjord` and the first argument that is not an
/// option is `server`.
pub(super) fn is_broker_cmdline(raw: &[u8]) -> bool {
    let mut args = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy);
    let Some(argv0) = args.next() else {
        return false;
    };
    let program = Path::new(argv0.as_ref())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    program.as_deref() == Some("fjord")
        && args.find(|a| !a.starts_with('-')).as_deref() == Some("server")
}

/// Every local process that looks like a Fjord broker, except this one.
fn find_broker_pids() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| is_broker_cmdline(&c))
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn read_ticks(pid: u32) -> anyhow::Result<CpuTicks> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&text).with_context(|| format!("parsing {path}"))
}

/// A broker CPU reading taken at the start of a run, to be closed by [`BrokerCpuProbe::finish`].
pub(super) struct BrokerCpuProbe {
    pid: u32,
    before: CpuTicks,
}

impl BrokerCpuProbe {
    /// Takes the starting reading. An explicit `pid` that cannot be read is an
    /// error (the user asked for it); auto-detection that finds no broker or
    /// several returns `None` and says why through `note`.
    pub(super) fn start(pid: Option<u32>, note: impl Fn(&str)) -> anyhow::Result<Option<Self>> {
        let pid = match pid {
            Some(pid) => pid,
            None => match find_broker_pids().as_slice() {
                [pid] => *pid,
                [] => return Ok(None),
                many => {
                    note(&format!(
                        "broker cpu: not measured, several `fjord server` processes ({many:?}); pass --broker-pid"
                    ));
                    return Ok(None);
                }
            },
        };
        let before =
            read_ticks(pid).with_context(|| format!("reading CPU time of broker pid {pid}"))?;
        Ok(Some(Self { pid, before }))
    }

    /// Takes the closing reading and relates it to the `bytes` moved.
    /// `None` if the broker went away meanwhile.
    pub(super) fn finish(self, bytes: u64) -> Option<BrokerCpu> {
        let after = read_ticks(self.pid).ok()?;
        Some(BrokerCpu::between(self.pid, self.before, after, bytes))
    }
}

/// Broker CPU used during a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct BrokerCpu {
    /// The process measured.
    pub(super) pid: u32,
    /// User-mode CPU seconds.
    pub(super) user_s: f64,
    /// Kernel-mode CPU seconds.
    pub(super) sys_s: f64,
    /// (user + sys) seconds per GB (2^30 bytes) of record data moved; `None`
    /// when no data moved.
    pub(super) s_per_gb: Option<f64>,
}

impl BrokerCpu {
    /// The CPU used between two readings while `bytes` of record data moved.
    pub(super) fn between(pid: u32, before: CpuTicks, after: CpuTicks, bytes: u64) -> Self {
        let secs = |b: u64, a: u64| a.saturating_sub(b) as f64 / USER_HZ as f64;
        let user_s = secs(before.user, after.user);
        let sys_s = secs(before.system, after.system);
        let gb = bytes as f64 / (MB * 1024.0);
        Self {
            pid,
            user_s,
            sys_s,
            s_per_gb: (bytes > 0).then(|| (user_s + sys_s) / gb),
        }
    }
}

impl fmt::Display for BrokerCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "broker cpu: {:.2} s user, {:.2} s sys, ",
            self.user_s, self.sys_s
        )?;
        match self.s_per_gb {
            Some(x) => write!(f, "{x:.3} s per GB"),
            None => write!(f, "n/a s per GB"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_stat_line() {
        let line = "4242 (fjord) S 1 4242 4242 0 -1 4194560 1234 0 0 0 750 125 0 0 20 0 9 0 \
                    123456 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(line).unwrap(),
            CpuTicks {
                user: 750,
                system: 125
            }
        );
    }

    #[test]
    fn comm_with_spaces_and_parentheses() {
        let line = "77 (we) ird (name)) R 1 77 77 0 -1 0 0 0 0 0 31 7 0 0 20 0 1 0 5 0 0";
        assert_eq!(
            parse_stat(line).unwrap(),
            CpuTicks {
                user: 31,
                system: 7
            }
        );
    }

    #[test]
    fn malformed_stat_lines_are_errors() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("1 (x) S 1 2 3").is_err());
        assert!(parse_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 7").is_err());
    }

    #[test]
    fn reads_our_own_stat() {
        if Path::new("/proc/self/stat").exists() {
            read_ticks(std::process::id()).unwrap();
        }
    }

    #[test]
    fn recognises_broker_command_lines() {
        assert!(is_broker_cmdline(b"fjord\0server\0"));
        assert!(is_broker_cmdline(
            b"/work/main/target/release/fjord\0server\0--override\0log.dirs=/tmp/x\0"
        ));
        assert!(is_broker_cmdline(b"./fjord\0--verbose\0server\0"));
        assert!(!is_broker_cmdline(
            b"fjord\0perf\0produce\0--topic\0server\0"
        ));
        assert!(!is_broker_cmdline(b"fjord\0"));
        assert!(!is_broker_cmdline(b"kafka\0server\0"));
        assert!(!is_broker_cmdline(b"fjord-server\0server\0"));
        assert!(!is_broker_cmdline(b""));
    }

    #[test]
    fn cpu_seconds_per_gb() {
        let before = CpuTicks {
            user: 100,
            system: 50,
        };
        let after = CpuTicks {
            user: 350,
            system: 100,
        };
        let c = BrokerCpu::between(9, before, after, 2 * 1024 * 1024 * 1024);
        assert_eq!((c.user_s, c.sys_s), (2.5, 0.5));
        assert_eq!(c.s_per_gb, Some(1.5));
        assert_eq!(
            c.to_string(),
            "broker cpu: 2.50 s user, 0.50 s sys, 1.500 s per GB"
        );
        let idle = BrokerCpu::between(9, before, before, 0);
        assert_eq!(idle.s_per_gb, None);
        assert_eq!(
            idle.to_string(),
            "broker cpu: 0.00 s user, 0.00 s sys, n/a s per GB"
        );
    }
}

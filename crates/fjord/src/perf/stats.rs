//! The pure arithmetic of the perf tools, kept free of I/O so it can be unit
//! tested: Kafka-style reporting windows, latency percentiles, the throughput
//! throttler, payload generation and time-stamp formatting.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Kafka's tools report "MB" as 2^20 bytes; we do the same so numbers compare.
pub(super) const MB: f64 = 1024.0 * 1024.0;

/// Largest latency the histogram tells apart (one hour, in microseconds).
const MAX_TRACKED_US: u64 = 3_600_000_000;

/// Latency accounting for the producer, in microseconds.
///
/// Percentiles come from an HDR histogram (3 significant digits, i.e. error
/// below 0.1%), which, unlike Kafka's sampled array, keeps every record and
/// stays small however many records are sent; the average and the maximum
/// are kept exactly.
pub(super) struct LatencyStats {
    hist: Histogram<u64>,
    count: u64,
    sum_us: u128,
    max_us: u64,
}

impl LatencyStats {
    /// An empty accumulator.
    pub(super) fn new() -> Self {
        Self {
            // Fixed, valid bounds (1 us to 1 hour, 3 significant digits), so
            // this cannot fail; longer latencies are clamped to an hour.
            hist: Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("valid histogram bounds"),
            count: 0,
            sum_us: 0,
            max_us: 0,
        }
    }

    /// Adds one observation.
    pub(super) fn record(&mut self, latency_us: u64) {
        self.hist.saturating_record(latency_us);
        self.count += 1;
        self.sum_us += u128::from(latency_us);
        self.max_us = self.max_us.max(latency_us);
    }

    /// Mean latency in milliseconds (0 when nothing was recorded).
    pub(super) fn avg_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.count as f64 / 1000.0
        }
    }

    /// Largest latency in milliseconds.
    pub(super) fn max_ms(&self) -> f64 {
        self.max_us as f64 / 1000.0
    }

    /// The latency at quantile `q` (0.0..=1.0) in milliseconds, never above
    /// the exact maximum (0 when nothing was recorded).
    pub(super) fn percentile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.hist.value_at_quantile(q).min(self.max_us) as f64 / 1000.0
    }
}

/// One Kafka-style reporting window (the periodic progress line).
#[derive(Default)]
struct Window {
    start: Duration,
    count: u64,
    bytes: u64,
    sum_us: u64,
    max_us: u64,
}

/// Everything the producer's delivery callback accumulates, mirroring the
/// `Stats` class of Kafka's ProducerPerformance: totals plus a window that
/// yields a progress line every `interval`.
pub(super) struct ProduceStats {
    interval: Duration,
    latency: LatencyStats,
    count: u64,
    bytes: u64,
    window: Window,
    errors: u64,
    first_error: Option<String>,
}

impl ProduceStats {
    /// Starts accounting; `interval` is the time between progress lines.
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            interval,
            latency: LatencyStats::new(),
            count: 0,
            bytes: 0,
            window: Window::default(),
            errors: 0,
            first_error: None,
        }
    }

    /// Records one acknowledged record; `now` is the time since the run
    /// started. Returns a progress line when the window is complete.
    pub(super) fn record(&mut self, latency_us: u64, bytes: u64, now: Duration) -> Option<String> {
        self.latency.record(latency_us);
        self.count += 1;
        self.bytes += bytes;
        let w = &mut self.window;
        w.count += 1;
        w.bytes += bytes;
        w.sum_us += latency_us;
        w.max_us = w.max_us.max(latency_us);
        if now.saturating_sub(w.start) < self.interval {
            return None;
        }
        let line = window_line(w, now);
        self.window = Window {
            start: now,
            ..Window::default()
        };
        Some(line)
    }

    /// Records one failed delivery; the first error is kept for the report.
    pub(super) fn record_error(&mut self, error: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error);
        }
    }

    /// Failed deliveries and the first error seen.
    pub(super) fn errors(&self) -> (u64, Option<&str>) {
        (self.errors, self.first_error.as_deref())
    }

    /// The final totals, for a run that lasted `elapsed`.
    pub(super) fn summary(&self, elapsed: Duration) -> ProduceSummary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        ProduceSummary {
            records: self.count,
            bytes: self.bytes,
            errors: self.errors,
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
            records_per_sec: self.count as f64 / secs,
            mb_per_sec: self.bytes as f64 / MB / secs,
            avg_latency_ms: self.latency.avg_ms(),
            max_latency_ms: self.latency.max_ms(),
            p50_ms: self.latency.percentile_ms(0.50),
            p95_ms: self.latency.percentile_ms(0.95),
            p99_ms: self.latency.percentile_ms(0.99),
            p999_ms: self.latency.percentile_ms(0.999),
        }
    }
}

fn window_line(w: &Window, now: Duration) -> String {
    let secs = now.saturating_sub(w.start).as_secs_f64().max(1e-9);
    let avg_ms = if w.count == 0 {
        0.0
    } else {
        w.sum_us as f64 / w.count as f64 / 1000.0
    };
    format!(
        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency.",
        w.count,
        w.count as f64 / secs,
        w.bytes as f64 / MB / secs,
        avg_ms,
        w.max_us as f64 / 1000.0
    )
}

/// Final producer result, printed as Kafka's last line or serialized as JSON.
#[derive(Debug, Serialize, Clone, PartialEq)]
pub(super) struct ProduceSummary {
    /// Records acknowledged by the broker.
    pub(super) records: u64,
    /// Value bytes acknowledged (record count times record size).
    pub(super) bytes: u64,
    /// Records whose delivery failed.
    pub(super) errors: u64,
    /// Wall time from the first send to the end of the final flush.
    pub(super) elapsed_ms: f64,
    /// Acknowledged records per second over `elapsed_ms`.
    pub(super) records_per_sec: f64,
    /// Acknowledged MB (2^20 bytes) per second over `elapsed_ms`.
    pub(super) mb_per_sec: f64,
    /// Mean send-to-acknowledgement latency.
    pub(super) avg_latency_ms: f64,
    /// Largest send-to-acknowledgement latency.
    pub(super) max_latency_ms: f64,
    /// Median latency.
    pub(super) p50_ms: f64,
    /// 95th percentile latency (JSON only; the text line follows the project's format).
    pub(super) p95_ms: f64,
    /// 99th percentile latency.
    pub(super) p99_ms: f64,
    /// 99.9th percentile latency.
    pub(super) p999_ms: f64,
}

impl ProduceSummary {
    /// The Kafka-style final line.
    pub(super) fn text(&self) -> String {
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, \
             {:.2} ms 50th, {:.2} ms 99th, {:.2} ms 99.9th.",
            self.records,
            self.records_per_sec,
            self.mb_per_sec,
            self.avg_latency_ms,
            self.max_latency_ms,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms
        )
    }
}

/// Paces sends to a target rate, like Kafka's `ThroughputThrottler`: it lets
/// the sender run until it is ahead of schedule, then sleeps off the lead, but
/// only once the lead reaches [`Throttler::MIN_SLEEP`] (sleeping for less is
/// imprecise and costs more than it saves).
#[derive(Debug, Clone, Copy)]
pub(super) struct Throttler {
    per_sec: Option<f64>,
}

impl Throttler {
    /// Kafka's `MIN_SLEEP_NS`: leads shorter than this are not slept off.
    pub(super) const MIN_SLEEP: Duration = Duration::from_millis(2);

    /// A throttler for `records_per_sec`; a negative (or NaN) rate disables it.
    pub(super) fn new(records_per_sec: f64) -> Self {
        Self {
            per_sec: (records_per_sec > 0.0).then_some(records_per_sec),
        }
    }

    /// Whether it ever sleeps; lets the hot loop skip reading the clock.
    pub(super) fn is_active(&self) -> bool {
        self.per_sec.is_some()
    }

    /// How long to sleep before sending the next record, given that `sent`
    /// records went out within `elapsed` of the start. `None` means send now.
    pub(super) fn delay(&self, sent: u64, elapsed: Duration) -> Option<Duration> {
        let rate = self.per_sec?;
        // Rounded to whole nanoseconds so that exact schedules stay exact.
        let due = Duration::from_nanos((sent as f64 * 1e9 / rate).round() as u64);
        let lead = due.checked_sub(elapsed)?;
        (lead >= Self::MIN_SLEEP).then_some(lead)
    }
}

/// The record value: `size` random upper-case letters, as Kafka's tool makes
/// them (random bytes would be incompressible, letters compress like text).
/// Generated once per run; a small xorshift generator is plenty for that.
pub(super) fn random_payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect()
}

/// Formats milliseconds since the Unix epoch as Kafka's consumer perf tool
/// does (`yyyy-MM-dd HH:mm:ss:SSS`), in UTC (the tool does not know the local
/// time zone without extra dependencies; UTC is unambiguous in logs).
pub(super) fn format_utc_millis(epoch_ms: u64) -> String {
    let ms = epoch_ms % 1000;
    let secs = epoch_ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}:{ms:03}")
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_uniform_latencies() {
        let mut l = LatencyStats::new();
        for us in 1..=1000 {
            l.record(us * 1000); // 1..=1000 ms
        }
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1e-9;
        assert!(
            close(l.percentile_ms(0.5), 500.0),
            "{}",
            l.percentile_ms(0.5)
        );
        assert!(
            close(l.percentile_ms(0.99), 990.0),
            "{}",
            l.percentile_ms(0.99)
        );
        assert!(
            close(l.percentile_ms(0.999), 999.0),
            "{}",
            l.percentile_ms(0.999)
        );
        assert_eq!(l.percentile_ms(1.0), 1000.0);
        assert_eq!(l.max_ms(), 1000.0);
        assert!((l.avg_ms() - 500.5).abs() < 1e-9);
    }

    #[test]
    fn percentiles_of_skewed_latencies_and_empty() {
        let empty = LatencyStats::new();
        assert_eq!(
            (empty.avg_ms(), empty.max_ms(), empty.percentile_ms(0.5)),
            (0.0, 0.0, 0.0)
        );
        let mut l = LatencyStats::new();
        for _ in 0..990 {
            l.record(200); // 0.2 ms
        }
        for _ in 0..10 {
            l.record(50_000); // 50 ms
        }
        assert!((l.percentile_ms(0.5) - 0.2).abs() < 0.001);
        assert!((l.percentile_ms(0.99) - 0.2).abs() < 0.001);
        assert!((l.percentile_ms(0.999) - 50.0).abs() < 0.05);
    }

    #[test]
    fn windows_emit_a_line_per_interval() {
        let mut s = ProduceStats::new(Duration::from_secs(5));
        let ms = Duration::from_millis;
        assert!(s.record(1000, 100, ms(1000)).is_none());
        assert!(s.record(3000, 100, ms(4999)).is_none());
        let line = s.record(2000, 100, ms(5000)).expect("window complete");
        assert_eq!(
            line,
            "3 records sent, 0.6 records/sec (0.00 MB/sec), 2.00 ms avg latency, 3.00 ms max latency."
        );
        // A fresh window starts where the last one ended.
        assert!(s.record(1000, 100, ms(9999)).is_none());
        assert!(s.record(1000, 100, ms(10_000)).is_some());
        s.record_error("boom".into());
        s.record_error("second".into());
        assert_eq!(s.errors(), (2, Some("boom")));
        let sum = s.summary(Duration::from_secs(10));
        assert_eq!(sum.records, 5);
        assert_eq!(sum.bytes, 500);
        assert_eq!(sum.errors, 2);
        assert!((sum.records_per_sec - 0.5).abs() < 1e-9);
        assert!((sum.avg_latency_ms - 1.6).abs() < 1e-9);
        assert_eq!(sum.max_latency_ms, 3.0);
    }

    #[test]
    fn summary_line_format() {
        let sum = ProduceSummary {
            records: 1000,
            bytes: 1_048_576,
            errors: 0,
            elapsed_ms: 500.0,
            records_per_sec: 2000.0,
            mb_per_sec: 2.0,
            avg_latency_ms: 1.234,
            max_latency_ms: 9.0,
            p50_ms: 1.0,
            p95_ms: 3.0,
            p99_ms: 5.0,
            p999_ms: 8.5,
        };
        assert_eq!(
            sum.text(),
            "1000 records sent, 2000.0 records/sec (2.00 MB/sec), 1.23 ms avg latency, 9.00 ms max latency, \
             1.00 ms 50th, 5.00 ms 99th, 8.50 ms 99.9th."
        );
    }

    #[test]
    fn throttler_paces_to_the_target_rate() {
        let t = Throttler::new(1000.0); // one record per ms
        let ms = Duration::from_millis;
        // On schedule or behind: no sleep.
        assert_eq!(t.delay(0, ms(0)), None);
        assert_eq!(t.delay(100, ms(100)), None);
        assert_eq!(t.delay(100, ms(150)), None);
        // Ahead by less than MIN_SLEEP: keep sending.
        assert_eq!(t.delay(101, ms(100)), None);
        // Ahead by 2 ms or more: sleep off exactly the lead.
        assert_eq!(t.delay(102, ms(100)), Some(ms(2)));
        assert_eq!(t.delay(1000, ms(250)), Some(ms(750)));
        assert!(t.is_active());
        let fractional = Throttler::new(0.5); // one record every 2 s
        assert_eq!(fractional.delay(1, ms(0)), Some(ms(2000)));
    }

    #[test]
    fn negative_throughput_disables_throttling() {
        for rate in [-1.0, -5.0, f64::NAN] {
            let t = Throttler::new(rate);
            assert!(!t.is_active());
            assert_eq!(t.delay(1_000_000, Duration::ZERO), None);
        }
    }

    #[test]
    fn payload_is_letters_of_the_requested_size() {
        let p = random_payload(1000, 42);
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        assert!(p.iter().collect::<std::collections::HashSet<_>>().len() > 20);
        assert_eq!(p, random_payload(1000, 42));
        assert!(random_payload(0, 1).is_empty());
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc_millis(0), "1970-01-01 00:00:00:000");
        // 2024-02-29T23:59:59.123Z, a leap day.
        assert_eq!(
            format_utc_millis(1_709_251_199_123),
            "2024-02-29 23:59:59:123"
        );
        // 2000-03-01T12:34:56.007Z
        assert_eq!(
            format_utc_millis(951_914_096_007),
            "2000-03-01 12:34:56:007"
        );
    }
}

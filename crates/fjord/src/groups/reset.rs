//! The pure side of `--reset-offsets`: reset specifications, topic scopes,
//! date/duration parsing, and the target offset of each partition.
//!
//! Kafka's rules are followed: every target is clamped to the partition's
//! `[log start, log end]` (with a warning when `--to-offset` is out of
//! range), `--shift-by` needs a committed offset to shift, `--to-current`
//! falls back to the log end where nothing is committed, and a timestamp
//! after the last record resets to the log end.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

/// Where to move a group's committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetSpec {
    ToEarliest,
    ToLatest,
    ToCurrent,
    ToOffset(i64),
    ShiftBy(i64),
    /// The first offset whose timestamp is at or after these epoch
    /// milliseconds (`--to-datetime`, `--by-duration`).
    ToTimestamp(i64),
}

/// One `--topic` argument: a topic, optionally restricted to partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicSpec {
    pub(crate) topic: String,
    /// `None`: every partition of the topic.
    pub(crate) partitions: Option<Vec<i32>>,
}

/// Which partitions a reset covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicScope {
    Topics(Vec<TopicSpec>),
    /// Every partition the group has a committed offset for.
    AllTopics,
}

/// Parses `TOPIC` or `TOPIC:P1,P2,...` (topic names cannot contain ':').
pub(crate) fn parse_topic_spec(text: &str) -> anyhow::Result<TopicSpec> {
    let (topic, partitions) = match text.split_once(':') {
        None => (text, None),
        Some((topic, list)) => {
            let mut partitions = Vec::new();
            for item in list.split(',').map(str::trim) {
                let p: i32 = item.parse().ok().filter(|p| *p >= 0).with_context(|| {
                    format!("invalid partition {item:?} in --topic {text:?} (expected TOPIC:0,1,2)")
                })?;
                if !partitions.contains(&p) {
                    partitions.push(p);
                }
            }
            (topic, Some(partitions))
        }
    };
    if topic.is_empty() {
        bail!("empty topic name in --topic {text:?}");
    }
    Ok(TopicSpec {
        topic: topic.to_string(),
        partitions,
    })
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn number(text: &str, what: &str, min: i64, max: i64) -> anyhow::Result<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        bail!("{what} {text:?} is not a number");
    }
    let n: i64 = text.parse().with_context(|| format!("{what} {text:?}"))?;
    if !(min..=max).contains(&n) {
        bail!("{what} {n} is out of range {min}..={max}");
    }
    Ok(n)
}

/// Parses `--to-datetime`: `YYYY-MM-DDTHH:mm:SS.sss` as Kafka writes it,
/// also accepting `HH:mm` or `HH:mm:SS` without fraction, 1-9 fraction
/// digits (truncated to milliseconds) and a zone suffix `Z`, `±HH:MM`,
/// `±HHMM` or `±HH`. Without a zone the time is taken as UTC (Kafka uses the
/// JVM's local zone). Returns epoch milliseconds.
pub(crate) fn parse_datetime(text: &str) -> anyhow::Result<i64> {
    let bad =
        || format!("invalid --to-datetime {text:?}: expected YYYY-MM-DDTHH:mm:SS.sss[Z|+hh:mm]");
    let (date, time) = text.split_once(['T', 't']).with_context(bad)?;
    // Zone: a trailing Z, or the last '+'/'-' in the time part.
    let (time, offset_ms) = if let Some(t) = time.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (t, zone) = time.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        let (hh, mm) = match digits.len() {
            2 => (&digits[..2], "00"),
            4 => (&digits[..2], &digits[2..]),
            _ => bail!(bad()),
        };
        let minutes = number(hh, "zone hour", 0, 18)? * 60 + number(mm, "zone minute", 0, 59)?;
        (t, sign * minutes * 60_000)
    } else {
        (time, 0)
    };
    let mut d = date.split('-');
    let (Some(y), Some(mo), Some(da), None) = (d.next(), d.next(), d.next(), d.next()) else {
        bail!(bad());
    };
    if y.len() != 4 {
        bail!(bad());
    }
    let year = number(y, "year", 0, 9999).with_context(bad)?;
    let month = number(mo, "month", 1, 12).with_context(bad)?;
    let day = number(da, "day", 1, days_in_month(year, month)).with_context(bad)?;
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut t = hms.split(':');
    let (Some(h), Some(mi), s, None) = (t.next(), t.next(), t.next(), t.next()) else {
        bail!(bad());
    };
    let hour = number(h, "hour", 0, 23).with_context(bad)?;
    let minute = number(mi, "minute", 0, 59).with_context(bad)?;
    let second = match s {
        Some(s) => number(s, "second", 0, 59).with_context(bad)?,
        None if fraction.is_some() => bail!(bad()),
        None => 0,
    };
    let millis = match fraction {
        None => 0,
        Some(f) if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) => {
            bail!(bad())
        }
        Some(f) => {
            let padded = format!("{f:0<3}");
            padded[..3].parse::<i64>().with_context(bad)?
        }
    };
    let days = days_from_civil(year, month, day);
    let local_ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis;
    Ok(local_ms - offset_ms)
}

/// Parses `--by-duration`, an ISO-8601 duration as Java's `Duration.parse`
/// reads it: `P[nD][T[nH][nM][n[.n]S]]`, case-insensitive. Returns
/// milliseconds (never negative).
pub(crate) fn parse_duration_ms(text: &str) -> anyhow::Result<i64> {
    let bad = || format!("invalid --by-duration {text:?}: expected e.g. PT1H30M, P1DT12H, PT0.5S");
    let upper = text.trim().to_ascii_uppercase();
    let body = upper.strip_prefix('P').with_context(bad)?;
    let (days_part, time_part) = match body.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                bail!(bad());
            }
            (d, t)
        }
        None => (body, ""),
    };
    if days_part.is_empty() && time_part.is_empty() {
        bail!(bad());
    }
    let mut total_ms: i64 = 0;
    let mut add = |value_ms: i64| -> anyhow::Result<()> {
        total_ms = total_ms.checked_add(value_ms).with_context(bad)?;
        Ok(())
    };
    if !days_part.is_empty() {
        let n = days_part.strip_suffix('D').with_context(bad)?;
        let days = number(n, "days", 0, 1_000_000).with_context(bad)?;
        add(days * 86_400_000)?;
    }
    let mut rest = time_part;
    let mut last_unit = 0;
    while !rest.is_empty() {
        let i = rest.find(['H', 'M', 'S']).with_context(bad)?;
        let (n, unit) = (&rest[..i], &rest[i..=i]);
        rest = &rest[i + 1..];
        let rank = match unit {
            "H" => 1,
            "M" => 2,
            _ => 3,
        };
        if rank <= last_unit {
            bail!(bad());
        }
        last_unit = rank;
        let ms = match unit {
            "H" => number(n, "hours", 0, 100_000_000).with_context(bad)? * 3_600_000,
            "M" => number(n, "minutes", 0, 1_000_000_000).with_context(bad)? * 60_000,
            _ => {
                let (whole, frac) = n.split_once('.').unwrap_or((n, ""));
                let secs = number(whole, "seconds", 0, 100_000_000_000).with_context(bad)?;
                let frac_ms = if frac.is_empty() {
                    0
                } else {
                    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                        bail!(bad());
                    }
                    format!("{frac:0<3}")[..3]
                        .parse::<i64>()
                        .with_context(bad)?
                };
                secs * 1000 + frac_ms
            }
        };
        add(ms)?;
    }
    Ok(total_ms)
}

/// What is known about one partition when its target offset is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartitionState {
    /// Log start offset.
    pub(crate) low: i64,
    /// Log end offset (high watermark).
    pub(crate) high: i64,
    /// The group's committed offset, if any.
    pub(crate) committed: Option<i64>,
    /// For [`ResetSpec::ToTimestamp`]: the first offset at or after the
    /// timestamp, `None` when every record is older.
    pub(crate) by_time: Option<i64>,
}

/// The outcome for one partition: the offset to commit and an optional
/// warning to show the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) offset: i64,
    pub(crate) warning: Option<String>,
}

/// Computes the offset `spec` resets a partition to. `label` names the
/// partition in messages (e.g. `orders-0`).
pub(crate) fn target_offset(
    spec: ResetSpec,
    state: PartitionState,
    label: &str,
) -> anyhow::Result<Target> {
    let PartitionState {
        low,
        high,
        committed,
        by_time,
    } = state;
    let clamp = |wanted: i64| -> Target {
        if wanted > high {
            Target {
                offset: high,
                warning: Some(format!(
                    "New offset ({wanted}) is higher than latest offset for topic partition \
                     {label}. Value will be set to {high}"
                )),
            }
        } else if wanted < low {
            Target {
                offset: low,
                warning: Some(format!(
                    "New offset ({wanted}) is lower than earliest offset for topic partition \
                     {label}. Value will be set to {low}"
                )),
            }
        } else {
            Target {
                offset: wanted,
                warning: None,
            }
        }
    };
    let quiet = |t: Target| Target { warning: None, ..t };
    Ok(match spec {
        ResetSpec::ToEarliest => quiet(clamp(low)),
        ResetSpec::ToLatest => quiet(clamp(high)),
        ResetSpec::ToCurrent => quiet(clamp(committed.unwrap_or(high))),
        ResetSpec::ToOffset(offset) => clamp(offset),
        ResetSpec::ShiftBy(n) => {
            let Some(current) = committed else {
                bail!(
                    "cannot shift the offset of {label}: the group has no committed offset for it"
                );
            };
            quiet(clamp(current.saturating_add(n)))
        }
        ResetSpec::ToTimestamp(_) => quiet(clamp(by_time.unwrap_or(high))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(low: i64, high: i64, committed: Option<i64>) -> PartitionState {
        PartitionState {
            low,
            high,
            committed,
            by_time: None,
        }
    }

    fn off(spec: ResetSpec, s: PartitionState) -> i64 {
        target_offset(spec, s, "t-0").unwrap().offset
    }

    #[test]
    fn topic_specs() {
        assert_eq!(
            parse_topic_spec("orders").unwrap(),
            TopicSpec {
                topic: "orders".into(),
                partitions: None
            }
        );
        assert_eq!(
            parse_topic_spec("orders:2, 0,2").unwrap(),
            TopicSpec {
                topic: "orders".into(),
                partitions: Some(vec![2, 0])
            }
        );
        assert!(parse_topic_spec(":1").is_err());
        assert!(parse_topic_spec("t:").is_err());
        assert!(parse_topic_spec("t:-1").is_err());
        assert!(parse_topic_spec("t:a").is_err());
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000").unwrap(), 0);
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.789").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.789Z").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T14:34:56.789+02:00").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T07:04:56.789-0530").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56").unwrap(),
            1_709_210_096_000
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:34").unwrap(),
            1_709_210_040_000
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.5").unwrap(),
            1_709_210_096_500
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.123456789").unwrap(),
            1_709_210_096_123
        );
        for bad in [
            "2023-02-29T00:00:00.000",
            "2024-13-01T00:00:00",
            "2024-01-01",
            "2024-01-01T25:00",
            "2024-01-01T00:00:00.",
            "24-01-01T00:00:00",
            "2024-01-01T00:00:00+5",
            "yesterday",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("PT10S").unwrap(), 10_000);
        assert_eq!(parse_duration_ms("pt1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("P1DT2H").unwrap(), 93_600_000);
        assert_eq!(parse_duration_ms("P2D").unwrap(), 172_800_000);
        assert_eq!(parse_duration_ms("PT0.25S").unwrap(), 250);
        for bad in ["", "P", "PT", "10S", "PT1S1H", "PT1X", "P1H", "PT-1S"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn earliest_latest_current() {
        let s = state(5, 20, Some(12));
        assert_eq!(off(ResetSpec::ToEarliest, s), 5);
        assert_eq!(off(ResetSpec::ToLatest, s), 20);
        assert_eq!(off(ResetSpec::ToCurrent, s), 12);
        assert_eq!(off(ResetSpec::ToCurrent, state(5, 20, None)), 20);
        // A commit below the log start (records deleted since) is clamped.
        assert_eq!(off(ResetSpec::ToCurrent, state(5, 20, Some(2))), 5);
    }

    #[test]
    fn to_offset_clamps_with_warning() {
        let s = state(5, 20, None);
        let t = target_offset(ResetSpec::ToOffset(10), s, "t-0").unwrap();
        assert_eq!(
            t,
            Target {
                offset: 10,
                warning: None
            }
        );
        let t = target_offset(ResetSpec::ToOffset(99), s, "t-0").unwrap();
        assert_eq!(t.offset, 20);
        assert!(t.warning.unwrap().contains("higher than latest"));
        let t = target_offset(ResetSpec::ToOffset(1), s, "t-0").unwrap();
        assert_eq!(t.offset, 5);
        assert!(t.warning.unwrap().contains("lower than earliest"));
    }

    #[test]
    fn shift_by() {
        let s = state(5, 20, Some(12));
        assert_eq!(off(ResetSpec::ShiftBy(3), s), 15);
        assert_eq!(off(ResetSpec::ShiftBy(-3), s), 9);
        assert_eq!(off(ResetSpec::ShiftBy(100), s), 20);
        assert_eq!(off(ResetSpec::ShiftBy(-100), s), 5);
        assert_eq!(off(ResetSpec::ShiftBy(i64::MAX), s), 20);
        let err = target_offset(ResetSpec::ShiftBy(1), state(0, 3, None), "t-0").unwrap_err();
        assert!(err.to_string().contains("no committed offset"));
    }

    #[test]
    fn by_timestamp() {
        let mut s = state(5, 20, Some(12));
        s.by_time = Some(8);
        assert_eq!(off(ResetSpec::ToTimestamp(0), s), 8);
        s.by_time = None;
        assert_eq!(off(ResetSpec::ToTimestamp(0), s), 20);
    }
}

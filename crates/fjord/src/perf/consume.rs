//! `fjord perf consume`: the load loop of kafka-consumer-perf-test.sh on
//! librdkafka.
//!
//! Unlike Kafka's tool it never joins a consumer group: it reads the topic's
//! partition count from metadata and `assign()`s every partition from the
//! beginning. That works against a broker without group coordination and
//! keeps rebalances out of the measurement. `group.id` is still configured
//! because librdkafka's consumer refuses to start without one, and offset
//! auto-commit is forced off so nothing is ever sent to a coordinator.
//!
//! Kafka's `rebalance.time.ms` column is kept for script compatibility; here
//! it is the set-up time (metadata, watermarks, assignment) before fetching.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use super::cpu::{BrokerCpu, BrokerCpuProbe};
use super::stats::{format_utc_millis, MB};
use super::{props, report_client_error, ConsumePerfArgs, ErrorFilter, OutputFormat, Reporter};

/// Kafka's header for the final result line.
const HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, \
                      nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

/// Header of the `--show-detailed-stats` rows (cumulative totals, interval rates).
const DETAIL_HEADER: &str = "time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec";

/// Consumer errors printed before further ones are only counted.
const MAX_PRINTED_ERRORS: u64 = 10;

/// Consumer context that prints client-level errors instead of routing them
/// to a logger nobody configured.
#[derive(Default)]
struct PerfConsumerContext {
    errors: Mutex<ErrorFilter>,
}

impl ClientContext for PerfConsumerContext {
    fn error(&self, error: KafkaError, reason: &str) {
        report_client_error(&self.errors, "consumer", &error, reason);
    }
}

impl ConsumerContext for PerfConsumerContext {}

/// The numbers of one consume run, in Kafka's columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct ConsumeSummary {
    start_time: String,
    end_time: String,
    start_ms: u64,
    end_ms: u64,
    data_consumed_mb: f64,
    mb_per_sec: f64,
    messages: u64,
    messages_per_sec: f64,
    rebalance_time_ms: u64,
    fetch_time_ms: u64,
    fetch_mb_per_sec: f64,
    fetch_messages_per_sec: f64,
}

impl ConsumeSummary {
    /// Derives the rates from raw counts, as Kafka's ConsumerPerformance does:
    /// overall rates over the whole run, fetch rates over the run minus set-up.
    fn new(start_ms: u64, end_ms: u64, setup_ms: u64, bytes: u64, messages: u64) -> Self {
        let elapsed_ms = end_ms.saturating_sub(start_ms);
        let fetch_ms = elapsed_ms.saturating_sub(setup_ms);
        let mb = bytes as f64 / MB;
        let rate = |amount: f64, ms: u64| {
            if ms == 0 {
                0.0
            } else {
                amount * 1000.0 / ms as f64
            }
        };
        Self {
            start_time: format_utc_millis(start_ms),
            end_time: format_utc_millis(end_ms),
            start_ms,
            end_ms,
            data_consumed_mb: mb,
            mb_per_sec: rate(mb, elapsed_ms),
            messages,
            messages_per_sec: rate(messages as f64, elapsed_ms),
            rebalance_time_ms: setup_ms,
            fetch_time_ms: fetch_ms,
            fetch_mb_per_sec: rate(mb, fetch_ms),
            fetch_messages_per_sec: rate(messages as f64, fetch_ms),
        }
    }

    /// Kafka's result row (goes under [`HEADER`]).
    fn row(&self) -> String {
        format!(
            "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
            self.start_time,
            self.end_time,
            self.data_consumed_mb,
            self.mb_per_sec,
            self.messages,
            self.messages_per_sec,
            self.rebalance_time_ms,
            self.fetch_time_ms,
            self.fetch_mb_per_sec,
            self.fetch_messages_per_sec
        )
    }
}

/// The JSON object printed with `--output json`.
#[derive(Serialize)]
struct ConsumeReport<'a> {
    tool: &'static str,
    topic: &'a str,
    partitions: usize,
    expected_messages: u64,
    timed_out: bool,
    #[serde(flatten)]
    summary: &'a ConsumeSummary,
    broker_cpu: Option<&'a BrokerCpu>,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the consume benchmark to completion (blocking).
pub(super) fn run(args: ConsumePerfArgs) -> anyhow::Result<()> {
    let reporter = Reporter::new(args.common.output);
    let file_props = match &args.consumer_config {
        Some(path) => props::load_properties_file(path)?,
        None => Vec::new(),
    };
    let cli_props = props::parse_kv_list(&args.consumer_props).context("--consumer-props")?;
    let defaults = [
        ("group.id", args.group.as_str()),
        ("auto.offset.reset", "earliest"),
        // librdkafka stops fetching once `queued.min.messages` are buffered
        // and then waits this long (default 1000 ms) before fetching again:
        // a tight loop drains the buffer in tens of milliseconds and would
        // sit idle for the rest of every second (measured: 7x lower throughput).
        ("fetch.queue.backoff.ms", "10"),
    ];
    let mut settings = props::resolve(
        &defaults,
        &file_props,
        &cli_props,
        args.common.bootstrap_server.as_deref(),
    );
    // No groups: there is nothing to commit to, whatever the properties say.
    for key in ["enable.auto.commit", "enable.auto.offset.store"] {
        if settings
            .entries
            .insert(key.into(), "false".into())
            .is_some_and(|v| v != "false")
        {
            settings.notes.push(format!(
                "{key} forced to false: perf consume joins no group"
            ));
        }
    }
    for note in &settings.notes {
        eprintln!("note: {note}");
    }
    let timeout = Duration::from_millis(args.timeout.max(1));

    let cpu = BrokerCpuProbe::start(args.common.broker_pid, |n| eprintln!("{n}"))?;
    let start_ms = epoch_ms();
    let start = Instant::now();
    let consumer: BaseConsumer<PerfConsumerContext> = settings
        .to_client_config()
        .create_with_context(PerfConsumerContext::default())
        .with_context(|| format!("creating a consumer for {}", settings.bootstrap))?;

    let metadata = consumer
        .fetch_metadata(Some(&args.topic), timeout)
        .with_context(|| {
            format!(
                "fetching metadata of {} from {}",
                args.topic, settings.bootstrap
            )
        })?;
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == args.topic) else {
        bail!("topic {} not found in metadata", args.topic);
    };
    if let Some(err) = topic.error() {
        bail!(
            "topic {}: {:?}",
            args.topic,
            rdkafka::types::RDKafkaErrorCode::from(err)
        );
    }
    let partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    if partitions.is_empty() {
        bail!("topic {} has no partitions", args.topic);
    }
    let expected = match args.messages {
        Some(n) => n,
        None => {
            let mut total = 0u64;
            for &p in &partitions {
                let (low, high) = consumer
                    .fetch_watermarks(&args.topic, p, timeout)
                    .with_context(|| format!("listing offsets of {}-{p}", args.topic))?;
                total += u64::try_from(high.saturating_sub(low)).unwrap_or(0);
            }
            total
        }
    };
    let mut assignment = TopicPartitionList::with_capacity(partitions.len());
    for &p in &partitions {
        assignment.add_partition_offset(&args.topic, p, Offset::Beginning)?;
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;
    let setup = start.elapsed();

    if args.show_detailed_stats {
        reporter.progress(DETAIL_HEADER);
    }
    let interval = Duration::from_millis(args.common.reporting_interval.max(1));
    let (mut messages, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut last_message = Instant::now();
    let mut end = start.elapsed();
    let (mut window_start, mut window_messages, mut window_bytes) = (last_message, 0u64, 0u64);
    let mut timed_out = false;
    while messages < expected {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let size = (m.payload_len() + m.key_len()) as u64;
                messages += 1;
                bytes += size;
                window_messages += 1;
                window_bytes += size;
                last_message = Instant::now();
                end = start.elapsed();
            }
            Some(Err(e)) => {
                errors += 1;
                if errors <= MAX_PRINTED_ERRORS {
                    eprintln!("consumer error: {e}");
                }
            }
            None => {}
        }
        if last_message.elapsed() > timeout {
            timed_out = true;
            break;
        }
        if args.show_detailed_stats && window_start.elapsed() >= interval {
            let now = Instant::now();
            let secs = now.duration_since(window_start).as_secs_f64();
            reporter.progress(&format!(
                "{}, {:.4}, {:.4}, {}, {:.4}",
                format_utc_millis(epoch_ms()),
                bytes as f64 / MB,
                window_bytes as f64 / MB / secs,
                messages,
                window_messages as f64 / secs
            ));
            (window_start, window_messages, window_bytes) = (now, 0, 0);
        }
    }
    if !timed_out {
        end = start.elapsed();
    }
    // Times on the wall clock, derived from the monotonic one.
    let end_ms = start_ms + end.as_millis() as u64;
    let setup_ms = (setup.as_millis() as u64).min(end_ms - start_ms);
    let summary = ConsumeSummary::new(start_ms, end_ms, setup_ms, bytes, messages);
    let broker_cpu = cpu.and_then(|probe| probe.finish(bytes));

    if timed_out {
        eprintln!(
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. \
             You can use the --timeout option to increase the timeout.",
            args.timeout
        );
    }
    match args.common.output {
        OutputFormat::Text => {
            println!("{HEADER}");
            println!("{}", summary.row());
            if let Some(cpu) = &broker_cpu {
                println!("{cpu}");
            }
        }
        OutputFormat::Json => {
            let report = ConsumeReport {
                tool: "perf consume",
                topic: &args.topic,
                partitions: partitions.len(),
                expected_messages: expected,
                timed_out,
                summary: &summary,
                broker_cpu: broker_cpu.as_ref(),
            };
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    if timed_out {
        bail!(
            "consumed {messages} of {expected} messages before the {} ms timeout",
            args.timeout
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_rates_follow_kafka() {
        // 2 s in total, 0.5 s of it set-up, 64 MiB in 1000 messages.
        let start = 1_709_251_199_000;
        let s = ConsumeSummary::new(start, start + 2000, 500, 64 * 1024 * 1024, 1000);
        assert_eq!(s.data_consumed_mb, 64.0);
        assert_eq!(s.mb_per_sec, 32.0);
        assert_eq!(s.messages_per_sec, 500.0);
        assert_eq!(s.fetch_time_ms, 1500);
        assert!((s.fetch_mb_per_sec - 64.0 / 1.5).abs() < 1e-9);
        assert_eq!(
            s.row(),
            "2024-02-29 23:59:59:000, 2024-03-01 00:00:01:000, 64.0000, 32.0000, 1000, 500.0000, \
             500, 1500, 42.6667, 666.6667"
        );
    }

    #[test]
    fn empty_run_has_zero_rates() {
        let s = ConsumeSummary::new(1000, 1000, 0, 0, 0);
        assert_eq!(
            (s.mb_per_sec, s.messages_per_sec, s.fetch_mb_per_sec),
            (0.0, 0.0, 0.0)
        );
    }
}

//! `fjord perf produce|consume`: load generators modelled on Apache Kafka's
//! `kafka-producer-perf-test.sh` and `kafka-consumer-perf-test.sh`.
//!
//! Both tools reach the cluster only through `rdkafka` (librdkafka), exactly as
//! a third-party client would, so the numbers describe Fjord as its users see
//! it, and the very same command can be pointed at an Apache Kafka cluster for
//! a like-for-like comparison. Flag names and output lines follow Kafka's tools
//! so that existing benchmark scripts and habits carry over.
//!
//! Layout: this file holds the command line and the dispatch; `perf/produce.rs`
//! and `perf/consume.rs` the two load loops; `perf/stats.rs` the pure
//! arithmetic (windows, percentiles, throttling, time formatting);
//! `perf/props.rs` client-configuration handling; `perf/cpu.rs` the broker CPU
//! probe that reads `/proc/PID/stat`.

use std::path::PathBuf;

mod consume;
mod cpu;
mod group;
mod produce;
mod props;
mod stats;

/// The `fjord perf` subcommands; `main.rs` dispatches `Command::Perf` here.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum PerfCommand {
    /// Produce N records of a fixed size as fast as allowed and report
    /// throughput and send-to-acknowledgement latency (like kafka-producer-perf-test.sh).
    Produce(ProducePerfArgs),
    /// Read N messages from every partition of a topic, from the beginning,
    /// and report throughput (like kafka-consumer-perf-test.sh).
    Consume(ConsumePerfArgs),
    /// Kill one member of a consumer group (SIGKILL, no LeaveGroup) and time
    /// until the survivors own every partition again, per session timeout.
    GroupFailover(group::GroupFailoverArgs),
    /// Time M members forming a group (all assigned), then one more joining.
    GroupRebalance(group::GroupRebalanceArgs),
    /// Synchronous OffsetCommit throughput and latency, optionally with
    /// concurrent committers.
    OffsetCommit(group::OffsetCommitArgs),
    /// Internal: one group member that consumes until killed (the victim of
    /// group-failover).
    #[command(hide = true)]
    GroupMember(group::GroupMemberArgs),
}

/// Runs one `fjord perf` subcommand to completion.
///
/// The load loops are blocking (librdkafka's own threads do the I/O), so they
/// run on tokio's blocking pool instead of stalling the async runtime.
pub(crate) async fn run(cmd: PerfCommand) -> anyhow::Result<()> {
    match cmd {
        PerfCommand::Produce(args) => {
            tokio::task::spawn_blocking(move || produce::run(args)).await?
        }
        PerfCommand::Consume(args) => {
            tokio::task::spawn_blocking(move || consume::run(args)).await?
        }
        PerfCommand::GroupFailover(args) => {
            tokio::task::spawn_blocking(move || group::run_failover(args)).await?
        }
        PerfCommand::GroupRebalance(args) => {
            tokio::task::spawn_blocking(move || group::run_rebalance(args)).await?
        }
        PerfCommand::OffsetCommit(args) => {
            tokio::task::spawn_blocking(move || group::run_offset_commit(args)).await?
        }
        PerfCommand::GroupMember(args) => {
            tokio::task::spawn_blocking(move || group::run_member(args)).await?
        }
    }
}

/// How the final result is printed: Kafka-style text lines, or one JSON object
/// on stdout for scripts (progress lines then go to stderr).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    /// Kafka-style text (the default).
    #[default]
    Text,
    /// One JSON summary object on stdout; progress lines on stderr.
    Json,
}

/// Options shared by both perf tools, so they are spelled the same way in both.
#[derive(clap::Args, Debug)]
pub(crate) struct CommonPerfArgs {
    /// Broker(s) to bootstrap from, host:port[,host:port...]. Default
    /// 127.0.0.1:9092; a bootstrap.servers given in the properties is used when
    /// this flag is absent.
    #[arg(
        long = "bootstrap-server",
        alias = "broker-list",
        value_name = "HOST:PORT"
    )]
    pub(crate) bootstrap_server: Option<String>,

    /// PID of the broker whose CPU time to report. When absent, the single
    /// local `fjord server` process is used if there is exactly one.
    #[arg(long = "broker-pid", value_name = "PID")]
    pub(crate) broker_pid: Option<u32>,

    /// Print the result as Kafka-style text or as one JSON object.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) output: OutputFormat,

    /// Interval between progress lines, in milliseconds.
    #[arg(long = "reporting-interval", value_name = "MS", default_value_t = 5000)]
    pub(crate) reporting_interval: u64,
}

/// Flags of `fjord perf produce`; names follow kafka-producer-perf-test.sh.
#[derive(clap::Args, Debug)]
pub(crate) struct ProducePerfArgs {
    /// Topic to produce to.
    #[arg(long)]
    pub(crate) topic: String,

    /// Number of records to produce.
    #[arg(long = "num-records", value_name = "N")]
    pub(crate) num_records: u64,

    /// Size of each record value in bytes. The payload (random letters A-Z, as
    /// Kafka's tool makes it) is generated once and reused for every record.
    #[arg(long = "record-size", value_name = "BYTES")]
    pub(crate) record_size: usize,

    /// Target rate in records per second; -1 (any negative value) means unthrottled.
    #[arg(
        long,
        value_name = "RECORDS_PER_SEC",
        allow_negative_numbers = true,
        default_value_t = -1.0
    )]
    pub(crate) throughput: f64,

    /// Producer configuration as KEY=VALUE pairs, e.g. acks=all
    /// compression.type=lz4 linger.ms=5 batch.size=1000000 (librdkafka names;
    /// Kafka's common producer names are the same). Applied after --producer.config.
    #[arg(long = "producer-props", value_name = "KEY=VALUE", num_args = 1..)]
    pub(crate) producer_props: Vec<String>,

    /// Producer configuration properties file (Java .properties syntax).
    #[arg(long = "producer.config", value_name = "FILE")]
    pub(crate) producer_config: Option<PathBuf>,

    /// Produce inside transactions with this `transactional.id` (as
    /// kafka-producer-perf-test.sh's flag), committing every --transaction-size records.
    #[arg(long = "transactional-id", value_name = "ID")]
    pub(crate) transactional_id: Option<String>,

    /// Records per transaction when --transactional-id is given.
    #[arg(long = "transaction-size", value_name = "N", default_value_t = 100)]
    pub(crate) transaction_size: u64,

    /// Options shared with the other perf tool.
    #[command(flatten)]
    pub(crate) common: CommonPerfArgs,
}

/// Flags of `fjord perf consume`; names follow kafka-consumer-perf-test.sh.
///
/// The consumer never joins a consumer group: it assigns itself every
/// partition of the topic from the beginning (the broker need not implement
/// groups, and a rebalance would only add noise to the measurement).
#[derive(clap::Args, Debug)]
pub(crate) struct ConsumePerfArgs {
    /// Topic to consume from.
    #[arg(long)]
    pub(crate) topic: String,

    /// Number of messages to consume. Default: everything the topic holds when
    /// the run starts (the sum of high watermark minus log start, per partition).
    #[arg(long, value_name = "N")]
    pub(crate) messages: Option<u64>,

    /// Give up after this many milliseconds without receiving a message.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub(crate) timeout: u64,

    /// Consumer configuration properties file (Java .properties syntax).
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub(crate) consumer_config: Option<PathBuf>,

    /// Consumer configuration as KEY=VALUE pairs (librdkafka names), applied
    /// after --consumer.config, e.g. fetch.max.bytes=52428800.
    #[arg(long = "consumer-props", value_name = "KEY=VALUE", num_args = 1..)]
    pub(crate) consumer_props: Vec<String>,

    /// group.id to configure. Only set because librdkafka insists on one; no
    /// group is joined and no offset is committed.
    #[arg(long, value_name = "GROUP", default_value = "fjord-perf-consumer")]
    pub(crate) group: String,

    /// Also print a progress row every --reporting-interval.
    #[arg(long = "show-detailed-stats")]
    pub(crate) show_detailed_stats: bool,

    /// Options shared with the other perf tool.
    #[command(flatten)]
    pub(crate) common: CommonPerfArgs,
}

/// Where progress lines go: stdout in text mode (as Kafka's tools do), stderr
/// in JSON mode so stdout carries nothing but the JSON object.
#[derive(Clone, Copy, Debug)]
struct Reporter {
    json: bool,
}

impl Reporter {
    fn new(format: OutputFormat) -> Self {
        Self {
            json: format == OutputFormat::Json,
        }
    }

    /// Prints a progress or informational line.
    fn progress(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

/// Filters librdkafka's client-level errors before they are printed: it
/// reports every failed reconnect (several per second while a broker is
/// down), which would bury the results. Consecutive errors of the same kind
/// are shown once and at most [`ErrorFilter::MAX_PRINTED`] are shown in all.
#[derive(Debug, Default)]
struct ErrorFilter {
    last_kind: Option<String>,
    printed: u32,
}

impl ErrorFilter {
    /// Client errors printed before the rest are suppressed.
    const MAX_PRINTED: u32 = 10;

    /// Returns the line to print for an error of `kind` (e.g. the error code)
    /// described by `line`, or `None` to stay quiet.
    fn admit(&mut self, kind: &str, line: &str) -> Option<String> {
        if self.last_kind.as_deref() == Some(kind) {
            return None;
        }
        self.last_kind = Some(kind.to_string());
        self.printed = self.printed.saturating_add(1);
        match self.printed {
            n if n <= Self::MAX_PRINTED => Some(line.to_string()),
            n if n == Self::MAX_PRINTED + 1 => Some("(further client errors suppressed)".into()),
            _ => None,
        }
    }
}

/// Shared `ClientContext::error` body for both tools: prints filtered errors to stderr.
fn report_client_error(
    filter: &std::sync::Mutex<ErrorFilter>,
    who: &str,
    error: &rdkafka::error::KafkaError,
    reason: &str,
) {
    let kind = format!("{:?}", error.rdkafka_error_code());
    let line = format!("{who} error: {error}: {reason}");
    let admitted = filter
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .admit(&kind, &line);
    if let Some(line) = admitted {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn error_filter_dedups_and_caps() {
        let mut f = ErrorFilter::default();
        assert_eq!(f.admit("A", "a1").as_deref(), Some("a1"));
        assert_eq!(f.admit("A", "a2"), None);
        assert_eq!(f.admit("B", "b1").as_deref(), Some("b1"));
        assert_eq!(f.admit("A", "a3").as_deref(), Some("a3"));
        let mut printed = 3;
        for i in 0..100 {
            let kind = if i % 2 == 0 { "B" } else { "A" };
            if f.admit(kind, "x").is_some() {
                printed += 1;
            }
        }
        assert_eq!(printed, ErrorFilter::MAX_PRINTED + 1);
    }

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: PerfCommand,
    }

    #[test]
    fn parses_kafka_style_produce_flags() {
        let cli = Cli::try_parse_from([
            "perf",
            "produce",
            "--topic",
            "t",
            "--num-records",
            "1000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            "acks=all",
            "linger.ms=5",
            "--producer.config",
            "p.properties",
            "--bootstrap-server",
            "127.0.0.1:1234",
        ])
        .unwrap();
        let PerfCommand::Produce(a) = cli.cmd else {
            panic!("not produce")
        };
        assert_eq!(a.topic, "t");
        assert_eq!(a.num_records, 1000);
        assert_eq!(a.record_size, 100);
        assert_eq!(a.throughput, -1.0);
        assert_eq!(a.producer_props, ["acks=all", "linger.ms=5"]);
        assert_eq!(a.producer_config, Some(PathBuf::from("p.properties")));
        assert_eq!(a.common.bootstrap_server.as_deref(), Some("127.0.0.1:1234"));
        assert_eq!(a.common.output, OutputFormat::Text);
        assert_eq!(a.common.reporting_interval, 5000);
    }

    #[test]
    fn parses_consume_flags() {
        let cli = Cli::try_parse_from([
            "perf",
            "consume",
            "--topic",
            "t",
            "--messages",
            "10",
            "--timeout",
            "500",
            "--output",
            "json",
            "--broker-list",
            "h:1",
        ])
        .unwrap();
        let PerfCommand::Consume(a) = cli.cmd else {
            panic!("not consume")
        };
        assert_eq!(a.messages, Some(10));
        assert_eq!(a.timeout, 500);
        assert_eq!(a.common.output, OutputFormat::Json);
        assert_eq!(a.common.bootstrap_server.as_deref(), Some("h:1"));
        assert_eq!(a.group, "fjord-perf-consumer");
    }

    #[test]
    fn produce_requires_its_kafka_flags() {
        assert!(Cli::try_parse_from(["perf", "produce", "--topic", "t"]).is_err());
    }
}

//! `fjord consume`: print records of a topic, modelled on Apache Kafka's
//! `kafka-console-consumer.sh` and its `DefaultMessageFormatter`.
//!
//! Without `--group` the consumer joins no group: it `assign()`s every
//! partition of the topic (or the one given with `--partition`) at the
//! requested position and commits nothing. (Kafka's tool would invent a
//! `console-consumer-NNNNN` group instead; not leaving a trail of throwaway
//! groups is the better default.) With `--group` it `subscribe()`s, takes
//! part in the group's rebalances, starts from the group's committed offsets
//! (or `auto.offset.reset`: earliest with `--from-beginning`, else latest) and
//! commits what it printed.
//!
//! It stops after `--max-messages`, after `--timeout-ms` without a record
//! (in a group counted from the first assignment, so a slow join does not
//! end the run early), or on Ctrl-C, and then reports `Processed a total of N messages` on stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Timestamp;
use serde::Serialize;

use super::common::{self, ConnectionArgs, OutputFormat, QuietContext};

/// How long one poll waits, so Ctrl-C and timeouts are noticed promptly.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long `--timeout-ms` waits for a group to assign partitions before its
/// idle clock starts anyway.
const GROUP_JOIN_GRACE: Duration = Duration::from_secs(30);

/// Flags of `fjord consume`; names follow kafka-console-consumer.sh.
#[derive(clap::Args, Debug)]
pub(crate) struct ConsumeArgs {
    /// Connection flags.
    #[command(flatten)]
    pub(crate) conn: ConnectionArgs,

    /// The topic to consume from.
    #[arg(long, value_name = "TOPIC")]
    pub(crate) topic: String,

    /// The consumer group to join (subscribe, commit offsets). Without it no
    /// group is joined and nothing is committed.
    #[arg(long, value_name = "GROUP")]
    pub(crate) group: Option<String>,

    /// Start with the earliest message present rather than the latest.
    #[arg(long = "from-beginning")]
    pub(crate) from_beginning: bool,

    /// Consume only this partition (without --group).
    #[arg(long, value_name = "P")]
    pub(crate) partition: Option<i32>,

    /// With --partition: the offset to start from, a non-negative number,
    /// `earliest` or `latest` (default latest).
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    pub(crate) offset: Option<String>,

    /// Exit after printing this many messages.
    #[arg(long = "max-messages", value_name = "N")]
    pub(crate) max_messages: Option<u64>,

    /// Exit when no message arrives for this many milliseconds.
    #[arg(long = "timeout-ms", value_name = "MS")]
    pub(crate) timeout_ms: Option<u64>,

    /// read_uncommitted (default, as Kafka's tool) or read_committed.
    #[arg(long = "isolation-level", value_name = "LEVEL", value_parser = ["read_committed", "read_uncommitted"])]
    pub(crate) isolation_level: Option<String>,

    /// Formatter properties, KEY=VALUE (repeatable): print.key, print.value,
    /// print.headers, print.timestamp, print.partition, print.offset,
    /// key.separator, line.separator, headers.separator, null.literal.
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) property: Vec<String>,

    /// Consumer configuration, KEY=VALUE (repeatable), applied after
    /// --command-config and --consumer.config.
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    pub(crate) consumer_property: Vec<String>,

    /// Consumer configuration properties file (Java .properties syntax).
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub(crate) consumer_config: Option<PathBuf>,

    /// Accepted for compatibility; records are raw bytes, so there is
    /// nothing that could fail to deserialize.
    #[arg(long = "skip-message-on-error")]
    pub(crate) skip_message_on_error: bool,

    /// Print records with the formatter (text) or one JSON object per line.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,
}

/// Where to start reading an assigned partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

impl StartOffset {
    fn parse(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" => Ok(StartOffset::Earliest),
            "latest" => Ok(StartOffset::Latest),
            other => match other.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(StartOffset::At(n)),
                _ => bail!("--offset {s}: expected a non-negative number, 'earliest' or 'latest'"),
            },
        }
    }

    fn to_rdkafka(self) -> Offset {
        match self {
            StartOffset::Earliest => Offset::Beginning,
            StartOffset::Latest => Offset::End,
            StartOffset::At(n) => Offset::Offset(n),
        }
    }
}

/// How the consumer is attached to the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// Join `group` and subscribe.
    Group { group: String },
    /// Assign the partitions (all, or one) at `start`.
    Assign {
        partition: Option<i32>,
        start: StartOffset,
    },
}

impl ConsumeArgs {
    fn mode(&self) -> anyhow::Result<Mode> {
        ensure!(
            self.offset.is_none() || self.partition.is_some(),
            "The partition is required when offset is specified."
        );
        ensure!(
            !(self.from_beginning && self.offset.is_some()),
            "Options from-beginning and offset cannot be specified together."
        );
        if let Some(p) = self.partition {
            ensure!(p >= 0, "--partition must not be negative");
        }
        if let Some(group) = &self.group {
            ensure!(
                self.partition.is_none(),
                "Options group and partition cannot be specified together."
            );
            ensure!(!group.is_empty(), "--group must not be empty");
            return Ok(Mode::Group {
                group: group.clone(),
            });
        }
        let start = match &self.offset {
            Some(o) => StartOffset::parse(o)?,
            None if self.from_beginning => StartOffset::Earliest,
            None => StartOffset::Latest,
        };
        Ok(Mode::Assign {
            partition: self.partition,
            start,
        })
    }
}

/// Kafka's DefaultMessageFormatter settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Formatter {
    print_timestamp: bool,
    print_key: bool,
    print_offset: bool,
    print_partition: bool,
    print_headers: bool,
    print_value: bool,
    key_separator: Vec<u8>,
    line_separator: Vec<u8>,
    headers_separator: Vec<u8>,
    null_literal: Vec<u8>,
}

impl Default for Formatter {
    fn default() -> Self {
        Formatter {
            print_timestamp: false,
            print_key: false,
            print_offset: false,
            print_partition: false,
            print_headers: false,
            print_value: true,
            key_separator: b"\t".to_vec(),
            line_separator: b"\n".to_vec(),
            headers_separator: b",".to_vec(),
            null_literal: b"null".to_vec(),
        }
    }
}

fn parse_bool(key: &str, value: &str) -> anyhow::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => bail!("--property {key}={value}: expected true or false"),
    }
}

impl Formatter {
    /// Builds the formatter from `--property` pairs; unknown keys are warned about.
    pub(crate) fn from_properties(props: &[(String, String)]) -> anyhow::Result<Self> {
        let mut f = Formatter::default();
        for (k, v) in props {
            match k.as_str() {
                "print.timestamp" => f.print_timestamp = parse_bool(k, v)?,
                "print.key" => f.print_key = parse_bool(k, v)?,
                "print.offset" => f.print_offset = parse_bool(k, v)?,
                "print.partition" => f.print_partition = parse_bool(k, v)?,
                "print.headers" => f.print_headers = parse_bool(k, v)?,
                "print.value" => f.print_value = parse_bool(k, v)?,
                "key.separator" => f.key_separator = v.as_bytes().to_vec(),
                "line.separator" => f.line_separator = v.as_bytes().to_vec(),
                "headers.separator" => f.headers_separator = v.as_bytes().to_vec(),
                "null.literal" => f.null_literal = v.as_bytes().to_vec(),
                "key.deserializer" | "value.deserializer" | "headers.deserializer" => {
                    eprintln!("warning: ignoring --property {k}: records are printed as raw bytes")
                }
                other => eprintln!("warning: ignoring unknown --property {other}"),
            }
        }
        Ok(f)
    }

    fn separator(&self, out: &mut Vec<u8>, more_columns: bool) {
        if more_columns {
            out.extend_from_slice(&self.key_separator);
        } else {
            out.extend_from_slice(&self.line_separator);
        }
    }

    fn bytes_or_null(&self, out: &mut Vec<u8>, bytes: Option<&[u8]>) {
        out.extend_from_slice(bytes.unwrap_or(&self.null_literal));
    }

    /// Appends one record exactly as Kafka's DefaultMessageFormatter writes it.
    pub(crate) fn write(&self, out: &mut Vec<u8>, r: &RecordView<'_>) {
        if self.print_timestamp {
            match r.timestamp {
                Timestamp::NotAvailable => out.extend_from_slice(b"NO_TIMESTAMP"),
                Timestamp::CreateTime(t) => {
                    out.extend_from_slice(format!("CreateTime:{t}").as_bytes())
                }
                Timestamp::LogAppendTime(t) => {
                    out.extend_from_slice(format!("LogAppendTime:{t}").as_bytes())
                }
            }
            self.separator(
                out,
                self.print_partition
                    || self.print_offset
                    || self.print_headers
                    || self.print_key
                    || self.print_value,
            );
        }
        if self.print_partition {
            out.extend_from_slice(format!("Partition:{}", r.partition).as_bytes());
            self.separator(
                out,
                self.print_offset || self.print_headers || self.print_key || self.print_value,
            );
        }
        if self.print_offset {
            out.extend_from_slice(format!("Offset:{}", r.offset).as_bytes());
            self.separator(
                out,
                self.print_headers || self.print_key || self.print_value,
            );
        }
        if self.print_headers {
            if r.headers.is_empty() {
                out.extend_from_slice(b"NO_HEADERS");
            } else {
                for (i, (k, v)) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(&self.headers_separator);
                    }
                    out.extend_from_slice(k.as_bytes());
                    out.push(b':');
                    self.bytes_or_null(out, *v);
                }
            }
            self.separator(out, self.print_key || self.print_value);
        }
        if self.print_key {
            self.bytes_or_null(out, r.key);
            self.separator(out, self.print_value);
        }
        if self.print_value {
            self.bytes_or_null(out, r.value);
            out.extend_from_slice(&self.line_separator);
        }
    }
}

/// The parts of a consumed record the output needs.
#[derive(Debug, Clone)]
pub(crate) struct RecordView<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: Timestamp,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl<'a> RecordView<'a> {
    fn from_message(m: &'a BorrowedMessage<'a>) -> Self {
        let headers = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        RecordView {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp(),
            key: m.key(),
            value: m.payload(),
            headers,
        }
    }
}

/// One record as a JSON line (`--output json`). Keys, values and header
/// values are text (invalid UTF-8 sequences replaced).
#[derive(Debug, Serialize)]
struct JsonRecord {
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    timestamp_type: &'static str,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<JsonHeader>,
}

#[derive(Debug, Serialize)]
struct JsonHeader {
    key: String,
    value: Option<String>,
}

fn json_line(r: &RecordView<'_>) -> String {
    let (timestamp, timestamp_type) = match r.timestamp {
        Timestamp::NotAvailable => (None, "NO_TIMESTAMP"),
        Timestamp::CreateTime(t) => (Some(t), "CreateTime"),
        Timestamp::LogAppendTime(t) => (Some(t), "LogAppendTime"),
    };
    let record = JsonRecord {
        topic: r.topic.to_string(),
        partition: r.partition,
        offset: r.offset,
        timestamp,
        timestamp_type,
        key: r.key.map(common::text),
        value: r.value.map(common::text),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| JsonHeader {
                key: k.to_string(),
                value: v.map(common::text),
            })
            .collect(),
    };
    serde_json::to_string(&record).unwrap_or_default()
}

fn client_settings(args: &ConsumeArgs, mode: &Mode) -> anyhow::Result<common::ClientSettings> {
    let mut settings = common::ClientSettings::from_connection(&args.conn)?;
    if let Some(path) = &args.consumer_config {
        settings.extend(common::load_properties(path)?);
    }
    settings.extend(common::parse_kv_list(
        "--consumer-property",
        &args.consumer_property,
    )?);
    match &args.isolation_level {
        Some(level) => settings.set("isolation.level", level),
        None => settings.set_default("isolation.level", "read_uncommitted"),
    }
    settings.set("enable.partition.eof", "false");
    match mode {
        Mode::Group { group } => {
            settings.set("group.id", group);
            // Offsets are stored by hand, after a record is printed, so what
            // is committed is exactly what was printed (librdkafka's own store
            // can run ahead of the application with prefetched records).
            settings.set("enable.auto.offset.store", "false");
            if args.from_beginning {
                settings.set("auto.offset.reset", "earliest");
            } else {
                settings.set_default("auto.offset.reset", "latest");
            }
        }
        Mode::Assign { .. } => {
            // librdkafka wants a group.id even for assign(); nothing is joined
            // or committed with it.
            settings.set_default("group.id", "fjord-console-consumer");
            settings.set("enable.auto.commit", "false");
            settings.set("enable.auto.offset.store", "false");
        }
    }
    Ok(settings)
}

/// Runs `fjord consume` until done or Ctrl-C.
pub(crate) async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let mut task = tokio::task::spawn_blocking(move || run_blocking(args, &stop_flag));
    tokio::select! {
        result = &mut task => result?,
        _ = tokio::signal::ctrl_c() => {
            stop.store(true, Ordering::Relaxed);
            task.await?
        }
    }
}

fn is_fatal(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::Fatal
    )
}

fn run_blocking(args: ConsumeArgs, stop: &AtomicBool) -> anyhow::Result<()> {
    let mode = args.mode()?;
    let props = common::parse_kv_list("--property", &args.property)?;
    let formatter = Formatter::from_properties(&props)?;
    let settings = client_settings(&args, &mode)?;
    let bootstrap = settings.bootstrap(args.conn.bootstrap_server.as_deref());
    let consumer: BaseConsumer<QuietContext> = settings
        .to_client_config(&bootstrap)
        .create_with_context(QuietContext::default())
        .context("creating the consumer")?;
    let topic = args.topic.as_str();
    let metadata = common::fetch_metadata(consumer.client(), Some(topic), &bootstrap, || {
        consumer.context().last_error()
    })?;
    let partitions: Vec<i32> = match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() => t.partitions().iter().map(|p| p.id()).collect(),
        Some(t) => {
            let code = RDKafkaErrorCode::from(t.error().expect("checked"));
            if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                bail!("Topic '{topic}' does not exist");
            }
            bail!("Topic '{topic}': {code}");
        }
        None => bail!("Topic '{topic}' does not exist"),
    };
    match &mode {
        Mode::Group { .. } => consumer
            .subscribe(&[topic])
            .with_context(|| format!("subscribing to {topic}"))?,
        Mode::Assign { partition, start } => {
            let chosen: Vec<i32> = match partition {
                Some(p) => {
                    ensure!(
                        partitions.contains(p),
                        "Partition {p} does not exist in topic {topic} (it has {} partitions)",
                        partitions.len()
                    );
                    vec![*p]
                }
                None => partitions.clone(),
            };
            let mut list = TopicPartitionList::with_capacity(chosen.len());
            for p in chosen {
                list.add_partition_offset(topic, p, start.to_rdkafka())?;
            }
            consumer.assign(&list).context("assigning partitions")?;
        }
    }

    let json = args.output == OutputFormat::Json;
    let stdout = std::io::stdout();
    let flush_each = stdout.is_terminal();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut buf = Vec::with_capacity(4096);
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut last_activity = Instant::now();
    // In a group, joining takes a while (rebalance delay, session set-up);
    // the idle clock starts when partitions are first assigned, or at the
    // latest after GROUP_JOIN_GRACE.
    let mut waiting_for_assignment = matches!(mode, Mode::Group { .. });
    let started = Instant::now();
    let mut count = 0u64;
    let mut last_error: Option<String> = None;
    let mut outcome: anyhow::Result<()> = Ok(());
    while !stop.load(Ordering::Relaxed) {
        if args.max_messages.is_some_and(|max| count >= max) {
            break;
        }
        match consumer.poll(POLL_INTERVAL) {
            None => {
                if out.flush().is_err() {
                    break;
                }
                if waiting_for_assignment {
                    let assigned = consumer.assignment().is_ok_and(|a| a.count() > 0);
                    if assigned || started.elapsed() >= GROUP_JOIN_GRACE {
                        waiting_for_assignment = false;
                    }
                    last_activity = Instant::now();
                    continue;
                }
                if idle_limit.is_some_and(|limit| last_activity.elapsed() >= limit) {
                    eprintln!(
                        "No message within {} ms; stopping.",
                        args.timeout_ms.unwrap_or_default()
                    );
                    break;
                }
            }
            Some(Ok(message)) => {
                waiting_for_assignment = false;
                let view = RecordView::from_message(&message);
                buf.clear();
                if json {
                    buf.extend_from_slice(json_line(&view).as_bytes());
                    buf.push(b'\n');
                } else {
                    formatter.write(&mut buf, &view);
                }
                if out.write_all(&buf).is_err() || (flush_each && out.flush().is_err()) {
                    // stdout closed (e.g. `| head`): stop quietly.
                    break;
                }
                count += 1;
                last_activity = Instant::now();
                if matches!(mode, Mode::Group { .. }) {
                    if let Err(e) = consumer.store_offset_from_message(&message) {
                        eprintln!(
                            "warning: storing the offset of {topic}-{}@{}: {e}",
                            message.partition(),
                            message.offset()
                        );
                    }
                }
            }
            Some(Err(error)) => {
                let code = error.rdkafka_error_code();
                if code.is_some_and(is_fatal) {
                    outcome = Err(anyhow::anyhow!("consuming from {topic}: {error}"));
                    break;
                }
                let text = error.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    eprintln!("warning: {text}");
                    last_error = Some(text);
                }
                if matches!(
                    error,
                    KafkaError::MessageConsumption(RDKafkaErrorCode::Fatal)
                ) {
                    outcome = Err(anyhow::anyhow!("consuming from {topic}: {error}"));
                    break;
                }
            }
        }
    }
    let _ = out.flush();
    drop(out);
    if matches!(mode, Mode::Group { .. })
        && count > 0
        && settings.get("enable.auto.commit") != Some("false")
    {
        // Commit the stored offsets (those of the printed records) now;
        // librdkafka's auto-commit would otherwise do it on its interval only.
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            eprintln!("warning: committing offsets: {e}");
        }
    }
    eprintln!("Processed a total of {count} messages");
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: ConsumeArgs,
    }

    fn parse(argv: &[&str]) -> ConsumeArgs {
        Cli::try_parse_from(std::iter::once("consume").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn modes() {
        assert_eq!(
            parse(&["--topic", "t"]).mode().unwrap(),
            Mode::Assign {
                partition: None,
                start: StartOffset::Latest
            }
        );
        assert_eq!(
            parse(&["--topic", "t", "--from-beginning"]).mode().unwrap(),
            Mode::Assign {
                partition: None,
                start: StartOffset::Earliest
            }
        );
        assert_eq!(
            parse(&["--topic", "t", "--partition", "2", "--offset", "17"])
                .mode()
                .unwrap(),
            Mode::Assign {
                partition: Some(2),
                start: StartOffset::At(17)
            }
        );
        assert_eq!(
            parse(&["--topic", "t", "--partition", "0", "--offset", "earliest"])
                .mode()
                .unwrap(),
            Mode::Assign {
                partition: Some(0),
                start: StartOffset::Earliest
            }
        );
        assert_eq!(
            parse(&["--topic", "t", "--group", "g", "--from-beginning"])
                .mode()
                .unwrap(),
            Mode::Group { group: "g".into() }
        );
    }

    #[test]
    fn invalid_combinations() {
        assert!(parse(&["--topic", "t", "--offset", "1"]).mode().is_err());
        assert!(parse(&["--topic", "t", "--group", "g", "--partition", "0"])
            .mode()
            .is_err());
        assert!(parse(&[
            "--topic",
            "t",
            "--partition",
            "0",
            "--offset",
            "1",
            "--from-beginning"
        ])
        .mode()
        .is_err());
        assert!(
            parse(&["--topic", "t", "--partition", "0", "--offset", "-5"])
                .mode()
                .is_err()
        );
        assert!(
            parse(&["--topic", "t", "--partition", "0", "--offset", "soon"])
                .mode()
                .is_err()
        );
        assert!(
            Cli::try_parse_from(["consume", "--topic", "t", "--isolation-level", "dirty"]).is_err()
        );
        assert!(Cli::try_parse_from(["consume"]).is_err());
    }

    #[test]
    fn settings_per_mode() {
        let args = parse(&["--topic", "t", "--group", "g", "--from-beginning"]);
        let s = client_settings(&args, &args.mode().unwrap()).unwrap();
        assert_eq!(s.get("group.id"), Some("g"));
        assert_eq!(s.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(s.get("isolation.level"), Some("read_uncommitted"));
        let args = parse(&[
            "--topic",
            "t",
            "--isolation-level",
            "read_committed",
            "--consumer-property",
            "enable.auto.commit=true",
        ]);
        let s = client_settings(&args, &args.mode().unwrap()).unwrap();
        assert_eq!(
            s.get("enable.auto.commit"),
            Some("false"),
            "assign never commits"
        );
        assert_eq!(s.get("isolation.level"), Some("read_committed"));
    }

    fn view<'a>(
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
        headers: Vec<(&'a str, Option<&'a [u8]>)>,
    ) -> RecordView<'a> {
        RecordView {
            topic: "t",
            partition: 3,
            offset: 42,
            timestamp: Timestamp::CreateTime(1_700_000_000_000),
            key,
            value,
            headers,
        }
    }

    fn format(props: &[(&str, &str)], r: &RecordView<'_>) -> String {
        let props: Vec<(String, String)> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = Vec::new();
        Formatter::from_properties(&props)
            .unwrap()
            .write(&mut out, r);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn default_prints_values_only() {
        let r = view(Some(b"k"), Some(b"v"), vec![]);
        assert_eq!(format(&[], &r), "v\n");
        assert_eq!(format(&[], &view(None, None, vec![])), "null\n");
    }

    #[test]
    fn every_column_like_kafka() {
        let r = view(
            Some(b"k1"),
            Some(b"v1"),
            vec![("h1", Some(b"a".as_slice())), ("h2", None)],
        );
        let all = [
            ("print.timestamp", "true"),
            ("print.partition", "true"),
            ("print.offset", "true"),
            ("print.headers", "true"),
            ("print.key", "true"),
        ];
        assert_eq!(
            format(&all, &r),
            "CreateTime:1700000000000\tPartition:3\tOffset:42\th1:a,h2:null\tk1\tv1\n"
        );
        assert_eq!(
            format(
                &[
                    ("print.key", "true"),
                    ("print.headers", "true"),
                    ("key.separator", " | "),
                    ("headers.separator", ";"),
                    ("null.literal", "<nil>")
                ],
                &view(None, Some(b"v"), vec![])
            ),
            "NO_HEADERS | <nil> | v\n"
        );
    }

    #[test]
    fn without_value_the_last_column_ends_the_line() {
        let r = view(Some(b"k"), Some(b"v"), vec![]);
        assert_eq!(
            format(&[("print.key", "true"), ("print.value", "false")], &r),
            "k\n"
        );
        assert_eq!(
            format(
                &[
                    ("print.offset", "true"),
                    ("print.value", "false"),
                    ("line.separator", "|")
                ],
                &r
            ),
            "Offset:42|"
        );
        let mut log_append = r.clone();
        log_append.timestamp = Timestamp::LogAppendTime(5);
        assert_eq!(
            format(&[("print.timestamp", "true")], &log_append),
            "LogAppendTime:5\tv\n"
        );
        log_append.timestamp = Timestamp::NotAvailable;
        assert_eq!(
            format(&[("print.timestamp", "true")], &log_append),
            "NO_TIMESTAMP\tv\n"
        );
    }

    #[test]
    fn json_lines() {
        let r = view(Some(b"k"), None, vec![("h", Some(b"x".as_slice()))]);
        let v: serde_json::Value = serde_json::from_str(&json_line(&r)).unwrap();
        assert_eq!(v["partition"], 3);
        assert_eq!(v["offset"], 42);
        assert_eq!(v["key"], "k");
        assert!(v["value"].is_null());
        assert_eq!(v["timestamp_type"], "CreateTime");
        assert_eq!(v["headers"][0]["key"], "h");
        assert_eq!(v["headers"][0]["value"], "x");
    }

    #[test]
    fn bad_formatter_property() {
        assert!(Formatter::from_properties(&[("print.key".into(), "maybe".into())]).is_err());
    }
}

//! `fjord produce`: send lines from stdin (or `--file`) as records, modelled
//! on Apache Kafka's `kafka-console-producer.sh`.
//!
//! Each line is one record. As in Kafka's `LineMessageReader`, with
//! `--property parse.headers=true` a line starts with headers
//! (`h1:v1,h2:v2`, ended by `headers.delimiter`, a tab by default), then with
//! `--property parse.key=true` comes the key (ended by `key.separator`, a tab
//! by default), and the rest of the line is the value:
//!
//! ```text
//! h1:v1,h2:v2<TAB>key<TAB>value
//! ```
//!
//! `null.marker` (unset by default) turns a key, value or header value equal
//! to it into null. With `ignore.error=true` a line without the expected
//! separator is sent with a null key (or no headers) instead of stopping.
//!
//! Records are sent asynchronously (or one at a time with `--sync`); every
//! delivery is checked, failures are reported on stderr with their line
//! number, and the command exits non-zero if any record failed.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde::Serialize;

use super::common::{self, ConnectionArgs, OutputFormat, QuietContext};

/// How long the sender backs off when librdkafka's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);

/// Delivery failures printed one by one before the rest are only counted.
const FAILURES_PRINTED_MAX: u64 = 10;

/// Default delivery timeout (Kafka's `delivery.timeout.ms` default).
const DELIVERY_TIMEOUT_MS: u64 = 120_000;

/// How long to wait for auto-creation of the topic to settle.
const TOPIC_WAIT: Duration = Duration::from_secs(10);

/// Flags of `fjord produce`; names follow kafka-console-producer.sh.
#[derive(clap::Args, Debug)]
pub(crate) struct ProduceArgs {
    /// Connection flags.
    #[command(flatten)]
    pub(crate) conn: ConnectionArgs,

    /// The topic to produce messages to.
    #[arg(long, value_name = "TOPIC")]
    pub(crate) topic: String,

    /// Read the lines from this file instead of stdin (progress is shown on stderr).
    #[arg(long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,

    /// Line reader properties, KEY=VALUE (repeatable): parse.key, key.separator,
    /// parse.headers, headers.delimiter, headers.separator,
    /// headers.key.separator, null.marker, ignore.error.
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) property: Vec<String>,

    /// Producer configuration, KEY=VALUE (repeatable), applied after
    /// --command-config and --producer.config.
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    pub(crate) producer_property: Vec<String>,

    /// Producer configuration properties file (Java .properties syntax).
    #[arg(long = "producer.config", value_name = "FILE")]
    pub(crate) producer_config: Option<PathBuf>,

    /// The acks of produce requests: -1/all, 0 or 1. Default -1 (Kafka's
    /// tool default) unless the producer properties set acks.
    #[arg(long = "request-required-acks", value_name = "ACKS")]
    pub(crate) request_required_acks: Option<String>,

    /// Compression codec: none, gzip, snappy, lz4 or zstd; gzip when given
    /// without a value.
    #[arg(
        long = "compression-codec",
        value_name = "CODEC",
        num_args = 0..=1,
        default_missing_value = "gzip"
    )]
    pub(crate) compression_codec: Option<String>,

    /// Send each record synchronously: wait for its acknowledgement before
    /// reading the next line.
    #[arg(long)]
    pub(crate) sync: bool,

    /// linger.ms: how long records wait for a fuller batch.
    #[arg(long, value_name = "MS")]
    pub(crate) timeout: Option<u64>,

    /// retries: how often a failed send is retried.
    #[arg(long = "message-send-max-retries", value_name = "N")]
    pub(crate) message_send_max_retries: Option<u32>,

    /// retry.backoff.ms.
    #[arg(long = "retry-backoff-ms", value_name = "MS")]
    pub(crate) retry_backoff_ms: Option<u64>,

    /// request.timeout.ms.
    #[arg(long = "request-timeout-ms", value_name = "MS")]
    pub(crate) request_timeout_ms: Option<u64>,

    /// Print the final summary as text (stderr) or JSON (stdout).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,
}

/// How input lines become records (Kafka's LineMessageReader properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineFormat {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    null_marker: Option<String>,
    ignore_error: bool,
}

impl Default for LineFormat {
    fn default() -> Self {
        LineFormat {
            parse_key: false,
            key_separator: "\t".into(),
            parse_headers: false,
            headers_delimiter: "\t".into(),
            headers_separator: ",".into(),
            headers_key_separator: ":".into(),
            null_marker: None,
            ignore_error: false,
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

impl LineFormat {
    /// Builds the format from `--property` pairs; unknown keys are reported
    /// with a warning (Kafka's tool ignores them silently).
    pub(crate) fn from_properties(props: &[(String, String)]) -> anyhow::Result<Self> {
        let mut f = LineFormat::default();
        for (k, v) in props {
            match k.as_str() {
                "parse.key" => f.parse_key = parse_bool(k, v)?,
                "key.separator" => f.key_separator = v.clone(),
                "parse.headers" => f.parse_headers = parse_bool(k, v)?,
                "headers.delimiter" => f.headers_delimiter = v.clone(),
                "headers.separator" => f.headers_separator = v.clone(),
                "headers.key.separator" => f.headers_key_separator = v.clone(),
                "null.marker" => f.null_marker = (!v.is_empty()).then(|| v.clone()),
                "ignore.error" => f.ignore_error = parse_bool(k, v)?,
                other => eprintln!("warning: ignoring unknown --property {other}"),
            }
        }
        for (name, value) in [
            ("key.separator", &f.key_separator),
            ("headers.delimiter", &f.headers_delimiter),
            ("headers.separator", &f.headers_separator),
            ("headers.key.separator", &f.headers_key_separator),
        ] {
            ensure!(!value.is_empty(), "--property {name} must not be empty");
        }
        if f.parse_headers {
            ensure!(
                !f.headers_separator.contains(&f.headers_key_separator),
                "headers.separator and headers.key.separator should not be equal or one of them contain the other"
            );
        }
        if let Some(marker) = &f.null_marker {
            for (name, value) in [
                ("key.separator", &f.key_separator),
                ("headers.delimiter", &f.headers_delimiter),
                ("headers.separator", &f.headers_separator),
                ("headers.key.separator", &f.headers_key_separator),
            ] {
                ensure!(marker != value, "null.marker and {name} may not be equal");
            }
        }
        Ok(f)
    }

    fn nullable(&self, s: &str) -> Option<String> {
        match &self.null_marker {
            Some(m) if m == s => None,
            _ => Some(s.to_string()),
        }
    }

    /// Parses one input line (without its line terminator) into a record,
    /// exactly as Kafka's LineMessageReader does. `line_number` is 1-based
    /// and only used in error messages.
    pub(crate) fn parse_line(&self, line: &str, line_number: u64) -> anyhow::Result<LineRecord> {
        let mut rest = line;
        let mut headers = Vec::new();
        if self.parse_headers {
            match rest.find(self.headers_delimiter.as_str()) {
                Some(i) => {
                    let raw = &rest[..i];
                    rest = &rest[i + self.headers_delimiter.len()..];
                    if self.null_marker.as_deref() != Some(raw) {
                        headers = self.split_headers(raw, line_number)?;
                    }
                }
                None if self.ignore_error => {}
                None => bail!("No headers delimiter found on line number {line_number}: '{line}'"),
            }
        }
        let mut key = None;
        if self.parse_key {
            match rest.find(self.key_separator.as_str()) {
                Some(i) => {
                    key = self.nullable(&rest[..i]);
                    rest = &rest[i + self.key_separator.len()..];
                }
                None if self.ignore_error => {}
                None => bail!("No key separator found on line number {line_number}: '{line}'"),
            }
        }
        Ok(LineRecord {
            key,
            value: self.nullable(rest),
            headers,
        })
    }

    fn split_headers(
        &self,
        raw: &str,
        line_number: u64,
    ) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let mut pairs: Vec<&str> = raw.split(self.headers_separator.as_str()).collect();
        // Java's String.split drops trailing empty strings.
        while pairs.last() == Some(&"") {
            pairs.pop();
        }
        pairs
            .into_iter()
            .map(|pair| match pair.find(self.headers_key_separator.as_str()) {
                Some(i) => {
                    let key = &pair[..i];
                    ensure!(
                        self.null_marker.as_deref() != Some(key),
                        "Header keys should not be equal to the null marker '{key}' as they can't be null"
                    );
                    let value = &pair[i + self.headers_key_separator.len()..];
                    Ok((key.to_string(), self.nullable(value)))
                }
                None if self.ignore_error => Ok((pair.to_string(), None)),
                None => bail!(
                    "No header key separator found in pair '{pair}' on line number {line_number}"
                ),
            })
            .collect()
    }
}

/// A record parsed from one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineRecord {
    pub(crate) key: Option<String>,
    pub(crate) value: Option<String>,
    pub(crate) headers: Vec<(String, Option<String>)>,
}

/// Removes a trailing `\n` or `\r\n`.
fn strip_terminator(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// Delivery bookkeeping shared with librdkafka's callback thread.
#[derive(Default)]
struct ProduceContext {
    quiet: QuietContext,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for ProduceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.quiet.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.quiet.error(error, reason);
    }
}

impl ProducerContext for ProduceContext {
    /// The 1-based input line number of the record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, line: usize) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                let n = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
                let message = format!("record from line {line} failed: {error}");
                if n <= FAILURES_PRINTED_MAX {
                    eprintln!("ERROR {message}");
                } else if n == FAILURES_PRINTED_MAX + 1 {
                    eprintln!("(further delivery errors are only counted)");
                }
                self.first_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(message);
            }
        }
    }
}

/// The summary printed at the end.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    topic: &'a str,
    records: u64,
    delivered: u64,
    failed: u64,
    first_error: Option<String>,
    elapsed_ms: u64,
}

/// Progress on stderr while a file is produced.
struct Progress {
    total_bytes: Option<u64>,
    terminal: bool,
    last: Instant,
    every: Duration,
    shown: bool,
}

impl Progress {
    fn new(total_bytes: Option<u64>) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Progress {
            total_bytes,
            terminal,
            last: Instant::now(),
            every: if terminal {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            },
            shown: false,
        }
    }

    fn tick(&mut self, sent: u64, delivered: u64, bytes_read: u64, force: bool) {
        if !force && self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let line = progress_line(sent, delivered, bytes_read, self.total_bytes);
        if self.terminal {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        self.shown = true;
    }

    fn finish(&self) {
        if self.shown && self.terminal {
            eprintln!();
        }
    }
}

/// `12000 records sent, 11800 acknowledged (45% of the file)`.
fn progress_line(sent: u64, delivered: u64, bytes_read: u64, total: Option<u64>) -> String {
    let mut line = format!("{sent} records sent, {delivered} acknowledged");
    if let Some(total) = total.filter(|t| *t > 0) {
        let pct = (bytes_read.min(total) * 100) / total;
        line.push_str(&format!(" ({pct}% of the file)"));
    }
    line
}

/// Runs `fjord produce` (reading and sending block, so on the blocking pool).
pub(crate) async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(args)).await?
}

fn client_settings(args: &ProduceArgs) -> anyhow::Result<common::ClientSettings> {
    let mut settings = common::ClientSettings::from_connection(&args.conn)?;
    if let Some(path) = &args.producer_config {
        settings.extend(common::load_properties(path)?);
    }
    settings.extend(common::parse_kv_list(
        "--producer-property",
        &args.producer_property,
    )?);
    match &args.request_required_acks {
        Some(acks) => settings.set("acks", acks),
        None => settings.set_default("acks", "-1"),
    }
    if let Some(codec) = &args.compression_codec {
        let codec = codec.to_ascii_lowercase();
        ensure!(
            ["none", "gzip", "snappy", "lz4", "zstd"].contains(&codec.as_str()),
            "--compression-codec {codec}: expected none, gzip, snappy, lz4 or zstd"
        );
        settings.set("compression.type", &codec);
    }
    if let Some(ms) = args.timeout {
        settings.set("linger.ms", &ms.to_string());
    }
    if let Some(n) = args.message_send_max_retries {
        settings.set("retries", &n.to_string());
    }
    if let Some(ms) = args.retry_backoff_ms {
        settings.set("retry.backoff.ms", &ms.to_string());
    }
    if let Some(ms) = args.request_timeout_ms {
        settings.set("request.timeout.ms", &ms.to_string());
    }
    if settings.get("delivery.timeout.ms").is_none() {
        settings.set_default("message.timeout.ms", &DELIVERY_TIMEOUT_MS.to_string());
    }
    Ok(settings)
}

fn delivery_timeout(settings: &common::ClientSettings) -> Duration {
    let ms = settings
        .get("delivery.timeout.ms")
        .or_else(|| settings.get("message.timeout.ms"))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DELIVERY_TIMEOUT_MS);
    Duration::from_millis(ms) + Duration::from_secs(10)
}

/// Checks that the topic exists (letting the cluster auto-create it, as a
/// producer's metadata request does), failing fast with a clear message.
fn check_topic(
    producer: &ThreadedProducer<ProduceContext>,
    topic: &str,
    bootstrap: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + TOPIC_WAIT;
    loop {
        let metadata = common::fetch_metadata(producer.client(), Some(topic), bootstrap, || {
            producer.context().quiet.last_error()
        })?;
        let error = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .and_then(|t| t.error())
            .map(RDKafkaErrorCode::from);
        match error {
            None => return Ok(()),
            Some(RDKafkaErrorCode::LeaderNotAvailable) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                bail!("Topic '{topic}' does not exist (and the cluster did not create it; create it with `fjord topics --create --topic {topic}`)")
            }
            Some(code) => bail!("Topic '{topic}': {code}"),
        }
    }
}

fn run_blocking(args: ProduceArgs) -> anyhow::Result<()> {
    let props = common::parse_kv_list("--property", &args.property)?;
    let format = LineFormat::from_properties(&props)?;
    let settings = client_settings(&args)?;
    let bootstrap = settings.bootstrap(args.conn.bootstrap_server.as_deref());
    let producer: ThreadedProducer<ProduceContext> = settings
        .to_client_config(&bootstrap)
        .create_with_context(ProduceContext::default())
        .context("creating the producer")?;
    check_topic(&producer, &args.topic, &bootstrap)?;

    let (input, total_bytes): (Box<dyn Read>, Option<u64>) = match &args.file {
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        }
        None => (Box::new(std::io::stdin()), None),
    };
    let prompt = args.file.is_none() && std::io::stdin().is_terminal();
    let mut progress = args.file.as_ref().map(|_| Progress::new(total_bytes));
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut bytes_read = 0u64;
    let mut line_number = 0u64;
    let mut buf = String::new();
    let mut stopped: Option<anyhow::Error> = None;
    loop {
        if prompt {
            eprint!(">");
            let _ = std::io::stderr().flush();
        }
        buf.clear();
        let n = match reader.read_line(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                stopped = Some(
                    anyhow::Error::new(e)
                        .context(format!("reading line {} of the input", line_number + 1)),
                );
                break;
            }
        };
        bytes_read += n as u64;
        line_number += 1;
        let line = strip_terminator(&buf);
        let record = match format.parse_line(line, line_number) {
            Ok(r) => r,
            Err(e) => {
                stopped = Some(e);
                break;
            }
        };
        if let Err(e) = send(&producer, &args.topic, &record, line_number as usize) {
            stopped = Some(e);
            break;
        }
        sent += 1;
        if args.sync {
            producer
                .flush(delivery_timeout(&settings))
                .context("waiting for the acknowledgement")?;
        }
        if let Some(p) = progress.as_mut() {
            let delivered = producer.context().delivered.load(Ordering::Relaxed);
            p.tick(sent, delivered, bytes_read, false);
        }
    }
    if prompt {
        eprintln!();
    }
    let flushed = producer.flush(delivery_timeout(&settings));
    let delivered = producer.context().delivered.load(Ordering::Relaxed);
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if let Some(p) = progress.as_mut() {
        p.tick(sent, delivered, bytes_read, true);
        p.finish();
    }
    let first_error = producer
        .context()
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let summary = Summary {
        topic: &args.topic,
        records: sent,
        delivered,
        failed,
        first_error: first_error.clone(),
        elapsed_ms: start.elapsed().as_millis() as u64,
    };
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&summary)?),
        OutputFormat::Table => {
            if args.file.is_some() || failed > 0 {
                eprintln!(
                    "Produced {delivered} of {sent} records to topic {} in {:.1} s ({failed} failed).",
                    args.topic,
                    start.elapsed().as_secs_f64()
                );
            }
        }
    }
    if let Some(e) = stopped {
        return Err(e.context(format!(
            "stopped after {sent} records ({delivered} acknowledged)"
        )));
    }
    if let Err(e) = flushed {
        bail!(
            "{} records were not acknowledged in time: {e}",
            sent.saturating_sub(delivered + failed)
        );
    }
    ensure!(
        failed == 0,
        "{failed} of {sent} records failed; first error: {}",
        first_error.unwrap_or_default()
    );
    Ok(())
}

/// Hands one record to librdkafka, waiting while its local queue is full.
fn send(
    producer: &ThreadedProducer<ProduceContext>,
    topic: &str,
    record: &LineRecord,
    line: usize,
) -> anyhow::Result<()> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (k, v) in &record.headers {
        headers = headers.insert(Header {
            key: k.as_str(),
            value: v.as_deref(),
        });
    }
    let mut base = BaseRecord::<str, str, usize>::with_opaque_to(topic, line);
    if let Some(k) = &record.key {
        base = base.key(k.as_str());
    }
    if let Some(v) = &record.value {
        base = base.payload(v.as_str());
    }
    if !record.headers.is_empty() {
        base = base.headers(headers);
    }
    loop {
        match producer.send(base) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                base = back;
                std::thread::sleep(QUEUE_FULL_BACKOFF);
            }
            Err((e, _)) => {
                return Err(e).with_context(|| format!("sending the record from line {line}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn fmt(props: &[(&str, &str)]) -> LineFormat {
        let props: Vec<(String, String)> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LineFormat::from_properties(&props).unwrap()
    }

    fn rec(key: Option<&str>, value: Option<&str>, headers: &[(&str, Option<&str>)]) -> LineRecord {
        LineRecord {
            key: key.map(str::to_string),
            value: value.map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn plain_lines_are_values() {
        let f = LineFormat::default();
        assert_eq!(
            f.parse_line("hello\tworld", 1).unwrap(),
            rec(None, Some("hello\tworld"), &[])
        );
        assert_eq!(f.parse_line("", 1).unwrap(), rec(None, Some(""), &[]));
    }

    #[test]
    fn keys_with_separators() {
        let f = fmt(&[("parse.key", "true"), ("key.separator", ":")]);
        assert_eq!(
            f.parse_line("k1:v1", 1).unwrap(),
            rec(Some("k1"), Some("v1"), &[])
        );
        assert_eq!(
            f.parse_line("k:a:b", 1).unwrap(),
            rec(Some("k"), Some("a:b"), &[])
        );
        assert_eq!(
            f.parse_line(":v", 1).unwrap(),
            rec(Some(""), Some("v"), &[])
        );
        let err = f.parse_line("novalue", 7).unwrap_err().to_string();
        assert_eq!(err, "No key separator found on line number 7: 'novalue'");
        let multi = fmt(&[("parse.key", "true"), ("key.separator", "::")]);
        assert_eq!(
            multi.parse_line("a::b:c", 1).unwrap(),
            rec(Some("a"), Some("b:c"), &[])
        );
        let tab = fmt(&[("parse.key", "true")]);
        assert_eq!(
            tab.parse_line("k\tv", 1).unwrap(),
            rec(Some("k"), Some("v"), &[])
        );
    }

    #[test]
    fn headers_then_key_then_value() {
        let f = fmt(&[("parse.key", "true"), ("parse.headers", "true")]);
        assert_eq!(
            f.parse_line("h1:v1,h2:v2\tkey\tvalue", 1).unwrap(),
            rec(
                Some("key"),
                Some("value"),
                &[("h1", Some("v1")), ("h2", Some("v2"))]
            )
        );
        // A header value may contain the key separator after the first one.
        assert_eq!(
            f.parse_line("url:http://x\tk\tv", 1).unwrap(),
            rec(Some("k"), Some("v"), &[("url", Some("http://x"))])
        );
        // An empty headers part means no headers.
        assert_eq!(
            f.parse_line("\tk\tv", 1).unwrap(),
            rec(Some("k"), Some("v"), &[])
        );
        let err = f.parse_line("h1v1\tk\tv", 3).unwrap_err().to_string();
        assert_eq!(
            err,
            "No header key separator found in pair 'h1v1' on line number 3"
        );
        assert!(f.parse_line("no-delimiter", 1).is_err());
        let headers_only = fmt(&[("parse.headers", "true")]);
        assert_eq!(
            headers_only.parse_line("a:1\tk\tv", 1).unwrap(),
            rec(None, Some("k\tv"), &[("a", Some("1"))])
        );
    }

    #[test]
    fn custom_header_separators_and_null_marker() {
        let f = fmt(&[
            ("parse.key", "true"),
            ("key.separator", "|"),
            ("parse.headers", "true"),
            ("headers.delimiter", "#"),
            ("headers.separator", ";"),
            ("headers.key.separator", "="),
            ("null.marker", "<null>"),
        ]);
        assert_eq!(
            f.parse_line("a=1;b=<null>#<null>|<null>", 1).unwrap(),
            rec(None, None, &[("a", Some("1")), ("b", None)])
        );
        assert_eq!(
            f.parse_line("<null>#k|v", 1).unwrap(),
            rec(Some("k"), Some("v"), &[])
        );
        assert!(f.parse_line("<null>=x#k|v", 1).is_err());
    }

    #[test]
    fn ignore_error_keeps_going() {
        let f = fmt(&[
            ("parse.key", "true"),
            ("parse.headers", "true"),
            ("ignore.error", "true"),
        ]);
        assert_eq!(
            f.parse_line("just a value", 1).unwrap(),
            rec(None, Some("just a value"), &[])
        );
        assert_eq!(
            f.parse_line("flag\tk\tv", 1).unwrap(),
            rec(Some("k"), Some("v"), &[("flag", None)])
        );
    }

    #[test]
    fn property_validation() {
        let props = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(LineFormat::from_properties(&props(&[("parse.key", "yes")])).is_err());
        assert!(LineFormat::from_properties(&props(&[("key.separator", "")])).is_err());
        assert!(LineFormat::from_properties(&props(&[
            ("parse.headers", "true"),
            ("headers.separator", ":"),
        ]))
        .is_err());
        assert!(LineFormat::from_properties(&props(&[("null.marker", "\t")])).is_err());
    }

    #[test]
    fn line_terminators() {
        assert_eq!(strip_terminator("a\r\n"), "a");
        assert_eq!(strip_terminator("a\n"), "a");
        assert_eq!(strip_terminator("a"), "a");
        assert_eq!(strip_terminator("a\r"), "a");
    }

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: ProduceArgs,
    }

    #[test]
    fn flags_become_client_settings() {
        let cli = Cli::try_parse_from([
            "produce",
            "--topic",
            "t",
            "--bootstrap-server",
            "h:1",
            "--producer-property",
            "acks=1",
            "--producer-property",
            "linger.ms=7",
            "--compression-codec",
            "--property",
            "parse.key=true",
        ])
        .unwrap();
        let s = client_settings(&cli.args).unwrap();
        assert_eq!(s.get("acks"), Some("1"));
        assert_eq!(s.get("compression.type"), Some("gzip"));
        assert_eq!(s.get("linger.ms"), Some("7"));
        assert_eq!(
            s.bootstrap(cli.args.conn.bootstrap_server.as_deref()),
            "h:1"
        );

        let cli = Cli::try_parse_from([
            "produce",
            "--topic",
            "t",
            "--producer-property",
            "acks=1",
            "--request-required-acks",
            "all",
            "--compression-codec",
            "zstd",
        ])
        .unwrap();
        let s = client_settings(&cli.args).unwrap();
        assert_eq!(s.get("acks"), Some("all"));
        assert_eq!(s.get("compression.type"), Some("zstd"));
        assert_eq!(s.get("message.timeout.ms"), Some("120000"));

        let cli = Cli::try_parse_from(["produce", "--topic", "t"]).unwrap();
        assert_eq!(client_settings(&cli.args).unwrap().get("acks"), Some("-1"));
        let cli = Cli::try_parse_from(["produce", "--topic", "t", "--compression-codec", "brotli"])
            .unwrap();
        assert!(client_settings(&cli.args).is_err());
        assert!(
            Cli::try_parse_from(["produce"]).is_err(),
            "--topic is required"
        );
    }

    #[test]
    fn progress_text() {
        assert_eq!(
            progress_line(10, 5, 50, Some(200)),
            "10 records sent, 5 acknowledged (25% of the file)"
        );
        assert_eq!(
            progress_line(1, 1, 0, None),
            "1 records sent, 1 acknowledged"
        );
    }
}

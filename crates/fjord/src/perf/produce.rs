//! `fjord perf produce`: the load loop of kafka-producer-perf-test.sh on
//! librdkafka.
//!
//! Latency is the time from handing a record to the client (`send`) to its
//! delivery report, as in Kafka's tool. The send time travels with the record
//! as its delivery opaque (nanoseconds since the run started, a plain `usize`,
//! so nothing is allocated per record), and a `ThreadedProducer`'s own polling
//! thread runs the delivery callback as soon as the broker acknowledges, so
//! the measurement is not delayed by the sending loop.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use rdkafka::error::KafkaError;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::ClientContext;
use serde::Serialize;

use super::cpu::{BrokerCpu, BrokerCpuProbe};
use super::stats::{random_payload, ProduceStats, ProduceSummary, Throttler};
use super::{props, report_client_error, ErrorFilter, ProducePerfArgs, Reporter};

/// How long the sender backs off when librdkafka's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(500);

/// How long the warm-up waits for the cluster's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(15);

/// Producer context: owns the statistics the delivery callback updates.
struct PerfContext {
    /// The run's time origin, set just before the first send (after the
    /// connection warm-up), shared by the sender and the delivery callback.
    start: OnceLock<Instant>,
    record_bytes: u64,
    stats: Mutex<ProduceStats>,
    reporter: Reporter,
    errors: Mutex<ErrorFilter>,
}

impl ClientContext for PerfContext {
    fn error(&self, error: KafkaError, reason: &str) {
        report_client_error(&self.errors, "producer", &error, reason);
    }
}

impl ProducerContext for PerfContext {
    /// Send time in nanoseconds since `start`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at_ns: usize) {
        // Deliveries only follow sends, and sends only follow setting `start`.
        let now = self.start.get().map_or(Duration::ZERO, Instant::elapsed);
        let latency_us = (now.as_nanos() as u64).saturating_sub(sent_at_ns as u64) / 1000;
        let line = {
            let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(_) => stats.record(latency_us, self.record_bytes, now),
                Err((e, _)) => {
                    stats.record_error(e.to_string());
                    None
                }
            }
        };
        if let Some(line) = line {
            self.reporter.progress(&line);
        }
    }
}

/// The JSON object printed with `--output json`.
#[derive(Serialize)]
struct ProduceReport<'a> {
    tool: &'static str,
    topic: &'a str,
    record_size: usize,
    throughput_target: Option<f64>,
    #[serde(flatten)]
    summary: &'a ProduceSummary,
    first_error: Option<&'a str>,
    broker_cpu: Option<&'a BrokerCpu>,
}

/// Runs the produce benchmark to completion (blocking).
pub(super) fn run(args: ProducePerfArgs) -> anyhow::Result<()> {
    ensure!(
        args.throughput != 0.0 && !args.throughput.is_nan(),
        "--throughput must be a positive rate, or -1 for unthrottled"
    );
    let reporter = Reporter::new(args.common.output);
    let file_props = match &args.producer_config {
        Some(path) => props::load_properties_file(path)?,
        None => Vec::new(),
    };
    let cli_props = props::parse_kv_list(&args.producer_props).context("--producer-props")?;
    let settings = props::resolve(
        &[],
        &file_props,
        &cli_props,
        args.common.bootstrap_server.as_deref(),
    );
    for note in &settings.notes {
        eprintln!("note: {note}");
    }

    let payload = random_payload(args.record_size, seed());
    let interval = Duration::from_millis(args.common.reporting_interval.max(1));
    let context = PerfContext {
        start: OnceLock::new(),
        record_bytes: args.record_size as u64,
        stats: Mutex::new(ProduceStats::new(interval)),
        reporter,
        errors: Mutex::default(),
    };
    ensure!(
        args.transaction_size > 0,
        "--transaction-size must be positive"
    );
    let mut client_config = settings.to_client_config();
    if let Some(id) = &args.transactional_id {
        client_config.set("transactional.id", id);
    }
    let Outcome {
        summary,
        errors,
        first_error,
        broker_cpu,
    } = if args.transactional_id.is_some() {
        let producer: BaseProducer<PerfContext> = client_config
            .create_with_context(context)
            .with_context(|| format!("creating a producer for {}", settings.bootstrap))?;
        drive(&producer, &args, &payload)?
    } else {
        let producer: ThreadedProducer<PerfContext> = client_config
            .create_with_context(context)
            .with_context(|| format!("creating a producer for {}", settings.bootstrap))?;
        drive(&producer, &args, &payload)?
    };

    match args.common.output {
        super::OutputFormat::Text => {
            println!("{}", summary.text());
            if let Some(cpu) = &broker_cpu {
                println!("{cpu}");
            }
        }
        super::OutputFormat::Json => {
            let report = ProduceReport {
                tool: "perf produce",
                topic: &args.topic,
                record_size: args.record_size,
                throughput_target: (args.throughput > 0.0).then_some(args.throughput),
                summary: &summary,
                first_error: first_error.as_deref(),
                broker_cpu: broker_cpu.as_ref(),
            };
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    ensure!(
        errors == 0,
        "{errors} of {} records failed; first error: {}",
        args.num_records,
        first_error.unwrap_or_default()
    );
    Ok(())
}

/// A record of the load loop: no key, the shared payload, its send time as opaque.
type PerfRecord<'a> = BaseRecord<'a, (), [u8], usize>;

/// rdkafka's send result: the record comes back with the error so it can be retried (large,
/// as rdkafka's own `send` is).
type SendResult<'a> = Result<(), (KafkaError, PerfRecord<'a>)>;

/// What a run measured.
struct Outcome {
    summary: ProduceSummary,
    errors: u64,
    first_error: Option<String>,
    broker_cpu: Option<BrokerCpu>,
}

/// The two producers the load loop drives. Plain runs use a `ThreadedProducer`, whose own
/// thread runs delivery reports as soon as they arrive. Transactional runs use a
/// `BaseProducer` served by the loop, which also drains it before each commit: rust-rdkafka's
/// flush (which `commit_transaction` calls first) polls in 100 ms slices that do not end early,
/// which would cap a run at about ten transactions a second whatever the broker does.
trait PerfProducer: Producer<PerfContext> {
    /// Hands one record to the client.
    #[allow(clippy::result_large_err)]
    fn send_record<'a>(&self, record: PerfRecord<'a>) -> SendResult<'a>;
    /// Serves pending delivery reports when no thread of the client's does.
    fn serve(&self);
}

impl PerfProducer for ThreadedProducer<PerfContext> {
    #[allow(clippy::result_large_err)]
    fn send_record<'a>(&self, record: PerfRecord<'a>) -> SendResult<'a> {
        self.send(record)
    }

    fn serve(&self) {}
}

impl PerfProducer for BaseProducer<PerfContext> {
    #[allow(clippy::result_large_err)]
    fn send_record<'a>(&self, record: PerfRecord<'a>) -> SendResult<'a> {
        self.send(record)
    }

    fn serve(&self) {
        self.poll(Duration::ZERO);
    }
}

/// Waits, serving delivery reports in short slices, until nothing is in flight, so the flush
/// inside `commit_transaction` has nothing left to wait for.
fn drain(producer: &impl PerfProducer) {
    while producer.in_flight_count() > 0 {
        producer.serve();
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Warms up, runs the load loop (in transactions when asked) and collects the numbers.
fn drive(
    producer: &impl PerfProducer,
    args: &ProducePerfArgs,
    payload: &[u8],
) -> anyhow::Result<Outcome> {
    warm_up(producer, &args.topic)?;
    let transactional = args.transactional_id.is_some();
    if transactional {
        producer
            .init_transactions(METADATA_TIMEOUT)
            .context("initialising transactions")?;
    }
    let cpu = BrokerCpuProbe::start(args.common.broker_pid, |n| eprintln!("{n}"))?;
    let throttler = Throttler::new(args.throughput);
    let start = *producer.context().start.get_or_init(Instant::now);

    for sent in 0..args.num_records {
        if transactional && sent % args.transaction_size == 0 {
            if sent > 0 {
                drain(producer);
                producer
                    .commit_transaction(Timeout::Never)
                    .context("committing a transaction")?;
            }
            producer
                .begin_transaction()
                .context("beginning a transaction")?;
        }
        if throttler.is_active() {
            if let Some(pause) = throttler.delay(sent, start.elapsed()) {
                std::thread::sleep(pause);
            }
        }
        let sent_at = start.elapsed().as_nanos() as usize;
        let mut record =
            BaseRecord::<(), [u8], usize>::with_opaque_to(&args.topic, sent_at).payload(payload);
        loop {
            match producer.send_record(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Delivery reports drain the queue; wait a moment and retry. As with the
                    // Java client's blocking send, the wait counts towards this record's
                    // latency.
                    record = back;
                    producer.serve();
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((e, _)) => {
                    return Err(e)
                        .with_context(|| format!("sending record {sent} to {}", args.topic))
                }
            }
        }
        producer.serve();
    }
    if transactional && args.num_records > 0 {
        drain(producer);
        producer
            .commit_transaction(Timeout::Never)
            .context("committing the last transaction")?;
    }
    producer
        .flush(Timeout::Never)
        .context("flushing the producer")?;
    let elapsed = start.elapsed();
    let stats = producer
        .context()
        .stats
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let (errors, first) = stats.errors();
    let summary = stats.summary(elapsed);
    let broker_cpu = cpu.and_then(|probe| probe.finish(summary.bytes));
    Ok(Outcome {
        errors,
        first_error: first.map(str::to_string),
        broker_cpu,
        summary,
    })
}

/// Connects and fetches the topic's metadata before the clock starts, so an
/// unreachable cluster fails fast instead of after `message.timeout.ms`, and
/// connection set-up is not counted against throughput or latency.
fn warm_up(producer: &impl Producer<PerfContext>, topic: &str) -> anyhow::Result<()> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .context("fetching metadata (is the broker reachable?)")?;
    let error = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .and_then(|t| t.error());
    if let Some(error) = error {
        // Not fatal: auto-creation may be under way (LEADER_NOT_AVAILABLE);
        // if the topic really is missing, deliveries fail and say so.
        eprintln!(
            "note: metadata for topic {topic}: {:?}",
            RDKafkaErrorCode::from(error)
        );
    }
    Ok(())
}

/// A payload seed that differs between runs.
fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
}

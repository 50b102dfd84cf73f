//! Shared helpers for the integration tests: start a broker, produce and
//! consume with librdkafka (through the `rdkafka` crate), talk raw Kafka
//! protocol over a `TcpStream`, and read segment files.
//!
//! Every helper is bounded in time: librdkafka calls take timeouts, raw
//! sockets have read/write timeouts, and loops run against a deadline, so a
//! broken broker fails a test instead of hanging CI.

#![allow(dead_code)]

pub(crate) mod raw;
pub(crate) mod segment;
pub(crate) mod tool;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fjord_testkit::BrokerProcess;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, Timestamp};

/// Timeout for single client calls (metadata, admin, watermarks).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker binary: `FJORD_TEST_BINARY` if set (to run the suite against a
/// prebuilt broker), else the one Cargo built for these tests.
pub(crate) fn fjord_bin() -> String {
    std::env::var("FJORD_TEST_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_fjord").to_string())
}

/// Starts a broker with the given `--override` settings; panics with the
/// broker's log if it does not come up.
pub(crate) fn start_broker(overrides: &[(&str, &str)]) -> BrokerProcess {
    match BrokerProcess::start_with(fjord_bin(), overrides) {
        Ok(broker) => broker,
        Err(err) => panic!("broker failed to start: {err:#}"),
    }
}

/// Restarts the broker (same data dir and port); panics with the log on failure.
pub(crate) fn restart(broker: &mut BrokerProcess) {
    if let Err(err) = broker.restart() {
        panic!(
            "broker failed to restart: {err:#}\n{}",
            broker.logs_tail(16 * 1024)
        );
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A record as the tests produce it and expect to read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestRecord {
    /// Explicit partition, or `None` to let the client's partitioner decide.
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Option<Vec<u8>>)>,
    pub(crate) timestamp_ms: i64,
}

/// A record as a consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumedRecord {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Option<Vec<u8>>)>,
    pub(crate) timestamp: Timestamp,
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Generates `count` records with keys (some null), values (some null, some
/// empty, mixed compressible text and random bytes), 0..=3 headers (with a
/// null header value and a repeated header key) and explicit, increasing
/// creation timestamps starting at `timestamp_base_ms`.
pub(crate) fn generate_records(count: usize, seed: u64, timestamp_base_ms: i64) -> Vec<TestRecord> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let key = if i % 53 == 7 {
                None
            } else {
                Some(format!("key-{}", rng.below(5000)).into_bytes())
            };
            let value = match i % 10 {
                3 => None,
                6 if i % 20 == 6 => Some(Vec::new()),
                _ => {
                    let mut v = format!("record {i} seed {seed} ").into_bytes();
                    let extra = rng.below(160) as usize;
                    if i % 2 == 0 {
                        v.extend(rng.bytes(extra));
                    } else {
                        v.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, extra));
                    }
                    Some(v)
                }
            };
            let headers = match i % 4 {
                0 => Vec::new(),
                1 => vec![("trace-id".to_string(), Some(format!("t-{i}").into_bytes()))],
                2 => vec![
                    ("trace-id".to_string(), Some(format!("t-{i}").into_bytes())),
                    ("nullable".to_string(), None),
                ],
                _ => vec![
                    ("dup".to_string(), Some(b"first".to_vec())),
                    ("bin".to_string(), Some(rng.bytes(8))),
                    ("dup".to_string(), Some(Vec::new())),
                ],
            };
            TestRecord {
                partition: None,
                key,
                value,
                headers,
                timestamp_ms: timestamp_base_ms + i as i64,
            }
        })
        .collect()
}

/// The outcome of producing one record.
pub(crate) type Delivery = Result<(i32, i64), KafkaError>;

/// Producer context that records every delivery report by record index.
struct DeliveryCollector {
    deliveries: Mutex<Vec<Option<Delivery>>>,
}

impl ClientContext for DeliveryCollector {}

impl ProducerContext for DeliveryCollector {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((err, _)) => Err(err.clone()),
        };
        if let Ok(mut deliveries) = self.deliveries.lock() {
            deliveries[index] = Some(outcome);
        }
    }
}

/// Base producer settings; `extra` overrides them.
pub(crate) fn producer_config(bootstrap: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config
}

/// Produces `records` to `topic` and waits (until `timeout`) for every
/// delivery report. Returns one outcome per record, in input order; a record
/// with no report when the time is up gets a `MessageTimedOut` error.
pub(crate) fn produce_all(
    bootstrap: &str,
    topic: &str,
    records: &[TestRecord],
    extra: &[(&str, &str)],
    timeout: Duration,
) -> Vec<Delivery> {
    produce_with(bootstrap, topic, records, extra, timeout, false)
}

/// Like [`produce_all`], but waits for each record's acknowledgement before
/// sending the next, so that (with `linger.ms=0`) every record is a batch of
/// its own on disk.
pub(crate) fn produce_one_by_one(
    bootstrap: &str,
    topic: &str,
    records: &[TestRecord],
    extra: &[(&str, &str)],
    timeout: Duration,
) -> Vec<Delivery> {
    produce_with(bootstrap, topic, records, extra, timeout, true)
}

fn produce_with(
    bootstrap: &str,
    topic: &str,
    records: &[TestRecord],
    extra: &[(&str, &str)],
    timeout: Duration,
    flush_each: bool,
) -> Vec<Delivery> {
    let deadline = Instant::now() + timeout;
    let context = DeliveryCollector {
        deliveries: Mutex::new(vec![None; records.len()]),
    };
    let producer: ThreadedProducer<DeliveryCollector> = producer_config(bootstrap, extra)
        .create_with_context(context)
        .expect("create producer");
    for (index, record) in records.iter().enumerate() {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: value.as_deref(),
            });
        }
        let mut base: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, index)
            .timestamp(record.timestamp_ms)
            .headers(headers);
        if let Some(key) = &record.key {
            base = base.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            base = base.payload(value.as_slice());
        }
        if let Some(partition) = record.partition {
            base = base.partition(partition);
        }
        loop {
            match producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    assert!(
                        Instant::now() < deadline,
                        "producer queue stayed full until the deadline"
                    );
                    base = returned;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((err, _)) => panic!("send record {index} to {topic}: {err}"),
            }
        }
        if flush_each {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let _ = producer.flush(remaining);
        }
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    let _ = producer.flush(remaining);
    // Take the reports out before the producer is dropped (dropping purges).
    let deliveries = producer
        .context()
        .deliveries
        .lock()
        .expect("deliveries lock")
        .clone();
    drop(producer);
    deliveries
        .into_iter()
        .map(|d| {
            d.unwrap_or(Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut,
            )))
        })
        .collect()
}

/// Produces `records` and asserts that each was acknowledged; returns the
/// (partition, offset) of each record.
pub(crate) fn produce_ok(
    bootstrap: &str,
    topic: &str,
    records: &[TestRecord],
    extra: &[(&str, &str)],
    timeout: Duration,
) -> Vec<(i32, i64)> {
    let deliveries = produce_all(bootstrap, topic, records, extra, timeout);
    let failed: Vec<_> = deliveries
        .iter()
        .enumerate()
        .filter(|(_, d)| d.is_err())
        .take(5)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} records to {topic} were not acknowledged; first failures: {failed:?}",
        deliveries.iter().filter(|d| d.is_err()).count(),
        deliveries.len()
    );
    deliveries
        .into_iter()
        .map(|d| d.expect("checked above"))
        .collect()
}

/// Consumer settings for manual assignment: no group coordination is needed
/// (the broker has no consumer groups yet), offsets are never committed.
pub(crate) fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "fjord-it-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("allow.auto.create.topics", "false");
    config
}

/// Creates a consumer with [`consumer_config`].
pub(crate) fn consumer(bootstrap: &str) -> BaseConsumer {
    consumer_config(bootstrap)
        .create()
        .expect("create consumer")
}

/// Reads records starting at the given (partition, offset) positions until
/// `expected` records arrived (then keeps polling `linger` more to catch
/// extra or duplicate records) or the timeout passes. Consumer errors fail
/// the test.
pub(crate) fn consume(
    bootstrap: &str,
    topic: &str,
    starts: &[(i32, Offset)],
    expected: usize,
    timeout: Duration,
) -> Vec<ConsumedRecord> {
    consume_with(
        &consumer(bootstrap),
        topic,
        starts,
        expected,
        timeout,
        Duration::from_millis(500),
    )
}

/// Like [`consume`] with an existing consumer and an explicit linger.
pub(crate) fn consume_with(
    consumer: &BaseConsumer,
    topic: &str,
    starts: &[(i32, Offset)],
    expected: usize,
    timeout: Duration,
    linger: Duration,
) -> Vec<ConsumedRecord> {
    let mut assignment = TopicPartitionList::new();
    for (partition, offset) in starts {
        assignment
            .add_partition_offset(topic, *partition, *offset)
            .expect("add partition");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut records = Vec::with_capacity(expected);
    let mut done_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || done_at.is_some_and(|at| now >= at) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(ConsumedRecord {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    headers,
                    timestamp: message.timestamp(),
                });
            }
            // Connection-level events from a broker restart are informational:
            // librdkafka reconnects by itself. Anything else fails the test.
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure,
            ))) => {}
            Some(Err(err)) => panic!(
                "consumer error on {topic} after {} records: {err}",
                records.len()
            ),
        }
        if records.len() >= expected && done_at.is_none() {
            done_at = Some(Instant::now() + linger);
        }
    }
    records
}

/// Asserts that `consumed` holds exactly the `records` at the positions in
/// `positions` (one per record): every byte of key, value, headers and the
/// creation timestamp, each record once, and offsets contiguous from
/// `first_offset[partition]` (0 when absent) without gaps in each partition.
pub(crate) fn assert_consumed_exactly(
    records: &[TestRecord],
    positions: &[(i32, i64)],
    consumed: &[ConsumedRecord],
) {
    assert_eq!(records.len(), positions.len());
    let mut expected: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for (index, position) in positions.iter().enumerate() {
        assert!(
            expected.insert(*position, index).is_none(),
            "two records acknowledged at {position:?}"
        );
    }
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for (n, record) in consumed.iter().enumerate() {
        let position = (record.partition, record.offset);
        if let Some(previous) = seen.insert(position, n) {
            panic!("offset {position:?} delivered twice (consumed #{previous} and #{n})");
        }
        if let Some(last) = last_offset.insert(record.partition, record.offset) {
            assert!(
                record.offset > last,
                "partition {} went backwards: offset {} after {last}",
                record.partition,
                record.offset
            );
        }
        let Some(&index) = expected.get(&position) else {
            panic!("consumed a record at {position:?} that was never acknowledged: {record:?}");
        };
        let want = &records[index];
        assert_eq!(
            record.key, want.key,
            "key of record #{index} at {position:?}"
        );
        assert_eq!(
            record.value, want.value,
            "value of record #{index} at {position:?}"
        );
        assert_eq!(
            record.headers, want.headers,
            "headers of record #{index} at {position:?}"
        );
        assert_eq!(
            record.timestamp,
            Timestamp::CreateTime(want.timestamp_ms),
            "timestamp of record #{index} at {position:?}"
        );
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|p| !seen.contains_key(p))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records were not consumed, e.g. {missing:?}",
        expected.len() - seen.len().min(expected.len())
    );
    assert_eq!(consumed.len(), records.len(), "consumed count");
    // Contiguity: per partition, offsets are exactly min..min+count.
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (partition, offset) in seen.keys() {
        per_partition.entry(*partition).or_default().push(*offset);
    }
    for (partition, offsets) in per_partition {
        let first = offsets[0];
        for (i, offset) in offsets.iter().enumerate() {
            assert_eq!(
                *offset,
                first + i as i64,
                "offsets in partition {partition} are not contiguous"
            );
        }
    }
}

/// An admin client for `bootstrap`.
pub(crate) fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("create admin client")
}

/// Admin options with bounded request and operation timeouts.
pub(crate) fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(CALL_TIMEOUT))
        .operation_timeout(Some(CALL_TIMEOUT))
}

/// Creates a topic with replication factor 1 and asserts success.
pub(crate) fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin = admin(bootstrap);
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &admin_options()))
        .expect("CreateTopics request");
    assert_eq!(results, vec![Ok(topic.to_string())], "create topic {topic}");
}

/// The partition count of `topic` per the broker's metadata, or the topic error.
pub(crate) fn partition_count(bootstrap: &str, topic: &str) -> Result<usize, RDKafkaErrorCode> {
    let consumer = consumer(bootstrap);
    let metadata = consumer
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .expect("fetch metadata");
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .expect("topic in metadata response");
    match found.error() {
        Some(err) => Err(err.into()),
        None => Ok(found.partitions().len()),
    }
}

/// (low, high) watermarks of one partition.
pub(crate) fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    consumer(bootstrap)
        .fetch_watermarks(topic, partition, CALL_TIMEOUT)
        .expect("fetch watermarks")
}

/// Produces a few records to `topic` (auto-created or existing) with
/// librdkafka and reads them back: proves the broker still serves clients.
pub(crate) fn assert_clients_work(bootstrap: &str, topic: &str) {
    let records = generate_records(20, 99, now_ms());
    let positions = produce_ok(
        bootstrap,
        topic,
        &records,
        &[("acks", "all")],
        Duration::from_secs(15),
    );
    let partitions: std::collections::BTreeSet<i32> = positions.iter().map(|p| p.0).collect();
    let starts: Vec<(i32, Offset)> = partitions
        .iter()
        .map(|p| {
            let first = positions
                .iter()
                .filter(|x| x.0 == *p)
                .map(|x| x.1)
                .min()
                .expect("non-empty");
            (*p, Offset::Offset(first))
        })
        .collect();
    let consumed = consume(
        bootstrap,
        topic,
        &starts,
        records.len(),
        Duration::from_secs(15),
    );
    assert_consumed_exactly(&records, &positions, &consumed);
}

/// A consumer assigned to every partition of `topic` from the beginning, at `isolation`.
#[allow(dead_code)]
pub(crate) fn reader(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> BaseConsumer {
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .set("isolation.level", isolation)
        .create()
        .expect("create consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// Polls values until `quiet` passes without a new one or `timeout` ends.
#[allow(dead_code)]
pub(crate) fn drain(consumer: &BaseConsumer, quiet: Duration, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    let mut out = Vec::new();
    while Instant::now() < deadline && last.elapsed() < quiet {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
                last = Instant::now();
            }
            // A broker restarting is informational: librdkafka reconnects by itself.
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure,
            ))) => {}
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

/// Every value a consumer at `isolation` reads from the start of `partitions` partitions of
/// `topic`, sorted; stops once nothing new arrived for `quiet` (at most a minute).
#[allow(dead_code)]
pub(crate) fn read_values(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
    quiet: Duration,
) -> Vec<String> {
    let mut values = drain(
        &reader(bootstrap, topic, partitions, isolation),
        quiet,
        Duration::from_secs(60),
    );
    values.sort();
    values
}

/// Sends `values` (as key and value) round-robin over `partitions` partitions of `topic`, in
/// the producer's open transaction if it has one, and waits until all are acknowledged.
#[allow(dead_code)]
pub(crate) fn send_values(
    producer: &ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    partitions: i32,
    values: &[String],
) {
    for (i, v) in values.iter().enumerate() {
        let partition = i as i32 % partitions;
        producer
            .send(
                BaseRecord::<str, str>::to(topic)
                    .partition(partition)
                    .key(v)
                    .payload(v),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

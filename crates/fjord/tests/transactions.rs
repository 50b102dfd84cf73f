//! Transactions with a real client: librdkafka's transactional producer (`transactional.id`)
//! and consumers at both isolation levels.
//!
//! Covers atomic visibility across partitions, aborts, the last stable offset seen through
//! ListOffsets, zombie fencing, the coordinator's timeout abort, a broker kill -9 in the
//! middle of a transaction, and a consume-transform-produce application killed with SIGKILL at
//! random points whose output must hold every input exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

/// A transactional producer, its transactions initialised.
fn txn_producer(bootstrap: &str, transactional_id: &str, extra: &[(&str, &str)]) -> TxnProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let producer: TxnProducer = config.create().expect("create transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    producer
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// High watermark of a partition as a consumer at `isolation` sees it (ListOffsets latest).
fn latest(bootstrap: &str, topic: &str, partition: i32, isolation: &str) -> i64 {
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .set("isolation.level", isolation)
        .create()
        .expect("create consumer");
    consumer
        .fetch_watermarks(topic, partition, CALL_TIMEOUT)
        .expect("watermarks")
        .1
}

#[test]
fn committed_transactions_appear_atomically_and_aborted_ones_only_to_read_uncommitted() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "tx-basic", 3);
    let producer = txn_producer(&bootstrap, "tx-basic-app", &[]);

    producer.begin_transaction().expect("begin");
    send_values(&producer, "tx-basic", 3, &values("a", 30));
    producer.commit_transaction(CALL_TIMEOUT).expect("commit a");

    producer.begin_transaction().expect("begin");
    send_values(&producer, "tx-basic", 3, &values("b", 30));
    producer.abort_transaction(CALL_TIMEOUT).expect("abort b");

    // An open transaction: written and acknowledged, but not yet visible to read_committed.
    producer.begin_transaction().expect("begin");
    send_values(&producer, "tx-basic", 3, &values("c", 30));
    let committed_reader = reader(&bootstrap, "tx-basic", 3, "read_committed");
    let seen = drain(
        &committed_reader,
        Duration::from_secs(2),
        Duration::from_secs(20),
    );
    assert_eq!(sorted(seen), sorted(values("a", 30)), "only a is committed");
    for p in 0..3 {
        let committed = latest(&bootstrap, "tx-basic", p, "read_committed");
        let uncommitted = latest(&bootstrap, "tx-basic", p, "read_uncommitted");
        // Per partition: 10 of a + marker, 10 of b + marker, then c's 10 open.
        assert_eq!(
            committed, 22,
            "partition {p}: last stable offset stops before c"
        );
        assert_eq!(uncommitted, 32, "partition {p}: log end includes c");
    }

    producer.commit_transaction(CALL_TIMEOUT).expect("commit c");
    let seen = drain(
        &committed_reader,
        Duration::from_secs(2),
        Duration::from_secs(20),
    );
    assert_eq!(
        sorted(seen),
        sorted(values("c", 30)),
        "c appears once committed"
    );
    for p in 0..3 {
        assert_eq!(latest(&bootstrap, "tx-basic", p, "read_committed"), 33);
    }

    let uncommitted_reader = reader(&bootstrap, "tx-basic", 3, "read_uncommitted");
    let all = drain(
        &uncommitted_reader,
        Duration::from_secs(2),
        Duration::from_secs(20),
    );
    let mut expected = values("a", 30);
    expected.extend(values("b", 30));
    expected.extend(values("c", 30));
    assert_eq!(
        sorted(all),
        sorted(expected),
        "read_uncommitted sees aborted data too, never markers"
    );
}

#[test]
fn a_zombie_with_the_same_transactional_id_is_fenced() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "tx-zombie", 2);
    let zombie = txn_producer(&bootstrap, "tx-zombie-app", &[]);
    zombie.begin_transaction().expect("begin");
    send_values(&zombie, "tx-zombie", 2, &values("zombie", 10));

    // A new instance takes over the id: the zombie's open transaction is aborted.
    let successor = txn_producer(&bootstrap, "tx-zombie-app", &[]);
    let err = zombie
        .commit_transaction(CALL_TIMEOUT)
        .expect_err("the zombie cannot commit");
    match &err {
        KafkaError::Transaction(e) => assert!(e.is_fatal(), "fencing is fatal: {e}"),
        other => panic!("unexpected error {other:?}"),
    }
    successor.begin_transaction().expect("begin");
    send_values(&successor, "tx-zombie", 2, &values("successor", 10));
    successor.commit_transaction(CALL_TIMEOUT).expect("commit");

    let seen = drain(
        &reader(&bootstrap, "tx-zombie", 2, "read_committed"),
        Duration::from_secs(2),
        Duration::from_secs(20),
    );
    assert_eq!(sorted(seen), sorted(values("successor", 10)));
}

#[test]
fn a_transaction_left_open_past_its_timeout_is_aborted_by_the_coordinator() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "tx-timeout", 1);
    let producer = txn_producer(
        &bootstrap,
        "tx-timeout-app",
        &[
            ("transaction.timeout.ms", "2000"),
            ("message.timeout.ms", "2000"),
        ],
    );
    producer.begin_transaction().expect("begin");
    send_values(&producer, "tx-timeout", 1, &values("hung", 5));
    assert_eq!(latest(&bootstrap, "tx-timeout", 0, "read_committed"), 0);

    // The coordinator aborts it: the abort marker makes the partition stable again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while latest(&bootstrap, "tx-timeout", 0, "read_committed") != 6 {
        assert!(
            Instant::now() < deadline,
            "the hung transaction was not aborted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        producer.commit_transaction(CALL_TIMEOUT).is_err(),
        "the timed-out producer was fenced"
    );
    let seen = drain(
        &reader(&bootstrap, "tx-timeout", 1, "read_committed"),
        Duration::from_secs(2),
        Duration::from_secs(10),
    );
    assert!(seen.is_empty(), "aborted data is invisible: {seen:?}");
}

#[test]
fn broker_kill_9_mid_transaction_exposes_no_partial_transaction() {
    let mut broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "tx-crash", 3);
    {
        let producer = txn_producer(&bootstrap, "tx-crash-app", &[]);
        producer.begin_transaction().expect("begin");
        send_values(&producer, "tx-crash", 3, &values("done", 30));
        producer.commit_transaction(CALL_TIMEOUT).expect("commit");
        producer.begin_transaction().expect("begin");
        send_values(&producer, "tx-crash", 3, &values("open", 30));
        broker.kill().expect("kill -9");
    }
    restart(&mut broker);

    let committed_reader = reader(&bootstrap, "tx-crash", 3, "read_committed");
    let seen = drain(
        &committed_reader,
        Duration::from_secs(3),
        Duration::from_secs(30),
    );
    assert_eq!(
        sorted(seen),
        sorted(values("done", 30)),
        "the open transaction stays hidden"
    );

    // A new instance of the application aborts the leftover transaction and carries on.
    let producer = txn_producer(&bootstrap, "tx-crash-app", &[]);
    producer.begin_transaction().expect("begin");
    send_values(&producer, "tx-crash", 3, &values("after", 30));
    producer.commit_transaction(CALL_TIMEOUT).expect("commit");
    let seen = drain(
        &committed_reader,
        Duration::from_secs(3),
        Duration::from_secs(30),
    );
    assert_eq!(sorted(seen), sorted(values("after", 30)));
    for p in 0..3 {
        assert_eq!(
            latest(&bootstrap, "tx-crash", p, "read_committed"),
            latest(&bootstrap, "tx-crash", p, "read_uncommitted"),
            "partition {p} is stable again"
        );
    }
}

const EOS_INPUT: &str = "eos-in";
const EOS_OUTPUT: &str = "eos-out";
const EOS_PARTITIONS: i32 = 3;
const EOS_RECORDS: usize = 3000;

/// Starts this test binary as the consume-transform-produce application (see
/// [`eos_application`]).
fn spawn_application(bootstrap: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "eos_application", "--ignored", "--nocapture"])
        .env("FJORD_EOS_BOOTSTRAP", bootstrap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn application")
}

/// The application run by [`consume_transform_produce_is_exactly_once_across_application_kills`]
/// in a child process: reads `eos-in` in group `eos-app`, writes each value upper-cased to
/// `eos-out`, committing output and input offsets in one transaction every few records. It runs
/// until it is killed (or for two minutes at most).
#[test]
#[ignore = "run as a child process by the exactly-once test"]
fn eos_application() {
    let Ok(bootstrap) = std::env::var("FJORD_EOS_BOOTSTRAP") else {
        return;
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "eos-app")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000")
        // Static membership: a restarted instance gets its partitions back at once.
        .set("group.instance.id", "eos-app-1")
        .create()
        .expect("consumer");
    consumer.subscribe(&[EOS_INPUT]).expect("subscribe");
    let producer = txn_producer(&bootstrap, "eos-app-txn", &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        producer.begin_transaction().expect("begin");
        let mut batch = 0;
        while batch < 20 {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    // Slow enough that the kills land in the middle of the stream.
                    std::thread::sleep(Duration::from_millis(3));
                    let value =
                        String::from_utf8_lossy(m.payload().unwrap_or_default()).to_uppercase();
                    producer
                        .send(
                            BaseRecord::<str, str>::to(EOS_OUTPUT)
                                .partition(m.partition())
                                .payload(&value),
                        )
                        .map_err(|(e, _)| e)
                        .expect("send");
                    batch += 1;
                }
                Some(Err(e)) => panic!("consume: {e}"),
                None => break,
            }
        }
        let position = consumer.position().expect("position");
        producer
            .send_offsets_to_transaction(
                &position,
                &consumer.group_metadata().expect("group metadata"),
                CALL_TIMEOUT,
            )
            .expect("send offsets");
        producer.commit_transaction(CALL_TIMEOUT).expect("commit");
    }
}

#[test]
fn consume_transform_produce_is_exactly_once_across_application_kills() {
    let broker = start_broker(&[("group.initial.rebalance.delay.ms", "0")]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, EOS_INPUT, EOS_PARTITIONS);
    create_topic(&bootstrap, EOS_OUTPUT, EOS_PARTITIONS);
    let inputs: Vec<String> = values("record", EOS_RECORDS);
    let records: Vec<TestRecord> = inputs
        .iter()
        .enumerate()
        .map(|(i, v)| TestRecord {
            partition: Some(i as i32 % EOS_PARTITIONS),
            key: None,
            value: Some(v.clone().into_bytes()),
            headers: Vec::new(),
            timestamp_ms: now_ms(),
        })
        .collect();
    let delivered = produce_all(
        &bootstrap,
        EOS_INPUT,
        &records,
        &[],
        Duration::from_secs(60),
    );
    assert!(delivered.iter().all(Result::is_ok), "input produced");

    // Kill the application with SIGKILL at pseudo-random points, then let a last run finish.
    let mut rng = Rng::new(0xe05);
    for _ in 0..4 {
        let mut app = spawn_application(&bootstrap);
        std::thread::sleep(Duration::from_millis(1500 + rng.below(2000)));
        app.kill().expect("SIGKILL the application");
        let _ = app.wait();
    }
    let expected: BTreeSet<String> = inputs.iter().map(|v| v.to_uppercase()).collect();
    let mut app = spawn_application(&bootstrap);
    let output = reader(&bootstrap, EOS_OUTPUT, EOS_PARTITIONS, "read_committed");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match output.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                *seen.entry(v).or_default() += 1;
                quiet_since = Instant::now();
            }
            Some(Err(e)) => panic!("output consumer: {e}"),
            None => {}
        }
        if seen.len() >= expected.len() && quiet_since.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let _ = app.kill();
    let _ = app.wait();
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "duplicated output: {:?}",
        &duplicates[..duplicates.len().min(10)]
    );
    let keys: BTreeSet<String> = seen.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&keys).take(10).collect();
    assert!(missing.is_empty(), "missing output, e.g. {missing:?}");
    assert_eq!(keys, expected);
    // The kills interrupted transactions: their output was written and then aborted.
    let everything = drain(
        &reader(&bootstrap, EOS_OUTPUT, EOS_PARTITIONS, "read_uncommitted"),
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    assert!(
        everything.len() > expected.len(),
        "no aborted output: the kills missed every transaction ({} records)",
        everything.len()
    );
}

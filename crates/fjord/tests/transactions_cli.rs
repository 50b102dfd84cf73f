//! `fjord transactions` end to end: the real binary against a real broker,
//! with a transaction held open by librdkafka's transactional producer.
//!
//! Every command runs with a deadline and is killed if it overruns, so a
//! hanging tool fails the test instead of the CI job.

mod common;

use std::time::Duration;

use common::tool::{run_tool_with, ToolRun};
use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;

/// Upper bound for one tool invocation.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `fjord transactions --bootstrap-server B ARGS...`, killing it after
/// [`COMMAND_TIMEOUT`].
fn transactions(bootstrap: &str, args: &[&str]) -> ToolRun {
    let mut all = vec!["transactions", "--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    run_tool_with(&all, "", COMMAND_TIMEOUT)
}

/// Runs, asserts success and returns stdout.
fn ok(bootstrap: &str, args: &[&str]) -> String {
    let run = transactions(bootstrap, args);
    assert_eq!(
        run.code,
        Some(0),
        "fjord transactions {args:?} failed: {run:?}"
    );
    run.stdout
}

/// Runs with `--output json`, asserts success and parses stdout.
fn json(bootstrap: &str, args: &[&str]) -> Value {
    let mut argv = args.to_vec();
    argv.extend(["--output", "json"]);
    let stdout = ok(bootstrap, &argv);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("fjord transactions {args:?}: not JSON ({e}): {stdout}"))
}

/// Runs, asserts a non-zero exit and returns stderr.
fn fails(bootstrap: &str, args: &[&str]) -> String {
    let run = transactions(bootstrap, args);
    assert!(
        run.code.is_some_and(|c| c != 0),
        "fjord transactions {args:?} should have failed: {run:?}"
    );
    run.stderr
}

/// The cells of the table row whose first cell is `key`.
fn row<'a>(table: &'a str, key: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split('\t').map(str::trim).collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&key))
        .unwrap_or_else(|| panic!("no row {key:?} in\n{table}"))
}

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

/// A transactional producer with an open transaction holding `per_partition`
/// acknowledged records on each of `partitions`.
fn open_transaction(
    bootstrap: &str,
    transactional_id: &str,
    topic: &str,
    partitions: &[i32],
    per_partition: usize,
) -> TxnProducer {
    let producer: TxnProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "120000")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("create transactional producer");
    producer
        .init_transactions(CALL_TIMEOUT)
        .expect("init_transactions");
    producer.begin_transaction().expect("begin_transaction");
    for &partition in partitions {
        for i in 0..per_partition {
            let value = format!("open-{partition}-{i}");
            producer
                .send(
                    BaseRecord::<str, str>::to(topic)
                        .partition(partition)
                        .payload(&value),
                )
                .map_err(|(e, _)| e)
                .expect("enqueue");
        }
    }
    producer.flush(CALL_TIMEOUT).expect("flush");
    producer
}

/// High watermark of a partition at `isolation` (for read_committed: the
/// last stable offset).
fn high_watermark(bootstrap: &str, topic: &str, partition: i32, isolation: &str) -> i64 {
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .set("isolation.level", isolation)
        .create()
        .expect("create consumer");
    consumer
        .fetch_watermarks(topic, partition, CALL_TIMEOUT)
        .expect("fetch watermarks")
        .1
}

/// Plain (non-transactional) records on `partition`, so a transaction
/// starts at a non-zero offset.
fn produce_plain(bootstrap: &str, topic: &str, partition: i32, count: usize) {
    let records: Vec<TestRecord> = generate_records(count, 7, now_ms())
        .into_iter()
        .map(|r| TestRecord {
            partition: Some(partition),
            ..r
        })
        .collect();
    produce_ok(bootstrap, topic, &records, &[], CALL_TIMEOUT);
}

#[test]
fn open_transaction_is_listed_described_and_aborted() {
    let broker = start_broker(&[]);
    let b = broker.bootstrap();
    let topic = "txn-cli";
    create_topic(&b, topic, 2);
    produce_plain(&b, topic, 0, 2);
    let producer = open_transaction(&b, "txn-cli-app", topic, &[0, 1], 5);

    // list: the open transaction, in both output forms and through the filters.
    let listed = ok(&b, &["list"]);
    assert!(
        listed.starts_with("TransactionalId\tCoordinator\tProducerId\tTransactionState\n"),
        "{listed}"
    );
    let cells = row(&listed, "txn-cli-app");
    assert_eq!(cells[3], "Ongoing", "{listed}");
    let producer_id: i64 = cells[2].parse().expect("producer id");
    let entries = json(&b, &["list"]);
    let entry = entries
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["transactional_id"] == "txn-cli-app")
        .unwrap_or_else(|| panic!("txn-cli-app not listed: {entries}"));
    assert_eq!(entry["transaction_state"], "Ongoing");
    assert_eq!(entry["producer_id"], producer_id);
    let coordinator = entry["coordinator"]
        .as_i64()
        .expect("coordinator id")
        .to_string();
    let ongoing = json(
        &b,
        &[
            "list",
            "--state",
            "Ongoing",
            "--producer-id",
            &producer_id.to_string(),
        ],
    );
    assert_eq!(ongoing.as_array().map(Vec::len), Some(1), "{ongoing}");
    let committed = json(&b, &["list", "--state", "CompleteCommit"]);
    assert_eq!(committed, Value::Array(Vec::new()));
    let long_running = json(&b, &["list", "--duration-filter", "3600000"]);
    assert_eq!(long_running, Value::Array(Vec::new()));

    // describe: both partitions are in the transaction.
    let described = ok(&b, &["describe", "--transactional-id", "txn-cli-app"]);
    let header = described.lines().next().unwrap_or_default();
    let header: Vec<&str> = header.split('\t').map(str::trim).collect();
    assert_eq!(
        header,
        [
            "CoordinatorId",
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "TransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions"
        ]
    );
    let d = json(&b, &["describe", "--transactional-id", "txn-cli-app"]);
    assert_eq!(d["transactional_id"], "txn-cli-app");
    assert_eq!(d["producer_id"], producer_id);
    assert_eq!(d["transaction_state"], "Ongoing");
    assert_eq!(d["transaction_timeout_ms"], 120_000);
    assert!(
        d["current_transaction_start_time_ms"]
            .as_i64()
            .unwrap_or(-1)
            > 0,
        "{d}"
    );
    assert!(
        d["transaction_duration_ms"].as_i64().unwrap_or(-1) >= 0,
        "{d}"
    );
    assert_eq!(
        d["topic_partitions"],
        serde_json::json!([
            {"topic": topic, "partition": 0},
            {"topic": topic, "partition": 1}
        ])
    );
    let row_cells = described.lines().nth(1).unwrap_or_default();
    assert!(
        row_cells.trim_end().ends_with("txn-cli-0,txn-cli-1"),
        "{described}"
    );

    // describe-producers: the transaction starts after the two plain records.
    let producers = ok(
        &b,
        &["describe-producers", "--topic", topic, "--partition", "0"],
    );
    let cells = row(&producers, &producer_id.to_string());
    assert_eq!(cells[5], "2", "CurrentTransactionStartOffset: {producers}");
    let p1 = json(
        &b,
        &["describe-producers", "--topic", topic, "--partition", "1"],
    );
    let p1 = &p1.as_array().expect("array")[0];
    assert_eq!(p1["producer_id"], producer_id);
    assert_eq!(p1["current_transaction_start_offset"], 0);
    let epoch = p1["producer_epoch"].as_i64().expect("epoch").to_string();

    // find-hanging: open and older than a zero timeout, but its coordinator
    // still runs it on these partitions, so it is not hanging.
    let hanging = json(
        &b,
        &[
            "find-hanging",
            "--topic",
            topic,
            "--max-transaction-timeout",
            "0",
        ],
    );
    assert_eq!(hanging, Value::Array(Vec::new()));
    let table = ok(&b, &["find-hanging", "--broker-id", &coordinator]);
    assert!(table.starts_with("Topic\tPartition\tProducerId"), "{table}");

    // Until the abort, read_committed readers stop at the transaction's start.
    assert_eq!(high_watermark(&b, topic, 0, "read_committed"), 2);
    assert_eq!(high_watermark(&b, topic, 0, "read_uncommitted"), 7);

    // abort by start offset, then explicitly by producer.
    let wrong = fails(
        &b,
        &[
            "abort",
            "--topic",
            topic,
            "--partition",
            "0",
            "--start-offset",
            "3",
        ],
    );
    assert!(
        wrong.contains("Could not find any open transactions starting at offset 3"),
        "{wrong}"
    );
    let aborted = ok(
        &b,
        &[
            "abort",
            "--topic",
            topic,
            "--partition",
            "0",
            "--start-offset",
            "2",
        ],
    );
    assert!(
        aborted.contains(&format!(
            "Aborted the transaction of producer {producer_id}"
        )) && aborted.contains("on txn-cli-0 (started at offset 2)"),
        "{aborted}"
    );
    let end = high_watermark(&b, topic, 0, "read_uncommitted");
    assert_eq!(
        end, 8,
        "five records and the abort marker after the two plain ones"
    );
    assert_eq!(high_watermark(&b, topic, 0, "read_committed"), end);

    let explicit = json(
        &b,
        &[
            "abort",
            "--topic",
            topic,
            "--partition",
            "1",
            "--producer-id",
            &producer_id.to_string(),
            "--producer-epoch",
            &epoch,
            "--coordinator-epoch",
            "0",
        ],
    );
    assert_eq!(explicit["producer_id"], producer_id);
    assert_eq!(explicit["partition"], 1);
    assert_eq!(explicit["start_offset"], Value::Null);
    let end = high_watermark(&b, topic, 1, "read_uncommitted");
    assert_eq!(end, 6);
    assert_eq!(high_watermark(&b, topic, 1, "read_committed"), end);

    // The partition no longer has an open transaction.
    let after = json(
        &b,
        &["describe-producers", "--topic", topic, "--partition", "0"],
    );
    let after = &after.as_array().expect("array")[0];
    assert_eq!(after["current_transaction_start_offset"], Value::Null);
    drop(producer);
}

#[test]
fn unknown_ids_partitions_and_brokers_fail_clearly() {
    let broker = start_broker(&[]);
    let b = broker.bootstrap();
    create_topic(&b, "txn-cli-errors", 1);

    let unknown = fails(&b, &["describe", "--transactional-id", "no-such-app"]);
    assert!(unknown.contains("TRANSACTIONAL_ID_NOT_FOUND"), "{unknown}");
    assert!(unknown.contains("no-such-app"), "{unknown}");

    let no_open = fails(
        &b,
        &[
            "abort",
            "--topic",
            "txn-cli-errors",
            "--partition",
            "0",
            "--start-offset",
            "0",
        ],
    );
    assert!(no_open.contains("no transaction is open"), "{no_open}");

    let no_partition = fails(
        &b,
        &[
            "describe-producers",
            "--topic",
            "txn-cli-errors",
            "--partition",
            "5",
        ],
    );
    assert!(no_partition.contains("no partition 5"), "{no_partition}");

    let no_topic = fails(
        &b,
        &[
            "describe-producers",
            "--topic",
            "txn-cli-missing",
            "--partition",
            "0",
        ],
    );
    assert!(
        no_topic.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{no_topic}"
    );

    let half = fails(
        &b,
        &[
            "abort",
            "--topic",
            "txn-cli-errors",
            "--partition",
            "0",
            "--producer-id",
            "1",
        ],
    );
    assert!(half.contains("--coordinator-epoch"), "{half}");

    // Nothing listens on the broker's port once it is gone.
    drop(broker);
    let unreachable = fails(&b, &["list"]);
    assert!(
        unreachable.contains(&format!("could not reach the cluster at {b}")),
        "{unreachable}"
    );
}

//! End to end: the real `fjord groups` binary (kafka-consumer-groups.sh's
//! counterpart) against a real broker, with a librdkafka group consumer
//! committing offsets: list, describe (lag), members, state, reset in all
//! its main flavours, and delete.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::Message;

const TOPIC: &str = "groups-cli-orders";
const GROUP: &str = "groups-cli-app";

/// The outcome of one `fjord groups` run.
#[derive(Debug)]
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `fjord groups --bootstrap-server B ARGS...`, killing it after 60 s.
fn groups(bootstrap: &str, args: &[&str]) -> Run {
    let mut child = Command::new(fjord_bin())
        .arg("groups")
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fjord groups");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait for fjord groups").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child
        .wait_with_output()
        .expect("collect fjord groups output");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Like [`groups`], asserting success.
fn groups_ok(bootstrap: &str, args: &[&str]) -> String {
    let run = groups(bootstrap, args);
    assert!(
        run.ok,
        "fjord groups {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run.stdout
}

/// Parses Kafka-style tables (header lines start with "GROUP") into one map
/// per row, keyed by column header. Headers must not contain blanks.
fn parse_tables(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut rows = Vec::new();
    let mut headers: Vec<String> = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.is_empty() {
            continue;
        }
        if cells[0] == "GROUP" {
            headers = cells.iter().map(|c| c.to_string()).collect();
            continue;
        }
        assert_eq!(
            cells.len(),
            headers.len(),
            "row {line:?} does not match header {headers:?}"
        );
        rows.push(
            headers
                .iter()
                .cloned()
                .zip(cells.iter().map(|c| c.to_string()))
                .collect(),
        );
    }
    rows
}

/// The describe row of one partition of [`TOPIC`].
fn partition_row(rows: &[BTreeMap<String, String>], partition: i32) -> BTreeMap<String, String> {
    rows.iter()
        .find(|r| r["TOPIC"] == TOPIC && r["PARTITION"] == partition.to_string())
        .unwrap_or_else(|| panic!("no row for {TOPIC}-{partition} in {rows:#?}"))
        .clone()
}

/// (CURRENT-OFFSET, LOG-END-OFFSET, LAG) of one partition per `--describe`.
fn describe_offsets(bootstrap: &str, partition: i32) -> (String, String, String) {
    let out = groups_ok(bootstrap, &["--describe", "--group", GROUP]);
    let row = partition_row(&parse_tables(&out), partition);
    (
        row["CURRENT-OFFSET"].clone(),
        row["LOG-END-OFFSET"].clone(),
        row["LAG"].clone(),
    )
}

/// The group's state per `--describe --state --output json`.
fn group_state(bootstrap: &str) -> String {
    let out = groups_ok(
        bootstrap,
        &[
            "--describe",
            "--group",
            GROUP,
            "--state",
            "--output",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("describe --state JSON");
    v[0]["state"].as_str().expect("state string").to_string()
}

/// Produces `count` records to one partition with creation timestamps
/// starting at `ts_base`.
fn produce_to(bootstrap: &str, partition: i32, count: usize, seed: u64, ts_base: i64) {
    let mut records = generate_records(count, seed, ts_base);
    for r in &mut records {
        r.partition = Some(partition);
    }
    produce_ok(
        bootstrap,
        TOPIC,
        &records,
        &[("acks", "all")],
        Duration::from_secs(30),
    );
}

/// A subscribed group member that commits explicitly.
fn group_consumer(bootstrap: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("client.id", "groups-cli-test")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create group consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    consumer
}

/// Polls until `expected` records arrived (failing on consumer errors or
/// after the timeout), then commits the consumer's positions synchronously.
fn consume_and_commit(consumer: &BaseConsumer, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < expected {
        assert!(
            Instant::now() < deadline,
            "consumed only {seen} of {expected} records"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                assert_eq!(m.topic(), TOPIC);
                seen += 1;
            }
            Some(Err(err)) => panic!("group consumer error after {seen} records: {err}"),
        }
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit consumed offsets");
}

/// Waits until `cond` holds, re-checking every 200 ms for up to 30 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn groups_cli_lifecycle() {
    let broker = start_broker(&[("group.initial.rebalance.delay.ms", "0")]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, TOPIC, 2);

    // 20 old records per partition (ten minutes ago), consumed and committed
    // by an active group member.
    let old = now_ms() - 600_000;
    produce_to(&bootstrap, 0, 20, 1, old);
    produce_to(&bootstrap, 1, 20, 2, old);
    let consumer = group_consumer(&bootstrap);
    consume_and_commit(&consumer, 40);

    // Then new records the member has not consumed: lag 5 and 3.
    let new = now_ms();
    produce_to(&bootstrap, 0, 5, 3, new);
    produce_to(&bootstrap, 1, 3, 4, new);

    // --list and --list --state.
    let list = groups_ok(&bootstrap, &["--list"]);
    assert!(
        list.lines().any(|l| l == GROUP),
        "--list lacks {GROUP}:\n{list}"
    );
    let states = parse_tables(&groups_ok(&bootstrap, &["--list", "--state"]));
    let row = states
        .iter()
        .find(|r| r["GROUP"] == GROUP)
        .unwrap_or_else(|| panic!("--list --state lacks {GROUP}: {states:?}"));
    assert_eq!(row["STATE"], "Stable");
    let filtered = groups_ok(&bootstrap, &["--list", "--state", "Empty"]);
    assert!(
        !filtered.contains(GROUP),
        "state filter kept a Stable group:\n{filtered}"
    );

    // --describe: Kafka's columns, lag = log end - committed, the member shown.
    let out = groups_ok(&bootstrap, &["--describe", "--group", GROUP]);
    let header = out
        .lines()
        .find(|l| l.starts_with("GROUP"))
        .expect("header");
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID"
        ]
    );
    let rows = parse_tables(&out);
    for (partition, end, lag) in [(0, "25", "5"), (1, "23", "3")] {
        let row = partition_row(&rows, partition);
        assert_eq!(row["GROUP"], GROUP);
        assert_eq!(row["CURRENT-OFFSET"], "20", "{row:?}");
        assert_eq!(row["LOG-END-OFFSET"], end, "{row:?}");
        assert_eq!(row["LAG"], lag, "{row:?}");
        assert_ne!(row["CONSUMER-ID"], "-", "an active member owns {row:?}");
        assert_eq!(row["CLIENT-ID"], "groups-cli-test");
    }

    // JSON output carries the same numbers.
    let json: serde_json::Value = serde_json::from_str(&groups_ok(
        &bootstrap,
        &["--describe", "--group", GROUP, "--output", "json"],
    ))
    .expect("describe JSON");
    let offsets = json[0]["offsets"].as_array().expect("offsets array");
    let p0 = offsets
        .iter()
        .find(|o| o["partition"] == 0)
        .expect("partition 0 in JSON");
    assert_eq!(p0["lag"], 5);
    assert_eq!(p0["log_end_offset"], 25);

    // --members: one member owning both partitions.
    let members = parse_tables(&groups_ok(
        &bootstrap,
        &["--describe", "--group", GROUP, "--members"],
    ));
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["#PARTITIONS"], "2");
    assert_eq!(group_state(&bootstrap), "Stable");

    // Resetting an active group is refused, with Kafka's explanation.
    let refused = groups(
        &bootstrap,
        &[
            "--reset-offsets",
            "--group",
            GROUP,
            "--topic",
            TOPIC,
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(
        !refused.ok,
        "reset of an active group succeeded: {refused:?}"
    );
    assert!(
        refused.stderr.contains("inactive") && refused.stderr.contains("Stable"),
        "unclear refusal: {}",
        refused.stderr
    );
    // So is deleting it.
    let refused = groups(&bootstrap, &["--delete", "--group", GROUP]);
    assert!(
        !refused.ok,
        "delete of an active group succeeded: {refused:?}"
    );

    // The member leaves; the group becomes Empty and keeps its offsets.
    consumer.unsubscribe();
    drop(consumer);
    wait_for("the group to become Empty", || {
        group_state(&bootstrap) == "Empty"
    });
    let out = groups_ok(&bootstrap, &["--describe", "--group", GROUP]);
    let row = partition_row(&parse_tables(&out), 0);
    assert_eq!(
        (
            row["CURRENT-OFFSET"].as_str(),
            row["LAG"].as_str(),
            row["CONSUMER-ID"].as_str()
        ),
        ("20", "5", "-")
    );

    // Dry run (the default): the plan is printed, nothing changes.
    let plan = parse_tables(&groups_ok(
        &bootstrap,
        &[
            "--reset-offsets",
            "--group",
            GROUP,
            "--topic",
            TOPIC,
            "--to-earliest",
        ],
    ));
    assert_eq!(plan.len(), 2, "{plan:?}");
    assert!(plan.iter().all(|r| r["NEW-OFFSET"] == "0"), "{plan:?}");
    assert_eq!(
        describe_offsets(&bootstrap, 0),
        ("20".into(), "25".into(), "5".into())
    );

    // --to-earliest --execute.
    groups_ok(
        &bootstrap,
        &[
            "--reset-offsets",
            "--group",
            GROUP,
            "--topic",
            TOPIC,
            "--to-earliest",
            "--execute",
        ],
    );
    assert_eq!(
        describe_offsets(&bootstrap, 0),
        ("0".into(), "25".into(), "25".into())
    );
    assert_eq!(
        describe_offsets(&bootstrap, 1),
        ("0".into(), "23".into(), "23".into())
    );

    // --shift-by on one partition only; clamped at the log end.
    groups_ok(
        &bootstrap,
        &[
            "--reset-offsets",
            "--group",
            GROUP,
            "--topic",
            &format!("{TOPIC}:1"),
            "--shift-by",
            "7",
            "--execute",
        ],
    );
    assert_eq!(describe_offsets(&bootstrap, 0).0, "0");
    assert_eq!(describe_offsets(&bootstrap, 1).0, "7");
    let clamped = groups_ok(
        &bootstrap,
        &[
            "--reset-offsets",
            "--group",
            GROUP,
            "--all-topics",
            "--to-offset",
            "1000",
            "--dry-run",
        ],
    );
    let plan = parse_tables(&clamped);
    assert_eq!(partition_row(&plan, 0)["NEW-OFFSET"], "25");
    assert_eq!(partition_row(&plan, 1)["NEW-OFFSET"], "23");

    // --by-duration: five minutes ago falls between the old and new records.
    groups_ok(
        &bootstrap,
        &[
            "--reset-offsets",
            "--group",
            GROUP,
            "--all-topics",
            "--by-duration",
            "PT5M",
            "--execute",
        ],
    );
    assert_eq!(
        describe_offsets(&bootstrap, 0),
        ("20".into(), "25".into(), "5".into())
    );
    assert_eq!(describe_offsets(&bootstrap, 1).0, "20");

    // --to-latest: no lag left.
    groups_ok(
        &bootstrap,
        &[
            "--reset-offsets",
            "--group",
            GROUP,
            "--all-topics",
            "--to-latest",
            "--execute",
        ],
    );
    assert_eq!(
        describe_offsets(&bootstrap, 1),
        ("23".into(), "23".into(), "0".into())
    );

    // A consumer that joins now starts at the reset position: it sees only
    // records produced after the reset.
    produce_to(&bootstrap, 0, 2, 5, now_ms());
    let consumer = group_consumer(&bootstrap);
    consume_and_commit(&consumer, 2);
    consumer.unsubscribe();
    drop(consumer);
    wait_for("the group to become Empty again", || {
        group_state(&bootstrap) == "Empty"
    });
    assert_eq!(
        describe_offsets(&bootstrap, 0),
        ("27".into(), "27".into(), "0".into())
    );

    // --delete: gone from --list, and describing it fails.
    let out = groups_ok(&bootstrap, &["--delete", "--group", GROUP]);
    assert!(out.contains("was successful"), "{out}");
    let list = groups_ok(&bootstrap, &["--list"]);
    assert!(
        !list.lines().any(|l| l == GROUP),
        "deleted group still listed:\n{list}"
    );
    let gone = groups(&bootstrap, &["--describe", "--group", GROUP]);
    assert!(!gone.ok, "describing a deleted group succeeded: {gone:?}");
    assert!(gone.stderr.contains("does not exist"), "{}", gone.stderr);
}

#[test]
fn groups_cli_errors_are_clear() {
    let broker = start_broker(&[("group.initial.rebalance.delay.ms", "0")]);
    let bootstrap = broker.bootstrap();

    let run = groups(&bootstrap, &["--describe", "--group", "no-such-group"]);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("Consumer group 'no-such-group' does not exist."),
        "{}",
        run.stderr
    );

    let run = groups(
        &bootstrap,
        &[
            "--reset-offsets",
            "--group",
            "g",
            "--topic",
            "no-such-topic",
            "--to-earliest",
        ],
    );
    assert!(!run.ok);
    assert!(
        run.stderr.contains("topic 'no-such-topic' does not exist"),
        "{}",
        run.stderr
    );

    // Usage errors: no action, a reset without a target.
    assert!(!groups(&bootstrap, &[]).ok);
    let run = groups(
        &bootstrap,
        &["--reset-offsets", "--group", "g", "--all-topics"],
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("--to-earliest"), "{}", run.stderr);

    // An unreachable cluster fails within the timeout, naming the address.
    let run = groups("127.0.0.1:1", &["--list", "--timeout", "1500"]);
    assert!(!run.ok);
    assert!(run.stderr.contains("127.0.0.1:1"), "{}", run.stderr);

    // An empty cluster lists nothing and succeeds.
    assert_eq!(groups_ok(&bootstrap, &["--list"]), "");
}

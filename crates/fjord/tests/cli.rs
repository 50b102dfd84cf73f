//! The operator tools end to end: `fjord topics`, `fjord configs`,
//! `fjord produce` and `fjord consume` run as the real binary against a real
//! broker, and their output is compared exactly where Kafka's tools define it.
//!
//! Every command runs with a deadline and is killed if it overruns, so a
//! hanging tool fails the test instead of the CI job.

mod common;

use std::time::Duration;

use common::start_broker;
use common::tool::{run_tool_with, ToolRun};

/// Upper bound for one tool invocation.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

type Run = ToolRun;

/// Runs `fjord ARGS...` with `stdin` as input, killing it after `timeout`.
fn fjord_with(args: &[&str], stdin: &str, timeout: Duration) -> Run {
    run_tool_with(args, stdin, timeout)
}

fn fjord(args: &[&str]) -> Run {
    fjord_with(args, "", COMMAND_TIMEOUT)
}

/// Runs and asserts success, returning stdout.
fn fjord_ok(args: &[&str]) -> String {
    let run = fjord(args);
    assert!(run.ok(), "fjord {args:?} failed: {run:?}");
    run.stdout
}

/// Runs and asserts failure, returning stderr.
fn fjord_fails(args: &[&str]) -> String {
    let run = fjord(args);
    assert!(
        run.code.is_some_and(|c| c != 0),
        "fjord {args:?} should have failed: {run:?}"
    );
    run.stderr
}

/// `["topics", "--bootstrap-server", B, rest...]`.
fn with_bootstrap<'a>(tool: &'a str, bootstrap: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![tool, "--bootstrap-server", bootstrap];
    v.extend_from_slice(rest);
    v
}

#[test]
fn topics_create_list_describe_alter_delete() {
    let broker = start_broker(&[]);
    let b = broker.bootstrap();
    let topics = |rest: &[&str]| {
        with_bootstrap("topics", &b, rest)
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let run = |rest: &[&str]| {
        let argv = topics(rest);
        fjord(&argv.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let created = run(&[
        "--create",
        "--topic",
        "orders",
        "--partitions",
        "3",
        "--replication-factor",
        "1",
        "--config",
        "retention.ms=86400000",
    ]);
    assert!(created.ok(), "{created:?}");
    assert_eq!(created.stdout, "Created topic orders.\n");

    let again = run(&["--create", "--topic", "orders"]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(
        again.stderr.contains("Topic 'orders' already exists."),
        "{again:?}"
    );
    let quiet = run(&["--create", "--topic", "orders", "--if-not-exists"]);
    assert!(quiet.ok(), "{quiet:?}");
    assert_eq!(quiet.stdout, "");

    // Broker defaults for partitions and replication factor.
    assert!(run(&["--create", "--topic", "payments"]).ok());

    let list = run(&["--list", "--exclude-internal"]);
    assert!(list.ok(), "{list:?}");
    assert_eq!(list.stdout, "orders\npayments\n");

    let described = run(&["--describe", "--topic", "orders"]);
    assert!(described.ok(), "{described:?}");
    let lines: Vec<&str> = described.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", described.stdout);
    let (head, tail) = lines[0]
        .split_once("\tPartitionCount: ")
        .expect("PartitionCount column");
    let id = head
        .strip_prefix("Topic: orders\tTopicId: ")
        .unwrap_or_else(|| panic!("topic line {:?}", lines[0]));
    assert_eq!(id.len(), 22, "Kafka-style base64 topic id: {id:?}");
    assert_eq!(
        tail,
        "3\tReplicationFactor: 1\tConfigs: retention.ms=86400000"
    );
    for p in 0..3 {
        assert_eq!(
            lines[1 + p],
            format!("\tTopic: orders\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1")
        );
    }

    // A pattern selects several topics; JSON for scripts.
    let json = run(&["--describe", "--topic", "orders|pay.*", "--output", "json"]);
    assert!(json.ok(), "{json:?}");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let names: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["topic"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["orders", "payments"]);
    assert_eq!(v[0]["partition_count"], 3);
    assert_eq!(v[0]["configs"]["retention.ms"], "86400000");

    // Add partitions (CreatePartitions); shrinking is refused.
    let altered = run(&["--alter", "--topic", "orders", "--partitions", "5"]);
    assert!(altered.ok(), "{altered:?}");
    let described = run(&["--describe", "--topic", "orders"]);
    assert!(
        described.stdout.contains("\tPartitionCount: 5\t"),
        "{described:?}"
    );
    assert!(described
        .stdout
        .contains("\tTopic: orders\tPartition: 4\tLeader: 1\tReplicas: 1\tIsr: 1\n"));
    let shrink = run(&["--alter", "--topic", "orders", "--partitions", "2"]);
    assert_eq!(shrink.code, Some(1));
    assert!(
        shrink.stderr.contains("can only be increased"),
        "{shrink:?}"
    );

    // Missing topics: errors unless --if-exists.
    let missing = run(&["--describe", "--topic", "nope"]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .contains("Topic 'nope' does not exist as expected"),
        "{missing:?}"
    );
    assert!(run(&["--describe", "--topic", "nope", "--if-exists"]).ok());
    assert_eq!(
        run(&["--alter", "--topic", "nope", "--partitions", "2"]).code,
        Some(1)
    );

    let deleted = run(&["--delete", "--topic", "orders"]);
    assert!(deleted.ok(), "{deleted:?}");
    assert_eq!(deleted.stdout, "Deleted topic orders.\n");
    let list = run(&["--list", "--exclude-internal"]);
    assert_eq!(list.stdout, "payments\n");
    assert_eq!(run(&["--delete", "--topic", "orders"]).code, Some(1));
    assert!(run(&["--delete", "--topic", "orders", "--if-exists"]).ok());

    // Flag mistakes are caught before anything is sent.
    assert!(run(&["--create"]).code.is_some_and(|c| c != 0));
    assert!(run(&["--list", "--delete"]).code.is_some_and(|c| c != 0));
}

#[test]
fn produce_with_keys_and_headers_then_consume_exactly() {
    let broker = start_broker(&[]);
    let b = broker.bootstrap();
    fjord_ok(&with_bootstrap(
        "topics",
        &b,
        &["--create", "--topic", "events", "--partitions", "1"],
    ));

    // Headers, a tab, the key, a tab, the value (which may hold more tabs);
    // an empty headers part means no headers; CRLF line ends are accepted.
    let input = "trace:t1,tenant:acme\tuser-1\t{\"action\":\"login\"}\n\
                 \tuser-2\tno headers here\r\n\
                 h:x\tuser:3\tvalue with\ttab\n";
    let produced = fjord_with(
        &with_bootstrap(
            "produce",
            &b,
            &[
                "--topic",
                "events",
                "--property",
                "parse.key=true",
                "--property",
                "parse.headers=true",
                "--request-required-acks",
                "all",
                "--compression-codec",
                "lz4",
            ],
        ),
        input,
        COMMAND_TIMEOUT,
    );
    assert!(produced.ok(), "{produced:?}");

    let consumed = fjord_ok(&with_bootstrap(
        "consume",
        &b,
        &[
            "--topic",
            "events",
            "--from-beginning",
            "--max-messages",
            "3",
            "--property",
            "print.key=true",
            "--property",
            "print.headers=true",
        ],
    ));
    assert_eq!(
        consumed,
        "trace:t1,tenant:acme\tuser-1\t{\"action\":\"login\"}\n\
         NO_HEADERS\tuser-2\tno headers here\n\
         h:x\tuser:3\tvalue with\ttab\n"
    );

    // Other columns and separators, one partition from an offset.
    let consumed = fjord_ok(&with_bootstrap(
        "consume",
        &b,
        &[
            "--topic",
            "events",
            "--partition",
            "0",
            "--offset",
            "1",
            "--max-messages",
            "2",
            "--property",
            "print.partition=true",
            "--property",
            "print.offset=true",
            "--property",
            "print.key=true",
            "--property",
            "key.separator= | ",
        ],
    ));
    assert_eq!(
        consumed,
        "Partition:0 | Offset:1 | user-2 | no headers here\n\
         Partition:0 | Offset:2 | user:3 | value with\ttab\n"
    );

    // JSON lines.
    let json = fjord_ok(&with_bootstrap(
        "consume",
        &b,
        &[
            "--topic",
            "events",
            "--from-beginning",
            "--max-messages",
            "1",
            "--output",
            "json",
            "--property",
            "print.timestamp=true",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON line");
    assert_eq!(v["key"], "user-1");
    assert_eq!(v["value"], "{\"action\":\"login\"}");
    assert_eq!(v["headers"][1]["key"], "tenant");
    assert_eq!(v["headers"][1]["value"], "acme");
    assert_eq!(v["timestamp_type"], "CreateTime");

    // --timeout-ms ends a consumer that has caught up; without --max-messages.
    let drained = fjord(&with_bootstrap(
        "consume",
        &b,
        &[
            "--topic",
            "events",
            "--from-beginning",
            "--timeout-ms",
            "1500",
        ],
    ));
    assert!(drained.ok(), "{drained:?}");
    assert_eq!(drained.stdout.lines().count(), 3);
    assert!(drained.stderr.contains("Processed a total of 3 messages"));

    // A line the reader cannot parse stops the producer with a non-zero exit.
    let bad = fjord_with(
        &with_bootstrap(
            "produce",
            &b,
            &["--topic", "events", "--property", "parse.key=true"],
        ),
        "k\tfine\nno separator\n",
        COMMAND_TIMEOUT,
    );
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(
        bad.stderr
            .contains("No key separator found on line number 2: 'no separator'"),
        "{bad:?}"
    );
}

#[test]
fn produce_from_file_and_consume_with_a_group() {
    let broker = start_broker(&[]);
    let b = broker.bootstrap();
    fjord_ok(&with_bootstrap(
        "topics",
        &b,
        &["--create", "--topic", "lines", "--partitions", "2"],
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lines.txt");
    let count = 20_000;
    let text: String = (0..count)
        .map(|i| format!("k{}:line {i}\n", i % 7))
        .collect();
    std::fs::write(&path, text).expect("write input");
    let produced = fjord(&with_bootstrap(
        "produce",
        &b,
        &[
            "--topic",
            "lines",
            "--file",
            path.to_str().expect("utf-8 path"),
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--output",
            "json",
        ],
    ));
    assert!(produced.ok(), "{produced:?}");
    let summary: serde_json::Value = serde_json::from_str(produced.stdout.trim()).expect("JSON");
    assert_eq!(summary["delivered"], count);
    assert_eq!(summary["failed"], 0);
    assert!(
        produced.stderr.contains("100% of the file"),
        "progress on stderr: {produced:?}"
    );

    // A group resumes where the previous member stopped.
    let group_args = |max: &'static str| {
        with_bootstrap(
            "consume",
            &b,
            &[
                "--topic",
                "lines",
                "--group",
                "readers",
                "--from-beginning",
                "--max-messages",
                max,
                "--property",
                "print.key=true",
                "--property",
                "key.separator=:",
            ],
        )
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    let first = fjord_ok(
        &group_args("5")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let rest = fjord_ok(
        &group_args("100000")
            .iter()
            .map(String::as_str)
            .chain(["--timeout-ms", "3000"])
            .collect::<Vec<_>>(),
    );
    let mut all: Vec<&str> = first.lines().chain(rest.lines()).collect();
    assert_eq!(
        all.len(),
        count,
        "every record exactly once across the two runs"
    );
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "no duplicates");
    assert!(all.contains(&"k2:line 19994"));
}

#[test]
fn configs_describe_and_alter() {
    let broker = start_broker(&[]);
    let b = broker.bootstrap();
    fjord_ok(&with_bootstrap(
        "topics",
        &b,
        &[
            "--create",
            "--topic",
            "cfg",
            "--config",
            "retention.ms=1000",
        ],
    ));
    let configs = |rest: &[&str]| {
        let argv = with_bootstrap("configs", &b, rest);
        fjord(&argv)
    };

    let described = configs(&[
        "--entity-type",
        "topics",
        "--entity-name",
        "cfg",
        "--describe",
    ]);
    assert!(described.ok(), "{described:?}");
    assert_eq!(
        described.stdout,
        "Dynamic configs for topic cfg are:\n  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000}\n"
    );

    let altered = configs(&[
        "--entity-type",
        "topics",
        "--entity-name",
        "cfg",
        "--alter",
        "--add-config",
        "segment.ms=3600000,max.message.bytes=2000000",
    ]);
    assert!(altered.ok(), "AlterConfigs (add): {altered:?}");
    assert_eq!(altered.stdout, "Completed updating config for topic cfg.\n");
    let described = configs(&["--topic", "cfg", "--describe"]);
    assert_eq!(
        described.stdout,
        "Dynamic configs for topic cfg are:\n\
         \x20 max.message.bytes=2000000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:max.message.bytes=2000000}\n\
         \x20 retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000}\n\
         \x20 segment.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:segment.ms=3600000}\n",
        "the earlier override survives an alter that does not name it"
    );

    let altered = configs(&[
        "--topic",
        "cfg",
        "--alter",
        "--delete-config",
        "retention.ms,segment.ms",
    ]);
    assert!(altered.ok(), "AlterConfigs (delete): {altered:?}");
    let json = configs(&["--topic", "cfg", "--describe", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let names: Vec<&str> = v[0]["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["max.message.bytes"]);

    // The topics tool shows the same non-default configs.
    let topic = fjord_ok(&with_bootstrap(
        "topics",
        &b,
        &["--describe", "--topic", "cfg"],
    ));
    assert!(
        topic
            .lines()
            .next()
            .is_some_and(|l| l.ends_with("\tConfigs: max.message.bytes=2000000")),
        "{topic}"
    );

    // Deleting a key that is not overridden is refused, as in Kafka's tool.
    let err = fjord_fails(&with_bootstrap(
        "configs",
        &b,
        &[
            "--topic",
            "cfg",
            "--alter",
            "--delete-config",
            "retention.ms",
        ],
    ));
    assert!(err.contains("Invalid config(s): retention.ms"), "{err}");
    // A value the broker refuses is an error, not a silent no-op.
    let err = fjord_fails(&with_bootstrap(
        "configs",
        &b,
        &[
            "--topic",
            "cfg",
            "--alter",
            "--add-config",
            "retention.ms=not-a-number",
        ],
    ));
    assert!(err.contains("did not apply"), "{err}");
    // Unknown topics are reported.
    let err = fjord_fails(&with_bootstrap(
        "configs",
        &b,
        &["--topic", "nope", "--describe"],
    ));
    assert!(err.contains("Topic 'nope' does not exist"), "{err}");

    // Broker configs: describe works; altering is refused by the broker
    // (no dynamic broker configuration yet), which must surface as an error.
    let broker_configs = configs(&[
        "--entity-type",
        "brokers",
        "--entity-name",
        "1",
        "--describe",
        "--all",
    ]);
    assert!(broker_configs.ok(), "{broker_configs:?}");
    assert!(broker_configs
        .stdout
        .starts_with("All configs for broker 1 are:\n"));
    assert!(broker_configs
        .stdout
        .contains("  num.partitions=1 sensitive=false synonyms={"));
    // Log defaults are dynamic broker configs; keys like listeners are read-only.
    let altered = configs(&[
        "--broker",
        "1",
        "--alter",
        "--add-config",
        "log.retention.ms=1000",
    ]);
    assert!(altered.ok(), "{altered:?}");
    let refused = configs(&[
        "--broker",
        "1",
        "--alter",
        "--add-config",
        "listeners=PLAINTEXT://127.0.0.1:1",
    ]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
}

#[test]
fn failures_are_clear_and_bounded() {
    // A port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let dead = format!("127.0.0.1:{port}");
    let runs: Vec<_> = [
        vec!["topics", "--bootstrap-server", &dead, "--list"],
        vec![
            "configs",
            "--bootstrap-server",
            &dead,
            "--topic",
            "t",
            "--describe",
        ],
        vec![
            "consume",
            "--bootstrap-server",
            &dead,
            "--topic",
            "t",
            "--max-messages",
            "1",
        ],
        vec!["produce", "--bootstrap-server", &dead, "--topic", "t"],
    ]
    .into_iter()
    .map(|argv| {
        let argv: Vec<String> = argv.into_iter().map(str::to_string).collect();
        std::thread::spawn(move || {
            let args: Vec<&str> = argv.iter().map(String::as_str).collect();
            let run = fjord_with(&args, "x\n", Duration::from_secs(40));
            (argv, run)
        })
    })
    .collect();
    for handle in runs {
        let (argv, run) = handle.join().expect("runner thread");
        assert_eq!(run.code, Some(1), "{argv:?}: {run:?}");
        assert!(
            run.stderr
                .contains(&format!("could not reach the cluster at {dead}")),
            "{argv:?}: {run:?}"
        );
        assert!(
            run.elapsed < Duration::from_secs(30),
            "{argv:?} took {:?}",
            run.elapsed
        );
    }

    let broker = start_broker(&[("auto.create.topics.enable", "false")]);
    let b = broker.bootstrap();
    let err = fjord_fails(&with_bootstrap(
        "consume",
        &b,
        &[
            "--topic",
            "missing",
            "--from-beginning",
            "--timeout-ms",
            "1000",
        ],
    ));
    assert!(err.contains("Topic 'missing' does not exist"), "{err}");
    let run = fjord_with(
        &with_bootstrap("produce", &b, &["--topic", "missing"]),
        "a\n",
        COMMAND_TIMEOUT,
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("Topic 'missing' does not exist"),
        "{run:?}"
    );
    let err = fjord_fails(&with_bootstrap(
        "consume",
        &b,
        &["--topic", "missing", "--offset", "3"],
    ));
    assert!(
        err.contains("The partition is required when offset is specified."),
        "{err}"
    );
}

//! Operating a topic with a real client (librdkafka through the `rdkafka` crate): altering
//! configs at runtime, growing partitions, deleting records, and retention moving the log
//! start offset.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{AlterConfig, NewPartitions, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

fn topic_config(bootstrap: &str, topic: &str, key: &str) -> Option<String> {
    let admin = admin(bootstrap);
    let results = futures::executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()),
    )
    .expect("DescribeConfigs");
    let resource = results
        .into_iter()
        .next()
        .expect("one result")
        .expect("describe ok");
    resource.get(key).and_then(|e| e.value.clone())
}

#[test]
fn given_topic_when_altering_configs_should_apply_them_and_refuse_bad_ones() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "alter-me", 1);
    let admin = admin(&bootstrap);

    let change = AlterConfig::new(ResourceSpecifier::Topic("alter-me"))
        .set("retention.ms", "3600000")
        .set("max.message.bytes", "2000");
    let results = futures::executor::block_on(admin.alter_configs([&change], &admin_options()))
        .expect("AlterConfigs");
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        topic_config(&bootstrap, "alter-me", "retention.ms").as_deref(),
        Some("3600000")
    );
    assert_eq!(
        topic_config(&bootstrap, "alter-me", "max.message.bytes").as_deref(),
        Some("2000")
    );

    // max.message.bytes is in force at once: a 5 KB record is refused, a small one accepted.
    let big = vec![b'x'; 5000];
    let mut records = generate_records(1, 7, now_ms());
    records[0].value = Some(big);
    let deliveries = produce_all(
        &bootstrap,
        "alter-me",
        &records,
        &[("linger.ms", "0")],
        Duration::from_secs(15),
    );
    assert!(
        deliveries[0].is_err(),
        "a 5 KB batch must exceed max.message.bytes=2000"
    );
    let small = generate_records(1, 8, now_ms());
    produce_ok(&bootstrap, "alter-me", &small, &[], Duration::from_secs(15));

    // Survives a restart.
    let mut broker = broker;
    restart(&mut broker);
    assert_eq!(
        topic_config(&broker.bootstrap(), "alter-me", "retention.ms").as_deref(),
        Some("3600000")
    );

    // Unknown keys and bad values change nothing. (The rdkafka crate reports every
    // AlterConfigs resource as successful, so the INVALID_CONFIG code itself is checked by the
    // confluent-kafka test in tests/python.)
    let admin = common::admin(&broker.bootstrap());
    for (key, value) in [
        ("retention.msx", "1"),
        ("retention.ms", "soon"),
        ("cleanup.policy", "shred"),
    ] {
        let change = AlterConfig::new(ResourceSpecifier::Topic("alter-me"))
            .set("retention.ms", "7")
            .set(key, value);
        futures::executor::block_on(admin.alter_configs([&change], &admin_options()))
            .expect("AlterConfigs");
        assert_eq!(
            topic_config(&broker.bootstrap(), "alter-me", "retention.ms").as_deref(),
            Some("3600000"),
            "a change with {key}={value} must be refused as a whole"
        );
    }
    assert_eq!(
        topic_config(&broker.bootstrap(), "alter-me", "retention.msx"),
        None
    );
}

#[test]
fn given_topic_when_adding_partitions_should_serve_them_and_refuse_shrinking() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "grow", 2);
    let admin = admin(&bootstrap);
    let results = futures::executor::block_on(
        admin.create_partitions([&NewPartitions::new("grow", 5)], &admin_options()),
    )
    .expect("CreatePartitions");
    assert_eq!(results, vec![Ok("grow".to_string())]);
    assert_eq!(partition_count(&bootstrap, "grow"), Ok(5));

    let mut records = generate_records(30, 3, now_ms());
    for (i, r) in records.iter_mut().enumerate() {
        r.partition = Some((i % 5) as i32);
    }
    let acked = produce_ok(&bootstrap, "grow", &records, &[], Duration::from_secs(15));
    assert!(
        acked.iter().any(|(p, _)| *p == 4),
        "the new partition takes records"
    );

    let results = futures::executor::block_on(
        admin.create_partitions([&NewPartitions::new("grow", 3)], &admin_options()),
    )
    .expect("CreatePartitions");
    let err = results[0].clone().expect_err("shrinking must fail");
    assert_eq!(err.1, rdkafka::types::RDKafkaErrorCode::InvalidPartitions);

    let mut broker = broker;
    restart(&mut broker);
    assert_eq!(partition_count(&broker.bootstrap(), "grow"), Ok(5));
}

#[test]
fn given_records_when_deleting_records_should_move_log_start_and_reset_consumers() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "trim", 1);
    let records = generate_records(100, 5, now_ms());
    let mut records = records;
    for r in &mut records {
        r.partition = Some(0);
    }
    produce_ok(&bootstrap, "trim", &records, &[], Duration::from_secs(15));

    let admin = admin(&bootstrap);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trim", 0, Offset::Offset(40))
        .expect("offset");
    let result = futures::executor::block_on(admin.delete_records(&tpl, &admin_options()))
        .expect("DeleteRecords");
    let element = result.find_partition("trim", 0).expect("partition result");
    assert!(element.error().is_ok(), "{:?}", element.error());
    assert_eq!(element.offset(), Offset::Offset(40));
    assert_eq!(watermarks(&bootstrap, "trim", 0), (40, 100));

    // A consumer starting below the new log start resets as auto.offset.reset says.
    let mut config = consumer_config(&bootstrap);
    config.set("auto.offset.reset", "earliest");
    let consumer: rdkafka::consumer::BaseConsumer = config.create().expect("consumer");
    let got = consume_with(
        &consumer,
        "trim",
        &[(0, Offset::Offset(10))],
        60,
        Duration::from_secs(20),
        Duration::from_millis(300),
    );
    assert_eq!(got.len(), 60);
    assert_eq!(got[0].offset, 40);

    // Beyond the high watermark: OFFSET_OUT_OF_RANGE.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trim", 0, Offset::Offset(500))
        .expect("offset");
    let result = futures::executor::block_on(admin.delete_records(&tpl, &admin_options()))
        .expect("DeleteRecords");
    let element = result.find_partition("trim", 0).expect("partition result");
    assert!(element.error().is_err(), "deleting past the end must fail");

    // The new log start survives a restart.
    let mut broker = broker;
    restart(&mut broker);
    assert_eq!(watermarks(&broker.bootstrap(), "trim", 0), (40, 100));
    drop(consumer);
}

#[test]
fn given_short_retention_when_segments_expire_should_advance_log_start() {
    let broker = start_broker(&[("log.retention.check.interval.ms", "200")]);
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let topic =
        rdkafka::admin::NewTopic::new("expire", 1, rdkafka::admin::TopicReplication::Fixed(1))
            .set("segment.bytes", "4096")
            .set("retention.bytes", "8192");
    let results = futures::executor::block_on(admin.create_topics([&topic], &admin_options()))
        .expect("CreateTopics");
    assert_eq!(results, vec![Ok("expire".to_string())]);
    let mut records = generate_records(400, 11, now_ms());
    for r in &mut records {
        r.partition = Some(0);
        r.value = Some(vec![b'v'; 200]);
    }
    produce_ok(
        &bootstrap,
        "expire",
        &records,
        &[("linger.ms", "0"), ("batch.num.messages", "5")],
        Duration::from_secs(30),
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    let (low, high) = loop {
        let (low, high) = watermarks(&bootstrap, "expire", 0);
        if low > 0 || Instant::now() > deadline {
            break (low, high);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(high, 400);
    assert!(
        low > 0,
        "retention.bytes must delete old segments and advance the log start"
    );
    // What is left is at most retention.bytes plus the active segment.
    assert!(high - low < 400);

    // Time retention: shrink retention.ms at runtime, everything but the newest data goes.
    let change = AlterConfig::new(ResourceSpecifier::Topic("expire")).set("retention.ms", "1");
    let results = futures::executor::block_on(admin.alter_configs([&change], &admin_options()))
        .expect("AlterConfigs");
    assert!(results[0].is_ok());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (low, _) = watermarks(&bootstrap, "expire", 0);
        if low == 400 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention.ms=1 must expire every segment (low {low})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let consumer = consumer(&bootstrap);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("expire", 0, Offset::Beginning)
        .expect("offset");
    consumer.assign(&tpl).expect("assign");
}

/// Codec ids of every batch stored for `topic`-0 (byte 21..23 of a batch holds its attributes).
fn stored_codecs(broker: &fjord_testkit::BrokerProcess, topic: &str) -> Vec<i16> {
    let mut codecs = Vec::new();
    for file in common::segment::log_files(&broker.partition_dir(topic, 0)) {
        let bytes = std::fs::read(&file).expect("read segment");
        for batch in common::segment::scan(&bytes).batches {
            let attributes =
                i16::from_be_bytes([bytes[batch.position + 21], bytes[batch.position + 22]]);
            assert!(batch.crc_ok(), "stored batch must carry a valid CRC");
            codecs.push(attributes & 0x07);
        }
    }
    codecs
}

#[test]
fn given_topic_compression_type_when_producing_other_codecs_should_store_the_topic_codec() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let topic =
        rdkafka::admin::NewTopic::new("lz4-topic", 1, rdkafka::admin::TopicReplication::Fixed(1))
            .set("compression.type", "lz4");
    let results = futures::executor::block_on(admin.create_topics([&topic], &admin_options()))
        .expect("CreateTopics");
    assert_eq!(results, vec![Ok("lz4-topic".to_string())]);
    let mut sent = generate_records(2_000, 21, now_ms());
    for r in &mut sent {
        r.partition = Some(0);
    }
    for codec in ["none", "gzip", "zstd"] {
        produce_ok(
            &bootstrap,
            "lz4-topic",
            &sent[..500],
            &[("compression.type", codec)],
            Duration::from_secs(30),
        );
    }
    produce_ok(
        &bootstrap,
        "lz4-topic",
        &sent[500..],
        &[("compression.type", "snappy")],
        Duration::from_secs(30),
    );
    let codecs = stored_codecs(&broker, "lz4-topic");
    assert!(!codecs.is_empty());
    assert!(
        codecs.iter().all(|c| *c == 3),
        "every batch is stored as lz4: {codecs:?}"
    );
    // The records come back as sent.
    let got = consume(
        &bootstrap,
        "lz4-topic",
        &[(0, Offset::Beginning)],
        3_000,
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), 3_000);
    let mut expected: Vec<&TestRecord> = sent[..500]
        .iter()
        .chain(&sent[..500])
        .chain(&sent[..500])
        .collect();
    expected.extend(&sent[500..]);
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g.key, e.key);
        assert_eq!(g.value, e.value);
        assert_eq!(g.timestamp, rdkafka::Timestamp::CreateTime(e.timestamp_ms));
        assert_eq!(g.headers, e.headers);
    }
}

#[test]
fn given_timestamp_bounds_when_producing_old_or_future_records_should_refuse_them() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let topic =
        rdkafka::admin::NewTopic::new("bounded", 1, rdkafka::admin::TopicReplication::Fixed(1))
            .set("message.timestamp.before.max.ms", "60000")
            .set("message.timestamp.after.max.ms", "60000");
    let results = futures::executor::block_on(admin.create_topics([&topic], &admin_options()))
        .expect("CreateTopics");
    assert_eq!(results, vec![Ok("bounded".to_string())]);
    let now = now_ms();
    for (timestamp, ok) in [
        (now, true),
        (now - 3_600_000, false),
        (now + 3_600_000, false),
    ] {
        let mut records = generate_records(1, 5, timestamp);
        records[0].partition = Some(0);
        records[0].timestamp_ms = timestamp;
        let deliveries = produce_all(
            &bootstrap,
            "bounded",
            &records,
            &[("linger.ms", "0")],
            Duration::from_secs(15),
        );
        match (&deliveries[0], ok) {
            (Ok(_), true) => {}
            (Err(e), false) => assert!(
                format!("{e:?}").contains("InvalidTimestamp"),
                "expected INVALID_TIMESTAMP, got {e:?}"
            ),
            (other, _) => panic!("timestamp {timestamp} (now {now}): unexpected {other:?}"),
        }
    }
}

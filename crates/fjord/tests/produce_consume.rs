//! Produce and consume through librdkafka, byte for byte, with every
//! compression codec; positioned reads by offset and by timestamp.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const RECORDS_PER_CODEC: usize = 100_000;

/// Produces 100,000 records with `codec` to a topic with `partitions`
/// partitions, reads them all back and compares every byte.
fn roundtrip(codec: &str, partitions: i32) {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = format!("roundtrip-{codec}");
    create_topic(&bootstrap, &topic, partitions);

    let records = generate_records(
        RECORDS_PER_CODEC,
        codec.len() as u64 * 7919,
        now_ms() - 3_600_000,
    );
    let positions = produce_ok(
        &bootstrap,
        &topic,
        &records,
        &[
            ("compression.codec", codec),
            ("acks", "all"),
            ("linger.ms", "20"),
        ],
        Duration::from_secs(60),
    );
    let used: std::collections::BTreeSet<i32> = positions.iter().map(|p| p.0).collect();
    assert_eq!(
        used.len() as i32,
        partitions,
        "records should spread over all partitions"
    );

    let starts: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Beginning)).collect();
    let consumed = consume(
        &bootstrap,
        &topic,
        &starts,
        records.len(),
        Duration::from_secs(60),
    );
    assert_consumed_exactly(&records, &positions, &consumed);
    // Each partition's offsets start at 0 and its high watermark is its count.
    for partition in 0..partitions {
        let count = positions.iter().filter(|p| p.0 == partition).count() as i64;
        let first = consumed
            .iter()
            .find(|r| r.partition == partition)
            .map(|r| r.offset);
        assert_eq!(first, Some(0), "first offset of partition {partition}");
        assert_eq!(
            watermarks(&bootstrap, &topic, partition),
            (0, count),
            "watermarks of partition {partition}"
        );
    }
}

#[test]
fn given_no_compression_when_100k_records_roundtrip_should_match_every_byte() {
    roundtrip("none", 1);
}

#[test]
fn given_gzip_when_100k_records_roundtrip_should_match_every_byte() {
    roundtrip("gzip", 3);
}

#[test]
fn given_snappy_when_100k_records_roundtrip_should_match_every_byte() {
    roundtrip("snappy", 3);
}

#[test]
fn given_lz4_when_100k_records_roundtrip_should_match_every_byte() {
    roundtrip("lz4", 4);
}

#[test]
fn given_zstd_when_100k_records_roundtrip_should_match_every_byte() {
    roundtrip("zstd", 2);
}

/// 1,000 records in one partition, timestamps 10 ms apart.
fn produce_timeline(bootstrap: &str, topic: &str, base_ms: i64) -> Vec<TestRecord> {
    create_topic(bootstrap, topic, 1);
    let mut records = generate_records(1000, 5, 0);
    for (i, record) in records.iter_mut().enumerate() {
        record.timestamp_ms = base_ms + 10 * i as i64;
        record.partition = Some(0);
    }
    // Small batches, so that lookups have to find the right batch, not just the first.
    let positions = produce_ok(
        bootstrap,
        topic,
        &records,
        &[("batch.num.messages", "37"), ("linger.ms", "5")],
        Duration::from_secs(30),
    );
    let expected: Vec<(i32, i64)> = (0..1000).map(|i| (0, i)).collect();
    assert_eq!(positions, expected, "offsets assigned in produce order");
    records
}

#[test]
fn given_1000_records_when_consuming_from_offset_500_should_get_exactly_the_tail() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    let records = produce_timeline(&bootstrap, "from-offset", now_ms() - 100_000);

    let consumed = consume(
        &bootstrap,
        "from-offset",
        &[(0, Offset::Offset(500))],
        500,
        Duration::from_secs(20),
    );
    let positions: Vec<(i32, i64)> = (500..1000).map(|i| (0, i)).collect();
    assert_consumed_exactly(&records[500..], &positions, &consumed);
    assert_eq!(consumed[0].offset, 500);

    // The last record alone, and nothing from the end.
    let consumed = consume(
        &bootstrap,
        "from-offset",
        &[(0, Offset::Offset(999))],
        1,
        Duration::from_secs(20),
    );
    assert_eq!(
        consumed.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![999]
    );
    let consumed = consume(
        &bootstrap,
        "from-offset",
        &[(0, Offset::End)],
        0,
        Duration::from_secs(3),
    );
    assert!(
        consumed.is_empty(),
        "nothing after the end, got {} records",
        consumed.len()
    );
}

#[test]
fn given_timestamps_when_offsets_for_times_should_find_the_first_offset_at_or_after() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    let base_ms = now_ms() - 100_000;
    let records = produce_timeline(&bootstrap, "by-time", base_ms);

    let consumer = consumer(&bootstrap);
    let lookup = |timestamp: i64| -> Offset {
        let mut query = TopicPartitionList::new();
        query
            .add_partition_offset("by-time", 0, Offset::Offset(timestamp))
            .expect("add partition");
        let result = consumer
            .offsets_for_times(query, CALL_TIMEOUT)
            .expect("ListOffsets by timestamp");
        let element = result
            .find_partition("by-time", 0)
            .expect("partition in result");
        assert!(
            element.error().is_ok(),
            "lookup {timestamp}: {:?}",
            element.error()
        );
        element.offset()
    };
    assert_eq!(
        lookup(base_ms - 5_000),
        Offset::Offset(0),
        "before the first record"
    );
    assert_eq!(
        lookup(base_ms),
        Offset::Offset(0),
        "exactly the first record"
    );
    assert_eq!(
        lookup(base_ms + 3000),
        Offset::Offset(300),
        "exact timestamp"
    );
    assert_eq!(
        lookup(base_ms + 3005),
        Offset::Offset(301),
        "between two records"
    );
    assert_eq!(
        lookup(base_ms + 9990),
        Offset::Offset(999),
        "the last record"
    );
    assert_eq!(lookup(base_ms + 9991), Offset::End, "after the last record");

    let consumed = consume(
        &bootstrap,
        "by-time",
        &[(0, lookup(base_ms + 3005))],
        699,
        Duration::from_secs(20),
    );
    let positions: Vec<(i32, i64)> = (301..1000).map(|i| (0, i)).collect();
    assert_consumed_exactly(&records[301..], &positions, &consumed);
}

#[test]
fn given_records_when_fetching_watermarks_should_report_log_start_and_end() {
    let broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "marks", 2);
    assert_eq!(
        watermarks(&bootstrap, "marks", 0),
        (0, 0),
        "empty partition"
    );
    let mut records = generate_records(300, 11, now_ms());
    for (i, record) in records.iter_mut().enumerate() {
        record.partition = Some(if i < 200 { 0 } else { 1 });
    }
    produce_ok(&bootstrap, "marks", &records, &[], Duration::from_secs(20));
    assert_eq!(watermarks(&bootstrap, "marks", 0), (0, 200));
    assert_eq!(watermarks(&bootstrap, "marks", 1), (0, 100));
}

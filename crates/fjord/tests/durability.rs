//! Restart durability: every record acknowledged with acks=all survives a
//! graceful stop and a kill -9, exactly once and in order, and the on-disk
//! layout is Kafka's.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::segment;
use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::Offset;

const PARTITIONS: i32 = 2;
const RECORDS: usize = 20_000;

/// Produces `RECORDS` records with acks=all over two partitions and returns
/// them with their acknowledged positions.
fn produce_acked(bootstrap: &str, topic: &str, seed: u64) -> (Vec<TestRecord>, Vec<(i32, i64)>) {
    create_topic(bootstrap, topic, PARTITIONS);
    let mut records = generate_records(RECORDS, seed, now_ms() - 60_000);
    for (i, record) in records.iter_mut().enumerate() {
        record.partition = Some((i % PARTITIONS as usize) as i32);
    }
    let positions = produce_ok(
        bootstrap,
        topic,
        &records,
        &[
            ("acks", "all"),
            ("linger.ms", "2"),
            ("batch.num.messages", "500"),
        ],
        Duration::from_secs(60),
    );
    (records, positions)
}

/// Reads the whole topic and asserts it holds exactly `records` at `positions`.
fn assert_topic_holds(
    bootstrap: &str,
    topic: &str,
    records: &[TestRecord],
    positions: &[(i32, i64)],
) {
    let starts: Vec<(i32, Offset)> = (0..PARTITIONS).map(|p| (p, Offset::Beginning)).collect();
    let consumed = consume(
        bootstrap,
        topic,
        &starts,
        records.len(),
        Duration::from_secs(30),
    );
    assert_consumed_exactly(records, positions, &consumed);
    for partition in 0..PARTITIONS {
        let count = positions.iter().filter(|p| p.0 == partition).count() as i64;
        assert_eq!(
            watermarks(bootstrap, topic, partition),
            (0, count),
            "watermarks of partition {partition}"
        );
    }
}

/// After a restart the log continues where it ended.
fn assert_appends_continue(bootstrap: &str, topic: &str, positions: &[(i32, i64)]) {
    let mut more = generate_records(10, 77, now_ms());
    for record in &mut more {
        record.partition = Some(0);
    }
    let count = positions.iter().filter(|p| p.0 == 0).count() as i64;
    let new_positions = produce_ok(
        bootstrap,
        topic,
        &more,
        &[("acks", "all")],
        Duration::from_secs(20),
    );
    let expected: Vec<(i32, i64)> = (count..count + 10).map(|o| (0, o)).collect();
    assert_eq!(
        new_positions, expected,
        "offsets after restart continue from the log end"
    );
    let consumed = consume(
        bootstrap,
        topic,
        &[(0, Offset::Offset(count))],
        10,
        Duration::from_secs(20),
    );
    assert_consumed_exactly(&more, &new_positions, &consumed);
}

#[test]
fn given_acked_records_when_gracefully_restarted_should_keep_all_exactly_once_in_order() {
    let mut broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    let (records, positions) = produce_acked(&bootstrap, "graceful", 1);

    let status = broker.stop().expect("graceful stop");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    restart(&mut broker);
    assert_eq!(
        broker.bootstrap(),
        bootstrap,
        "restarted on the same address"
    );

    assert_topic_holds(&bootstrap, "graceful", &records, &positions);
    assert_appends_continue(&bootstrap, "graceful", &positions);

    // And once more, now that the log has been recovered and appended to.
    let status = broker.stop().expect("second graceful stop");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after second SIGTERM: {status}"
    );
    restart(&mut broker);
    assert_eq!(
        watermarks(&bootstrap, "graceful", 0).1,
        positions.iter().filter(|p| p.0 == 0).count() as i64 + 10
    );
}

#[test]
fn given_acked_records_when_killed_and_restarted_should_keep_all_exactly_once_in_order() {
    let mut broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    let (records, positions) = produce_acked(&bootstrap, "crashed", 2);

    broker.kill().expect("kill -9");
    restart(&mut broker);

    assert_topic_holds(&bootstrap, "crashed", &records, &positions);
    assert_appends_continue(&bootstrap, "crashed", &positions);
}

#[test]
fn given_kill_during_produce_when_restarted_should_keep_every_acked_record() {
    let mut broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "under-load", 1);
    let mut records = generate_records(300_000, 3, now_ms() - 60_000);
    for (i, record) in records.iter_mut().enumerate() {
        record.partition = Some(0);
        // A unique marker per record, to detect duplicates.
        record.key = Some(format!("id-{i}").into_bytes());
    }

    // Produce in the background and kill the broker while records are in flight.
    let producer = {
        let bootstrap = bootstrap.clone();
        let records = records.clone();
        std::thread::spawn(move || {
            // No retries: a record is either acknowledged once or reported failed,
            // so no acknowledged record can be written twice by a retry.
            produce_all(
                &bootstrap,
                "under-load",
                &records,
                &[
                    ("acks", "all"),
                    ("retries", "0"),
                    ("linger.ms", "1"),
                    ("batch.num.messages", "200"),
                    ("message.timeout.ms", "5000"),
                    ("max.in.flight.requests.per.connection", "5"),
                ],
                Duration::from_secs(30),
            )
        })
    };
    // Wait until some records are durable, then crash.
    let observer = consumer(&bootstrap);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no records were acknowledged within 30 s"
        );
        let (_, high) = observer
            .fetch_watermarks("under-load", 0, CALL_TIMEOUT)
            .expect("watermarks");
        if high >= 5_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    broker.kill().expect("kill -9");
    drop(observer);
    let deliveries = producer.join().expect("producer thread");
    let acked: Vec<(usize, i64)> = deliveries
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.as_ref().ok().map(|(_, offset)| (i, *offset)))
        .collect();
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the kill"
    );
    assert!(
        acked.len() < records.len(),
        "the kill came after the last acknowledgement; test proves nothing"
    );

    restart(&mut broker);
    let (_, high) = watermarks(&bootstrap, "under-load", 0);
    let max_acked = acked.iter().map(|a| a.1).max().expect("some acked");
    assert!(
        high > max_acked,
        "high watermark {high} lost acknowledged offset {max_acked}"
    );
    let consumed = consume(
        &bootstrap,
        "under-load",
        &[(0, Offset::Beginning)],
        high as usize,
        Duration::from_secs(30),
    );
    assert_eq!(
        consumed.len() as i64,
        high,
        "consumed everything up to the high watermark"
    );
    let by_offset: BTreeMap<i64, &ConsumedRecord> =
        consumed.iter().map(|r| (r.offset, r)).collect();
    assert_eq!(by_offset.len(), consumed.len(), "no offset twice");
    for (index, offset) in &acked {
        let record = by_offset
            .get(offset)
            .unwrap_or_else(|| panic!("acked record #{index} at {offset} is gone"));
        let want = &records[*index];
        assert_eq!(record.key, want.key, "record at acked offset {offset}");
        assert_eq!(record.value, want.value, "record at acked offset {offset}");
        assert_eq!(
            record.headers, want.headers,
            "record at acked offset {offset}"
        );
    }
    // Exactly once: every id appears at most once; acked ones in acked order.
    let mut ids = std::collections::HashSet::new();
    for record in &consumed {
        assert!(
            ids.insert(record.key.clone()),
            "record {:?} stored twice",
            record.key
        );
    }
    let acked_offsets: Vec<i64> = acked.iter().map(|a| a.1).collect();
    let mut sorted = acked_offsets.clone();
    sorted.sort_unstable();
    assert_eq!(
        acked_offsets, sorted,
        "acknowledged records are stored in produce order"
    );
}

#[test]
fn given_produced_records_when_stopped_should_leave_kafka_layout_with_valid_batches() {
    let mut broker = start_broker(&[("log.segment.bytes", "1048576")]);
    let bootstrap = broker.bootstrap();
    let (_records, positions) = produce_acked(&bootstrap, "layout", 4);
    let status = broker.stop().expect("graceful stop");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );

    for partition in 0..PARTITIONS {
        let dir = broker.partition_dir("layout", partition);
        for ext in ["log", "index", "timeindex"] {
            let first = dir.join(format!("00000000000000000000.{ext}"));
            assert!(first.is_file(), "missing {}", first.display());
        }
        let count = positions.iter().filter(|p| p.0 == partition).count() as i64;
        let mut next_offset = 0;
        let files = segment::log_files(&dir);
        assert!(!files.is_empty());
        for file in &files {
            let name = file
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .to_string();
            assert_eq!(name.len(), 20, "segment name {name} is 20 digits");
            assert_eq!(
                name.parse::<i64>().expect("numeric segment name"),
                next_offset,
                "segment base offset"
            );
            let bytes = std::fs::read(file).expect("read segment");
            assert!(
                bytes.len() <= 1_048_576 + 1_048_576,
                "segment {} far beyond log.segment.bytes",
                file.display()
            );
            let scan = segment::scan(&bytes);
            assert_eq!(
                scan.trailing_bytes,
                0,
                "{} ends with a partial batch",
                file.display()
            );
            for batch in &scan.batches {
                assert_eq!(batch.magic, 2, "magic of batch at {}", batch.position);
                assert!(
                    batch.crc_ok(),
                    "CRC of batch at {} in {}",
                    batch.position,
                    file.display()
                );
                assert_eq!(batch.base_offset, next_offset, "batches are contiguous");
                assert_eq!(batch.records_count, batch.last_offset_delta + 1);
                next_offset = batch.last_offset() + 1;
            }
        }
        assert_eq!(
            next_offset, count,
            "partition {partition} holds every record"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_clients_connected_before_restart_should_reconnect_to_the_same_address() {
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let mut broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "reconnect", 1);
    let producer: FutureProducer = producer_config(&bootstrap, &[("acks", "all")])
        .create()
        .expect("create producer");
    let old_consumer = consumer(&bootstrap);
    let send = |i: usize| {
        let payload = format!("payload-{i}");
        let key = format!("key-{i}");
        let producer = producer.clone();
        async move {
            let record = FutureRecord::to("reconnect")
                .key(&key)
                .payload(&payload)
                .partition(0);
            tokio::time::timeout(
                Duration::from_secs(30),
                producer.send(record, Duration::from_secs(25)),
            )
            .await
            .expect("delivery within 30 s")
            .map(|delivery| delivery.offset)
            .map_err(|(err, _)| err)
        }
    };
    assert_eq!(send(0).await.expect("before restart"), 0);
    let status = broker.stop().expect("graceful stop");
    assert_eq!(status.code(), Some(0));
    restart(&mut broker);
    assert_eq!(broker.bootstrap(), bootstrap);
    // The same producer object reconnects on its own and continues the log.
    assert_eq!(send(1).await.expect("after restart"), 1);
    let (low, high) = old_consumer
        .fetch_watermarks("reconnect", 0, CALL_TIMEOUT)
        .expect("watermarks through the old consumer");
    assert_eq!((low, high), (0, 2));
    let consumed = consume_with(
        &old_consumer,
        "reconnect",
        &[(0, Offset::Beginning)],
        2,
        Duration::from_secs(20),
        Duration::from_millis(300),
    );
    let values: Vec<Option<Vec<u8>>> = consumed.into_iter().map(|r| r.value).collect();
    assert_eq!(
        values,
        vec![Some(b"payload-0".to_vec()), Some(b"payload-1".to_vec())]
    );
}

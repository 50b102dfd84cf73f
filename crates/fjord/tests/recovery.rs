//! Crash recovery: a damaged tail of the last segment (cut in the middle of
//! the final batch, or a flipped byte inside it) is truncated on restart; the
//! records before it survive, nothing broken is served, and appends continue
//! from the truncation point.

mod common;

use std::time::Duration;

use common::raw::{self, RawConnection};
use common::segment;
use common::*;
use rdkafka::topic_partition_list::Offset;

const TOPIC: &str = "fragile";
const RECORDS: usize = 40;

/// How the broker goes down before the segment is damaged.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Kill,
    Graceful,
}

/// How the final batch is damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut the file in the middle of the final batch.
    Truncate,
    /// Flip one byte of the final batch after its CRC field (inside the
    /// CRC-covered bytes), at the given distance from the batch start.
    FlipByte(usize),
}

/// Produces `RECORDS` records one batch each, so the file layout is known.
fn produce_one_batch_per_record(bootstrap: &str) -> Vec<TestRecord> {
    create_topic(bootstrap, TOPIC, 1);
    let mut records = generate_records(RECORDS, 21, now_ms() - 10_000);
    for (i, record) in records.iter_mut().enumerate() {
        record.partition = Some(0);
        record.value = Some(format!("value-{i:04}-{}", "x".repeat(100)).into_bytes());
    }
    // One record per request and a flush in between: each becomes its own batch on disk.
    let deliveries = produce_one_by_one(
        bootstrap,
        TOPIC,
        &records,
        &[
            ("acks", "all"),
            ("linger.ms", "0"),
            ("batch.num.messages", "1"),
        ],
        Duration::from_secs(30),
    );
    let positions: Vec<(i32, i64)> = deliveries
        .into_iter()
        .map(|d| d.expect("acknowledged"))
        .collect();
    let expected: Vec<(i32, i64)> = (0..RECORDS as i64).map(|o| (0, o)).collect();
    assert_eq!(positions, expected);
    records
}

fn damage_and_recover(stop: Stop, damage: Damage) {
    let mut broker = start_broker(&[]);
    let bootstrap = broker.bootstrap();
    let records = produce_one_batch_per_record(&bootstrap);
    match stop {
        Stop::Kill => broker.kill().expect("kill -9"),
        Stop::Graceful => {
            let status = broker.stop().expect("graceful stop");
            assert_eq!(
                status.code(),
                Some(0),
                "exit status after SIGTERM: {status}"
            );
        }
    }

    let log = broker
        .partition_dir(TOPIC, 0)
        .join("00000000000000000000.log");
    let bytes = std::fs::read(&log).unwrap_or_else(|err| panic!("read {}: {err}", log.display()));
    let scan = segment::scan(&bytes);
    assert_eq!(
        scan.trailing_bytes, 0,
        "segment ends with a partial batch before any damage"
    );
    assert_eq!(
        scan.batches.len(),
        RECORDS,
        "one batch per record: {:?}",
        scan.batches.first()
    );
    let last = scan.batches.last().expect("batches").clone();
    assert_eq!(last.base_offset, RECORDS as i64 - 1);
    assert!(
        scan.batches.iter().all(|b| b.crc_ok()),
        "all batches valid before the damage"
    );

    match damage {
        Damage::Truncate => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .expect("open segment");
            file.set_len((last.position + last.size / 2) as u64)
                .expect("truncate segment");
            file.sync_all().expect("sync");
        }
        Damage::FlipByte(at) => {
            assert!(at > segment::CRC_COVERED_FROM && at < last.size);
            let mut damaged = bytes.clone();
            damaged[last.position + at] ^= 0xFF;
            assert!(
                !segment::scan(&damaged)
                    .batches
                    .last()
                    .expect("batch")
                    .crc_ok(),
                "damage breaks the CRC"
            );
            std::fs::write(&log, &damaged).expect("write damaged segment");
        }
    }

    restart(&mut broker);
    let survivors = RECORDS - 1;
    // Whatever the broker decided about the damaged batch, it must never serve
    // bytes that fail their CRC (librdkafka does not check CRCs by default, so
    // a served corrupt batch would reach applications silently).
    let mut connection = RawConnection::connect(broker.address());
    for offset in [0, survivors as i64 - 1, survivors as i64] {
        let response = connection.request(&raw::fetch_request(TOPIC, offset), 12);
        let partition = &response.responses[0].partitions[0];
        let served = partition.records.clone().unwrap_or_default();
        let scan = segment::scan(&served);
        for batch in &scan.batches {
            assert!(
                batch.crc_ok(),
                "Fetch from offset {offset} (error {}, high watermark {}) served batch {} (offsets {}..={}) whose CRC fails",
                partition.error_code,
                partition.high_watermark,
                batch.position,
                batch.base_offset,
                batch.last_offset()
            );
        }
    }
    assert_eq!(
        watermarks(&bootstrap, TOPIC, 0),
        (0, survivors as i64),
        "the damaged final batch is dropped, everything before it is kept"
    );
    let positions: Vec<(i32, i64)> = (0..survivors as i64).map(|o| (0, o)).collect();
    let consumed = consume(
        &bootstrap,
        TOPIC,
        &[(0, Offset::Beginning)],
        survivors,
        Duration::from_secs(20),
    );
    assert_consumed_exactly(&records[..survivors], &positions, &consumed);

    // The broker keeps accepting produce, continuing from the truncation point.
    let more = generate_records(5, 22, now_ms());
    let more_positions = produce_ok(
        &bootstrap,
        TOPIC,
        &more,
        &[("acks", "all")],
        Duration::from_secs(20),
    );
    let expected: Vec<(i32, i64)> = (survivors as i64..survivors as i64 + 5)
        .map(|o| (0, o))
        .collect();
    assert_eq!(
        more_positions, expected,
        "offsets continue from the truncation point"
    );
    let consumed = consume(
        &bootstrap,
        TOPIC,
        &[(0, Offset::Offset(survivors as i64))],
        5,
        Duration::from_secs(20),
    );
    assert_consumed_exactly(&more, &more_positions, &consumed);

    // On disk: only valid, contiguous batches once the broker has stopped.
    let status = broker.stop().expect("graceful stop after recovery");
    assert_eq!(status.code(), Some(0));
    let mut next_offset = 0;
    for file in segment::log_files(&broker.partition_dir(TOPIC, 0)) {
        let scan = segment::scan(&std::fs::read(&file).expect("read segment"));
        assert_eq!(
            scan.trailing_bytes,
            0,
            "{} keeps garbage at its end",
            file.display()
        );
        for batch in &scan.batches {
            assert!(
                batch.crc_ok(),
                "invalid batch at {} in {}",
                batch.position,
                file.display()
            );
            assert_eq!(batch.base_offset, next_offset, "contiguous offsets on disk");
            next_offset = batch.last_offset() + 1;
        }
    }
    assert_eq!(next_offset, survivors as i64 + 5);
}

#[test]
fn given_kill_when_final_batch_truncated_should_recover_to_the_previous_batch() {
    damage_and_recover(Stop::Kill, Damage::Truncate);
}

#[test]
fn given_kill_when_byte_flipped_in_final_batch_value_should_recover_to_the_previous_batch() {
    // The last byte of the batch belongs to the record's value (no headers? the
    // generator may add headers; either way it is CRC-covered record data).
    damage_and_recover(Stop::Kill, Damage::FlipByte(100));
}

#[test]
fn given_kill_when_byte_flipped_in_final_batch_header_should_recover_to_the_previous_batch() {
    // Byte 30 lies in firstTimestamp: CRC-covered header data.
    damage_and_recover(Stop::Kill, Damage::FlipByte(30));
}

#[test]
fn given_graceful_stop_when_final_batch_truncated_should_recover_to_the_previous_batch() {
    damage_and_recover(Stop::Graceful, Damage::Truncate);
}

#[test]
fn given_graceful_stop_when_byte_flipped_in_final_batch_should_never_serve_it() {
    damage_and_recover(Stop::Graceful, Damage::FlipByte(100));
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    assert_eq!(segment::crc32c(b"123456789"), 0xE306_9283);
}

//! Behaviour of the partition log through its public API, on real temp directories.

use std::fs;
use std::path::{Path, PathBuf};

use fjord_protocol::batch::{
    build_batch, decode_records, validate_batch, BatchIter, BatchSpec, RecordSpec,
};
use fjord_storage::{Log, LogConfig, StorageError, TimestampType};

const NOW: i64 = 1_700_000_000_000;

fn batch(records: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let specs: Vec<RecordSpec> = (0..records)
        .map(|i| RecordSpec {
            timestamp: ts + i as i64,
            key: Some(format!("k{i}").into_bytes()),
            value: Some(vec![b'x'; value_len]),
            headers: vec![],
        })
        .collect();
    build_batch(&BatchSpec::default(), &specs)
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn read_all(log: &Log, from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let plan = log.read(offset, 1 << 20, i64::MAX).unwrap();
        assert!(!plan.is_empty());
        plan.read_into(&mut out).unwrap();
        offset = plan.next_offset();
    }
    out
}

/// (base offset, last offset) of every batch in `bytes`.
fn ranges(bytes: &[u8]) -> Vec<(i64, i64)> {
    BatchIter::new(bytes)
        .map(|r| {
            let (h, _) = r.unwrap();
            (h.base_offset, h.last_offset())
        })
        .collect()
}

fn segment_file(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

/// Appends `n` batches of varying size and returns each batch's (first, last) offsets.
fn fill(log: &mut Log, n: usize) -> Vec<(i64, i64)> {
    (0..n)
        .map(|i| {
            let mut b = batch(1 + i % 4, 10 + (i * 37) % 200, NOW + i as i64 * 10);
            let info = log.append(&mut b, NOW).unwrap();
            (info.first_offset, info.last_offset)
        })
        .collect()
}

#[test]
fn append_read_round_trip_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    let expected = fill(&mut log, 120);
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    assert_eq!(log.log_end_offset(), expected.last().unwrap().1 + 1);
    let all = read_all(&log, 0);
    assert_eq!(ranges(&all), expected);
    assert_eq!(log.size_bytes(), all.len() as u64);
    for (i, r) in BatchIter::new(&all).enumerate() {
        let (h, _) = r.unwrap();
        assert_eq!(h.base_offset, expected[i].0);
    }

    // Every offset reads back the batch containing it.
    for &(first, last) in &expected {
        for offset in first..=last {
            let plan = log.read(offset, 1, i64::MAX).unwrap();
            let mut out = Vec::new();
            plan.read_into(&mut out).unwrap();
            let h = validate_batch(&out).unwrap();
            assert_eq!((h.base_offset, h.last_offset()), (first, last));
        }
    }
}

#[test]
fn read_returns_at_least_one_batch_and_respects_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0, NOW).unwrap();
    let a = log.append(&mut batch(3, 500, NOW), NOW).unwrap();
    let b = log.append(&mut batch(2, 500, NOW), NOW).unwrap();
    let c = log.append(&mut batch(2, 500, NOW), NOW).unwrap();

    let plan = log.read(0, 1, i64::MAX).unwrap();
    let mut out = Vec::new();
    plan.read_into(&mut out).unwrap();
    assert_eq!(ranges(&out), vec![(a.first_offset, a.last_offset)]);

    let plan = log.read(0, a.bytes + b.bytes, i64::MAX).unwrap();
    assert_eq!(plan.len(), a.bytes + b.bytes);
    assert_eq!(plan.next_offset(), c.first_offset);

    // max_offset (high watermark) excludes batches not wholly below it.
    let plan = log.read(0, 1 << 20, b.last_offset + 1).unwrap();
    assert_eq!(plan.len(), a.bytes + b.bytes);
    let plan = log.read(0, 1 << 20, b.last_offset).unwrap();
    assert_eq!(plan.len(), a.bytes);
    assert!(log
        .read(c.first_offset, 1 << 20, c.first_offset)
        .unwrap()
        .is_empty());

    // Mid-batch start returns the whole batch.
    let plan = log.read(a.first_offset + 1, 1, i64::MAX).unwrap();
    assert_eq!(plan.first_offset(), a.first_offset);

    // At the end: empty; beyond: out of range.
    let leo = log.log_end_offset();
    assert!(log.read(leo, 1 << 20, i64::MAX).unwrap().is_empty());
    assert!(matches!(
        log.read(leo + 1, 1 << 20, i64::MAX),
        Err(StorageError::OffsetOutOfRange { requested, .. }) if requested == leo + 1
    ));
    assert!(matches!(
        log.read(-1, 1 << 20, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    let (file, pos, len) = log
        .read(0, 1, i64::MAX)
        .unwrap()
        .file_and_range()
        .map(|(f, p, l)| (f.clone(), p, l))
        .unwrap();
    assert_eq!((pos, len), (0, a.bytes));
    drop(file);
}

#[test]
fn bad_requests_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            max_message_bytes: 1000,
            segment_bytes: 4096,
            ..LogConfig::default()
        },
        0,
        NOW,
    )
    .unwrap();
    log.append(&mut batch(1, 10, NOW), NOW).unwrap();
    let (leo, size) = (log.log_end_offset(), log.size_bytes());

    let mut req = batch(2, 10, NOW);
    let mut bad = batch(2, 10, NOW);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    req.extend_from_slice(&bad);
    assert!(matches!(
        log.append(&mut req, NOW),
        Err(StorageError::CorruptBatch { position, .. }) if position > 0
    ));

    let mut torn = batch(2, 10, NOW);
    torn.extend_from_slice(&batch(1, 10, NOW)[..40]);
    assert!(matches!(
        log.append(&mut torn, NOW),
        Err(StorageError::CorruptBatch { .. })
    ));
    assert!(matches!(
        log.append(&mut batch(1, 2000, NOW), NOW),
        Err(StorageError::MessageTooLarge { max: 1000, .. })
    ));
    let mut big = Vec::new();
    for _ in 0..6 {
        big.extend_from_slice(&batch(1, 900, NOW));
    }
    assert!(matches!(
        log.append(&mut big, NOW),
        Err(StorageError::RecordListTooLarge { max: 4096, .. })
    ));
    assert!(matches!(
        log.append(&mut [], NOW),
        Err(StorageError::InvalidRecord(_))
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (leo, size));
}

#[test]
fn multi_batch_request_gets_consecutive_offsets_and_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0, NOW).unwrap();
    let mut req = Vec::new();
    for n in [3, 1, 5] {
        req.extend_from_slice(&batch(n, 20, NOW));
    }
    let info = log.append_with_leader_epoch(&mut req, 7, NOW).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 8));
    assert_eq!((info.batch_count, info.record_count), (3, 9));
    assert_eq!(info.log_append_time, None);
    let out = read_all(&log, 0);
    assert_eq!(out, req, "stored bytes are the rewritten request");
    assert_eq!(ranges(&out), vec![(0, 2), (3, 3), (4, 8)]);
    for r in BatchIter::new(&out) {
        assert_eq!(r.unwrap().0.partition_leader_epoch, 7);
    }
}

#[test]
fn log_append_time_is_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0, NOW).unwrap();
    let info = log.append(&mut batch(3, 5, 1), NOW + 5).unwrap();
    assert_eq!(info.log_append_time, Some(NOW + 5));
    assert_eq!(info.max_timestamp, NOW + 5);
    let out = read_all(&log, 0);
    assert!(decode_records(&out)
        .unwrap()
        .iter()
        .all(|r| r.timestamp == NOW + 5));
    assert_eq!(log.max_timestamp(), Some((NOW + 5, 2)));
    assert_eq!(log.offset_for_timestamp(NOW).unwrap(), Some((0, NOW + 5)));
}

#[test]
fn offset_for_timestamp_is_record_level_for_uncompressed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    // Batch i holds 4 records with timestamps 1000*i + {0,1,2,3}; offsets 4i..4i+3.
    for i in 0..60 {
        log.append(&mut batch(4, 30, 1000 * i), NOW).unwrap();
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.offset_for_timestamp(-5).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(2).unwrap(), Some((2, 2)));
    assert_eq!(log.offset_for_timestamp(4).unwrap(), Some((4, 1000)));
    assert_eq!(
        log.offset_for_timestamp(37_002).unwrap(),
        Some((37 * 4 + 2, 37_002))
    );
    assert_eq!(
        log.offset_for_timestamp(59_003).unwrap(),
        Some((239, 59_003))
    );
    assert_eq!(log.offset_for_timestamp(59_004).unwrap(), None);
    assert_eq!(log.max_timestamp(), Some((59_003, 239)));
    // Same answers after a clean reopen (time index loaded, not rebuilt).
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(
        log.offset_for_timestamp(37_002).unwrap(),
        Some((150, 37_002))
    );
    assert_eq!(log.max_timestamp(), Some((59_003, 239)));
    // Log start is respected.
    let mut log = log;
    log.delete_records_before(150).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((150, 37_002)));
}

#[test]
fn retention_by_time_and_size_advances_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000;
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            retention_ms: day,
            ..small_config()
        },
        0,
        NOW,
    )
    .unwrap();
    // Old data (2 days ago), then fresh data.
    for _ in 0..30 {
        log.append(&mut batch(2, 100, NOW - 2 * day), NOW).unwrap();
    }
    let fresh_from = log.log_end_offset();
    // Force a segment boundary between old and fresh data.
    log.update_config(LogConfig {
        segment_ms: 1,
        retention_ms: day,
        ..small_config()
    })
    .unwrap();
    assert!(log.roll_if_due(NOW + 10).unwrap());
    log.update_config(LogConfig {
        retention_ms: day,
        ..small_config()
    })
    .unwrap();
    for _ in 0..30 {
        log.append(&mut batch(2, 100, NOW), NOW).unwrap();
    }
    let segments = log.segment_count();
    let out = log.apply_retention(NOW).unwrap();
    assert!(out.deleted_segments > 0);
    assert_eq!(out.log_start_offset, fresh_from);
    assert_eq!(log.log_start_offset(), fresh_from);
    assert_eq!(log.segment_count(), segments - out.deleted_segments);
    assert!(matches!(
        log.read(0, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(ranges(&read_all(&log, fresh_from))[0].0, fresh_from);

    // By size: keep at most ~3000 bytes (whole segments only).
    log.update_config(LogConfig {
        retention_bytes: 3000,
        ..small_config()
    })
    .unwrap();
    let out = log.apply_retention(NOW).unwrap();
    assert!(out.deleted_segments > 0);
    assert!(log.size_bytes() >= 3000 - 2048 && log.size_bytes() < 3000 + 2048);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);

    // Everything expired: the active segment is rolled and deleted too.
    let leo = log.log_end_offset();
    log.update_config(LogConfig {
        retention_ms: day,
        ..small_config()
    })
    .unwrap();
    log.apply_retention(NOW + 3 * day).unwrap();
    assert_eq!(log.log_start_offset(), leo);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.size_bytes(), 0);
    assert!(log.read(leo, 100, i64::MAX).unwrap().is_empty());
    let info = log.append(&mut batch(1, 1, NOW), NOW).unwrap();
    assert_eq!(info.first_offset, leo);
}

#[test]
fn delete_records_persists_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    fill(&mut log, 60);
    let segments = log.segment_count();
    let target = log.segment_base_offsets()[3] + 1;
    assert_eq!(log.delete_records_before(target).unwrap(), target);
    assert_eq!(log.segment_count(), segments - 3);
    assert!(log.delete_records_before(log.log_end_offset() + 1).is_err());
    assert_eq!(log.delete_records_before(5).unwrap(), target);
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(log.log_start_offset(), target);
    let plan = log.read(target, 1, i64::MAX).unwrap();
    assert!(plan.first_offset() <= target && plan.next_offset() > target);
}

#[test]
fn clean_reopen_trusts_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    let expected = fill(&mut log, 80);
    let before = read_all(&log, 0);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    let index_bytes: Vec<Vec<u8>> = bases
        .iter()
        .map(|&b| fs::read(segment_file(dir.path(), b, "index")).unwrap())
        .collect();
    assert!(index_bytes.iter().any(|b| !b.is_empty()));

    let mtimes = |suffix: &str| -> Vec<std::time::SystemTime> {
        bases
            .iter()
            .map(|&b| {
                fs::metadata(segment_file(dir.path(), b, suffix))
                    .unwrap()
                    .modified()
                    .unwrap()
            })
            .collect()
    };
    let (index_mtimes, time_mtimes) = (mtimes("index"), mtimes("timeindex"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(mtimes("index"), index_mtimes, "indexes were not rewritten");
    assert_eq!(mtimes("timeindex"), time_mtimes);
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!(log.log_end_offset(), expected.last().unwrap().1 + 1);
    assert_eq!(read_all(&log, 0), before);
    for (&b, bytes) in bases.iter().zip(&index_bytes) {
        assert_eq!(
            &fs::read(segment_file(dir.path(), b, "index")).unwrap(),
            bytes
        );
    }
    // Appends continue after reopen.
    let info = log.append(&mut batch(1, 1, NOW), NOW).unwrap();
    assert_eq!(info.first_offset, expected.last().unwrap().1 + 1);
    let rp = {
        log.flush().unwrap();
        log.recovery_point()
    };
    assert_eq!(rp, log.log_end_offset());
    drop(log);
    // Reopen with the recorded recovery point also trusts everything.
    let log = Log::open(dir.path(), small_config(), rp, NOW).unwrap();
    assert_eq!(log.log_end_offset(), rp);
}

fn crash_setup() -> (tempfile::TempDir, Vec<(i64, i64)>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    let expected = fill(&mut log, 50);
    let all = read_all(&log, 0);
    drop(log); // no close: like a crash after the writes reached the page cache
    (dir, expected, all)
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn recovery_drops_torn_final_batch() {
    let (dir, expected, all) = crash_setup();
    let seg = last_segment(dir.path());
    let len = fs::metadata(&seg).unwrap().len();
    let last_batch_len = {
        let mut it = BatchIter::new(&all);
        it.by_ref().last().unwrap().unwrap().1.len() as u64
    };
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - last_batch_len / 2).unwrap();
    drop(f);
    for rp in [0, i64::MAX] {
        let log = Log::open(dir.path(), small_config(), rp, NOW).unwrap();
        let (_, last_kept) = expected[expected.len() - 2];
        assert_eq!(log.log_end_offset(), last_kept + 1, "rp {rp}");
        assert_eq!(ranges(&read_all(&log, 0)), expected[..expected.len() - 1]);
        assert_eq!(fs::metadata(&seg).unwrap().len(), len - last_batch_len);
    }
}

#[test]
fn recovery_truncates_at_corrupt_batch() {
    let (dir, expected, all) = crash_setup();
    let seg = last_segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    fs::write(&seg, &bytes).unwrap();
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(ranges(&read_all(&log, 0)), expected[..expected.len() - 1]);
    assert_eq!(
        read_all(&log, 0),
        all[..all.len() - (bytes.len() - log_last_size(&seg))]
    );
}

fn log_last_size(seg: &Path) -> usize {
    fs::metadata(seg).unwrap().len() as usize
}

#[test]
fn recovery_in_middle_segment_deletes_later_segments() {
    let (dir, expected, _) = crash_setup();
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    let bases = log.segment_base_offsets();
    drop(log);
    assert!(bases.len() >= 4);
    // Corrupt the first batch of segment 2; recovery point below it.
    let seg = segment_file(dir.path(), bases[2], "log");
    let mut bytes = fs::read(&seg).unwrap();
    bytes[30] ^= 1;
    fs::write(&seg, &bytes).unwrap();
    let log = Log::open(dir.path(), small_config(), bases[1], NOW).unwrap();
    assert_eq!(log.segment_base_offsets(), bases[..3].to_vec());
    assert_eq!(log.log_end_offset(), bases[2]);
    let kept = expected.iter().filter(|r| r.1 < bases[2]).count();
    assert_eq!(ranges(&read_all(&log, 0)), expected[..kept]);
    assert!(!segment_file(dir.path(), bases[3], "log").exists());
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    let expected = fill(&mut log, 80);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    let originals: Vec<Vec<u8>> = bases
        .iter()
        .map(|&b| fs::read(segment_file(dir.path(), b, "index")).unwrap())
        .collect();

    fs::remove_file(segment_file(dir.path(), bases[0], "index")).unwrap();
    fs::remove_file(segment_file(dir.path(), bases[1], "timeindex")).unwrap();
    fs::write(segment_file(dir.path(), bases[2], "index"), [1, 2, 3]).unwrap();
    // Stale: plausible entries pointing at the wrong place.
    let mut stale = originals[3].clone();
    if stale.len() >= 8 {
        let n = stale.len();
        stale[n - 1] ^= 0x01;
    }
    fs::write(segment_file(dir.path(), bases[3], "index"), &stale).unwrap();
    let last = *bases.last().unwrap();
    fs::write(segment_file(dir.path(), last, "index"), [0u8; 16]).unwrap();

    for rp in [i64::MAX, 0] {
        let log = Log::open(dir.path(), small_config(), rp, NOW).unwrap();
        assert_eq!(ranges(&read_all(&log, 0)), expected);
        for &(first, last) in &expected {
            let plan = log.read(last, 1, i64::MAX).unwrap();
            assert_eq!(plan.first_offset(), first);
        }
        for (&b, orig) in bases.iter().zip(&originals) {
            assert_eq!(
                &fs::read(segment_file(dir.path(), b, "index")).unwrap(),
                orig,
                "segment {b}"
            );
        }
        assert!(segment_file(dir.path(), bases[1], "timeindex").exists());
    }
}

#[test]
fn flush_target_covers_rolled_segments_until_marked() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(log.recovery_point(), 0);
    fill(&mut log, 30);
    let target = log.flush_target();
    assert!(!target.is_empty());
    assert_eq!(target.up_to_offset(), log.log_end_offset());
    target.sync().unwrap();
    // Appends between snapshot and mark stay unflushed.
    log.append(&mut batch(1, 1, NOW), NOW).unwrap();
    log.mark_flushed(target.up_to_offset());
    assert_eq!(log.recovery_point(), target.up_to_offset());
    let next = log.flush_target();
    assert!(!next.is_empty());
    next.sync().unwrap();
    log.mark_flushed(next.up_to_offset());
    assert_eq!(log.recovery_point(), log.log_end_offset());
    assert!(log.flush_target().is_empty());
}

#[test]
fn segments_roll_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0, NOW).unwrap();
    assert!(
        !log.roll_if_due(NOW + 5000).unwrap(),
        "empty segments do not roll"
    );
    log.append(&mut batch(1, 1, NOW), NOW).unwrap();
    assert!(!log.roll_if_due(NOW + 999).unwrap());
    log.append(&mut batch(1, 1, NOW), NOW + 1000).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 1]);
    assert!(log.roll_if_due(NOW + 2000).unwrap());
    assert_eq!(log.segment_base_offsets(), vec![0, 1, 2]);
}

#[test]
fn delete_removes_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders-0");
    let mut log = Log::open(&path, LogConfig::default(), 0, NOW).unwrap();
    log.append(&mut batch(1, 1, NOW), NOW).unwrap();
    assert!(path.join("00000000000000000000.log").exists());
    log.delete().unwrap();
    assert!(!path.exists());
}

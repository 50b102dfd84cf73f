//! The follower side of replication through the public API: appending the leader's batches
//! as they are, and truncating a diverged log (`truncate_to`, `truncate_fully_and_start_at`),
//! on real temp directories.

use std::fs;
use std::path::{Path, PathBuf};

use fjord_protocol::batch::{build_batch, validate_batch, BatchIter, BatchSpec, RecordSpec};
use fjord_storage::cleaner::{read_cleaner_offset, CLEANER_OFFSET_FILE};
use fjord_storage::{AbortedTxn, EpochEntry, Log, LogConfig, StorageError, TimestampType};

const NOW: i64 = 1_700_000_000_000;

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// A batch as a leader stored it: `records` records from `base`, written under `epoch`,
/// record `i` stamped `ts + i`.
fn batch_at(base: i64, epoch: i32, records: usize, ts: i64) -> Vec<u8> {
    let specs: Vec<RecordSpec> = (0..records)
        .map(|i| RecordSpec {
            timestamp: ts + i as i64,
            key: Some(format!("k{}", base + i as i64).into_bytes()),
            value: Some(vec![b'v'; 50]),
            headers: vec![],
        })
        .collect();
    let spec = BatchSpec {
        base_offset: base,
        partition_leader_epoch: epoch,
        ..BatchSpec::default()
    };
    build_batch(&spec, &specs)
}

/// A leader log of 40 batches of 1, 2, 3, 1, 2, 3... records (so batches start at offsets
/// 6k, 6k+1 and 6k+3; the log ends at 79) over epochs 1, 2 and 4 (starting at 0, 24 and
/// 49), timestamps rising with jitter; returns it with every batch's bytes as stored.
fn leader_log(dir: &Path, config: LogConfig) -> (Log, Vec<Vec<u8>>) {
    let mut log = Log::open(dir, config, 0, NOW).unwrap();
    let mut stored = Vec::new();
    for i in 0..40i64 {
        let epoch = match i {
            0..=11 => 1,
            12..=24 => 2,
            _ => 4,
        };
        let ts = NOW + i * 100 - (i % 3) * 150;
        let mut b = batch_at(0, -1, 1 + (i % 3) as usize, ts);
        log.append_with_leader_epoch(&mut b, epoch, NOW).unwrap();
        stored.push(b);
    }
    (log, stored)
}

fn read_all(log: &Log, from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let plan = log.read(offset, 1 << 20, i64::MAX).unwrap();
        assert!(!plan.is_empty(), "nothing at {offset}");
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

fn file(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

fn dir_size(dir: &Path, suffix: &str) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// Every offset reads back the batch holding it, and timestamp lookups agree with a scan.
fn assert_reads_match(log: &Log, batches: &[Vec<u8>]) {
    let log_start = log.log_start_offset();
    for b in batches {
        let h = validate_batch(b).unwrap();
        for offset in h.base_offset.max(log_start)..=h.last_offset() {
            let plan = log.read(offset, 1, i64::MAX).unwrap();
            let mut out = Vec::new();
            plan.read_into(&mut out).unwrap();
            assert_eq!(&out, b, "offset {offset}");
        }
    }
    // ListOffsets by timestamp, at batch level: the first batch whose max timestamp reaches
    // the target. (Uncompressed CreateTime batches answer at record level, so compare the
    // batch holding the answer.)
    let headers: Vec<_> = batches.iter().map(|b| validate_batch(b).unwrap()).collect();
    let (lo, hi) = (NOW - 1000, NOW + 5000);
    for target in (lo..hi).step_by(37) {
        let expected = headers
            .iter()
            .find(|h| h.max_timestamp >= target && h.last_offset() >= log_start)
            .map(|h| h.base_offset);
        let got = log
            .offset_for_timestamp(target)
            .unwrap()
            .map(|(offset, _)| {
                headers
                    .iter()
                    .find(|h| h.base_offset <= offset && offset <= h.last_offset())
                    .unwrap()
                    .base_offset
            });
        assert_eq!(got, expected, "timestamp {target}");
    }
    let max = headers.iter().map(|h| h.max_timestamp).max();
    assert_eq!(log.max_timestamp().map(|(ts, _)| ts), max);
}

fn epochs(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs
        .iter()
        .map(|&(epoch, start_offset)| EpochEntry {
            epoch,
            start_offset,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// append_as_follower

#[test]
fn follower_copies_the_leader_byte_for_byte() {
    let leader_dir = tempfile::tempdir().unwrap();
    // LogAppendTime on the leader: the follower must keep the leader's stamp, not its own.
    let leader_config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let (leader, _) = leader_log(leader_dir.path(), leader_config.clone());
    let all = read_all(&leader, 0);

    let dir = tempfile::tempdir().unwrap();
    let mut follower = Log::open(dir.path(), leader_config, 0, NOW).unwrap();
    // Fetch responses of varying size, as a replica fetcher would get them.
    let mut pos = 0;
    let mut fetch_size = 300;
    while pos < all.len() {
        let mut chunk = Vec::new();
        let mut iter = BatchIter::new(&all[pos..]);
        while chunk.len() < fetch_size {
            let Some(r) = iter.next() else { break };
            chunk.extend_from_slice(r.unwrap().1);
        }
        let expected = ranges(&chunk);
        let info = follower
            .append_as_follower(&mut chunk.clone(), NOW + 999_999)
            .unwrap();
        assert_eq!(info.first_offset, expected[0].0);
        assert_eq!(info.last_offset, expected.last().unwrap().1);
        assert_eq!(info.batch_count, expected.len());
        assert_eq!(info.bytes, chunk.len());
        assert_eq!(info.log_append_time, None);
        assert_eq!(follower.log_end_offset(), info.last_offset + 1);
        pos += chunk.len();
        fetch_size = fetch_size * 3 % 2500 + 100;
    }
    assert_eq!(read_all(&follower, 0), all);
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(
        follower.epoch_entries(),
        epochs(&[(1, 0), (2, 24), (4, 49)])
    );
    assert_eq!(follower.size_bytes(), leader.size_bytes());
}

#[test]
fn follower_indexes_answer_offset_and_timestamp_lookups() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (leader, batches) = leader_log(leader_dir.path(), small_config());
    let all = read_all(&leader, 0);

    let dir = tempfile::tempdir().unwrap();
    let mut follower = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    // One request much larger than a segment: written segment by segment.
    assert!(all.len() > 4 * 1024);
    follower.append_as_follower(&mut all.clone(), NOW).unwrap();
    assert!(
        follower.segment_count() > 4,
        "{:?}",
        follower.segment_base_offsets()
    );
    for base in follower.segment_base_offsets() {
        assert!(fs::metadata(file(dir.path(), base, "log")).unwrap().len() <= 1024);
    }
    assert!(
        dir_size(dir.path(), ".index") > 0,
        "offset index entries written"
    );
    assert_reads_match(&follower, &batches);

    // The same after a clean reopen (indexes trusted) and after a crash (rebuilt).
    follower.close().unwrap();
    let follower = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_reads_match(&follower, &batches);
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    drop(follower);
    let follower = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_reads_match(&follower, &batches);
    assert_eq!(read_all(&follower, 0), all);
}

#[test]
fn overlapping_or_backward_batches_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    log.append_as_follower(&mut batch_at(0, 3, 5, NOW), NOW)
        .unwrap();
    assert_eq!(log.log_end_offset(), 5);
    let size = log.size_bytes();
    let data = read_all(&log, 0);

    let refused = |log: &mut Log, mut req: Vec<u8>| match log.append_as_follower(&mut req, NOW) {
        Err(StorageError::NonContiguousAppend { expected, got }) => (expected, got),
        other => panic!("{other:?}"),
    };
    // The first batch overlaps the log end (a duplicate fetch).
    assert_eq!(refused(&mut log, batch_at(3, 3, 4, NOW)), (5, 3));
    assert_eq!(refused(&mut log, batch_at(0, 3, 5, NOW)), (5, 0));
    // A later batch overlaps the one before it; the good first batch is not written either.
    let mut req = batch_at(5, 4, 3, NOW);
    req.extend_from_slice(&batch_at(7, 4, 2, NOW));
    assert_eq!(refused(&mut log, req), (8, 7));
    // A later batch runs backwards.
    let mut req = batch_at(5, 4, 3, NOW);
    req.extend_from_slice(&batch_at(2, 4, 1, NOW));
    assert_eq!(refused(&mut log, req), (8, 2));

    // Corrupt or torn requests are refused the same way.
    let mut bad_crc = batch_at(5, 4, 1, NOW);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert!(matches!(
        log.append_as_follower(&mut bad_crc, NOW),
        Err(StorageError::CorruptBatch { position: 0, .. })
    ));
    let mut torn = batch_at(5, 4, 1, NOW);
    let good_len = torn.len();
    torn.extend_from_slice(&batch_at(6, 4, 1, NOW)[..30]);
    assert!(matches!(
        log.append_as_follower(&mut torn, NOW),
        Err(StorageError::CorruptBatch { position, .. }) if position == good_len
    ));
    assert!(matches!(
        log.append_as_follower(&mut [], NOW),
        Err(StorageError::InvalidRecord(_))
    ));
    // A batch no segment can hold.
    let mut huge = batch_at(5, 4, 30, NOW);
    assert!(huge.len() > 1024);
    assert!(matches!(
        log.append_as_follower(&mut huge, NOW),
        Err(StorageError::RecordListTooLarge { .. })
    ));

    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(read_all(&log, 0), data);
    assert_eq!(dir_size(dir.path(), ".log"), size);
    assert_eq!(log.epoch_entries(), epochs(&[(3, 0)]));

    // The log still continues where it was.
    log.append_as_follower(&mut batch_at(5, 4, 2, NOW), NOW)
        .unwrap();
    assert_eq!(log.epoch_entries(), epochs(&[(3, 0), (4, 5)]));
}

#[test]
fn max_message_bytes_does_not_apply_to_a_follower() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 100,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, 0, NOW).unwrap();
    let mut b = batch_at(0, 0, 4, NOW);
    assert!(b.len() > 100);
    assert!(matches!(
        log.append(&mut b.clone(), NOW),
        Err(StorageError::MessageTooLarge { .. })
    ));
    log.append_as_follower(&mut b, NOW).unwrap();
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn gaps_left_by_the_leaders_cleaner_are_copied() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    let batches = [
        batch_at(0, 1, 3, NOW),
        batch_at(10, 1, 2, NOW + 10),
        batch_at(12, 2, 1, NOW + 20),
    ];
    // The first batch after a gap, also at the very start of a fetch.
    log.append_as_follower(&mut batches[0].clone(), NOW)
        .unwrap();
    let mut req = batches[1].clone();
    req.extend_from_slice(&batches[2]);
    let info = log.append_as_follower(&mut req, NOW).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (10, 12));
    assert_eq!(log.log_end_offset(), 13);
    assert_eq!(ranges(&read_all(&log, 0)), vec![(0, 2), (10, 11), (12, 12)]);
    // A fetch inside the gap gets the batch after it, as on the leader.
    let plan = log.read(5, 1, i64::MAX).unwrap();
    assert_eq!(plan.first_offset(), 10);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 12)]));
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(log.log_end_offset(), 13);
    assert_reads_match(&log, &batches);
}

#[test]
fn a_follower_starting_past_its_empty_log_end_rolls_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    // More than 2^31 offsets past the (empty) active segment: its 32-bit relative offsets
    // could not index the batch, so the segment is replaced by one starting there.
    let far = 3_000_000_000i64;
    log.append_as_follower(&mut batch_at(far, 0, 2, NOW), NOW)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![far]);
    assert_eq!(log.log_start_offset(), far);
    assert_eq!(log.log_end_offset(), far + 2);
    // And past a non-empty one: a new segment starts at the batch.
    let farther = far + 5_000_000_000;
    log.append_as_follower(&mut batch_at(farther, 1, 1, NOW), NOW)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![far, farther]);
    assert!(!file(dir.path(), 0, "log").exists());
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(log.log_start_offset(), far);
    assert_eq!(log.log_end_offset(), farther + 1);
    assert_eq!(log.epoch_entries(), epochs(&[(0, far), (1, farther)]));
}

// ---------------------------------------------------------------------------------------
// truncate_to

/// A follower holding the leader log's 40 batches (offsets 0..79), several segments.
fn follower_log(dir: &Path) -> (Log, Vec<Vec<u8>>) {
    let leader_dir = tempfile::tempdir().unwrap();
    let (leader, batches) = leader_log(leader_dir.path(), small_config());
    let mut log = Log::open(dir, small_config(), 0, NOW).unwrap();
    log.append_as_follower(&mut read_all(&leader, 0), NOW)
        .unwrap();
    assert_eq!(log.log_end_offset(), 79);
    (log, batches)
}

/// The batches wholly below `end`.
fn below(batches: &[Vec<u8>], end: i64) -> Vec<Vec<u8>> {
    batches
        .iter()
        .filter(|b| validate_batch(b).unwrap().last_offset() < end)
        .cloned()
        .collect()
}

/// Every entry of every `.index` and `.timeindex` file on disk points below `end` (and
/// inside its log file): a truncation must not leave entries for records it removed.
fn assert_index_files_within(dir: &Path, end: i64) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some((stem, suffix)) = name.split_once('.') else {
            continue;
        };
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        let bytes = fs::read(&path).unwrap();
        let be32 = |b: &[u8]| i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        match suffix {
            "index" => {
                let log_len = fs::metadata(file(dir, base, "log")).unwrap().len() as i64;
                for e in bytes.chunks(8) {
                    assert!(base + be32(&e[0..4]) < end, "{name}: {e:?}");
                    assert!(be32(&e[4..8]) < log_len, "{name}: {e:?}");
                }
            }
            "timeindex" => {
                for e in bytes.chunks(12) {
                    assert!(base + be32(&e[8..12]) < end, "{name}: {e:?}");
                }
            }
            _ => {}
        }
    }
}

/// Checks the truncated log in memory and on disk, after a clean reopen, after a reopen
/// that trusts a recovery point from before the truncation, and after a full recovery.
fn assert_truncated(dir: &Path, log: Log, batches: &[Vec<u8>], end: i64) {
    let kept = below(batches, end);
    assert_index_files_within(dir, end);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_all(&log, 0), kept.concat());
    assert_reads_match(&log, &kept);
    assert!(log.recovery_point() <= end);
    assert_eq!(dir_size(dir, ".log"), log.size_bytes());
    log.close().unwrap();
    for recovery_point in [i64::MAX, 79, 0] {
        let log = Log::open(dir, small_config(), recovery_point, NOW).unwrap();
        assert_eq!(log.log_end_offset(), end, "recovery point {recovery_point}");
        assert_eq!(read_all(&log, 0), kept.concat());
        assert_reads_match(&log, &kept);
        drop(log);
    }
}

fn segment_holding(log: &Log, offset: i64) -> (usize, i64) {
    let bases = log.segment_base_offsets();
    let i = bases.iter().rposition(|&b| b <= offset).unwrap();
    (i, bases[i])
}

#[test]
fn truncate_in_the_middle_of_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, batches) = follower_log(dir.path());
    let bases = log.segment_base_offsets();
    // A batch boundary past the first segments that is not a segment's first batch.
    let offset = batches
        .iter()
        .map(|b| validate_batch(b).unwrap().base_offset)
        .find(|&o| o > 30 && !bases.contains(&o))
        .unwrap();
    let (i, base) = segment_holding(&log, offset);
    log.truncate_to(offset).unwrap();
    assert_eq!(log.segment_base_offsets(), bases[..=i].to_vec());
    assert!(!file(dir.path(), bases[i + 1], "log").exists());
    assert!(!file(dir.path(), bases[i + 1], "index").exists());
    assert!(base < offset);
    assert_truncated(dir.path(), log, &batches, offset);
}

#[test]
fn truncate_at_a_segment_boundary_continues_the_previous_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, batches) = follower_log(dir.path());
    let bases = log.segment_base_offsets();
    let boundary = bases[3];
    log.truncate_to(boundary).unwrap();
    assert_eq!(log.segment_base_offsets(), bases[..3].to_vec());
    assert!(!file(dir.path(), boundary, "log").exists());
    assert!(!file(dir.path(), boundary, "index").exists());
    assert!(!file(dir.path(), boundary, "timeindex").exists());
    assert_truncated(dir.path(), log, &batches, boundary);
}

#[test]
fn truncate_into_a_compacted_gap_ends_after_the_last_batch_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0, NOW).unwrap();
    let batches = [
        batch_at(0, 1, 3, NOW),
        batch_at(10, 1, 2, NOW + 10),
        batch_at(12, 2, 1, NOW + 20),
        batch_at(20, 2, 2, NOW + 30),
    ];
    for b in &batches {
        log.append_as_follower(&mut b.clone(), NOW).unwrap();
    }
    assert_eq!(log.log_end_offset(), 22);
    // Inside the gap 13..20, and at the batch right after it: the end is after batch 12.
    log.truncate_to(20).unwrap();
    assert_eq!(log.log_end_offset(), 13);
    log.truncate_to(13).unwrap();
    assert_eq!(log.log_end_offset(), 13);
    log.append_as_follower(&mut batches[3].clone(), NOW)
        .unwrap();
    log.truncate_to(15).unwrap();
    assert_eq!(log.log_end_offset(), 13);
    // Inside the gap 3..10.
    log.truncate_to(7).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0)]));
    assert_eq!(read_all(&log, 0), batches[0]);
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), i64::MAX, NOW).unwrap();
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn truncate_across_segments_and_append_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, batches) = follower_log(dir.path());
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 6);
    // Inside the second segment: everything from the third on goes.
    let offset = batches
        .iter()
        .map(|b| validate_batch(b).unwrap().base_offset)
        .find(|&o| o > bases[1] && o < bases[2])
        .unwrap();
    log.truncate_to(offset).unwrap();
    assert_eq!(log.segment_base_offsets(), bases[..2].to_vec());
    // The cut segment is active again: the follower continues from the new end, with a
    // new leader's batches, and rolls as usual.
    let mut next = offset;
    let mut new_batches = below(&batches, offset);
    for i in 0..12 {
        let b = batch_at(next, 9, 2, NOW + 10_000 + i);
        log.append_as_follower(&mut b.clone(), NOW).unwrap();
        next += 2;
        new_batches.push(b);
    }
    assert!(log.segment_count() > 3);
    assert_eq!(read_all(&log, 0), new_batches.concat());
    assert_reads_match(&log, &new_batches);
    let expected_epochs: Vec<EpochEntry> = epochs(&[(1, 0), (2, 24), (4, 49)])
        .into_iter()
        .filter(|e| e.start_offset < offset)
        .chain(epochs(&[(9, offset)]))
        .collect();
    assert_eq!(log.epoch_entries(), expected_epochs);
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(read_all(&log, 0), new_batches.concat());
    assert_eq!(log.epoch_entries(), expected_epochs);
}

#[test]
fn truncate_inside_a_batch_goes_to_its_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, batches) = follower_log(dir.path());
    let h = batches
        .iter()
        .map(|b| validate_batch(b).unwrap())
        .find(|h| h.last_offset_delta == 2 && h.base_offset > 40)
        .unwrap();
    log.truncate_to(h.base_offset + 1).unwrap();
    assert_eq!(log.log_end_offset(), h.base_offset);
    log.truncate_to(h.base_offset - 1).unwrap();
    let prev = batches
        .iter()
        .map(|b| validate_batch(b).unwrap())
        .find(|p| p.last_offset() == h.base_offset - 1)
        .unwrap();
    assert_eq!(log.log_end_offset(), prev.base_offset);
    assert_truncated(dir.path(), log, &batches, prev.base_offset);
}

#[test]
fn truncate_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = follower_log(dir.path());
    log.delete_records_before(12).unwrap();
    for offset in [11, 80, -1] {
        assert!(matches!(
            log.truncate_to(offset),
            Err(StorageError::OffsetOutOfRange { requested, log_start: 12, log_end: 79 })
                if requested == offset
        ));
    }
    // At the log end there is nothing to do.
    let size = log.size_bytes();
    log.truncate_to(79).unwrap();
    assert_eq!((log.log_end_offset(), log.size_bytes()), (79, size));
    // Down to the log start itself, a batch boundary.
    log.truncate_to(12).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 12));
    log.append_as_follower(&mut batch_at(12, 7, 2, NOW), NOW)
        .unwrap();
    assert_eq!(log.log_end_offset(), 14);
}

#[test]
fn truncate_into_the_batch_holding_the_log_start_empties_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = follower_log(dir.path());
    // Offsets 9..=11 are one batch; DeleteRecords moved the start into it.
    assert_eq!(log.read(10, 1, i64::MAX).unwrap().first_offset(), 9);
    log.delete_records_before(10).unwrap();
    log.truncate_to(11).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (10, 10, 0)
    );
    assert_eq!(log.segment_base_offsets(), vec![10]);
    log.append_as_follower(&mut batch_at(10, 5, 1, NOW), NOW)
        .unwrap();
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 11));
    assert_eq!(log.epoch_entries(), epochs(&[(5, 10)]));
}

#[test]
fn truncation_takes_txn_entries_snapshots_and_epochs_along() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, batches) = follower_log(dir.path());
    let txn = |pid, first, last| AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: first,
    };
    let all_txns = [
        txn(1, 2, 20),
        txn(2, 21, 40),
        txn(3, 30, 45),
        txn(1, 46, 70),
    ];
    for t in all_txns {
        log.append_aborted_txn(t).unwrap();
    }
    log.write_producer_snapshot(30, b"at 30").unwrap();
    log.write_producer_snapshot(60, b"at 60").unwrap();
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 79);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 24), (4, 49)]));

    // 45 = 6 * 7 + 3 starts a batch.
    let offset = 45;
    assert_eq!(
        log.read(offset, 1, i64::MAX).unwrap().first_offset(),
        offset
    );
    log.truncate_to(offset).unwrap();
    assert_eq!(log.log_end_offset(), offset);
    assert_eq!(log.recovery_point(), offset);
    // Entries whose abort marker is at or past the cut are gone, those before it stay.
    assert_eq!(log.aborted_txns(0, i64::MAX), all_txns[..2].to_vec());
    assert_eq!(
        log.latest_producer_snapshot().unwrap(),
        Some((30, b"at 30".to_vec()))
    );
    assert!(!file(dir.path(), 60, "snapshot").exists());
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 24)]));
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 45)));
    assert_eq!(log.end_offset_for_epoch(4), Some((-1, -1)));

    // New records at the cut get a fresh epoch and fresh entries.
    log.append_as_follower(&mut batch_at(45, 6, 3, NOW), NOW)
        .unwrap();
    log.append_aborted_txn(txn(5, 45, 47)).unwrap();
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    let mut expected = all_txns[..2].to_vec();
    expected.push(txn(5, 45, 47));
    assert_eq!(log.aborted_txns(0, i64::MAX), expected);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 24), (6, 45)]));
    let mut kept = below(&batches, offset);
    kept.push(batch_at(45, 6, 3, NOW));
    assert_eq!(read_all(&log, 0), kept.concat());
}

#[test]
fn truncation_lowers_the_cleaner_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = follower_log(dir.path());
    fs::write(dir.path().join(CLEANER_OFFSET_FILE), "0\n70\n").unwrap();
    let bases = log.segment_base_offsets();
    // Down to the base of the segment the log continues in, as Kafka does.
    let active_base = |log: &Log| *log.segment_base_offsets().last().unwrap();
    log.truncate_to(bases[4] + 3).unwrap();
    let after_first = active_base(&log);
    assert!(after_first <= bases[4] && after_first < 70);
    assert_eq!(read_cleaner_offset(dir.path()).unwrap(), Some(after_first));
    log.truncate_to(bases[1] + 3).unwrap();
    let after_second = active_base(&log);
    assert!(after_second <= bases[1]);
    assert_eq!(read_cleaner_offset(dir.path()).unwrap(), Some(after_second));
    // Never raised.
    log.truncate_fully_and_start_at(500).unwrap();
    assert_eq!(read_cleaner_offset(dir.path()).unwrap(), Some(after_second));
}

/// The files a crash in the middle of `truncate_to` can leave: later segments gone, the cut
/// segment's indexes cut but its log file not yet, nothing derived updated. The reopened log
/// must be a consistent prefix of the old one, whatever recovery point it is given.
#[test]
fn a_crash_inside_truncation_reopens_to_a_consistent_prefix() {
    for recovery_point in [i64::MAX, 79, 0] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, batches) = follower_log(dir.path());
        log.write_producer_snapshot(70, b"at 70").unwrap();
        log.flush().unwrap();
        let bases = log.segment_base_offsets();
        // A batch boundary inside a segment, with epoch 4 (from 49) after it.
        let cut = batches
            .iter()
            .map(|b| validate_batch(b).unwrap().base_offset)
            .find(|&o| o > 40 && !bases.contains(&o))
            .unwrap();
        let (i, base) = segment_holding(&log, cut);
        let old_log = fs::read(file(dir.path(), base, "log")).unwrap();
        let epoch_file_before = fs::read(dir.path().join("leader-epoch-checkpoint")).unwrap();
        log.truncate_to(cut).unwrap();
        drop(log);

        // Put back the old log file of the cut segment and the derived state.
        fs::write(file(dir.path(), base, "log"), &old_log).unwrap();
        fs::write(
            dir.path().join("leader-epoch-checkpoint"),
            &epoch_file_before,
        )
        .unwrap();
        fs::write(file(dir.path(), 70, "snapshot"), b"at 70").unwrap();

        let log = Log::open(dir.path(), small_config(), recovery_point, NOW).unwrap();
        let end = bases.get(i + 1).copied().unwrap_or(79);
        let kept = below(&batches, end);
        assert_eq!(log.segment_base_offsets(), bases[..=i].to_vec());
        assert_eq!(log.log_end_offset(), end, "recovery point {recovery_point}");
        assert_eq!(read_all(&log, 0), kept.concat());
        assert_reads_match(&log, &kept);
        // Derived state beyond the prefix is dropped.
        assert!(log
            .epoch_entries()
            .iter()
            .all(|e| e.start_offset < log.log_end_offset()));
        let snapshot = log.latest_producer_snapshot().unwrap();
        assert!(snapshot.is_none_or(|(o, _)| o <= end));
        assert!(!file(dir.path(), 70, "snapshot").exists() || end >= 70);
    }
}

// ---------------------------------------------------------------------------------------
// truncate_fully_and_start_at

#[test]
fn truncate_fully_empties_the_log_and_continues_at_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = follower_log(dir.path());
    log.write_producer_snapshot(40, b"at 40").unwrap();
    log.append_aborted_txn(AbortedTxn {
        producer_id: 1,
        first_offset: 3,
        last_offset: 30,
        last_stable_offset: 3,
    })
    .unwrap();
    log.truncate_fully_and_start_at(1000).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.recovery_point()
        ),
        (1000, 1000, 1000)
    );
    assert_eq!(log.segment_base_offsets(), vec![1000]);
    assert_eq!(log.size_bytes(), 0);
    assert!(log.epoch_entries().is_empty());
    assert_eq!(log.latest_epoch(), None);
    assert!(log.latest_producer_snapshot().unwrap().is_none());
    assert!(log.aborted_txns(0, i64::MAX).is_empty());
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000000000000001000.index",
            "00000000000000001000.log",
            "00000000000000001000.timeindex",
            "leader-epoch-checkpoint",
            "log-start-offset",
        ]
    );
    assert!(matches!(
        log.read(999, 1, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));

    log.append_as_follower(&mut batch_at(1000, 8, 3, NOW), NOW)
        .unwrap();
    assert_eq!(log.epoch_entries(), epochs(&[(8, 1000)]));
    drop(log);
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1003));
}

#[test]
fn truncate_fully_can_move_the_log_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = follower_log(dir.path());
    log.delete_records_before(50).unwrap();
    log.truncate_fully_and_start_at(20).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 20));
    log.close().unwrap();
    // The persisted log start moved down too, or a reopen would put the log back at 50.
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 20));
    assert_eq!(log.segment_base_offsets(), vec![20]);
}

#[test]
fn truncate_fully_refuses_a_negative_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = follower_log(dir.path());
    assert!(matches!(
        log.truncate_fully_and_start_at(-1),
        Err(StorageError::OffsetOutOfRange { requested: -1, .. })
    ));
    assert_eq!(log.log_end_offset(), 79);
}

//! Storage support for transactions: the aborted-transaction index (`.txnindex`) and
//! producer-state snapshots, through the public API on real temp directories.

use std::fs;
use std::path::{Path, PathBuf};

use fjord_protocol::batch::{build_batch, BatchSpec, RecordSpec};
use fjord_storage::{AbortedTxn, Log, LogConfig, StorageError};

const NOW: i64 = 1_700_000_000_000;

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Appends one single-record batch of ~100 bytes and returns its offset.
fn append_one(log: &mut Log) -> i64 {
    let record = RecordSpec {
        timestamp: NOW,
        key: Some(b"key".to_vec()),
        value: Some(vec![b'v'; 40]),
        headers: vec![],
    };
    let mut batch = build_batch(&BatchSpec::default(), &[record]);
    log.append(&mut batch, NOW).unwrap().first_offset
}

fn append_n(log: &mut Log, n: usize) {
    for _ in 0..n {
        append_one(log);
    }
}

fn txn(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id,
        first_offset,
        last_offset,
        last_stable_offset: first_offset,
    }
}

fn file(dir: &Path, offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{offset:020}.{suffix}"))
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .collect();
    out.sort();
    out
}

/// A log of 60 one-record batches over several segments, with aborted transactions whose
/// markers lie in different segments (one spanning a segment boundary).
fn log_with_entries(dir: &Path) -> (Log, Vec<AbortedTxn>) {
    let mut log = Log::open(dir, small_config(), 0, NOW).unwrap();
    append_n(&mut log, 60);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 5 && bases[1] > 7, "{bases:?}");
    let entries = vec![
        txn(1, 2, 5),
        txn(2, 3, 7),
        // Starts in the first segment, aborted in the third.
        txn(3, 4, bases[2] + 1),
        txn(1, bases[2] + 2, bases[2] + 3),
        txn(4, bases[3], bases[3] + 2),
    ];
    for e in &entries {
        log.append_aborted_txn(*e).unwrap();
    }
    (log, entries)
}

#[test]
fn entries_round_trip_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, entries) = log_with_entries(dir.path());
    let bases = log.segment_base_offsets();
    assert_eq!(log.aborted_txns(0, i64::MAX), entries);

    // One file per segment holding markers, created only for those, 34 bytes an entry.
    let txn_files = files_with_suffix(dir.path(), ".txnindex");
    assert_eq!(
        txn_files,
        vec![
            file(dir.path(), bases[0], "txnindex"),
            file(dir.path(), bases[2], "txnindex"),
            file(dir.path(), bases[3], "txnindex"),
        ]
    );
    let sizes: Vec<u64> = txn_files
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect();
    assert_eq!(sizes, vec![68, 68, 34]);
    let bytes = fs::read(&txn_files[2]).unwrap();
    assert_eq!(&bytes[0..2], &0i16.to_be_bytes());
    assert_eq!(&bytes[2..10], &4i64.to_be_bytes());
    assert_eq!(&bytes[10..18], &bases[3].to_be_bytes());
    assert_eq!(&bytes[18..26], &(bases[3] + 2).to_be_bytes());
    assert_eq!(&bytes[26..34], &bases[3].to_be_bytes());

    // A clean close and a trusted reopen, then an untrusted one (full scan).
    let end = log.log_end_offset();
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.aborted_txns(0, i64::MAX), entries);
    drop(log);
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), entries);

    // Appends continue after the reopen.
    let marker = append_one(&mut log);
    log.append_aborted_txn(txn(5, 59, marker)).unwrap();
    drop(log);
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(log.aborted_txns(59, i64::MAX), vec![txn(5, 59, marker)]);
    let mut all = entries.clone();
    all.push(txn(5, 59, marker));
    assert_eq!(log.aborted_txns(0, i64::MAX), all);
}

#[test]
fn range_queries_walk_forward_from_the_fetch_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (log, e) = log_with_entries(dir.path());
    let bases = log.segment_base_offsets();
    // A fetch of [6, 9): the transactions aborted at 7 and in the third segment overlap it
    // (the latter started at 4), the one ending at 5 does not.
    assert_eq!(log.aborted_txns(6, 9), vec![e[1], e[2]]);
    // From the second segment: the long transaction is found although its entry lives two
    // segments later; the one starting at the upper bound is excluded.
    assert_eq!(log.aborted_txns(bases[1], bases[2] + 2), vec![e[2]]);
    assert_eq!(log.aborted_txns(bases[1], bases[2] + 3), vec![e[2], e[3]]);
    // Bounds are inclusive for the marker and exclusive for the first offset.
    let m4 = bases[3] + 2;
    assert_eq!(log.aborted_txns(m4, m4 + 1), vec![e[4]]);
    assert_eq!(log.aborted_txns(m4 + 1, i64::MAX), vec![]);
    assert_eq!(log.aborted_txns(0, 2), vec![]);
    assert_eq!(log.aborted_txns(0, 3), vec![e[0]]);
}

#[test]
fn entries_are_rejected_unless_their_marker_is_in_the_log_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    append_n(&mut log, 10);
    let rejected =
        |r: Result<(), StorageError>| matches!(r, Err(StorageError::InvalidAbortedTxn { .. }));
    assert!(rejected(log.append_aborted_txn(txn(1, 5, 10))));
    assert!(rejected(log.append_aborted_txn(txn(1, 6, 5))));
    log.append_aborted_txn(txn(1, 2, 6)).unwrap();
    assert!(rejected(log.append_aborted_txn(txn(2, 3, 6))));
    assert!(rejected(log.append_aborted_txn(txn(2, 3, 4))));
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![txn(1, 2, 6)]);
    assert!(files_with_suffix(dir.path(), ".txnindex").len() == 1);
}

#[test]
fn flushes_sync_index_writes_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = log_with_entries(dir.path());
    log.flush().unwrap();
    assert!(log.flush_target().is_empty());
    // An index-only change (here a truncation) needs a sync of its own, and only one.
    log.truncate_aborted_txns(6).unwrap();
    let target = log.flush_target();
    assert!(!target.is_empty());
    target.sync().unwrap();
    log.mark_flushed(target.up_to_offset());
    assert!(log.flush_target().is_empty());
    // A new marker in the active segment rides along with the data flush.
    let marker = append_one(&mut log);
    log.append_aborted_txn(txn(7, marker, marker)).unwrap();
    let target = log.flush_target();
    target.sync().unwrap();
    log.mark_flushed(target.up_to_offset());
    assert!(log.flush_target().is_empty());
}

#[test]
fn truncate_aborted_txns_drops_entries_from_an_offset_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, e) = log_with_entries(dir.path());
    let bases = log.segment_base_offsets();
    log.truncate_aborted_txns(bases[2] + 2).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), e[..3].to_vec());
    // Re-deriving appends them again, in order.
    log.append_aborted_txn(e[3]).unwrap();
    log.truncate_aborted_txns(6).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![e[0]]);
    log.append_aborted_txn(txn(9, 6, 8)).unwrap();
    drop(log);
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![e[0], txn(9, 6, 8)]);
    let on_disk: u64 = files_with_suffix(dir.path(), ".txnindex")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(on_disk, 68);
}

#[test]
fn a_torn_entry_at_the_tail_is_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, e) = log_with_entries(dir.path());
    let bases = log.segment_base_offsets();
    drop(log);
    let path = file(dir.path(), bases[2], "txnindex");
    // A crash in the middle of writing a third entry: 20 of its 34 bytes made it.
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    fs::write(&path, &bytes).unwrap();
    let mut log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), e);
    assert_eq!(fs::metadata(&path).unwrap().len(), 68);
    // The next entry for that segment lands right after the whole ones.
    log.truncate_aborted_txns(bases[3]).unwrap();
    log.append_aborted_txn(txn(6, bases[2] + 4, bases[2] + 5))
        .unwrap();
    drop(log);
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    let mut expected = e[..4].to_vec();
    expected.push(txn(6, bases[2] + 4, bases[2] + 5));
    assert_eq!(log.aborted_txns(0, i64::MAX), expected);
}

#[test]
fn recovery_truncation_drops_entries_beyond_the_new_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    append_n(&mut log, 60);
    let bases = log.segment_base_offsets();
    let active = *bases.last().unwrap();
    let end = log.log_end_offset();
    assert!(end - active >= 3);
    log.append_aborted_txn(txn(1, active - 3, active + 1))
        .unwrap();
    log.append_aborted_txn(txn(2, active + 1, end - 1)).unwrap();
    log.flush().unwrap();
    drop(log);
    // Tear the last batch of the active segment (the second marker's).
    let path = file(dir.path(), active, "log");
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(log.log_end_offset(), end - 1);
    assert_eq!(
        log.aborted_txns(0, i64::MAX),
        vec![txn(1, active - 3, active + 1)]
    );
    assert_eq!(
        fs::metadata(file(dir.path(), active, "txnindex"))
            .unwrap()
            .len(),
        34
    );
}

#[test]
fn deleted_segments_take_their_txn_index_along() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, e) = log_with_entries(dir.path());
    let bases = log.segment_base_offsets();
    // DeleteRecords removes the first two segments.
    log.delete_records_before(bases[2]).unwrap();
    assert!(!file(dir.path(), bases[0], "txnindex").exists());
    assert_eq!(log.aborted_txns(0, i64::MAX), e[2..].to_vec());
    // Retention by size removes all but the active segment.
    let config = LogConfig {
        retention_bytes: 0,
        ..small_config()
    };
    log.update_config(config).unwrap();
    log.apply_retention(NOW).unwrap();
    assert!(files_with_suffix(dir.path(), ".txnindex").is_empty());
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![]);
    drop(log);
    // An orphaned index (its segment deleted before a crash) is removed on open.
    let orphan = file(dir.path(), bases[1], "txnindex");
    fs::write(&orphan, [0u8; 34]).unwrap();
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert!(!orphan.exists());
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![]);
    log.delete().unwrap();
    assert!(!dir.path().exists());
}

#[test]
fn producer_snapshots_keep_the_newest_two_within_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(log.latest_producer_snapshot().unwrap(), None);
    append_n(&mut log, 10);
    log.write_producer_snapshot(3, b"at three").unwrap();
    log.write_producer_snapshot(6, b"at six").unwrap();
    assert_eq!(
        log.latest_producer_snapshot().unwrap(),
        Some((6, b"at six".to_vec()))
    );
    log.write_producer_snapshot(10, b"at ten").unwrap();
    assert_eq!(
        files_with_suffix(dir.path(), ".snapshot"),
        vec![
            file(dir.path(), 6, "snapshot"),
            file(dir.path(), 10, "snapshot")
        ]
    );
    assert_eq!(
        log.latest_producer_snapshot().unwrap(),
        Some((10, b"at ten".to_vec()))
    );
    assert!(matches!(
        log.write_producer_snapshot(11, b"beyond"),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(log.write_producer_snapshot(-1, b"negative").is_err());
    // Snapshot files are neither segments nor garbage to the log.
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!(
        log.latest_producer_snapshot().unwrap(),
        Some((10, b"at ten".to_vec()))
    );
    drop(log);

    // The log loses its tail: the snapshot at 10 describes records that are gone. Until
    // the log reopens it is ignored, and the reopen deletes it.
    let path = file(dir.path(), *bases.last().unwrap(), "log");
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(
        log.latest_producer_snapshot().unwrap(),
        Some((6, b"at six".to_vec()))
    );
    assert_eq!(
        files_with_suffix(dir.path(), ".snapshot"),
        vec![file(dir.path(), 6, "snapshot")]
    );
}

#[test]
fn snapshots_beyond_the_end_are_ignored_before_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    append_n(&mut log, 5);
    log.write_producer_snapshot(4, b"four").unwrap();
    // Left behind by an earlier life of the partition that reached further.
    fs::write(file(dir.path(), 40, "snapshot"), b"stale").unwrap();
    assert_eq!(
        log.latest_producer_snapshot().unwrap(),
        Some((4, b"four".to_vec()))
    );
    // A leftover temp file of an interrupted write is cleaned up on open, not read.
    fs::write(dir.path().join(format!("{:020}.snapshot.tmp", 5)), b"torn").unwrap();
    drop(log);
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(
        files_with_suffix(dir.path(), "snapshot"),
        vec![file(dir.path(), 4, "snapshot")]
    );
    assert!(files_with_suffix(dir.path(), ".tmp").is_empty());
    assert_eq!(
        log.latest_producer_snapshot().unwrap(),
        Some((4, b"four".to_vec()))
    );
}

//! The leader-epoch cache (`leader-epoch-checkpoint`) through the public API: how appends
//! fill it, how it survives reopens and crashes, and how retention trims it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fjord_protocol::batch::{build_batch, BatchSpec, RecordSpec};
use fjord_storage::{EpochEntry, Log, LogConfig, LEADER_EPOCH_CHECKPOINT_FILE};

const NOW: i64 = 1_700_000_000_000;

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// A producer's batch of `records` records (~100 bytes each), epoch field unset.
fn batch(records: usize, ts: i64) -> Vec<u8> {
    let specs: Vec<RecordSpec> = (0..records)
        .map(|i| RecordSpec {
            timestamp: ts + i as i64,
            key: Some(format!("k{i}").into_bytes()),
            value: Some(vec![b'v'; 60]),
            headers: vec![],
        })
        .collect();
    build_batch(&BatchSpec::default(), &specs)
}

/// Appends one two-record batch as leader of `epoch`; returns its first offset.
fn lead(log: &mut Log, epoch: i32) -> i64 {
    log.append_with_leader_epoch(&mut batch(2, NOW), epoch, NOW)
        .unwrap()
        .first_offset
}

fn entries(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs
        .iter()
        .map(|&(epoch, start_offset)| EpochEntry {
            epoch,
            start_offset,
        })
        .collect()
}

fn checkpoint(dir: &Path) -> PathBuf {
    dir.join(LEADER_EPOCH_CHECKPOINT_FILE)
}

/// A log led by epochs 0, 2 and 5 over several segments: entries (0,0), (2,20), (5,40),
/// log end 60.
fn three_epoch_log(dir: &Path) -> Log {
    let mut log = Log::open(dir, small_config(), 0, NOW).unwrap();
    for (epoch, batches) in [(0, 10), (2, 10), (5, 10)] {
        for _ in 0..batches {
            lead(&mut log, epoch);
        }
    }
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (2, 20), (5, 40)]));
    assert!(log.segment_count() >= 4, "{:?}", log.segment_base_offsets());
    log
}

#[test]
fn a_new_log_has_an_empty_cache_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0, NOW).unwrap();
    assert_eq!(log.latest_epoch(), None);
    assert!(log.epoch_entries().is_empty());
    assert_eq!(log.end_offset_for_epoch(0), None);
    assert_eq!(
        fs::read_to_string(checkpoint(dir.path())).unwrap(),
        "0\n0\n"
    );
}

#[test]
fn leader_appends_record_each_new_epoch_in_kafkas_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0, NOW).unwrap();
    assert_eq!(lead(&mut log, 0), 0);
    lead(&mut log, 0);
    assert_eq!(lead(&mut log, 3), 4);
    lead(&mut log, 3);
    // A stale epoch is stamped on the batch but does not rewrite the cache's history.
    lead(&mut log, 1);
    // Producer appends (no leader epoch) do not touch the cache.
    log.append(&mut batch(1, NOW), NOW).unwrap();
    assert_eq!(lead(&mut log, 7), 11);
    assert_eq!(log.latest_epoch(), Some(7));
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4), (7, 11)]));
    assert_eq!(
        fs::read_to_string(checkpoint(dir.path())).unwrap(),
        "0\n3\n0 0\n3 4\n7 11\n"
    );

    // Durable as written: a crash (no close) loses nothing of it.
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default(), 0, NOW).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4), (7, 11)]));
}

#[test]
fn the_file_is_replaced_by_rename_never_rewritten_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = checkpoint(dir.path());
    let mut log = Log::open(dir.path(), LogConfig::default(), 0, NOW).unwrap();
    lead(&mut log, 1);
    let first = fs::metadata(&path).unwrap().ino();
    let before = fs::read_to_string(&path).unwrap();

    // An append within the epoch leaves the file alone.
    lead(&mut log, 1);
    assert_eq!(fs::metadata(&path).unwrap().ino(), first);

    // A new epoch writes a new file and renames it over the old one: a reader (or a crash)
    // sees the whole old file or the whole new one.
    lead(&mut log, 2);
    let second = fs::metadata(&path).unwrap().ino();
    assert_ne!(second, first);
    assert_eq!(before, "0\n1\n1 0\n");
    assert_eq!(fs::read_to_string(&path).unwrap(), "0\n2\n1 0\n2 4\n");
    assert!(!dir
        .path()
        .join(format!("{LEADER_EPOCH_CHECKPOINT_FILE}.tmp"))
        .exists());

    // A temp file left by a crash during a write is removed on open, the real file kept.
    log.close().unwrap();
    fs::write(
        dir.path()
            .join(format!("{LEADER_EPOCH_CHECKPOINT_FILE}.tmp")),
        "0\n9\n",
    )
    .unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), i64::MAX, NOW).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 4)]));
    assert!(!dir
        .path()
        .join(format!("{LEADER_EPOCH_CHECKPOINT_FILE}.tmp"))
        .exists());
}

#[test]
fn a_missing_or_unreadable_file_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    three_epoch_log(dir.path()).close().unwrap();
    let expected = entries(&[(0, 0), (2, 20), (5, 40)]);

    fs::remove_file(checkpoint(dir.path())).unwrap();
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(log.epoch_entries(), expected);
    assert_eq!(
        fs::read_to_string(checkpoint(dir.path())).unwrap(),
        "0\n3\n0 0\n2 20\n5 40\n",
        "the rebuilt cache is written back"
    );
    log.close().unwrap();

    for garbage in ["", "0\n3\n0 0\n", "1\n0\n", "0\n2\n5 0\n2 20\n"] {
        fs::write(checkpoint(dir.path()), garbage).unwrap();
        let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
        assert_eq!(log.epoch_entries(), expected, "{garbage:?}");
        log.close().unwrap();
    }
}

#[test]
fn a_file_pointing_beyond_the_log_end_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    three_epoch_log(dir.path()).close().unwrap();
    // As after a crash between writing a new epoch and its records reaching the disk.
    fs::write(
        checkpoint(dir.path()),
        "0\n5\n0 0\n2 20\n5 40\n6 60\n8 75\n",
    )
    .unwrap();
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (2, 20), (5, 40)]));
    assert_eq!(
        fs::read_to_string(checkpoint(dir.path())).unwrap(),
        "0\n3\n0 0\n2 20\n5 40\n"
    );
}

#[test]
fn recovery_learns_epochs_of_unflushed_batches_the_file_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_epoch_log(dir.path());
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    fs::write(checkpoint(dir.path()), "0\n1\n0 0\n").unwrap();

    // Trusted data is not rescanned for epochs...
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(0, 0)]));
    drop(log);
    // ...but batches from the segment holding the recovery point on are, as Kafka's
    // recovery does.
    let holding_45 = *bases.iter().rfind(|&&b| b <= 45).unwrap();
    let log = Log::open(dir.path(), small_config(), 45, NOW).unwrap();
    let mut expected = vec![(0, 0), (2, holding_45), (5, 40)];
    if holding_45 >= 40 {
        expected.remove(1);
        expected[1].1 = holding_45;
    }
    assert_eq!(log.epoch_entries(), entries(&expected));
    drop(log);

    fs::write(checkpoint(dir.path()), "0\n1\n0 0\n").unwrap();
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (2, 20), (5, 40)]));
}

#[test]
fn recovery_truncating_a_torn_tail_drops_its_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = three_epoch_log(dir.path());
    lead(&mut log, 9);
    assert_eq!(log.latest_epoch(), Some(9));
    let active = log.segment_base_offsets().pop().unwrap();
    drop(log);
    // Tear the last batch (the only one of epoch 9).
    let seg = dir.path().join(format!("{active:020}.log"));
    let len = fs::metadata(&seg).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 10).unwrap();
    let log = Log::open(dir.path(), small_config(), 0, NOW).unwrap();
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (2, 20), (5, 40)]));
}

#[test]
fn retention_and_delete_records_move_the_first_entry_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = three_epoch_log(dir.path());
    let bases = log.segment_base_offsets();

    // DeleteRecords inside epoch 0: its entry now starts at the new log start.
    assert_eq!(log.delete_records_before(7).unwrap(), 7);
    assert_eq!(log.epoch_entries(), entries(&[(0, 7), (2, 20), (5, 40)]));

    // DeleteRecords at a segment boundary inside epoch 2 deletes the older segments; epoch
    // 0 is gone and epoch 2 starts at the new log start.
    let boundary = bases.iter().copied().find(|&b| b > 20 && b < 40).unwrap();
    assert_eq!(log.delete_records_before(boundary).unwrap(), boundary);
    assert_eq!(log.segment_base_offsets()[0], boundary);
    assert_eq!(log.epoch_entries(), entries(&[(2, boundary), (5, 40)]));

    // Retention by bytes removes every sealed segment: only the active one's epoch is left.
    let config = LogConfig {
        retention_bytes: 1,
        retention_ms: -1,
        ..small_config()
    };
    log.update_config(config.clone()).unwrap();
    let outcome = log.apply_retention(NOW).unwrap();
    assert!(outcome.deleted_segments > 0);
    let start = log.log_start_offset();
    assert!(start > 40, "{start}");
    assert_eq!(log.epoch_entries(), entries(&[(5, start)]));
    assert_eq!(
        fs::read_to_string(checkpoint(dir.path())).unwrap(),
        format!("0\n1\n5 {start}\n")
    );
    assert_eq!(log.end_offset_for_epoch(2), Some((-1, -1)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 60)));
    log.close().unwrap();
    let log = Log::open(dir.path(), config, i64::MAX, NOW).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(5, start)]));
}

#[test]
fn a_crash_after_retention_deleted_segments_trims_the_file_on_open() {
    let dir = tempfile::tempdir().unwrap();
    three_epoch_log(dir.path()).close().unwrap();
    // Delete the oldest segments behind the log's back, as if a crash had come between
    // deleting them and rewriting the cache.
    let mut logs: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let third_base: i64 = logs[2]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    for p in &logs[..2] {
        fs::remove_file(p).unwrap();
    }
    let log = Log::open(dir.path(), small_config(), i64::MAX, NOW).unwrap();
    assert_eq!(log.log_start_offset(), third_base);
    let first = log.epoch_entries()[0];
    assert_eq!(first.start_offset, third_base);
    assert_eq!(first.epoch, if third_base < 20 { 0 } else { 2 });
}

#[test]
fn end_offset_for_epoch_answers_offset_for_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0, NOW).unwrap();
    for epoch in [1, 1, 3, 4, 4, 4, 7] {
        lead(&mut log, epoch);
    }
    // (1,0) (3,4) (4,6) (7,12), log end 14.
    assert_eq!(log.log_end_offset(), 14);
    let cases = [
        // The latest epoch is still open: it ends at the log end.
        (7, Some((7, 14))),
        // Middle epochs end where the next one starts.
        (1, Some((1, 4))),
        (3, Some((3, 6))),
        (4, Some((4, 12))),
        // Epochs never seen here (a gap between entries) end with the epoch before them.
        (2, Some((1, 4))),
        (5, Some((4, 12))),
        (6, Some((4, 12))),
        // Below the first entry and above the latest: undefined.
        (0, Some((-1, -1))),
        (-1, Some((-1, -1))),
        (8, Some((-1, -1))),
    ];
    for (epoch, expected) in cases {
        assert_eq!(log.end_offset_for_epoch(epoch), expected, "epoch {epoch}");
    }
    // The open epoch's end follows the log end.
    lead(&mut log, 7);
    assert_eq!(log.end_offset_for_epoch(7), Some((7, 16)));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 12)));
}

//! Log compaction: surviving records, offsets, tombstones, codecs, crash recovery and the
//! dedupe-buffer bound, all through the public API on small temp-dir logs.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use fjord_protocol::batch::{validate_batch, BatchIter, BatchSpec, Compression, RecordSpec};
use fjord_protocol::compression::{
    build_compressed_batch, decode_records_any, DEFAULT_MAX_DECOMPRESSED_BYTES,
};
use fjord_storage::cleaner::{
    self, clean, dirty_ratio, needs_cleaning, read_cleaner_offset, CleanerConfig,
};
use fjord_storage::{Log, LogConfig};

const T0: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// A record's key and value; `None` is null.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);
/// Records by offset.
type Records = BTreeMap<i64, KeyValue>;

/// Every record written, in offset order: (offset, key, value).
type Model = Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)>;

struct Writer {
    model: Model,
    codec: Compression,
}

impl Writer {
    fn new(codec: Compression) -> Writer {
        Writer {
            model: Vec::new(),
            codec,
        }
    }

    /// Appends one batch holding `records` (key, value), timestamps `ts`.
    fn append(&mut self, log: &mut Log, records: &[KeyValue], ts: i64) {
        let specs: Vec<RecordSpec> = records
            .iter()
            .map(|(k, v)| RecordSpec {
                timestamp: ts,
                key: k.clone(),
                value: v.clone(),
                headers: vec![],
            })
            .collect();
        let mut batch = build_compressed_batch(&BatchSpec::default(), self.codec, &specs).unwrap();
        let info = log.append(&mut batch, ts).unwrap();
        for (i, (k, v)) in records.iter().enumerate() {
            self.model
                .push((info.first_offset + i as i64, k.clone(), v.clone()));
        }
    }

    /// `rounds` versions of `keys` keys, 10 records per batch, a tombstone for every tenth key
    /// in round `tombstone_round`, and a null-key record per batch.
    fn fill(&mut self, log: &mut Log, keys: usize, rounds: usize, tombstone_round: Option<usize>) {
        for round in 0..rounds {
            for chunk in (0..keys).collect::<Vec<_>>().chunks(10) {
                let mut records: Vec<_> = chunk
                    .iter()
                    .map(|&k| {
                        let key = Some(format!("key-{k:04}").into_bytes());
                        let value = if tombstone_round == Some(round) && k % 10 == 0 {
                            None
                        } else {
                            Some(format!("value-{round}-{k}-padding-padding").into_bytes())
                        };
                        (key, value)
                    })
                    .collect();
                if chunk[0] % 100 == 0 {
                    records.push((
                        None,
                        Some(format!("keyless-{round}-{}", chunk[0]).into_bytes()),
                    ));
                }
                let ts = T0 + self.model.len() as i64;
                self.append(log, &records, ts);
            }
        }
    }

    /// Offsets that must survive a full compaction: the latest per key (tombstones included
    /// unless `drop_tombstones`) and every null-key record.
    fn survivors(&self, drop_tombstones: bool) -> Records {
        let mut latest: HashMap<&[u8], i64> = HashMap::new();
        for (offset, key, _) in &self.model {
            if let Some(k) = key {
                latest.insert(k, *offset);
            }
        }
        self.model
            .iter()
            .filter(|(offset, key, value)| match key {
                None => true,
                Some(k) => latest[k.as_slice()] == *offset && !(drop_tombstones && value.is_none()),
            })
            .map(|(o, k, v)| (*o, (k.clone(), v.clone())))
            .collect()
    }
}

/// Seals the active segment so everything written becomes cleanable.
fn seal(log: &mut Log) {
    assert!(log.roll_if_due(i64::MAX / 2).unwrap());
}

/// Every record in the log, read through fetch-style plans from the log start.
fn read_all(log: &Log) -> Records {
    let mut out = BTreeMap::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let plan = log.read(offset, 64 * 1024, end).unwrap();
        assert!(
            !plan.is_empty(),
            "empty read at {offset} below the log end {end}"
        );
        let mut bytes = Vec::new();
        plan.read_into(&mut bytes).unwrap();
        for batch in BatchIter::new(&bytes) {
            let (_, batch) = batch.unwrap();
            for r in decode_records_any(batch, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap() {
                if r.offset >= offset {
                    assert!(
                        out.insert(r.offset, (r.key, r.value)).is_none(),
                        "duplicate offset"
                    );
                }
            }
        }
        offset = plan.next_offset();
    }
    out
}

/// A consumer starting at any offset, removed or not, gets exactly the next surviving record
/// first (following `next_offset` past batches whose remaining records are all below it).
fn check_every_start_offset(log: &Log, expected: &Records) {
    let end = log.log_end_offset();
    for start in log.log_start_offset()..end {
        let mut position = start;
        let mut first = None;
        while first.is_none() && position < end {
            let plan = log.read(position, 1, end).unwrap();
            let mut bytes = Vec::new();
            plan.read_into(&mut bytes).unwrap();
            first = BatchIter::new(&bytes)
                .flat_map(|b| {
                    decode_records_any(b.unwrap().1, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap()
                })
                .map(|r| r.offset)
                .find(|&o| o >= start);
            position = plan.next_offset();
        }
        let want = expected.range(start..).next().map(|(o, _)| *o);
        assert_eq!(first, want, "first record at or after {start}");
    }
}

fn assert_compacted(log: &Log, writer: &Writer, drop_tombstones: bool) {
    let expected = writer.survivors(drop_tombstones);
    let actual = read_all(log);
    assert_eq!(actual.len(), expected.len());
    assert_eq!(actual, expected);
    check_every_start_offset(log, &expected);
}

fn now() -> i64 {
    T0 + 60_000
}

#[test]
fn compaction_keeps_exactly_the_latest_record_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), log_config(), 0, T0).unwrap();
    let mut w = Writer::new(Compression::None);
    w.fill(&mut log, 1_000, 4, Some(2));
    seal(&mut log);
    let config = CleanerConfig::default();
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let size_before = log.size_bytes();
    assert!(dirty_ratio(&log, &config, now(), i64::MAX).unwrap() > 0.99);
    assert!(needs_cleaning(&log, &config, now(), i64::MAX).unwrap());

    let outcome = clean(&mut log, &config, now(), i64::MAX)
        .unwrap()
        .expect("something to clean");
    assert_eq!((outcome.first_dirty_offset, outcome.end_offset), (0, end));
    assert!(!outcome.map_full);
    assert_eq!(outcome.tombstones_removed, 0);
    assert!(outcome.records_removed >= 3_000);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
    assert!(
        log.size_bytes() < size_before / 2,
        "{} vs {size_before}",
        log.size_bytes()
    );
    assert_eq!(read_cleaner_offset(dir.path()).unwrap(), Some(end));
    assert_eq!(dirty_ratio(&log, &config, now(), i64::MAX).unwrap(), 0.0);
    assert!(!needs_cleaning(&log, &config, now(), i64::MAX).unwrap());
    assert_compacted(&log, &w, false);

    // Nothing new: a second pass has nothing to do.
    assert!(clean(&mut log, &config, now(), i64::MAX).unwrap().is_none());

    // The swapped segments and their indexes survive a restart.
    log.close().unwrap();
    let log = Log::open(dir.path(), log_config(), i64::MAX, now()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
    assert_compacted(&log, &w, false);
    // ...and an untrusted reopen (full CRC scan) agrees.
    drop(log);
    let log = Log::open(dir.path(), log_config(), 0, now()).unwrap();
    assert_compacted(&log, &w, false);
}

#[test]
fn later_passes_compact_new_data_against_the_clean_section() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), log_config(), 0, T0).unwrap();
    let mut w = Writer::new(Compression::None);
    let config = CleanerConfig::default();
    w.fill(&mut log, 300, 2, None);
    seal(&mut log);
    clean(&mut log, &config, now(), i64::MAX).unwrap().unwrap();
    w.fill(&mut log, 300, 2, Some(0));
    seal(&mut log);
    let ratio = dirty_ratio(&log, &config, now(), i64::MAX).unwrap();
    assert!(ratio > 0.5 && ratio < 1.0, "{ratio}");
    let outcome = clean(&mut log, &config, now(), i64::MAX).unwrap().unwrap();
    assert!(outcome.first_dirty_offset > 0);
    assert_compacted(&log, &w, false);
}

#[test]
fn tombstones_disappear_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), log_config(), 0, T0).unwrap();
    let mut w = Writer::new(Compression::None);
    w.fill(&mut log, 500, 3, Some(2));
    seal(&mut log);
    let config = CleanerConfig::default();

    // Within delete.retention.ms the tombstones stay (and hide the older values).
    clean(&mut log, &config, now(), i64::MAX).unwrap().unwrap();
    assert_compacted(&log, &w, false);
    let tombstones = read_all(&log).values().filter(|(_, v)| v.is_none()).count();
    assert_eq!(tombstones, 50);

    // A later pass (new dirty data) past the retention drops them: no value comes back.
    let fresh = (Some(b"fresh".to_vec()), Some(b"value".to_vec()));
    w.append(&mut log, &[fresh], T0 + 1_000_000);
    seal(&mut log);
    let later = T0 + DAY_MS + 120_000;
    let outcome = clean(&mut log, &config, later, i64::MAX).unwrap().unwrap();
    assert_eq!(outcome.tombstones_removed, 50);
    assert_compacted(&log, &w, true);
}

#[test]
fn every_codec_is_compacted_and_keeps_its_codec() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), log_config(), 0, T0).unwrap();
        let mut w = Writer::new(codec);
        w.fill(&mut log, 400, 3, Some(1));
        seal(&mut log);
        let outcome = clean(&mut log, &CleanerConfig::default(), now(), i64::MAX)
            .unwrap()
            .unwrap();
        assert!(outcome.records_removed > 0, "{codec:?}");
        assert_compacted(&log, &w, false);
        let plan = log.read(0, usize::MAX, log.log_end_offset()).unwrap();
        let mut bytes = Vec::new();
        plan.read_into(&mut bytes).unwrap();
        for batch in BatchIter::new(&bytes) {
            let (header, batch) = batch.unwrap();
            validate_batch(batch).unwrap();
            assert_eq!(header.compression(), Ok(codec));
        }
    }
}

#[test]
fn min_compaction_lag_leaves_recent_segments_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), log_config(), 0, T0).unwrap();
    let mut w = Writer::new(Compression::None);
    w.fill(&mut log, 200, 2, None);
    seal(&mut log);
    let old_end = log.log_end_offset();
    // Recent data: same keys, timestamps a minute after T0 + 10 min.
    let recent = T0 + 600_000;
    for k in 0..200 {
        w.append(
            &mut log,
            &[(
                Some(format!("key-{k:04}").into_bytes()),
                Some(b"recent".to_vec()),
            )],
            recent,
        );
    }
    seal(&mut log);
    let config = CleanerConfig {
        min_compaction_lag_ms: 300_000,
        ..CleanerConfig::default()
    };
    let outcome = clean(&mut log, &config, recent + 1_000, i64::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(outcome.end_offset, old_end);
    let all = read_all(&log);
    // The recent records are all still there, and so is one older version per key.
    assert_eq!(all.range(old_end..).count(), 200);
    assert_eq!(
        all.range(..old_end)
            .filter(|(_, (k, _))| k.is_some())
            .count(),
        200
    );
}

#[test]
fn a_tiny_dedupe_buffer_makes_progress_over_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), log_config(), 0, T0).unwrap();
    let mut w = Writer::new(Compression::Lz4);
    w.fill(&mut log, 200, 3, Some(1));
    seal(&mut log);
    let config = CleanerConfig {
        dedupe_buffer_bytes: 60 * 80,
        ..CleanerConfig::default()
    };
    let mut passes = 0;
    let mut last_end = 0;
    loop {
        let outcome = clean(&mut log, &config, now(), i64::MAX).unwrap().unwrap();
        passes += 1;
        assert!(
            outcome.end_offset > last_end,
            "pass {passes} made no progress"
        );
        last_end = outcome.end_offset;
        if !outcome.map_full {
            break;
        }
        assert!(passes < 100);
        // Partially compacted logs are still consistent.
        let all = read_all(&log);
        assert!(all.keys().zip(all.keys().skip(1)).all(|(a, b)| a < b));
    }
    assert!(passes > 3, "{passes} passes");
    assert_eq!(last_end, log.log_end_offset());
    assert_compacted(&log, &w, false);
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn crash_fixture() -> (tempfile::TempDir, Writer, Records) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), log_config(), 0, T0).unwrap();
    let mut w = Writer::new(Compression::Snappy);
    w.fill(&mut log, 300, 3, Some(1));
    seal(&mut log);
    let before = read_all(&log);
    // Build the cleaned segments, then "crash" before the swap.
    let plan = cleaner::plan(&log, &CleanerConfig::default(), now(), i64::MAX)
        .unwrap()
        .unwrap();
    let cleaned = plan.build().unwrap();
    assert!(cleaned.outcome().segments_written > 0);
    std::mem::forget(cleaned);
    drop(log);
    (dir, w, before)
}

#[test]
fn crash_before_commit_leaves_the_log_as_it_was() {
    let (dir, _w, before) = crash_fixture();
    assert!(!files_with_suffix(dir.path(), ".log.cleaned").is_empty());
    let log = Log::open(dir.path(), log_config(), 0, now()).unwrap();
    assert!(files_with_suffix(dir.path(), ".cleaned").is_empty());
    assert_eq!(read_all(&log), before);
    assert_eq!(read_cleaner_offset(dir.path()).unwrap(), None);
}

#[test]
fn crash_after_commit_completes_the_swap_on_open() {
    let (dir, w, _before) = crash_fixture();
    // The commit point: .cleaned -> .swap; nothing else happened.
    for cleaned in files_with_suffix(dir.path(), ".log.cleaned") {
        let swap = cleaned.to_str().unwrap().replace(".cleaned", ".swap");
        fs::rename(&cleaned, swap).unwrap();
    }
    let log = Log::open(dir.path(), log_config(), 0, now()).unwrap();
    assert!(files_with_suffix(dir.path(), ".swap").is_empty());
    assert!(files_with_suffix(dir.path(), ".cleaned").is_empty());
    assert_compacted(&log, &w, false);
}

#[test]
fn crash_midway_through_the_swap_completes_it_on_open() {
    let (dir, w, _before) = crash_fixture();
    let swaps: Vec<_> = files_with_suffix(dir.path(), ".log.cleaned")
        .into_iter()
        .map(|cleaned| {
            let swap =
                std::path::PathBuf::from(cleaned.to_str().unwrap().replace(".cleaned", ".swap"));
            fs::rename(&cleaned, &swap).unwrap();
            swap
        })
        .collect();
    // The first group's old segment and its index are gone already, and the cleaned index
    // was moved in, but the swap was not renamed yet.
    let first = swaps[0]
        .to_str()
        .unwrap()
        .strip_suffix(".log.swap")
        .unwrap()
        .to_owned();
    fs::remove_file(format!("{first}.log")).unwrap();
    fs::rename(format!("{first}.index.cleaned"), format!("{first}.index")).unwrap();
    let log = Log::open(dir.path(), log_config(), i64::MAX, now()).unwrap();
    assert!(files_with_suffix(dir.path(), ".swap").is_empty());
    assert_compacted(&log, &w, false);
}

#[test]
fn a_plan_is_discarded_when_the_log_changed_underneath() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), log_config(), 0, T0).unwrap();
    let mut w = Writer::new(Compression::None);
    w.fill(&mut log, 300, 3, None);
    seal(&mut log);
    let plan = cleaner::plan(&log, &CleanerConfig::default(), now(), i64::MAX)
        .unwrap()
        .unwrap();
    let cleaned = plan.build().unwrap();
    // DeleteRecords removes the oldest segments while the cleaner was busy.
    let second = log.segment_base_offsets()[1];
    log.delete_records_before(second).unwrap();
    let before = read_all(&log);
    assert!(cleaner::swap(&mut log, cleaned).unwrap().is_none());
    assert!(files_with_suffix(dir.path(), ".cleaned").is_empty());
    assert_eq!(read_all(&log), before);
    // The next pass works on the changed log.
    clean(&mut log, &CleanerConfig::default(), now(), i64::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(log.log_start_offset(), second);
    let expected: BTreeMap<_, _> = w
        .survivors(false)
        .into_iter()
        .filter(|(o, _)| *o >= second)
        .collect();
    let actual: BTreeMap<_, _> = read_all(&log)
        .into_iter()
        .filter(|(o, _)| *o >= second)
        .collect();
    // Records below the new log start were deleted, so their keys' survivors may differ
    // only below it; above it, every survivor must be present.
    for (offset, record) in &expected {
        assert_eq!(actual.get(offset), Some(record), "offset {offset}");
    }
}

fn kv(key: &str, value: Option<&str>) -> KeyValue {
    (
        Some(key.as_bytes().to_vec()),
        value.map(|v| v.as_bytes().to_vec()),
    )
}

#[test]
fn a_batch_that_lost_its_tail_keeps_its_offset_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), log_config(), 0, T0).unwrap();
    let mut w = Writer::new(Compression::Gzip);
    w.append(
        &mut log,
        &[kv("a", Some("1")), kv("b", Some("1")), kv("c", Some("1"))],
        T0,
    );
    w.append(&mut log, &[kv("c", Some("2"))], T0 + 1);
    seal(&mut log);
    let outcome = clean(&mut log, &CleanerConfig::default(), now(), i64::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(outcome.records_removed, 1);
    let plan = log.read(2, 1, log.log_end_offset()).unwrap();
    let mut bytes = Vec::new();
    plan.read_into(&mut bytes).unwrap();
    let (header, _) = BatchIter::new(&bytes).next().unwrap().unwrap();
    assert_eq!(
        (
            header.base_offset,
            header.last_offset(),
            header.records_count
        ),
        (0, 2, 2)
    );
    assert_eq!(header.compression(), Ok(Compression::Gzip));
    assert_eq!(plan.next_offset(), 3);
    assert_compacted(&log, &w, false);
}

#[test]
fn committed_transactional_records_are_compacted_and_markers_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), log_config(), 0, T0).unwrap();
    let mut w = Writer::new(Compression::None);
    w.append(
        &mut log,
        &[kv("k", Some("plain")), kv("t", Some("plain"))],
        T0,
    );
    let txn = BatchSpec {
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: 0,
        is_transactional: true,
        ..BatchSpec::default()
    };
    let record = |key: &str, value: &str| RecordSpec {
        timestamp: T0 + 1,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![],
    };
    let mut batch = build_compressed_batch(
        &txn,
        Compression::Zstd,
        &[record("k", "txn"), record("u", "txn")],
    )
    .unwrap();
    let txn_offset = log.append(&mut batch, T0 + 1).unwrap().first_offset;
    // A commit marker: control record key (version 0, type 1 = commit).
    let marker = BatchSpec {
        is_control: true,
        ..txn
    };
    let mut batch = fjord_protocol::batch::build_batch(
        &marker,
        &[RecordSpec {
            timestamp: T0 + 2,
            key: Some(vec![0, 0, 0, 1]),
            value: Some(vec![0, 0, 0, 0, 0, 0]),
            headers: vec![],
        }],
    );
    let marker_offset = log.append(&mut batch, T0 + 2).unwrap().first_offset;
    w.append(&mut log, &[kv("k", None), kv("t", None)], T0 + 3);
    w.append(&mut log, &[kv("z", Some("last"))], T0 + 4);
    seal(&mut log);

    let outcome = clean(
        &mut log,
        &CleanerConfig::default(),
        T0 + 2 * DAY_MS,
        i64::MAX,
    )
    .unwrap()
    .unwrap();
    let all = read_all(&log);
    let offsets: Vec<i64> = all.keys().copied().collect();
    // The committed transactional value of "k" is superseded like any other; "u" survives
    // in a rewritten batch; the marker stays; both tombstones expired.
    let last = log.log_end_offset() - 1;
    assert_eq!(offsets, vec![txn_offset + 1, marker_offset, last]);
    assert_eq!(all[&(txn_offset + 1)], kv("u", Some("txn")));
    assert_eq!(
        (outcome.records_removed, outcome.tombstones_removed),
        (3, 2)
    );
    // The rewritten batch is still the producer's transactional batch with its offsets.
    let plan = log.read(txn_offset, 1, log.log_end_offset()).unwrap();
    let mut bytes = Vec::new();
    plan.read_into(&mut bytes).unwrap();
    let (header, _) = BatchIter::new(&bytes).next().unwrap().unwrap();
    assert!(header.is_transactional());
    assert_eq!(
        (
            header.producer_id,
            header.base_offset,
            header.last_offset(),
            header.records_count
        ),
        (7, txn_offset, txn_offset + 1, 1)
    );
    let plan = log.read(marker_offset, 1, log.log_end_offset()).unwrap();
    let mut bytes = Vec::new();
    plan.read_into(&mut bytes).unwrap();
    let (header, _) = BatchIter::new(&bytes).next().unwrap().unwrap();
    assert!(header.is_control());
    assert_eq!(header.base_offset, marker_offset);
}

#[test]
fn log_append_time_batches_keep_their_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: fjord_storage::TimestampType::LogAppendTime,
        ..log_config()
    };
    let mut log = Log::open(dir.path(), config, 0, T0).unwrap();
    let mut w = Writer::new(Compression::Snappy);
    w.append(&mut log, &[kv("a", Some("1")), kv("b", Some("1"))], T0 + 5);
    w.append(&mut log, &[kv("a", Some("2"))], T0 + 9);
    seal(&mut log);
    clean(&mut log, &CleanerConfig::default(), now(), i64::MAX)
        .unwrap()
        .unwrap();
    let plan = log.read(0, 1, log.log_end_offset()).unwrap();
    let mut bytes = Vec::new();
    plan.read_into(&mut bytes).unwrap();
    let (header, batch) = BatchIter::new(&bytes).next().unwrap().unwrap();
    assert_eq!(
        header.timestamp_type(),
        fjord_storage::TimestampType::LogAppendTime
    );
    assert_eq!(header.max_timestamp, T0 + 5);
    let records = decode_records_any(batch, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].offset, records[0].timestamp), (1, T0 + 5));
    assert_compacted(&log, &w, false);
}

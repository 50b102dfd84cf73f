//! Log compaction of transactional data: aborted records go, markers stay, nothing at or
//! beyond the first unstable offset is touched, and the aborted-transaction index follows
//! the segments through a swap and through a crash during one.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use fjord_protocol::batch::{build_batch, BatchHeader, BatchIter, BatchSpec, RecordSpec};
use fjord_protocol::compression::{decode_records_any, DEFAULT_MAX_DECOMPRESSED_BYTES};
use fjord_storage::cleaner::{self, clean, dirty_ratio, needs_cleaning, CleanerConfig};
use fjord_storage::{AbortedTxn, Log, LogConfig};

const T0: i64 = 1_700_000_000_000;

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

fn now() -> i64 {
    T0 + 60_000
}

/// A key and value; `None` is null.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

fn kv(key: &str, value: &str) -> KeyValue {
    (
        Some(key.as_bytes().to_vec()),
        Some(value.as_bytes().to_vec()),
    )
}

/// Writes plain, transactional and marker batches like a broker would.
struct Writer {
    log: Log,
    ts: i64,
}

impl Writer {
    fn open(dir: &Path) -> Writer {
        Writer {
            log: Log::open(dir, log_config(), 0, T0).unwrap(),
            ts: T0,
        }
    }

    fn append(&mut self, spec: &BatchSpec, records: &[KeyValue]) -> i64 {
        self.ts += 1;
        let specs: Vec<RecordSpec> = records
            .iter()
            .map(|(k, v)| RecordSpec {
                timestamp: self.ts,
                key: k.clone(),
                value: v.clone(),
                headers: vec![],
            })
            .collect();
        let mut batch = build_batch(spec, &specs);
        self.log.append(&mut batch, self.ts).unwrap().first_offset
    }

    fn plain(&mut self, records: &[KeyValue]) -> i64 {
        self.append(&BatchSpec::default(), records)
    }

    fn txn(&mut self, producer_id: i64, records: &[KeyValue]) -> i64 {
        let spec = BatchSpec {
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            is_transactional: true,
            ..BatchSpec::default()
        };
        self.append(&spec, records)
    }

    /// Writes a commit or abort marker; returns its offset.
    fn marker(&mut self, producer_id: i64, commit: bool) -> i64 {
        let spec = BatchSpec {
            producer_id,
            producer_epoch: 0,
            base_sequence: -1,
            is_transactional: true,
            is_control: true,
            ..BatchSpec::default()
        };
        let key = vec![0, 0, 0, u8::from(commit)];
        self.append(&spec, &[(Some(key), Some(vec![0; 6]))])
    }

    /// Aborts `producer_id`'s transaction that started at `first_offset`, recording it in
    /// the index as the broker does.
    fn abort(&mut self, producer_id: i64, first_offset: i64) -> AbortedTxn {
        let last_offset = self.marker(producer_id, false);
        let txn = AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: last_offset + 1,
        };
        self.log.append_aborted_txn(txn).unwrap();
        txn
    }

    /// Starts a new segment.
    fn roll(&mut self) {
        assert!(self.log.roll_if_due(i64::MAX / 2).unwrap());
    }

    /// Seals everything written so far and appends a record to the new active segment, so
    /// a read from any removed offset finds something after it.
    fn seal(&mut self) {
        self.roll();
        self.plain(&[kv("tail", "tail")]);
    }
}

/// Every batch of the log with its records, from the log start.
fn read_batches(log: &Log) -> Vec<(BatchHeader, Vec<(i64, KeyValue)>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let plan = log.read(offset, 1 << 20, end).unwrap();
        assert!(!plan.is_empty(), "empty read at {offset} below {end}");
        let mut bytes = Vec::new();
        plan.read_into(&mut bytes).unwrap();
        for batch in BatchIter::new(&bytes) {
            let (header, batch) = batch.unwrap();
            if header.last_offset() < offset {
                continue;
            }
            let records = decode_records_any(batch, DEFAULT_MAX_DECOMPRESSED_BYTES)
                .unwrap()
                .into_iter()
                .map(|r| (r.offset, (r.key, r.value)))
                .collect();
            out.push((header, records));
        }
        offset = plan.next_offset();
    }
    out
}

/// Data records by offset (markers left out).
fn data(log: &Log) -> BTreeMap<i64, KeyValue> {
    read_batches(log)
        .into_iter()
        .filter(|(h, _)| !h.is_control())
        .flat_map(|(_, records)| records)
        .collect()
}

/// Offsets of the markers.
fn markers(log: &Log) -> Vec<i64> {
    read_batches(log)
        .into_iter()
        .filter(|(h, _)| h.is_control())
        .map(|(h, _)| h.base_offset)
        .collect()
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

#[test]
fn aborted_records_go_and_never_shadow_a_committed_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path());
    let a0 = w.plain(&[kv("a", "committed"), kv("b", "old")]);
    // Producer 1 overwrites both keys in a transaction it aborts; producer 2's
    // transaction, interleaved inside that range, commits.
    let aborted_at = w.txn(1, &[kv("a", "aborted"), kv("b", "aborted")]);
    let c = w.txn(2, &[kv("c", "committed")]);
    let abort = w.abort(1, aborted_at);
    let commit2 = w.marker(2, true);
    let d = w.plain(&[kv("d", "plain")]);
    // Producer 1's next transaction commits a new value of "b".
    let b_new = w.txn(1, &[kv("b", "new")]);
    let commit1 = w.marker(1, true);
    w.seal();
    let tail = w.log.log_end_offset() - 1;
    let mut log = w.log;

    let outcome = clean(&mut log, &CleanerConfig::default(), now(), i64::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(outcome.aborted_records_removed, 2);
    assert_eq!(outcome.records_removed, 1);
    let expected: BTreeMap<i64, KeyValue> = [
        (a0, kv("a", "committed")),
        (c, kv("c", "committed")),
        (d, kv("d", "plain")),
        (b_new, kv("b", "new")),
        (tail, kv("tail", "tail")),
    ]
    .into_iter()
    .collect();
    assert_eq!(data(&log), expected);
    assert_eq!(markers(&log), vec![abort.last_offset, commit2, commit1]);
    // The index entry stays with its marker, through the swap and restarts.
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![abort]);
    log.close().unwrap();
    let log = Log::open(dir.path(), log_config(), i64::MAX, now()).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![abort]);
    assert_eq!(data(&log), expected);
    drop(log);
    let log = Log::open(dir.path(), log_config(), 0, now()).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![abort]);
    assert_eq!(markers(&log), vec![abort.last_offset, commit2, commit1]);
}

#[test]
fn cleaning_never_reaches_the_first_unstable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path());
    let x_old = w.plain(&[kv("x", "committed")]);
    for round in 0..6 {
        for k in 0..10 {
            w.plain(&[kv(
                &format!("k{k}"),
                &format!("round {round} padding padding"),
            )]);
        }
        w.roll();
    }
    for k in 0..4 {
        w.plain(&[kv(&format!("k{k}"), "before the open transaction")]);
    }
    // Producer 5's transaction starts before the bound and is aborted after it.
    let straddling = w.txn(5, &[kv("k1", "aborted, straddling")]);
    // Producer 3's transaction is still open: its write of "x" cannot be judged.
    let open_at = w.txn(3, &[kv("x", "undecided")]);
    assert!(!w.log.segment_base_offsets().contains(&open_at));
    for k in 0..10 {
        w.plain(&[kv(&format!("k{k}"), "after the open transaction")]);
    }
    let straddling_beyond = w.txn(5, &[kv("k2", "aborted, beyond")]);
    let straddling_abort = w.abort(5, straddling);
    // A transaction started and aborted after the bound is not judged either.
    let late = w.txn(4, &[kv("k0", "aborted late")]);
    let late_abort = w.abort(4, late);
    w.roll();
    for k in 0..10 {
        w.plain(&[kv(&format!("k{k}"), "newest")]);
    }
    w.seal();
    let mut log = w.log;
    let before = read_batches(&log);
    let at_or_after = |batches: &[(BatchHeader, Vec<(i64, KeyValue)>)]| {
        batches
            .iter()
            .filter(|(h, _)| h.last_offset() >= open_at)
            .cloned()
            .collect::<Vec<_>>()
    };

    let config = CleanerConfig::default();
    assert!(!needs_cleaning(&log, &config, now(), 0).unwrap());
    assert_eq!(dirty_ratio(&log, &config, now(), 0).unwrap(), 0.0);
    assert!(cleaner::plan(&log, &config, now(), 0).unwrap().is_none());
    assert!(needs_cleaning(&log, &config, now(), open_at).unwrap());

    let outcome = clean(&mut log, &config, now(), open_at).unwrap().unwrap();
    assert_eq!(outcome.end_offset, open_at);
    assert_eq!(outcome.aborted_records_removed, 1);
    assert!(outcome.records_removed >= 50, "{outcome:?}");
    let after = read_batches(&log);
    // Everything from the bound on is exactly as it was, the aborted batch included.
    assert_eq!(at_or_after(&after), at_or_after(&before));
    let all = data(&log);
    // The undecided write does not shadow the committed value before it.
    assert_eq!(all.get(&x_old), Some(&kv("x", "committed")));
    assert_eq!(all.get(&late), Some(&kv("k0", "aborted late")));
    assert_eq!(all.get(&straddling), None);
    assert_eq!(
        all.get(&straddling_beyond),
        Some(&kv("k2", "aborted, beyond"))
    );
    // Below the bound, one record per key is left.
    let below: Vec<_> = all.range(..open_at).map(|(_, (k, _))| k.clone()).collect();
    assert_eq!(below.len(), 11, "{below:?}");

    // The transaction commits and the bound moves on: now everything can be judged.
    let commit = w_commit(&mut log, 3);
    let outcome = clean(&mut log, &config, now(), i64::MAX).unwrap().unwrap();
    assert_eq!(outcome.aborted_records_removed, 2);
    let all = data(&log);
    assert_eq!(all.get(&x_old), None);
    assert_eq!(all.get(&straddling_beyond), None);
    assert_eq!(all.get(&open_at), Some(&kv("x", "undecided")));
    assert_eq!(all.get(&late), None);
    assert!(markers(&log).contains(&late_abort.last_offset));
    assert!(markers(&log).contains(&commit));
    assert_eq!(
        log.aborted_txns(0, i64::MAX),
        vec![straddling_abort, late_abort]
    );
}

/// Appends a commit marker for `producer_id` and seals it into a segment of its own.
fn w_commit(log: &mut Log, producer_id: i64) -> i64 {
    let spec = BatchSpec {
        producer_id,
        producer_epoch: 0,
        base_sequence: -1,
        is_transactional: true,
        is_control: true,
        ..BatchSpec::default()
    };
    let marker = RecordSpec {
        timestamp: T0 + 10_000,
        key: Some(vec![0, 0, 0, 1]),
        value: Some(vec![0; 6]),
        headers: vec![],
    };
    let mut batch = build_batch(&spec, &[marker]);
    let offset = log.append(&mut batch, T0 + 10_000).unwrap().first_offset;
    assert!(log.roll_if_due(i64::MAX / 2).unwrap());
    let tail = RecordSpec {
        timestamp: T0 + 10_001,
        key: Some(b"tail2".to_vec()),
        value: Some(b"tail".to_vec()),
        headers: vec![],
    };
    let mut batch = build_batch(&BatchSpec::default(), &[tail]);
    log.append(&mut batch, T0 + 10_001).unwrap();
    offset
}

/// Small segments, so one cleaned segment replaces several, with aborted transactions
/// whose markers sit in the second and third of them.
fn crash_fixture() -> (tempfile::TempDir, Vec<AbortedTxn>, BTreeMap<i64, KeyValue>) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path());
    for k in 0..5 {
        w.plain(&[kv(&format!("k{k}"), "first")]);
    }
    w.roll();
    let t1 = w.txn(1, &[kv("k0", "aborted 1")]);
    let a1 = w.abort(1, t1);
    w.plain(&[kv("k1", "second")]);
    w.roll();
    let t2 = w.txn(2, &[kv("k1", "aborted 2"), kv("k2", "aborted 2")]);
    w.plain(&[kv("k3", "third")]);
    let a2 = w.abort(2, t2);
    w.roll();
    for k in 0..5 {
        w.plain(&[kv(&format!("k{k}"), "fourth")]);
    }
    w.seal();
    let log = w.log;
    let entries = log.aborted_txns(0, i64::MAX);
    assert_eq!(entries, vec![a1, a2]);
    assert_eq!(files_with_suffix(dir.path(), ".txnindex").len(), 2);
    // The result a completed pass must have: one record per key, aborted ones gone.
    let mut expected = data(&log);
    expected.retain(|_, (k, v)| {
        k.as_deref() == Some(b"tail".as_slice()) || v.as_deref() == Some(b"fourth".as_slice())
    });
    let plan = cleaner::plan(&log, &CleanerConfig::default(), now(), i64::MAX)
        .unwrap()
        .unwrap();
    let cleaned = plan.build().unwrap();
    assert_eq!(cleaned.outcome().segments_written, 1);
    assert!(cleaned.outcome().segments_read >= 4);
    // "Crash" before the swap.
    std::mem::forget(cleaned);
    drop(log);
    assert_eq!(files_with_suffix(dir.path(), ".txnindex.cleaned").len(), 1);
    (dir, entries, expected)
}

fn commit_swaps(dir: &Path) -> Vec<PathBuf> {
    files_with_suffix(dir, ".log.cleaned")
        .into_iter()
        .map(|cleaned| {
            let swap = PathBuf::from(cleaned.to_str().unwrap().replace(".cleaned", ".swap"));
            fs::rename(&cleaned, &swap).unwrap();
            swap
        })
        .collect()
}

fn assert_recovered(dir: &Path, entries: &[AbortedTxn], expected: &BTreeMap<i64, KeyValue>) {
    let log = Log::open(dir, log_config(), 0, now()).unwrap();
    assert!(files_with_suffix(dir, ".swap").is_empty());
    assert!(files_with_suffix(dir, ".cleaned").is_empty());
    assert_eq!(log.aborted_txns(0, i64::MAX), entries);
    assert_eq!(&data(&log), expected);
    // All entries now live with the one cleaned segment.
    let base = log.segment_base_offsets()[0];
    assert_eq!(
        files_with_suffix(dir, ".txnindex"),
        vec![dir.join(format!("{base:020}.txnindex"))]
    );
}

#[test]
fn crash_before_the_commit_point_keeps_the_old_index() {
    let (dir, entries, _) = crash_fixture();
    let log = Log::open(dir.path(), log_config(), 0, now()).unwrap();
    assert!(files_with_suffix(dir.path(), ".cleaned").is_empty());
    assert_eq!(log.aborted_txns(0, i64::MAX), entries);
    assert_eq!(files_with_suffix(dir.path(), ".txnindex").len(), 2);
}

#[test]
fn crash_after_the_commit_point_moves_the_index_in() {
    let (dir, entries, expected) = crash_fixture();
    commit_swaps(dir.path());
    assert_recovered(dir.path(), &entries, &expected);
}

#[test]
fn crash_midway_through_the_swap_keeps_the_moved_index() {
    let (dir, entries, expected) = crash_fixture();
    let swaps = commit_swaps(dir.path());
    assert_eq!(swaps.len(), 1);
    let base: i64 = swaps[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .strip_suffix(".log.swap")
        .unwrap()
        .parse()
        .unwrap();
    let path = |offset: i64, suffix: &str| dir.path().join(format!("{offset:020}.{suffix}"));
    // The other sources are gone and the cleaned indexes were moved in; the swap itself
    // was not renamed yet.
    let mut segments: Vec<i64> = files_with_suffix(dir.path(), ".log")
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.strip_suffix(".log").unwrap().parse().unwrap()
        })
        .collect();
    let active = segments.pop().unwrap();
    assert!(segments.len() >= 4 && active > base);
    for &offset in segments.iter().filter(|&&o| o > base) {
        for suffix in ["log", "index", "timeindex", "txnindex"] {
            let _ = fs::remove_file(path(offset, suffix));
        }
    }
    for suffix in ["index", "timeindex", "txnindex"] {
        fs::rename(path(base, &format!("{suffix}.cleaned")), path(base, suffix)).unwrap();
    }
    assert_recovered(dir.path(), &entries, &expected);
}

#[test]
fn a_completed_swap_carries_the_index() {
    let (dir, entries, expected) = crash_fixture();
    let mut log = Log::open(dir.path(), log_config(), 0, now()).unwrap();
    clean(&mut log, &CleanerConfig::default(), now(), i64::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), entries);
    log.close().unwrap();
    assert_recovered(dir.path(), &entries, &expected);
}

#[test]
fn a_plan_is_discarded_when_the_index_changed_underneath() {
    let (dir, entries, _) = crash_fixture();
    let mut log = Log::open(dir.path(), log_config(), 0, now()).unwrap();
    let plan = cleaner::plan(&log, &CleanerConfig::default(), now(), i64::MAX)
        .unwrap()
        .unwrap();
    let cleaned = plan.build().unwrap();
    // The broker re-derives an entry into a sealed source segment meanwhile.
    let bases = log.segment_base_offsets();
    let extra = AbortedTxn {
        producer_id: 9,
        first_offset: bases[0],
        last_offset: bases[0] + 1,
        last_stable_offset: bases[0],
    };
    log.append_aborted_txn(extra).unwrap();
    assert!(cleaner::swap(&mut log, cleaned).unwrap().is_none());
    assert!(files_with_suffix(dir.path(), ".cleaned").is_empty());
    let mut all = vec![extra];
    all.extend(entries);
    assert_eq!(log.aborted_txns(0, i64::MAX), all);
}

//! Log compaction (`cleanup.policy=compact`) for one partition log, Kafka's way.
//!
//! ```text
//!   log start             first dirty (cleaner-offset)      first uncleanable       active
//!   |<------ clean ------->|<---------- dirty ---------------->|<-- too new or -->|<-- -->|
//!                           build offset map: key -> latest      not yet stable
//!                           offset, until the dedupe buffer
//!                           is full ("end")
//!   |<-------------- segments with base < end are rewritten ---------->|
//!
//!   plan(&Log)        under the log lock: snapshot of sealed segments (Arc<File>s) and of
//!                     the aborted-transaction index, cheap
//!   CleanPlan::build  no lock: read, build the map, write <base>.log.cleaned (+ indexes,
//!                     + the sources' .txnindex entries), fsync
//!   swap(&mut Log)    under the log lock: check nothing changed, then
//!                     .cleaned -> .swap, fsync dir        (commit point)
//!                     delete the other source segments, move indexes in, fsync dir
//!                     .swap -> .log (replaces the first source), fsync dir
//!                     cleaner-offset := end
//! ```
//!
//! The first uncleanable offset is the smallest of: the active segment's base, the first
//! segment newer than `min.compaction.lag.ms`, and the caller's `upper_bound`, the
//! partition's first unstable offset: whether a record of an open transaction is committed
//! or aborted cannot be known yet, so such records are neither removed nor used to remove
//! others. That bound may fall inside a segment; batches reaching it are copied untouched.
//!
//! A record survives if it is the latest for its key (by offset), has a null key, or lies
//! at or beyond `end`. A tombstone (null value) that is the latest for its key is dropped
//! once its segment's newest timestamp is older than `delete.retention.ms`. Offsets never
//! change: a rewritten batch keeps its base offset and `lastOffsetDelta` (as Kafka's cleaner
//! does), so a consumer fetching a removed offset gets the batch or segment that follows,
//! and producer sequence numbers stay meaningful. Batches with nothing removed are copied
//! byte for byte; rewritten ones keep their codec and flags.
//!
//! Transactions, as in Kafka: records of committed transactions are compacted like any
//! others. Records of aborted transactions (a transactional batch inside a range of the
//! aborted-transaction index for its producer) are removed outright and never enter the
//! offset map, so an aborted write can never shadow an earlier committed value of its key.
//! Control batches (commit and abort markers) are always kept (the reasons are in
//! `Filter::filter_batch`).
//!
//! Kept as they are, for now:
//! - batches that cannot be decoded (corrupt payload, over the decompression limit): copied,
//!   and tombstone removal is disabled for the rest of that pass;
//! - batches left empty are dropped even when they were an idempotent producer's last batch
//!   (Kafka keeps an empty header to preserve the producer's sequence).
//!
//! A cleaned segment carries the aborted-transaction entries of the segments it replaces
//! (their markers are in it), written as `<base>.txnindex.cleaned` next to the other
//! cleaned files and moved in with them. After a crash, [`Log::open`] deletes `.cleaned`
//! files and completes any `.swap` (`complete_swaps`): segments inside the swapped range
//! are deleted and the swap takes the first one's name, its `.txnindex` included. Either
//! every old segment of a group or its cleaned replacement is visible, never a mix that
//! loses or duplicates a record.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjord_protocol::batch::{BatchHeader, BatchIter, BatchIterEnd, BatchSpec, Record};
use fjord_protocol::compression::{
    build_batch_at_offsets, decode_records_any, OffsetBatchSpec, DEFAULT_MAX_DECOMPRESSED_BYTES,
};

use crate::checkpoint::{sync_dir, write_atomically};
use crate::error::{IoContext, IoVerb};
use crate::index::{encode_offset_entries, encode_time_entries, OffsetEntry, TimeEntry};
use crate::log::limits;
use crate::segment::{file_name, IndexLimits, Segment};
use crate::txn_index::encode_entries;
use crate::{AbortedTxn, Log, StorageError};

/// Per-partition file holding the offset below which the log is clean (Kafka keeps one
/// `cleaner-offset-checkpoint` per log dir). Format: `0\n<offset>\n`.
pub const CLEANER_OFFSET_FILE: &str = "cleaner-offset";

/// Suffix of a cleaned segment being written (deleted on recovery).
const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned segment that is committed but not yet in place (completed on
/// recovery).
const SWAP_SUFFIX: &str = ".swap";
/// Read size for sequential passes over segments.
const READ_CHUNK: usize = 1 << 20;
/// Estimated bytes one offset-map entry costs besides its key: the boxed key's pointer and
/// length, the offset, hash-table control bytes and load-factor slack.
const MAP_ENTRY_OVERHEAD: usize = 64;

/// Compaction settings, named after Kafka's topic configs; `Default` is Kafka's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `min.cleanable.dirty.ratio`: clean once dirty bytes / cleanable bytes reach this.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records newer than this stay uncompacted (a segment whose
    /// newest timestamp is newer ends the cleanable range).
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: clean regardless of the dirty ratio once the oldest dirty
    /// segment is this old.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone is kept once its segment is this old.
    pub delete_retention_ms: i64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the key -> offset map of one pass; a
    /// full map ends the pass early and the next pass continues from there.
    pub dedupe_buffer_bytes: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            dedupe_buffer_bytes: 128 << 20,
        }
    }
}

impl CleanerConfig {
    /// Checks value ranges Kafka enforces.
    pub fn validate(self) -> Result<CleanerConfig, StorageError> {
        let bad = |what: String| Err(StorageError::InvalidConfig(what));
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return bad(format!(
                "min.cleanable.dirty.ratio {} must be within [0, 1]",
                self.min_cleanable_dirty_ratio
            ));
        }
        if self.min_compaction_lag_ms < 0
            || self.max_compaction_lag_ms < 1
            || self.delete_retention_ms < 0
        {
            return bad("compaction lags and delete.retention.ms must not be negative".into());
        }
        if self.dedupe_buffer_bytes == 0 {
            return bad("log.cleaner.dedupe.buffer.size must be positive".into());
        }
        Ok(self)
    }
}

/// What one cleaning pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanOutcome {
    /// Where the dirty section started (the previous cleaner offset).
    pub first_dirty_offset: i64,
    /// The new cleaner offset: everything below it is clean.
    pub end_offset: i64,
    /// Whether the dedupe buffer filled before the cleanable range ended (another pass is
    /// due).
    pub map_full: bool,
    /// Source segments read by the rewrite.
    pub segments_read: usize,
    /// Segments written in their place.
    pub segments_written: usize,
    /// Bytes of the source segments.
    pub bytes_read: u64,
    /// Bytes of the cleaned segments.
    pub bytes_written: u64,
    /// Records removed because a later record has the same key.
    pub records_removed: u64,
    /// Tombstones removed after `delete.retention.ms`.
    pub tombstones_removed: u64,
    /// Records removed because their transaction was aborted.
    pub aborted_records_removed: u64,
}

/// Reads the cleaner offset of the partition in `dir` (`None` if never cleaned).
pub fn read_cleaner_offset(dir: &Path) -> Result<Option<i64>, StorageError> {
    let path = dir.join(CLEANER_OFFSET_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(IoVerb::Read, path, e)),
    };
    let corrupt = |line, reason: &str| StorageError::CorruptCheckpoint {
        path: path.clone(),
        line,
        reason: reason.to_owned(),
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return Err(corrupt(1, "unsupported version"));
    }
    lines
        .next()
        .and_then(|l| l.trim().parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| corrupt(2, "bad offset"))
}

fn write_cleaner_offset(dir: &Path, offset: i64) -> Result<(), StorageError> {
    write_atomically(
        &dir.join(CLEANER_OFFSET_FILE),
        format!("0\n{offset}\n").as_bytes(),
    )
}

/// Lowers the persisted cleaner offset to `offset` when it lies above (the log is being
/// truncated): records written after a truncation must not count as already clean, or the
/// cleaner would never compact them. Kafka's `maybeTruncateCheckpoint`. An unreadable file
/// is replaced, since a lower cleaner offset is always safe (at worst a range is cleaned
/// again).
pub(crate) fn lower_cleaner_offset(dir: &Path, offset: i64) -> Result<(), StorageError> {
    match read_cleaner_offset(dir) {
        Ok(Some(current)) if current > offset => write_cleaner_offset(dir, offset),
        Ok(_) => Ok(()),
        Err(why @ StorageError::CorruptCheckpoint { .. }) => {
            tracing::warn!(%why, "replacing unreadable cleaner offset");
            write_cleaner_offset(dir, offset)
        }
        Err(e) => Err(e),
    }
}

/// The first dirty offset: the persisted cleaner offset if it lies within the log, else the
/// log start (Kafka resets an out-of-range checkpoint the same way).
fn first_dirty_offset(log: &Log) -> Result<i64, StorageError> {
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    Ok(match read_cleaner_offset(log.dir())? {
        Some(offset) if offset >= start && offset <= end => offset,
        _ => start,
    })
}

/// End of the cleanable range: the active segment, the first dirty segment holding
/// records newer than `min.compaction.lag.ms`, or `upper_bound` (the first unstable
/// offset), whichever comes first.
fn first_uncleanable_offset(
    log: &Log,
    config: &CleanerConfig,
    first_dirty: i64,
    now_ms: i64,
    upper_bound: i64,
) -> i64 {
    let segments = log.segments();
    let (sealed, active) = segments.split_at(segments.len() - 1);
    let mut limit = active[0].base_offset;
    if config.min_compaction_lag_ms > 0 {
        let cutoff = now_ms.saturating_sub(config.min_compaction_lag_ms);
        if let Some(seg) = sealed
            .iter()
            .filter(|s| s.next_offset > first_dirty)
            .find(|s| s.largest_timestamp() > cutoff)
        {
            limit = limit.min(seg.base_offset);
        }
    }
    limit.min(upper_bound)
}

/// Sealed-segment bytes (clean, dirty) of the cleanable part of the log.
fn clean_and_dirty_bytes(log: &Log, first_dirty: i64, first_uncleanable: i64) -> (u64, u64) {
    let segments = log.segments();
    let sealed = &segments[..segments.len() - 1];
    let mut clean = 0;
    let mut dirty = 0;
    for s in sealed {
        if s.next_offset <= first_dirty {
            clean += s.size;
        } else if s.base_offset < first_uncleanable {
            dirty += s.size;
        }
    }
    (clean, dirty)
}

/// Dirty bytes over cleanable bytes (Kafka's "cleanable ratio"), from 0.0 to 1.0; 0.0 for a
/// log with nothing cleanable. Nothing at or above `upper_bound` (the partition's first
/// unstable offset; `i64::MAX` without transactions) counts as cleanable.
pub fn dirty_ratio(
    log: &Log,
    config: &CleanerConfig,
    now_ms: i64,
    upper_bound: i64,
) -> Result<f64, StorageError> {
    let first_dirty = first_dirty_offset(log)?;
    let first_uncleanable = first_uncleanable_offset(log, config, first_dirty, now_ms, upper_bound);
    let (clean, dirty) = clean_and_dirty_bytes(log, first_dirty, first_uncleanable);
    if clean + dirty == 0 {
        return Ok(0.0);
    }
    Ok(dirty as f64 / (clean + dirty) as f64)
}

/// Whether a pass is due: the dirty ratio reached `min.cleanable.dirty.ratio`, or the oldest
/// dirty segment is older than `max.compaction.lag.ms`. `upper_bound` as for [`plan`].
pub fn needs_cleaning(
    log: &Log,
    config: &CleanerConfig,
    now_ms: i64,
    upper_bound: i64,
) -> Result<bool, StorageError> {
    let first_dirty = first_dirty_offset(log)?;
    let first_uncleanable = first_uncleanable_offset(log, config, first_dirty, now_ms, upper_bound);
    let (clean, dirty) = clean_and_dirty_bytes(log, first_dirty, first_uncleanable);
    if dirty == 0 {
        return Ok(false);
    }
    if dirty as f64 / (clean + dirty) as f64 >= config.min_cleanable_dirty_ratio {
        return Ok(true);
    }
    let segments = log.segments();
    let overdue = segments[..segments.len() - 1]
        .iter()
        .find(|s| s.next_offset > first_dirty && s.base_offset < first_uncleanable)
        .is_some_and(|s| {
            now_ms.saturating_sub(s.largest_timestamp()) > config.max_compaction_lag_ms
        });
    Ok(overdue)
}

/// Cleans `log` in one go: [`plan`], [`CleanPlan::build`], [`swap`]. Returns `None` when
/// there was nothing to clean. Callers that share the log should run the three steps
/// themselves and hold their lock only for `plan` and `swap`. `upper_bound` as for [`plan`].
pub fn clean(
    log: &mut Log,
    config: &CleanerConfig,
    now_ms: i64,
    upper_bound: i64,
) -> Result<Option<CleanOutcome>, StorageError> {
    let Some(plan) = plan(log, config, now_ms, upper_bound)? else {
        return Ok(None);
    };
    let cleaned = plan.build()?;
    swap(log, cleaned)
}

/// One sealed segment as seen by the plan: its file stays readable through the `Arc` even
/// if retention deletes it meanwhile.
#[derive(Debug, Clone)]
struct SourceSegment {
    base_offset: i64,
    /// Base offset of the following segment.
    next_offset: i64,
    size: u64,
    file: Arc<File>,
    path: PathBuf,
    largest_timestamp: i64,
    /// The segment's aborted-transaction entries at planning time.
    aborted_txns: Vec<AbortedTxn>,
}

/// What to clean, snapshotted from the log under its lock; [`CleanPlan::build`] runs without
/// it.
#[derive(Debug)]
pub struct CleanPlan {
    dir: PathBuf,
    config: CleanerConfig,
    now_ms: i64,
    /// Every sealed segment from the log start up to the first uncleanable offset.
    sources: Vec<SourceSegment>,
    first_dirty: i64,
    first_uncleanable: i64,
    /// Aborted transactions that may cover records of the sources.
    aborted: AbortedRanges,
    segment_bytes: u64,
    limits: IndexLimits,
    max_decompressed_bytes: usize,
}

/// Snapshots what a pass needs (cheap: no I/O besides reading the cleaner offset). `None`
/// when the cleanable range is empty.
///
/// `upper_bound` is the partition's first unstable offset (the last stable offset: the
/// first offset of the oldest open transaction, or the high watermark); cleaning never
/// reaches it, because records of open transactions cannot be judged yet. Pass `i64::MAX`
/// for a partition that has never seen transactional writes.
pub fn plan(
    log: &Log,
    config: &CleanerConfig,
    now_ms: i64,
    upper_bound: i64,
) -> Result<Option<CleanPlan>, StorageError> {
    let config = config.clone().validate()?;
    let first_dirty = first_dirty_offset(log)?;
    let first_uncleanable =
        first_uncleanable_offset(log, &config, first_dirty, now_ms, upper_bound);
    if first_dirty >= first_uncleanable {
        return Ok(None);
    }
    let segments = log.segments();
    let mut sources = Vec::new();
    for pair in segments.windows(2) {
        let (seg, next) = (&pair[0], &pair[1]);
        if seg.base_offset >= first_uncleanable {
            break;
        }
        sources.push(SourceSegment {
            base_offset: seg.base_offset,
            next_offset: next.base_offset,
            size: seg.size,
            file: seg.log.clone(),
            path: seg.log_path.clone(),
            largest_timestamp: seg.largest_timestamp(),
            aborted_txns: seg.txn_index.entries().to_vec(),
        });
    }
    if !sources
        .iter()
        .any(|s| s.next_offset > first_dirty && s.size > 0)
    {
        return Ok(None);
    }
    // Aborted transactions with data in the sources; their markers may lie further on, up to
    // the active segment.
    let aborted = AbortedRanges::new(&log.aborted_txns(sources[0].base_offset, first_uncleanable));
    let log_config = log.config();
    Ok(Some(CleanPlan {
        dir: log.dir().to_path_buf(),
        config,
        now_ms,
        sources,
        first_dirty,
        first_uncleanable,
        aborted,
        segment_bytes: log_config.segment_bytes,
        limits: limits(log_config),
        max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES
            .max(log_config.max_message_bytes as usize * 32),
    }))
}

/// Cleaned segments written and synced, waiting for [`swap`].
#[derive(Debug)]
pub struct CleanedSegments {
    dir: PathBuf,
    groups: Vec<CleanedGroup>,
    outcome: CleanOutcome,
}

impl CleanedSegments {
    /// What the pass will have done once swapped in.
    pub fn outcome(&self) -> &CleanOutcome {
        &self.outcome
    }

    /// Deletes the written files without swapping them in (e.g. the partition moved away).
    pub fn discard(self) -> Result<(), StorageError> {
        for g in &self.groups {
            g.remove_cleaned_files()?;
        }
        Ok(())
    }
}

/// Sources replaced by one cleaned segment (or, when nothing survived and the group is not
/// the first, simply deleted).
#[derive(Debug)]
struct CleanedGroup {
    sources: Vec<SourceSegment>,
    /// `None`: nothing survived and the sources are deleted without a replacement.
    output: Option<CleanedFiles>,
}

#[derive(Debug)]
struct CleanedFiles {
    log: PathBuf,
    index: PathBuf,
    time_index: PathBuf,
    /// Written only when the sources have aborted-transaction entries.
    txn_index: Option<PathBuf>,
    size: u64,
}

impl CleanedGroup {
    fn base_offset(&self) -> i64 {
        self.sources[0].base_offset
    }

    fn remove_cleaned_files(&self) -> Result<(), StorageError> {
        if let Some(out) = &self.output {
            remove_if_exists(&out.log)?;
            remove_if_exists(&out.index)?;
            remove_if_exists(&out.time_index)?;
            if let Some(txn_index) = &out.txn_index {
                remove_if_exists(txn_index)?;
            }
        }
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(IoVerb::Remove, path, e)),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Calls `f(header, bytes)` for every batch of a sealed segment, CRC-checked, reading in
/// large sequential chunks. Corruption stops the pass: a segment that does not read back
/// cleanly is left alone.
fn for_each_batch(
    source: &SourceSegment,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<bool, StorageError>,
) -> Result<(), StorageError> {
    let mut buf = Vec::new();
    let mut pos = 0u64;
    let mut chunk = READ_CHUNK;
    while pos < source.size {
        let want = chunk.min((source.size - pos) as usize);
        buf.resize(want, 0);
        source
            .file
            .read_exact_at(&mut buf, pos)
            .ctx(IoVerb::Read, &source.path)?;
        let mut iter = BatchIter::new(&buf);
        loop {
            let at = pos + iter.consumed() as u64;
            match iter.next() {
                None => break,
                Some(Err(e)) => {
                    return Err(StorageError::CorruptSegment {
                        path: source.path.clone(),
                        position: at,
                        source: e,
                    })
                }
                Some(Ok((header, bytes))) => {
                    if !f(&header, bytes)? {
                        return Ok(());
                    }
                }
            }
        }
        let consumed = iter.consumed();
        if let BatchIterEnd::Incomplete { needed } = iter.end() {
            let at = pos + consumed as u64;
            if at + needed as u64 > source.size {
                return Err(StorageError::CorruptSegment {
                    path: source.path.clone(),
                    position: at,
                    source: fjord_protocol::batch::BatchError::Incomplete { needed },
                });
            }
            chunk = chunk.max(needed);
        }
        pos += consumed as u64;
    }
    Ok(())
}

/// Aborted transactions by producer, answering "was this transactional batch aborted?".
#[derive(Debug, Default)]
struct AbortedRanges {
    /// Per producer, `(first offset, abort marker offset)` sorted by first offset; a
    /// producer runs one transaction at a time, so its ranges do not overlap.
    by_producer: HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedRanges {
    fn new(txns: &[AbortedTxn]) -> AbortedRanges {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in txns {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        for ranges in by_producer.values_mut() {
            ranges.sort_unstable();
        }
        AbortedRanges { by_producer }
    }

    /// Whether `header` is a data batch of an aborted transaction: transactional, and its
    /// base offset within an aborted range of its producer.
    fn contains(&self, header: &BatchHeader) -> bool {
        if !header.is_transactional() || header.is_control() {
            return false;
        }
        let Some(ranges) = self.by_producer.get(&header.producer_id) else {
            return false;
        };
        let i = ranges.partition_point(|&(first, _)| first <= header.base_offset);
        i > 0 && ranges[i - 1].1 >= header.base_offset
    }
}

/// Whether a batch's keyed records may enter the offset map and so remove older records
/// of their keys: not markers, and not data of aborted transactions (an aborted write must
/// never shadow an earlier committed value).
fn enters_offset_map(header: &BatchHeader, aborted: &AbortedRanges) -> bool {
    !header.is_control() && !aborted.contains(header)
}

/// Key -> latest offset over the dirty range, with an approximate byte budget.
struct OffsetMap {
    map: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    budget: usize,
}

impl OffsetMap {
    /// Records `offset` as the latest for `key`; `false` if a new key does not fit (the
    /// first key always fits, so every pass makes progress).
    fn put(&mut self, key: &[u8], offset: i64) -> bool {
        if let Some(latest) = self.map.get_mut(key) {
            *latest = offset;
            return true;
        }
        let cost = key.len() + MAP_ENTRY_OVERHEAD;
        if !self.map.is_empty() && self.bytes + cost > self.budget {
            return false;
        }
        self.bytes += cost;
        self.map.insert(key.into(), offset);
        true
    }
}

/// Sparse offset and time index of a segment being written, by the same rules as
/// `Segment::track_batch`/`seal`, so the result loads like any sealed segment's.
struct IndexBuilder {
    base_offset: i64,
    limits: IndexLimits,
    offset: Vec<OffsetEntry>,
    time: Vec<TimeEntry>,
    bytes_since_entry: u64,
    max_timestamp: Option<(i64, i64)>,
}

impl IndexBuilder {
    fn relative(&self, offset: i64) -> u32 {
        (offset - self.base_offset).clamp(0, i64::from(i32::MAX)) as u32
    }

    fn track(&mut self, header: &BatchHeader, position: u64) {
        if self
            .max_timestamp
            .is_none_or(|(ts, _)| header.max_timestamp > ts)
        {
            self.max_timestamp = Some((header.max_timestamp, header.last_offset()));
        }
        if self.bytes_since_entry > self.limits.interval_bytes {
            if self.offset.len() < self.limits.max_offset_entries {
                self.offset.push(OffsetEntry {
                    relative_offset: self.relative(header.base_offset),
                    position: position as u32,
                });
            }
            self.time_entry(self.limits.max_time_entries);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += header.total_size() as u64;
    }

    fn time_entry(&mut self, max_entries: usize) {
        let Some((ts, offset)) = self.max_timestamp else {
            return;
        };
        let grew = self.time.last().is_none_or(|e| ts > e.timestamp);
        if grew && self.time.len() < max_entries {
            self.time.push(TimeEntry {
                timestamp: ts,
                relative_offset: self.relative(offset),
            });
        }
    }

    /// The final time entry carries the segment's max timestamp (used by retention).
    fn seal(&mut self) {
        self.time_entry(usize::MAX);
    }
}

/// Per-pass state of the rewrite.
struct Filter<'a> {
    map: &'a OffsetMap,
    end: i64,
    /// Batches reaching this offset are copied untouched (see [`plan`]).
    first_uncleanable: i64,
    aborted: &'a AbortedRanges,
    delete_horizon_ms: i64,
    /// Set once something makes dropping tombstones unsafe for the rest of the pass.
    keep_tombstones: bool,
    max_decompressed_bytes: usize,
    outcome: CleanOutcome,
}

impl Filter<'_> {
    fn retain(&mut self, r: &Record, segment_largest_timestamp: i64) -> bool {
        let Some(key) = r.key.as_deref() else {
            return true;
        };
        if self
            .map
            .map
            .get(key)
            .is_some_and(|&latest| latest > r.offset)
        {
            self.outcome.records_removed += 1;
            return false;
        }
        let expired_tombstone = r.value.is_none()
            && r.offset < self.end
            && segment_largest_timestamp < self.delete_horizon_ms
            && !self.keep_tombstones;
        if expired_tombstone {
            self.outcome.tombstones_removed += 1;
            return false;
        }
        true
    }

    /// The bytes to write for one source batch: the batch itself, a rebuilt batch with
    /// fewer records, or nothing.
    fn filter_batch<'b>(
        &mut self,
        header: &BatchHeader,
        bytes: &'b [u8],
        segment_largest_timestamp: i64,
    ) -> Result<Option<std::borrow::Cow<'b, [u8]>>, StorageError> {
        use std::borrow::Cow;
        // Transaction markers are never removed. Kafka drops a marker once
        // delete.retention.ms has passed and no record of its transaction is left; keeping
        // it is always safe (a read_committed consumer told about an aborted transaction
        // still finds where it ends, a rebuild of producer state still sees the transaction
        // complete, and the .txnindex entry keeps its marker) and costs one small batch per
        // transaction. Batches reaching the first unstable offset cannot be judged yet.
        if header.is_control() || header.last_offset() >= self.first_uncleanable {
            return Ok(Some(Cow::Borrowed(bytes)));
        }
        if self.aborted.contains(header) {
            self.outcome.aborted_records_removed += header.records_count.max(0) as u64;
            return Ok(None);
        }
        let records = match decode_records_any(bytes, self.max_decompressed_bytes) {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(base_offset = header.base_offset, error = %e,
                    "cannot decode batch; keeping it uncompacted");
                self.keep_tombstones = true;
                return Ok(Some(Cow::Borrowed(bytes)));
            }
        };
        let total = records.len();
        let kept: Vec<Record> = records
            .into_iter()
            .filter(|r| self.retain(r, segment_largest_timestamp))
            .collect();
        if kept.len() == total {
            return Ok(Some(Cow::Borrowed(bytes)));
        }
        if kept.is_empty() {
            return Ok(None);
        }
        let compression = header
            .compression()
            .map_err(|e| StorageError::CorruptSegment {
                path: PathBuf::new(),
                position: 0,
                source: e,
            })?;
        let log_append_time =
            header.timestamp_type() == fjord_protocol::batch::TimestampType::LogAppendTime;
        let spec = OffsetBatchSpec {
            batch: BatchSpec {
                base_offset: header.base_offset,
                partition_leader_epoch: header.partition_leader_epoch,
                producer_id: header.producer_id,
                producer_epoch: header.producer_epoch,
                base_sequence: header.base_sequence,
                is_transactional: header.is_transactional(),
                is_control: false,
                timestamp_type: header.timestamp_type(),
            },
            compression,
            last_offset_delta: Some(header.last_offset_delta),
            log_append_time: log_append_time.then_some(header.max_timestamp),
        };
        let rebuilt = build_batch_at_offsets(&spec, &kept).map_err(|e| {
            StorageError::InvalidRecord(format!(
                "cannot rebuild batch at offset {}: {e}",
                header.base_offset
            ))
        })?;
        Ok(Some(Cow::Owned(rebuilt)))
    }
}

impl CleanPlan {
    /// First dirty offset of the pass.
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty
    }

    /// End of the cleanable range (the most this pass can reach).
    pub fn first_uncleanable_offset(&self) -> i64 {
        self.first_uncleanable
    }

    /// Builds the offset map over the dirty range and returns it with the offset where it
    /// stopped (the new cleaner offset) and whether the buffer filled up.
    fn build_offset_map(&self) -> Result<(OffsetMap, i64, bool), StorageError> {
        let mut map = OffsetMap {
            map: HashMap::new(),
            bytes: 0,
            budget: self.config.dedupe_buffer_bytes,
        };
        let (from, to) = (self.first_dirty, self.first_uncleanable);
        let mut stopped_at = None;
        for source in self
            .sources
            .iter()
            .filter(|s| s.next_offset > from && s.base_offset < to)
        {
            for_each_batch(source, |header, bytes| {
                if header.last_offset() < from {
                    return Ok(true);
                }
                if header.base_offset >= to {
                    return Ok(false);
                }
                if !enters_offset_map(header, &self.aborted) {
                    return Ok(true);
                }
                let Ok(records) = decode_records_any(bytes, self.max_decompressed_bytes) else {
                    return Ok(true);
                };
                for r in records.iter().filter(|r| r.offset >= from && r.offset < to) {
                    if let Some(key) = r.key.as_deref() {
                        if !map.put(key, r.offset) {
                            stopped_at = Some(r.offset);
                            return Ok(false);
                        }
                    }
                }
                Ok(true)
            })?;
            if stopped_at.is_some() {
                break;
            }
        }
        Ok(match stopped_at {
            Some(end) => (map, end, true),
            None => (map, to, false),
        })
    }

    /// Consecutive sources below `end`, grouped so one cleaned segment stays within
    /// `segment.bytes` and 32-bit relative offsets.
    fn groups(&self, end: i64) -> Vec<Vec<SourceSegment>> {
        let mut groups: Vec<Vec<SourceSegment>> = Vec::new();
        let mut size = 0u64;
        for s in self.sources.iter().filter(|s| s.base_offset < end) {
            match groups.last_mut() {
                Some(g)
                    if size + s.size <= self.segment_bytes
                        && s.next_offset - g[0].base_offset <= i64::from(i32::MAX) =>
                {
                    size += s.size;
                    g.push(s.clone());
                }
                _ => {
                    size = s.size;
                    groups.push(vec![s.clone()]);
                }
            }
        }
        groups
    }

    /// Does the heavy part without the log lock: builds the offset map, rewrites every
    /// segment below the new cleaner offset into `<base>.log.cleaned` (plus index files)
    /// and syncs them. Nothing is visible to the log until [`swap`].
    pub fn build(self) -> Result<CleanedSegments, StorageError> {
        let (map, end, map_full) = self.build_offset_map()?;
        let mut filter = Filter {
            map: &map,
            end,
            first_uncleanable: self.first_uncleanable,
            aborted: &self.aborted,
            delete_horizon_ms: self.now_ms.saturating_sub(self.config.delete_retention_ms),
            keep_tombstones: false,
            max_decompressed_bytes: self.max_decompressed_bytes,
            outcome: CleanOutcome {
                first_dirty_offset: self.first_dirty,
                end_offset: end,
                map_full,
                ..CleanOutcome::default()
            },
        };
        let mut groups: Vec<CleanedGroup> = Vec::new();
        for (i, sources) in self.groups(end).into_iter().enumerate() {
            match self.write_group(&mut filter, i == 0, sources) {
                Ok(group) => groups.push(group),
                Err(e) => {
                    for g in &groups {
                        if let Err(cleanup) = g.remove_cleaned_files() {
                            tracing::warn!(error = %cleanup, "cannot remove cleaned file");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(CleanedSegments {
            dir: self.dir,
            groups,
            outcome: filter.outcome,
        })
    }

    fn write_group(
        &self,
        filter: &mut Filter<'_>,
        first: bool,
        sources: Vec<SourceSegment>,
    ) -> Result<CleanedGroup, StorageError> {
        let base_offset = sources[0].base_offset;
        let cleaned = |suffix| {
            with_suffix(
                &self.dir.join(file_name(base_offset, suffix)),
                CLEANED_SUFFIX,
            )
        };
        // The cleaned segment covers the sources' whole offset range, so it takes over their
        // aborted-transaction entries (the markers are never removed).
        let aborted_txns: Vec<AbortedTxn> = sources
            .iter()
            .flat_map(|s| s.aborted_txns.iter().copied())
            .collect();
        let files = CleanedFiles {
            log: cleaned("log"),
            index: cleaned("index"),
            time_index: cleaned("timeindex"),
            txn_index: (!aborted_txns.is_empty()).then(|| cleaned("txnindex")),
            size: 0,
        };
        let mut paths = vec![
            files.log.clone(),
            files.index.clone(),
            files.time_index.clone(),
        ];
        paths.extend(files.txn_index.clone());
        let result = self.write_group_files(filter, &sources, &aborted_txns, files);
        match result {
            Ok(Some(files)) if files.size == 0 && !first && files.txn_index.is_none() => {
                // Nothing survived: the sources go away without a replacement; the previous
                // segment's range then covers their offsets, so reads skip to what follows.
                for path in &paths {
                    remove_if_exists(path)?;
                }
                filter.outcome.segments_read += sources.len();
                filter.outcome.bytes_read += sources.iter().map(|s| s.size).sum::<u64>();
                Ok(CleanedGroup {
                    sources,
                    output: None,
                })
            }
            Ok(Some(files)) => {
                filter.outcome.segments_read += sources.len();
                filter.outcome.segments_written += 1;
                filter.outcome.bytes_read += sources.iter().map(|s| s.size).sum::<u64>();
                filter.outcome.bytes_written += files.size;
                Ok(CleanedGroup {
                    sources,
                    output: Some(files),
                })
            }
            Ok(None) => Ok(CleanedGroup {
                sources: Vec::new(),
                output: None,
            }),
            Err(e) => {
                for path in &paths {
                    if let Err(cleanup) = remove_if_exists(path) {
                        tracing::warn!(error = %cleanup, "cannot remove cleaned file");
                    }
                }
                Err(e)
            }
        }
    }

    /// Writes one group; `None` when a single source lost nothing (no rewrite needed).
    fn write_group_files(
        &self,
        filter: &mut Filter<'_>,
        sources: &[SourceSegment],
        aborted_txns: &[AbortedTxn],
        mut files: CleanedFiles,
    ) -> Result<Option<CleanedFiles>, StorageError> {
        let create = |path: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .ctx(IoVerb::Create, path)
        };
        let log_file = create(&files.log)?;
        let mut out = BufWriter::with_capacity(READ_CHUNK, &log_file);
        let mut index = IndexBuilder {
            base_offset: sources[0].base_offset,
            limits: self.limits,
            offset: Vec::new(),
            time: Vec::new(),
            bytes_since_entry: 0,
            max_timestamp: None,
        };
        let removed = |o: &CleanOutcome| {
            (
                o.records_removed,
                o.tombstones_removed,
                o.aborted_records_removed,
            )
        };
        let before = removed(&filter.outcome);
        let mut position = 0u64;
        for source in sources {
            for_each_batch(source, |header, bytes| {
                let Some(kept) = filter.filter_batch(header, bytes, source.largest_timestamp)?
                else {
                    return Ok(true);
                };
                let kept_header = if matches!(kept, std::borrow::Cow::Borrowed(_)) {
                    *header
                } else {
                    fjord_protocol::batch::parse_header(&kept).map_err(|e| {
                        StorageError::CorruptSegment {
                            path: files.log.clone(),
                            position,
                            source: e,
                        }
                    })?
                };
                index.track(&kept_header, position);
                out.write_all(&kept).ctx(IoVerb::Write, &files.log)?;
                position += kept.len() as u64;
                Ok(true)
            })?;
        }
        out.flush().ctx(IoVerb::Write, &files.log)?;
        drop(out);
        let unchanged = removed(&filter.outcome) == before;
        if unchanged && sources.len() == 1 {
            drop(log_file);
            remove_if_exists(&files.log)?;
            return Ok(None);
        }
        index.seal();
        log_file.sync_all().ctx(IoVerb::Sync, &files.log)?;
        let mut outputs = vec![
            (&files.index, encode_offset_entries(&index.offset)),
            (&files.time_index, encode_time_entries(&index.time)),
        ];
        if let Some(path) = &files.txn_index {
            outputs.push((path, encode_entries(aborted_txns)));
        }
        for (path, bytes) in outputs {
            let f = create(path)?;
            f.write_all_at(&bytes, 0).ctx(IoVerb::Write, path)?;
            f.sync_all().ctx(IoVerb::Sync, path)?;
        }
        files.size = position;
        Ok(Some(files))
    }
}

/// Checks that the group's sources are still exactly the log's segments at that position
/// (same files, same sizes, same aborted-transaction entries, not the active segment);
/// returns the index of the first.
fn locate(log: &Log, group: &CleanedGroup) -> Option<usize> {
    let segments = log.segments();
    let first = segments
        .iter()
        .position(|s| s.base_offset == group.base_offset())?;
    let n = group.sources.len();
    if first + n >= segments.len() {
        return None;
    }
    let same = group
        .sources
        .iter()
        .zip(&segments[first..first + n])
        .all(|(src, seg)| {
            src.base_offset == seg.base_offset
                && src.size == seg.size
                && Arc::ptr_eq(&src.file, &seg.log)
                && src.aborted_txns.as_slice() == seg.txn_index.entries()
        });
    same.then_some(first)
}

fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    fs::rename(from, to).ctx(IoVerb::Rename, to)
}

/// Swaps cleaned segments into `log` (hold the log's lock): checks the log still has the
/// planned segments, commits with the `.swap` rename, replaces the segments on disk and in
/// memory, and advances the cleaner offset. `None` (files discarded) if the log changed
/// under the plan (retention, DeleteRecords, truncation).
///
/// An error after the commit point leaves the files ahead of the in-memory log: treat it
/// like any I/O error on the partition and reopen it; [`Log::open`] completes the swap.
pub fn swap(log: &mut Log, cleaned: CleanedSegments) -> Result<Option<CleanOutcome>, StorageError> {
    let groups: Vec<&CleanedGroup> = cleaned
        .groups
        .iter()
        .filter(|g| !g.sources.is_empty())
        .collect();
    if cleaned.dir != log.dir() || groups.iter().any(|g| locate(log, g).is_none()) {
        tracing::info!(dir = %cleaned.dir.display(), "log changed during cleaning; discarding");
        cleaned.discard()?;
        return Ok(None);
    }
    let dir = cleaned.dir.clone();
    // Commit point: once the .swap names are durable, recovery finishes the job.
    for g in &groups {
        if let Some(out) = &g.output {
            rename(&out.log, &swap_path(&dir, g.base_offset()))?;
        }
    }
    sync_dir(&dir)?;
    let limits = limits(log.config());
    for g in &groups {
        let first = locate(log, g).unwrap_or_else(|| unreachable!("checked above"));
        let n = g.sources.len();
        let Some(out) = &g.output else {
            for seg in &log.segments()[first..first + n] {
                seg.delete_files()?;
            }
            log.replace_segments(first, n, None);
            continue;
        };
        for seg in &log.segments()[first + 1..first + n] {
            seg.delete_files()?;
        }
        let base = g.base_offset();
        rename(&out.index, &dir.join(file_name(base, "index")))?;
        rename(&out.time_index, &dir.join(file_name(base, "timeindex")))?;
        // After the other sources' files are gone, so recovery can tell by the presence of
        // the cleaned file whether the entries were moved in yet.
        let txn_index = dir.join(file_name(base, "txnindex"));
        match &out.txn_index {
            Some(cleaned) => rename(cleaned, &txn_index)?,
            None => remove_if_exists(&txn_index)?,
        }
        sync_dir(&dir)?;
        rename(&swap_path(&dir, base), &dir.join(file_name(base, "log")))?;
        let next_base = log.segments()[first + n].base_offset;
        let mut seg = Segment::open(&dir, base)?;
        if let Err(why) = seg.load_indexes() {
            tracing::warn!(segment = %seg.log_path.display(), %why, "rebuilding index of cleaned segment");
            seg.rebuild(false, &limits)?;
            seg.rewrite_index_files()?;
            seg.sync_index_files()?;
            seg.index_files = None;
        }
        seg.next_offset = next_base;
        log.replace_segments(first, n, Some(seg));
    }
    sync_dir(&dir)?;
    write_cleaner_offset(&dir, cleaned.outcome.end_offset)?;
    tracing::info!(dir = %dir.display(), outcome = ?cleaned.outcome, "cleaned log");
    Ok(Some(cleaned.outcome))
}

fn swap_path(dir: &Path, base_offset: i64) -> PathBuf {
    with_suffix(&dir.join(file_name(base_offset, "log")), SWAP_SUFFIX)
}

/// Crash recovery, called by [`Log::open`] before it lists segments: every
/// `<base>.log.swap` is a committed cleaning result. The segments it replaces (base offsets
/// within `[base, end of the swap)`) and their indexes are deleted, the swap takes the name
/// `<base>.log`, and its offset and time indexes are rebuilt by the normal open path. The
/// aborted-transaction index cannot be rebuilt from the log, so it comes from
/// `<base>.txnindex.cleaned` if that is still there; if not, `swap` had already moved it
/// in (or the group had no entries), and `<base>.txnindex` is kept.
pub(crate) fn complete_swaps(dir: &Path) -> Result<(), StorageError> {
    let mut swaps = Vec::new();
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).ctx(IoVerb::List, dir)? {
        let entry = entry.ctx(IoVerb::List, dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name
            .strip_suffix(SWAP_SUFFIX)
            .and_then(|n| parse_base(n, ".log"))
        {
            swaps.push(base);
        } else if let Some(base) = parse_base(name, ".log") {
            segments.push(base);
        }
    }
    if swaps.is_empty() {
        return Ok(());
    }
    swaps.sort_unstable();
    for base in swaps {
        let path = swap_path(dir, base);
        let end = swap_end_offset(&path, base)?;
        tracing::warn!(path = %path.display(), end, "completing interrupted log cleaning swap");
        for &seg in segments
            .iter()
            .filter(|&&s| s >= base && s < end.max(base + 1))
        {
            for suffix in ["log", "index", "timeindex"] {
                remove_if_exists(&dir.join(file_name(seg, suffix)))?;
            }
            if seg != base {
                remove_if_exists(&dir.join(file_name(seg, "txnindex")))?;
            }
        }
        for suffix in ["index", "timeindex"] {
            remove_if_exists(&dir.join(file_name(base, suffix)))?;
        }
        let txn_index = dir.join(file_name(base, "txnindex"));
        match fs::rename(with_suffix(&txn_index, CLEANED_SUFFIX), &txn_index) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(IoVerb::Rename, txn_index, e)),
        }
        rename(&path, &dir.join(file_name(base, "log")))?;
    }
    sync_dir(dir)
}

fn parse_base(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Offset after the last whole batch of a swap file (its base offset when empty). The file
/// was synced before it was renamed, so a header walk is enough; a torn tail is cut off.
fn swap_end_offset(path: &Path, base: i64) -> Result<i64, StorageError> {
    let file = File::open(path).ctx(IoVerb::Open, path)?;
    let size = file.metadata().ctx(IoVerb::Stat, path)?.len();
    let source = SourceSegment {
        base_offset: base,
        next_offset: i64::MAX,
        size,
        file: Arc::new(file),
        path: path.to_path_buf(),
        largest_timestamp: 0,
        aborted_txns: Vec::new(),
    };
    let mut end = base;
    let mut valid = 0u64;
    let scan = for_each_batch(&source, |header, bytes| {
        end = header.last_offset() + 1;
        valid += bytes.len() as u64;
        Ok(true)
    });
    if let Err(e) = scan {
        tracing::warn!(path = %path.display(), error = %e, valid,
            "swap file has an invalid tail; truncating it");
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .ctx(IoVerb::Open, path)?;
        f.set_len(valid).ctx(IoVerb::Truncate, path)?;
        f.sync_all().ctx(IoVerb::Sync, path)?;
    }
    Ok(end)
}

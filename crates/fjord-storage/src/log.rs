//! The partition log: an ordered list of segments, the last one active.
//!
//! The replication side (follower appends, truncation, the leader-epoch cache queries) lives
//! in the `replication` child module; everything shared with it is here.

mod replication;

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjord_protocol::batch::{
    decode_records, set_base_offset, set_log_append_time, set_partition_leader_epoch, BatchHeader,
    BatchIter, BatchIterEnd, Compression, TimestampType,
};

use crate::checkpoint::{sync_dir, write_atomically};
use crate::error::{IoContext, IoVerb};
use crate::leader_epoch::{EpochEntry, LeaderEpochCache, LEADER_EPOCH_CHECKPOINT_FILE};
use crate::segment::{IndexLimits, Segment};
use crate::{producer_snapshot, AbortedTxn, LogConfig, StorageError};

/// Name of the per-partition file holding the log start offset raised by DeleteRecords.
/// Kafka keeps one `log-start-offset-checkpoint` per log dir instead; a file per partition
/// keeps this crate free of cross-partition state. Format: `0\n<offset>\n`.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";

/// What an append did, for the produce response and for replication bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record (the produce response's base offset).
    pub first_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// The broker time stamped on the batches, only for LogAppendTime topics (the produce
    /// response returns it; -1 otherwise in Kafka).
    pub log_append_time: Option<i64>,
    /// Largest timestamp among the appended batches (the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// Bytes written.
    pub bytes: usize,
    /// Number of batches written.
    pub batch_count: usize,
    /// Sum of the batches' record counts (for metrics).
    pub record_count: i64,
    /// Log start offset after the append (part of the produce response).
    pub log_start_offset: i64,
}

/// Byte range of one segment file to send to a fetcher, resolved under the log lock and
/// copied after it is released: segment bytes below the end are immutable, and a deleted
/// segment stays readable through the open `Arc<File>`.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    file: Option<Arc<File>>,
    position: u64,
    len: usize,
    first_offset: i64,
    next_offset: i64,
}

impl ReadPlan {
    fn empty(offset: i64) -> ReadPlan {
        ReadPlan {
            file: None,
            position: 0,
            len: 0,
            first_offset: offset,
            next_offset: offset,
        }
    }

    /// Number of bytes to send (whole batches).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is nothing to send (read at the log end or the `max_offset` bound).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Base offset of the first batch in the plan (may be below the requested offset: Kafka
    /// returns whole batches and the consumer skips what it did not ask for).
    pub fn first_offset(&self) -> i64 {
        self.first_offset
    }

    /// Offset following the last batch in the plan.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Appends the planned bytes to `out` with positional reads (no lock, no seek).
    pub fn read_into(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let start = out.len();
        out.resize(start + self.len, 0);
        if let Err(e) = file.read_exact_at(&mut out[start..], self.position) {
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }

    /// The file, position and length, for callers that send with `sendfile`/`splice` or
    /// their own buffers.
    pub fn file_and_range(&self) -> Option<(&Arc<File>, u64, usize)> {
        self.file.as_ref().map(|f| (f, self.position, self.len))
    }
}

/// Files to fdatasync for a group commit, snapshotted under the log lock and synced without
/// it; afterwards the caller reports [`FlushTarget::up_to_offset`] to [`Log::mark_flushed`].
#[derive(Debug, Clone)]
pub struct FlushTarget {
    files: Vec<Arc<File>>,
    dir: Option<PathBuf>,
    up_to_offset: i64,
}

impl FlushTarget {
    /// Syncs every file with unflushed data (segments rolled since the last flush included)
    /// and, when segments were created, the partition directory.
    pub fn sync(&self) -> io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        if let Some(dir) = &self.dir {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Log end offset at the snapshot: every offset below it is durable once `sync` returns.
    pub fn up_to_offset(&self) -> i64 {
        self.up_to_offset
    }

    /// Whether there is nothing to sync.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dir.is_none()
    }
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes deleted.
    pub deleted_bytes: u64,
    /// Log start offset after the pass.
    pub log_start_offset: i64,
}

/// One partition's log (`<log.dir>/<topic>-<partition>/`). Mutations take `&mut self` (one
/// writer); reads take `&self` and return plans that are executed after the lock is gone.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset; never empty; the last one is active.
    segments: Vec<Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    size_bytes: u64,
    /// Base offset of the newest segment whose creation is not yet synced in the directory.
    unsynced_dir_since: Option<i64>,
    /// Where each leader epoch starts (`leader-epoch-checkpoint`), for OffsetForLeaderEpoch
    /// and follower truncation.
    epochs: LeaderEpochCache,
}

pub(crate) fn limits(config: &LogConfig) -> IndexLimits {
    IndexLimits {
        interval_bytes: u64::from(config.index_interval_bytes),
        max_offset_entries: (config.segment_index_bytes as usize / 8).max(1),
        max_time_entries: (config.segment_index_bytes as usize / 12).max(1),
    }
}

/// Parses `00000000000000000042.log` into 42.
fn parse_segment_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn read_log_start_file(path: &Path) -> Result<Option<i64>, StorageError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(IoVerb::Read, path, e)),
    };
    let mut lines = text.lines();
    let corrupt = |line, reason: &str| StorageError::CorruptCheckpoint {
        path: path.to_path_buf(),
        line,
        reason: reason.to_owned(),
    };
    if lines.next().map(str::trim) != Some("0") {
        return Err(corrupt(1, "unsupported version"));
    }
    let offset = lines
        .next()
        .and_then(|l| l.trim().parse::<i64>().ok())
        .ok_or_else(|| corrupt(2, "bad offset"))?;
    Ok(Some(offset))
}

/// Feeds the partition leader epoch of every batch in `segments` reaching `log_start_offset`
/// to `cache`, oldest first; returns whether the cache changed. Batches wholly below the log
/// start are skipped: they are gone for readers, and their epochs would depend on whether
/// retention happened to delete their segment yet. Reads batch headers only.
fn assign_epochs_from(
    segments: &[Segment],
    log_start_offset: i64,
    cache: &mut LeaderEpochCache,
) -> Result<bool, StorageError> {
    let mut changed = false;
    for seg in segments {
        let mut reader = seg.headers_from(0);
        while let Some((_, header)) = reader.next_header()? {
            if header.last_offset() >= log_start_offset {
                changed |= cache.assign(header.partition_leader_epoch, header.base_offset);
            }
        }
    }
    Ok(changed)
}

/// Loads the leader-epoch cache of a just-recovered log and makes it agree with the
/// batches: a missing or unreadable file is rebuilt from every batch header (the log is the
/// source of truth); a present one loses entries starting at or beyond the log end (written
/// ahead of records a crash took back), learns the epochs of the batches past the recovery
/// point (as Kafka's recovery does), and is trimmed to the log start. The file is rewritten
/// only when something changed, and always after a rebuild so the next open need not scan.
fn load_leader_epochs(
    dir: &Path,
    segments: &[Segment],
    log_start_offset: i64,
    recovery_point: i64,
) -> Result<LeaderEpochCache, StorageError> {
    let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
    let log_end = segments.last().map_or(0, |s| s.next_offset);
    let loaded = match LeaderEpochCache::read_file(&path) {
        Ok(loaded) => loaded,
        Err(why @ StorageError::CorruptCheckpoint { .. }) => {
            tracing::warn!(%why, "rebuilding the leader-epoch cache from the log");
            None
        }
        Err(e) => return Err(e),
    };
    let (mut cache, mut changed) = match loaded {
        Some(entries) => {
            let mut cache = LeaderEpochCache::new(path, entries);
            let mut changed = cache.truncate_from_end(log_end);
            if changed {
                tracing::warn!(path = %cache.path().display(), log_end,
                    "dropping leader epochs that start beyond the log end");
            }
            let unflushed = segments.partition_point(|s| s.next_offset <= recovery_point);
            changed |= assign_epochs_from(&segments[unflushed..], log_start_offset, &mut cache)?;
            (cache, changed)
        }
        None => {
            let mut cache = LeaderEpochCache::new(path, Vec::new());
            assign_epochs_from(segments, log_start_offset, &mut cache)?;
            (cache, true)
        }
    };
    changed |= cache.truncate_from_start(log_start_offset);
    if changed {
        cache.persist()?;
    }
    Ok(cache)
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering after an unclean stop.
    ///
    /// Segments entirely below `recovery_point` are trusted: only their index files are
    /// sanity-checked (and rebuilt from batch headers if missing or stale). From the segment
    /// holding the recovery point on, every batch is CRC-checked; the log is truncated at the
    /// first invalid or torn batch and later segments are deleted. Pass `i64::MAX` after a
    /// clean shutdown and 0 when unknown. `now_ms` is the injected clock.
    ///
    /// The leader-epoch cache is then made to agree with the recovered batches: rebuilt from
    /// them when its file is missing or unreadable, cut where it points beyond the log end,
    /// and trimmed to the log start.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        recovery_point: i64,
        now_ms: i64,
    ) -> Result<Log, StorageError> {
        let config = config.validate()?;
        let limits = limits(&config);
        fs::create_dir_all(dir).ctx(IoVerb::Create, dir)?;
        // A log cleaning pass interrupted after its commit point is finished first.
        crate::cleaner::complete_swaps(dir)?;

        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        for entry in fs::read_dir(dir).ctx(IoVerb::List, dir)? {
            let entry = entry.ctx(IoVerb::List, dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = parse_segment_name(name, ".log") {
                bases.push(base);
            } else if let Some(base) = parse_segment_name(name, ".index")
                .or_else(|| parse_segment_name(name, ".timeindex"))
                .or_else(|| parse_segment_name(name, ".txnindex"))
            {
                index_files.push((base, entry.path()));
            } else if name.ends_with(".tmp")
                || name.ends_with(".deleted")
                || name.ends_with(".cleaned")
                || name.ends_with(".swap")
            {
                tracing::warn!(path = %entry.path().display(), "removing leftover file");
                fs::remove_file(entry.path()).ctx(IoVerb::Remove, &entry.path())?;
            }
        }
        bases.sort_unstable();
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                tracing::warn!(path = %path.display(), "removing index file without a segment");
                fs::remove_file(&path).ctx(IoVerb::Remove, &path)?;
            }
        }

        let log_start_file = read_log_start_file(&dir.join(LOG_START_OFFSET_FILE))?;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        let mut scanned_any = false;
        for (i, &base) in bases.iter().enumerate() {
            let mut seg = Segment::open(dir, base)?;
            let next_base = bases.get(i + 1).copied();
            let trusted = match next_base {
                Some(next_base) => next_base <= recovery_point,
                None => base < recovery_point,
            };
            let mut stop = None;
            let mut needs_full_scan = !trusted;
            if trusted {
                match seg.load_indexes() {
                    Ok(()) => {
                        if next_base.is_none() {
                            // The active segment: learn its exact end from the index tail.
                            stop = seg.scan_tail(&limits)?;
                            if seg.next_offset > recovery_point {
                                needs_full_scan = true;
                                stop = None;
                            } else if stop.is_none() {
                                seg.append_index_tails()?;
                            }
                        } else {
                            seg.next_offset = next_base.unwrap_or(seg.next_offset);
                        }
                    }
                    Err(why) => {
                        tracing::warn!(segment = %seg.log_path.display(), %why,
                            "rebuilding index files");
                        stop = seg.rebuild(false, &limits)?;
                        if stop.is_none() {
                            seg.rewrite_index_files()?;
                        }
                    }
                }
            }
            if next_base.is_none() && stop.is_none() && seg.next_offset > recovery_point {
                // Data past the recovery point is never trusted, whatever the indexes say.
                needs_full_scan = true;
            }
            if needs_full_scan {
                scanned_any = true;
                stop = seg.rebuild(true, &limits)?;
                if stop.is_none() {
                    seg.rewrite_index_files()?;
                }
            }
            if let Some(stop) = stop {
                tracing::warn!(segment = %seg.log_path.display(), position = stop.position,
                    dropped_bytes = seg.size - stop.position, reason = %stop.reason,
                    "truncating log at invalid batch");
                seg.truncate_to(stop.position)?;
                seg.rewrite_index_files()?;
                seg.log.sync_data().ctx(IoVerb::Sync, &seg.log_path)?;
                segments.push(seg);
                for &later in &bases[i + 1..] {
                    tracing::warn!(
                        base_offset = later,
                        "deleting segment after truncation point"
                    );
                    Segment::open(dir, later)?.delete_files()?;
                }
                scanned_any = true;
                break;
            }
            segments.push(seg);
        }

        let mut log_start_offset = segments.first().map_or(0, |s| s.base_offset);
        if let Some(from_file) = log_start_file {
            log_start_offset = log_start_offset.max(from_file);
        }
        let log_end = segments.last().map_or(0, |s| s.next_offset);
        if segments.is_empty() || log_start_offset > log_end {
            if !segments.is_empty() {
                tracing::warn!(
                    log_start_offset,
                    log_end,
                    "log start offset beyond recovered log end; starting an empty log there"
                );
            }
            for seg in segments.drain(..) {
                seg.delete_files()?;
            }
            segments.push(Segment::create(dir, log_start_offset)?);
            scanned_any = true;
        }

        // Aborted transactions and producer snapshots beyond a truncated end describe records
        // that are gone.
        let log_end = segments[segments.len() - 1].next_offset;
        for seg in &mut segments {
            if seg
                .txn_index
                .entries()
                .last()
                .is_some_and(|e| e.last_offset >= log_end)
            {
                tracing::warn!(path = %seg.txn_index.path().display(), log_end,
                    "dropping aborted transactions beyond the log end");
                seg.txn_index.truncate_from(log_end)?;
                seg.txn_index.sync()?;
                seg.txn_index.close_file_if_synced();
            }
        }
        if producer_snapshot::delete_above(dir, log_end)? {
            sync_dir(dir)?;
        }

        // Non-active segments no longer need open index handles; the active one gets its
        // rolling base (Kafka: the first batch's max timestamp).
        let last = segments.len() - 1;
        for (i, seg) in segments.iter_mut().enumerate() {
            if scanned_any {
                seg.log.sync_data().ctx(IoVerb::Sync, &seg.log_path)?;
                seg.sync_index_files()?;
            }
            if i != last {
                seg.index_files = None;
            } else if !seg.is_empty() {
                let first = seg.read_header(0)?;
                seg.rolling_base_ms = Some(if first.max_timestamp >= 0 {
                    first.max_timestamp
                } else {
                    now_ms
                });
            }
        }
        if scanned_any {
            sync_dir(dir)?;
        }

        let epochs = load_leader_epochs(dir, &segments, log_start_offset, recovery_point)?;
        let size_bytes = segments.iter().map(|s| s.size).sum();
        let recovery_point = segments.last().map_or(0, |s| s.next_offset);
        Ok(Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            recovery_point,
            size_bytes,
            unsynced_dir_since: None,
            epochs,
        })
    }

    fn active(&self) -> &Segment {
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// All segments, oldest first, the last one active (for the log cleaner).
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Replaces `count` sealed segments starting at `first` with `replacement` (or with
    /// nothing), after the log cleaner swapped files on disk. The active segment and the
    /// log start offset are untouched.
    pub(crate) fn replace_segments(
        &mut self,
        first: usize,
        count: usize,
        replacement: Option<Segment>,
    ) {
        assert!(
            first + count < self.segments.len(),
            "the active segment is never replaced"
        );
        let removed: Vec<Segment> = match replacement {
            Some(seg) => {
                self.size_bytes += seg.size;
                self.segments
                    .splice(first..first + count, std::iter::once(seg))
                    .collect()
            }
            None => {
                let removed: Vec<Segment> = self.segments.drain(first..first + count).collect();
                if first > 0 {
                    // As after a reopen: a sealed segment's range reaches its successor.
                    self.segments[first - 1].next_offset = self.segments[first].base_offset;
                }
                removed
            }
        };
        self.size_bytes -= removed.iter().map(|s| s.size).sum::<u64>();
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Earliest offset a consumer may fetch (raised by retention and DeleteRecords).
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Bytes of all segments, for `retention.bytes` and metrics.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Number of segments, for metrics and tests.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of all segments, oldest first (for tools and tests).
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }

    /// Highest offset (exclusive) known durable; persist it and pass it to [`Log::open`].
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Appends one or more v2 batches exactly as a producer sent them, assigning offsets.
    /// See [`Log::append_with_leader_epoch`]; this variant leaves the partition leader epoch
    /// as sent and does not touch the leader-epoch cache, since a producer's epoch field
    /// means nothing to this log.
    pub fn append(&mut self, records: &mut [u8], now_ms: i64) -> Result<AppendInfo, StorageError> {
        self.append_inner(records, None, now_ms)
    }

    /// Appends as leader: validates every batch before writing anything (a bad request
    /// writes nothing), rewrites base offsets in place (and the timestamp for LogAppendTime,
    /// and the partition leader epoch), rolls a segment if due, and writes the whole request
    /// with one positional write. Per-batch work only: header checks and CRC.
    ///
    /// When `leader_epoch` is newer than the cache's latest epoch, the entry
    /// (`leader_epoch`, first offset of the append) is written to `leader-epoch-checkpoint`
    /// before the records, so the file never lacks the epoch of a record on disk; an entry
    /// whose records a crash took back is dropped by [`Log::open`].
    pub fn append_with_leader_epoch(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        self.append_inner(records, Some(leader_epoch), now_ms)
    }

    fn append_inner(
        &mut self,
        records: &mut [u8],
        leader_epoch: Option<i32>,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        if records.is_empty() {
            return Err(StorageError::InvalidRecord("no record batches".into()));
        }
        if records.len() as u64 > self.config.segment_bytes {
            return Err(StorageError::RecordListTooLarge {
                size: records.len(),
                max: self.config.segment_bytes,
            });
        }
        let mut batches: Vec<(usize, BatchHeader)> = Vec::new();
        let mut iter = BatchIter::new(records);
        loop {
            let position = iter.consumed();
            match iter.next() {
                None => break,
                Some(Err(source)) => return Err(StorageError::CorruptBatch { position, source }),
                Some(Ok((header, bytes))) => {
                    if bytes.len() > self.config.max_message_bytes as usize {
                        return Err(StorageError::MessageTooLarge {
                            size: bytes.len(),
                            max: self.config.max_message_bytes,
                        });
                    }
                    batches.push((position, header));
                }
            }
        }
        if let BatchIterEnd::Incomplete { needed } = iter.end() {
            return Err(StorageError::CorruptBatch {
                position: iter.consumed(),
                source: fjord_protocol::batch::BatchError::Incomplete { needed },
            });
        }
        let offsets: i64 = batches
            .iter()
            .map(|(_, h)| i64::from(h.last_offset_delta) + 1)
            .sum();
        if offsets > i64::from(i32::MAX) {
            return Err(StorageError::InvalidRecord(format!(
                "append spans {offsets} offsets"
            )));
        }
        let first_offset = self.log_end_offset();
        let last_offset = first_offset + offsets - 1;
        self.maybe_roll(records.len(), first_offset, last_offset, now_ms)?;

        let log_append_time =
            (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let mut next = first_offset;
        let mut max_timestamp = i64::MIN;
        let mut record_count = 0i64;
        for (position, header) in batches.iter_mut() {
            let end = *position + header.total_size();
            let bytes = &mut records[*position..end];
            let fix = |source| StorageError::CorruptBatch {
                position: *position,
                source,
            };
            set_base_offset(bytes, next).map_err(fix)?;
            header.base_offset = next;
            if let Some(epoch) = leader_epoch {
                set_partition_leader_epoch(bytes, epoch).map_err(fix)?;
                header.partition_leader_epoch = epoch;
            }
            if let Some(ts) = log_append_time {
                set_log_append_time(bytes, ts).map_err(fix)?;
                header.max_timestamp = ts;
            }
            max_timestamp = max_timestamp.max(header.max_timestamp);
            record_count += i64::from(header.records_count);
            next = header.last_offset() + 1;
        }

        // The cache is copied only when it changes, which is once per epoch, not per append.
        let epochs_before = match leader_epoch {
            Some(epoch) if self.epochs.is_new_epoch(epoch) => {
                let before = self.epochs.entries().to_vec();
                self.epochs.assign(epoch, first_offset);
                self.persist_epochs_or_restore(before.clone())?;
                Some(before)
            }
            _ => None,
        };
        let limits = limits(&self.config);
        if let Err(e) = self.active_mut().append(records, &batches, now_ms, &limits) {
            if let Some(before) = epochs_before {
                self.restore_epochs(before);
            }
            return Err(e);
        }
        self.size_bytes += records.len() as u64;
        Ok(AppendInfo {
            first_offset,
            last_offset,
            log_append_time,
            max_timestamp,
            bytes: records.len(),
            batch_count: batches.len(),
            record_count,
            log_start_offset: self.log_start_offset,
        })
    }

    /// Writes the leader-epoch cache after a change; if that fails, puts `before` back so
    /// memory keeps matching what the file may still say.
    fn persist_epochs_or_restore(&mut self, before: Vec<EpochEntry>) -> Result<(), StorageError> {
        if let Err(e) = self.epochs.persist() {
            self.epochs = LeaderEpochCache::new(self.epochs.path().to_path_buf(), before);
            return Err(e);
        }
        Ok(())
    }

    /// Undoes epochs assigned ahead of records whose write failed. The file may keep the
    /// extra entries if rewriting it fails too; they start beyond the log end, so the next
    /// open drops them.
    fn restore_epochs(&mut self, before: Vec<EpochEntry>) {
        if self.epochs.entries() == before.as_slice() {
            return;
        }
        self.epochs = LeaderEpochCache::new(self.epochs.path().to_path_buf(), before);
        if let Err(e) = self.epochs.persist() {
            tracing::warn!(path = %self.epochs.path().display(), error = %e,
                "could not roll back the leader-epoch cache; the next open trims it");
        }
    }

    /// Applies a raised log start offset to the leader-epoch cache (Kafka's
    /// `truncateFromStart`), rewriting the file if an entry moved.
    fn trim_epochs_to_log_start(&mut self) -> Result<(), StorageError> {
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs.persist()?;
        }
        Ok(())
    }

    /// Rolls before an append of `bytes` covering `[first_offset, last_offset]` if the
    /// active segment is full (bytes or index), too old, or the offsets would not fit its
    /// 32-bit index. The new segment starts at `first_offset`, which is the log end offset
    /// for a leader and may lie past it for a follower copying a compacted log.
    fn maybe_roll(
        &mut self,
        bytes: usize,
        first_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let limits = limits(&self.config);
        let seg = self.active();
        let offsets_fit = last_offset - seg.base_offset <= i64::from(i32::MAX);
        let due = !seg.is_empty()
            && (seg.size + bytes as u64 > self.config.segment_bytes
                || seg
                    .rolling_base_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.segment_ms)
                || seg.index_full(&limits));
        if due || !offsets_fit {
            self.roll_to(first_offset)?;
        }
        Ok(())
    }

    /// Starts a new active segment at the log end offset (no-op if the active one is empty).
    fn roll(&mut self) -> Result<(), StorageError> {
        let base = self.log_end_offset();
        self.roll_to(base)
    }

    /// Starts a new active segment at `base` (at or above the log end offset). An empty
    /// active segment is replaced rather than kept, since it holds nothing and a reopen
    /// would not know its range; if it was the only one, the log start moves to `base`
    /// as a reopen would put it.
    fn roll_to(&mut self, base: i64) -> Result<(), StorageError> {
        debug_assert!(base >= self.log_end_offset());
        if self.active().is_empty() {
            if self.active().base_offset == base {
                return Ok(());
            }
            let seg = Segment::create(&self.dir, base)?;
            if let Err(e) = self.active().delete_files() {
                if let Err(undo) = seg.delete_files() {
                    tracing::warn!(error = %undo, "could not remove a segment never used");
                }
                return Err(e);
            }
            let last = self.segments.len() - 1;
            self.segments[last] = seg;
            self.unsynced_dir_since = Some(base);
            if last == 0 {
                self.log_start_offset = self.log_start_offset.max(base);
                self.trim_epochs_to_log_start()?;
            }
            return Ok(());
        }
        let limits = limits(&self.config);
        self.active_mut().seal(&limits)?;
        let seg = Segment::create(&self.dir, base)?;
        tracing::debug!(dir = %self.dir.display(), base_offset = base, "rolled segment");
        self.segments.push(seg);
        self.unsynced_dir_since = Some(base);
        Ok(())
    }

    /// Rolls the active segment if it is older than `segment.ms` (called periodically, so an
    /// idle partition's data becomes deletable).
    pub fn roll_if_due(&mut self, now_ms: i64) -> Result<bool, StorageError> {
        let seg = self.active();
        let due = !seg.is_empty()
            && seg
                .rolling_base_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.segment_ms);
        if due {
            self.roll()?;
        }
        Ok(due)
    }

    /// Plans a fetch from `start_offset`: whole batches from the segment holding it, up to
    /// `max_bytes` but at least one batch (so a consumer never stalls on a big batch), and
    /// only batches entirely below `max_offset` (e.g. the high watermark).
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadPlan, StorageError> {
        let log_end = self.log_end_offset();
        if start_offset < self.log_start_offset || start_offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: start_offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        if start_offset == log_end || start_offset >= max_offset {
            return Ok(ReadPlan::empty(start_offset));
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= start_offset)
            .saturating_sub(1);
        for seg in &self.segments[first..] {
            let Some((position, header)) = seg.find_batch(start_offset)? else {
                continue;
            };
            if header.last_offset() >= max_offset {
                return Ok(ReadPlan::empty(start_offset));
            }
            let mut len = header.total_size();
            let mut next_offset = header.last_offset() + 1;
            let mut reader = seg.headers_from(position + len as u64);
            while let Some((_, h)) = reader.next_header()? {
                if h.last_offset() >= max_offset || len + h.total_size() > max_bytes {
                    break;
                }
                len += h.total_size();
                next_offset = h.last_offset() + 1;
            }
            return Ok(ReadPlan {
                file: Some(seg.log.clone()),
                position,
                len,
                first_offset: header.base_offset,
                next_offset,
            });
        }
        Ok(ReadPlan::empty(start_offset))
    }

    /// ListOffsets by timestamp: the earliest offset (at or above the log start) whose
    /// timestamp is >= `timestamp_ms`, with that timestamp.
    ///
    /// Record-level for uncompressed CreateTime batches (the batch is read and decoded);
    /// batch-level otherwise: the batch's base offset and max timestamp (for LogAppendTime
    /// every record carries the max timestamp, so that is exact too).
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let from = self.log_start_offset;
        for seg in &self.segments {
            if seg.next_offset <= from || seg.max_timestamp.is_none_or(|(ts, _)| ts < timestamp_ms)
            {
                continue;
            }
            let Some((position, header)) = seg.find_by_timestamp(timestamp_ms, from)? else {
                continue;
            };
            let batch_level = (header.base_offset.max(from), header.max_timestamp);
            let record_level = header.timestamp_type() == TimestampType::CreateTime
                && header.compression() == Ok(Compression::None);
            if !record_level {
                return Ok(Some(batch_level));
            }
            let mut bytes = vec![0u8; header.total_size()];
            seg.log
                .read_exact_at(&mut bytes, position)
                .ctx(IoVerb::Read, &seg.log_path)?;
            match decode_records(&bytes) {
                Ok(records) => {
                    let hit = records
                        .iter()
                        .find(|r| r.timestamp >= timestamp_ms && r.offset >= from);
                    return Ok(Some(hit.map_or(batch_level, |r| (r.offset, r.timestamp))));
                }
                Err(e) => {
                    tracing::warn!(segment = %seg.log_path.display(), position, error = %e,
                        "cannot decode batch for timestamp lookup; answering at batch level");
                    return Ok(Some(batch_level));
                }
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the largest batch max timestamp and the last offset of the
    /// earliest batch carrying it (Kafka's "shallow" offset of max timestamp); `None` when
    /// the log holds no batches.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for seg in &self.segments {
            if let Some((ts, offset)) = seg.max_timestamp {
                if best.is_none_or(|(b, _)| ts > b) {
                    best = Some((ts, offset));
                }
            }
        }
        best
    }

    /// Snapshot of what a flush must sync: data and index files of every segment holding
    /// offsets at or above the recovery point (rolled segments included), aborted-transaction
    /// indexes written since their segment was last flushed, plus the directory if segments
    /// were created. Cheap: clones `Arc`s.
    pub fn flush_target(&self) -> FlushTarget {
        let mut files = Vec::new();
        for seg in &self.segments {
            if seg.next_offset > self.recovery_point && !seg.is_empty() {
                files.push(seg.log.clone());
                if let Some(idx) = &seg.index_files {
                    files.push(idx.offset.clone());
                    files.push(idx.time.clone());
                }
            }
            if let Some(txn) = seg.txn_index.flush_target() {
                files.push(txn.clone());
            }
        }
        FlushTarget {
            files,
            dir: self.unsynced_dir_since.map(|_| self.dir.clone()),
            up_to_offset: self.log_end_offset(),
        }
    }

    /// Records that a [`FlushTarget`] covering offsets below `up_to_offset` was synced.
    pub fn mark_flushed(&mut self, up_to_offset: i64) {
        let up_to = up_to_offset.min(self.log_end_offset());
        if up_to > self.recovery_point {
            self.recovery_point = up_to;
        }
        if self.unsynced_dir_since.is_some_and(|base| base < up_to) {
            self.unsynced_dir_since = None;
        }
        let last = self.segments.len() - 1;
        let rp = self.recovery_point;
        for (i, seg) in self.segments.iter_mut().enumerate() {
            seg.txn_index.mark_synced();
            if i != last && seg.next_offset <= rp {
                seg.index_files = None;
                seg.txn_index.close_file_if_synced();
            }
        }
    }

    /// Syncs everything now (data, indexes, directory) and advances the recovery point to
    /// the log end offset.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.active_mut().append_index_tails()?;
        let recovery_point = self.recovery_point;
        for seg in &mut self.segments {
            if seg.next_offset > recovery_point || seg.index_files.is_some() {
                seg.log.sync_data().ctx(IoVerb::Sync, &seg.log_path)?;
                seg.sync_index_files()?;
            }
            seg.txn_index.sync()?;
        }
        sync_dir(&self.dir)?;
        self.unsynced_dir_since = None;
        let end = self.log_end_offset();
        self.mark_flushed(end);
        Ok(())
    }

    /// Clean shutdown: records the final max timestamp in the time index and flushes, so a
    /// reopen with the returned recovery point (or `i64::MAX`) trusts every file.
    pub fn close(mut self) -> Result<(), StorageError> {
        let limits = limits(&self.config);
        self.active_mut().seal(&limits)?;
        self.flush()
    }

    /// Deletes old segments: those entirely below the log start offset, then by
    /// `retention.ms` (newest timestamp older than `now_ms - retention_ms`) and by
    /// `retention.bytes` (while the log stays at or above the limit without the segment).
    /// The active segment is never deleted in place: when it is itself expired (and
    /// non-empty) it is rolled first, so the log start offset becomes the log end offset, as
    /// in Kafka. A raised log start trims the leader-epoch cache like DeleteRecords does.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, StorageError> {
        let mut outcome = RetentionOutcome::default();
        // Log-start breach: non-active segments whose successor starts at or below it.
        let start = self.log_start_offset;
        let n = self
            .segments
            .windows(2)
            .take_while(|w| w[1].base_offset <= start)
            .count();
        self.delete_oldest(n, &mut outcome)?;

        if self.config.retention_ms >= 0 {
            let cutoff = now_ms.saturating_sub(self.config.retention_ms);
            let n = self
                .segments
                .iter()
                .take_while(|s| !s.is_empty() && s.largest_timestamp() < cutoff)
                .count();
            self.delete_with_roll(n, &mut outcome)?;
        }
        if self.config.retention_bytes >= 0 {
            let limit = self.config.retention_bytes as u64;
            let mut remaining = self.size_bytes;
            let mut n = 0;
            for s in &self.segments {
                if s.is_empty() || remaining - s.size < limit {
                    break;
                }
                remaining -= s.size;
                n += 1;
            }
            self.delete_with_roll(n, &mut outcome)?;
        }
        outcome.log_start_offset = self.log_start_offset;
        Ok(outcome)
    }

    fn delete_with_roll(
        &mut self,
        n: usize,
        outcome: &mut RetentionOutcome,
    ) -> Result<(), StorageError> {
        if n == 0 {
            return Ok(());
        }
        if n == self.segments.len() {
            self.roll()?;
        }
        self.delete_oldest(n, outcome)
    }

    /// Deletes the `n` oldest segments (never the active one) and advances the log start.
    fn delete_oldest(
        &mut self,
        n: usize,
        outcome: &mut RetentionOutcome,
    ) -> Result<(), StorageError> {
        let n = n.min(self.segments.len() - 1);
        for _ in 0..n {
            // Files first, so a failed delete leaves memory and disk in agreement.
            self.segments[0].delete_files()?;
            let seg = self.segments.remove(0);
            tracing::info!(segment = %seg.log_path.display(), bytes = seg.size,
                "deleted segment");
            self.size_bytes -= seg.size;
            outcome.deleted_segments += 1;
            outcome.deleted_bytes += seg.size;
        }
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
        self.trim_epochs_to_log_start()
    }

    /// DeleteRecords: raises the log start offset to `offset` (persisted in
    /// [`LOG_START_OFFSET_FILE`] before anything is deleted) and deletes segments entirely
    /// below it. The leader-epoch entry covering `offset` then starts there, and earlier
    /// ones are dropped. Returns the new log start offset (the low watermark).
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        let log_end = self.log_end_offset();
        if offset > log_end || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        let path = self.dir.join(LOG_START_OFFSET_FILE);
        write_atomically(&path, format!("0\n{offset}\n").as_bytes())?;
        self.log_start_offset = offset;
        let n = self
            .segments
            .windows(2)
            .take_while(|w| w[1].base_offset <= offset)
            .count();
        let mut outcome = RetentionOutcome::default();
        self.delete_oldest(n, &mut outcome)?;
        Ok(self.log_start_offset)
    }

    /// Applies changed topic configs (dynamic config updates); takes effect on the next
    /// append or retention pass.
    pub fn update_config(&mut self, config: LogConfig) -> Result<(), StorageError> {
        self.config = config.validate()?;
        Ok(())
    }

    /// Index of the segment holding `offset` (the first one for offsets below the log).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Records an aborted transaction for read_committed fetches, in the `.txnindex` of the
    /// segment holding its abort marker (`txn.last_offset`, already appended), so the entry
    /// is deleted, truncated and compacted together with the marker. Entries must come in
    /// marker order. Not synced by itself: the next flush, close or producer snapshot syncs
    /// it, and after a crash the broker re-derives entries above its producer snapshot from
    /// the log.
    pub fn append_aborted_txn(&mut self, txn: AbortedTxn) -> Result<(), StorageError> {
        let reject = |reason: String| Err(StorageError::InvalidAbortedTxn { txn, reason });
        if txn.first_offset > txn.last_offset {
            return reject("first offset is after the abort marker".into());
        }
        let first_base = self.segments[0].base_offset;
        let log_end = self.log_end_offset();
        if txn.last_offset < first_base || txn.last_offset >= log_end {
            return reject(format!(
                "abort marker offset is outside the log [{first_base}, {log_end})"
            ));
        }
        let i = self.segment_index_for(txn.last_offset);
        let index = &mut self.segments[i].txn_index;
        if let Some(prev) = index.entries().last() {
            if prev.last_offset >= txn.last_offset {
                return reject(format!(
                    "entries must come in marker order, and one at offset {} is recorded",
                    prev.last_offset
                ));
            }
        }
        index.append(txn)
    }

    /// The aborted transactions a fetch of `[from_offset, upper_offset)` must report (Kafka's
    /// collectAbortedTxns): every entry with `last_offset >= from_offset` and
    /// `first_offset < upper_offset`, in offset order. Entries sit with their marker, so the
    /// walk starts at the segment holding `from_offset` and continues to the log end (a
    /// transaction that started in range may have been aborted much later).
    pub fn aborted_txns(&self, from_offset: i64, upper_offset: i64) -> Vec<AbortedTxn> {
        let first = self.segment_index_for(from_offset);
        self.segments[first..]
            .iter()
            .flat_map(|s| s.txn_index.entries())
            .filter(|e| e.last_offset >= from_offset && e.first_offset < upper_offset)
            .copied()
            .collect()
    }

    /// Drops every aborted-transaction entry with `last_offset >= from_offset`; the broker
    /// calls this before it re-derives those entries from a scan of the log at start-up.
    pub fn truncate_aborted_txns(&mut self, from_offset: i64) -> Result<(), StorageError> {
        let first = self.segment_index_for(from_offset);
        for seg in &mut self.segments[first..] {
            seg.txn_index.truncate_from(from_offset)?;
        }
        Ok(())
    }

    /// Stores the broker's producer state as of `offset` (`<offset>.snapshot`, written
    /// atomically) so a restart replays the log from there rather than from the log start.
    /// Only the newest two snapshots are kept. `offset` must be within `[0, log end]`.
    ///
    /// Pending aborted-transaction entries are synced first: after a restart the broker
    /// re-derives only the entries above its snapshot, so those below it must be durable
    /// by the time the snapshot is.
    pub fn write_producer_snapshot(
        &mut self,
        offset: i64,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let log_end = self.log_end_offset();
        if !(0..=log_end).contains(&offset) {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        for seg in &mut self.segments {
            seg.txn_index.sync()?;
        }
        producer_snapshot::write(&self.dir, offset, bytes)
    }

    /// The newest producer-state snapshot at or below the log end offset, with its offset;
    /// snapshots beyond the end (written before a truncation) describe records that are gone.
    pub fn latest_producer_snapshot(&self) -> Result<Option<(i64, Vec<u8>)>, StorageError> {
        producer_snapshot::latest(&self.dir, self.log_end_offset())
    }

    /// Removes the partition directory (topic deletion or partition reassignment away).
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir).ctx(IoVerb::Remove, &dir)
    }
}

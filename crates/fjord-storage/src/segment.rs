//! One segment: a `.log` file of whole batches plus its sparse `.index` and `.timeindex`,
//! and the `.txnindex` of aborted transactions whose markers it holds.
//!
//! The log file is shared with readers as `Arc<File>`; bytes below `size` never change (the
//! writer only appends past it), which is what lets a `ReadPlan` copy them without the lock.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjord_protocol::batch::{
    parse_header, BatchError, BatchHeader, BatchIter, BatchIterEnd, BATCH_HEADER_LEN,
};

use crate::error::{IoContext, IoVerb};
use crate::index::{
    self, encode_offset_entries, encode_time_entries, IndexProblem, OffsetEntry, TimeEntry,
    OFFSET_ENTRY_LEN, TIME_ENTRY_LEN,
};
use crate::txn_index::TxnIndex;
use crate::StorageError;

/// Read size for sequential recovery scans: large enough to amortise syscalls.
const SCAN_CHUNK: usize = 1 << 20;
/// Read-ahead when walking batch headers to locate an offset (covers a few index intervals).
const HEADER_WINDOW: usize = 16 * 1024;

/// Kafka's segment file name: the base offset zero-padded to 20 digits.
pub(crate) fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Limits that decide when index entries are written and when the index is full.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexLimits {
    pub(crate) interval_bytes: u64,
    pub(crate) max_offset_entries: usize,
    pub(crate) max_time_entries: usize,
}

/// Open handles of a segment's index files, kept while entries may still be appended or are
/// not yet synced.
#[derive(Debug)]
pub(crate) struct IndexFiles {
    pub(crate) offset: Arc<File>,
    pub(crate) time: Arc<File>,
}

/// Why a scan stopped before the end of the file.
#[derive(Debug)]
pub(crate) struct ScanStop {
    pub(crate) position: u64,
    pub(crate) reason: String,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    /// Offset after the last batch (== base_offset when empty).
    pub(crate) next_offset: i64,
    /// Bytes of whole, valid batches.
    pub(crate) size: u64,
    pub(crate) log: Arc<File>,
    pub(crate) log_path: PathBuf,
    pub(crate) index_path: PathBuf,
    pub(crate) time_index_path: PathBuf,
    pub(crate) offset_index: Vec<OffsetEntry>,
    pub(crate) time_index: Vec<TimeEntry>,
    offset_entries_on_disk: usize,
    time_entries_on_disk: usize,
    bytes_since_index_entry: u64,
    /// Largest batch max timestamp and the last offset of that batch (Kafka's shallow offset
    /// of max timestamp).
    pub(crate) max_timestamp: Option<(i64, i64)>,
    /// When the segment started, for `segment.ms`: time of the first append, or the first
    /// batch's max timestamp after a reopen (as Kafka does).
    pub(crate) rolling_base_ms: Option<i64>,
    pub(crate) index_files: Option<IndexFiles>,
    /// Aborted transactions whose abort marker lies in this segment.
    pub(crate) txn_index: TxnIndex,
}

fn open_rw(path: &Path, create_new: bool) -> Result<File, StorageError> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    if create_new {
        opts.create(true).truncate(true);
    }
    opts.open(path).ctx(
        if create_new {
            IoVerb::Create
        } else {
            IoVerb::Open
        },
        path,
    )
}

/// Removes a file; a file that is already gone is fine (deletes are retried after crashes).
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(IoVerb::Remove, path, e)),
    }
}

impl Segment {
    fn new(dir: &Path, base_offset: i64, log: File, size: u64) -> Segment {
        Segment {
            base_offset,
            next_offset: base_offset,
            size,
            log: Arc::new(log),
            log_path: dir.join(file_name(base_offset, "log")),
            index_path: dir.join(file_name(base_offset, "index")),
            time_index_path: dir.join(file_name(base_offset, "timeindex")),
            offset_index: Vec::new(),
            time_index: Vec::new(),
            offset_entries_on_disk: 0,
            time_entries_on_disk: 0,
            bytes_since_index_entry: 0,
            max_timestamp: None,
            rolling_base_ms: None,
            index_files: None,
            txn_index: TxnIndex::empty(dir.join(file_name(base_offset, "txnindex"))),
        }
    }

    /// Creates an empty segment (truncating leftovers with the same name).
    pub(crate) fn create(dir: &Path, base_offset: i64) -> Result<Segment, StorageError> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let log = open_rw(&log_path, true)?;
        let mut seg = Segment::new(dir, base_offset, log, 0);
        // A leftover aborted-transaction index would describe markers that are gone.
        remove_if_exists(seg.txn_index.path())?;
        seg.index_files = Some(IndexFiles {
            offset: Arc::new(open_rw(&seg.index_path, true)?),
            time: Arc::new(open_rw(&seg.time_index_path, true)?),
        });
        Ok(seg)
    }

    /// Opens an existing segment's log file and its aborted-transaction index; the offset
    /// and time indexes are loaded or rebuilt by the caller.
    pub(crate) fn open(dir: &Path, base_offset: i64) -> Result<Segment, StorageError> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let log = open_rw(&log_path, false)?;
        let size = log.metadata().ctx(IoVerb::Stat, &log_path)?.len();
        let mut seg = Segment::new(dir, base_offset, log, size);
        seg.txn_index = TxnIndex::load(seg.txn_index.path().to_path_buf(), base_offset)?;
        Ok(seg)
    }

    /// Opens (creating if needed) the index files for appending.
    pub(crate) fn ensure_index_files(&mut self) -> Result<&IndexFiles, StorageError> {
        let open = |path: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .ctx(IoVerb::Open, path)
        };
        match &mut self.index_files {
            Some(files) => Ok(files),
            slot @ None => {
                let files = IndexFiles {
                    offset: Arc::new(open(&self.index_path)?),
                    time: Arc::new(open(&self.time_index_path)?),
                };
                Ok(slot.insert(files))
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub(crate) fn relative(&self, offset: i64) -> u32 {
        // Callers pass offsets within [base, base + i32::MAX]; clamp defensively.
        (offset - self.base_offset).clamp(0, i64::from(i32::MAX)) as u32
    }

    pub(crate) fn index_full(&self, limits: &IndexLimits) -> bool {
        self.offset_index.len() >= limits.max_offset_entries
            || self.time_index.len() >= limits.max_time_entries
    }

    /// Accounts for one batch written at `position`: Kafka's index-interval rule, the time
    /// index, max timestamp and next offset.
    pub(crate) fn track_batch(
        &mut self,
        header: &BatchHeader,
        position: u64,
        limits: &IndexLimits,
    ) {
        let last_offset = header.last_offset();
        if self
            .max_timestamp
            .is_none_or(|(ts, _)| header.max_timestamp > ts)
        {
            self.max_timestamp = Some((header.max_timestamp, last_offset));
        }
        if self.bytes_since_index_entry > limits.interval_bytes {
            if self.offset_index.len() < limits.max_offset_entries {
                self.offset_index.push(OffsetEntry {
                    relative_offset: self.relative(header.base_offset),
                    position: position as u32,
                });
            }
            self.maybe_append_time_entry(limits);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.total_size() as u64;
        self.next_offset = last_offset + 1;
    }

    /// Adds a time-index entry if the max timestamp grew since the last one.
    fn maybe_append_time_entry(&mut self, limits: &IndexLimits) {
        let Some((ts, offset)) = self.max_timestamp else {
            return;
        };
        let grew = self.time_index.last().is_none_or(|e| ts > e.timestamp);
        if grew && self.time_index.len() < limits.max_time_entries {
            self.time_index.push(TimeEntry {
                timestamp: ts,
                relative_offset: self.relative(offset),
            });
        }
    }

    /// Called when the segment stops being active: records its final max timestamp in the
    /// time index (so a reopen learns it without a scan) and writes pending entries.
    pub(crate) fn seal(&mut self, limits: &IndexLimits) -> Result<(), StorageError> {
        let unlimited = IndexLimits {
            max_time_entries: usize::MAX,
            ..*limits
        };
        self.maybe_append_time_entry(&unlimited);
        self.append_index_tails()
    }

    /// Appends index entries not yet on disk (one write per file).
    pub(crate) fn append_index_tails(&mut self) -> Result<(), StorageError> {
        if self.offset_entries_on_disk == self.offset_index.len()
            && self.time_entries_on_disk == self.time_index.len()
        {
            return Ok(());
        }
        let (off_from, time_from) = (self.offset_entries_on_disk, self.time_entries_on_disk);
        let off_bytes = encode_offset_entries(&self.offset_index[off_from..]);
        let time_bytes = encode_time_entries(&self.time_index[time_from..]);
        let files = self.ensure_index_files()?;
        let (off_file, time_file) = (files.offset.clone(), files.time.clone());
        if !off_bytes.is_empty() {
            index::write_at(&off_file, &off_bytes, (off_from * OFFSET_ENTRY_LEN) as u64)
                .ctx(IoVerb::Write, &self.index_path)?;
        }
        if !time_bytes.is_empty() {
            index::write_at(&time_file, &time_bytes, (time_from * TIME_ENTRY_LEN) as u64)
                .ctx(IoVerb::Write, &self.time_index_path)?;
        }
        self.offset_entries_on_disk = self.offset_index.len();
        self.time_entries_on_disk = self.time_index.len();
        Ok(())
    }

    /// Replaces both index files with the in-memory indexes (after a rebuild).
    pub(crate) fn rewrite_index_files(&mut self) -> Result<(), StorageError> {
        let files = self.ensure_index_files()?;
        let (off_file, time_file) = (files.offset.clone(), files.time.clone());
        off_file
            .set_len(0)
            .ctx(IoVerb::Truncate, &self.index_path)?;
        time_file
            .set_len(0)
            .ctx(IoVerb::Truncate, &self.time_index_path)?;
        self.offset_entries_on_disk = 0;
        self.time_entries_on_disk = 0;
        self.append_index_tails()
    }

    /// Syncs the index files (if open) so a later reopen can trust them.
    pub(crate) fn sync_index_files(&self) -> Result<(), StorageError> {
        if let Some(files) = &self.index_files {
            files
                .offset
                .sync_data()
                .ctx(IoVerb::Sync, &self.index_path)?;
            files
                .time
                .sync_data()
                .ctx(IoVerb::Sync, &self.time_index_path)?;
        }
        Ok(())
    }

    /// Appends already-validated, offset-assigned batches as one write, then indexes them.
    /// `batches` lists each batch's header and position within `bytes`.
    pub(crate) fn append(
        &mut self,
        bytes: &[u8],
        batches: &[(usize, BatchHeader)],
        now_ms: i64,
        limits: &IndexLimits,
    ) -> Result<(), StorageError> {
        let position = self.size;
        if let Err(e) = self.log.write_all_at(bytes, position) {
            // Drop whatever part of the write landed so the file ends on a whole batch.
            if let Err(trunc) = self.log.set_len(position) {
                tracing::error!(path = %self.log_path.display(), error = %trunc,
                    "could not roll back a failed append; recovery will truncate it");
            }
            return Err(StorageError::io(IoVerb::Write, &self.log_path, e));
        }
        if self.rolling_base_ms.is_none() {
            self.rolling_base_ms = Some(now_ms);
        }
        for (pos, header) in batches {
            self.track_batch(header, position + *pos as u64, limits);
        }
        self.size += bytes.len() as u64;
        self.append_index_tails()
    }

    /// Drops the bytes from `position` on (recovery of a torn or corrupt tail).
    pub(crate) fn truncate_to(&mut self, position: u64) -> Result<(), StorageError> {
        self.log
            .set_len(position)
            .ctx(IoVerb::Truncate, &self.log_path)?;
        self.size = position;
        Ok(())
    }

    /// Log truncation: drops the batches from `position` on (a batch boundary; `cut_offset`
    /// is the base offset of the batch there, or `i64::MAX` when `position` is the end) and
    /// leaves the segment ready to be the active one, with its exact next offset.
    ///
    /// Crash-safe by ordering: the index files are cut and synced before the log file, since
    /// indexes shorter than their log are still valid (a reopen scans the tail past the last
    /// entry) while entries pointing past the log are not all detectable (a time-index entry
    /// beyond the end would hide the segment from timestamp lookups). The log file is synced
    /// before returning.
    pub(crate) fn cut(
        &mut self,
        position: u64,
        cut_offset: i64,
        limits: &IndexLimits,
    ) -> Result<(), StorageError> {
        debug_assert!(position <= self.size);
        let base = self.base_offset;
        let keep_offsets = self
            .offset_index
            .partition_point(|e| u64::from(e.position) < position);
        let keep_times = self
            .time_index
            .partition_point(|e| base + i64::from(e.relative_offset) < cut_offset);
        self.offset_index.truncate(keep_offsets);
        self.time_index.truncate(keep_times);
        let files = self.ensure_index_files()?;
        let (off_file, time_file) = (files.offset.clone(), files.time.clone());
        // Pending entries are rewritten below, so the disk may be shorter than memory.
        self.offset_entries_on_disk = self.offset_entries_on_disk.min(keep_offsets);
        self.time_entries_on_disk = self.time_entries_on_disk.min(keep_times);
        off_file
            .set_len((self.offset_entries_on_disk * index::OFFSET_ENTRY_LEN) as u64)
            .ctx(IoVerb::Truncate, &self.index_path)?;
        time_file
            .set_len((self.time_entries_on_disk * index::TIME_ENTRY_LEN) as u64)
            .ctx(IoVerb::Truncate, &self.time_index_path)?;
        self.sync_index_files()?;

        self.truncate_to(position)?;
        self.log.sync_data().ctx(IoVerb::Sync, &self.log_path)?;

        // Next offset, max timestamp and the index-interval count follow from the last
        // index entry kept and a header scan of the batches after it, as after a reopen.
        self.max_timestamp = self
            .time_index
            .last()
            .map(|e| (e.timestamp, base + i64::from(e.relative_offset)));
        if let Some(stop) = self.scan_tail(limits)? {
            // Data this log wrote itself no longer parses: keep the valid prefix, as
            // recovery would.
            tracing::warn!(segment = %self.log_path.display(), position = stop.position,
                reason = %stop.reason, "truncating log at invalid batch");
            self.truncate_to(stop.position)?;
            self.rebuild(false, limits)?;
            self.rewrite_index_files()?;
            self.log.sync_data().ctx(IoVerb::Sync, &self.log_path)?;
        } else {
            self.append_index_tails()?;
        }
        self.sync_index_files()?;
        if self.is_empty() {
            self.rolling_base_ms = None;
            self.max_timestamp = None;
        }
        Ok(())
    }

    /// Forgets the in-memory indexes and per-batch state, before a rescan from the start.
    pub(crate) fn reset_indexes(&mut self) {
        self.offset_index.clear();
        self.time_index.clear();
        self.offset_entries_on_disk = 0;
        self.time_entries_on_disk = 0;
        self.bytes_since_index_entry = 0;
        self.max_timestamp = None;
        self.next_offset = self.base_offset;
    }

    /// Loads both index files with sanity checks, and checks that the last offset-index entry
    /// really points at a batch with the expected base offset (catches stale indexes).
    pub(crate) fn load_indexes(&mut self) -> Result<(), String> {
        let describe = |p: IndexProblem| match p {
            IndexProblem::Missing => "missing".to_owned(),
            IndexProblem::Unreadable(e) => format!("unreadable: {e}"),
            IndexProblem::Insane(why) => why,
        };
        let offsets = index::load_offset_index(&self.index_path, self.size)
            .map_err(|p| format!("{}: {}", self.index_path.display(), describe(p)))?;
        let times = index::load_time_index(&self.time_index_path, None)
            .map_err(|p| format!("{}: {}", self.time_index_path.display(), describe(p)))?;
        if let Some(last) = offsets.last() {
            let expected = self.base_offset + i64::from(last.relative_offset);
            match self.read_header(u64::from(last.position)) {
                Ok(h) if h.base_offset == expected => {}
                Ok(h) => {
                    return Err(format!(
                        "{}: last entry expects offset {expected}, batch there has {}",
                        self.index_path.display(),
                        h.base_offset
                    ))
                }
                Err(e) => return Err(format!("{}: {e}", self.index_path.display())),
            }
        }
        if let Some(last) = times.last() {
            let offset = self.base_offset + i64::from(last.relative_offset);
            self.max_timestamp = Some((last.timestamp, offset));
        }
        self.offset_entries_on_disk = offsets.len();
        self.time_entries_on_disk = times.len();
        self.offset_index = offsets;
        self.time_index = times;
        Ok(())
    }

    /// Reads and parses the header of the batch at `position` (a single small pread).
    pub(crate) fn read_header(&self, position: u64) -> Result<BatchHeader, StorageError> {
        let mut buf = [0u8; BATCH_HEADER_LEN];
        if position + BATCH_HEADER_LEN as u64 > self.size {
            return Err(self.corrupt(
                position,
                BatchError::Incomplete {
                    needed: BATCH_HEADER_LEN,
                },
            ));
        }
        self.log
            .read_exact_at(&mut buf, position)
            .ctx(IoVerb::Read, &self.log_path)?;
        parse_header(&buf).map_err(|e| self.corrupt(position, e))
    }

    pub(crate) fn corrupt(&self, position: u64, source: BatchError) -> StorageError {
        StorageError::CorruptSegment {
            path: self.log_path.clone(),
            position,
            source,
        }
    }

    /// After a trusted load: continues the indexes from the last offset-index entry to the
    /// end of the file with a header-only scan, which yields the exact next offset and
    /// covers index entries a crash may have lost.
    pub(crate) fn scan_tail(
        &mut self,
        limits: &IndexLimits,
    ) -> Result<Option<ScanStop>, StorageError> {
        let (rel, pos) = self
            .offset_index
            .last()
            .map_or((0, 0), |e| (e.relative_offset, e.position));
        self.next_offset = self.base_offset + i64::from(rel);
        self.bytes_since_index_entry = 0;
        self.scan(u64::from(pos), false, limits)
    }

    /// Rebuilds everything from the segment start; `verify_crc` for untrusted data.
    pub(crate) fn rebuild(
        &mut self,
        verify_crc: bool,
        limits: &IndexLimits,
    ) -> Result<Option<ScanStop>, StorageError> {
        self.reset_indexes();
        self.scan(0, verify_crc, limits)
    }

    /// Walks batches from `start` to the end of the file in large sequential reads, tracking
    /// each valid batch; returns where and why it stopped early, if it did.
    fn scan(
        &mut self,
        start: u64,
        verify_crc: bool,
        limits: &IndexLimits,
    ) -> Result<Option<ScanStop>, StorageError> {
        let file_len = self.size;
        let mut buf = Vec::new();
        let mut pos = start;
        let mut chunk = SCAN_CHUNK;
        let log = self.log.clone();
        while pos < file_len {
            let want = chunk.min((file_len - pos) as usize);
            buf.resize(want, 0);
            log.read_exact_at(&mut buf, pos)
                .ctx(IoVerb::Read, &self.log_path)?;
            let mut iter = if verify_crc {
                BatchIter::new(&buf)
            } else {
                BatchIter::headers_only(&buf)
            };
            loop {
                let at = pos + iter.consumed() as u64;
                match iter.next() {
                    None => break,
                    Some(Err(e)) => {
                        return Ok(Some(ScanStop {
                            position: at,
                            reason: e.to_string(),
                        }))
                    }
                    Some(Ok((header, _))) => {
                        if let Err(reason) = self.check_offsets(&header) {
                            return Ok(Some(ScanStop {
                                position: at,
                                reason,
                            }));
                        }
                        self.track_batch(&header, at, limits);
                    }
                }
            }
            let consumed = iter.consumed();
            if let BatchIterEnd::Incomplete { needed } = iter.end() {
                let at = pos + consumed as u64;
                if at + needed as u64 > file_len {
                    return Ok(Some(ScanStop {
                        position: at,
                        reason: format!("torn batch: {} of {needed} bytes present", file_len - at),
                    }));
                }
                chunk = chunk.max(needed);
            }
            pos += consumed as u64;
        }
        Ok(None)
    }

    /// Offsets in a segment must increase and stay within 32-bit relative range.
    fn check_offsets(&self, header: &BatchHeader) -> Result<(), String> {
        if header.base_offset < self.next_offset {
            return Err(format!(
                "batch base offset {} below expected {}",
                header.base_offset, self.next_offset
            ));
        }
        if header.last_offset() - self.base_offset > i64::from(i32::MAX) {
            return Err(format!(
                "batch last offset {} too far from segment base {}",
                header.last_offset(),
                self.base_offset
            ));
        }
        Ok(())
    }

    /// Finds the first batch whose last offset is >= `offset`, starting from the offset
    /// index; returns its position and header.
    pub(crate) fn find_batch(
        &self,
        offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let (rel, pos) = index::lookup_position(&self.offset_index, self.relative(offset));
        let mut reader = HeaderReader::new(self);
        let mut pos = u64::from(pos);
        if pos != 0 {
            // A stale entry would send us into the middle of a batch; verify and fall back.
            let expected = self.base_offset + i64::from(rel);
            match reader.header_at(pos)? {
                Some(h) if h.base_offset == expected => {}
                _ => {
                    tracing::warn!(path = %self.index_path.display(), offset,
                        "offset index entry does not match the log; scanning from the start");
                    pos = 0;
                }
            }
        }
        while let Some(h) = reader.header_at(pos)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Finds the first batch at or after `from_offset` whose max timestamp is >= `timestamp`,
    /// starting from the time index.
    pub(crate) fn find_by_timestamp(
        &self,
        timestamp: i64,
        from_offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let start_rel = index::lookup_time(&self.time_index, timestamp)
            .map(|rel| rel.max(self.relative(from_offset)))
            .unwrap_or_else(|| self.relative(from_offset));
        let Some((mut pos, _)) = self.find_batch(self.base_offset + i64::from(start_rel))? else {
            return Ok(None);
        };
        let mut reader = HeaderReader::new(self);
        while let Some(h) = reader.header_at(pos)? {
            if h.max_timestamp >= timestamp && h.last_offset() >= from_offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Iterates batch headers from `position` (for building read plans).
    pub(crate) fn headers_from(&self, position: u64) -> HeaderReader<'_> {
        let mut r = HeaderReader::new(self);
        r.next_pos = position;
        r
    }

    /// Removes the segment's files.
    pub(crate) fn delete_files(&self) -> Result<(), StorageError> {
        remove_if_exists(&self.log_path)?;
        remove_if_exists(&self.index_path)?;
        remove_if_exists(&self.time_index_path)?;
        remove_if_exists(self.txn_index.path())
    }

    /// Largest timestamp for time-based retention: the max batch timestamp, or the file's
    /// modification time when no batch carries one (Kafka's rule).
    pub(crate) fn largest_timestamp(&self) -> i64 {
        match self.max_timestamp {
            Some((ts, _)) if ts >= 0 => ts,
            _ => self
                .log
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64),
        }
    }
}

/// Reads batch headers at increasing positions through a small read-ahead window, so a
/// forward walk over small batches costs a few syscalls rather than one per batch.
pub(crate) struct HeaderReader<'a> {
    segment: &'a Segment,
    window_start: u64,
    window: Vec<u8>,
    next_pos: u64,
}

impl<'a> HeaderReader<'a> {
    fn new(segment: &'a Segment) -> HeaderReader<'a> {
        HeaderReader {
            segment,
            window_start: 0,
            window: Vec::new(),
            next_pos: 0,
        }
    }

    /// The header of the batch at `pos`, `None` at the end of the segment's valid bytes.
    /// A batch that would extend past the end is reported as corruption.
    pub(crate) fn header_at(&mut self, pos: u64) -> Result<Option<BatchHeader>, StorageError> {
        let seg = self.segment;
        if pos >= seg.size {
            return Ok(None);
        }
        let end = pos + BATCH_HEADER_LEN as u64;
        if end > seg.size {
            return Err(seg.corrupt(
                pos,
                BatchError::Incomplete {
                    needed: BATCH_HEADER_LEN,
                },
            ));
        }
        let in_window =
            pos >= self.window_start && end <= self.window_start + self.window.len() as u64;
        if !in_window {
            let len = HEADER_WINDOW.min((seg.size - pos) as usize);
            self.window.resize(len, 0);
            seg.log
                .read_exact_at(&mut self.window, pos)
                .ctx(IoVerb::Read, &seg.log_path)?;
            self.window_start = pos;
        }
        let from = (pos - self.window_start) as usize;
        let header = parse_header(&self.window[from..from + BATCH_HEADER_LEN])
            .map_err(|e| seg.corrupt(pos, e))?;
        if pos + header.total_size() as u64 > seg.size {
            return Err(seg.corrupt(
                pos,
                BatchError::Incomplete {
                    needed: header.total_size(),
                },
            ));
        }
        self.next_pos = pos + header.total_size() as u64;
        Ok(Some(header))
    }

    /// The header after the last one returned (or at the start position).
    pub(crate) fn next_header(&mut self) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let pos = self.next_pos;
        Ok(self.header_at(pos)?.map(|h| (pos, h)))
    }
}

//! What Kafka-style replication needs from the log: a follower appends the leader's batches
//! as they are, asks the leader-epoch cache where an epoch ended, and truncates what it
//! wrote under a leader whose log diverged.
//!
//! ```text
//!  follower                                        leader
//!  ─────────────────────────────────────────────   ─────────────────────────────────
//!  latest_epoch() ── OffsetForLeaderEpoch(e) ────► end_offset_for_epoch(e) = (e', end)
//!  truncate_to(min(end, log end)) ◄────────────────┘
//!  Fetch(log end) ──────────────────────────────► read(...)
//!  append_as_follower(batches) ◄─────────────────┘  (offsets, epochs, timestamps kept)
//!
//!  out of range below the leader's log start:
//!  truncate_fully_and_start_at(leader log start)
//! ```

use fjord_protocol::batch::{BatchError, BatchHeader, BatchIter, BatchIterEnd};

use super::{limits, AppendInfo, Log, LOG_START_OFFSET_FILE};
use crate::checkpoint::{sync_dir, write_atomically};
use crate::leader_epoch::EpochEntry;
use crate::segment::Segment;
use crate::{cleaner, producer_snapshot, StorageError};

impl Log {
    /// The newest leader epoch of this log (from the leader-epoch cache), `None` before any
    /// batch with an epoch was appended. A follower sends it in OffsetForLeaderEpoch to learn
    /// where its log and the leader's part.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// The leader-epoch cache, oldest epoch first: where each epoch's records start. For
    /// tools, tests and metrics; replication asks [`Log::end_offset_for_epoch`].
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.epochs.entries().to_vec()
    }

    /// OffsetForLeaderEpoch as the leader answers it (Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`): the end of `epoch` in this log, as
    /// `(epoch found, end offset)`, so a follower can truncate what it wrote beyond it.
    ///
    /// - `epoch` is the latest epoch: `(epoch, log end offset)`, the epoch is still open.
    /// - otherwise: the largest epoch at or below `epoch`, ending where the next higher epoch
    ///   starts. An epoch this log never saw (a leader that wrote nothing here) answers with
    ///   the epoch before it.
    /// - `epoch` below the first entry (its records are gone, or it predates this log) or
    ///   above the latest: Kafka's UNDEFINED, `(-1, -1)`. Kafka itself answers a request
    ///   below the first entry with `(epoch, start offset of the first entry)`; this log
    ///   leaves that choice to the caller, which can read [`Log::epoch_entries`].
    /// - `None` when the cache has no entries at all.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// Starts `epoch` at the log end, as a newly elected leader does (Kafka assigns the epoch
    /// on becoming leader), so a follower asking where an older epoch ended is answered with
    /// this leader's log end before the first record of the new epoch is written. Returns
    /// whether the cache changed; an epoch not newer than the latest is left alone.
    pub fn assign_leader_epoch(&mut self, epoch: i32) -> Result<bool, StorageError> {
        let before = self.epochs.entries().to_vec();
        let end = self.log_end_offset();
        if !self.epochs.assign(epoch, end) {
            return Ok(false);
        }
        self.persist_epochs_or_restore(before)?;
        Ok(true)
    }

    /// Appends batches a follower fetched from its leader, keeping their offsets, partition
    /// leader epochs and timestamps (nothing is reassigned or restamped: the copy must be
    /// byte for byte the leader's).
    ///
    /// Every batch is validated before anything is written (CRC, magic, length, whole
    /// batches), and offsets must not run backwards: the first batch may not start below
    /// the log end offset and each later one may not start at or below the end of the one
    /// before ([`StorageError::NonContiguousAppend`]). A batch may start *above* where the
    /// previous one ended: the leader's log cleaner drops batches whose records were all
    /// superseded, so a compacted leader log has such gaps, and a follower that refused them
    /// could never copy it. The log end offset then jumps, as on the leader.
    ///
    /// `max.message.bytes` is not applied (the leader accepted the batches, and refusing
    /// them here would stall replication for good); a batch larger than `segment.bytes` is
    /// refused because no segment could hold it. Requests larger than a segment are written
    /// in several steps, rolling in between; an I/O error part way leaves a shorter but
    /// consistent log. Newer epochs found in the batches are recorded in the leader-epoch
    /// cache (written before the records). Producer and transaction state are the caller's.
    pub fn append_as_follower(
        &mut self,
        records: &mut [u8],
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let batches = self.validate_follower_batches(records)?;
        let first_offset = batches[0].1.base_offset;
        let last_offset = batches[batches.len() - 1].1.last_offset();

        // Epochs go to disk ahead of their records; see `append_with_leader_epoch`.
        let epochs_before = self.epochs.entries().to_vec();
        let mut new_epoch = false;
        for (_, h) in &batches {
            new_epoch |= self.epochs.assign(h.partition_leader_epoch, h.base_offset);
        }
        if new_epoch {
            self.persist_epochs_or_restore(epochs_before.clone())?;
        }

        let limits = limits(&self.config);
        let segment_bytes = self.config.segment_bytes;
        let mut max_timestamp = i64::MIN;
        let mut record_count = 0i64;
        let mut start = 0;
        while start < batches.len() {
            // The longest run of batches that one segment write can take.
            let chunk_pos = batches[start].0;
            let chunk_base = batches[start].1.base_offset;
            let mut end = start + 1;
            let mut chunk_end = chunk_pos + batches[start].1.total_size();
            while let Some((pos, h)) = batches.get(end) {
                let grown = pos + h.total_size();
                if (grown - chunk_pos) as u64 > segment_bytes
                    || h.last_offset() - chunk_base > i64::from(i32::MAX)
                {
                    break;
                }
                chunk_end = grown;
                end += 1;
            }
            let chunk_last = batches[end - 1].1.last_offset();
            let chunk: Vec<(usize, BatchHeader)> = batches[start..end]
                .iter()
                .map(|&(pos, h)| (pos - chunk_pos, h))
                .collect();
            let written = self
                .maybe_roll(chunk_end - chunk_pos, chunk_base, chunk_last, now_ms)
                .and_then(|()| {
                    self.active_mut().append(
                        &records[chunk_pos..chunk_end],
                        &chunk,
                        now_ms,
                        &limits,
                    )
                });
            if let Err(e) = written {
                // Keep the epochs of the chunks that made it, drop those ahead of the log.
                let kept = if start == 0 {
                    epochs_before
                } else {
                    let end = self.log_end_offset();
                    let mut kept = self.epochs.entries().to_vec();
                    kept.retain(|e| e.start_offset < end);
                    kept
                };
                self.restore_epochs(kept);
                return Err(e);
            }
            self.size_bytes += (chunk_end - chunk_pos) as u64;
            for (_, h) in &chunk {
                max_timestamp = max_timestamp.max(h.max_timestamp);
                record_count += i64::from(h.records_count);
            }
            start = end;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset,
            log_append_time: None,
            max_timestamp,
            bytes: records.len(),
            batch_count: batches.len(),
            record_count,
            log_start_offset: self.log_start_offset,
        })
    }

    /// Parses and checks a follower append; returns each batch's position and header.
    fn validate_follower_batches(
        &self,
        records: &[u8],
    ) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
        if records.is_empty() {
            return Err(StorageError::InvalidRecord("no record batches".into()));
        }
        let mut batches: Vec<(usize, BatchHeader)> = Vec::new();
        let mut expected = self.log_end_offset();
        let mut iter = BatchIter::new(records);
        loop {
            let position = iter.consumed();
            match iter.next() {
                None => break,
                Some(Err(source)) => return Err(StorageError::CorruptBatch { position, source }),
                Some(Ok((header, bytes))) => {
                    if bytes.len() as u64 > self.config.segment_bytes {
                        return Err(StorageError::RecordListTooLarge {
                            size: bytes.len(),
                            max: self.config.segment_bytes,
                        });
                    }
                    if header.base_offset < expected {
                        return Err(StorageError::NonContiguousAppend {
                            expected,
                            got: header.base_offset,
                        });
                    }
                    expected = header
                        .base_offset
                        .checked_add(i64::from(header.last_offset_delta) + 1)
                        .ok_or_else(|| {
                            StorageError::InvalidRecord(format!(
                                "batch at offset {} runs past the largest offset",
                                header.base_offset
                            ))
                        })?;
                    batches.push((position, header));
                }
            }
        }
        if let BatchIterEnd::Incomplete { needed } = iter.end() {
            return Err(StorageError::CorruptBatch {
                position: iter.consumed(),
                source: BatchError::Incomplete { needed },
            });
        }
        Ok(batches)
    }

    /// Removes every record at and after `offset`, so a follower whose log diverged from
    /// its new leader's can fetch again from there (Kafka's `truncateTo`).
    ///
    /// `offset` must lie within `[log start offset, log end offset]`
    /// ([`StorageError::OffsetOutOfRange`] otherwise); at the log end nothing happens.
    /// Truncation keeps whole batches: when `offset` falls inside a batch, that whole batch
    /// goes too and the log ends at its base offset, as Kafka truncates to a batch boundary
    /// (a record cannot be cut out of a compressed batch, and a leader's epoch end offsets
    /// are batch boundaries anyway). In general the log then ends where the last batch kept
    /// ends: at `offset` or the base offset of the batch holding it while offsets are
    /// contiguous, lower when a compacted log has a gap before that batch (the same end a
    /// reopen would find); [`Log::log_end_offset`] tells. With no batch left the log ends
    /// at its first segment's base offset. If the end would fall below the log start
    /// (DeleteRecords moved the start into a removed batch), the log is emptied and
    /// continues at the log start, as [`Log::truncate_fully_and_start_at`] does.
    ///
    /// Segments above the cut are deleted and the one holding it is cut, indexes included;
    /// aborted-transaction entries whose marker is cut, producer snapshots above the new end
    /// and leader epochs starting at or after it are dropped; the recovery point and the
    /// cleaner offset are lowered. Crash-safe: segments are deleted newest first with the
    /// directory synced after each, then the cut segment's indexes and data are cut and
    /// synced before this returns, so a crash at any point leaves a prefix of the log, and
    /// [`Log::open`] drops any transaction entry, snapshot or epoch beyond that prefix.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        let log_end = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        if offset == log_end {
            return Ok(());
        }
        let mut i = self.segment_index_for(offset);
        let (mut position, mut cut_offset) = match self.segments[i].find_batch(offset)? {
            Some((position, header)) => (position, header.base_offset),
            None => (self.segments[i].size, i64::MAX),
        };
        if position == 0 && i > 0 {
            // Nothing of segment i stays: it goes too and the previous segment continues,
            // so the log ends where its last batch does. An emptied segment would pin the
            // end at its base offset, past that batch when a gap precedes the segment.
            i -= 1;
            position = self.segments[i].size;
            cut_offset = i64::MAX;
        }

        // Lowering it first is always safe; once the cut is durable, no clean range may
        // reach past it.
        cleaner::lower_cleaner_offset(&self.dir, self.segments[i].base_offset)?;

        while self.segments.len() > i + 1 {
            let last = self.segments.len() - 1;
            self.segments[last].delete_files()?;
            // One sync per segment: deletions must not become durable out of order, or a
            // crash could leave a hole instead of a prefix.
            sync_dir(&self.dir)?;
            let seg = self.segments.remove(last);
            self.size_bytes -= seg.size;
            tracing::info!(segment = %seg.log_path.display(), "deleted segment above truncation point");
            self.unsynced_dir_since = None;
        }

        let limits = limits(&self.config);
        let seg = &mut self.segments[i];
        let size_before = seg.size;
        seg.cut(position, cut_offset, &limits)?;
        if seg.rolling_base_ms.is_none() && !seg.is_empty() {
            // A sealed segment becoming active again: roll by age from its first batch, as
            // a reopen would.
            let first = seg.read_header(0)?;
            seg.rolling_base_ms = (first.max_timestamp >= 0).then_some(first.max_timestamp);
        }
        self.size_bytes -= size_before - seg.size;
        let new_end = seg.next_offset;
        self.recovery_point = self.recovery_point.min(new_end);
        tracing::info!(dir = %self.dir.display(), requested = offset, log_end = new_end,
            "truncated log");

        if new_end < self.log_start_offset {
            let start = self.log_start_offset;
            return self.truncate_fully_and_start_at(start);
        }

        // Derived state, after the records: a crash before this point leaves entries beyond
        // the log end, which the next open drops.
        self.truncate_aborted_txns(new_end)?;
        for seg in &mut self.segments[i..] {
            seg.txn_index.sync()?;
        }
        if producer_snapshot::delete_above(&self.dir, new_end)? {
            sync_dir(&self.dir)?;
        }
        if self.epochs.truncate_from_end(new_end) {
            self.epochs.persist()?;
        }
        Ok(())
    }

    /// Empties the log and continues it at `offset` (Kafka's `truncateFullyAndStartAt`), for
    /// a follower whose log lies wholly outside the leader's, typically behind its log
    /// start. Every segment, producer snapshot and leader epoch goes; `offset` becomes the
    /// log start, log end and recovery point. `offset` may be anywhere at or above 0, below
    /// the current log too.
    ///
    /// Crash-safe: segments are deleted newest first (each deletion synced), then the
    /// snapshots and the epoch cache, then the new log start is written, then the new
    /// segment is created. A crash leaves a prefix of the old log, an empty log, or the
    /// new one, each consistent.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        cleaner::lower_cleaner_offset(&self.dir, offset)?;
        for seg in self.segments.iter().rev() {
            seg.delete_files()?;
            sync_dir(&self.dir)?;
        }
        if producer_snapshot::delete_above(&self.dir, -1)? {
            sync_dir(&self.dir)?;
        }
        if self.epochs.clear() {
            self.epochs.persist()?;
        }
        write_atomically(
            &self.dir.join(LOG_START_OFFSET_FILE),
            format!("0\n{offset}\n").as_bytes(),
        )?;
        let seg = Segment::create(&self.dir, offset)?;
        sync_dir(&self.dir)?;
        self.segments = vec![seg];
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.size_bytes = 0;
        self.unsynced_dir_since = None;
        tracing::info!(dir = %self.dir.display(), offset, "emptied log");
        Ok(())
    }
}

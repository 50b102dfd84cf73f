//! Kafka's aborted-transaction index (`.txnindex`), one per segment.
//!
//! A read_committed fetch must tell the consumer which transactions in the returned range
//! were aborted, so it can skip their records. Scanning for abort markers on every fetch
//! would cost a read of everything fetched; instead the broker records each aborted
//! transaction once, when it writes the abort marker, and fetches look the ranges up here.
//!
//! File format (Kafka's, so tools that read `.txnindex` files keep working): 34-byte
//! big-endian entries, appended in marker order:
//!
//! ```text
//! version i16 (0) | producerId i64 | firstOffset i64 | lastOffset i64 | lastStableOffset i64
//! ```
//!
//! An entry lives in the index of the segment holding its `lastOffset` (the abort marker),
//! so it is deleted, truncated and compacted together with the marker. The file is created
//! by the first entry of its segment; most segments of most topics never get one. Entries
//! are few and small, so every index is also kept in memory.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{IoContext, IoVerb};
use crate::StorageError;

/// Size of one `.txnindex` entry.
pub(crate) const TXN_ENTRY_LEN: usize = 34;
/// The only entry version Kafka has defined.
const TXN_ENTRY_VERSION: i16 = 0;

/// One aborted transaction on a partition: producer `producer_id` wrote its first record of
/// the transaction at `first_offset` and the abort marker at `last_offset`. A read_committed
/// consumer drops that producer's transactional batches in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The transactional producer.
    pub producer_id: i64,
    /// Offset of the transaction's first record on this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    /// The partition's last stable offset once this transaction completed; kept because it
    /// is part of Kafka's file format and lets a search stop early.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; TXN_ENTRY_LEN] {
        let mut out = [0u8; TXN_ENTRY_LEN];
        out[0..2].copy_from_slice(&TXN_ENTRY_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    /// Decodes one whole entry; `None` for a version this code does not know.
    fn decode(chunk: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |pos: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&chunk[pos..pos + 8]);
            i64::from_be_bytes(b)
        };
        if i16::from_be_bytes([chunk[0], chunk[1]]) != TXN_ENTRY_VERSION {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// Encodes entries for a file write (also used by the log cleaner for cleaned segments).
pub(crate) fn encode_entries(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TXN_ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&e.encode());
    }
    out
}

/// The aborted-transaction index of one segment, in memory and on disk.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    /// Sorted by strictly increasing `last_offset` (markers are appended in offset order).
    entries: Vec<AbortedTxn>,
    /// Open while writes may not be synced yet; the flush path syncs it and closes it again
    /// once the segment is sealed and durable, so sealed segments do not hold descriptors.
    file: Option<Arc<File>>,
    /// Appends and truncations so far, and how many of them are known synced: a flush only
    /// syncs the file when they differ.
    writes: u64,
    synced_writes: u64,
    /// `writes` when the last flush target was taken (under the log lock, through `&self`);
    /// the flush marked done afterwards covers that many.
    targeted_writes: AtomicU64,
}

impl TxnIndex {
    /// An index without entries (and without a file until the first append).
    pub(crate) fn empty(path: PathBuf) -> TxnIndex {
        TxnIndex {
            path,
            entries: Vec::new(),
            file: None,
            writes: 0,
            synced_writes: 0,
            targeted_writes: AtomicU64::new(0),
        }
    }

    /// Loads the index of the segment at `base_offset`. A missing file is an empty index.
    /// Loading stops at the first entry that cannot be right (a torn partial entry at the
    /// tail after a crash, an unknown version, offsets out of order or below the segment),
    /// and the file is cut there so later appends continue from whole entries.
    pub(crate) fn load(path: PathBuf, base_offset: i64) -> Result<TxnIndex, StorageError> {
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(TxnIndex::empty(path)),
            Err(e) => return Err(StorageError::io(IoVerb::Read, path, e)),
        };
        let mut entries: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / TXN_ENTRY_LEN);
        let mut problem = None;
        for chunk in bytes.chunks(TXN_ENTRY_LEN) {
            if chunk.len() < TXN_ENTRY_LEN {
                problem = Some("torn entry at the end");
                break;
            }
            let Some(entry) = AbortedTxn::decode(chunk) else {
                problem = Some("unknown entry version");
                break;
            };
            if entry.first_offset > entry.last_offset
                || entry.last_offset < base_offset
                || entries
                    .last()
                    .is_some_and(|prev| entry.last_offset <= prev.last_offset)
            {
                problem = Some("entry offsets out of order");
                break;
            }
            entries.push(entry);
        }
        let mut index = TxnIndex {
            entries,
            ..TxnIndex::empty(path)
        };
        if let Some(problem) = problem {
            let valid = index.entries.len() * TXN_ENTRY_LEN;
            tracing::warn!(path = %index.path.display(), problem, valid_bytes = valid,
                dropped_bytes = bytes.len() - valid, "cutting aborted-transaction index");
            let file = index.open_file()?;
            file.set_len(valid as u64)
                .ctx(IoVerb::Truncate, &index.path)?;
            file.sync_data().ctx(IoVerb::Sync, &index.path)?;
            index.file = None;
        }
        Ok(index)
    }

    /// The entries, ordered by `last_offset`.
    pub(crate) fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// The index file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// For a flush target: the file handle if writes may be unsynced, remembering how many
    /// writes the target covers for [`TxnIndex::mark_synced`].
    pub(crate) fn flush_target(&self) -> Option<&Arc<File>> {
        if self.writes == self.synced_writes {
            return None;
        }
        self.targeted_writes.store(self.writes, Ordering::Relaxed);
        self.file.as_ref()
    }

    /// The last flush target was synced: its writes are durable.
    pub(crate) fn mark_synced(&mut self) {
        let targeted = *self.targeted_writes.get_mut();
        self.synced_writes = self.synced_writes.max(targeted);
    }

    fn open_file(&mut self) -> Result<Arc<File>, StorageError> {
        if let Some(file) = &self.file {
            return Ok(file.clone());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .ctx(IoVerb::Open, &self.path)?;
        Ok(self.file.insert(Arc::new(file)).clone())
    }

    /// Appends an entry (in memory and to the file, creating it). Not synced: the flush path
    /// does that. The caller has checked that `txn.last_offset` is above every entry's.
    pub(crate) fn append(&mut self, txn: AbortedTxn) -> Result<(), StorageError> {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|e| e.last_offset < txn.last_offset));
        let file = self.open_file()?;
        let position = (self.entries.len() * TXN_ENTRY_LEN) as u64;
        self.writes += 1;
        if let Err(e) = file.write_all_at(&txn.encode(), position) {
            // Drop a partly written entry so the file keeps matching memory.
            if let Err(trunc) = file.set_len(position) {
                tracing::warn!(path = %self.path.display(), error = %trunc,
                    "could not roll back a failed index append; the next load cuts it");
            }
            return Err(StorageError::io(IoVerb::Write, &self.path, e));
        }
        self.entries.push(txn);
        Ok(())
    }

    /// Drops every entry whose `last_offset` is at or above `offset`.
    pub(crate) fn truncate_from(&mut self, offset: i64) -> Result<(), StorageError> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        let file = self.open_file()?;
        self.writes += 1;
        file.set_len((keep * TXN_ENTRY_LEN) as u64)
            .ctx(IoVerb::Truncate, &self.path)?;
        self.entries.truncate(keep);
        Ok(())
    }

    /// Syncs pending writes, if any.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        if self.writes == self.synced_writes {
            return Ok(());
        }
        let writes = self.writes;
        self.open_file()?
            .sync_data()
            .ctx(IoVerb::Sync, &self.path)?;
        self.synced_writes = writes;
        Ok(())
    }

    /// Releases the file handle if every write is durable (for sealed segments, which
    /// should not hold descriptors).
    pub(crate) fn close_file_if_synced(&mut self) {
        if self.writes == self.synced_writes {
            self.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: first_offset,
        }
    }

    #[test]
    fn entries_use_kafkas_34_byte_layout() {
        let e = AbortedTxn {
            producer_id: 0x0102,
            first_offset: 3,
            last_offset: 4,
            last_stable_offset: -1,
        };
        let bytes = e.encode();
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&bytes[10..18], &3i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &4i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &[0xff; 8]);
        assert_eq!(AbortedTxn::decode(&bytes), Some(e));
        let mut v1 = bytes;
        v1[1] = 1;
        assert_eq!(AbortedTxn::decode(&v1), None);
    }

    #[test]
    fn append_truncate_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.txnindex");
        let mut index = TxnIndex::load(path.clone(), 100).unwrap();
        assert!(index.entries().is_empty());
        assert!(!path.exists(), "created lazily");
        for (pid, first, last) in [(1, 90, 100), (2, 101, 105), (1, 106, 110)] {
            index.append(txn(pid, first, last)).unwrap();
        }
        index.sync().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 3 * 34);
        let reloaded = TxnIndex::load(path.clone(), 100).unwrap();
        assert_eq!(reloaded.entries(), index.entries());

        index.truncate_from(105).unwrap();
        assert_eq!(index.entries(), &[txn(1, 90, 100)]);
        assert_eq!(fs::metadata(&path).unwrap().len(), 34);
        index.append(txn(3, 102, 103)).unwrap();
        let reloaded = TxnIndex::load(path, 100).unwrap();
        assert_eq!(reloaded.entries(), &[txn(1, 90, 100), txn(3, 102, 103)]);
    }

    #[test]
    fn a_flush_covers_the_writes_before_its_target_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::empty(path);
        assert!(index.flush_target().is_none());
        index.append(txn(1, 0, 1)).unwrap();
        assert!(index.flush_target().is_some());
        // An append between taking the target and marking it synced stays pending.
        index.append(txn(1, 2, 3)).unwrap();
        index.mark_synced();
        assert!(index.flush_target().is_some());
        index.close_file_if_synced();
        assert!(index.file.is_some());
        index.mark_synced();
        assert!(index.flush_target().is_none());
        index.close_file_if_synced();
        assert!(index.file.is_none());
        // Truncation is a write too; an explicit sync settles everything.
        index.truncate_from(2).unwrap();
        assert!(index.flush_target().is_some());
        index.sync().unwrap();
        assert!(index.flush_target().is_none());
    }

    #[test]
    fn a_torn_or_insane_tail_is_cut_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let good = [txn(1, 0, 5), txn(2, 3, 9)];
        let mut bytes = encode_entries(&good);
        bytes.extend_from_slice(&txn(3, 10, 12).encode()[..20]);
        fs::write(&path, &bytes).unwrap();
        let index = TxnIndex::load(path.clone(), 0).unwrap();
        assert_eq!(index.entries(), &good);
        assert_eq!(fs::metadata(&path).unwrap().len(), 68);

        // An entry going backwards (stale bytes) ends the valid prefix too.
        let mut bytes = encode_entries(&good);
        bytes.extend_from_slice(&txn(3, 1, 2).encode());
        fs::write(&path, &bytes).unwrap();
        assert_eq!(TxnIndex::load(path.clone(), 0).unwrap().entries(), &good);
        assert_eq!(fs::metadata(&path).unwrap().len(), 68);

        // Entries below the segment's base offset do not belong to it.
        let index = TxnIndex::load(path, 6).unwrap();
        assert!(index.entries().is_empty());
    }
}

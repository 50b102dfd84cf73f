//! Kafka's leader-epoch cache: which leader epoch started at which offset, kept in the
//! `leader-epoch-checkpoint` file of the partition directory.
//!
//! Replication needs it twice. A leader answers OffsetForLeaderEpoch from it ("where did
//! my log leave your epoch?"), and a follower uses that answer to cut the records it wrote
//! under a leader whose log the new leader never had. The file is Kafka's, byte for byte,
//! so operators' habits and tools carry over:
//!
//! ```text
//! 0          <- version
//! 2          <- number of entries
//! 0 0        <- epoch start offset, epochs and start offsets strictly increasing
//! 3 1042
//! ```
//!
//! Every change is written atomically (temp file, fsync, rename, directory fsync). The
//! cache is derived from the batches' partition leader epochs, so the log stays the source
//! of truth: [`crate::Log::open`] rebuilds a missing or unreadable file from the batches and
//! drops entries that point beyond the recovered log end.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::checkpoint::{corrupt, read_versioned_lines, write_atomically};
use crate::error::IoVerb;
use crate::StorageError;

/// Name of the leader-epoch cache file in the partition directory (Kafka's name).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Version line Kafka writes and accepts.
const VERSION: i32 = 0;

/// Kafka's `UNDEFINED_EPOCH` and `UNDEFINED_EPOCH_OFFSET`: the answer to an
/// OffsetForLeaderEpoch request the cache cannot place.
const UNDEFINED: (i32, i64) = (-1, -1);

/// One entry of the leader-epoch cache: the leader of `epoch` appended its first record at
/// `start_offset`. The epoch ends where the next entry starts (or at the log end for the
/// latest epoch), which is what lets a diverged follower find where to truncate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    /// The partition leader epoch.
    pub epoch: i32,
    /// Offset of the first record written in that epoch.
    pub start_offset: i64,
}

/// The cache of one partition, in memory and in its checkpoint file. Epochs and start
/// offsets are both strictly increasing; mutations say whether anything changed so callers
/// rewrite the file only when needed.
#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// A cache holding `entries` (which must be ordered) for the file at `path`; nothing is
    /// written until [`LeaderEpochCache::persist`].
    pub(crate) fn new(path: PathBuf, entries: Vec<EpochEntry>) -> LeaderEpochCache {
        debug_assert!(is_ordered(&entries), "{entries:?}");
        LeaderEpochCache { path, entries }
    }

    /// Reads the checkpoint file: `None` when it does not exist (a log from before the cache
    /// existed, or a crash before its first write), an error naming the line when it does
    /// not follow Kafka's format or its entries are out of order.
    pub(crate) fn read_file(path: &Path) -> Result<Option<Vec<EpochEntry>>, StorageError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(IoVerb::Read, path, e)),
        };
        parse(path, &text).map(Some)
    }

    /// Writes the whole cache to its file atomically, so a crash leaves the old or the new
    /// file and never a torn one.
    pub(crate) fn persist(&self) -> Result<(), StorageError> {
        write_atomically(&self.path, encode(&self.entries).as_bytes())
    }

    /// The checkpoint file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The entries, oldest epoch first.
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch, `None` when the cache is empty.
    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Whether [`LeaderEpochCache::assign`] would add an entry for `epoch`.
    pub(crate) fn is_new_epoch(&self, epoch: i32) -> bool {
        epoch >= 0 && self.latest_epoch().is_none_or(|latest| epoch > latest)
    }

    /// Records that `epoch` starts at `start_offset` if it is newer than every known epoch;
    /// returns whether an entry was added. Negative epochs (Kafka's "no epoch", sent by
    /// producers and old clients) and epochs at or below the latest are ignored: the cache
    /// only moves forward while appending, and truncation is what moves it back. An entry
    /// starting at or before an existing one replaces it (Kafka drops non-monotonic
    /// entries the same way), which happens when a new epoch begins right at a log start
    /// that retention moved up to the log end.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if !self.is_new_epoch(epoch) {
            return false;
        }
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < start_offset);
        self.entries.truncate(keep);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drops entries starting at or after `end_offset` (the log was truncated there);
    /// returns whether any was dropped. Kafka's `truncateFromEnd`.
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Forgets entries wholly below a new log start offset; the entry covering it gets
    /// `start_offset` as its start, since the records before are gone (Kafka's
    /// `truncateFromStart`). Returns whether anything changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covering = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(last_below) = covering.checked_sub(1) else {
            return false;
        };
        if last_below == 0 && self.entries[0].start_offset == start_offset {
            return false;
        }
        self.entries.drain(..last_below);
        self.entries[0].start_offset = start_offset;
        true
    }

    /// Drops every entry (the log was emptied); returns whether there were any.
    pub(crate) fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// OffsetForLeaderEpoch: see [`crate::Log::end_offset_for_epoch`].
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let latest = self.entries.last()?;
        if latest.epoch == epoch {
            return Some((epoch, log_end_offset));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= epoch);
        if higher == self.entries.len() || higher == 0 {
            // Above the latest epoch (the requester knows of a newer leader than this log
            // has seen), or below the first one (those records are gone).
            return Some(UNDEFINED);
        }
        Some((
            self.entries[higher - 1].epoch,
            self.entries[higher].start_offset,
        ))
    }
}

fn is_ordered(entries: &[EpochEntry]) -> bool {
    entries
        .windows(2)
        .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset)
}

fn encode(entries: &[EpochEntry]) -> String {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for e in entries {
        text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    text
}

fn parse(path: &Path, text: &str) -> Result<Vec<EpochEntry>, StorageError> {
    let lines = read_versioned_lines(path, text, i64::from(VERSION), 2)?;
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(lines.len());
    for (line_no, fields) in lines {
        let (epoch, start) = (fields[0], fields[1]);
        let epoch: i32 = epoch
            .parse()
            .map_err(|_| corrupt(path, line_no, format!("bad epoch {epoch:?}")))?;
        let start_offset: i64 = start
            .parse()
            .map_err(|_| corrupt(path, line_no, format!("bad start offset {start:?}")))?;
        if epoch < 0 || start_offset < 0 {
            return Err(corrupt(path, line_no, "negative epoch or offset"));
        }
        if let Some(prev) = entries.last() {
            if epoch <= prev.epoch || start_offset <= prev.start_offset {
                return Err(corrupt(path, line_no, "entries not strictly increasing"));
            }
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::new(
            PathBuf::from(LEADER_EPOCH_CHECKPOINT_FILE),
            entries
                .iter()
                .map(|&(epoch, start)| e(epoch, start))
                .collect(),
        )
    }

    #[test]
    fn file_round_trip_uses_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
        assert_eq!(LeaderEpochCache::read_file(&path).unwrap(), None);
        let c = LeaderEpochCache::new(path.clone(), vec![e(0, 0), e(3, 1042)]);
        c.persist().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n2\n0 0\n3 1042\n");
        assert_eq!(
            LeaderEpochCache::read_file(&path).unwrap(),
            Some(vec![e(0, 0), e(3, 1042)])
        );
        assert!(!dir.path().join("leader-epoch-checkpoint.tmp").exists());

        LeaderEpochCache::new(path.clone(), vec![])
            .persist()
            .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n0\n");
        assert_eq!(LeaderEpochCache::read_file(&path).unwrap(), Some(vec![]));
    }

    #[test]
    fn malformed_files_name_the_line() {
        let p = Path::new(LEADER_EPOCH_CHECKPOINT_FILE);
        for (text, line) in [
            ("", 1),
            ("1\n0\n", 1),
            ("0\n", 2),
            ("0\nx\n", 2),
            ("0\n2\n0 0\n", 4),
            ("0\n1\n0\n", 3),
            ("0\n1\n0 0 0\n", 3),
            ("0\n1\nx 0\n", 3),
            ("0\n1\n0 x\n", 3),
            ("0\n1\n-1 0\n", 3),
            ("0\n2\n1 0\n1 5\n", 4),
            ("0\n2\n1 5\n2 5\n", 4),
            ("0\n1\n0 0\n1 5\n", 4),
        ] {
            match parse(p, text) {
                Err(StorageError::CorruptCheckpoint { line: l, .. }) => {
                    assert_eq!(l, line, "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn assign_only_moves_forward() {
        let mut c = cache(&[]);
        assert!(!c.assign(-1, 0), "no epoch is no entry");
        assert!(c.assign(2, 0));
        assert!(!c.assign(2, 5), "same epoch continues");
        assert!(!c.assign(1, 7), "an older epoch never rewrites history");
        assert!(c.assign(4, 10));
        assert_eq!(c.entries(), &[e(2, 0), e(4, 10)]);
        assert_eq!(c.latest_epoch(), Some(4));
        // A new epoch starting where the last one did replaces it.
        assert!(c.assign(5, 10));
        assert_eq!(c.entries(), &[e(2, 0), e(5, 10)]);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 20), (7, 30)]);
        assert!(!c.truncate_from_end(31));
        assert!(c.truncate_from_end(30));
        assert_eq!(c.entries(), &[e(1, 0), e(3, 10), e(4, 20)]);
        assert!(c.truncate_from_end(11));
        assert_eq!(c.entries(), &[e(1, 0), e(3, 10)]);

        let mut c = cache(&[(1, 0), (3, 10), (4, 20), (7, 30)]);
        assert!(!c.truncate_from_start(0), "nothing below");
        assert!(c.truncate_from_start(5));
        assert_eq!(c.entries(), &[e(1, 5), e(3, 10), e(4, 20), e(7, 30)]);
        assert!(
            c.truncate_from_start(20),
            "an entry starting at the new start survives"
        );
        assert_eq!(c.entries(), &[e(4, 20), e(7, 30)]);
        assert!(!c.truncate_from_start(20));
        assert!(c.truncate_from_start(45));
        assert_eq!(c.entries(), &[e(7, 45)]);

        let mut c = cache(&[(2, 10)]);
        assert!(!c.truncate_from_start(3), "start below the first entry");
        assert!(c.clear());
        assert!(!c.clear());
        assert!(!c.truncate_from_start(3));
    }

    #[test]
    fn end_offset_for_every_case() {
        let c = cache(&[(1, 0), (3, 10), (4, 20), (7, 30)]);
        let leo = 42;
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(7, leo), Some((7, 42)));
        // A middle epoch ends where the next one starts.
        assert_eq!(c.end_offset_for(3, leo), Some((3, 20)));
        assert_eq!(c.end_offset_for(1, leo), Some((1, 10)));
        // An epoch this log never saw answers with the largest epoch below it.
        assert_eq!(c.end_offset_for(2, leo), Some((1, 10)));
        assert_eq!(c.end_offset_for(6, leo), Some((4, 30)));
        // Below the first entry, and above the latest: undefined.
        assert_eq!(c.end_offset_for(0, leo), Some((-1, -1)));
        assert_eq!(c.end_offset_for(-1, leo), Some((-1, -1)));
        assert_eq!(c.end_offset_for(8, leo), Some((-1, -1)));
        // Nothing known at all.
        assert_eq!(cache(&[]).end_offset_for(0, leo), None);
    }
}

//! Sparse offset and time indexes of one segment, in Kafka's file formats.
//!
//! `.index`: 8-byte entries `relative offset i32 BE | file position i32 BE`, one per
//! `index.interval.bytes` of batches, pointing at the *start* of a batch whose base offset is
//! `segment base + relative offset`.
//! `.timeindex`: 12-byte entries `timestamp i64 BE | relative offset i32 BE`, written with
//! offset-index entries whenever the segment's max timestamp grew, plus a final entry when the
//! segment is rolled or closed.
//!
//! Both are kept in memory as sorted `Vec`s (lookups are binary searches) and appended to
//! their files as entries are added, so a clean reopen needs no rescan.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Size of one `.index` entry.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Size of one `.timeindex` entry.
pub(crate) const TIME_ENTRY_LEN: usize = 12;

/// `.index` entry: the batch starting at `position` has base offset `base + relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

/// `.timeindex` entry: no batch up to and including relative offset `relative_offset` has a
/// timestamp above `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

/// Encodes offset entries for a file write.
pub(crate) fn encode_offset_entries(entries: &[OffsetEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * OFFSET_ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&e.relative_offset.to_be_bytes());
        out.extend_from_slice(&e.position.to_be_bytes());
    }
    out
}

/// Encodes time entries for a file write.
pub(crate) fn encode_time_entries(entries: &[TimeEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TIME_ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&e.timestamp.to_be_bytes());
        out.extend_from_slice(&e.relative_offset.to_be_bytes());
    }
    out
}

/// Why an index file on disk cannot be used as is (it will be rebuilt).
#[derive(Debug)]
pub(crate) enum IndexProblem {
    Missing,
    Unreadable(std::io::Error),
    Insane(String),
}

fn read_file(path: &Path) -> Result<Vec<u8>, IndexProblem> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(IndexProblem::Missing),
        Err(e) => Err(IndexProblem::Unreadable(e)),
    }
}

/// Loads a `.index` file and applies Kafka's sanity checks (whole entries, strictly
/// increasing offsets and positions, last position inside the log file).
pub(crate) fn load_offset_index(
    path: &Path,
    log_size: u64,
) -> Result<Vec<OffsetEntry>, IndexProblem> {
    let bytes = read_file(path)?;
    if bytes.len() % OFFSET_ENTRY_LEN != 0 {
        return Err(IndexProblem::Insane(format!(
            "size {} is not a multiple of {OFFSET_ENTRY_LEN}",
            bytes.len()
        )));
    }
    let mut entries = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_LEN);
    for chunk in bytes.chunks_exact(OFFSET_ENTRY_LEN) {
        let relative_offset = i32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let position = i32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        if relative_offset < 0 || position < 0 {
            return Err(IndexProblem::Insane("negative entry".into()));
        }
        let entry = OffsetEntry {
            relative_offset: relative_offset as u32,
            position: position as u32,
        };
        if let Some(prev) = entries.last() {
            let prev: &OffsetEntry = prev;
            if entry.relative_offset <= prev.relative_offset || entry.position <= prev.position {
                return Err(IndexProblem::Insane(
                    "entries not strictly increasing".into(),
                ));
            }
        }
        entries.push(entry);
    }
    if let Some(last) = entries.last() {
        if u64::from(last.position) >= log_size {
            return Err(IndexProblem::Insane(format!(
                "last position {} beyond log size {log_size}",
                last.position
            )));
        }
    }
    Ok(entries)
}

/// Loads a `.timeindex` file with sanity checks (whole entries, non-decreasing timestamps
/// and offsets, offsets below `max_relative_offset` when known).
pub(crate) fn load_time_index(
    path: &Path,
    max_relative_offset: Option<u32>,
) -> Result<Vec<TimeEntry>, IndexProblem> {
    let bytes = read_file(path)?;
    if bytes.len() % TIME_ENTRY_LEN != 0 {
        return Err(IndexProblem::Insane(format!(
            "size {} is not a multiple of {TIME_ENTRY_LEN}",
            bytes.len()
        )));
    }
    let mut entries: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / TIME_ENTRY_LEN);
    for chunk in bytes.chunks_exact(TIME_ENTRY_LEN) {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&chunk[..8]);
        let timestamp = i64::from_be_bytes(ts);
        let relative_offset = i32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
        if relative_offset < 0 {
            return Err(IndexProblem::Insane("negative relative offset".into()));
        }
        let entry = TimeEntry {
            timestamp,
            relative_offset: relative_offset as u32,
        };
        if let Some(prev) = entries.last() {
            if entry.timestamp < prev.timestamp || entry.relative_offset < prev.relative_offset {
                return Err(IndexProblem::Insane("entries not monotonic".into()));
            }
        }
        if max_relative_offset.is_some_and(|max| entry.relative_offset > max) {
            return Err(IndexProblem::Insane("offset beyond segment".into()));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Position to start scanning from for `relative_offset`: the entry with the largest offset
/// not above it (binary search), or the segment start.
pub(crate) fn lookup_position(entries: &[OffsetEntry], relative_offset: u32) -> (u32, u32) {
    let idx = entries.partition_point(|e| e.relative_offset <= relative_offset);
    match idx {
        0 => (0, 0),
        i => (entries[i - 1].relative_offset, entries[i - 1].position),
    }
}

/// Relative offset to start a timestamp search from: the last entry whose timestamp is
/// strictly below `timestamp` (every batch up to it is older than the target), if any.
pub(crate) fn lookup_time(entries: &[TimeEntry], timestamp: i64) -> Option<u32> {
    let idx = entries.partition_point(|e| e.timestamp < timestamp);
    idx.checked_sub(1).map(|i| entries[i].relative_offset)
}

/// Writes `bytes` at `pos` of `file`, used to append new index entries in one syscall.
pub(crate) fn write_at(file: &File, bytes: &[u8], pos: u64) -> std::io::Result<()> {
    file.write_all_at(bytes, pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oe(r: u32, p: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset: r,
            position: p,
        }
    }

    #[test]
    fn lookups_are_floor_searches() {
        let idx = [oe(10, 100), oe(20, 200), oe(30, 300)];
        assert_eq!(lookup_position(&idx, 5), (0, 0));
        assert_eq!(lookup_position(&idx, 10), (10, 100));
        assert_eq!(lookup_position(&idx, 29), (20, 200));
        assert_eq!(lookup_position(&idx, 99), (30, 300));
        let t = [
            TimeEntry {
                timestamp: 100,
                relative_offset: 3,
            },
            TimeEntry {
                timestamp: 200,
                relative_offset: 9,
            },
        ];
        assert_eq!(lookup_time(&t, 100), None);
        assert_eq!(lookup_time(&t, 101), Some(3));
        assert_eq!(lookup_time(&t, 1000), Some(9));
    }

    #[test]
    fn sanity_checks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        assert!(matches!(
            load_offset_index(&p, 10),
            Err(IndexProblem::Missing)
        ));
        std::fs::write(&p, encode_offset_entries(&[oe(1, 10), oe(2, 20)])).unwrap();
        assert_eq!(load_offset_index(&p, 100).unwrap().len(), 2);
        assert!(matches!(
            load_offset_index(&p, 20),
            Err(IndexProblem::Insane(_))
        ));
        std::fs::write(&p, encode_offset_entries(&[oe(2, 10), oe(1, 20)])).unwrap();
        assert!(matches!(
            load_offset_index(&p, 100),
            Err(IndexProblem::Insane(_))
        ));
        std::fs::write(&p, [0u8; 7]).unwrap();
        assert!(matches!(
            load_offset_index(&p, 100),
            Err(IndexProblem::Insane(_))
        ));
    }
}

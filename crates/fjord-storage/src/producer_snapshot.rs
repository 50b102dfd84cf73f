//! Producer-state snapshot files (`<offset as 20 digits>.snapshot`) in the partition
//! directory.
//!
//! The broker's producer state (last sequence numbers, open transactions) is rebuilt after a
//! restart by replaying the log; a snapshot taken at some offset lets that replay start
//! there instead of at the log start. The bytes are the broker's business: storage only
//! writes them atomically, keeps the newest two (so a snapshot torn by a crash during its
//! write still leaves an older one, as in Kafka), and ignores snapshots that lie beyond the
//! log end after a truncation, because they describe records that no longer exist.

use std::fs;
use std::path::{Path, PathBuf};

use crate::checkpoint::{sync_dir, write_atomically};
use crate::error::{IoContext, IoVerb};
use crate::segment::{file_name, remove_if_exists};
use crate::StorageError;

/// File suffix of producer-state snapshots.
const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// How many snapshots are kept.
const SNAPSHOTS_KEPT: usize = 2;

/// Parses `00000000000000000042.snapshot` into 42.
fn parse_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Every snapshot file in `dir` with its offset, oldest first.
pub(crate) fn list(dir: &Path) -> Result<Vec<(i64, PathBuf)>, StorageError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).ctx(IoVerb::List, dir)? {
        let entry = entry.ctx(IoVerb::List, dir)?;
        let name = entry.file_name();
        if let Some(offset) = name.to_str().and_then(parse_name) {
            out.push((offset, entry.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes the snapshot for `offset` (temp file, fsync, rename, directory fsync), then
/// deletes all but the newest [`SNAPSHOTS_KEPT`] snapshots.
pub(crate) fn write(dir: &Path, offset: i64, bytes: &[u8]) -> Result<(), StorageError> {
    let path = dir.join(file_name(offset, "snapshot"));
    write_atomically(&path, bytes)?;
    let snapshots = list(dir)?;
    let excess = snapshots.len().saturating_sub(SNAPSHOTS_KEPT);
    for (_, old) in &snapshots[..excess] {
        remove_if_exists(old)?;
    }
    if excess > 0 {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The newest snapshot at or below `max_offset`, with its offset.
pub(crate) fn latest(dir: &Path, max_offset: i64) -> Result<Option<(i64, Vec<u8>)>, StorageError> {
    let snapshots = list(dir)?;
    let Some((offset, path)) = snapshots.into_iter().rev().find(|(o, _)| *o <= max_offset) else {
        return Ok(None);
    };
    let bytes = fs::read(&path).ctx(IoVerb::Read, &path)?;
    Ok(Some((offset, bytes)))
}

/// Deletes snapshots above `max_offset` (after the log was truncated below them); returns
/// whether any was deleted.
pub(crate) fn delete_above(dir: &Path, max_offset: i64) -> Result<bool, StorageError> {
    let mut deleted = false;
    for (offset, path) in list(dir)? {
        if offset > max_offset {
            tracing::warn!(path = %path.display(), max_offset,
                "deleting producer snapshot beyond the log end");
            remove_if_exists(&path)?;
            deleted = true;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twenty_digits() {
        assert_eq!(parse_name("00000000000000000042.snapshot"), Some(42));
        assert_eq!(parse_name("42.snapshot"), None);
        assert_eq!(parse_name("00000000000000000042.snapshot.tmp"), None);
        assert_eq!(parse_name("00000000000000000042.log"), None);
    }
}

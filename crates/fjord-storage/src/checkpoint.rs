//! Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`, `replication-offset-checkpoint`).
//!
//! Format, kept byte-compatible with Kafka so operators' tools and habits carry over:
//!
//! ```text
//! 0                 <- version
//! 2                 <- number of entries
//! orders 0 1042     <- topic partition offset
//! orders 1 977
//! ```
//!
//! Writes are atomic (temp file, fsync, rename, fsync of the directory): a crash leaves
//! either the old or the new file, never a torn one.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, IoVerb};
use crate::StorageError;

/// Version line Kafka writes and accepts.
const VERSION: i64 = 0;

/// Offsets per (topic, partition), ordered so the file is written deterministically.
pub type CheckpointEntries = BTreeMap<(String, i32), i64>;

/// Reads a checkpoint file; a missing file is an empty checkpoint (first start), anything
/// malformed is an error naming the line rather than silently losing offsets.
pub fn read_checkpoint(path: &Path) -> Result<CheckpointEntries, StorageError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(StorageError::io(IoVerb::Read, path, e)),
    };
    parse_checkpoint(path, &text)
}

/// A checkpoint line that cannot be read, naming the file and the 1-based line.
pub(crate) fn corrupt(path: &Path, line: usize, reason: impl Into<String>) -> StorageError {
    StorageError::CorruptCheckpoint {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// Splits one of Kafka's text checkpoints (a version line, an entry count, then one line of
/// `fields` whitespace-separated fields per entry) into each entry's line number and fields.
/// Shared by the recovery-point and leader-epoch checkpoints, which use this layout.
pub(crate) fn read_versioned_lines<'t>(
    path: &Path,
    text: &'t str,
    version: i64,
    fields: usize,
) -> Result<Vec<(usize, Vec<&'t str>)>, StorageError> {
    let mut lines = text.lines();
    let found = lines
        .next()
        .ok_or_else(|| corrupt(path, 1, "missing version"))?;
    if found.trim().parse::<i64>().ok() != Some(version) {
        return Err(corrupt(path, 1, format!("unsupported version {found:?}")));
    }
    let count = lines
        .next()
        .ok_or_else(|| corrupt(path, 2, "missing entry count"))?;
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| corrupt(path, 2, format!("bad entry count {count:?}")))?;
    // The count comes from the file: do not let a corrupt one size an allocation.
    let mut entries = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let line_no = i + 3;
        let line = lines
            .next()
            .ok_or_else(|| corrupt(path, line_no, "fewer entries than declared"))?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() != fields {
            return Err(corrupt(
                path,
                line_no,
                format!("expected {fields} fields: {line:?}"),
            ));
        }
        entries.push((line_no, parts));
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(corrupt(path, count + 3, "more entries than declared"));
    }
    Ok(entries)
}

fn parse_checkpoint(path: &Path, text: &str) -> Result<CheckpointEntries, StorageError> {
    let mut entries = BTreeMap::new();
    for (line_no, fields) in read_versioned_lines(path, text, VERSION, 3)? {
        let (topic, partition, offset) = (fields[0], fields[1], fields[2]);
        let partition: i32 = partition
            .parse()
            .map_err(|_| corrupt(path, line_no, format!("bad partition {partition:?}")))?;
        let offset: i64 = offset
            .parse()
            .map_err(|_| corrupt(path, line_no, format!("bad offset {offset:?}")))?;
        entries.insert((topic.to_owned(), partition), offset);
    }
    Ok(entries)
}

/// Atomically replaces the checkpoint at `path` with `entries`.
pub fn write_checkpoint(path: &Path, entries: &CheckpointEntries) -> Result<(), StorageError> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for ((topic, partition), offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    write_atomically(path, text.as_bytes())
}

/// Writes `contents` to `path` via a synced temp file and a rename, then syncs the directory
/// so the rename itself survives a crash.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .ctx(IoVerb::Create, &tmp)?;
        file.write_all(contents).ctx(IoVerb::Write, &tmp)?;
        file.sync_all().ctx(IoVerb::Sync, &tmp)?;
    }
    fs::rename(&tmp, path).ctx(IoVerb::Rename, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory so file creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .ctx(IoVerb::Open, dir)?
        .sync_all()
        .ctx(IoVerb::Sync, dir)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert!(read_checkpoint(&path).unwrap().is_empty());
        let mut entries = BTreeMap::new();
        entries.insert(("orders".to_owned(), 1), 977);
        entries.insert(("orders".to_owned(), 0), 1042);
        write_checkpoint(&path, &entries).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "0\n2\norders 0 1042\norders 1 977\n"
        );
        assert_eq!(read_checkpoint(&path).unwrap(), entries);
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn rejects_malformed_files() {
        let p = Path::new("cp");
        for (text, line) in [
            ("1\n0\n", 1),
            ("0\nx\n", 2),
            ("0\n2\nt 0 1\n", 4),
            ("0\n1\nt 0\n", 3),
            ("0\n1\nt a 1\n", 3),
            ("0\n1\nt 0 1\nt 1 2\n", 4),
        ] {
            match parse_checkpoint(p, text) {
                Err(StorageError::CorruptCheckpoint { line: l, .. }) => {
                    assert_eq!(l, line, "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}

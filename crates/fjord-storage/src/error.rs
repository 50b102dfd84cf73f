//! Errors of the partition log.
//!
//! Variants name the subject (a path, a batch, an offset) and the verb, so a log line says
//! what failed without a backtrace. Kafka error codes are deliberately absent: the broker maps
//! these at its handler boundary.

use std::fmt;
use std::io;
use std::path::PathBuf;

use fjord_protocol::batch::BatchError;

use crate::AbortedTxn;

/// The file-system operation that failed, so an I/O error reads as "failed to sync
/// /data/t-0/00000000000000000000.log" rather than a bare errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoVerb {
    /// Creating a file or directory.
    Create,
    /// Opening an existing file or directory.
    Open,
    /// Reading file contents.
    Read,
    /// Writing file contents.
    Write,
    /// fsync/fdatasync.
    Sync,
    /// Shrinking a file (recovery, write rollback).
    Truncate,
    /// Deleting a file or directory.
    Remove,
    /// Renaming a file (atomic replace).
    Rename,
    /// Listing a directory.
    List,
    /// Reading file metadata.
    Stat,
}

impl fmt::Display for IoVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self {
            IoVerb::Create => "create",
            IoVerb::Open => "open",
            IoVerb::Read => "read",
            IoVerb::Write => "write",
            IoVerb::Sync => "sync",
            IoVerb::Truncate => "truncate",
            IoVerb::Remove => "remove",
            IoVerb::Rename => "rename",
            IoVerb::List => "list",
            IoVerb::Stat => "stat",
        };
        f.write_str(verb)
    }
}

/// Everything that can go wrong in the storage layer; request errors (bad batches, offsets
/// out of range) and node errors (I/O) are separate variants so the broker can answer the
/// former and alarm on the latter.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file-system operation failed.
    #[error("failed to {verb} {}", path.display())]
    Io {
        /// What was being done.
        verb: IoVerb,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// A batch in an append request is invalid (bad CRC, bad header, not whole); nothing of
    /// the request was written.
    #[error("invalid record batch at byte {position} of the request")]
    CorruptBatch {
        /// Byte position of the batch within the request buffer.
        position: usize,
        /// Why the batch was rejected.
        #[source]
        source: BatchError,
    },
    /// Data read back from a segment file does not parse; the log refuses to serve it.
    #[error("corrupt data in {} at byte {position}", path.display())]
    CorruptSegment {
        /// The segment file.
        path: PathBuf,
        /// Byte position within it.
        position: u64,
        /// What was wrong.
        #[source]
        source: BatchError,
    },
    /// One batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge {
        /// Size of the offending batch.
        size: usize,
        /// Configured limit.
        max: u32,
    },
    /// The whole append is larger than a segment (`segment.bytes`), so it could never be
    /// written as one unit.
    #[error("append of {size} bytes exceeds segment.bytes {max}")]
    RecordListTooLarge {
        /// Size of the append.
        size: usize,
        /// Configured segment size.
        max: u64,
    },
    /// The requested offset is outside `[log_start, log_end]`.
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: i64,
        /// Current log start offset.
        log_start: i64,
        /// Current log end offset.
        log_end: i64,
    },
    /// A follower append does not continue the log: a batch starts below the offset the log
    /// can take next (the log end offset for the first batch, the end of the previous batch
    /// for the others), so it would overlap records already there or run backwards. Nothing
    /// was written. The replica fetcher fetched from the wrong offset or skipped a
    /// truncation: a bug in the caller or the leader, not something to retry as is.
    #[error("follower append of a batch at offset {got} overlaps the log, which continues at {expected}")]
    NonContiguousAppend {
        /// The lowest base offset the batch could have had.
        expected: i64,
        /// The batch's base offset.
        got: i64,
    },
    /// The append request is semantically invalid (e.g. empty).
    #[error("invalid records: {0}")]
    InvalidRecord(String),
    /// A configuration value cannot work (e.g. `segment.bytes` above 2 GiB).
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
    /// An aborted-transaction entry does not fit the log (its abort marker is not in the
    /// log, or it is not after the entries already recorded); nothing was written. This is a
    /// bug in the caller, not in the request of a client.
    #[error(
        "aborted transaction of producer {} at offsets [{}, {}] rejected: {reason}",
        .txn.producer_id, .txn.first_offset, .txn.last_offset
    )]
    InvalidAbortedTxn {
        /// The rejected entry.
        txn: AbortedTxn,
        /// Why it was rejected.
        reason: String,
    },
    /// A checkpoint file does not follow Kafka's format.
    #[error("corrupt checkpoint file {} line {line}: {reason}", path.display())]
    CorruptCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
}

impl StorageError {
    /// Builds an [`StorageError::Io`]; a constructor rather than a `From` impl because the
    /// path and verb are the useful part and `io::Error` does not carry them.
    pub fn io(verb: IoVerb, path: impl Into<PathBuf>, source: io::Error) -> StorageError {
        StorageError::Io {
            verb,
            path: path.into(),
            source,
        }
    }
}

/// Attaches a verb and path to `io::Result`s inside this crate.
pub(crate) trait IoContext<T> {
    fn ctx(self, verb: IoVerb, path: &std::path::Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, verb: IoVerb, path: &std::path::Path) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::io(verb, path, source))
    }
}

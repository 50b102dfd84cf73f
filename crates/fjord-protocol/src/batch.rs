//! Record batch (magic v2) views.
//!
//! Kafka stores and ships records in batches exactly as the producer built them; the broker
//! only checks them and patches a few header fields in place. This module therefore works on
//! plain byte slices: it reads the 61-byte header, checks a whole batch (length, magic, CRC-32C,
//! codec), walks concatenated batches, and rewrites the fields the broker owns (base offset,
//! partition leader epoch, log-append time). Nothing here copies record data on the hot path.
//!
//! ```text
//!  offset  size  field                  covered by CRC
//!  0       8     baseOffset             no  (assigned by the broker)
//!  8       4     batchLength            no  (bytes after this field)
//!  12      4     partitionLeaderEpoch   no  (assigned by the broker)
//!  16      1     magic (= 2)            no
//!  17      4     crc (CRC-32C)          -
//!  21      2     attributes             yes
//!  23      4     lastOffsetDelta        yes
//!  27      8     baseTimestamp          yes
//!  35      8     maxTimestamp           yes
//!  43      8     producerId             yes
//!  51      2     producerEpoch          yes
//!  53      4     baseSequence           yes
//!  57      4     recordsCount           yes
//!  61      ..    records                yes
//! ```
//!
//! Record-level encoding and decoding (used by tests, compaction and the broker's own internal
//! records) lives in [`record`](self::record) and is re-exported here.

mod record;

pub(crate) use record::{assemble_batch, decode_record_section, encode_record, AssembleSpec};
pub use record::{build_batch, decode_records, BatchSpec, Record, RecordHeader, RecordSpec};

/// Size of the fixed v2 batch header; every batch is at least this long, so reading this many
/// bytes is always enough to learn where the batch ends.
pub const BATCH_HEADER_LEN: usize = 61;

/// Bytes before `batchLength` starts counting (baseOffset + batchLength itself); a batch's
/// total size on disk or on the wire is `batchLength + LOG_OVERHEAD`.
pub const LOG_OVERHEAD: usize = 12;

/// Smallest legal `batchLength`: the header minus the log overhead, i.e. a batch with no
/// records. Anything shorter cannot hold the fields the CRC covers.
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;

/// The only record-batch format Fjord accepts (Kafka 0.11+); older message sets are refused.
pub const MAGIC_V2: i8 = 2;

/// Byte position of `baseOffset`, which the broker rewrites on append.
pub const BASE_OFFSET_POS: usize = 0;
/// Byte position of `batchLength`.
pub const BATCH_LENGTH_POS: usize = 8;
/// Byte position of `partitionLeaderEpoch`, which the leader stamps on append.
pub const PARTITION_LEADER_EPOCH_POS: usize = 12;
/// Byte position of `magic`.
pub const MAGIC_POS: usize = 16;
/// Byte position of the stored CRC-32C.
pub const CRC_POS: usize = 17;
/// First byte covered by the CRC (the attributes field); everything before it may be
/// rewritten by the broker without recomputing the checksum.
pub const ATTRIBUTES_POS: usize = 21;
/// Byte position of `lastOffsetDelta`.
pub const LAST_OFFSET_DELTA_POS: usize = 23;
/// Byte position of `baseTimestamp`.
pub const BASE_TIMESTAMP_POS: usize = 27;
/// Byte position of `maxTimestamp`, rewritten for LogAppendTime topics.
pub const MAX_TIMESTAMP_POS: usize = 35;
/// Byte position of `producerId`.
pub const PRODUCER_ID_POS: usize = 43;
/// Byte position of `producerEpoch`.
pub const PRODUCER_EPOCH_POS: usize = 51;
/// Byte position of `baseSequence`.
pub const BASE_SEQUENCE_POS: usize = 53;
/// Byte position of `recordsCount`.
pub const RECORDS_COUNT_POS: usize = 57;

/// Attribute bits 0-2: the compression codec of the records section.
const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: set when timestamps are the broker's append time.
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attribute bit 4: the batch belongs to a transaction.
const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit 5: the batch holds a control record (commit/abort marker).
const CONTROL_BIT: i16 = 0x20;

/// Why a byte slice is not a usable v2 record batch.
///
/// Kept small and allocation-free: [`BatchError::Incomplete`] is returned on the hot path of
/// framing and log recovery, where "need more bytes" is an ordinary outcome, not a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The buffer ends before the batch does; `needed` is the total number of bytes the buffer
    /// must hold (from its start) to make progress.
    #[error("incomplete record batch: {needed} bytes needed")]
    Incomplete {
        /// Total bytes required from the start of the buffer.
        needed: usize,
    },
    /// The stored checksum does not match the bytes: corruption in flight or on disk.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CorruptCrc {
        /// CRC found in the header.
        stored: u32,
        /// CRC computed over attributes..end.
        computed: u32,
    },
    /// Only magic v2 batches are supported.
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    UnsupportedMagic(i8),
    /// `batchLength` is negative or too small to hold a v2 header.
    #[error("invalid record batch length {0}")]
    InvalidLength(i32),
    /// The buffer holds more bytes than the batch header declares (a single batch was
    /// expected).
    #[error("record batch declares {declared} bytes but {actual} were given")]
    LengthMismatch {
        /// Size computed from `batchLength`.
        declared: usize,
        /// Size of the buffer.
        actual: usize,
    },
    /// Attribute bits 0-2 name no known codec.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
    /// `recordsCount` is negative.
    #[error("invalid records count {0}")]
    InvalidRecordCount(i32),
    /// `lastOffsetDelta` is negative.
    #[error("invalid last offset delta {0}")]
    InvalidLastOffsetDelta(i32),
    /// Record-level decoding of compressed batches is not implemented yet.
    #[error("cannot decode records of a {0:?}-compressed batch")]
    CompressedRecords(Compression),
    /// The records section does not parse as `recordsCount` v2 records.
    #[error("malformed record {index}: {reason}")]
    MalformedRecord {
        /// Zero-based index of the record within the batch.
        index: usize,
        /// What was wrong, for logs.
        reason: &'static str,
    },
}

/// Compression codec of a batch's records section, with Kafka's codec ids (attribute bits
/// 0-2), so stored batches can be described without decompressing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Codec id 0.
    None = 0,
    /// Codec id 1.
    Gzip = 1,
    /// Codec id 2.
    Snappy = 2,
    /// Codec id 3.
    Lz4 = 3,
    /// Codec id 4.
    Zstd = 4,
}

impl Compression {
    /// Maps a Kafka codec id to a codec; ids 5-7 are reserved and rejected.
    pub fn from_id(id: i16) -> Result<Compression, BatchError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }

    /// The Kafka codec id, as stored in attribute bits 0-2 and used in topic configs.
    pub fn id(self) -> i16 {
        self as i16
    }
}

/// Which clock the batch's timestamps come from (attribute bit 3); topics configure it with
/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Timestamps set by the producer (Kafka's default).
    #[default]
    CreateTime,
    /// Timestamps replaced by the broker's clock at append; `maxTimestamp` holds it.
    LogAppendTime,
}

/// The decoded fixed header of a v2 batch; a copy (61 bytes of fields) so callers can keep it
/// after the buffer moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the broker on append).
    pub base_offset: i64,
    /// Bytes following the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 for a parsed header.
    pub magic: i8,
    /// Stored CRC-32C of attributes..end.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record; record timestamps are deltas from it.
    pub base_timestamp: i64,
    /// Largest record timestamp (or the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 if none.
    pub base_sequence: i32,
    /// Number of records in the batch (may be below `last_offset_delta + 1` after compaction).
    pub records_count: i32,
}

impl BatchHeader {
    /// Offset of the last record in the batch; the next batch starts at `last_offset() + 1`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// Total bytes the batch occupies, header included (`batch_length + LOG_OVERHEAD`).
    pub fn total_size(&self) -> usize {
        // batch_length is checked to be >= MIN_BATCH_LENGTH when the header is parsed; a
        // hand-built header with a negative length reports just the overhead.
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }

    /// The codec of the records section; an error for reserved codec ids.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id(self.attributes & COMPRESSION_MASK)
    }

    /// Whether record timestamps are producer create times or the broker's append time.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch is part of a transaction (read_committed consumers care).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch carries control records (transaction markers) rather than user data.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether the producer id field names a producer (idempotent or transactional writes).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

#[inline]
fn read_i64(buf: &[u8], pos: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[pos..pos + 8]);
    i64::from_be_bytes(b)
}

#[inline]
fn read_i32(buf: &[u8], pos: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[pos..pos + 4]);
    i32::from_be_bytes(b)
}

#[inline]
fn read_i16(buf: &[u8], pos: usize) -> i16 {
    i16::from_be_bytes([buf[pos], buf[pos + 1]])
}

/// Reads `batchLength` and `magic` from a possibly short prefix, so a torn tail can be told
/// apart from garbage as early as the bytes allow. Returns the total batch size if known.
fn check_prefix(buf: &[u8]) -> Result<Option<usize>, BatchError> {
    if buf.len() < LOG_OVERHEAD {
        return Ok(None);
    }
    let batch_length = read_i32(buf, BATCH_LENGTH_POS);
    if batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::InvalidLength(batch_length));
    }
    if buf.len() > MAGIC_POS {
        let magic = buf[MAGIC_POS] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
    }
    // batch_length >= MIN_BATCH_LENGTH > 0, so the cast cannot wrap.
    Ok(Some(batch_length as usize + LOG_OVERHEAD))
}

/// Parses the fixed 61-byte header at the start of `buf` (only those bytes are needed).
///
/// Checks what is required to know the layout and where the batch ends: `batchLength` is at
/// least a bare header and magic is 2. The CRC is not checked; use [`validate_batch`] for
/// bytes from an untrusted source.
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    check_prefix(buf)?;
    if buf.len() < BATCH_HEADER_LEN {
        return Err(BatchError::Incomplete {
            needed: BATCH_HEADER_LEN,
        });
    }
    Ok(BatchHeader {
        base_offset: read_i64(buf, BASE_OFFSET_POS),
        batch_length: read_i32(buf, BATCH_LENGTH_POS),
        partition_leader_epoch: read_i32(buf, PARTITION_LEADER_EPOCH_POS),
        magic: buf[MAGIC_POS] as i8,
        crc: read_i32(buf, CRC_POS) as u32,
        attributes: read_i16(buf, ATTRIBUTES_POS),
        last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA_POS),
        base_timestamp: read_i64(buf, BASE_TIMESTAMP_POS),
        max_timestamp: read_i64(buf, MAX_TIMESTAMP_POS),
        producer_id: read_i64(buf, PRODUCER_ID_POS),
        producer_epoch: read_i16(buf, PRODUCER_EPOCH_POS),
        base_sequence: read_i32(buf, BASE_SEQUENCE_POS),
        records_count: read_i32(buf, RECORDS_COUNT_POS),
    })
}

/// Computes the CRC-32C Kafka stores for a whole batch (attributes..end).
///
/// `batch` must be at least [`BATCH_HEADER_LEN`] long; shorter input hashes what is there.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_POS..).unwrap_or(&[]))
}

/// Checks that `batch` is exactly one whole, intact v2 batch and returns its header.
///
/// Checked, in order: enough bytes, magic 2, `batchLength` >= 49, exact length, CRC-32C,
/// known codec, `recordsCount` >= 0, `lastOffsetDelta` >= 0. Kafka does not require
/// `recordsCount == lastOffsetDelta + 1` (compaction leaves gaps), so neither do we; timestamp
/// policy (e.g. `message.timestamp.difference.max.ms`) is left to the caller.
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = parse_header(batch)?;
    let declared = header.total_size();
    if batch.len() < declared {
        return Err(BatchError::Incomplete { needed: declared });
    }
    if batch.len() > declared {
        return Err(BatchError::LengthMismatch {
            declared,
            actual: batch.len(),
        });
    }
    check_crc_and_fields(&header, batch)?;
    Ok(header)
}

/// The checks of [`validate_batch`] that need the whole batch, given its parsed header.
fn check_crc_and_fields(header: &BatchHeader, batch: &[u8]) -> Result<(), BatchError> {
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CorruptCrc {
            stored: header.crc,
            computed,
        });
    }
    header.compression()?;
    if header.records_count < 0 {
        return Err(BatchError::InvalidRecordCount(header.records_count));
    }
    if header.last_offset_delta < 0 {
        return Err(BatchError::InvalidLastOffsetDelta(header.last_offset_delta));
    }
    Ok(())
}

/// How a [`BatchIter`] stopped, so callers can tell a torn write (wait for more bytes, or
/// truncate during recovery) from garbage (reject the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchIterEnd {
    /// Still iterating, or every byte was consumed by whole batches.
    Clean,
    /// The remaining bytes are the beginning of a batch that is not whole; `needed` is how
    /// many bytes (counted from the start of that batch) the whole batch would take, as far
    /// as the available prefix tells.
    Incomplete {
        /// Bytes the trailing batch needs in total.
        needed: usize,
    },
    /// A batch failed validation; the iterator yielded that error and stopped.
    Corrupt,
}

/// Walks zero or more concatenated batches in a byte slice without copying.
///
/// Yields `(header, batch_bytes)` for every whole batch, `Err` once for a corrupt batch (then
/// stops), and stops without an error at a partial trailing batch: a request buffer or a
/// segment tail may legitimately end mid-batch, and the caller decides what that means via
/// [`BatchIter::end`] and [`BatchIter::consumed`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    verify_crc: bool,
    end: BatchIterEnd,
    done: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterates with full validation ([`validate_batch`]) of every batch.
    pub fn new(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            buf,
            pos: 0,
            verify_crc: true,
            end: BatchIterEnd::Clean,
            done: false,
        }
    }

    /// Iterates checking only headers (length and magic), for bytes already validated once,
    /// e.g. batches read back from the log to locate an offset.
    pub fn headers_only(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            verify_crc: false,
            ..BatchIter::new(buf)
        }
    }

    /// Bytes covered by the whole batches yielded so far (and thus the position of the next
    /// batch, or of the incomplete or corrupt tail once iteration stopped).
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// The bytes not consumed by yielded batches.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Why iteration stopped (or [`BatchIterEnd::Clean`] while it is still going).
    pub fn end(&self) -> BatchIterEnd {
        self.end
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        let header = match parse_header(rest) {
            Ok(header) => header,
            Err(BatchError::Incomplete { .. }) => {
                // A short prefix: report the whole batch size if batchLength was readable.
                let needed = match check_prefix(rest) {
                    Ok(Some(total)) => total.max(BATCH_HEADER_LEN),
                    _ => BATCH_HEADER_LEN,
                };
                self.end = BatchIterEnd::Incomplete { needed };
                self.done = true;
                return None;
            }
            Err(e) => {
                self.end = BatchIterEnd::Corrupt;
                self.done = true;
                return Some(Err(e));
            }
        };
        let total = header.total_size();
        if rest.len() < total {
            self.end = BatchIterEnd::Incomplete { needed: total };
            self.done = true;
            return None;
        }
        let batch = &rest[..total];
        if self.verify_crc {
            if let Err(e) = check_crc_and_fields(&header, batch) {
                self.end = BatchIterEnd::Corrupt;
                self.done = true;
                return Some(Err(e));
            }
        }
        self.pos += total;
        Some(Ok((header, batch)))
    }
}

fn ensure_header(batch: &[u8]) -> Result<(), BatchError> {
    if batch.len() < BATCH_HEADER_LEN {
        return Err(BatchError::Incomplete {
            needed: BATCH_HEADER_LEN,
        });
    }
    Ok(())
}

/// Rewrites `baseOffset` in place. The field is outside the CRC, so this is a plain 8-byte
/// store; it is how the broker assigns offsets without touching the records.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    ensure_header(batch)?;
    batch[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Rewrites `partitionLeaderEpoch` in place (outside the CRC), so followers and
/// OffsetForLeaderEpoch can tell which leader appended a batch.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    ensure_header(batch)?;
    batch[PARTITION_LEADER_EPOCH_POS..PARTITION_LEADER_EPOCH_POS + 4]
        .copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Marks a whole batch as LogAppendTime with `timestamp_ms` as its max timestamp and
/// recomputes the CRC, like Kafka's `setMaxTimestamp(LOG_APPEND_TIME, ts)`: consumers then
/// read the append time for every record of the batch. A no-op (no CRC pass) if the batch
/// already carries exactly that type and timestamp.
///
/// `batch` must be exactly one whole batch (its length is checked against the header).
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) -> Result<(), BatchError> {
    let header = parse_header(batch)?;
    let declared = header.total_size();
    if batch.len() < declared {
        return Err(BatchError::Incomplete { needed: declared });
    }
    if batch.len() > declared {
        return Err(BatchError::LengthMismatch {
            declared,
            actual: batch.len(),
        });
    }
    if header.timestamp_type() == TimestampType::LogAppendTime
        && header.max_timestamp == timestamp_ms
    {
        return Ok(());
    }
    let attributes = header.attributes | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests;

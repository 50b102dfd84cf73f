//! Record-level encoding and decoding of uncompressed v2 batches.
//!
//! The broker never needs this on the produce/fetch path (batches are stored as sent); it is
//! for tests, for the broker's own internal records (offsets, transaction markers) and for
//! compaction, which must look at keys. Compressed batches are decoded and built by
//! [`crate::compression`], which reuses the record codec here.
//!
//! Record layout (lengths are zigzag varints, timestamp delta a zigzag varlong):
//! `length, attributes i8, timestampDelta, offsetDelta, keyLen, key, valueLen, value,
//! headerCount, [headerKeyLen, headerKey, headerValueLen, headerValue]*`.

use super::{
    compute_crc, validate_batch, BatchError, BatchHeader, Compression, TimestampType,
    BATCH_HEADER_LEN, CONTROL_BIT, CRC_POS, LOG_OVERHEAD, MAGIC_V2, TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
};

/// A record header (Kafka: a `String` key and a nullable byte value), carried through
/// untouched so producers' metadata survives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// Header name.
    pub key: String,
    /// Header value; `None` is Kafka's null.
    pub value: Option<Vec<u8>>,
}

/// A record to put into a batch built by [`build_batch`]; offsets are assigned in order
/// (offset delta = position in the slice).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordSpec {
    /// Absolute timestamp in ms; stored as a delta from the batch's base timestamp.
    pub timestamp: i64,
    /// Record key; `None` is Kafka's null (not compactable).
    pub key: Option<Vec<u8>>,
    /// Record value; `None` is a tombstone on compacted topics.
    pub value: Option<Vec<u8>>,
    /// Record headers, in order.
    pub headers: Vec<RecordHeader>,
}

/// Batch-level fields for [`build_batch`]; `Default` is a plain non-idempotent,
/// non-transactional CreateTime batch at offset 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    /// Base offset to write (brokers usually overwrite it on append).
    pub base_offset: i64,
    /// Partition leader epoch to write (-1 when unknown, as producers send it).
    pub partition_leader_epoch: i32,
    /// Producer id, -1 for none.
    pub producer_id: i64,
    /// Producer epoch, -1 for none.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 for none.
    pub base_sequence: i32,
    /// Sets the transactional attribute bit.
    pub is_transactional: bool,
    /// Sets the control attribute bit (transaction markers).
    pub is_control: bool,
    /// Timestamp type bit; with LogAppendTime the max timestamp is still computed from the
    /// records (the broker overwrites it on append).
    pub timestamp_type: TimestampType,
}

impl Default for BatchSpec {
    fn default() -> Self {
        BatchSpec {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            is_transactional: false,
            is_control: false,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

/// A decoded record with its absolute offset and timestamp, for compaction and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset (batch base offset + offset delta).
    pub offset: i64,
    /// Effective timestamp: the batch max timestamp for LogAppendTime batches, otherwise
    /// base timestamp + delta.
    pub timestamp: i64,
    /// Record attributes byte (unused by Kafka today, carried for fidelity).
    pub attributes: i8,
    /// Offset delta as stored.
    pub offset_delta: i32,
    /// Timestamp delta as stored.
    pub timestamp_delta: i64,
    /// Key; `None` is null.
    pub key: Option<Vec<u8>>,
    /// Value; `None` is null (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<RecordHeader>,
}

fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_varlong(out, i64::from(v));
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn varlong_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, len_i32(b.len()));
            out.extend_from_slice(b);
        }
    }
}

fn len_i32(len: usize) -> i32 {
    // A record field cannot exceed i32::MAX bytes in Kafka's format; saturate rather than wrap
    // so an absurd input produces an invalid batch instead of a misleading one.
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Encodes `records` as one uncompressed v2 batch with a correct CRC.
///
/// Used by tests and for records the broker writes itself; producers' batches are never
/// re-encoded. The base timestamp is the first record's timestamp (as Kafka's producer does),
/// the max timestamp the largest record timestamp; an empty batch gets -1 for both.
pub fn build_batch(spec: &BatchSpec, records: &[RecordSpec]) -> Vec<u8> {
    let base_timestamp = records.first().map_or(-1, |r| r.timestamp);
    let max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + records.len() * 16);
    out.extend_from_slice(&spec.base_offset.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // batchLength, patched below
    out.extend_from_slice(&spec.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
    let mut attributes = Compression::None.id();
    if spec.timestamp_type == TimestampType::LogAppendTime {
        attributes |= TIMESTAMP_TYPE_BIT;
    }
    if spec.is_transactional {
        attributes |= TRANSACTIONAL_BIT;
    }
    if spec.is_control {
        attributes |= CONTROL_BIT;
    }
    out.extend_from_slice(&attributes.to_be_bytes());
    let last_offset_delta = len_i32(records.len().saturating_sub(1));
    out.extend_from_slice(&last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&spec.producer_id.to_be_bytes());
    out.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    out.extend_from_slice(&spec.base_sequence.to_be_bytes());
    out.extend_from_slice(&len_i32(records.len()).to_be_bytes());
    debug_assert_eq!(out.len(), BATCH_HEADER_LEN);

    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        body.clear();
        body.push(0); // record attributes
        put_varlong(&mut body, r.timestamp.wrapping_sub(base_timestamp));
        put_varint(&mut body, len_i32(i));
        put_bytes(&mut body, r.key.as_deref());
        put_bytes(&mut body, r.value.as_deref());
        put_varint(&mut body, len_i32(r.headers.len()));
        for h in &r.headers {
            put_bytes(&mut body, Some(h.key.as_bytes()));
            put_bytes(&mut body, h.value.as_deref());
        }
        out.reserve(varlong_len(body.len() as i64) + body.len());
        put_varint(&mut out, len_i32(body.len()));
        out.extend_from_slice(&body);
    }

    let batch_length = len_i32(out.len() - LOG_OVERHEAD);
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = compute_crc(&out);
    out[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A bounds-checked cursor over a record's bytes; every read returns `None` past the end so
/// corrupt input becomes an error, never a panic.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn varlong(&mut self, max_bytes: usize) -> Option<i64> {
        let mut z: u64 = 0;
        for i in 0..max_bytes {
            let b = self.u8()?;
            z |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        None
    }

    fn varint(&mut self) -> Option<i32> {
        i32::try_from(self.varlong(5)?).ok()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// A varint length then that many bytes; -1 is null, other negatives are invalid.
    fn nullable_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.varint()?;
        if len == -1 {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        Some(Some(self.take(len)?))
    }
}

/// Decodes every record of one whole, uncompressed batch (after full validation, CRC
/// included, so corrupt bytes from disk are never interpreted).
///
/// Returns [`BatchError::CompressedRecords`] for compressed batches; use
/// [`crate::compression::decode_records_any`] for those.
pub fn decode_records(batch: &[u8]) -> Result<Vec<Record>, BatchError> {
    let header = validate_batch(batch)?;
    let compression = header.compression()?;
    if compression != Compression::None {
        return Err(BatchError::CompressedRecords(compression));
    }
    decode_record_section(&header, &batch[BATCH_HEADER_LEN..])
}

/// Parses `header.records_count` records from an uncompressed records section (the bytes
/// after the header, or the decompressed payload of a compressed batch). The caller has
/// validated `header`.
pub(crate) fn decode_record_section(
    header: &BatchHeader,
    section: &[u8],
) -> Result<Vec<Record>, BatchError> {
    let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
    let mut cursor = Cursor {
        buf: section,
        pos: 0,
    };
    // records_count was validated non-negative; cap the pre-allocation by what the bytes can
    // hold (a record is at least 7 bytes) so a lying count cannot exhaust memory.
    let count = usize::try_from(header.records_count)
        .map_err(|_| BatchError::InvalidRecordCount(header.records_count))?;
    let mut records = Vec::with_capacity(count.min(cursor.buf.len() / 7 + 1));
    for index in 0..count {
        let malformed = |reason| BatchError::MalformedRecord { index, reason };
        let len = cursor.varint().ok_or(malformed("bad length varint"))?;
        let len = usize::try_from(len).map_err(|_| malformed("negative length"))?;
        let body = cursor
            .take(len)
            .ok_or(malformed("length past end of batch"))?;
        let mut rc = Cursor { buf: body, pos: 0 };
        let attributes = rc.u8().ok_or(malformed("truncated attributes"))? as i8;
        let timestamp_delta = rc.varlong(10).ok_or(malformed("bad timestamp delta"))?;
        let offset_delta = rc.varint().ok_or(malformed("bad offset delta"))?;
        let key = rc.nullable_bytes().ok_or(malformed("bad key"))?;
        let value = rc.nullable_bytes().ok_or(malformed("bad value"))?;
        let header_count = rc.varint().ok_or(malformed("bad header count"))?;
        let header_count =
            usize::try_from(header_count).map_err(|_| malformed("negative header count"))?;
        let mut headers = Vec::with_capacity(header_count.min(body.len()));
        for _ in 0..header_count {
            let hkey = rc
                .nullable_bytes()
                .ok_or(malformed("bad header key"))?
                .ok_or(malformed("null header key"))?;
            let hkey = std::str::from_utf8(hkey).map_err(|_| malformed("header key not UTF-8"))?;
            let hvalue = rc.nullable_bytes().ok_or(malformed("bad header value"))?;
            headers.push(RecordHeader {
                key: hkey.to_owned(),
                value: hvalue.map(<[u8]>::to_vec),
            });
        }
        if rc.pos != body.len() {
            return Err(malformed("trailing bytes in record"));
        }
        let timestamp = if log_append_time {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(timestamp_delta)
        };
        records.push(Record {
            offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp,
            attributes,
            offset_delta,
            timestamp_delta,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers,
        });
    }
    if cursor.pos != cursor.buf.len() {
        return Err(BatchError::MalformedRecord {
            index: count,
            reason: "trailing bytes after last record",
        });
    }
    Ok(records)
}

/// Header fields of a batch assembled around an already-encoded (possibly compressed)
/// records section, for builders that control offsets and codecs themselves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AssembleSpec {
    pub(crate) spec: BatchSpec,
    pub(crate) compression: Compression,
    pub(crate) last_offset_delta: i32,
    pub(crate) base_timestamp: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) records_count: i32,
}

/// Writes the 61-byte header described by `a`, then `section`, and fills in batchLength and
/// the CRC.
pub(crate) fn assemble_batch(a: &AssembleSpec, section: &[u8]) -> Vec<u8> {
    let spec = &a.spec;
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + section.len());
    out.extend_from_slice(&spec.base_offset.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // batchLength, patched below
    out.extend_from_slice(&spec.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
    let mut attributes = a.compression.id();
    if spec.timestamp_type == TimestampType::LogAppendTime {
        attributes |= TIMESTAMP_TYPE_BIT;
    }
    if spec.is_transactional {
        attributes |= TRANSACTIONAL_BIT;
    }
    if spec.is_control {
        attributes |= CONTROL_BIT;
    }
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&a.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&a.base_timestamp.to_be_bytes());
    out.extend_from_slice(&a.max_timestamp.to_be_bytes());
    out.extend_from_slice(&spec.producer_id.to_be_bytes());
    out.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    out.extend_from_slice(&spec.base_sequence.to_be_bytes());
    out.extend_from_slice(&a.records_count.to_be_bytes());
    debug_assert_eq!(out.len(), BATCH_HEADER_LEN);
    out.extend_from_slice(section);
    let batch_length = len_i32(out.len() - LOG_OVERHEAD);
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = compute_crc(&out);
    out[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Appends one length-prefixed record to a records section; `scratch` is reused between
/// calls to avoid an allocation per record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[RecordHeader],
) {
    scratch.clear();
    scratch.push(attributes as u8);
    put_varlong(scratch, timestamp_delta);
    put_varint(scratch, offset_delta);
    put_bytes(scratch, key);
    put_bytes(scratch, value);
    put_varint(scratch, len_i32(headers.len()));
    for h in headers {
        put_bytes(scratch, Some(h.key.as_bytes()));
        put_bytes(scratch, h.value.as_deref());
    }
    put_varint(out, len_i32(scratch.len()));
    out.extend_from_slice(scratch);
}

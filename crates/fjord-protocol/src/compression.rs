//! Compression codecs of v2 record batches, and record-level decoding and encoding of
//! compressed batches.
//!
//! The broker never decompresses on the produce/fetch path (batches are stored as sent);
//! this is for the log cleaner, which must see keys, for timestamp lookups and for tools.
//!
//! ```text
//!  codec   id  wire format (what Kafka's Java client and librdkafka write)
//!  gzip     1  RFC 1952 gzip stream (concatenated members accepted)
//!  snappy   2  xerial framing: "\x82SNAPPY\0" + version i32 + compat i32, then
//!              [len i32 | raw snappy block]*; raw (unframed) snappy accepted on decode
//!  lz4      3  LZ4 frame format (64 KiB independent blocks on encode)
//!  zstd     4  zstd frame(s)
//! ```
//!
//! Every decoder takes an output limit and fails with [`CompressionError::TooLarge`] rather
//! than allocate past it: a few KiB of zeros compress to gigabytes (decompression bomb).
//!
//! ```
//! use fjord_protocol::batch::{BatchSpec, Compression, RecordSpec};
//! use fjord_protocol::compression::{build_compressed_batch, decode_records_any, DEFAULT_MAX_DECOMPRESSED_BYTES};
//!
//! let record = RecordSpec { timestamp: 5, key: Some(b"k".to_vec()), value: Some(b"v".to_vec()), ..Default::default() };
//! let batch = build_compressed_batch(&BatchSpec::default(), Compression::Zstd, &[record]).unwrap();
//! let records = decode_records_any(&batch, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap();
//! assert_eq!(records[0].value.as_deref(), Some(&b"v"[..]));
//! ```

use std::io::{Read, Write};

use crate::batch::{
    assemble_batch, decode_record_section, encode_record, validate_batch, AssembleSpec, BatchError,
    BatchSpec, Compression, Record, RecordSpec, TimestampType, BATCH_HEADER_LEN,
};

/// Output limit for callers without a better one (Kafka's broker has no explicit limit;
/// 64 MiB is far above any sane `max.message.bytes` times a typical compression ratio).
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// Magic bytes opening a xerial-framed snappy stream (Java's `SnappyOutputStream`).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic + version (i32) + compatible version (i32).
const XERIAL_HEADER_LEN: usize = 16;
/// Version and minimum compatible version the Java client writes.
const XERIAL_VERSION: i32 = 1;
/// Uncompressed bytes per xerial block (Java's default block size).
const XERIAL_BLOCK_LEN: usize = 32 * 1024;
/// zstd level used when Fjord itself compresses (the producers' default).
const ZSTD_LEVEL: i32 = 3;
/// Largest zstd window accepted (2^27, zstd's own default limit; Kafka clients at their
/// default level use 2^21).
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Why a payload could not be compressed or decompressed, or a batch not built or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The payload would decompress to more than the caller's limit.
    #[error("{codec:?} payload decompresses to more than {limit} bytes")]
    TooLarge {
        /// Codec of the payload.
        codec: Compression,
        /// The limit that was hit.
        limit: usize,
    },
    /// The payload is not valid for its codec.
    #[error("corrupt {codec:?} payload: {reason}")]
    Corrupt {
        /// Codec of the payload.
        codec: Compression,
        /// Decoder message, for logs.
        reason: String,
    },
    /// The encoder failed (only on allocation-level failures in practice).
    #[error("{codec:?} compression failed: {reason}")]
    Encode {
        /// Codec requested.
        codec: Compression,
        /// Encoder message, for logs.
        reason: String,
    },
    /// Records given to a builder cannot form a batch (offsets not increasing, too far
    /// apart, or below the base offset).
    #[error("cannot build batch: {0}")]
    InvalidRecords(&'static str),
    /// The batch itself (header, CRC, records section) is invalid.
    #[error(transparent)]
    Batch(#[from] BatchError),
}

fn corrupt(codec: Compression, reason: impl ToString) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        reason: reason.to_string(),
    }
}

/// Reads `reader` to the end, refusing more than `limit` bytes.
fn read_bounded(
    codec: Compression,
    reader: impl Read,
    limit: usize,
    size_hint: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::with_capacity(size_hint.min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge { codec, limit });
    }
    Ok(out)
}

/// Decompresses a batch's records section encoded with `codec`, producing at most `limit`
/// bytes. `Compression::None` returns a copy of the input (still bounded).
pub fn decompress(
    codec: Compression,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, CompressionError> {
    let hint = input.len().saturating_mul(4);
    match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(CompressionError::TooLarge { codec, limit });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => {
            read_bounded(codec, flate2::read::MultiGzDecoder::new(input), limit, hint)
        }
        Compression::Snappy => decompress_snappy(input, limit),
        Compression::Lz4 => read_bounded(
            codec,
            lz4_flex::frame::FrameDecoder::new(input),
            limit,
            hint,
        ),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| corrupt(codec, e))?;
            // Streaming producers (zstd-jni, librdkafka) do not know the content size, so the
            // window follows the level, not the output; cap it at zstd's own default.
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, decoder, limit, hint)
        }
    }
}

/// Snappy as Kafka clients write it: xerial-framed (Java, librdkafka) or raw.
fn decompress_snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    if !input.starts_with(&XERIAL_MAGIC) || input.len() < XERIAL_HEADER_LEN {
        let mut out = Vec::new();
        snappy_raw_block(input, limit, &mut out)?;
        return Ok(out);
    }
    let mut out = Vec::new();
    let mut pos = XERIAL_HEADER_LEN;
    while pos < input.len() {
        let len_bytes = input
            .get(pos..pos + 4)
            .ok_or_else(|| corrupt(codec, "truncated xerial block length"))?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let len =
            usize::try_from(len).map_err(|_| corrupt(codec, "negative xerial block length"))?;
        pos += 4;
        let block = pos
            .checked_add(len)
            .and_then(|end| input.get(pos..end))
            .ok_or_else(|| corrupt(codec, "xerial block past end of payload"))?;
        snappy_raw_block(block, limit, &mut out)?;
        pos += len;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its declared length against what is left
/// of `limit` before allocating.
fn snappy_raw_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    if len > limit.saturating_sub(out.len()) {
        return Err(CompressionError::TooLarge { codec, limit });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(codec, e))?;
    out.truncate(start + written);
    Ok(())
}

/// Compresses a records section with `codec`, in the framing Kafka's Java client writes, so
/// every Kafka consumer can read the result.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let encode = |e: std::io::Error| CompressionError::Encode {
        codec,
        reason: e.to_string(),
    };
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 2 + 32),
                flate2::Compression::default(),
            );
            enc.write_all(input).map_err(encode)?;
            enc.finish().map_err(encode)
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + input.len() / 2 + 16);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
            out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in input.chunks(XERIAL_BLOCK_LEN) {
                let block = encoder
                    .compress_vec(chunk)
                    .map_err(|e| CompressionError::Encode {
                        codec,
                        reason: e.to_string(),
                    })?;
                // A 32 KiB chunk compresses to well under 2 GiB.
                out.extend_from_slice(&(block.len() as i32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(input.len() / 2 + 32),
            );
            enc.write_all(input).map_err(encode)?;
            enc.finish().map_err(|e| CompressionError::Encode {
                codec,
                reason: e.to_string(),
            })
        }
        Compression::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL).map_err(encode),
    }
}

/// Decodes every record of one whole batch, compressed or not, after full validation (CRC
/// included). The decompressed records section may be at most `max_decompressed_bytes`.
pub fn decode_records_any(
    batch: &[u8],
    max_decompressed_bytes: usize,
) -> Result<Vec<Record>, CompressionError> {
    let header = validate_batch(batch)?;
    let codec = header.compression()?;
    let section = &batch[BATCH_HEADER_LEN..];
    if codec == Compression::None {
        return Ok(decode_record_section(&header, section)?);
    }
    let plain = decompress(codec, section, max_decompressed_bytes)?;
    Ok(decode_record_section(&header, &plain)?)
}

/// Batch-level fields for [`build_batch_at_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetBatchSpec {
    /// Base offset, epoch, producer fields, flags and timestamp type.
    pub batch: BatchSpec,
    /// Codec of the records section.
    pub compression: Compression,
    /// `lastOffsetDelta` to write when it must cover more than the last record (Kafka's
    /// cleaner keeps the original batch's last offset so producer sequence state and
    /// consumers' next-fetch positions survive compaction); `None` is the last record's
    /// delta (0 for an empty batch).
    pub last_offset_delta: Option<i32>,
    /// For LogAppendTime batches: the append time to keep as `maxTimestamp` (every record
    /// reads it); `None` uses the largest record timestamp.
    pub log_append_time: Option<i64>,
}

impl Default for OffsetBatchSpec {
    fn default() -> Self {
        OffsetBatchSpec {
            batch: BatchSpec::default(),
            compression: Compression::None,
            last_offset_delta: None,
            log_append_time: None,
        }
    }
}

/// Encodes `records` (with their absolute offsets and timestamps) as one v2 batch with base
/// offset `spec.batch.base_offset`.
///
/// Each record keeps its offset (offset delta recomputed from the base), timestamp, record
/// attributes, key, value and headers; `offset_delta` and `timestamp_delta` of the inputs
/// are ignored. Offsets must be strictly increasing, at or above the base offset and within
/// `i32` of it. The base timestamp is the first record's timestamp, as Kafka writes it.
pub fn build_batch_at_offsets(
    spec: &OffsetBatchSpec,
    records: &[Record],
) -> Result<Vec<u8>, CompressionError> {
    let base_offset = spec.batch.base_offset;
    let mut previous: Option<i64> = None;
    let mut deltas = Vec::with_capacity(records.len());
    for r in records {
        if previous.is_some_and(|p| r.offset <= p) {
            return Err(CompressionError::InvalidRecords(
                "offsets not strictly increasing",
            ));
        }
        previous = Some(r.offset);
        let delta = r
            .offset
            .checked_sub(base_offset)
            .and_then(|d| i32::try_from(d).ok())
            .filter(|d| *d >= 0)
            .ok_or(CompressionError::InvalidRecords(
                "record offset below the base offset or beyond i32 range",
            ))?;
        deltas.push(delta);
    }
    let last_delta = deltas.last().copied().unwrap_or(0);
    let last_offset_delta = match spec.last_offset_delta {
        Some(d) if d < last_delta => {
            return Err(CompressionError::InvalidRecords(
                "last offset delta below the last record's delta",
            ))
        }
        Some(d) => d,
        None => last_delta,
    };
    let base_timestamp = records.first().map_or(-1, |r| r.timestamp);
    let record_max = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    let max_timestamp = match (spec.batch.timestamp_type, spec.log_append_time) {
        (TimestampType::LogAppendTime, Some(t)) => t,
        _ => record_max,
    };
    let mut section = Vec::with_capacity(records.len() * 32);
    let mut scratch = Vec::new();
    for (r, delta) in records.iter().zip(&deltas) {
        encode_record(
            &mut section,
            &mut scratch,
            r.attributes,
            r.timestamp.wrapping_sub(base_timestamp),
            *delta,
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        );
    }
    let section = if spec.compression == Compression::None {
        section
    } else {
        compress(spec.compression, &section)?
    };
    let records_count = i32::try_from(records.len())
        .map_err(|_| CompressionError::InvalidRecords("more than i32::MAX records"))?;
    Ok(assemble_batch(
        &AssembleSpec {
            spec: spec.batch,
            compression: spec.compression,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            records_count,
        },
        &section,
    ))
}

/// Like [`crate::batch::build_batch`] (offsets assigned in order from the base offset) but
/// with the records section compressed by `compression`.
pub fn build_compressed_batch(
    spec: &BatchSpec,
    compression: Compression,
    records: &[RecordSpec],
) -> Result<Vec<u8>, CompressionError> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            offset: spec.base_offset.wrapping_add(i as i64),
            timestamp: r.timestamp,
            attributes: 0,
            offset_delta: 0,
            timestamp_delta: 0,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
        })
        .collect();
    build_batch_at_offsets(
        &OffsetBatchSpec {
            batch: *spec,
            compression,
            last_offset_delta: None,
            log_append_time: None,
        },
        &records,
    )
}

#[cfg(test)]
#[path = "compression_test.rs"]
mod tests;

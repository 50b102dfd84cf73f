//! Reading Kafka log segments from the data directory: v2 record batch
//! headers (61 bytes) and CRC32C, independent of the broker's own code.

use std::path::{Path, PathBuf};

/// Size of the v2 record batch header.
pub(crate) const BATCH_HEADER_BYTES: usize = 61;
/// Offset of the CRC field inside a batch.
pub(crate) const CRC_POSITION: usize = 17;
/// The CRC covers the batch from this position (attributes) to its end.
pub(crate) const CRC_COVERED_FROM: usize = 21;

/// One record batch as found in a `.log` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    /// Byte position of the batch in the file.
    pub(crate) position: usize,
    /// Total size of the batch including the offset and length fields.
    pub(crate) size: usize,
    pub(crate) base_offset: i64,
    pub(crate) last_offset_delta: i32,
    pub(crate) magic: i8,
    pub(crate) crc_stored: u32,
    pub(crate) crc_computed: u32,
    pub(crate) records_count: i32,
}

impl BatchHeader {
    /// The offset of the last record in the batch.
    pub(crate) fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Whether the stored CRC matches the content.
    pub(crate) fn crc_ok(&self) -> bool {
        self.crc_stored == self.crc_computed
    }
}

/// The result of scanning a segment: complete batches, then how many bytes
/// at the end did not form a complete batch.
#[derive(Debug, Clone)]
pub(crate) struct SegmentScan {
    pub(crate) batches: Vec<BatchHeader>,
    pub(crate) trailing_bytes: usize,
}

/// Scans all complete batches of a `.log` file's bytes.
pub(crate) fn scan(bytes: &[u8]) -> SegmentScan {
    let mut batches = Vec::new();
    let mut position = 0;
    while position + BATCH_HEADER_BYTES <= bytes.len() {
        let b = &bytes[position..];
        let base_offset = i64::from_be_bytes(b[0..8].try_into().expect("8 bytes"));
        let batch_length = i32::from_be_bytes(b[8..12].try_into().expect("4 bytes"));
        if batch_length < (BATCH_HEADER_BYTES - 12) as i32 {
            break;
        }
        let size = 12 + batch_length as usize;
        if position + size > bytes.len() {
            break;
        }
        let batch = &bytes[position..position + size];
        batches.push(BatchHeader {
            position,
            size,
            base_offset,
            last_offset_delta: i32::from_be_bytes(batch[23..27].try_into().expect("4 bytes")),
            magic: batch[16] as i8,
            crc_stored: u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes")),
            crc_computed: crc32c(&batch[CRC_COVERED_FROM..]),
            records_count: i32::from_be_bytes(batch[57..61].try_into().expect("4 bytes")),
        });
        position += size;
    }
    SegmentScan {
        batches,
        trailing_bytes: bytes.len() - position,
    }
}

/// The `.log` files of a partition directory, sorted by base offset.
pub(crate) fn log_files(partition_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .unwrap_or_else(|err| panic!("read {}: {err}", partition_dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// CRC-32C (Castagnoli), as used by Kafka record batches.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    const POLY: u32 = 0x82F6_3B78;
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
        }
        *slot = c;
    }
    let mut crc = !0u32;
    for &byte in data {
        crc = table[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

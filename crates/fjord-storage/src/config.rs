//! Per-log configuration, keyed one-to-one on Kafka's topic configs.

use fjord_protocol::batch::{TimestampType, BATCH_HEADER_LEN};

use crate::StorageError;

/// Settings of one partition log. Field names follow Kafka's topic configs (`segment.bytes`,
/// `segment.ms`, ...) so the broker can map them directly; `Default` is Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before the active one would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll once the active segment's first append is this old.
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes of batches between two offset-index entries.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: maximum size of an offset index; a full index rolls the segment.
    pub segment_index_bytes: u32,
    /// `retention.ms`: delete segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 is unlimited.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest batch accepted on append.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`: CreateTime keeps producer timestamps, LogAppendTime stamps
    /// the broker's clock on every batch.
    pub timestamp_type: TimestampType,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1024 * 1024 + 12,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

impl LogConfig {
    /// Checks limits the on-disk format imposes (file positions in the index are 32-bit, a
    /// segment must hold at least a bare batch header).
    pub fn validate(self) -> Result<LogConfig, StorageError> {
        if self.segment_bytes < BATCH_HEADER_LEN as u64 || self.segment_bytes > i32::MAX as u64 {
            return Err(StorageError::InvalidConfig(format!(
                "segment.bytes {} must be between {} and {}",
                self.segment_bytes,
                BATCH_HEADER_LEN,
                i32::MAX
            )));
        }
        if self.segment_ms <= 0 {
            return Err(StorageError::InvalidConfig(format!(
                "segment.ms {} must be positive",
                self.segment_ms
            )));
        }
        if self.segment_index_bytes < 12 {
            return Err(StorageError::InvalidConfig(format!(
                "segment.index.bytes {} must be at least 12",
                self.segment_index_bytes
            )));
        }
        Ok(self)
    }
}

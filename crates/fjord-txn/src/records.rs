//! The `__transaction_state` record formats, byte for byte as Kafka writes them.
//!
//! Key (`TransactionLogKey`, version 0): `transactional_id: string`.
//!
//! Value (`TransactionLogValue`): version 0 is what Kafka writes for classic transactions and
//! what Fjord writes; version 1 is the flexible form (compact strings/arrays, tagged fields)
//! written with transactions V2 (KIP-890) and is read here so a newer Kafka's log loads.
//!
//! ```text
//! i16  version
//! i64  producer_id
//! i16  producer_epoch
//! i32  transaction_timeout_ms
//! i8   transaction_status            (TransactionState id)
//! [ {string topic, [i32] partition_ids} ]  transaction_partitions, null when Empty
//! i64  transaction_last_update_timestamp_ms
//! i64  transaction_start_timestamp_ms
//! ```
//!
//! The order follows Kafka's `TransactionLogValue.json` as remembered (last-update before
//! start); it could not be checked against the source while writing this, so the golden tests
//! pin the order assumed here. v1 adds only tagged fields (previous/next producer id, next
//! epoch, client transaction version), which this reader skips.

use bytes::{BufMut, Bytes, BytesMut};

use crate::state::{TopicPartition, TransactionState};

/// A record in `__transaction_state` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end before the struct does.
    #[error("truncated transaction log {record}: {field} needs more bytes")]
    Truncated {
        /// "key" or "value".
        record: &'static str,
        /// The field that ran out.
        field: &'static str,
    },
    /// A key version Kafka does not define; the loader skips these.
    #[error("unknown __transaction_state key version {0}")]
    UnknownKeyVersion(i16),
    /// A value version this reader does not know.
    #[error("unsupported __transaction_state value version {0}")]
    UnsupportedValueVersion(i16),
    /// A malformed field: bad UTF-8, a negative length, an unknown status.
    #[error("malformed transaction log {record}: {field}")]
    Malformed {
        /// "key" or "value".
        record: &'static str,
        /// The offending field.
        field: &'static str,
    },
}

/// The partitions of one topic inside a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    /// The topic.
    pub topic: String,
    /// Its partitions in the transaction.
    pub partition_ids: Vec<i32>,
}

/// A `__transaction_state` value: the transaction's metadata after a state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionLogValue {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms`.
    pub transaction_timeout_ms: i32,
    /// The state written.
    pub status: TransactionState,
    /// Partitions by topic; `None` (null) for Empty, as Kafka writes it.
    pub partitions: Option<Vec<TopicPartitions>>,
    /// Last state change.
    pub last_update_timestamp_ms: i64,
    /// Transaction start, -1 if none.
    pub start_timestamp_ms: i64,
}

/// One record of `__transaction_state`, `value: None` being a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionLogRecord {
    /// The key.
    pub transactional_id: String,
    /// The value, or `None` to forget the id.
    pub value: Option<TransactionLogValue>,
}

impl TransactionLogRecord {
    /// Key bytes, version 0.
    pub fn encode_key(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        put_string(&mut buf, &self.transactional_id);
        buf.freeze()
    }

    /// Value bytes (version 0); `None` is a tombstone.
    pub fn encode_value(&self) -> Option<Bytes> {
        self.value.as_ref().map(TransactionLogValue::encode)
    }

    /// Reads a record as stored in the log.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, RecordError> {
        let mut r = Reader::new(key, "key");
        let version = r.i16("version")?;
        if version != 0 {
            return Err(RecordError::UnknownKeyVersion(version));
        }
        let transactional_id = r.string("transactional_id")?;
        let value = value.map(TransactionLogValue::decode).transpose()?;
        Ok(Self {
            transactional_id,
            value,
        })
    }
}

impl TransactionLogValue {
    /// Version 0, what Kafka writes for classic (pre-KIP-890) transactions.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        buf.put_i64(self.producer_id);
        buf.put_i16(self.producer_epoch);
        buf.put_i32(self.transaction_timeout_ms);
        buf.put_i8(self.status.id());
        match &self.partitions {
            None => buf.put_i32(-1),
            Some(topics) => {
                buf.put_i32(len_i32(topics.len()));
                for topic in topics {
                    put_string(&mut buf, &topic.topic);
                    buf.put_i32(len_i32(topic.partition_ids.len()));
                    for id in &topic.partition_ids {
                        buf.put_i32(*id);
                    }
                }
            }
        }
        buf.put_i64(self.last_update_timestamp_ms);
        buf.put_i64(self.start_timestamp_ms);
        buf.freeze()
    }

    /// Decodes versions 0 and 1.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader::new(bytes, "value");
        let version = r.i16("version")?;
        if !(0..=1).contains(&version) {
            return Err(RecordError::UnsupportedValueVersion(version));
        }
        r.flexible = version >= 1;
        let producer_id = r.i64("producer_id")?;
        let producer_epoch = r.i16("producer_epoch")?;
        let transaction_timeout_ms = r.i32("transaction_timeout_ms")?;
        let status_id = r.i8("transaction_status")?;
        let status = TransactionState::from_id(status_id).ok_or(RecordError::Malformed {
            record: "value",
            field: "transaction_status",
        })?;
        let partitions = match r.array_len("transaction_partitions")? {
            None => None,
            Some(count) => {
                let mut topics = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    let topic = r.string("topic")?;
                    let ids = r
                        .array_len("partition_ids")?
                        .ok_or(r.malformed("partition_ids"))?;
                    let mut partition_ids = Vec::with_capacity(ids.min(1024));
                    for _ in 0..ids {
                        partition_ids.push(r.i32("partition_id")?);
                    }
                    r.tagged_fields()?;
                    topics.push(TopicPartitions {
                        topic,
                        partition_ids,
                    });
                }
                Some(topics)
            }
        };
        let last_update_timestamp_ms = r.i64("transaction_last_update_timestamp_ms")?;
        let start_timestamp_ms = r.i64("transaction_start_timestamp_ms")?;
        r.tagged_fields()?;
        Ok(Self {
            producer_id,
            producer_epoch,
            transaction_timeout_ms,
            status,
            partitions,
            last_update_timestamp_ms,
            start_timestamp_ms,
        })
    }

    /// The partitions as a flat, ordered set.
    pub fn topic_partitions(&self) -> impl Iterator<Item = TopicPartition> + '_ {
        self.partitions.iter().flatten().flat_map(|t| {
            t.partition_ids
                .iter()
                .map(|p| TopicPartition::new(t.topic.clone(), *p))
        })
    }
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).expect("collection length fits i32")
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(i16::try_from(s.len()).expect("string length fits i16"));
    buf.put_slice(s.as_bytes());
}

/// Big-endian reader over one struct, classic or flexible.
struct Reader<'a> {
    bytes: &'a [u8],
    record: &'static str,
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], record: &'static str) -> Self {
        Self {
            bytes,
            record,
            flexible: false,
        }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        if self.bytes.len() < n {
            return Err(RecordError::Truncated {
                record: self.record,
                field,
            });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn malformed(&self, field: &'static str) -> RecordError {
        RecordError::Malformed {
            record: self.record,
            field,
        }
    }

    fn i8(&mut self, field: &'static str) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(
            self.take(1, field)?.try_into().expect("1 byte"),
        ))
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(
            self.take(2, field)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(
            self.take(4, field)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(
            self.take(8, field)?.try_into().expect("8 bytes"),
        ))
    }

    fn uvarint(&mut self, field: &'static str) -> Result<u32, RecordError> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1, field)?[0];
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed(field))
    }

    /// A length: i16/i32 in classic versions, uvarint N+1 in flexible ones. `None` is null.
    fn length(&mut self, field: &'static str, wide: bool) -> Result<Option<usize>, RecordError> {
        let n = if self.flexible {
            i64::from(self.uvarint(field)?) - 1
        } else if wide {
            i64::from(self.i32(field)?)
        } else {
            i64::from(self.i16(field)?)
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(self.malformed(field)),
            n => Ok(Some(usize::try_from(n).map_err(|_| self.malformed(field))?)),
        }
    }

    fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        let len = self.length(field, false)?.ok_or(self.malformed(field))?;
        let raw = self.take(len, field)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.malformed(field))
    }

    fn array_len(&mut self, field: &'static str) -> Result<Option<usize>, RecordError> {
        self.length(field, true)
    }

    /// Skips a tagged-field section (flexible versions only).
    fn tagged_fields(&mut self) -> Result<(), RecordError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint("tagged_fields")?;
        for _ in 0..count {
            self.uvarint("tag")?;
            let size = self.uvarint("tag_size")?;
            self.take(size as usize, "tag_data")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ongoing_value() -> TransactionLogValue {
        TransactionLogValue {
            producer_id: 1000,
            producer_epoch: 2,
            transaction_timeout_ms: 60_000,
            status: TransactionState::Ongoing,
            partitions: Some(vec![TopicPartitions {
                topic: "t".into(),
                partition_ids: vec![0, 1],
            }]),
            last_update_timestamp_ms: 5,
            start_timestamp_ms: 3,
        }
    }

    #[test]
    fn key_is_version_0_with_the_transactional_id() {
        let record = TransactionLogRecord {
            transactional_id: "txn".into(),
            value: None,
        };
        assert_eq!(&record.encode_key()[..], b"\x00\x00\x00\x03txn");
        assert_eq!(record.encode_value(), None);
    }

    #[test]
    fn value_v0_golden_bytes() {
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0,                          // version 0
            0, 0, 0, 0, 0, 0, 0x03, 0xe8,  // producer_id 1000
            0, 2,                          // producer_epoch
            0, 0, 0xea, 0x60,              // transaction_timeout_ms 60000
            1,                             // status Ongoing
            0, 0, 0, 1,                    // one topic
            0, 1, b't',                    // topic "t"
            0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, // partitions [0, 1]
            0, 0, 0, 0, 0, 0, 0, 5,        // last update
            0, 0, 0, 0, 0, 0, 0, 3,        // start
        ];
        assert_eq!(&ongoing_value().encode()[..], expected);
        assert_eq!(TransactionLogValue::decode(expected), Ok(ongoing_value()));
    }

    #[test]
    fn empty_state_writes_null_partitions() {
        let value = TransactionLogValue {
            status: TransactionState::Empty,
            partitions: None,
            start_timestamp_ms: -1,
            ..ongoing_value()
        };
        let bytes = value.encode();
        assert_eq!(&bytes[17..21], &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(TransactionLogValue::decode(&bytes), Ok(value));
    }

    #[test]
    fn value_v1_flexible_is_read_and_tags_skipped() {
        #[rustfmt::skip]
        let bytes: &[u8] = &[
            0, 1,
            0, 0, 0, 0, 0, 0, 0x03, 0xe8,
            0, 2,
            0, 0, 0xea, 0x60,
            1,
            2,                 // compact array: 1 topic
            2, b't',           // compact string "t"
            3, 0, 0, 0, 0, 0, 0, 0, 1, // compact array [0, 1]
            0,                 // topic tagged fields
            0, 0, 0, 0, 0, 0, 0, 5,
            0, 0, 0, 0, 0, 0, 0, 3,
            1, 2, 1, 7,        // one tagged field: tag 2, 1 byte
        ];
        assert_eq!(TransactionLogValue::decode(bytes), Ok(ongoing_value()));
    }

    #[test]
    fn truncated_and_unknown_versions_are_errors() {
        let bytes = ongoing_value().encode();
        assert!(matches!(
            TransactionLogValue::decode(&bytes[..bytes.len() - 1]),
            Err(RecordError::Truncated { .. })
        ));
        assert_eq!(
            TransactionLogValue::decode(&[0, 9]),
            Err(RecordError::UnsupportedValueVersion(9))
        );
        assert_eq!(
            TransactionLogRecord::decode(&[0, 1, 0, 0], None),
            Err(RecordError::UnknownKeyVersion(1))
        );
    }

    proptest! {
        #[test]
        fn value_round_trips(
            producer_id in any::<i64>(),
            producer_epoch in any::<i16>(),
            timeout in any::<i32>(),
            status in 0i8..8,
            partitions in proptest::option::of(proptest::collection::vec(
                ("[a-z]{1,8}", proptest::collection::vec(any::<i32>(), 0..4)), 0..4)),
            last in any::<i64>(),
            start in any::<i64>(),
        ) {
            let value = TransactionLogValue {
                producer_id,
                producer_epoch,
                transaction_timeout_ms: timeout,
                status: TransactionState::from_id(status).unwrap(),
                partitions: partitions.map(|p| p.into_iter().map(|(topic, partition_ids)| {
                    TopicPartitions { topic, partition_ids }
                }).collect()),
                last_update_timestamp_ms: last,
                start_timestamp_ms: start,
            };
            prop_assert_eq!(TransactionLogValue::decode(&value.encode()), Ok(value));
        }
    }
}

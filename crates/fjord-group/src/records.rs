//! The `__consumer_offsets` record formats, byte for byte as Kafka writes them.
//!
//! Every key and value is a big-endian struct prefixed by its `i16` schema version. Kafka picks
//! the key version to tell offset commits (0/1) from group metadata (2); a null value is a
//! tombstone that compaction uses to forget the key. Fjord writes what Kafka 2.3+ writes
//! (offset key v1, offset value v3 or v1 with an explicit expiry, group value v3) and reads
//! versions 0-4 (4 is the first flexible version, written by newer Kafka), so a log copied from
//! Kafka loads here.

use bytes::{BufMut, Bytes, BytesMut};

/// A record in `__consumer_offsets` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end before the struct does.
    #[error("truncated {record} record: {field} needs more bytes")]
    Truncated {
        /// Which record type was being read.
        record: &'static str,
        /// The field that ran out.
        field: &'static str,
    },
    /// A key version Kafka does not define; the loader skips these like Kafka does.
    #[error("unknown __consumer_offsets key version {0}")]
    UnknownKeyVersion(i16),
    /// A value version this reader does not know.
    #[error("unsupported {record} value version {version}")]
    UnsupportedValueVersion {
        /// Which record type.
        record: &'static str,
        /// The version found.
        version: i16,
    },
    /// A string field is not UTF-8 or a length is negative where null is not allowed.
    #[error("malformed {record} record: {field}")]
    Malformed {
        /// Which record type.
        record: &'static str,
        /// The offending field.
        field: &'static str,
    },
}

/// Key of a committed offset: which group's position in which partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetCommitKey {
    /// The group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

/// Key of a group's metadata (membership, generation, assignment).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupMetadataKey {
    /// The group.
    pub group: String,
}

/// A `__consumer_offsets` key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OffsetsKey {
    /// Key versions 0 and 1.
    OffsetCommit(OffsetCommitKey),
    /// Key version 2.
    GroupMetadata(GroupMetadataKey),
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record (v3+), -1 if unknown.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: String,
    /// When the commit was made.
    pub commit_timestamp: i64,
    /// Pre-2.1 per-commit expiry (v1 only), -1 if none. Writing one forces value version 1.
    pub expire_timestamp: i64,
}

/// One member inside a group metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    /// Member id.
    pub member_id: String,
    /// Static instance id (v3+).
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout (v1+; v0 records use the session timeout).
    pub rebalance_timeout: i32,
    /// Session timeout.
    pub session_timeout: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// A group's metadata as stored after each rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// Protocol type ("" if none).
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Selected protocol; null for an Empty group.
    pub protocol: Option<String>,
    /// Leader member id; null for an Empty group.
    pub leader: Option<String>,
    /// When the group entered its current state (v2+), -1 if unknown; drives offset expiry.
    pub current_state_timestamp: i64,
    /// Members.
    pub members: Vec<MemberMetadataValue>,
}

/// A `__consumer_offsets` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsValue {
    /// For an [`OffsetsKey::OffsetCommit`] key.
    OffsetCommit(OffsetCommitValue),
    /// For an [`OffsetsKey::GroupMetadata`] key.
    GroupMetadata(GroupMetadataValue),
}

/// One record of `__consumer_offsets`: a key and a value, `None` being a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsRecord {
    /// The key.
    pub key: OffsetsKey,
    /// The value, or `None` to delete the key.
    pub value: Option<OffsetsValue>,
}

impl OffsetsRecord {
    /// The key bytes to append.
    pub fn encode_key(&self) -> Bytes {
        self.key.encode()
    }

    /// The value bytes to append; `None` is a tombstone (null value).
    pub fn encode_value(&self) -> Option<Bytes> {
        self.value.as_ref().map(OffsetsValue::encode)
    }

    /// Reads a record as stored in the log. The value is interpreted according to the key.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, RecordError> {
        let key = OffsetsKey::decode(key)?;
        let value = match (&key, value) {
            (_, None) => None,
            (OffsetsKey::OffsetCommit(_), Some(v)) => {
                Some(OffsetsValue::OffsetCommit(OffsetCommitValue::decode(v)?))
            }
            (OffsetsKey::GroupMetadata(_), Some(v)) => {
                Some(OffsetsValue::GroupMetadata(GroupMetadataValue::decode(v)?))
            }
        };
        Ok(Self { key, value })
    }
}

impl OffsetsKey {
    /// Encodes as Kafka does: offset keys at version 1, group keys at version 2.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            Self::OffsetCommit(key) => {
                buf.put_i16(1);
                put_string(&mut buf, &key.group);
                put_string(&mut buf, &key.topic);
                buf.put_i32(key.partition);
            }
            Self::GroupMetadata(key) => {
                buf.put_i16(2);
                put_string(&mut buf, &key.group);
            }
        }
        buf.freeze()
    }

    /// Decodes any key version Kafka has written (0, 1, 2).
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader::new(bytes, "key");
        let version = r.i16("version")?;
        match version {
            0 | 1 => Ok(Self::OffsetCommit(OffsetCommitKey {
                group: r.string("group")?,
                topic: r.string("topic")?,
                partition: r.i32("partition")?,
            })),
            2 => Ok(Self::GroupMetadata(GroupMetadataKey {
                group: r.string("group")?,
            })),
            other => Err(RecordError::UnknownKeyVersion(other)),
        }
    }

    /// The group the key belongs to.
    pub fn group(&self) -> &str {
        match self {
            Self::OffsetCommit(key) => &key.group,
            Self::GroupMetadata(key) => &key.group,
        }
    }
}

impl OffsetsValue {
    /// Encodes the value at the version Kafka would choose.
    pub fn encode(&self) -> Bytes {
        match self {
            Self::OffsetCommit(value) => value.encode(),
            Self::GroupMetadata(value) => value.encode(),
        }
    }
}

impl OffsetCommitValue {
    /// Version 3, or version 1 when an explicit expiry must be kept (Kafka's rule: the
    /// expire timestamp exists only in v1).
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        if self.expire_timestamp != -1 {
            buf.put_i16(1);
            buf.put_i64(self.offset);
            put_string(&mut buf, &self.metadata);
            buf.put_i64(self.commit_timestamp);
            buf.put_i64(self.expire_timestamp);
        } else {
            buf.put_i16(3);
            buf.put_i64(self.offset);
            buf.put_i32(self.leader_epoch);
            put_string(&mut buf, &self.metadata);
            buf.put_i64(self.commit_timestamp);
        }
        buf.freeze()
    }

    /// Decodes versions 0-4.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader::new(bytes, "offset commit");
        let version = r.i16("version")?;
        if !(0..=4).contains(&version) {
            return Err(RecordError::UnsupportedValueVersion {
                record: "offset commit",
                version,
            });
        }
        r.flexible = version >= 4;
        let offset = r.i64("offset")?;
        let leader_epoch = if version >= 3 {
            r.i32("leader_epoch")?
        } else {
            -1
        };
        let metadata = r.string("metadata")?;
        let commit_timestamp = r.i64("commit_timestamp")?;
        let expire_timestamp = if version == 1 {
            r.i64("expire_timestamp")?
        } else {
            -1
        };
        r.tagged_fields()?;
        Ok(Self {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp,
        })
    }
}

impl GroupMetadataValue {
    /// Version 3, what Kafka 2.3+ writes.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(3);
        put_string(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref());
        put_nullable_string(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp);
        buf.put_i32(i32::try_from(self.members.len()).expect("group size fits i32"));
        for member in &self.members {
            put_string(&mut buf, &member.member_id);
            put_nullable_string(&mut buf, member.group_instance_id.as_deref());
            put_string(&mut buf, &member.client_id);
            put_string(&mut buf, &member.client_host);
            buf.put_i32(member.rebalance_timeout);
            buf.put_i32(member.session_timeout);
            put_bytes(&mut buf, &member.subscription);
            put_bytes(&mut buf, &member.assignment);
        }
        buf.freeze()
    }

    /// Decodes versions 0-4.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader::new(bytes, "group metadata");
        let version = r.i16("version")?;
        if !(0..=4).contains(&version) {
            return Err(RecordError::UnsupportedValueVersion {
                record: "group metadata",
                version,
            });
        }
        r.flexible = version >= 4;
        let protocol_type = r.string("protocol_type")?;
        let generation = r.i32("generation")?;
        let protocol = r.nullable_string("protocol")?;
        let leader = r.nullable_string("leader")?;
        let current_state_timestamp = if version >= 2 {
            r.i64("current_state_timestamp")?
        } else {
            -1
        };
        let count = r.array_len("members")?;
        let mut members = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let member_id = r.string("member_id")?;
            let group_instance_id = if version >= 3 {
                r.nullable_string("group_instance_id")?
            } else {
                None
            };
            let client_id = r.string("client_id")?;
            let client_host = r.string("client_host")?;
            let rebalance_timeout = if version >= 1 {
                Some(r.i32("rebalance_timeout")?)
            } else {
                None
            };
            let session_timeout = r.i32("session_timeout")?;
            let subscription = r.bytes("subscription")?;
            let assignment = r.bytes("assignment")?;
            r.tagged_fields()?;
            members.push(MemberMetadataValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout: rebalance_timeout.unwrap_or(session_timeout),
                session_timeout,
                subscription,
                assignment,
            });
        }
        r.tagged_fields()?;
        Ok(Self {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(i16::try_from(s.len()).expect("string fits an i16 length"));
    buf.put_slice(s.as_bytes());
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(i32::try_from(b.len()).expect("bytes fit an i32 length"));
    buf.put_slice(b);
}

/// A bounds-checked big-endian reader over Kafka's primitive types, classic or flexible.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    record: &'static str,
    /// Flexible versions use unsigned-varint lengths (+1) and tagged fields.
    pub(crate) flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], record: &'static str) -> Self {
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

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, field)?);
        Ok(i64::from_be_bytes(a))
    }

    fn uvarint(&mut self, field: &'static str) -> Result<u32, RecordError> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.take(1, field)?[0];
            value |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed(field))
    }

    /// A length: `None` for null (-1 classic, 0 compact).
    fn length(&mut self, field: &'static str, wide: bool) -> Result<Option<usize>, RecordError> {
        let len = if self.flexible {
            i64::from(self.uvarint(field)?) - 1
        } else if wide {
            i64::from(self.i32(field)?)
        } else {
            i64::from(self.i16(field)?)
        };
        match len {
            -1 => Ok(None),
            n if n < 0 => Err(self.malformed(field)),
            n => Ok(Some(usize::try_from(n).map_err(|_| self.malformed(field))?)),
        }
    }

    pub(crate) fn nullable_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, RecordError> {
        match self.length(field, false)? {
            None => Ok(None),
            Some(n) => {
                let raw = self.take(n, field)?;
                let s = std::str::from_utf8(raw).map_err(|_| self.malformed(field))?;
                Ok(Some(s.to_owned()))
            }
        }
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        self.nullable_string(field)?
            .ok_or_else(|| self.malformed(field))
    }

    pub(crate) fn nullable_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Bytes>, RecordError> {
        match self.length(field, true)? {
            None => Ok(None),
            Some(n) => Ok(Some(Bytes::copy_from_slice(self.take(n, field)?))),
        }
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Bytes, RecordError> {
        self.nullable_bytes(field)?
            .ok_or_else(|| self.malformed(field))
    }

    pub(crate) fn array_len(&mut self, field: &'static str) -> Result<usize, RecordError> {
        self.length(field, true)?
            .ok_or_else(|| self.malformed(field))
    }

    /// Skips a flexible struct's tagged fields; nothing in classic versions.
    fn tagged_fields(&mut self) -> Result<(), RecordError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint("tagged_fields")?;
        for _ in 0..count {
            self.uvarint("tag")?;
            let size = self.uvarint("tag_size")? as usize;
            self.take(size, "tag_data")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "records_test.rs"]
mod tests;

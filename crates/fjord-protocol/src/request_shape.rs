//! A structural pre-check of request bodies, run before the codec decodes them.
//!
//! The codec sizes each array from the element count on the wire before decoding a single
//! element, so a 14-byte request claiming two billion topics makes it ask for hundreds of
//! gigabytes, and a failed allocation aborts the whole process. Every array element takes at
//! least one byte on the wire, so a count larger than the bytes left is impossible: this walk
//! follows each served request's schema and refuses such counts (and lengths) before the codec
//! sees them. It checks shape only; values are the handlers' business.

use crate::api_versions::supported_range;
use kafka_protocol::messages::ApiKey;

/// Why a request body cannot be a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// A count or length claims more than the bytes left in the frame.
    #[error("a length of {claimed} at byte {position} exceeds the {remaining} bytes left")]
    Impossible {
        /// Where the length sits in the body.
        position: usize,
        /// What it claims.
        claimed: u64,
        /// Bytes left after it.
        remaining: usize,
    },
    /// The body ends inside a field.
    #[error("the request body ends inside a field at byte {0}")]
    Truncated(usize),
    /// A variable-length integer runs past five bytes.
    #[error("malformed varint at byte {0}")]
    BadVarint(usize),
    /// The broker serves this api key but no schema describes its request, so its shape
    /// cannot be checked. Refused rather than passed, so a table entry added without a schema
    /// fails loudly instead of silently skipping the guard.
    #[error("no request schema for served api key {0}")]
    NoSchema(i16),
}

/// Field types as they appear on the wire.
#[derive(Debug, Clone, Copy)]
enum Ty {
    I8,
    I16,
    I32,
    I64,
    Uuid,
    /// String or nullable string.
    Str,
    /// Bytes, nullable bytes or records.
    Bytes,
    /// Array of int32.
    I32s,
    /// Array of int64.
    I64s,
    /// Array of strings.
    Strs,
    /// Array of structs.
    Structs(&'static [Field]),
}

/// One field, present in versions `since..=until`.
#[derive(Debug, Clone, Copy)]
struct Field {
    ty: Ty,
    since: i16,
    until: i16,
}

const fn f(ty: Ty, since: i16) -> Field {
    Field {
        ty,
        since,
        until: i16::MAX,
    }
}

const fn upto(ty: Ty, since: i16, until: i16) -> Field {
    Field { ty, since, until }
}

use Ty::*;

const API_VERSIONS: &[Field] = &[f(Str, 3), f(Str, 3)];

const METADATA_TOPIC: &[Field] = &[f(Uuid, 10), f(Str, 0)];
const METADATA: &[Field] = &[
    f(Structs(METADATA_TOPIC), 0),
    f(I8, 4),
    upto(I8, 8, 10),
    f(I8, 8),
];

const PRODUCE_PARTITION: &[Field] = &[f(I32, 0), f(Bytes, 0)];
const PRODUCE_TOPIC: &[Field] = &[
    upto(Str, 0, 12),
    f(Uuid, 13),
    f(Structs(PRODUCE_PARTITION), 0),
];
const PRODUCE: &[Field] = &[
    f(Str, 3),
    f(I16, 0),
    f(I32, 0),
    f(Structs(PRODUCE_TOPIC), 0),
];

const FETCH_PARTITION: &[Field] = &[
    f(I32, 0),
    f(I32, 9),
    f(I64, 0),
    f(I32, 12),
    f(I64, 5),
    f(I32, 0),
];
const FETCH_TOPIC: &[Field] = &[
    upto(Str, 0, 12),
    f(Uuid, 13),
    f(Structs(FETCH_PARTITION), 0),
];
const FETCH_FORGOTTEN: &[Field] = &[upto(Str, 7, 12), f(Uuid, 13), f(I32s, 7)];
const FETCH: &[Field] = &[
    upto(I32, 0, 14),
    f(I32, 0),
    f(I32, 0),
    f(I32, 3),
    f(I8, 4),
    f(I32, 7),
    f(I32, 7),
    f(Structs(FETCH_TOPIC), 0),
    f(Structs(FETCH_FORGOTTEN), 7),
    f(Str, 11),
];

const LIST_OFFSETS_PARTITION: &[Field] = &[f(I32, 0), f(I32, 4), f(I64, 0)];
const LIST_OFFSETS_TOPIC: &[Field] = &[f(Str, 0), f(Structs(LIST_OFFSETS_PARTITION), 0)];
const LIST_OFFSETS: &[Field] = &[
    f(I32, 0),
    f(I8, 2),
    f(Structs(LIST_OFFSETS_TOPIC), 0),
    f(I32, 10),
];

const CREATE_ASSIGNMENT: &[Field] = &[f(I32, 0), f(I32s, 0)];
const CREATE_CONFIG: &[Field] = &[f(Str, 0), f(Str, 0)];
const CREATE_TOPIC: &[Field] = &[
    f(Str, 0),
    f(I32, 0),
    f(I16, 0),
    f(Structs(CREATE_ASSIGNMENT), 0),
    f(Structs(CREATE_CONFIG), 0),
];
const CREATE_TOPICS: &[Field] = &[f(Structs(CREATE_TOPIC), 0), f(I32, 0), f(I8, 1)];

const DELETE_TOPIC_STATE: &[Field] = &[f(Str, 6), f(Uuid, 6)];
const DELETE_TOPICS: &[Field] = &[
    f(Structs(DELETE_TOPIC_STATE), 6),
    upto(Strs, 0, 5),
    f(I32, 0),
];

const DESCRIBE_CONFIGS_RESOURCE: &[Field] = &[f(I8, 0), f(Str, 0), f(Strs, 0)];
const DESCRIBE_CONFIGS: &[Field] = &[f(Structs(DESCRIBE_CONFIGS_RESOURCE), 0), f(I8, 1), f(I8, 3)];

const FIND_COORDINATOR: &[Field] = &[upto(Str, 0, 3), f(I8, 1), f(Strs, 4)];

// Group APIs. Nullable strings, nullable arrays and bytes share the encodings of their
// non-nullable forms (a length of -1, or 0 in compact form, means null).

const JOIN_GROUP_PROTOCOL: &[Field] = &[f(Str, 0), f(Bytes, 0)];
const JOIN_GROUP: &[Field] = &[
    f(Str, 0),
    f(I32, 0),
    f(I32, 1),
    f(Str, 0),
    f(Str, 5),
    f(Str, 0),
    f(Structs(JOIN_GROUP_PROTOCOL), 0),
    f(Str, 8),
];

const SYNC_GROUP_ASSIGNMENT: &[Field] = &[f(Str, 0), f(Bytes, 0)];
const SYNC_GROUP: &[Field] = &[
    f(Str, 0),
    f(I32, 0),
    f(Str, 0),
    f(Str, 3),
    f(Str, 5),
    f(Str, 5),
    f(Structs(SYNC_GROUP_ASSIGNMENT), 0),
];

const HEARTBEAT: &[Field] = &[f(Str, 0), f(I32, 0), f(Str, 0), f(Str, 3)];

const LEAVE_GROUP_MEMBER: &[Field] = &[f(Str, 3), f(Str, 3), f(Str, 5)];
const LEAVE_GROUP: &[Field] = &[
    f(Str, 0),
    upto(Str, 0, 2),
    f(Structs(LEAVE_GROUP_MEMBER), 3),
];

// The codec decodes OffsetCommit from v2 only (v0 lacked generation and member, v1 had a
// per-partition timestamp), so these ranges are the codec's, valid for v2 and later.
const OFFSET_COMMIT_PARTITION: &[Field] = &[f(I32, 0), f(I64, 0), f(I32, 6), f(Str, 0)];
const OFFSET_COMMIT_TOPIC: &[Field] = &[f(Str, 0), f(Structs(OFFSET_COMMIT_PARTITION), 0)];
const OFFSET_COMMIT: &[Field] = &[
    f(Str, 0),
    f(I32, 0),
    f(Str, 0),
    f(Str, 7),
    upto(I64, 0, 4),
    f(Structs(OFFSET_COMMIT_TOPIC), 0),
];

// Up to v7 one group with a nullable topic list; from v8 a list of groups instead.
const OFFSET_FETCH_TOPIC: &[Field] = &[upto(Str, 0, 7), upto(I32s, 0, 7)];
const OFFSET_FETCH_GROUP_TOPIC: &[Field] = &[f(Str, 8), f(I32s, 8)];
const OFFSET_FETCH_GROUP: &[Field] = &[
    f(Str, 8),
    f(Str, 9),
    f(I32, 9),
    f(Structs(OFFSET_FETCH_GROUP_TOPIC), 8),
];
const OFFSET_FETCH: &[Field] = &[
    upto(Str, 0, 7),
    upto(Structs(OFFSET_FETCH_TOPIC), 0, 7),
    f(Structs(OFFSET_FETCH_GROUP), 8),
    f(I8, 7),
];

const LIST_GROUPS: &[Field] = &[f(Strs, 4), f(Strs, 5)];

const DESCRIBE_GROUPS: &[Field] = &[f(Strs, 0), f(I8, 3)];

const DELETE_GROUPS: &[Field] = &[f(Strs, 0)];

const OFFSET_DELETE_PARTITION: &[Field] = &[f(I32, 0)];
const OFFSET_DELETE_TOPIC: &[Field] = &[f(Str, 0), f(Structs(OFFSET_DELETE_PARTITION), 0)];
const OFFSET_DELETE: &[Field] = &[f(Str, 0), f(Structs(OFFSET_DELETE_TOPIC), 0)];

// Admin APIs.

const ALTER_CONFIGS_CONFIG: &[Field] = &[f(Str, 0), f(Str, 0)];
const ALTER_CONFIGS_RESOURCE: &[Field] =
    &[f(I8, 0), f(Str, 0), f(Structs(ALTER_CONFIGS_CONFIG), 0)];
const ALTER_CONFIGS: &[Field] = &[f(Structs(ALTER_CONFIGS_RESOURCE), 0), f(I8, 0)];

const INCREMENTAL_ALTER_CONFIGS_CONFIG: &[Field] = &[f(Str, 0), f(I8, 0), f(Str, 0)];
const INCREMENTAL_ALTER_CONFIGS_RESOURCE: &[Field] = &[
    f(I8, 0),
    f(Str, 0),
    f(Structs(INCREMENTAL_ALTER_CONFIGS_CONFIG), 0),
];
const INCREMENTAL_ALTER_CONFIGS: &[Field] =
    &[f(Structs(INCREMENTAL_ALTER_CONFIGS_RESOURCE), 0), f(I8, 0)];

// Assignments is a nullable array of broker-id arrays, one per new partition.
const CREATE_PARTITIONS_ASSIGNMENT: &[Field] = &[f(I32s, 0)];
const CREATE_PARTITIONS_TOPIC: &[Field] = &[
    f(Str, 0),
    f(I32, 0),
    f(Structs(CREATE_PARTITIONS_ASSIGNMENT), 0),
];
const CREATE_PARTITIONS: &[Field] = &[f(Structs(CREATE_PARTITIONS_TOPIC), 0), f(I32, 0), f(I8, 0)];

const DELETE_RECORDS_PARTITION: &[Field] = &[f(I32, 0), f(I64, 0)];
const DELETE_RECORDS_TOPIC: &[Field] = &[f(Str, 0), f(Structs(DELETE_RECORDS_PARTITION), 0)];
const DELETE_RECORDS: &[Field] = &[f(Structs(DELETE_RECORDS_TOPIC), 0), f(I32, 0)];

// The codec starts DescribeLogDirs at v1 (v0 is the same body); topics is nullable (all).
const DESCRIBE_LOG_DIRS_TOPIC: &[Field] = &[f(Str, 0), f(I32s, 0)];
const DESCRIBE_LOG_DIRS: &[Field] = &[f(Structs(DESCRIBE_LOG_DIRS_TOPIC), 0)];

// Flexible from v0. The codec also knows v2 (include_fenced_brokers).
const DESCRIBE_CLUSTER: &[Field] = &[f(I8, 0), f(I8, 1), f(I8, 2)];

/// First flexible version of a request that has none.
const NEVER_FLEXIBLE: i16 = i16::MAX;

const INIT_PRODUCER_ID: &[Field] = &[f(Str, 0), f(I32, 0), f(I64, 3), f(I16, 3)];

// v0-3 only: v4+ (batched, broker to broker) is not served.
const ADD_PARTITIONS_TO_TXN_TOPIC: &[Field] = &[f(Str, 0), f(I32s, 0)];
const ADD_PARTITIONS_TO_TXN: &[Field] = &[
    upto(Str, 0, 3),
    upto(I64, 0, 3),
    upto(I16, 0, 3),
    upto(Structs(ADD_PARTITIONS_TO_TXN_TOPIC), 0, 3),
];
const ADD_OFFSETS_TO_TXN: &[Field] = &[f(Str, 0), f(I64, 0), f(I16, 0), f(Str, 0)];
const END_TXN: &[Field] = &[f(Str, 0), f(I64, 0), f(I16, 0), f(I8, 0)];
const WRITE_TXN_MARKERS_TOPIC: &[Field] = &[f(Str, 0), f(I32s, 0)];
const WRITE_TXN_MARKERS_MARKER: &[Field] = &[
    f(I64, 0),
    f(I16, 0),
    f(I8, 0),
    f(Structs(WRITE_TXN_MARKERS_TOPIC), 0),
    f(I32, 0),
];
const WRITE_TXN_MARKERS: &[Field] = &[f(Structs(WRITE_TXN_MARKERS_MARKER), 0)];
const TXN_OFFSET_COMMIT_PARTITION: &[Field] = &[f(I32, 0), f(I64, 0), f(I32, 2), f(Str, 0)];
const TXN_OFFSET_COMMIT_TOPIC: &[Field] = &[f(Str, 0), f(Structs(TXN_OFFSET_COMMIT_PARTITION), 0)];
const TXN_OFFSET_COMMIT: &[Field] = &[
    f(Str, 0),
    f(Str, 0),
    f(I64, 0),
    f(I16, 0),
    f(I32, 3),
    f(Str, 3),
    f(Str, 3),
    f(Structs(TXN_OFFSET_COMMIT_TOPIC), 0),
];
const LIST_TRANSACTIONS: &[Field] = &[f(Strs, 0), f(I64s, 0), f(I64, 1), f(Str, 2)];
const DESCRIBE_TRANSACTIONS: &[Field] = &[f(Strs, 0)];
const DESCRIBE_PRODUCERS_TOPIC: &[Field] = &[f(Str, 0), f(I32s, 0)];
const DESCRIBE_PRODUCERS: &[Field] = &[f(Structs(DESCRIBE_PRODUCERS_TOPIC), 0)];

// Partition administration. ElectLeaders v0 has no election type (preferred only); the
// topic lists of ElectLeaders and ListPartitionReassignments and the replica list of a
// reassignment are nullable (all partitions, list everything, cancel).
const ELECT_LEADERS_TOPIC: &[Field] = &[f(Str, 0), f(I32s, 0)];
const ELECT_LEADERS: &[Field] = &[f(I8, 1), f(Structs(ELECT_LEADERS_TOPIC), 0), f(I32, 0)];
const REASSIGNABLE_PARTITION: &[Field] = &[f(I32, 0), f(I32s, 0)];
const REASSIGNABLE_TOPIC: &[Field] = &[f(Str, 0), f(Structs(REASSIGNABLE_PARTITION), 0)];
// The codec also knows v1 (KIP-860's allow_replication_factor_change), which is not served.
const ALTER_PARTITION_REASSIGNMENTS: &[Field] =
    &[f(I32, 0), f(I8, 1), f(Structs(REASSIGNABLE_TOPIC), 0)];
const LIST_PARTITION_REASSIGNMENTS_TOPIC: &[Field] = &[f(Str, 0), f(I32s, 0)];
const LIST_PARTITION_REASSIGNMENTS: &[Field] =
    &[f(I32, 0), f(Structs(LIST_PARTITION_REASSIGNMENTS_TOPIC), 0)];

const OFFSET_FOR_LEADER_EPOCH_PARTITION: &[Field] = &[f(I32, 0), f(I32, 2), f(I32, 0)];
const OFFSET_FOR_LEADER_EPOCH_TOPIC: &[Field] =
    &[f(Str, 0), f(Structs(OFFSET_FOR_LEADER_EPOCH_PARTITION), 0)];
const OFFSET_FOR_LEADER_EPOCH: &[Field] =
    &[f(I32, 3), f(Structs(OFFSET_FOR_LEADER_EPOCH_TOPIC), 0)];

/// Schema and first flexible version of every served request.
fn schema(api_key: ApiKey) -> Option<(&'static [Field], i16)> {
    Some(match api_key {
        ApiKey::ApiVersions => (API_VERSIONS, 3),
        ApiKey::Metadata => (METADATA, 9),
        ApiKey::Produce => (PRODUCE, 9),
        ApiKey::Fetch => (FETCH, 12),
        ApiKey::ListOffsets => (LIST_OFFSETS, 6),
        ApiKey::CreateTopics => (CREATE_TOPICS, 5),
        ApiKey::DeleteTopics => (DELETE_TOPICS, 4),
        ApiKey::DescribeConfigs => (DESCRIBE_CONFIGS, 4),
        ApiKey::FindCoordinator => (FIND_COORDINATOR, 3),
        ApiKey::InitProducerId => (INIT_PRODUCER_ID, 2),
        ApiKey::JoinGroup => (JOIN_GROUP, 6),
        ApiKey::SyncGroup => (SYNC_GROUP, 4),
        ApiKey::Heartbeat => (HEARTBEAT, 4),
        ApiKey::LeaveGroup => (LEAVE_GROUP, 4),
        ApiKey::OffsetCommit => (OFFSET_COMMIT, 8),
        ApiKey::OffsetFetch => (OFFSET_FETCH, 6),
        ApiKey::ListGroups => (LIST_GROUPS, 3),
        // Flexible from v5, not v3: v3 only added include_authorized_operations.
        ApiKey::DescribeGroups => (DESCRIBE_GROUPS, 5),
        ApiKey::DeleteGroups => (DELETE_GROUPS, 2),
        ApiKey::OffsetDelete => (OFFSET_DELETE, NEVER_FLEXIBLE),
        ApiKey::AlterConfigs => (ALTER_CONFIGS, 2),
        ApiKey::IncrementalAlterConfigs => (INCREMENTAL_ALTER_CONFIGS, 1),
        ApiKey::CreatePartitions => (CREATE_PARTITIONS, 2),
        ApiKey::DeleteRecords => (DELETE_RECORDS, 2),
        ApiKey::DescribeLogDirs => (DESCRIBE_LOG_DIRS, 2),
        ApiKey::DescribeCluster => (DESCRIBE_CLUSTER, 0),
        ApiKey::AddPartitionsToTxn => (ADD_PARTITIONS_TO_TXN, 3),
        ApiKey::AddOffsetsToTxn => (ADD_OFFSETS_TO_TXN, 3),
        ApiKey::EndTxn => (END_TXN, 3),
        ApiKey::WriteTxnMarkers => (WRITE_TXN_MARKERS, 1),
        ApiKey::TxnOffsetCommit => (TXN_OFFSET_COMMIT, 3),
        ApiKey::ListTransactions => (LIST_TRANSACTIONS, 0),
        ApiKey::DescribeTransactions => (DESCRIBE_TRANSACTIONS, 0),
        ApiKey::DescribeProducers => (DESCRIBE_PRODUCERS, 0),
        ApiKey::ElectLeaders => (ELECT_LEADERS, 2),
        ApiKey::AlterPartitionReassignments => (ALTER_PARTITION_REASSIGNMENTS, 0),
        ApiKey::ListPartitionReassignments => (LIST_PARTITION_REASSIGNMENTS, 0),
        ApiKey::OffsetForLeaderEpoch => (OFFSET_FOR_LEADER_EPOCH, 4),
        _ => return None,
    })
}

struct Walker<'a> {
    body: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    fn skip(&mut self, n: usize) -> Result<(), ShapeError> {
        if n > self.remaining() {
            return Err(ShapeError::Truncated(self.pos));
        }
        self.pos += n;
        Ok(())
    }

    fn int(&mut self, width: usize) -> Result<i64, ShapeError> {
        let start = self.pos;
        self.skip(width)?;
        let bytes = &self.body[start..self.pos];
        Ok(bytes
            .iter()
            .fold(0i64, |acc, b| (acc << 8) | i64::from(*b))
            .wrapping_shl(64 - 8 * width as u32)
            .wrapping_shr(64 - 8 * width as u32))
    }

    fn uvarint(&mut self) -> Result<u64, ShapeError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..5 {
            let byte = *self
                .body
                .get(self.pos)
                .ok_or(ShapeError::Truncated(self.pos))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ShapeError::BadVarint(start))
    }

    /// Reads a length or count and checks that `claimed * min_each` bytes could follow.
    fn length(&mut self, classic_width: usize) -> Result<Option<usize>, ShapeError> {
        let position = self.pos;
        let claimed: i64 = if self.flexible {
            self.uvarint()? as i64 - 1
        } else {
            self.int(classic_width)?
        };
        if claimed < 0 {
            return Ok(None);
        }
        if claimed as u64 > self.remaining() as u64 {
            return Err(ShapeError::Impossible {
                position,
                claimed: claimed as u64,
                remaining: self.remaining(),
            });
        }
        Ok(Some(claimed as usize))
    }

    fn tagged_fields(&mut self) -> Result<(), ShapeError> {
        if !self.flexible {
            return Ok(());
        }
        let position = self.pos;
        let count = self.uvarint()?;
        if count > self.remaining() as u64 {
            return Err(ShapeError::Impossible {
                position,
                claimed: count,
                remaining: self.remaining(),
            });
        }
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.skip(usize::try_from(size).map_err(|_| ShapeError::Truncated(self.pos))?)?;
        }
        Ok(())
    }

    fn walk_struct(&mut self, fields: &[Field]) -> Result<(), ShapeError> {
        for field in fields {
            if self.version < field.since || self.version > field.until {
                continue;
            }
            self.walk(field.ty)?;
        }
        self.tagged_fields()
    }

    fn walk(&mut self, ty: Ty) -> Result<(), ShapeError> {
        match ty {
            I8 => self.skip(1),
            I16 => self.skip(2),
            I32 => self.skip(4),
            I64 => self.skip(8),
            Uuid => self.skip(16),
            Str => match self.length(2)? {
                Some(n) => self.skip(n),
                None => Ok(()),
            },
            Bytes => match self.length(4)? {
                Some(n) => self.skip(n),
                None => Ok(()),
            },
            I32s => match self.length(4)? {
                Some(n) => self.skip(n.saturating_mul(4)),
                None => Ok(()),
            },
            I64s => match self.length(4)? {
                Some(n) => self.skip(n.saturating_mul(8)),
                None => Ok(()),
            },
            Strs => {
                for _ in 0..self.length(4)?.unwrap_or(0) {
                    self.walk(Str)?;
                }
                Ok(())
            }
            Structs(fields) => {
                for _ in 0..self.length(4)?.unwrap_or(0) {
                    self.walk_struct(fields)?;
                }
                Ok(())
            }
        }
    }
}

/// Checks that the body of a served request could be a valid encoding, so that decoding it
/// cannot be made to allocate more than the frame justifies. Unserved requests pass untouched
/// (they are refused before decoding); a served request without a schema is refused with
/// [`ShapeError::NoSchema`].
pub fn check_request_shape(api_key: ApiKey, version: i16, body: &[u8]) -> Result<(), ShapeError> {
    if supported_range(api_key as i16).is_none() {
        return Ok(());
    }
    check_against_schema(api_key, version, body)
}

/// The walk itself, whether or not the broker serves `api_key` yet; requests without a
/// schema are refused.
fn check_against_schema(api_key: ApiKey, version: i16, body: &[u8]) -> Result<(), ShapeError> {
    walk_schema(api_key, version, body).map(|_| ())
}

/// Walks the schema of `api_key` over `body` and returns how many bytes it covered.
fn walk_schema(api_key: ApiKey, version: i16, body: &[u8]) -> Result<usize, ShapeError> {
    let Some((fields, flexible_since)) = schema(api_key) else {
        return Err(ShapeError::NoSchema(api_key as i16));
    };
    let mut walker = Walker {
        body,
        pos: 0,
        version,
        flexible: version >= flexible_since,
    };
    walker.walk_struct(fields)?;
    Ok(walker.pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_versions::SUPPORTED_APIS;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encode<T: Encodable>(msg: &T, version: i16) -> Vec<u8> {
        let mut buf = BytesMut::new();
        msg.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    /// Requests with every array populated, encoded by the codec at `version`.
    fn sample(api_key: ApiKey, version: i16) -> Vec<u8> {
        match api_key {
            ApiKey::ApiVersions => {
                let mut r = ApiVersionsRequest::default();
                if version >= 3 {
                    r.client_software_name = s("fjord-test");
                    r.client_software_version = s("1.0");
                }
                encode(&r, version)
            }
            ApiKey::Metadata => {
                let mut t = metadata_request::MetadataRequestTopic::default();
                t.name = Some(TopicName(s("orders")));
                let mut r = MetadataRequest::default();
                r.topics = Some(vec![t.clone(), t]);
                encode(&r, version)
            }
            ApiKey::Produce => {
                let mut p = produce_request::PartitionProduceData::default();
                p.records = Some(Bytes::from_static(b"0123456789"));
                let mut t = produce_request::TopicProduceData::default();
                t.name = TopicName(s("orders"));
                t.partition_data = vec![p.clone(), p];
                let mut r = ProduceRequest::default();
                r.acks = -1;
                r.topic_data = vec![t];
                encode(&r, version)
            }
            ApiKey::Fetch => {
                let p = fetch_request::FetchPartition::default();
                let mut t = fetch_request::FetchTopic::default();
                t.topic = TopicName(s("orders"));
                t.partitions = vec![p.clone(), p];
                let mut forgotten = fetch_request::ForgottenTopic::default();
                forgotten.topic = TopicName(s("old"));
                forgotten.partitions = vec![1, 2, 3];
                let mut r = FetchRequest::default();
                r.topics = vec![t];
                if version >= 7 {
                    r.forgotten_topics_data = vec![forgotten];
                }
                if version >= 11 {
                    r.rack_id = s("rack-a");
                }
                encode(&r, version)
            }
            ApiKey::ListOffsets => {
                let p = list_offsets_request::ListOffsetsPartition::default();
                let mut t = list_offsets_request::ListOffsetsTopic::default();
                t.name = TopicName(s("orders"));
                t.partitions = vec![p.clone(), p];
                let mut r = ListOffsetsRequest::default();
                r.topics = vec![t];
                encode(&r, version)
            }
            ApiKey::CreateTopics => {
                let mut a = create_topics_request::CreatableReplicaAssignment::default();
                a.broker_ids = vec![BrokerId(1), BrokerId(2)];
                let mut c = create_topics_request::CreatableTopicConfig::default();
                c.name = s("retention.ms");
                c.value = Some(s("1000"));
                let mut t = create_topics_request::CreatableTopic::default();
                t.name = TopicName(s("orders"));
                t.assignments = vec![a];
                t.configs = vec![c.clone(), c];
                let mut r = CreateTopicsRequest::default();
                r.topics = vec![t];
                r.validate_only = true;
                encode(&r, version)
            }
            ApiKey::DeleteTopics => {
                let mut r = DeleteTopicsRequest::default();
                if version >= 6 {
                    let mut t = delete_topics_request::DeleteTopicState::default();
                    t.name = Some(TopicName(s("orders")));
                    r.topics = vec![t];
                } else {
                    r.topic_names = vec![TopicName(s("a")), TopicName(s("b"))];
                }
                encode(&r, version)
            }
            ApiKey::DescribeConfigs => {
                let mut res = describe_configs_request::DescribeConfigsResource::default();
                res.resource_type = 2;
                res.resource_name = s("orders");
                res.configuration_keys = Some(vec![s("retention.ms"), s("segment.bytes")]);
                let mut r = DescribeConfigsRequest::default();
                r.resources = vec![res];
                r.include_synonyms = version >= 1;
                encode(&r, version)
            }
            ApiKey::InitProducerId => {
                let mut r = InitProducerIdRequest::default();
                r.transactional_id = Some(TransactionalId(s("txn-a")));
                r.transaction_timeout_ms = 60_000;
                if version >= 3 {
                    r.producer_id = ProducerId(42);
                    r.producer_epoch = 3;
                }
                encode(&r, version)
            }
            ApiKey::FindCoordinator => {
                let mut r = FindCoordinatorRequest::default();
                if version >= 4 {
                    r.coordinator_keys = vec![s("group-a"), s("group-b")];
                } else {
                    r.key = s("group-a");
                }
                encode(&r, version)
            }
            ApiKey::JoinGroup => {
                let mut p = join_group_request::JoinGroupRequestProtocol::default();
                p.name = s("range");
                p.metadata = Bytes::from_static(b"\0\x01subscription");
                let mut q = p.clone();
                q.name = s("roundrobin");
                q.metadata = Bytes::from_static(b"\0\x01other");
                let mut r = JoinGroupRequest::default();
                r.group_id = GroupId(s("group-a"));
                r.session_timeout_ms = 30_000;
                if version >= 1 {
                    r.rebalance_timeout_ms = 60_000;
                }
                r.member_id = s("member-1");
                if version >= 5 {
                    r.group_instance_id = Some(s("instance-1"));
                }
                r.protocol_type = s("consumer");
                r.protocols = vec![p, q];
                if version >= 8 {
                    r.reason = Some(s("rejoin"));
                }
                encode(&r, version)
            }
            ApiKey::SyncGroup => {
                let mut a = sync_group_request::SyncGroupRequestAssignment::default();
                a.member_id = s("member-1");
                a.assignment = Bytes::from_static(b"\0\x01assignment-1");
                let mut b = a.clone();
                b.member_id = s("member-2");
                b.assignment = Bytes::from_static(b"\0\x01assignment-2");
                let mut r = SyncGroupRequest::default();
                r.group_id = GroupId(s("group-a"));
                r.generation_id = 3;
                r.member_id = s("member-1");
                if version >= 3 {
                    r.group_instance_id = Some(s("instance-1"));
                }
                if version >= 5 {
                    r.protocol_type = Some(s("consumer"));
                    r.protocol_name = Some(s("range"));
                }
                r.assignments = vec![a, b];
                encode(&r, version)
            }
            ApiKey::Heartbeat => {
                let mut r = HeartbeatRequest::default();
                r.group_id = GroupId(s("group-a"));
                r.generation_id = 3;
                r.member_id = s("member-1");
                if version >= 3 {
                    r.group_instance_id = Some(s("instance-1"));
                }
                encode(&r, version)
            }
            ApiKey::LeaveGroup => {
                let mut r = LeaveGroupRequest::default();
                r.group_id = GroupId(s("group-a"));
                if version >= 3 {
                    let mut m = leave_group_request::MemberIdentity::default();
                    m.member_id = s("member-1");
                    m.group_instance_id = Some(s("instance-1"));
                    if version >= 5 {
                        m.reason = Some(s("shutdown"));
                    }
                    let mut n = m.clone();
                    n.member_id = s("member-2");
                    n.group_instance_id = None;
                    r.members = vec![m, n];
                } else {
                    r.member_id = s("member-1");
                }
                encode(&r, version)
            }
            ApiKey::OffsetCommit => {
                let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
                p.partition_index = 0;
                p.committed_offset = 42;
                if version >= 6 {
                    p.committed_leader_epoch = 7;
                }
                p.committed_metadata = Some(s("meta"));
                let mut q = p.clone();
                q.partition_index = 1;
                q.committed_metadata = None;
                let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
                t.name = TopicName(s("orders"));
                t.partitions = vec![p, q];
                let mut u = t.clone();
                u.name = TopicName(s("payments"));
                let mut r = OffsetCommitRequest::default();
                r.group_id = GroupId(s("group-a"));
                r.generation_id_or_member_epoch = 3;
                r.member_id = s("member-1");
                if version >= 7 {
                    r.group_instance_id = Some(s("instance-1"));
                }
                if version <= 4 {
                    r.retention_time_ms = 86_400_000;
                }
                r.topics = vec![t, u];
                encode(&r, version)
            }
            ApiKey::OffsetFetch => {
                let mut r = OffsetFetchRequest::default();
                if version >= 8 {
                    let mut t = offset_fetch_request::OffsetFetchRequestTopics::default();
                    t.name = TopicName(s("orders"));
                    t.partition_indexes = vec![0, 1, 2];
                    let mut u = t.clone();
                    u.name = TopicName(s("payments"));
                    let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
                    g.group_id = GroupId(s("group-a"));
                    if version >= 9 {
                        g.member_id = Some(s("member-1"));
                        g.member_epoch = 5;
                    }
                    g.topics = Some(vec![t, u]);
                    let mut h = g.clone();
                    h.group_id = GroupId(s("group-b"));
                    r.groups = vec![g, h];
                } else {
                    let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
                    t.name = TopicName(s("orders"));
                    t.partition_indexes = vec![0, 1, 2];
                    let mut u = t.clone();
                    u.name = TopicName(s("payments"));
                    r.group_id = GroupId(s("group-a"));
                    r.topics = Some(vec![t, u]);
                }
                r.require_stable = version >= 7;
                encode(&r, version)
            }
            ApiKey::ListGroups => {
                let mut r = ListGroupsRequest::default();
                if version >= 4 {
                    r.states_filter = vec![s("Stable"), s("Empty")];
                }
                if version >= 5 {
                    r.types_filter = vec![s("classic"), s("consumer")];
                }
                encode(&r, version)
            }
            ApiKey::DescribeGroups => {
                let mut r = DescribeGroupsRequest::default();
                r.groups = vec![GroupId(s("group-a")), GroupId(s("group-b"))];
                r.include_authorized_operations = version >= 3;
                encode(&r, version)
            }
            ApiKey::DeleteGroups => {
                let mut r = DeleteGroupsRequest::default();
                r.groups_names = vec![GroupId(s("group-a")), GroupId(s("group-b"))];
                encode(&r, version)
            }
            ApiKey::OffsetDelete => {
                let mut p = offset_delete_request::OffsetDeleteRequestPartition::default();
                p.partition_index = 0;
                let mut q = p.clone();
                q.partition_index = 1;
                let mut t = offset_delete_request::OffsetDeleteRequestTopic::default();
                t.name = TopicName(s("orders"));
                t.partitions = vec![p, q];
                let mut u = t.clone();
                u.name = TopicName(s("payments"));
                let mut r = OffsetDeleteRequest::default();
                r.group_id = GroupId(s("group-a"));
                r.topics = vec![t, u];
                encode(&r, version)
            }
            ApiKey::AlterConfigs => {
                let mut c = alter_configs_request::AlterableConfig::default();
                c.name = s("retention.ms");
                c.value = Some(s("1000"));
                let mut d = c.clone();
                d.name = s("cleanup.policy");
                d.value = None;
                let mut res = alter_configs_request::AlterConfigsResource::default();
                res.resource_type = 2;
                res.resource_name = s("orders");
                res.configs = vec![c, d];
                let mut other = res.clone();
                other.resource_name = s("payments");
                let mut r = AlterConfigsRequest::default();
                r.resources = vec![res, other];
                r.validate_only = true;
                encode(&r, version)
            }
            ApiKey::IncrementalAlterConfigs => {
                let mut c = incremental_alter_configs_request::AlterableConfig::default();
                c.name = s("retention.ms");
                c.config_operation = 0;
                c.value = Some(s("1000"));
                let mut d = c.clone();
                d.name = s("cleanup.policy");
                d.config_operation = 1;
                d.value = None;
                let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
                res.resource_type = 2;
                res.resource_name = s("orders");
                res.configs = vec![c, d];
                let mut other = res.clone();
                other.resource_name = s("payments");
                let mut r = IncrementalAlterConfigsRequest::default();
                r.resources = vec![res, other];
                r.validate_only = true;
                encode(&r, version)
            }
            ApiKey::CreatePartitions => {
                let mut a = create_partitions_request::CreatePartitionsAssignment::default();
                a.broker_ids = vec![BrokerId(1), BrokerId(2), BrokerId(3)];
                let mut b = a.clone();
                b.broker_ids = vec![BrokerId(2), BrokerId(3)];
                let mut t = create_partitions_request::CreatePartitionsTopic::default();
                t.name = TopicName(s("orders"));
                t.count = 5;
                t.assignments = Some(vec![a, b]);
                // A null assignment list lets the broker place the new partitions.
                let mut u = t.clone();
                u.name = TopicName(s("payments"));
                u.assignments = None;
                let mut r = CreatePartitionsRequest::default();
                r.topics = vec![t, u];
                r.timeout_ms = 30_000;
                r.validate_only = true;
                encode(&r, version)
            }
            ApiKey::DeleteRecords => {
                let mut p = delete_records_request::DeleteRecordsPartition::default();
                p.partition_index = 0;
                p.offset = 42;
                let mut q = p.clone();
                q.partition_index = 1;
                q.offset = -1;
                let mut t = delete_records_request::DeleteRecordsTopic::default();
                t.name = TopicName(s("orders"));
                t.partitions = vec![p, q];
                let mut u = t.clone();
                u.name = TopicName(s("payments"));
                let mut r = DeleteRecordsRequest::default();
                r.topics = vec![t, u];
                r.timeout_ms = 30_000;
                encode(&r, version)
            }
            ApiKey::DescribeLogDirs => {
                let mut t = describe_log_dirs_request::DescribableLogDirTopic::default();
                t.topic = TopicName(s("orders"));
                t.partitions = vec![0, 1, 2];
                let mut u = t.clone();
                u.topic = TopicName(s("payments"));
                u.partitions = vec![];
                let mut r = DescribeLogDirsRequest::default();
                r.topics = Some(vec![t, u]);
                encode(&r, version)
            }
            ApiKey::DescribeCluster => {
                let mut r = DescribeClusterRequest::default();
                r.include_cluster_authorized_operations = true;
                if version >= 1 {
                    r.endpoint_type = 2;
                }
                if version >= 2 {
                    r.include_fenced_brokers = true;
                }
                encode(&r, version)
            }
            ApiKey::AddPartitionsToTxn => {
                let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
                t.name = TopicName(s("orders"));
                t.partitions = vec![0, 1, 2];
                let mut r = AddPartitionsToTxnRequest::default();
                r.v3_and_below_transactional_id = TransactionalId(s("txn-a"));
                r.v3_and_below_producer_id = ProducerId(7);
                r.v3_and_below_producer_epoch = 2;
                r.v3_and_below_topics = vec![t.clone(), t];
                encode(&r, version)
            }
            ApiKey::AddOffsetsToTxn => {
                let mut r = AddOffsetsToTxnRequest::default();
                r.transactional_id = TransactionalId(s("txn-a"));
                r.producer_id = ProducerId(7);
                r.producer_epoch = 2;
                r.group_id = GroupId(s("group-a"));
                encode(&r, version)
            }
            ApiKey::EndTxn => {
                let mut r = EndTxnRequest::default();
                r.transactional_id = TransactionalId(s("txn-a"));
                r.producer_id = ProducerId(7);
                r.producer_epoch = 2;
                r.committed = true;
                encode(&r, version)
            }
            ApiKey::WriteTxnMarkers => {
                let mut t = write_txn_markers_request::WritableTxnMarkerTopic::default();
                t.name = TopicName(s("orders"));
                t.partition_indexes = vec![0, 1];
                let mut m = write_txn_markers_request::WritableTxnMarker::default();
                m.producer_id = ProducerId(7);
                m.producer_epoch = 2;
                m.transaction_result = true;
                m.topics = vec![t.clone(), t];
                m.coordinator_epoch = 3;
                let mut r = WriteTxnMarkersRequest::default();
                r.markers = vec![m.clone(), m];
                encode(&r, version)
            }
            ApiKey::TxnOffsetCommit => {
                let mut p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
                p.partition_index = 3;
                p.committed_offset = 99;
                p.committed_metadata = Some(s("meta"));
                if version >= 2 {
                    p.committed_leader_epoch = 4;
                }
                let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
                t.name = TopicName(s("orders"));
                t.partitions = vec![p.clone(), p];
                let mut r = TxnOffsetCommitRequest::default();
                r.transactional_id = TransactionalId(s("txn-a"));
                r.group_id = GroupId(s("group-a"));
                r.producer_id = ProducerId(7);
                r.producer_epoch = 2;
                if version >= 3 {
                    r.generation_id = 5;
                    r.member_id = s("member-1");
                    r.group_instance_id = Some(s("instance-1"));
                }
                r.topics = vec![t];
                encode(&r, version)
            }
            ApiKey::ListTransactions => {
                let mut r = ListTransactionsRequest::default();
                r.state_filters = vec![s("Ongoing"), s("PrepareCommit")];
                r.producer_id_filters = vec![ProducerId(1), ProducerId(2)];
                if version >= 1 {
                    r.duration_filter = 1000;
                }
                encode(&r, version)
            }
            ApiKey::DescribeTransactions => {
                let mut r = DescribeTransactionsRequest::default();
                r.transactional_ids = vec![TransactionalId(s("a")), TransactionalId(s("b"))];
                encode(&r, version)
            }
            ApiKey::DescribeProducers => {
                let mut t = describe_producers_request::TopicRequest::default();
                t.name = TopicName(s("orders"));
                t.partition_indexes = vec![0, 1];
                let mut r = DescribeProducersRequest::default();
                r.topics = vec![t.clone(), t];
                encode(&r, version)
            }
            ApiKey::ElectLeaders => {
                let mut t = elect_leaders_request::TopicPartitions::default();
                t.topic = TopicName(s("orders"));
                t.partitions = vec![0, 1, 2];
                let mut u = t.clone();
                u.topic = TopicName(s("payments"));
                u.partitions = vec![];
                let mut r = ElectLeadersRequest::default();
                if version >= 1 {
                    r.election_type = 1;
                }
                r.topic_partitions = Some(vec![t, u]);
                r.timeout_ms = 30_000;
                encode(&r, version)
            }
            ApiKey::AlterPartitionReassignments => {
                let mut p = alter_partition_reassignments_request::ReassignablePartition::default();
                p.partition_index = 0;
                p.replicas = Some(vec![BrokerId(1), BrokerId(2), BrokerId(3)]);
                let mut q = p.clone();
                q.partition_index = 1;
                q.replicas = None;
                let mut t = alter_partition_reassignments_request::ReassignableTopic::default();
                t.name = TopicName(s("orders"));
                t.partitions = vec![p, q];
                let mut u = t.clone();
                u.name = TopicName(s("payments"));
                let mut r = AlterPartitionReassignmentsRequest::default();
                r.timeout_ms = 30_000;
                r.topics = vec![t, u];
                encode(&r, version)
            }
            ApiKey::ListPartitionReassignments => {
                let mut t =
                    list_partition_reassignments_request::ListPartitionReassignmentsTopics::default(
                    );
                t.name = TopicName(s("orders"));
                t.partition_indexes = vec![0, 1];
                let mut u = t.clone();
                u.name = TopicName(s("payments"));
                u.partition_indexes = vec![];
                let mut r = ListPartitionReassignmentsRequest::default();
                r.timeout_ms = 30_000;
                r.topics = Some(vec![t, u]);
                encode(&r, version)
            }
            ApiKey::OffsetForLeaderEpoch => {
                let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
                p.partition = 3;
                p.current_leader_epoch = 7;
                p.leader_epoch = 6;
                let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
                t.topic = TopicName(s("orders"));
                t.partitions = vec![p.clone(), p];
                let mut r = OffsetForLeaderEpochRequest::default();
                r.replica_id = BrokerId(2);
                r.topics = vec![t.clone(), t];
                encode(&r, version)
            }
            other => panic!("no sample for {other:?}"),
        }
    }

    /// The schemas here must agree with the codec for every served version, or valid
    /// requests would be refused.
    #[test]
    fn accepts_every_codec_encoding_of_every_served_version() {
        for range in SUPPORTED_APIS {
            for version in range.min_version..=range.max_version {
                if !crate::api_versions::is_supported(range.api_key as i16, version) {
                    continue;
                }
                let body = sample(
                    range.api_key,
                    crate::api_versions::codec_version(range.api_key, version),
                );
                assert_eq!(
                    check_request_shape(range.api_key, version, &body),
                    Ok(()),
                    "{:?} v{version}",
                    range.api_key
                );
                assert_eq!(
                    walk_schema(range.api_key, version, &body),
                    Ok(body.len()),
                    "{:?} v{version} walk stops short of the encoding",
                    range.api_key
                );
            }
        }
    }

    #[test]
    fn refuses_impossible_counts_in_group_apis() {
        // Classic: DeleteGroups v0 claiming 2^31-1 group names.
        let body = [0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            check_against_schema(ApiKey::DeleteGroups, 0, &body),
            Err(ShapeError::Impossible { .. })
        ));
        // Classic: JoinGroup v5 with empty strings and 2^31-1 protocols.
        let mut body = vec![
            0, 0, 0, 0, 0x75, 0x30, 0, 0, 0xea, 0x60, 0, 0, 0xff, 0xff, 0, 0,
        ];
        body.extend([0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            check_against_schema(ApiKey::JoinGroup, 5, &body),
            Err(ShapeError::Impossible { position: 16, .. })
        ));
        // Flexible: OffsetFetch v8 with a compact array of 2^32-2 groups.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            check_against_schema(ApiKey::OffsetFetch, 8, &body),
            Err(ShapeError::Impossible { .. })
        ));
        // Classic bytes: SyncGroup v0 assignment claiming 2^31-1 bytes.
        let mut body = vec![0, 1, b'g', 0, 0, 0, 1, 0, 1, b'm', 0, 0, 0, 1, 0, 1, b'm'];
        body.extend([0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            check_against_schema(ApiKey::SyncGroup, 0, &body),
            Err(ShapeError::Impossible { position: 17, .. })
        ));
    }

    #[test]
    fn accepts_null_arrays_in_admin_apis() {
        for version in 1..=4 {
            let body = encode(&DescribeLogDirsRequest::default(), version);
            assert_eq!(
                walk_schema(ApiKey::DescribeLogDirs, version, &body),
                Ok(body.len()),
                "DescribeLogDirs v{version}"
            );
        }
        for version in 0..=3 {
            let mut t = create_partitions_request::CreatePartitionsTopic::default();
            t.name = TopicName(s("orders"));
            t.assignments = None;
            let mut r = CreatePartitionsRequest::default();
            r.topics = vec![t];
            let body = encode(&r, version);
            assert_eq!(
                walk_schema(ApiKey::CreatePartitions, version, &body),
                Ok(body.len()),
                "CreatePartitions v{version}"
            );
        }
    }

    #[test]
    fn accepts_null_lists_in_partition_admin_apis() {
        for version in 0..=2 {
            let body = encode(&ElectLeadersRequest::default(), version);
            assert_eq!(
                walk_schema(ApiKey::ElectLeaders, version, &body),
                Ok(body.len()),
                "ElectLeaders v{version}"
            );
        }
        let body = encode(&ListPartitionReassignmentsRequest::default(), 0);
        assert_eq!(
            walk_schema(ApiKey::ListPartitionReassignments, 0, &body),
            Ok(body.len())
        );
    }

    #[test]
    fn refuses_impossible_counts_in_partition_admin_apis() {
        // Classic: ElectLeaders v1, election type then 2^31-1 topics.
        let body = [1, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0x75, 0x30];
        assert!(matches!(
            check_against_schema(ApiKey::ElectLeaders, 1, &body),
            Err(ShapeError::Impossible { position: 1, .. })
        ));
        // Flexible: ElectLeaders v2, one topic "t" claiming 2^32-2 partitions.
        let body = [0, 0x02, 0x02, b't', 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            check_against_schema(ApiKey::ElectLeaders, 2, &body),
            Err(ShapeError::Impossible { position: 4, .. })
        ));
        // AlterPartitionReassignments v0: timeout, one topic "t", one partition whose
        // replica list claims 2^32-2 brokers.
        let body = [
            0, 0, 0x75, 0x30, 0x02, 0x02, b't', 0x02, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ];
        assert!(matches!(
            check_against_schema(ApiKey::AlterPartitionReassignments, 0, &body),
            Err(ShapeError::Impossible { position: 12, .. })
        ));
        // ListPartitionReassignments v0: timeout then 2^32-2 topics.
        let body = [0, 0, 0x75, 0x30, 0xff, 0xff, 0xff, 0xff, 0x0f, 0];
        assert!(matches!(
            check_against_schema(ApiKey::ListPartitionReassignments, 0, &body),
            Err(ShapeError::Impossible { position: 4, .. })
        ));
    }

    #[test]
    fn refuses_impossible_counts_in_admin_apis() {
        // Classic: DeleteRecords v0 claiming 2^31-1 topics.
        let body = [0x7f, 0xff, 0xff, 0xff, 0, 0, 0x75, 0x30];
        assert!(matches!(
            check_against_schema(ApiKey::DeleteRecords, 0, &body),
            Err(ShapeError::Impossible { position: 0, .. })
        ));
        // Classic nested broker ids: CreatePartitions v1, one topic "t" with one assignment
        // claiming 2^31-1 broker ids.
        let mut body = vec![0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 3, 0, 0, 0, 1];
        body.extend([0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            check_against_schema(ApiKey::CreatePartitions, 1, &body),
            Err(ShapeError::Impossible { position: 15, .. })
        ));
        // Flexible nested broker ids: CreatePartitions v2, compact forms of the same.
        let body = [
            0x02, 0x02, b't', 0, 0, 0, 3, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ];
        assert!(matches!(
            check_against_schema(ApiKey::CreatePartitions, 2, &body),
            Err(ShapeError::Impossible { position: 8, .. })
        ));
        // Flexible: DescribeLogDirs v2 with a compact array of 2^32-2 topics.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            check_against_schema(ApiKey::DescribeLogDirs, 2, &body),
            Err(ShapeError::Impossible { .. })
        ));
        // Classic partitions: DescribeLogDirs v1, one topic "t" claiming 2^31-1 partitions.
        let mut body = vec![0, 0, 0, 1, 0, 1, b't'];
        body.extend([0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            check_against_schema(ApiKey::DescribeLogDirs, 1, &body),
            Err(ShapeError::Impossible { position: 7, .. })
        ));
        // Classic: AlterConfigs v0, one resource "t" claiming 2^31-1 configs.
        let mut body = vec![0, 0, 0, 1, 2, 0, 1, b't'];
        body.extend([0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            check_against_schema(ApiKey::AlterConfigs, 0, &body),
            Err(ShapeError::Impossible { position: 8, .. })
        ));
        // Flexible: IncrementalAlterConfigs v1 with a compact array of 2^32-2 resources.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0];
        assert!(matches!(
            check_against_schema(ApiKey::IncrementalAlterConfigs, 1, &body),
            Err(ShapeError::Impossible { .. })
        ));
        // Flexible from v0: DescribeCluster v0 with a tagged-field count of 2^28.
        let body = [1, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(matches!(
            check_against_schema(ApiKey::DescribeCluster, 0, &body),
            Err(ShapeError::Impossible { position: 1, .. })
        ));
    }

    #[test]
    fn every_served_api_has_a_schema() {
        for range in SUPPORTED_APIS {
            assert!(
                schema(range.api_key).is_some(),
                "{:?} is served but has no request schema",
                range.api_key
            );
        }
    }

    /// Without a schema the walk refuses rather than passes; unserved APIs still pass
    /// `check_request_shape`, being refused before decoding.
    #[test]
    fn a_missing_schema_is_refused_not_passed() {
        let key = ApiKey::SaslHandshake;
        assert!(schema(key).is_none(), "pick an api key without a schema");
        assert_eq!(
            check_against_schema(key, 1, &[0, 5, b'P', b'L', b'A', b'I', b'N']),
            Err(ShapeError::NoSchema(key as i16))
        );
        if supported_range(key as i16).is_none() {
            assert_eq!(check_request_shape(key, 1, &[]), Ok(()));
        }
    }

    #[test]
    fn refuses_impossible_counts_before_decoding() {
        let body = [0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            check_request_shape(ApiKey::Metadata, 1, &body),
            Err(ShapeError::Impossible { .. })
        ));
        // Flexible: compact array of 2^32-2 topics.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            check_request_shape(ApiKey::Metadata, 12, &body),
            Err(ShapeError::Impossible { .. })
        ));
    }

    #[test]
    fn truncation_anywhere_is_refused() {
        for range in SUPPORTED_APIS {
            for version in range.min_version..=range.max_version {
                if !crate::api_versions::is_supported(range.api_key as i16, version) {
                    continue;
                }
                let body = sample(
                    range.api_key,
                    crate::api_versions::codec_version(range.api_key, version),
                );
                for cut in 0..body.len() {
                    assert!(
                        check_request_shape(range.api_key, version, &body[..cut]).is_err(),
                        "{:?} v{version} cut at {cut}",
                        range.api_key
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bodies_never_panic(api in 0usize..1024, version in 0i16..16, body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let key = SUPPORTED_APIS[api % SUPPORTED_APIS.len()].api_key;
            let _ = check_request_shape(key, version, &body);
        }
    }
}

//! The one table of API keys and version ranges the broker serves.
//!
//! ApiVersions answers from this table, and the dispatcher refuses anything outside it, so a
//! client is never offered a version the broker cannot speak. A range is widened only together
//! with the handler code and a test with a real client.

use kafka_protocol::messages::ApiKey;

/// One supported API and the inclusive version range the broker implements for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionRange {
    /// The Kafka API this range is for.
    pub api_key: ApiKey,
    /// Oldest version served.
    pub min_version: i16,
    /// Newest version served.
    pub max_version: i16,
}

const fn range(api_key: ApiKey, min_version: i16, max_version: i16) -> ApiVersionRange {
    ApiVersionRange {
        api_key,
        min_version,
        max_version,
    }
}

/// Oldest Produce version that can carry v2 record batches; older ones carry the message
/// formats v0/v1, which are not stored.
pub const PRODUCE_MIN_SERVED_VERSION: i16 = 3;

/// Every API the broker implements, in api-key order.
///
/// Produce is advertised from v0 although v0-v2 are refused, exactly as Apache Kafka 4 does
/// (KAFKA-18659): librdkafka before 2.10 compresses with gzip, snappy or lz4 only when the
/// broker lists Produce v0, and would otherwise silently send uncompressed batches.
pub const SUPPORTED_APIS: &[ApiVersionRange] = &[
    range(ApiKey::Produce, 0, 9),
    range(ApiKey::Fetch, 4, 12),
    range(ApiKey::ListOffsets, 1, 7),
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    range(ApiKey::Metadata, 0, 12),
    range(ApiKey::OffsetCommit, 2, 9),
    range(ApiKey::OffsetFetch, 1, 9),
    range(ApiKey::FindCoordinator, 0, 4),
    range(ApiKey::JoinGroup, 0, 9),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::DescribeGroups, 0, 5),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::DeleteRecords, 0, 2),
    range(ApiKey::InitProducerId, 0, 4),
    range(ApiKey::AddPartitionsToTxn, 0, 3),
    range(ApiKey::AddOffsetsToTxn, 0, 3),
    range(ApiKey::EndTxn, 0, 3),
    range(ApiKey::WriteTxnMarkers, 1, 1),
    range(ApiKey::TxnOffsetCommit, 0, 3),
    range(ApiKey::DescribeConfigs, 1, 4),
    range(ApiKey::AlterConfigs, 0, 2),
    range(ApiKey::DescribeLogDirs, 0, 4),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::ElectLeaders, 0, 2),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::AlterPartitionReassignments, 0, 0),
    range(ApiKey::ListPartitionReassignments, 0, 0),
    range(ApiKey::OffsetDelete, 0, 0),
    range(ApiKey::DescribeCluster, 0, 1),
    range(ApiKey::DescribeProducers, 0, 0),
    range(ApiKey::DescribeTransactions, 0, 0),
    range(ApiKey::ListTransactions, 0, 1),
];

/// The version the codec decodes and encodes a request at. DescribeLogDirs v0 and v1 are the
/// same on the wire (v1 only changed throttling); the codec knows v1 only, while clients such as
/// kafka-python speak v0.
pub fn codec_version(api_key: ApiKey, api_version: i16) -> i16 {
    match (api_key, api_version) {
        (ApiKey::DescribeLogDirs, 0) => 1,
        _ => api_version,
    }
}

/// The served range for a raw api key, or `None` when the broker does not implement it.
pub fn supported_range(api_key: i16) -> Option<ApiVersionRange> {
    SUPPORTED_APIS
        .iter()
        .copied()
        .find(|r| r.api_key as i16 == api_key)
}

/// Whether the broker serves `api_key` at `api_version`.
pub fn is_supported(api_key: i16, api_version: i16) -> bool {
    if api_key == ApiKey::Produce as i16 && api_version < PRODUCE_MIN_SERVED_VERSION {
        return false;
    }
    supported_range(api_key).is_some_and(|r| (r.min_version..=r.max_version).contains(&api_version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    /// Every advertised range must be one the codec crate can decode and encode.
    #[test]
    fn every_supported_range_is_within_the_codec_range() {
        for r in SUPPORTED_APIS {
            let codec = match r.api_key {
                ApiKey::Produce => ProduceRequest::VERSIONS,
                ApiKey::Fetch => FetchRequest::VERSIONS,
                ApiKey::ListOffsets => ListOffsetsRequest::VERSIONS,
                ApiKey::Metadata => MetadataRequest::VERSIONS,
                ApiKey::ApiVersions => ApiVersionsRequest::VERSIONS,
                ApiKey::CreateTopics => CreateTopicsRequest::VERSIONS,
                ApiKey::DeleteTopics => DeleteTopicsRequest::VERSIONS,
                ApiKey::DescribeConfigs => DescribeConfigsRequest::VERSIONS,
                ApiKey::FindCoordinator => FindCoordinatorRequest::VERSIONS,
                ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS,
                ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS,
                ApiKey::JoinGroup => JoinGroupRequest::VERSIONS,
                ApiKey::Heartbeat => HeartbeatRequest::VERSIONS,
                ApiKey::LeaveGroup => LeaveGroupRequest::VERSIONS,
                ApiKey::SyncGroup => SyncGroupRequest::VERSIONS,
                ApiKey::DescribeGroups => DescribeGroupsRequest::VERSIONS,
                ApiKey::ListGroups => ListGroupsRequest::VERSIONS,
                ApiKey::DeleteGroups => DeleteGroupsRequest::VERSIONS,
                ApiKey::OffsetDelete => OffsetDeleteRequest::VERSIONS,
                ApiKey::DeleteRecords => DeleteRecordsRequest::VERSIONS,
                ApiKey::InitProducerId => InitProducerIdRequest::VERSIONS,
                ApiKey::AlterConfigs => AlterConfigsRequest::VERSIONS,
                ApiKey::DescribeLogDirs => DescribeLogDirsRequest::VERSIONS,
                ApiKey::CreatePartitions => CreatePartitionsRequest::VERSIONS,
                ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::VERSIONS,
                ApiKey::DescribeCluster => DescribeClusterRequest::VERSIONS,
                ApiKey::AddPartitionsToTxn => AddPartitionsToTxnRequest::VERSIONS,
                ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::VERSIONS,
                ApiKey::EndTxn => EndTxnRequest::VERSIONS,
                ApiKey::WriteTxnMarkers => WriteTxnMarkersRequest::VERSIONS,
                ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::VERSIONS,
                ApiKey::DescribeProducers => DescribeProducersRequest::VERSIONS,
                ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::VERSIONS,
                ApiKey::DescribeTransactions => DescribeTransactionsRequest::VERSIONS,
                ApiKey::ListTransactions => ListTransactionsRequest::VERSIONS,
                ApiKey::ElectLeaders => ElectLeadersRequest::VERSIONS,
                ApiKey::AlterPartitionReassignments => AlterPartitionReassignmentsRequest::VERSIONS,
                ApiKey::ListPartitionReassignments => ListPartitionReassignmentsRequest::VERSIONS,
                other => panic!("no codec check for {other:?}"),
            };
            let min = if r.api_key == ApiKey::Produce {
                PRODUCE_MIN_SERVED_VERSION
            } else {
                codec_version(r.api_key, r.min_version)
            };
            assert!(min >= codec.min && r.max_version <= codec.max, "{r:?}");
        }
    }

    #[test]
    fn lookups() {
        assert!(is_supported(ApiKey::Produce as i16, 9));
        assert!(!is_supported(ApiKey::Produce as i16, 2));
        assert_eq!(supported_range(0).map(|r| r.min_version), Some(0));
        assert!(!is_supported(ApiKey::Produce as i16, 10));
        assert!(!is_supported(999, 0));
        assert_eq!(supported_range(18).map(|r| r.max_version), Some(4));
    }
}

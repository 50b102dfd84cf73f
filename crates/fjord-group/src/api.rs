//! Decoded request fields in, response fields out, for each group API.
//!
//! These mirror the Kafka message fields the coordinator needs, independent of the request
//! version on the wire: the broker handler fills defaults for old versions (e.g. JoinGroup v0's
//! rebalance timeout is its session timeout) and copies the results into the versioned response.

use bytes::Bytes;

use crate::error::ErrorCode;
use crate::group::GroupState;

/// One protocol a member can speak (e.g. assignor "range" with its subscription metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupProtocol {
    /// Protocol name; for consumers the assignor name.
    pub name: String,
    /// Opaque to the coordinator except for the "consumer" subscription topics.
    pub metadata: Bytes,
}

/// JoinGroup request fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupRequest {
    /// Request version: v4+ gets MEMBER_ID_REQUIRED for new dynamic members, v9+ may skip
    /// assignment for a static leader.
    pub version: i16,
    /// The group to join.
    pub group_id: String,
    /// How long the member may go without heartbeating.
    pub session_timeout_ms: i32,
    /// How long the member may take to rejoin during a rebalance (v0: the session timeout).
    pub rebalance_timeout_ms: i32,
    /// Empty for a new member.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// E.g. "consumer" or "connect".
    pub protocol_type: String,
    /// Supported protocols in the member's order of preference.
    pub protocols: Vec<GroupProtocol>,
    /// From the request header; prefixes generated member ids.
    pub client_id: String,
    /// The client's address, shown by DescribeGroups.
    pub client_host: String,
}

/// A member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id, if any.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// JoinGroup response fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupResponse {
    /// Outcome.
    pub error: ErrorCode,
    /// The new generation, or -1 on error.
    pub generation_id: i32,
    /// The group's protocol type (v7+).
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id ("" if none).
    pub leader: String,
    /// v9+: a static leader rejoining a stable group must not run the assignor.
    pub skip_assignment: bool,
    /// The member's id (new, generated, or echoed).
    pub member_id: String,
    /// All members with metadata for the leader; empty for followers.
    pub members: Vec<JoinGroupMember>,
}

impl JoinGroupResponse {
    /// Kafka's `JoinGroupResult(memberId, error)`: an error with no group information.
    pub fn error(member_id: impl Into<String>, error: ErrorCode) -> Self {
        Self {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.into(),
            members: Vec::new(),
        }
    }
}

/// One member's assignment as sent by the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupAssignment {
    /// The member the assignment is for.
    pub member_id: String,
    /// Opaque assignment bytes.
    pub assignment: Bytes,
}

/// SyncGroup request fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupRequest {
    /// The group.
    pub group_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// Static instance id, if any.
    pub group_instance_id: Option<String>,
    /// v5+: checked against the group's.
    pub protocol_type: Option<String>,
    /// v5+: checked against the group's.
    pub protocol_name: Option<String>,
    /// Only the leader sends assignments.
    pub assignments: Vec<SyncGroupAssignment>,
}

/// SyncGroup response fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupResponse {
    /// Outcome.
    pub error: ErrorCode,
    /// The group's protocol type on success.
    pub protocol_type: Option<String>,
    /// The group's protocol on success.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    /// Kafka's `SyncGroupResult(error)`.
    pub fn error(error: ErrorCode) -> Self {
        Self {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// Heartbeat request fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The group.
    pub group_id: String,
    /// The member's generation.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// Static instance id, if any.
    pub group_instance_id: Option<String>,
}

/// Heartbeat response fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// Outcome; REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub error: ErrorCode,
}

/// A member named in LeaveGroup (v3+ batches them; v0-2 send exactly one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberIdentity {
    /// Member id, or empty to remove a static member by instance id (admin removal).
    pub member_id: String,
    /// Static instance id, if any.
    pub group_instance_id: Option<String>,
}

/// LeaveGroup request fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    /// The group.
    pub group_id: String,
    /// Members leaving.
    pub members: Vec<MemberIdentity>,
}

/// The outcome for one leaving member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupMemberResponse {
    /// As sent.
    pub member_id: String,
    /// As sent.
    pub group_instance_id: Option<String>,
    /// Outcome for this member.
    pub error: ErrorCode,
}

/// LeaveGroup response fields. For v0-2 the broker reports the single member's error at the top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupResponse {
    /// Group-level outcome.
    pub error: ErrorCode,
    /// Per-member outcomes, in request order.
    pub members: Vec<LeaveGroupMemberResponse>,
}

/// One partition's offset in an OffsetCommit request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitPartition {
    /// Partition index.
    pub partition_index: i32,
    /// The next offset to consume.
    pub committed_offset: i64,
    /// v6+: leader epoch of the last consumed record, -1 if unknown.
    pub committed_leader_epoch: i32,
    /// v1 only: explicit commit timestamp, -1 for "now".
    pub commit_timestamp_ms: i64,
    /// Client metadata; `None` is stored as "".
    pub committed_metadata: Option<String>,
}

/// One topic in an OffsetCommit request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitTopic {
    /// Topic name.
    pub name: String,
    /// Partitions to commit.
    pub partitions: Vec<OffsetCommitPartition>,
}

/// OffsetCommit request fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    /// The group.
    pub group_id: String,
    /// -1 for a simple (non-group-managed) consumer.
    pub generation_id: i32,
    /// Empty for a simple consumer.
    pub member_id: String,
    /// Static instance id, if any.
    pub group_instance_id: Option<String>,
    /// v2-4: retention override; -1 for the broker default.
    pub retention_time_ms: i64,
    /// Offsets to commit.
    pub topics: Vec<OffsetCommitTopic>,
}

/// TxnOffsetCommit request fields (KIP-98): offsets a transactional producer commits as part
/// of its transaction, counted only once the transaction commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommitRequest {
    /// Request version: v0-2 carry no member fields, so the coordinator ignores
    /// `generation_id`, `member_id` and `group_instance_id` below v3.
    pub version: i16,
    /// The producer's transactional id; the broker authorizes it, the coordinator only logs it.
    pub transactional_id: String,
    /// The group.
    pub group_id: String,
    /// The producer whose transaction the offsets belong to.
    pub producer_id: i64,
    /// The producer's epoch; the append fails if a newer epoch fenced it.
    pub producer_epoch: i16,
    /// v3+ (KIP-447): the consumer's generation, -1 if not given.
    pub generation_id: i32,
    /// v3+ (KIP-447): the consumer's member id, "" if not given.
    pub member_id: String,
    /// v3+ (KIP-447): the consumer's static instance id, if any.
    pub group_instance_id: Option<String>,
    /// Offsets to commit; `commit_timestamp_ms` should be -1 (the coordinator's clock).
    pub topics: Vec<OffsetCommitTopic>,
}

/// A per-partition outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionError {
    /// Partition index.
    pub partition_index: i32,
    /// Outcome.
    pub error: ErrorCode,
}

/// Per-partition outcomes of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitionErrors {
    /// Topic name.
    pub name: String,
    /// Outcomes, in request order.
    pub partitions: Vec<PartitionError>,
}

/// OffsetCommit response fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitResponse {
    /// Outcomes, in request order.
    pub topics: Vec<TopicPartitionErrors>,
}

/// A topic with the partitions a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    /// Topic name.
    pub name: String,
    /// Partition indexes.
    pub partition_indexes: Vec<i32>,
}

/// OffsetFetch request fields (one group; v8+ batches are split by the broker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchRequest {
    /// The group.
    pub group_id: String,
    /// `None` fetches every committed offset of the group.
    pub topics: Option<Vec<TopicPartitions>>,
    /// v7+: answer UNSTABLE_OFFSET_COMMIT for partitions with a commit still being written or
    /// a transactional commit not yet committed or aborted.
    pub require_stable: bool,
}

/// One partition's committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchPartition {
    /// Partition index.
    pub partition_index: i32,
    /// Committed offset, -1 if none.
    pub committed_offset: i64,
    /// Leader epoch, -1 if unknown.
    pub committed_leader_epoch: i32,
    /// Client metadata ("" if none).
    pub metadata: String,
    /// Outcome.
    pub error: ErrorCode,
}

/// One topic's committed offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchTopic {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partitions: Vec<OffsetFetchPartition>,
}

/// OffsetFetch response fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchResponse {
    /// Group-level outcome.
    pub error: ErrorCode,
    /// Requested partitions in request order, or all offsets sorted by topic and partition.
    pub topics: Vec<OffsetFetchTopic>,
}

/// OffsetDelete request fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteRequest {
    /// The group.
    pub group_id: String,
    /// Offsets to delete.
    pub topics: Vec<TopicPartitions>,
}

/// OffsetDelete response fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    /// Group-level outcome; when set, `topics` is empty.
    pub error: ErrorCode,
    /// Per-partition outcomes, in request order.
    pub topics: Vec<TopicPartitionErrors>,
}

/// One group's DeleteGroups outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedGroup {
    /// The group.
    pub group_id: String,
    /// Outcome.
    pub error: ErrorCode,
}

/// DeleteGroups response fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroupsResponse {
    /// Outcomes, in request order.
    pub results: Vec<DeletedGroup>,
}

/// One member in DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id, if any.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the selected protocol (only when Stable).
    pub member_metadata: Bytes,
    /// Current assignment (only when Stable).
    pub member_assignment: Bytes,
}

/// One group in DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    /// Outcome.
    pub error: ErrorCode,
    /// The group.
    pub group_id: String,
    /// State name; an unknown group is reported as Dead, like Kafka.
    pub group_state: GroupState,
    /// Protocol type ("" if none).
    pub protocol_type: String,
    /// Selected protocol when Stable, else "".
    pub protocol_data: String,
    /// Members in join order.
    pub members: Vec<DescribedMember>,
}

/// One group in ListGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// The group.
    pub group_id: String,
    /// Protocol type ("" for offset-only groups).
    pub protocol_type: String,
    /// v4+: state.
    pub group_state: GroupState,
}

/// A response the coordinator hands back through [`crate::Effect::Respond`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// JoinGroup.
    JoinGroup(JoinGroupResponse),
    /// SyncGroup.
    SyncGroup(SyncGroupResponse),
    /// Heartbeat.
    Heartbeat(HeartbeatResponse),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupResponse),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitResponse),
    /// TxnOffsetCommit: the same per-partition outcomes as OffsetCommit.
    TxnOffsetCommit(OffsetCommitResponse),
    /// OffsetDelete.
    OffsetDelete(OffsetDeleteResponse),
    /// DeleteGroups.
    DeleteGroups(DeleteGroupsResponse),
}

//! The requests a broker or admin tool sends to the controller quorum, and their answers.
//!
//! Shaped after Kafka's controller APIs (BrokerRegistration, BrokerHeartbeat, CreateTopics,
//! AlterPartition, ...) with only the fields the controller acts on. Per-item results carry an
//! [`ErrorCode`] as in Kafka, so one bad topic does not fail a whole CreateTopics. They are
//! serde types because a non-active controller forwards them to the active one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error_code::ErrorCode;
use crate::record::{ConfigResource, Listener};

/// A request to the active controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// BrokerRegistration.
    RegisterBroker(RegisterBrokerRequest),
    /// BrokerHeartbeat.
    BrokerHeartbeat(BrokerHeartbeatRequest),
    /// CreateTopics.
    CreateTopics(CreateTopicsRequest),
    /// DeleteTopics.
    DeleteTopics(DeleteTopicsRequest),
    /// CreatePartitions.
    CreatePartitions(CreatePartitionsRequest),
    /// AlterPartition (ISR changes from a partition leader).
    AlterPartition(AlterPartitionRequest),
    /// ElectLeaders.
    ElectLeaders(ElectLeadersRequest),
    /// IncrementalAlterConfigs.
    AlterConfigs(AlterConfigsRequest),
    /// AllocateProducerIds (KIP-730).
    AllocateProducerIds(AllocateProducerIdsRequest),
    /// AlterPartitionReassignments.
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
}

/// The answer to a [`ControllerRequest`], same variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerResponse {
    /// BrokerRegistration.
    RegisterBroker(RegisterBrokerResponse),
    /// BrokerHeartbeat.
    BrokerHeartbeat(BrokerHeartbeatResponse),
    /// CreateTopics.
    CreateTopics(CreateTopicsResponse),
    /// DeleteTopics.
    DeleteTopics(DeleteTopicsResponse),
    /// CreatePartitions.
    CreatePartitions(CreatePartitionsResponse),
    /// AlterPartition.
    AlterPartition(AlterPartitionResponse),
    /// ElectLeaders.
    ElectLeaders(ElectLeadersResponse),
    /// IncrementalAlterConfigs.
    AlterConfigs(AlterConfigsResponse),
    /// AllocateProducerIds.
    AllocateProducerIds(AllocateProducerIdsResponse),
    /// AlterPartitionReassignments.
    AlterPartitionReassignments(AlterPartitionReassignmentsResponse),
}

/// A broker announcing itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRequest {
    /// `node.id`.
    pub broker_id: i32,
    /// Random per process start; the same value re-registers, another one is a second
    /// process and is refused while the first one's session lives.
    pub incarnation_id: Uuid,
    /// Advertised listeners.
    pub listeners: Vec<Listener>,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// The broker's new epoch, to put in every later request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerResponse {
    /// Outcome.
    pub error: ErrorCode,
    /// The epoch of this registration (-1 on error).
    pub broker_epoch: i64,
}

/// A broker's periodic liveness report; not written to the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeatRequest {
    /// `node.id`.
    pub broker_id: i32,
    /// Epoch from the registration.
    pub broker_epoch: i64,
    /// Metadata offset the broker has applied; it is unfenced once this reaches its
    /// registration.
    pub current_metadata_offset: u64,
    /// The broker wants to stay fenced (e.g. still recovering logs).
    pub want_fence: bool,
    /// The broker is shutting down and wants its leaderships moved first.
    pub want_shut_down: bool,
}

/// What the broker should do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeatResponse {
    /// Outcome.
    pub error: ErrorCode,
    /// The broker has applied metadata up to its registration.
    pub is_caught_up: bool,
    /// The broker is fenced after this heartbeat.
    pub is_fenced: bool,
    /// The broker's leaderships have been moved and it may stop.
    pub should_shut_down: bool,
}

/// An explicit replica list for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAssignment {
    /// Partition index.
    pub partition: i32,
    /// Broker ids, preferred leader first.
    pub replicas: Vec<i32>,
}

/// One topic to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count, or -1 for `num.partitions` (must be -1 with explicit assignments).
    pub num_partitions: i32,
    /// Replication factor, or -1 for `default.replication.factor` (must be -1 with explicit
    /// assignments).
    pub replication_factor: i16,
    /// Explicit placement instead of the round-robin one.
    pub assignments: Vec<ReplicaAssignment>,
    /// Topic config overrides.
    pub configs: BTreeMap<String, String>,
}

/// CreateTopics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicsRequest {
    /// Topics to create.
    pub topics: Vec<NewTopic>,
    /// Check and answer without creating anything.
    pub validate_only: bool,
}

/// The outcome for one topic of a CreateTopics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicResult {
    /// Name.
    pub name: String,
    /// The new topic's id (nil on error).
    pub topic_id: Uuid,
    /// Outcome.
    pub error: ErrorCode,
    /// Why, for humans.
    pub error_message: Option<String>,
    /// Partitions created (-1 on error).
    pub num_partitions: i32,
    /// Replication factor used (-1 on error).
    pub replication_factor: i16,
}

/// CreateTopics answer, one result per requested topic in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicsResponse {
    /// Results.
    pub topics: Vec<CreateTopicResult>,
}

/// A topic named by name or by id, as DeleteTopics v6 allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By id.
    Id(Uuid),
}

/// DeleteTopics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicsRequest {
    /// Topics to delete.
    pub topics: Vec<TopicRef>,
}

/// The outcome for one topic of a DeleteTopics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicResult {
    /// The topic as named in the request.
    pub topic: TopicRef,
    /// Outcome.
    pub error: ErrorCode,
}

/// DeleteTopics answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicsResponse {
    /// Results, in request order.
    pub topics: Vec<DeleteTopicResult>,
}

/// Grow one topic to `count` partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsTopic {
    /// Topic name.
    pub name: String,
    /// The new total partition count.
    pub count: i32,
    /// Explicit replicas for each new partition, in order; `None` for round-robin.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// CreatePartitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsRequest {
    /// Topics to grow.
    pub topics: Vec<CreatePartitionsTopic>,
    /// Check and answer without creating anything.
    pub validate_only: bool,
}

/// The outcome for one topic of a CreatePartitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsResult {
    /// Topic name.
    pub name: String,
    /// Outcome.
    pub error: ErrorCode,
    /// Why, for humans.
    pub error_message: Option<String>,
}

/// CreatePartitions answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsResponse {
    /// Results, in request order.
    pub topics: Vec<CreatePartitionsResult>,
}

/// One partition's proposed ISR, sent by its leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionData {
    /// Partition index.
    pub partition: i32,
    /// The leader epoch the leader is acting in.
    pub leader_epoch: i32,
    /// The proposed ISR.
    pub new_isr: Vec<i32>,
    /// The partition epoch the proposal was built on.
    pub partition_epoch: i32,
}

/// The partitions of one topic in an AlterPartition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionTopic {
    /// Topic id.
    pub topic_id: Uuid,
    /// Partitions.
    pub partitions: Vec<AlterPartitionData>,
}

/// AlterPartition: a partition leader shrinking or expanding ISRs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionRequest {
    /// The sending broker, which must lead every partition named.
    pub broker_id: i32,
    /// Its epoch.
    pub broker_epoch: i64,
    /// Topics.
    pub topics: Vec<AlterPartitionTopic>,
}

/// The outcome for one partition: on success the partition's new state, which the leader
/// adopts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionResult {
    /// Partition index.
    pub partition: i32,
    /// Outcome.
    pub error: ErrorCode,
    /// Current leader.
    pub leader_id: i32,
    /// Current leader epoch.
    pub leader_epoch: i32,
    /// Current ISR.
    pub isr: Vec<i32>,
    /// Current partition epoch.
    pub partition_epoch: i32,
}

/// The results for one topic of an AlterPartition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionTopicResult {
    /// Topic id.
    pub topic_id: Uuid,
    /// Partitions, in request order.
    pub partitions: Vec<AlterPartitionResult>,
}

/// AlterPartition answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionResponse {
    /// Request-level outcome (stale or unknown broker); per-partition results are empty then.
    pub error: ErrorCode,
    /// Results.
    pub topics: Vec<AlterPartitionTopicResult>,
}

/// Kafka's election types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// Move leadership back to the first replica.
    Preferred,
    /// Give a leaderless partition any live replica as leader, even out of sync.
    Unclean,
}

/// Partitions of one topic, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPartitions {
    /// Topic name.
    pub topic: String,
    /// Partition indexes.
    pub partitions: Vec<i32>,
}

/// ElectLeaders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeadersRequest {
    /// Which election.
    pub election_type: ElectionType,
    /// The partitions, or `None` for every partition that needs one.
    pub topic_partitions: Option<Vec<TopicPartitions>>,
}

/// The outcome for one partition of an ElectLeaders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionResult {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Outcome.
    pub error: ErrorCode,
}

/// ElectLeaders answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeadersResponse {
    /// Results.
    pub results: Vec<ElectionResult>,
}

/// One key to set (`Some`) or remove (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterableConfig {
    /// Kafka's key name.
    pub name: String,
    /// New value, or `None` to remove the override.
    pub value: Option<String>,
}

/// The changes to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsResource {
    /// Whose config.
    pub resource: ConfigResource,
    /// Changes.
    pub configs: Vec<AlterableConfig>,
}

/// IncrementalAlterConfigs (SET and DELETE operations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsRequest {
    /// Resources.
    pub resources: Vec<AlterConfigsResource>,
    /// Check and answer without changing anything.
    pub validate_only: bool,
}

/// The outcome for one resource of an AlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsResult {
    /// Whose config.
    pub resource: ConfigResource,
    /// Outcome.
    pub error: ErrorCode,
    /// Why, for humans.
    pub error_message: Option<String>,
}

/// AlterConfigs answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsResponse {
    /// Results, in request order.
    pub results: Vec<AlterConfigsResult>,
}

/// AllocateProducerIds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateProducerIdsRequest {
    /// The broker asking.
    pub broker_id: i32,
    /// Its epoch.
    pub broker_epoch: i64,
}

/// A block of producer ids that is the broker's alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateProducerIdsResponse {
    /// Outcome.
    pub error: ErrorCode,
    /// First id of the block (-1 on error).
    pub producer_id_start: i64,
    /// Number of ids (0 on error).
    pub producer_id_len: i32,
}

/// One partition's target replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignablePartition {
    /// Partition index.
    pub partition: i32,
    /// Target replicas, preferred leader first; `None` cancels an ongoing reassignment.
    pub replicas: Option<Vec<i32>>,
}

/// The partitions of one topic to reassign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignableTopic {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partitions: Vec<ReassignablePartition>,
}

/// AlterPartitionReassignments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionReassignmentsRequest {
    /// Topics.
    pub topics: Vec<ReassignableTopic>,
}

/// The outcome for one partition of an AlterPartitionReassignments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentResult {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Outcome.
    pub error: ErrorCode,
    /// Why, for humans.
    pub error_message: Option<String>,
}

/// AlterPartitionReassignments answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionReassignmentsResponse {
    /// Results, in request order.
    pub results: Vec<ReassignmentResult>,
}

//! The group coordinator state machine (Kafka's classic `GroupCoordinator` and the cache half
//! of `GroupMetadataManager`).
//!
//! Every public method is one event: a decoded request, an append outcome, or the passage of
//! time. It mutates state and returns the [`Effect`]s to carry out. Nothing here blocks, reads
//! a clock or draws randomness, so tests replay exact scenarios and assert exact effects.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem;

use bytes::Bytes;

use crate::api::{
    DeleteGroupsResponse, DeletedGroup, DescribedGroup, DescribedMember, GroupProtocol,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupMemberResponse, LeaveGroupRequest, LeaveGroupResponse, ListedGroup,
    OffsetCommitRequest, OffsetCommitResponse, OffsetCommitTopic, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchPartition, OffsetFetchRequest, OffsetFetchResponse,
    OffsetFetchTopic, PartitionError, Response, SyncGroupRequest, SyncGroupResponse,
    TopicPartitionErrors, TxnOffsetCommitRequest,
};
use crate::config::GroupConfig;
use crate::effect::{Effect, PersistId, RequestId, TxnProducer};
use crate::error::ErrorCode;
use crate::group::{CommittedOffset, Group, GroupState, JoinPhase, Member, TopicPartition};
use crate::load::{LoadEntry, Replay};
use crate::partition::partition_for_group;
use crate::records::{
    GroupMetadataKey, GroupMetadataValue, MemberMetadataValue, OffsetCommitKey, OffsetCommitValue,
    OffsetsKey, OffsetsRecord, OffsetsValue, RecordError,
};
use crate::timers::{TimerKey, Timers};

/// How long a new member's first JoinGroup may stay parked (Kafka's `NewMemberJoinTimeoutMs`).
/// A new member cannot heartbeat yet, so this stops defunct joiners from stalling a rebalance.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1_000;

/// Source of the unique part of generated member ids (`<client_id>-<uuid>`).
///
/// Injected so the simulator and tests get reproducible ids; the broker plugs in UUID v4.
pub trait MemberIdGenerator: Send {
    /// A fresh, never repeated suffix.
    fn next_suffix(&mut self) -> String;
}

/// Deterministic UUID-shaped ids from a counter, for tests and simulation.
#[derive(Debug, Default, Clone)]
pub struct SequentialMemberIds {
    next: u128,
}

impl MemberIdGenerator for SequentialMemberIds {
    fn next_suffix(&mut self) -> String {
        self.next += 1;
        let hex = format!("{:032x}", self.next);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

/// What an in-flight append was for, so its completion can finish the job.
#[derive(Debug)]
enum PendingPersist {
    /// Nothing waits: tombstones, or the metadata of a group that just became Empty.
    Detached,
    /// The leader's assignment for `generation_id`.
    SyncAssignment {
        group_id: String,
        generation_id: i32,
        assignment: HashMap<String, Bytes>,
    },
    /// A static member rejoined a Stable group under a new member id.
    StaticMemberJoin(Box<StaticJoin>),
    /// An OffsetCommit, or a TxnOffsetCommit when `transaction` is set; `entries` is the
    /// request order, `None` where metadata was too large.
    OffsetCommit {
        request_id: RequestId,
        group_id: String,
        entries: Vec<(TopicPartition, Option<CommittedOffset>)>,
        transaction: Option<TxnProducer>,
    },
}

impl PendingPersist {
    /// The group an append is for; `None` when nothing waits on it.
    fn group_id(&self) -> Option<&str> {
        match self {
            Self::Detached => None,
            Self::SyncAssignment { group_id, .. } | Self::OffsetCommit { group_id, .. } => {
                Some(group_id)
            }
            Self::StaticMemberJoin(join) => Some(&join.group_id),
        }
    }
}

/// Where the coordinator stands on one `__consumer_offsets` partition it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionLoad {
    /// Taken over but not replayed yet: its groups answer COORDINATOR_LOAD_IN_PROGRESS.
    Loading,
    /// Replayed: its groups are served.
    Loaded,
}

#[derive(Debug)]
struct StaticJoin {
    request_id: RequestId,
    group_id: String,
    instance_id: String,
    old_member_id: String,
    new_member_id: String,
    old_protocols: Vec<GroupProtocol>,
    old_rebalance_timeout_ms: i32,
    old_session_timeout_ms: i32,
    leader_before: String,
    supports_skipping_assignment: bool,
}

/// Kafka's classic group coordinator for the groups of the `__consumer_offsets` partitions this
/// broker leads.
pub struct GroupCoordinator {
    config: GroupConfig,
    ids: Box<dyn MemberIdGenerator>,
    groups: BTreeMap<String, Group>,
    timers: Timers,
    persists: HashMap<PersistId, PendingPersist>,
    next_persist_id: u64,
    /// Bumped per offset commit append and per replayed record: log order within a partition.
    next_log_sequence: u64,
    /// Groups holding pending transactional offsets, per producer id (Kafka's
    /// `openGroupsForProducer`), so a marker finds its groups without a scan.
    txn_groups: BTreeMap<i64, BTreeSet<String>>,
    /// The `__consumer_offsets` partitions this coordinator owns; groups of any other
    /// partition answer NOT_COORDINATOR (Kafka's `ownedPartitions`/`loadingPartitions`).
    partitions: BTreeMap<i32, PartitionLoad>,
    announced_deadline: Option<i64>,
    effects: Vec<Effect>,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("groups", &self.groups.len())
            .field("next_deadline_ms", &self.timers.next_deadline())
            .finish_non_exhaustive()
    }
}

impl GroupCoordinator {
    /// A coordinator with no groups that owns every `__consumer_offsets` partition, as a
    /// single broker does; call [`GroupCoordinator::load`] to replay the topic.
    pub fn new(config: GroupConfig, ids: Box<dyn MemberIdGenerator>) -> Self {
        let partitions = (0..config.offsets_topic_num_partitions.max(1))
            .map(|p| (p, PartitionLoad::Loaded))
            .collect();
        Self {
            partitions,
            ..Self::without_partitions(config, ids)
        }
    }

    /// A coordinator that owns no `__consumer_offsets` partition until
    /// [`GroupCoordinator::load_partition`]: for brokers where the partitions' leadership
    /// moves, so that only the leader of a group's partition serves it.
    pub fn without_partitions(config: GroupConfig, ids: Box<dyn MemberIdGenerator>) -> Self {
        Self {
            partitions: BTreeMap::new(),
            config,
            ids,
            groups: BTreeMap::new(),
            timers: Timers::default(),
            persists: HashMap::new(),
            next_persist_id: 0,
            next_log_sequence: 0,
            txn_groups: BTreeMap::new(),
            announced_deadline: None,
            effects: Vec::new(),
        }
    }

    /// The earliest time [`GroupCoordinator::tick`] has work, for runtimes that poll.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.timers.next_deadline()
    }

    /// The state of `group_id`, if the coordinator knows it (for metrics and tests).
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// JoinGroup. The response is usually parked until the join phase completes.
    pub fn join_group(
        &mut self,
        request_id: RequestId,
        request: JoinGroupRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        if let Some(error) = self.refusal(&request.group_id) {
            self.respond_join(
                request_id,
                JoinGroupResponse::error(request.member_id, error),
            );
            return self.finish();
        }
        self.handle_join_group(request_id, request, now_ms);
        self.finish()
    }

    /// SyncGroup. Followers are parked until the leader's assignment is persisted.
    pub fn sync_group(
        &mut self,
        request_id: RequestId,
        request: SyncGroupRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        if let Some(error) = self.refusal(&request.group_id) {
            self.respond_sync(request_id, SyncGroupResponse::error(error));
            return self.finish();
        }
        self.handle_sync_group(request_id, request, now_ms);
        self.finish()
    }

    /// Heartbeat: keeps the session alive and tells the member whether to rejoin.
    pub fn heartbeat(
        &mut self,
        request_id: RequestId,
        request: HeartbeatRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        let error = match self.refusal(&request.group_id) {
            Some(error) => error,
            None => self.handle_heartbeat(&request, now_ms),
        };
        self.respond(request_id, Response::Heartbeat(HeartbeatResponse { error }));
        self.finish()
    }

    /// LeaveGroup (v3+ batch; v0-2 is a batch of one).
    pub fn leave_group(
        &mut self,
        request_id: RequestId,
        request: LeaveGroupRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        let response = match self.refusal(&request.group_id) {
            Some(error) => LeaveGroupResponse {
                error,
                members: Vec::new(),
            },
            None => self.handle_leave_group(request, now_ms),
        };
        self.respond(request_id, Response::LeaveGroup(response));
        self.finish()
    }

    /// OffsetCommit. Answered after the commit is appended (or at once if rejected).
    pub fn commit_offsets(
        &mut self,
        request_id: RequestId,
        request: OffsetCommitRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        if let Some(error) = self.refusal(&request.group_id) {
            self.respond_commit_error(request_id, &request.topics, false, error);
            return self.finish();
        }
        self.handle_commit_offsets(request_id, request, now_ms);
        self.finish()
    }

    /// TxnOffsetCommit: the offsets are appended as a transactional batch of the producer and
    /// answered once written, but only count when the producer's transaction commits
    /// ([`GroupCoordinator::complete_transaction`]). Until then OffsetFetch keeps returning
    /// the previous offsets (UNSTABLE_OFFSET_COMMIT with `require_stable`).
    pub fn txn_offset_commit(
        &mut self,
        request_id: RequestId,
        request: TxnOffsetCommitRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        if let Some(error) = self.refusal(&request.group_id) {
            self.respond_commit_error(request_id, &request.topics, true, error);
            return self.finish();
        }
        self.handle_txn_offset_commit(request_id, request, now_ms);
        self.finish()
    }

    /// A commit (`commit`) or abort marker of `producer_id` is durable in `__consumer_offsets`
    /// partition `offsets_partition`: the producer's pending offsets in the groups of that
    /// partition become committed offsets, or are dropped (Kafka's `handleTxnCompletion`).
    /// A plain commit appended after a transactional one keeps precedence.
    pub fn complete_transaction(
        &mut self,
        producer_id: i64,
        offsets_partition: i32,
        commit: bool,
        now_ms: i64,
    ) -> Vec<Effect> {
        let num_partitions = self.config.offsets_topic_num_partitions;
        let mut completed = Vec::new();
        if let Some(group_ids) = self.txn_groups.get_mut(&producer_id) {
            group_ids.retain(|group_id| {
                let in_partition =
                    partition_for_group(group_id, num_partitions) == offsets_partition;
                if in_partition {
                    completed.push(group_id.clone());
                }
                !in_partition
            });
            if group_ids.is_empty() {
                self.txn_groups.remove(&producer_id);
            }
        }
        for group_id in completed {
            if let Some(group) = self.groups.get_mut(&group_id) {
                group.complete_txn_offsets(producer_id, commit);
                tracing::debug!(
                    group_id,
                    producer_id,
                    commit,
                    now_ms,
                    "completed transactional offset commits"
                );
            }
        }
        self.finish()
    }

    /// OffsetFetch: read-only, answered directly.
    pub fn fetch_offsets(&self, request: &OffsetFetchRequest) -> OffsetFetchResponse {
        if let Some(error) = self.refusal(&request.group_id) {
            return OffsetFetchResponse {
                error,
                topics: Vec::new(),
            };
        }
        let group = self.groups.get(&request.group_id);
        let entry = |tp: &TopicPartition| -> OffsetFetchPartition {
            let none = |error| OffsetFetchPartition {
                partition_index: tp.partition,
                committed_offset: -1,
                committed_leader_epoch: -1,
                metadata: String::new(),
                error,
            };
            let Some(group) = group else {
                return none(ErrorCode::None);
            };
            if request.require_stable
                && (group.has_pending_commit(tp) || group.has_pending_txn_offset(tp))
            {
                return none(ErrorCode::UnstableOffsetCommit);
            }
            match group.offsets.get(tp) {
                None => none(ErrorCode::None),
                Some(o) => OffsetFetchPartition {
                    partition_index: tp.partition,
                    committed_offset: o.offset,
                    committed_leader_epoch: o.leader_epoch.unwrap_or(-1),
                    metadata: o.metadata.clone(),
                    error: ErrorCode::None,
                },
            }
        };
        let topics = match &request.topics {
            Some(topics) => topics
                .iter()
                .map(|t| OffsetFetchTopic {
                    name: t.name.clone(),
                    partitions: t
                        .partition_indexes
                        .iter()
                        .map(|p| {
                            entry(&TopicPartition {
                                topic: t.name.clone(),
                                partition: *p,
                            })
                        })
                        .collect(),
                })
                .collect(),
            None => {
                let mut topics: Vec<OffsetFetchTopic> = Vec::new();
                for tp in group
                    .map(|g| g.offsets.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    let partition = entry(&tp);
                    match topics.last_mut() {
                        Some(last) if last.name == tp.topic => last.partitions.push(partition),
                        _ => topics.push(OffsetFetchTopic {
                            name: tp.topic,
                            partitions: vec![partition],
                        }),
                    }
                }
                topics
            }
        };
        OffsetFetchResponse {
            error: ErrorCode::None,
            topics,
        }
    }

    /// DescribeGroups: read-only; unknown groups are reported Dead, as Kafka does.
    pub fn describe_groups(&self, group_ids: &[String]) -> Vec<DescribedGroup> {
        group_ids
            .iter()
            .map(|group_id| match self.groups.get(group_id) {
                None => DescribedGroup {
                    error: self.refusal(group_id).unwrap_or(ErrorCode::None),
                    group_id: group_id.clone(),
                    group_state: GroupState::Dead,
                    protocol_type: String::new(),
                    protocol_data: String::new(),
                    members: Vec::new(),
                },
                Some(group) => {
                    let stable_protocol = group
                        .is(GroupState::Stable)
                        .then(|| group.protocol_name.clone().unwrap_or_default());
                    DescribedGroup {
                        error: ErrorCode::None,
                        group_id: group_id.clone(),
                        group_state: group.state,
                        protocol_type: group.protocol_type.clone().unwrap_or_default(),
                        protocol_data: stable_protocol.clone().unwrap_or_default(),
                        members: group
                            .members
                            .iter()
                            .map(|m| DescribedMember {
                                member_id: m.member_id.clone(),
                                group_instance_id: m.group_instance_id.clone(),
                                client_id: m.client_id.clone(),
                                client_host: m.client_host.clone(),
                                member_metadata: stable_protocol
                                    .as_deref()
                                    .map(|p| m.metadata(p))
                                    .unwrap_or_default(),
                                member_assignment: if stable_protocol.is_some() {
                                    m.assignment.clone()
                                } else {
                                    Bytes::new()
                                },
                            })
                            .collect(),
                    }
                }
            })
            .collect()
    }

    /// ListGroups, optionally filtered by state names (exact Kafka names, e.g. "Stable").
    pub fn list_groups(&self, states_filter: &[String]) -> Vec<ListedGroup> {
        self.groups
            .values()
            .filter(|g| {
                states_filter.is_empty() || states_filter.iter().any(|s| s == g.state.as_str())
            })
            .map(|g| ListedGroup {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                group_state: g.state,
            })
            .collect()
    }

    /// DeleteGroups: only Empty groups; writes offset and group tombstones before answering.
    pub fn delete_groups(
        &mut self,
        request_id: RequestId,
        group_ids: &[String],
        now_ms: i64,
    ) -> Vec<Effect> {
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let refused = self.refusal(group_id);
            let error = match refused.map_or_else(|| self.groups.remove(group_id), |_| None) {
                None => refused.unwrap_or(ErrorCode::GroupIdNotFound),
                Some(group) if !group.is(GroupState::Empty) => {
                    self.groups.insert(group_id.clone(), group);
                    ErrorCode::NonEmptyGroup
                }
                Some(mut group) => {
                    group.transition(GroupState::Dead, now_ms);
                    // Open transactions' offsets get tombstones too, so a replay drops them
                    // even if their transaction commits later.
                    let mut removed: BTreeSet<TopicPartition> = group.pending_txn_partitions();
                    removed.extend(group.offsets.keys().cloned());
                    group.offsets.clear();
                    group.pending_offset_commits.clear();
                    self.forget_txn_offsets(&mut group);
                    self.cleanup_group(group, removed.into_iter().collect(), now_ms);
                    ErrorCode::None
                }
            };
            results.push(DeletedGroup {
                group_id: group_id.clone(),
                error,
            });
        }
        self.respond(
            request_id,
            Response::DeleteGroups(DeleteGroupsResponse { results }),
        );
        self.finish()
    }

    /// OffsetDelete: refused for partitions of topics a consumer group still subscribes to.
    pub fn delete_offsets(
        &mut self,
        request_id: RequestId,
        request: OffsetDeleteRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        let response = match self.refusal(&request.group_id) {
            Some(error) => OffsetDeleteResponse {
                error,
                topics: Vec::new(),
            },
            None => self.handle_delete_offsets(request, now_ms),
        };
        self.respond(request_id, Response::OffsetDelete(response));
        self.finish()
    }

    /// Reports the outcome of an [`Effect::Persist`]: `Err(code)` carries the Kafka error
    /// code of the failed append, translated here exactly as Kafka translates it per caller.
    pub fn complete_persist(
        &mut self,
        persist_id: PersistId,
        result: Result<(), i16>,
        now_ms: i64,
    ) -> Vec<Effect> {
        match self.persists.remove(&persist_id) {
            None | Some(PendingPersist::Detached) => {}
            Some(PendingPersist::SyncAssignment {
                group_id,
                generation_id,
                assignment,
            }) => {
                self.with_group(&group_id, |c, g| {
                    c.complete_sync_assignment(g, generation_id, &assignment, result, now_ms)
                });
            }
            Some(PendingPersist::StaticMemberJoin(join)) => {
                self.complete_static_join(*join, result, now_ms)
            }
            Some(PendingPersist::OffsetCommit {
                request_id,
                group_id,
                entries,
                transaction,
            }) => {
                self.complete_offset_commit(request_id, &group_id, entries, transaction, result);
            }
        }
        self.finish()
    }

    /// Fires every deadline due at `now_ms`: join phases, sessions, sync rounds, KIP-394
    /// pending members.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        for key in self.timers.due(now_ms) {
            if !self.timers.take_if_due(&key, now_ms) {
                continue;
            }
            match key {
                TimerKey::Join(group_id) => {
                    self.with_group(&group_id, |c, g| c.on_join_deadline(g, now_ms))
                }
                TimerKey::PendingSync(group_id) => {
                    self.with_group(&group_id, |c, g| c.on_pending_sync_deadline(g, now_ms))
                }
                TimerKey::Heartbeat(group_id, member_id) => {
                    self.with_group(&group_id, |c, g| {
                        c.on_heartbeat_deadline(g, &member_id, now_ms)
                    });
                }
                TimerKey::PendingMember(group_id, member_id) => {
                    self.with_group(&group_id, |c, g| {
                        g.pending_members.remove(&member_id);
                        if g.is(GroupState::PreparingRebalance) {
                            c.try_complete_join(g, now_ms);
                        }
                    })
                }
            }
        }
        // An announced deadline at or before `now_ms` has fired in the runtime: announce the
        // next one even if it is the same instant (an initial join delay of 0 re-arms at now).
        if self.announced_deadline.is_some_and(|at| at <= now_ms) {
            self.announced_deadline = None;
        }
        self.finish()
    }

    /// Kafka 2.1+ offset expiry; call every `offsets.retention.check.interval.ms`. Expired
    /// offsets and groups left Empty without offsets are tombstoned and forgotten.
    pub fn cleanup_expired_offsets(&mut self, now_ms: i64) -> Vec<Effect> {
        let group_ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in group_ids {
            let Some(mut group) = self.groups.remove(&group_id) else {
                continue;
            };
            let expired = self.expired_offsets(&group, now_ms);
            for tp in &expired {
                group.offsets.remove(tp);
            }
            self.cleanup_group(group, expired, now_ms);
        }
        self.finish()
    }

    /// Rebuilds groups and offsets from `__consumer_offsets` in log order per partition (e.g.
    /// one partition when this broker becomes its leader). Later records win; tombstones
    /// delete. Records of transactional batches wait for their producer's marker in the same
    /// partition: a commit applies them, an abort drops them, and those with no marker yet
    /// stay pending until [`GroupCoordinator::complete_transaction`]. Keys of unknown
    /// versions are skipped, as Kafka does; any other undecodable record fails the load.
    /// Members get a fresh session deadline from `now_ms`.
    pub fn load<K, V>(
        &mut self,
        entries: impl IntoIterator<Item = LoadEntry<K, V>>,
        now_ms: i64,
    ) -> Result<Vec<Effect>, RecordError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut replay = Replay::default();
        for entry in entries {
            let (key, value, producer_id, partition) = match entry {
                LoadEntry::Marker {
                    producer_id,
                    commit,
                    partition,
                } => {
                    replay.marker(producer_id, commit, partition);
                    continue;
                }
                LoadEntry::Record {
                    key,
                    value,
                    producer_id,
                    partition,
                } => (key, value, producer_id, partition),
            };
            let record =
                match OffsetsRecord::decode(key.as_ref(), value.as_ref().map(AsRef::as_ref)) {
                    Ok(record) => record,
                    Err(RecordError::UnknownKeyVersion(version)) => {
                        tracing::warn!(
                            version,
                            "skipping __consumer_offsets record with unknown key version"
                        );
                        continue;
                    }
                    Err(e) => return Err(e),
                };
            self.next_log_sequence += 1;
            replay.record(record, producer_id, partition, self.next_log_sequence);
        }
        for (group_id, loaded) in replay.finish() {
            let mut group = Group::new(group_id.clone(), now_ms);
            if let Some(value) = loaded.metadata {
                self.restore_group_metadata(&mut group, value, now_ms);
            }
            group.offsets = loaded.offsets;
            for (producer_id, offsets) in loaded.pending {
                self.txn_groups
                    .entry(producer_id)
                    .or_default()
                    .insert(group_id.clone());
                group.pending_txn_offsets.insert(
                    producer_id,
                    offsets
                        .into_iter()
                        .map(|(tp, offset)| (tp, vec![offset]))
                        .collect(),
                );
            }
            self.groups.insert(group_id, group);
        }
        Ok(self.finish())
    }

    /// This broker became the leader of `__consumer_offsets` partition `partition` (Kafka's
    /// `onElection`), or became it again at a newer leader epoch: whatever it held of the
    /// partition is dropped (its members are answered NOT_COORDINATOR) and the partition's
    /// groups answer COORDINATOR_LOAD_IN_PROGRESS until [`GroupCoordinator::load_partition`].
    pub fn begin_load_partition(&mut self, partition: i32, now_ms: i64) -> Vec<Effect> {
        self.drop_partition(partition, now_ms);
        self.partitions.insert(partition, PartitionLoad::Loading);
        self.finish()
    }

    /// Replays partition `partition` of `__consumer_offsets` (its records and markers in log
    /// order; entries of other partitions are ignored) and serves its groups from then on, as
    /// [`GroupCoordinator::load`] does for the whole topic. Anything held of the partition
    /// before is dropped first. Transactional offsets with no marker yet stay pending.
    ///
    /// A record that cannot be decoded fails the replay; the partition is owned all the same,
    /// with none of its groups, as Kafka does, and the error is returned for the log (answers
    /// owed for what was dropped, none after [`GroupCoordinator::begin_load_partition`], come
    /// with the next call's effects).
    pub fn load_partition<K, V>(
        &mut self,
        partition: i32,
        entries: impl IntoIterator<Item = LoadEntry<K, V>>,
        now_ms: i64,
    ) -> Result<Vec<Effect>, RecordError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.drop_partition(partition, now_ms);
        self.partitions.insert(partition, PartitionLoad::Loaded);
        let entries = entries.into_iter().filter(|entry| match entry {
            LoadEntry::Record { partition: p, .. } | LoadEntry::Marker { partition: p, .. } => {
                *p == partition
            }
        });
        self.load(entries, now_ms)
    }

    /// This broker no longer leads `__consumer_offsets` partition `partition` (Kafka's
    /// `onResignation`): its groups are forgotten with their timers and pending
    /// transactional offsets, parked JoinGroup and SyncGroup requests and offset commits
    /// still being written are answered NOT_COORDINATOR, and later requests for its groups
    /// are too. The new leader replays the partition from the log.
    pub fn unload_partition(&mut self, partition: i32, now_ms: i64) -> Vec<Effect> {
        self.drop_partition(partition, now_ms);
        self.partitions.remove(&partition);
        self.finish()
    }

    /// The `__consumer_offsets` partition of `group_id` under this coordinator's partition
    /// count.
    pub fn partition_of(&self, group_id: &str) -> i32 {
        partition_for_group(group_id, self.config.offsets_topic_num_partitions)
    }

    // ---------------------------------------------------------------- plumbing

    /// Why `group_id` cannot be served now: NOT_COORDINATOR when its offsets partition is
    /// not owned here, COORDINATOR_LOAD_IN_PROGRESS while that partition is replayed. An
    /// empty id passes, so that each API answers it as Kafka does.
    fn refusal(&self, group_id: &str) -> Option<ErrorCode> {
        if group_id.is_empty() {
            return None;
        }
        match self.partitions.get(&self.partition_of(group_id)) {
            Some(PartitionLoad::Loaded) => None,
            Some(PartitionLoad::Loading) => Some(ErrorCode::CoordinatorLoadInProgress),
            None => Some(ErrorCode::NotCoordinator),
        }
    }

    /// Forgets every group of `partition` and everything waiting on them, answering what
    /// waits with NOT_COORDINATOR.
    fn drop_partition(&mut self, partition: i32, now_ms: i64) {
        let count = self.config.offsets_topic_num_partitions;
        let in_partition = |group_id: &str| partition_for_group(group_id, count) == partition;
        let group_ids: Vec<String> = self
            .groups
            .keys()
            .filter(|g| in_partition(g))
            .cloned()
            .collect();
        for group_id in &group_ids {
            let Some(mut group) = self.groups.remove(group_id) else {
                continue;
            };
            for member in &mut group.members {
                if let Some(request_id) = member.awaiting_join.take() {
                    let response = JoinGroupResponse::error(
                        member.member_id.clone(),
                        ErrorCode::NotCoordinator,
                    );
                    self.respond_join(request_id, response);
                }
                if let Some(request_id) = member.awaiting_sync.take() {
                    self.respond_sync(
                        request_id,
                        SyncGroupResponse::error(ErrorCode::NotCoordinator),
                    );
                }
            }
            group.transition(GroupState::Dead, now_ms);
        }
        self.txn_groups.retain(|_, group_ids| {
            group_ids.retain(|g| !in_partition(g));
            !group_ids.is_empty()
        });
        self.timers.retain(|key| !in_partition(key.group_id()));
        let persist_ids: Vec<PersistId> = self
            .persists
            .iter()
            .filter(|(_, p)| p.group_id().is_some_and(in_partition))
            .map(|(id, _)| *id)
            .collect();
        for persist_id in persist_ids {
            if let Some(PendingPersist::OffsetCommit {
                request_id,
                entries,
                transaction,
                ..
            }) = self.persists.remove(&persist_id)
            {
                let topics = entries_with_error(entries, ErrorCode::NotCoordinator);
                self.respond(
                    request_id,
                    commit_response(transaction.is_some(), OffsetCommitResponse { topics }),
                );
            }
        }
        if !group_ids.is_empty() {
            tracing::info!(
                partition,
                groups = group_ids.len(),
                "unloaded consumer groups of __consumer_offsets partition"
            );
        }
    }

    /// Appends the deadline announcement and hands the effects of this event to the caller.
    fn finish(&mut self) -> Vec<Effect> {
        let next = self.timers.next_deadline();
        if let Some(at_ms) = next {
            if self.announced_deadline != next {
                self.effects.push(Effect::ScheduleTimeout { at_ms });
            }
        }
        self.announced_deadline = next;
        mem::take(&mut self.effects)
    }

    fn respond(&mut self, request_id: RequestId, response: Response) {
        self.effects.push(Effect::Respond {
            request_id,
            response,
        });
    }

    fn respond_join(&mut self, request_id: RequestId, response: JoinGroupResponse) {
        self.respond(request_id, Response::JoinGroup(response));
    }

    fn respond_sync(&mut self, request_id: RequestId, response: SyncGroupResponse) {
        self.respond(request_id, Response::SyncGroup(response));
    }

    fn persist(&mut self, group_id: &str, records: Vec<OffsetsRecord>, pending: PendingPersist) {
        self.persist_batch(group_id, records, None, pending);
    }

    fn persist_batch(
        &mut self,
        group_id: &str,
        records: Vec<OffsetsRecord>,
        transaction: Option<TxnProducer>,
        pending: PendingPersist,
    ) {
        self.next_persist_id += 1;
        let persist_id = PersistId(self.next_persist_id);
        self.persists.insert(persist_id, pending);
        self.effects.push(Effect::Persist {
            persist_id,
            group_id: group_id.to_owned(),
            records,
            transaction,
        });
    }

    /// Drops a group's pending transactional offsets and its entries in the producer index.
    fn forget_txn_offsets(&mut self, group: &mut Group) {
        for producer_id in mem::take(&mut group.pending_txn_offsets).into_keys() {
            self.forget_txn_group(producer_id, group);
        }
    }

    /// Removes `group` from `producer_id`'s index entry once it holds nothing of the producer.
    fn forget_txn_group(&mut self, producer_id: i64, group: &Group) {
        if group.has_pending_txn_offsets_from(producer_id) {
            return;
        }
        if let Some(group_ids) = self.txn_groups.get_mut(&producer_id) {
            group_ids.remove(&group.group_id);
            if group_ids.is_empty() {
                self.txn_groups.remove(&producer_id);
            }
        }
    }

    /// Runs `f` on a group taken out of the map (so `f` may borrow the coordinator mutably)
    /// and puts it back; a no-op for groups that no longer exist.
    fn with_group(&mut self, group_id: &str, f: impl FnOnce(&mut Self, &mut Group)) {
        if let Some(mut group) = self.groups.remove(group_id) {
            f(self, &mut group);
            self.groups.insert(group_id.to_owned(), group);
        }
    }

    fn schedule_heartbeat(&mut self, group: &Group, member_id: &str, timeout_ms: i64, now_ms: i64) {
        self.timers.set(
            TimerKey::Heartbeat(group.group_id.clone(), member_id.to_owned()),
            now_ms + timeout_ms,
        );
    }

    fn schedule_session(&mut self, group: &Group, member_id: &str, now_ms: i64) {
        if let Some(member) = group.member(member_id) {
            let timeout = i64::from(member.session_timeout_ms);
            self.schedule_heartbeat(group, member_id, timeout, now_ms);
        }
    }

    fn group_metadata_record(
        group: &Group,
        assignment: impl Fn(&Member) -> Bytes,
    ) -> OffsetsRecord {
        let protocol = group.protocol_name.clone().unwrap_or_default();
        OffsetsRecord {
            key: OffsetsKey::GroupMetadata(GroupMetadataKey {
                group: group.group_id.clone(),
            }),
            value: Some(OffsetsValue::GroupMetadata(GroupMetadataValue {
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                generation: group.generation_id,
                protocol: group.protocol_name.clone(),
                leader: group.leader_id.clone(),
                current_state_timestamp: group.state_timestamp_ms.unwrap_or(-1),
                members: group
                    .members
                    .iter()
                    .map(|m| MemberMetadataValue {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout: m.rebalance_timeout_ms,
                        session_timeout: m.session_timeout_ms,
                        subscription: m.metadata(&protocol),
                        assignment: assignment(m),
                    })
                    .collect(),
            })),
        }
    }

    // ---------------------------------------------------------------- JoinGroup

    fn handle_join_group(&mut self, request_id: RequestId, request: JoinGroupRequest, now_ms: i64) {
        if request.group_id.is_empty() {
            return self.respond_join(
                request_id,
                JoinGroupResponse::error(request.member_id, ErrorCode::InvalidGroupId),
            );
        }
        if request.session_timeout_ms < self.config.group_min_session_timeout_ms
            || request.session_timeout_ms > self.config.group_max_session_timeout_ms
        {
            return self.respond_join(
                request_id,
                JoinGroupResponse::error(request.member_id, ErrorCode::InvalidSessionTimeout),
            );
        }
        let is_unknown_member = request.member_id.is_empty();
        let mut group = match self.groups.remove(&request.group_id) {
            Some(group) => group,
            None if is_unknown_member => Group::new(request.group_id.clone(), now_ms),
            None => {
                return self.respond_join(
                    request_id,
                    JoinGroupResponse::error(request.member_id, ErrorCode::UnknownMemberId),
                )
            }
        };
        if !self.accept_joining_member(&group, &request.member_id) {
            self.remove_member_quietly(&mut group, &request.member_id);
            self.respond_join(
                request_id,
                JoinGroupResponse::error("", ErrorCode::GroupMaxSizeReached),
            );
        } else if is_unknown_member {
            self.do_new_member_join(&mut group, request_id, request, now_ms);
        } else {
            self.do_current_member_join(&mut group, request_id, request, now_ms);
        }
        if group.is(GroupState::PreparingRebalance) {
            self.try_complete_join(&mut group, now_ms);
        }
        self.groups.insert(group.group_id.clone(), group);
    }

    /// Kafka's `acceptJoiningMember`: enforces `group.max.size` against members that will be
    /// in the next generation.
    fn accept_joining_member(&self, group: &Group, member_id: &str) -> bool {
        let max = self.config.group_max_size;
        match group.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                group
                    .member(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || group.num_awaiting_join() + group.pending_members.len() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                group.has(member_id) || group.members.len() < max
            }
        }
    }

    fn do_new_member_join(
        &mut self,
        group: &mut Group,
        request_id: RequestId,
        request: JoinGroupRequest,
        now_ms: i64,
    ) {
        if !group.supports_protocols(&request.protocol_type, &request.protocols) {
            return self.respond_join(
                request_id,
                JoinGroupResponse::error(request.member_id, ErrorCode::InconsistentGroupProtocol),
            );
        }
        let prefix = request
            .group_instance_id
            .as_deref()
            .unwrap_or(&request.client_id);
        let new_member_id = format!("{prefix}-{}", self.ids.next_suffix());
        match request.group_instance_id.clone() {
            Some(instance_id) => match group.current_static_member_id(&instance_id).cloned() {
                Some(old_member_id) => self.update_static_member_and_rebalance(
                    group,
                    instance_id,
                    old_member_id,
                    new_member_id,
                    request_id,
                    request,
                    now_ms,
                ),
                None => {
                    self.add_member_and_rebalance(group, new_member_id, request_id, request, now_ms)
                }
            },
            None if request.version >= 4 => {
                // KIP-394: hand out the id first, so a client that times out and retries does
                // not leave a phantom member the rebalance would wait for.
                group.pending_members.insert(new_member_id.clone());
                let deadline = now_ms + i64::from(request.session_timeout_ms);
                self.timers.set(
                    TimerKey::PendingMember(group.group_id.clone(), new_member_id.clone()),
                    deadline,
                );
                self.respond_join(
                    request_id,
                    JoinGroupResponse::error(new_member_id, ErrorCode::MemberIdRequired),
                );
            }
            None => {
                self.add_member_and_rebalance(group, new_member_id, request_id, request, now_ms)
            }
        }
    }

    fn do_current_member_join(
        &mut self,
        group: &mut Group,
        request_id: RequestId,
        request: JoinGroupRequest,
        now_ms: i64,
    ) {
        let member_id = request.member_id.clone();
        if !group.supports_protocols(&request.protocol_type, &request.protocols) {
            return self.respond_join(
                request_id,
                JoinGroupResponse::error(member_id, ErrorCode::InconsistentGroupProtocol),
            );
        }
        if group.pending_members.contains(&member_id) {
            return self.add_member_and_rebalance(group, member_id, request_id, request, now_ms);
        }
        let instance_id = request.group_instance_id.as_deref();
        let instance_not_found =
            instance_id.is_some_and(|id| group.current_static_member_id(id).is_none());
        if group.is_static_member_fenced(instance_id, &member_id) {
            return self.respond_join(
                request_id,
                JoinGroupResponse::error(member_id, ErrorCode::FencedInstanceId),
            );
        }
        if !group.has(&member_id) || instance_not_found {
            return self.respond_join(
                request_id,
                JoinGroupResponse::error(member_id, ErrorCode::UnknownMemberId),
            );
        }
        let matches = group
            .member(&member_id)
            .is_some_and(|m| m.matches(&request.protocols));
        match group.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(group, request_id, request, now_ms)
            }
            GroupState::CompletingRebalance if matches => {
                // A lost JoinGroup response: answer again for the current generation.
                let members = if group.is_leader(&member_id) {
                    group.current_member_metadata()
                } else {
                    Vec::new()
                };
                let response = self.current_join_response(group, member_id, members, false);
                self.respond_join(request_id, response);
            }
            GroupState::Stable if matches && !group.is_leader(&member_id) => {
                // A follower with unchanged metadata just needs the generation to SyncGroup.
                let response = self.current_join_response(group, member_id, Vec::new(), false);
                self.respond_join(request_id, response);
            }
            // The leader rejoining forces a rebalance: it may have seen metadata changes
            // (e.g. new partitions) that member metadata does not show.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(group, request_id, request, now_ms);
            }
            GroupState::Empty | GroupState::Dead => {
                self.respond_join(
                    request_id,
                    JoinGroupResponse::error(member_id, ErrorCode::UnknownMemberId),
                );
            }
        }
    }

    fn current_join_response(
        &self,
        group: &Group,
        member_id: String,
        members: Vec<crate::api::JoinGroupMember>,
        skip_assignment: bool,
    ) -> JoinGroupResponse {
        JoinGroupResponse {
            error: ErrorCode::None,
            generation_id: group.generation_id,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            leader: group.leader_or_empty(),
            skip_assignment,
            member_id,
            members,
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        group: &mut Group,
        member_id: String,
        request_id: RequestId,
        request: JoinGroupRequest,
        now_ms: i64,
    ) {
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            session_timeout_ms: request.session_timeout_ms,
            protocols: request.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(request_id),
            awaiting_sync: None,
            is_new: true,
        };
        if group.is(GroupState::PreparingRebalance) && group.generation_id == 0 {
            group.new_member_added = true;
        }
        group.add(member, &request.protocol_type);
        self.timers.cancel(&TimerKey::PendingMember(
            group.group_id.clone(),
            member_id.clone(),
        ));
        self.schedule_heartbeat(group, &member_id, NEW_MEMBER_JOIN_TIMEOUT_MS, now_ms);
        self.maybe_prepare_rebalance(group, now_ms);
    }

    /// Replaces a member's protocols and timeouts and parks (or unparks) its JoinGroup.
    fn update_member(
        &mut self,
        group: &mut Group,
        member_id: &str,
        protocols: Vec<GroupProtocol>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
        awaiting_join: Option<RequestId>,
    ) {
        let Some(member) = group.member_mut(member_id) else {
            return;
        };
        member.protocols = protocols;
        member.rebalance_timeout_ms = rebalance_timeout_ms;
        member.session_timeout_ms = session_timeout_ms;
        let superseded = mem::replace(&mut member.awaiting_join, awaiting_join);
        if let (Some(old), Some(_)) = (superseded, awaiting_join) {
            // Kafka silently drops the older parked JoinGroup; answering it keeps the broker
            // from holding a request forever.
            self.respond_join(
                old,
                JoinGroupResponse::error(member_id, ErrorCode::RebalanceInProgress),
            );
        }
    }

    fn update_member_and_rebalance(
        &mut self,
        group: &mut Group,
        request_id: RequestId,
        request: JoinGroupRequest,
        now_ms: i64,
    ) {
        self.update_member(
            group,
            &request.member_id,
            request.protocols,
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            Some(request_id),
        );
        self.maybe_prepare_rebalance(group, now_ms);
    }

    /// Kafka's `replaceStaticMember`: the member keeps its place and assignment under a new
    /// id; whatever the old id had parked is fenced.
    fn replace_static_member(
        &mut self,
        group: &mut Group,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
    ) {
        let Some(member) = group.member_mut(old_member_id) else {
            return;
        };
        let parked_join = member.awaiting_join.take();
        let parked_sync = member.awaiting_sync.take();
        member.member_id = new_member_id.to_owned();
        if let Some(old) = parked_join {
            self.respond_join(
                old,
                JoinGroupResponse::error(old_member_id, ErrorCode::FencedInstanceId),
            );
        }
        if let Some(old) = parked_sync {
            self.respond_sync(old, SyncGroupResponse::error(ErrorCode::FencedInstanceId));
        }
        if group.is_leader(old_member_id) {
            group.leader_id = Some(new_member_id.to_owned());
        }
        if group.pending_sync_members.remove(old_member_id) {
            group.pending_sync_members.insert(new_member_id.to_owned());
        }
        group
            .static_members
            .insert(instance_id.to_owned(), new_member_id.to_owned());
        self.timers.cancel(&TimerKey::Heartbeat(
            group.group_id.clone(),
            old_member_id.to_owned(),
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn update_static_member_and_rebalance(
        &mut self,
        group: &mut Group,
        instance_id: String,
        old_member_id: String,
        new_member_id: String,
        request_id: RequestId,
        request: JoinGroupRequest,
        now_ms: i64,
    ) {
        let leader_before = group.leader_or_empty();
        self.replace_static_member(group, &instance_id, &old_member_id, &new_member_id);
        self.schedule_session(group, &new_member_id, now_ms);
        let Some(old) = group.member(&new_member_id) else {
            return;
        };
        let (old_protocols, old_rebalance_timeout_ms, old_session_timeout_ms) = (
            old.protocols.clone(),
            old.rebalance_timeout_ms,
            old.session_timeout_ms,
        );
        self.update_member(
            group,
            &new_member_id,
            request.protocols,
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            Some(request_id),
        );
        match group.state {
            GroupState::Stable => {
                if group.select_protocol() == group.protocol_name {
                    // Same protocol: persist the new member id and keep the assignment; the
                    // leader is not asked to reassign.
                    let record = Self::group_metadata_record(group, |m| m.assignment.clone());
                    let join = StaticJoin {
                        request_id,
                        group_id: group.group_id.clone(),
                        instance_id,
                        old_member_id,
                        new_member_id,
                        old_protocols,
                        old_rebalance_timeout_ms,
                        old_session_timeout_ms,
                        leader_before,
                        supports_skipping_assignment: request.version >= 9,
                    };
                    self.persist(
                        &group.group_id.clone(),
                        vec![record],
                        PendingPersist::StaticMemberJoin(Box::new(join)),
                    );
                } else {
                    self.maybe_prepare_rebalance(group, now_ms);
                }
            }
            // The leader may already be assigning for the old member id: start over.
            GroupState::CompletingRebalance => self.prepare_rebalance(group, now_ms),
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn complete_static_join(&mut self, join: StaticJoin, result: Result<(), i16>, now_ms: i64) {
        let group_id = join.group_id.clone();
        self.with_group(&group_id, |c, group| {
            let parked = group
                .member(&join.new_member_id)
                .is_some_and(|m| m.awaiting_join == Some(join.request_id));
            match result {
                Ok(()) => {
                    if !parked {
                        return;
                    }
                    if let Some(member) = group.member_mut(&join.new_member_id) {
                        member.awaiting_join = None;
                    }
                    let response = if join.supports_skipping_assignment {
                        let is_leader = group.is_leader(&join.new_member_id);
                        let members = if is_leader {
                            group.current_member_metadata()
                        } else {
                            Vec::new()
                        };
                        c.current_join_response(
                            group,
                            join.new_member_id.clone(),
                            members,
                            is_leader,
                        )
                    } else {
                        // Pre-v9 clients: report the old leader id so a rejoining static leader
                        // does not think it must assign.
                        let mut response = c.current_join_response(
                            group,
                            join.new_member_id.clone(),
                            Vec::new(),
                            false,
                        );
                        response.leader = join.leader_before.clone();
                        response
                    };
                    c.respond_join(join.request_id, response);
                }
                Err(append_error) => {
                    if !parked {
                        return;
                    }
                    c.update_member(
                        group,
                        &join.new_member_id,
                        join.old_protocols.clone(),
                        join.old_rebalance_timeout_ms,
                        join.old_session_timeout_ms,
                        None,
                    );
                    c.replace_static_member(
                        group,
                        &join.instance_id,
                        &join.new_member_id,
                        &join.old_member_id,
                    );
                    c.schedule_session(group, &join.old_member_id, now_ms);
                    let mut response =
                        c.current_join_response(group, String::new(), Vec::new(), false);
                    response.error = ErrorCode::from_group_append_error(append_error);
                    response.leader = join.leader_before.clone();
                    c.respond_join(join.request_id, response);
                }
            }
        });
    }

    fn maybe_prepare_rebalance(&mut self, group: &mut Group, now_ms: i64) {
        if matches!(
            group.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(group, now_ms);
        }
    }

    fn prepare_rebalance(&mut self, group: &mut Group, now_ms: i64) {
        if group.is(GroupState::CompletingRebalance) {
            self.reset_and_propagate_assignment_error(
                group,
                ErrorCode::RebalanceInProgress,
                now_ms,
            );
        }
        self.timers
            .cancel(&TimerKey::PendingSync(group.group_id.clone()));
        let was_empty = group.is(GroupState::Empty);
        group.transition(GroupState::PreparingRebalance, now_ms);
        let key = TimerKey::Join(group.group_id.clone());
        if was_empty {
            let delay_ms = self.config.group_initial_rebalance_delay_ms;
            let remaining_ms = (group.rebalance_timeout_ms() - delay_ms).max(0);
            group.join_phase = Some(JoinPhase::Initial {
                delay_ms,
                remaining_ms,
            });
            self.timers.set(key, now_ms + delay_ms);
        } else {
            group.join_phase = Some(JoinPhase::Regular);
            self.timers.set(key, now_ms + group.rebalance_timeout_ms());
            self.try_complete_join(group, now_ms);
        }
    }

    /// The regular join phase ends early once every member has rejoined.
    fn try_complete_join(&mut self, group: &mut Group, now_ms: i64) {
        if group.join_phase == Some(JoinPhase::Regular) && group.has_all_members_joined() {
            self.complete_join(group, now_ms);
        }
    }

    fn on_join_deadline(&mut self, group: &mut Group, now_ms: i64) {
        match group.join_phase {
            Some(JoinPhase::Initial {
                delay_ms,
                remaining_ms,
            }) if group.new_member_added && remaining_ms != 0 => {
                // More members arrived during the delay: wait again, within the rebalance timeout.
                group.new_member_added = false;
                let next_delay_ms = self
                    .config
                    .group_initial_rebalance_delay_ms
                    .min(remaining_ms);
                let next_remaining_ms = (remaining_ms - delay_ms).max(0);
                group.join_phase = Some(JoinPhase::Initial {
                    delay_ms: next_delay_ms,
                    remaining_ms: next_remaining_ms,
                });
                self.timers.set(
                    TimerKey::Join(group.group_id.clone()),
                    now_ms + next_delay_ms,
                );
            }
            Some(_) => self.complete_join(group, now_ms),
            None => {}
        }
    }

    /// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, start the next
    /// generation, and answer every parked JoinGroup.
    fn complete_join(&mut self, group: &mut Group, now_ms: i64) {
        self.timers.cancel(&TimerKey::Join(group.group_id.clone()));
        group.join_phase = None;
        let not_rejoined: Vec<String> = group
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in not_rejoined {
            self.remove_member_quietly(group, &member_id);
        }
        if !group.maybe_elect_new_joined_leader() && !group.members.is_empty() {
            // Only static members remain and none rejoined: wait another rebalance timeout
            // for their sessions to expire.
            group.join_phase = Some(JoinPhase::Regular);
            self.timers.set(
                TimerKey::Join(group.group_id.clone()),
                now_ms + group.rebalance_timeout_ms(),
            );
            return;
        }
        group.generation_id += 1;
        group.protocol_name = if group.members.is_empty() {
            None
        } else {
            group.select_protocol()
        };
        group.subscribed_topics = group.compute_subscribed_topics();
        group.pending_sync_members.clear();
        if group.members.is_empty() {
            group.transition(GroupState::Empty, now_ms);
            let record = Self::group_metadata_record(group, |_| Bytes::new());
            self.persist(
                &group.group_id.clone(),
                vec![record],
                PendingPersist::Detached,
            );
            return;
        }
        group.transition(GroupState::CompletingRebalance, now_ms);
        let member_ids: Vec<String> = group.members.iter().map(|m| m.member_id.clone()).collect();
        for member_id in member_ids {
            let members = if group.is_leader(&member_id) {
                group.current_member_metadata()
            } else {
                Vec::new()
            };
            let response = self.current_join_response(group, member_id.clone(), members, false);
            if let Some(member) = group.member_mut(&member_id) {
                member.is_new = false;
                if let Some(request_id) = member.awaiting_join.take() {
                    self.respond_join(request_id, response);
                }
            }
            self.schedule_session(group, &member_id, now_ms);
            group.pending_sync_members.insert(member_id);
        }
        // Members that never send SyncGroup are removed after a rebalance timeout.
        self.timers.set(
            TimerKey::PendingSync(group.group_id.clone()),
            now_ms + group.rebalance_timeout_ms(),
        );
    }

    // ---------------------------------------------------------------- SyncGroup

    fn handle_sync_group(&mut self, request_id: RequestId, request: SyncGroupRequest, now_ms: i64) {
        if request.group_id.is_empty() {
            return self.respond_sync(
                request_id,
                SyncGroupResponse::error(ErrorCode::InvalidGroupId),
            );
        }
        let Some(mut group) = self.groups.remove(&request.group_id) else {
            return self.respond_sync(
                request_id,
                SyncGroupResponse::error(ErrorCode::UnknownMemberId),
            );
        };
        self.do_sync_group(&mut group, request_id, request, now_ms);
        self.groups.insert(group.group_id.clone(), group);
    }

    fn do_sync_group(
        &mut self,
        group: &mut Group,
        request_id: RequestId,
        request: SyncGroupRequest,
        now_ms: i64,
    ) {
        let member_id = request.member_id.as_str();
        let error = if group
            .is_static_member_fenced(request.group_instance_id.as_deref(), member_id)
        {
            Some(ErrorCode::FencedInstanceId)
        } else if !group.has(member_id) {
            Some(ErrorCode::UnknownMemberId)
        } else if request.generation_id != group.generation_id {
            Some(ErrorCode::IllegalGeneration)
        } else if request.protocol_type.is_some() && request.protocol_type != group.protocol_type
            || request.protocol_name.is_some() && request.protocol_name != group.protocol_name
        {
            Some(ErrorCode::InconsistentGroupProtocol)
        } else {
            match group.state {
                GroupState::Empty => Some(ErrorCode::UnknownMemberId),
                GroupState::PreparingRebalance => Some(ErrorCode::RebalanceInProgress),
                GroupState::Dead => Some(ErrorCode::CoordinatorNotAvailable),
                GroupState::CompletingRebalance | GroupState::Stable => None,
            }
        };
        if let Some(error) = error {
            return self.respond_sync(request_id, SyncGroupResponse::error(error));
        }
        self.remove_pending_sync_member(group, member_id);
        if group.is(GroupState::Stable) {
            let assignment = group
                .member(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            self.respond_sync(
                request_id,
                SyncGroupResponse {
                    error: ErrorCode::None,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment,
                },
            );
            self.schedule_session(group, member_id, now_ms);
            return;
        }
        // CompletingRebalance: park until the leader's assignment is persisted.
        if let Some(member) = group.member_mut(member_id) {
            if let Some(old) = member.awaiting_sync.replace(request_id) {
                self.respond_sync(
                    old,
                    SyncGroupResponse::error(ErrorCode::RebalanceInProgress),
                );
            }
        }
        if group.is_leader(member_id) {
            let mut assignment: HashMap<String, Bytes> = HashMap::new();
            for member in &group.members {
                let bytes = request
                    .assignments
                    .iter()
                    .find(|a| a.member_id == member.member_id)
                    .map(|a| a.assignment.clone())
                    .unwrap_or_default();
                assignment.insert(member.member_id.clone(), bytes);
            }
            let record = Self::group_metadata_record(group, |m| {
                assignment.get(&m.member_id).cloned().unwrap_or_default()
            });
            let pending = PendingPersist::SyncAssignment {
                group_id: group.group_id.clone(),
                generation_id: group.generation_id,
                assignment,
            };
            self.persist(&group.group_id.clone(), vec![record], pending);
        }
    }

    fn remove_pending_sync_member(&mut self, group: &mut Group, member_id: &str) {
        if group.pending_sync_members.remove(member_id) && group.pending_sync_members.is_empty() {
            self.timers
                .cancel(&TimerKey::PendingSync(group.group_id.clone()));
        }
    }

    fn complete_sync_assignment(
        &mut self,
        group: &mut Group,
        generation_id: i32,
        assignment: &HashMap<String, Bytes>,
        result: Result<(), i16>,
        now_ms: i64,
    ) {
        // A member may have joined meanwhile; the write then belongs to a finished generation.
        if !group.is(GroupState::CompletingRebalance) || group.generation_id != generation_id {
            return;
        }
        match result {
            Ok(()) => {
                for member in &mut group.members {
                    member.assignment = assignment
                        .get(&member.member_id)
                        .cloned()
                        .unwrap_or_default();
                }
                self.propagate_assignment(group, ErrorCode::None, now_ms);
                group.transition(GroupState::Stable, now_ms);
            }
            Err(append_error) => {
                self.reset_and_propagate_assignment_error(
                    group,
                    ErrorCode::from_group_append_error(append_error),
                    now_ms,
                );
                self.maybe_prepare_rebalance(group, now_ms);
            }
        }
    }

    fn reset_and_propagate_assignment_error(
        &mut self,
        group: &mut Group,
        error: ErrorCode,
        now_ms: i64,
    ) {
        for member in &mut group.members {
            member.assignment = Bytes::new();
        }
        self.propagate_assignment(group, error, now_ms);
    }

    /// Answers every parked SyncGroup and restarts those members' sessions (their deadlines
    /// were suspended while parked).
    fn propagate_assignment(&mut self, group: &mut Group, error: ErrorCode, now_ms: i64) {
        let ok = error == ErrorCode::None;
        let (protocol_type, protocol_name) = if ok {
            (group.protocol_type.clone(), group.protocol_name.clone())
        } else {
            (None, None)
        };
        let member_ids: Vec<String> = group.members.iter().map(|m| m.member_id.clone()).collect();
        for member_id in member_ids {
            let Some(member) = group.member_mut(&member_id) else {
                continue;
            };
            let Some(request_id) = member.awaiting_sync.take() else {
                continue;
            };
            let response = SyncGroupResponse {
                error,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignment: member.assignment.clone(),
            };
            self.respond_sync(request_id, response);
            self.schedule_session(group, &member_id, now_ms);
        }
    }

    fn on_pending_sync_deadline(&mut self, group: &mut Group, now_ms: i64) {
        if !matches!(
            group.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) || group.pending_sync_members.is_empty()
        {
            return;
        }
        let laggards: Vec<String> = group.pending_sync_members.iter().cloned().collect();
        for member_id in laggards {
            self.remove_member_quietly(group, &member_id);
        }
        self.maybe_prepare_rebalance(group, now_ms);
    }

    // ---------------------------------------------------------------- Heartbeat and leaving

    fn handle_heartbeat(&mut self, request: &HeartbeatRequest, now_ms: i64) -> ErrorCode {
        if request.group_id.is_empty() {
            return ErrorCode::InvalidGroupId;
        }
        let Some(group) = self.groups.get(&request.group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        let member_id = request.member_id.as_str();
        if group.is_static_member_fenced(request.group_instance_id.as_deref(), member_id) {
            return ErrorCode::FencedInstanceId;
        }
        if !group.has(member_id) {
            return ErrorCode::UnknownMemberId;
        }
        if request.generation_id != group.generation_id {
            return ErrorCode::IllegalGeneration;
        }
        let error = match group.state {
            GroupState::Empty => return ErrorCode::UnknownMemberId,
            GroupState::Dead => return ErrorCode::CoordinatorNotAvailable,
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
        };
        let timeout = group
            .member(member_id)
            .map(|m| i64::from(m.session_timeout_ms))
            .unwrap_or_default();
        self.timers.set(
            TimerKey::Heartbeat(request.group_id.clone(), member_id.to_owned()),
            now_ms + timeout,
        );
        error
    }

    fn on_heartbeat_deadline(&mut self, group: &mut Group, member_id: &str, now_ms: i64) {
        let expired = group
            .member(member_id)
            .is_some_and(|m| !m.has_satisfied_heartbeat());
        if expired {
            tracing::info!(group = %group.group_id, member = member_id, "member session expired");
            self.remove_member_and_update_group(group, member_id, now_ms);
        }
    }

    /// Removes a member and cancels its deadlines, without the state reaction. Parked
    /// requests are answered UNKNOWN_MEMBER_ID so the broker never holds them forever.
    fn remove_member_quietly(&mut self, group: &mut Group, member_id: &str) {
        if let Some(member) = group.remove(member_id) {
            if let Some(request_id) = member.awaiting_join {
                self.respond_join(
                    request_id,
                    JoinGroupResponse::error("", ErrorCode::UnknownMemberId),
                );
            }
            if let Some(request_id) = member.awaiting_sync {
                self.respond_sync(
                    request_id,
                    SyncGroupResponse::error(ErrorCode::UnknownMemberId),
                );
            }
        }
        self.timers.cancel(&TimerKey::Heartbeat(
            group.group_id.clone(),
            member_id.to_owned(),
        ));
        if group.pending_sync_members.is_empty() {
            self.timers
                .cancel(&TimerKey::PendingSync(group.group_id.clone()));
        }
    }

    /// Kafka's `removeMemberAndUpdateGroup`.
    fn remove_member_and_update_group(&mut self, group: &mut Group, member_id: &str, now_ms: i64) {
        self.remove_member_quietly(group, member_id);
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(group, now_ms)
            }
            GroupState::PreparingRebalance => self.try_complete_join(group, now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn handle_leave_group(
        &mut self,
        request: LeaveGroupRequest,
        now_ms: i64,
    ) -> LeaveGroupResponse {
        if request.group_id.is_empty() {
            return LeaveGroupResponse {
                error: ErrorCode::InvalidGroupId,
                members: Vec::new(),
            };
        }
        let answer = |identity: &crate::api::MemberIdentity, error| LeaveGroupMemberResponse {
            member_id: identity.member_id.clone(),
            group_instance_id: identity.group_instance_id.clone(),
            error,
        };
        let Some(mut group) = self.groups.remove(&request.group_id) else {
            let members = request
                .members
                .iter()
                .map(|m| answer(m, ErrorCode::UnknownMemberId))
                .collect();
            return LeaveGroupResponse {
                error: ErrorCode::None,
                members,
            };
        };
        let mut members = Vec::with_capacity(request.members.len());
        for identity in &request.members {
            let instance_id = identity.group_instance_id.as_deref();
            let error = if identity.member_id.is_empty() {
                // Administrative removal of a static member by instance id.
                match instance_id
                    .and_then(|id| group.current_static_member_id(id))
                    .cloned()
                {
                    Some(current) => {
                        self.remove_member_and_update_group(&mut group, &current, now_ms);
                        ErrorCode::None
                    }
                    None => ErrorCode::UnknownMemberId,
                }
            } else if group.pending_members.remove(&identity.member_id) {
                self.timers.cancel(&TimerKey::PendingMember(
                    group.group_id.clone(),
                    identity.member_id.clone(),
                ));
                if group.is(GroupState::PreparingRebalance) {
                    self.try_complete_join(&mut group, now_ms);
                }
                ErrorCode::None
            } else if group.is_static_member_fenced(instance_id, &identity.member_id) {
                ErrorCode::FencedInstanceId
            } else if group.has(&identity.member_id) {
                self.remove_member_and_update_group(&mut group, &identity.member_id, now_ms);
                ErrorCode::None
            } else {
                ErrorCode::UnknownMemberId
            };
            members.push(answer(identity, error));
        }
        self.groups.insert(group.group_id.clone(), group);
        LeaveGroupResponse {
            error: ErrorCode::None,
            members,
        }
    }

    // ---------------------------------------------------------------- Offsets

    fn handle_commit_offsets(
        &mut self,
        request_id: RequestId,
        request: OffsetCommitRequest,
        now_ms: i64,
    ) {
        let mut group = match self.groups.remove(&request.group_id) {
            Some(group) => group,
            // Not managed by Kafka (simple consumer): the commit creates an Empty group.
            None if request.generation_id < 0 => Group::new(request.group_id.clone(), now_ms),
            None => {
                return self.respond_commit_error(
                    request_id,
                    &request.topics,
                    false,
                    ErrorCode::IllegalGeneration,
                )
            }
        };
        let validation = Self::validate_offset_commit(
            &group,
            request.generation_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
            false,
        );
        let expire_timestamp_ms =
            (request.retention_time_ms != -1).then(|| now_ms + request.retention_time_ms);
        match validation {
            Some(error) => self.respond_commit_error(request_id, &request.topics, false, error),
            None => match group.state {
                GroupState::Empty => self.store_offsets(
                    &mut group,
                    request_id,
                    &request.topics,
                    expire_timestamp_ms,
                    None,
                    now_ms,
                ),
                // PreparingRebalance still accepts commits: the heartbeat tells members to rejoin.
                GroupState::Stable | GroupState::PreparingRebalance => {
                    self.schedule_session(&group, &request.member_id, now_ms);
                    self.store_offsets(
                        &mut group,
                        request_id,
                        &request.topics,
                        expire_timestamp_ms,
                        None,
                        now_ms,
                    );
                }
                GroupState::CompletingRebalance => {
                    self.respond_commit_error(
                        request_id,
                        &request.topics,
                        false,
                        ErrorCode::RebalanceInProgress,
                    );
                }
                GroupState::Dead => self.respond_commit_error(
                    request_id,
                    &request.topics,
                    false,
                    ErrorCode::CoordinatorNotAvailable,
                ),
            },
        }
        self.groups.insert(group.group_id.clone(), group);
    }

    /// Kafka's `handleTxnCommitOffsets`: the member fields (v3+, KIP-447) are checked like a
    /// commit's, so a zombie producer of an old generation is fenced; without them any group
    /// state accepts the commit, and the group state itself is never enforced.
    fn handle_txn_offset_commit(
        &mut self,
        request_id: RequestId,
        request: TxnOffsetCommitRequest,
        now_ms: i64,
    ) {
        let transaction = TxnProducer {
            producer_id: request.producer_id,
            producer_epoch: request.producer_epoch,
        };
        // Unlike OffsetCommit, TxnOffsetCommit never accepted an empty group id.
        if request.group_id.is_empty() {
            return self.respond_commit_error(
                request_id,
                &request.topics,
                true,
                ErrorCode::InvalidGroupId,
            );
        }
        let (generation_id, member_id, group_instance_id) = if request.version >= 3 {
            (
                request.generation_id,
                request.member_id.as_str(),
                request.group_instance_id.as_deref(),
            )
        } else {
            (-1, "", None)
        };
        let mut group = match self.groups.remove(&request.group_id) {
            Some(group) => group,
            None if generation_id < 0 => Group::new(request.group_id.clone(), now_ms),
            None => {
                return self.respond_commit_error(
                    request_id,
                    &request.topics,
                    true,
                    ErrorCode::IllegalGeneration,
                )
            }
        };
        match Self::validate_offset_commit(
            &group,
            generation_id,
            member_id,
            group_instance_id,
            true,
        ) {
            Some(error) => self.respond_commit_error(request_id, &request.topics, true, error),
            None => {
                tracing::debug!(
                    group_id = request.group_id,
                    transactional_id = request.transactional_id,
                    producer_id = request.producer_id,
                    "transactional offset commit"
                );
                self.store_offsets(
                    &mut group,
                    request_id,
                    &request.topics,
                    None,
                    Some(transaction),
                    now_ms,
                );
            }
        }
        self.groups.insert(group.group_id.clone(), group);
    }

    /// Kafka's `validateOffsetCommit`: group members must prove membership and generation; a
    /// commit without them is only allowed while nobody is in the group, except for
    /// transactional commits (TxnOffsetCommit v0-2 had no member fields to send).
    fn validate_offset_commit(
        group: &Group,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        transactional: bool,
    ) -> Option<ErrorCode> {
        if group.is(GroupState::Dead) {
            return Some(ErrorCode::CoordinatorNotAvailable);
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            if let Some(instance_id) = group_instance_id {
                match group.current_static_member_id(instance_id) {
                    Some(current) if *current != member_id => {
                        return Some(ErrorCode::FencedInstanceId)
                    }
                    Some(_) => {}
                    None => return Some(ErrorCode::UnknownMemberId),
                }
            }
            if !group.has(member_id) {
                return Some(ErrorCode::UnknownMemberId);
            }
            if generation_id != group.generation_id {
                return Some(ErrorCode::IllegalGeneration);
            }
            None
        } else if !transactional && !group.is(GroupState::Empty) {
            Some(ErrorCode::UnknownMemberId)
        } else {
            None
        }
    }

    fn respond_commit_error(
        &mut self,
        request_id: RequestId,
        topics: &[OffsetCommitTopic],
        transactional: bool,
        error: ErrorCode,
    ) {
        let topics = topics
            .iter()
            .map(|t| TopicPartitionErrors {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| PartitionError {
                        partition_index: p.partition_index,
                        error,
                    })
                    .collect(),
            })
            .collect();
        self.respond(
            request_id,
            commit_response(transactional, OffsetCommitResponse { topics }),
        );
    }

    /// Appends the offsets (one batch; transactional for `transaction`) and answers once the
    /// append completes. A plain commit counts then; a transactional one waits, from now on,
    /// for its producer's marker.
    fn store_offsets(
        &mut self,
        group: &mut Group,
        request_id: RequestId,
        topics: &[OffsetCommitTopic],
        expire_timestamp_ms: Option<i64>,
        transaction: Option<TxnProducer>,
        now_ms: i64,
    ) {
        let max = self.config.offset_metadata_max_bytes;
        self.next_log_sequence += 1;
        let log_sequence = self.next_log_sequence;
        let mut entries = Vec::new();
        let mut records = Vec::new();
        for topic in topics {
            for p in &topic.partitions {
                let tp = TopicPartition {
                    topic: topic.name.clone(),
                    partition: p.partition_index,
                };
                let metadata = p.committed_metadata.clone().unwrap_or_default();
                // Java measures String.length() in UTF-16 units.
                if metadata.encode_utf16().count() > max {
                    entries.push((tp, None));
                    continue;
                }
                let offset = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: (p.committed_leader_epoch >= 0)
                        .then_some(p.committed_leader_epoch),
                    metadata,
                    commit_timestamp_ms: if p.commit_timestamp_ms == -1 {
                        now_ms
                    } else {
                        p.commit_timestamp_ms
                    },
                    expire_timestamp_ms,
                    log_sequence,
                };
                records.push(offset_commit_record(&group.group_id, &tp, &offset));
                match transaction {
                    None => *group.pending_offset_commits.entry(tp.clone()).or_default() += 1,
                    Some(txn) => {
                        group.prepare_txn_offset(txn.producer_id, tp.clone(), offset.clone())
                    }
                }
                entries.push((tp, Some(offset)));
            }
        }
        if records.is_empty() {
            return self.respond_commit_error(
                request_id,
                topics,
                transaction.is_some(),
                ErrorCode::OffsetMetadataTooLarge,
            );
        }
        if let Some(txn) = transaction {
            self.txn_groups
                .entry(txn.producer_id)
                .or_default()
                .insert(group.group_id.clone());
        }
        let pending = PendingPersist::OffsetCommit {
            request_id,
            group_id: group.group_id.clone(),
            entries,
            transaction,
        };
        self.persist_batch(&group.group_id.clone(), records, transaction, pending);
    }

    fn complete_offset_commit(
        &mut self,
        request_id: RequestId,
        group_id: &str,
        entries: Vec<(TopicPartition, Option<CommittedOffset>)>,
        transaction: Option<TxnProducer>,
        result: Result<(), i16>,
    ) {
        let error = match result {
            Ok(()) => ErrorCode::None,
            Err(append_error) => ErrorCode::from_offset_append_error(append_error),
        };
        let mut group = self.groups.remove(group_id);
        let mut topics: Vec<TopicPartitionErrors> = Vec::new();
        for (tp, offset) in entries {
            let partition_error = match offset {
                None => ErrorCode::OffsetMetadataTooLarge,
                Some(offset) => {
                    if let Some(group) = group.as_mut() {
                        Self::settle_offset(group, &tp, offset, transaction, result.is_ok());
                    }
                    error
                }
            };
            let entry = PartitionError {
                partition_index: tp.partition,
                error: partition_error,
            };
            match topics.last_mut() {
                Some(last) if last.name == tp.topic => last.partitions.push(entry),
                _ => topics.push(TopicPartitionErrors {
                    name: tp.topic,
                    partitions: vec![entry],
                }),
            }
        }
        if let Some(group) = group {
            if let Some(txn) = transaction {
                self.forget_txn_group(txn.producer_id, &group);
            }
            self.groups.insert(group.group_id.clone(), group);
        }
        self.respond(
            request_id,
            commit_response(transaction.is_some(), OffsetCommitResponse { topics }),
        );
    }

    /// One partition's append outcome: a plain commit counts (unless a later one already
    /// does); a transactional one becomes pending for its marker, or is taken back.
    fn settle_offset(
        group: &mut Group,
        tp: &TopicPartition,
        offset: CommittedOffset,
        transaction: Option<TxnProducer>,
        appended: bool,
    ) {
        match transaction {
            None => {
                if let Some(n) = group.pending_offset_commits.get_mut(tp) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        group.pending_offset_commits.remove(tp);
                    }
                }
                if appended {
                    group.commit_offset(tp.clone(), offset);
                }
            }
            Some(txn) if appended => {
                group.txn_offset_appended(txn.producer_id, tp, offset.log_sequence)
            }
            Some(txn) => group.txn_offset_failed(txn.producer_id, tp, offset.log_sequence),
        }
    }

    fn handle_delete_offsets(
        &mut self,
        request: OffsetDeleteRequest,
        now_ms: i64,
    ) -> OffsetDeleteResponse {
        let group_error = |error| OffsetDeleteResponse {
            error,
            topics: Vec::new(),
        };
        if request.group_id.is_empty() {
            return group_error(ErrorCode::InvalidGroupId);
        }
        let Some(mut group) = self.groups.remove(&request.group_id) else {
            return group_error(ErrorCode::GroupIdNotFound);
        };
        let open_producers: Vec<i64> = group.pending_txn_offsets.keys().copied().collect();
        let check_subscription = match group.state {
            GroupState::Empty => false,
            GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
            | GroupState::Stable
                if group.is_consumer_group() =>
            {
                true
            }
            _ => {
                self.groups.insert(group.group_id.clone(), group);
                return group_error(ErrorCode::NonEmptyGroup);
            }
        };
        let mut topics = Vec::with_capacity(request.topics.len());
        let mut removed = Vec::new();
        for topic in &request.topics {
            let subscribed = check_subscription && group.is_subscribed_to_topic(&topic.name);
            let error = if subscribed {
                ErrorCode::GroupSubscribedToTopic
            } else {
                ErrorCode::None
            };
            for partition in &topic.partition_indexes {
                if subscribed {
                    continue;
                }
                let tp = TopicPartition {
                    topic: topic.name.clone(),
                    partition: *partition,
                };
                group.pending_offset_commits.remove(&tp);
                // The tombstone also covers open transactions' offsets (so replay drops them
                // too), which is why it is written when only those existed.
                let had_txn_offsets = group.remove_txn_offsets(&tp);
                if group.offsets.remove(&tp).is_some() || had_txn_offsets {
                    removed.push(tp);
                }
            }
            topics.push(TopicPartitionErrors {
                name: topic.name.clone(),
                partitions: topic
                    .partition_indexes
                    .iter()
                    .map(|p| PartitionError {
                        partition_index: *p,
                        error,
                    })
                    .collect(),
            });
        }
        for producer_id in open_producers {
            self.forget_txn_group(producer_id, &group);
        }
        self.cleanup_group(group, removed, now_ms);
        OffsetDeleteResponse {
            error: ErrorCode::None,
            topics,
        }
    }

    /// Kafka's `removeExpiredOffsets` (2.1+ semantics).
    fn expired_offsets(&self, group: &Group, now_ms: i64) -> Vec<TopicPartition> {
        let retention_ms = self.config.offsets_retention_ms;
        let expired = |base_timestamp: &dyn Fn(&CommittedOffset) -> i64,
                       subscribed: Option<&BTreeSet<String>>| {
            group
                .offsets
                .iter()
                .filter(|(tp, offset)| {
                    !subscribed.is_some_and(|topics| topics.contains(&tp.topic))
                        && !group.has_pending_commit(tp)
                        // Kafka's newer coordinator: a transaction may still commit over it.
                        && !group.has_pending_txn_offset(tp)
                        && match offset.expire_timestamp_ms {
                            None => now_ms - base_timestamp(offset) >= retention_ms,
                            Some(expire_ms) => now_ms >= expire_ms,
                        }
                })
                .map(|(tp, _)| tp.clone())
                .collect::<Vec<_>>()
        };
        match (&group.protocol_type, group.state) {
            // Nobody consumes: the clock starts when the group became Empty.
            (Some(_), GroupState::Empty) => {
                let state_timestamp = group.state_timestamp_ms;
                expired(&|o| state_timestamp.unwrap_or(o.commit_timestamp_ms), None)
            }
            // A stable consumer group keeps offsets of subscribed topics forever.
            (Some(protocol_type), GroupState::Stable)
                if protocol_type == crate::subscription::CONSUMER_PROTOCOL_TYPE
                    && group.subscribed_topics.is_some() =>
            {
                expired(&|o| o.commit_timestamp_ms, group.subscribed_topics.as_ref())
            }
            // Offsets-only (simple consumer) group.
            (None, _) => expired(&|o| o.commit_timestamp_ms, None),
            _ => Vec::new(),
        }
    }

    /// Kafka's `cleanupGroupMetadata` for one group whose offsets in `removed` are already
    /// gone: an Empty group without offsets dies; tombstones go out; dead groups are dropped.
    fn cleanup_group(&mut self, mut group: Group, removed: Vec<TopicPartition>, now_ms: i64) {
        if group.is(GroupState::Empty) && !group.has_offsets() {
            group.transition(GroupState::Dead, now_ms);
        }
        let mut records: Vec<OffsetsRecord> = removed
            .iter()
            .map(|tp| OffsetsRecord {
                key: OffsetsKey::OffsetCommit(OffsetCommitKey {
                    group: group.group_id.clone(),
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                }),
                value: None,
            })
            .collect();
        let dead = group.is(GroupState::Dead);
        // A group that never rebalanced (generation 0) only ever stored offsets: no group
        // record exists to tombstone.
        if dead && group.generation_id > 0 {
            records.push(OffsetsRecord {
                key: OffsetsKey::GroupMetadata(GroupMetadataKey {
                    group: group.group_id.clone(),
                }),
                value: None,
            });
        }
        if !records.is_empty() {
            self.persist(&group.group_id, records, PendingPersist::Detached);
        }
        if dead {
            self.timers.cancel(&TimerKey::Join(group.group_id.clone()));
            for member_id in mem::take(&mut group.pending_members) {
                self.timers
                    .cancel(&TimerKey::PendingMember(group.group_id.clone(), member_id));
            }
        } else {
            self.groups.insert(group.group_id.clone(), group);
        }
    }

    fn restore_group_metadata(
        &mut self,
        group: &mut Group,
        value: GroupMetadataValue,
        now_ms: i64,
    ) {
        group.generation_id = value.generation;
        group.protocol_type = Some(value.protocol_type).filter(|t| !t.is_empty());
        group.protocol_name = value.protocol.clone();
        group.leader_id = value.leader;
        group.state_timestamp_ms =
            (value.current_state_timestamp != -1).then_some(value.current_state_timestamp);
        let protocol = value.protocol.unwrap_or_default();
        for m in value.members {
            if let Some(instance_id) = &m.group_instance_id {
                group
                    .static_members
                    .insert(instance_id.clone(), m.member_id.clone());
            }
            group.members.push(Member {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout,
                session_timeout_ms: m.session_timeout,
                protocols: vec![GroupProtocol {
                    name: protocol.clone(),
                    metadata: m.subscription,
                }],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
            });
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group.subscribed_topics = group.compute_subscribed_topics();
        let member_ids: Vec<String> = group.members.iter().map(|m| m.member_id.clone()).collect();
        for member_id in member_ids {
            self.schedule_session(group, &member_id, now_ms);
        }
    }
}

/// OffsetCommit and TxnOffsetCommit answer with the same per-partition shape.
/// Per-partition outcomes of an offset commit that failed as a whole with `error`, in
/// request order, grouped by topic.
fn entries_with_error(
    entries: Vec<(TopicPartition, Option<CommittedOffset>)>,
    error: ErrorCode,
) -> Vec<TopicPartitionErrors> {
    let mut topics: Vec<TopicPartitionErrors> = Vec::new();
    for (tp, _) in entries {
        let entry = PartitionError {
            partition_index: tp.partition,
            error,
        };
        match topics.last_mut() {
            Some(last) if last.name == tp.topic => last.partitions.push(entry),
            _ => topics.push(TopicPartitionErrors {
                name: tp.topic,
                partitions: vec![entry],
            }),
        }
    }
    topics
}

fn commit_response(transactional: bool, response: OffsetCommitResponse) -> Response {
    if transactional {
        Response::TxnOffsetCommit(response)
    } else {
        Response::OffsetCommit(response)
    }
}

fn offset_commit_record(
    group_id: &str,
    tp: &TopicPartition,
    offset: &CommittedOffset,
) -> OffsetsRecord {
    OffsetsRecord {
        key: OffsetsKey::OffsetCommit(OffsetCommitKey {
            group: group_id.to_owned(),
            topic: tp.topic.clone(),
            partition: tp.partition,
        }),
        value: Some(OffsetsValue::OffsetCommit(OffsetCommitValue {
            offset: offset.offset,
            leader_epoch: offset.leader_epoch.unwrap_or(-1),
            metadata: offset.metadata.clone(),
            commit_timestamp: offset.commit_timestamp_ms,
            expire_timestamp: offset.expire_timestamp_ms.unwrap_or(-1),
        })),
    }
}

#[cfg(test)]
#[path = "coordinator_test.rs"]
mod tests;

//! One group's membership, generation and committed offsets (Kafka's `GroupMetadata`).
//!
//! Pure data plus the small rules that only look at one group; everything that emits effects
//! or touches deadlines lives in [`crate::GroupCoordinator`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use bytes::Bytes;

use crate::api::{GroupProtocol, JoinGroupMember};
use crate::effect::RequestId;
use crate::subscription::{subscription_topics, CONSUMER_PROTOCOL_TYPE};

/// A classic group's state, with Kafka's names (ListGroups and DescribeGroups print them).
///
/// ```text
///  Empty ──join──► PreparingRebalance ──all joined / timeout──► CompletingRebalance
///    ▲                   ▲      ▲                                     │ leader SyncGroup
///    │ last member gone  │      └──── join/leave/expiry ──────────────┤ persisted
///    └───────────────────┴──────────── join/leave/expiry ◄── Stable ◄─┘
///  Empty ──delete / offsets expired──► Dead
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; may still hold offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment distributed; members heartbeat.
    Stable,
    /// Removed; also what DescribeGroups reports for an unknown group.
    Dead,
}

impl GroupState {
    /// Kafka's name for the state, as ListGroups filters and DescribeGroups reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A topic partition, ordered so "all offsets" listings are deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TopicPartition {
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

/// A committed offset as cached (Kafka's `OffsetAndMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: Option<i32>,
    pub(crate) metadata: String,
    pub(crate) commit_timestamp_ms: i64,
    pub(crate) expire_timestamp_ms: Option<i64>,
    /// Where the commit's record sits in `__consumer_offsets` relative to the group's other
    /// commits (Kafka compares record offsets). Appends happen in issue order, so a counter
    /// bumped per append (or per replayed record) orders them the same way. A transaction that
    /// commits late must not overwrite a plain commit appended after its own record.
    pub(crate) log_sequence: u64,
}

/// Stores `offset` for `tp` unless `offsets` holds one appended after it (Kafka's `olderThan`
/// check): commit outcomes may arrive out of log order once transactions are involved.
pub(crate) fn keep_latest(
    offsets: &mut BTreeMap<TopicPartition, CommittedOffset>,
    tp: TopicPartition,
    offset: CommittedOffset,
) {
    let newer_exists = offsets
        .get(&tp)
        .is_some_and(|current| current.log_sequence > offset.log_sequence);
    if !newer_exists {
        offsets.insert(tp, offset);
    }
}

/// The pending JoinGroup phase of a group in PreparingRebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinPhase {
    /// Kafka's `InitialDelayedJoin`: only completes on its deadline, and re-arms while new
    /// members keep arriving (bounded by the rebalance timeout).
    Initial { delay_ms: i64, remaining_ms: i64 },
    /// Kafka's `DelayedJoin`: completes as soon as every member has rejoined.
    Regular,
}

/// A member (Kafka's `MemberMetadata`).
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    pub(crate) protocols: Vec<GroupProtocol>,
    pub(crate) assignment: Bytes,
    /// The parked JoinGroup, if the member is awaiting the join phase.
    pub(crate) awaiting_join: Option<RequestId>,
    /// The parked SyncGroup, if the member is awaiting the assignment.
    pub(crate) awaiting_sync: Option<RequestId>,
    /// Joined but not yet through a completed join phase: its deadline is the new-member
    /// join timeout, and being parked does not count as a heartbeat.
    pub(crate) is_new: bool,
}

impl Member {
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// Same protocols, same order, same metadata: a rejoin that changes nothing.
    pub(crate) fn matches(&self, protocols: &[GroupProtocol]) -> bool {
        self.protocols == protocols
    }

    /// The member's most preferred protocol among `candidates`.
    fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Kafka's `hasSatisfiedHeartbeat` at expiry time: a parked member is alive by definition,
    /// unless it is new (then only the join timeout protects it).
    pub(crate) fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }
}

/// One group.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) group_id: String,
    pub(crate) state: GroupState,
    pub(crate) state_timestamp_ms: Option<i64>,
    pub(crate) generation_id: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader_id: Option<String>,
    /// Members in join order (Kafka's map order is unspecified; join order is deterministic).
    pub(crate) members: Vec<Member>,
    pub(crate) static_members: HashMap<String, String>,
    pub(crate) pending_members: BTreeSet<String>,
    pub(crate) pending_sync_members: BTreeSet<String>,
    pub(crate) new_member_added: bool,
    pub(crate) join_phase: Option<JoinPhase>,
    pub(crate) subscribed_topics: Option<BTreeSet<String>>,
    pub(crate) offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// Commits being appended, per partition (Kafka's `pendingOffsetCommits`).
    pub(crate) pending_offset_commits: HashMap<TopicPartition, u32>,
    /// Transactional offsets awaiting their producer's commit or abort marker, per producer id
    /// (Kafka's `pendingTransactionalOffsetCommits`). Per partition in log order, appended or
    /// still in flight: usually one, more while retries of one transaction's commit are
    /// in flight, since a failed append must give the earlier one back.
    pub(crate) pending_txn_offsets: BTreeMap<i64, BTreeMap<TopicPartition, Vec<CommittedOffset>>>,
}

impl Group {
    pub(crate) fn new(group_id: String, now_ms: i64) -> Self {
        Self {
            group_id,
            state: GroupState::Empty,
            state_timestamp_ms: Some(now_ms),
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: Vec::new(),
            static_members: HashMap::new(),
            pending_members: BTreeSet::new(),
            pending_sync_members: BTreeSet::new(),
            new_member_added: false,
            join_phase: None,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
            pending_offset_commits: HashMap::new(),
            pending_txn_offsets: BTreeMap::new(),
        }
    }

    pub(crate) fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub(crate) fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = Some(now_ms);
    }

    pub(crate) fn has(&self, member_id: &str) -> bool {
        self.members.iter().any(|m| m.member_id == member_id)
    }

    pub(crate) fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == member_id)
    }

    pub(crate) fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.member_id == member_id)
    }

    pub(crate) fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub(crate) fn leader_or_empty(&self) -> String {
        self.leader_id.clone().unwrap_or_default()
    }

    pub(crate) fn is_consumer_group(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// Largest rebalance timeout among members: how long a rebalance may wait.
    pub(crate) fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .iter()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn num_awaiting_join(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    pub(crate) fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    pub(crate) fn current_static_member_id(&self, instance_id: &str) -> Option<&String> {
        self.static_members.get(instance_id)
    }

    /// Another member id already owns this instance id: the caller is a zombie.
    pub(crate) fn is_static_member_fenced(
        &self,
        instance_id: Option<&str>,
        member_id: &str,
    ) -> bool {
        instance_id
            .and_then(|id| self.current_static_member_id(id))
            .is_some_and(|current| current != member_id)
    }

    fn supported_count(&self, protocol: &str) -> usize {
        self.members
            .iter()
            .filter(|m| m.protocols.iter().any(|p| p.name == protocol))
            .count()
    }

    /// Kafka's `supportsProtocols`: an Empty group accepts any non-empty offer; otherwise the
    /// type must match and at least one protocol must be shared by every current member.
    pub(crate) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[GroupProtocol],
    ) -> bool {
        if self.is(GroupState::Empty) {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols
                    .iter()
                    .any(|p| self.supported_count(&p.name) == self.members.len())
        }
    }

    /// Kafka's `selectProtocol`: among protocols every member supports, each member votes for
    /// its most preferred, and the most votes win. Ties go to the protocol voted first in join
    /// order (Kafka leaves ties to hash order; this keeps the choice deterministic).
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let candidates: BTreeSet<&str> = self
            .members
            .iter()
            .flat_map(|m| m.protocols.iter().map(|p| p.name.as_str()))
            .filter(|name| self.supported_count(name) == self.members.len())
            .collect();
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for member in &self.members {
            let vote = member.vote(&candidates)?;
            match votes.iter_mut().find(|(name, _)| *name == vote) {
                Some((_, count)) => *count += 1,
                None => votes.push((vote, 1)),
            }
        }
        let best = votes.iter().map(|(_, count)| *count).max()?;
        votes
            .iter()
            .find(|(_, count)| *count == best)
            .map(|(name, _)| (*name).to_owned())
    }

    /// Adds a member (Kafka's `GroupMetadata.add`); the first member fixes the protocol type and
    /// the first member ever present becomes leader.
    pub(crate) fn add(&mut self, member: Member, protocol_type: &str) {
        if let Some(instance_id) = &member.group_instance_id {
            self.static_members
                .insert(instance_id.clone(), member.member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_owned());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.push(member);
    }

    /// Removes a member (Kafka's `GroupMetadata.remove`); a departing leader is replaced by
    /// the earliest remaining member.
    pub(crate) fn remove(&mut self, member_id: &str) -> Option<Member> {
        let index = self.members.iter().position(|m| m.member_id == member_id);
        let removed = index.map(|i| self.members.remove(i));
        if let Some(instance_id) = removed.as_ref().and_then(|m| m.group_instance_id.as_ref()) {
            self.static_members.remove(instance_id);
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.first().map(|m| m.member_id.clone());
        }
        self.pending_members.remove(member_id);
        self.pending_sync_members.remove(member_id);
        removed
    }

    /// Kafka's `maybeElectNewJoinedLeader`: keep the leader if it rejoined, else promote any
    /// member that did; `false` if nobody rejoined.
    pub(crate) fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else {
            return false;
        };
        if self
            .member(&leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.iter().find(|m| m.awaiting_join.is_some()) {
            Some(joined) => {
                self.leader_id = Some(joined.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// What the leader receives in its JoinGroup response.
    pub(crate) fn current_member_metadata(&self) -> Vec<JoinGroupMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinGroupMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    /// Kafka's `computeSubscribedTopics`: known only for consumer groups whose every member's
    /// subscription parses.
    pub(crate) fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        let protocol = self.protocol_name.as_deref()?;
        if !self.is_consumer_group() || self.members.is_empty() {
            return None;
        }
        let mut topics = BTreeSet::new();
        for member in &self.members {
            topics.extend(subscription_topics(&member.metadata(protocol)).ok()?);
        }
        Some(topics)
    }

    pub(crate) fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        self.subscribed_topics
            .as_ref()
            .is_some_and(|topics| topics.contains(topic))
    }

    pub(crate) fn has_pending_commit(&self, tp: &TopicPartition) -> bool {
        self.pending_offset_commits.get(tp).is_some_and(|n| *n > 0)
    }

    /// Kafka's `hasOffsets`: offsets being written or awaiting a transaction keep an Empty
    /// group alive as much as committed ones do.
    pub(crate) fn has_offsets(&self) -> bool {
        !self.offsets.is_empty()
            || !self.pending_offset_commits.is_empty()
            || !self.pending_txn_offsets.is_empty()
    }

    /// Stores `offset` unless the partition already holds a commit appended after it.
    pub(crate) fn commit_offset(&mut self, tp: TopicPartition, offset: CommittedOffset) {
        keep_latest(&mut self.offsets, tp, offset);
    }

    /// Some open transaction has offsets for `tp`.
    pub(crate) fn has_pending_txn_offset(&self, tp: &TopicPartition) -> bool {
        self.pending_txn_offsets
            .values()
            .any(|offsets| offsets.contains_key(tp))
    }

    pub(crate) fn has_pending_txn_offsets_from(&self, producer_id: i64) -> bool {
        self.pending_txn_offsets.contains_key(&producer_id)
    }

    /// Every partition some open transaction has offsets for.
    pub(crate) fn pending_txn_partitions(&self) -> BTreeSet<TopicPartition> {
        self.pending_txn_offsets
            .values()
            .flat_map(|offsets| offsets.keys().cloned())
            .collect()
    }

    /// Records a transactional offset whose append was just issued.
    pub(crate) fn prepare_txn_offset(
        &mut self,
        producer_id: i64,
        tp: TopicPartition,
        offset: CommittedOffset,
    ) {
        self.pending_txn_offsets
            .entry(producer_id)
            .or_default()
            .entry(tp)
            .or_default()
            .push(offset);
    }

    /// The append of `log_sequence` succeeded: it supersedes the producer's earlier offsets
    /// for `tp`, as a later record of the same transaction does in the log.
    pub(crate) fn txn_offset_appended(
        &mut self,
        producer_id: i64,
        tp: &TopicPartition,
        log_sequence: u64,
    ) {
        let Some(writes) = self
            .pending_txn_offsets
            .get_mut(&producer_id)
            .and_then(|offsets| offsets.get_mut(tp))
        else {
            return;
        };
        if writes.iter().any(|w| w.log_sequence == log_sequence) {
            writes.retain(|w| w.log_sequence >= log_sequence);
        }
    }

    /// The append of `log_sequence` failed: the offset never reached the log.
    pub(crate) fn txn_offset_failed(
        &mut self,
        producer_id: i64,
        tp: &TopicPartition,
        log_sequence: u64,
    ) {
        let Some(offsets) = self.pending_txn_offsets.get_mut(&producer_id) else {
            return;
        };
        if let Some(writes) = offsets.get_mut(tp) {
            writes.retain(|w| w.log_sequence != log_sequence);
            if writes.is_empty() {
                offsets.remove(tp);
            }
        }
        if offsets.is_empty() {
            self.pending_txn_offsets.remove(&producer_id);
        }
    }

    /// Kafka's `completePendingTxnOffsetCommit`: on commit the producer's latest offset per
    /// partition becomes the committed one unless a plain commit was appended after it; on
    /// abort they are dropped. An offset whose append is still in flight is applied too: the
    /// marker was written after it, and a durable marker means the records before it are.
    pub(crate) fn complete_txn_offsets(&mut self, producer_id: i64, commit: bool) {
        let Some(offsets) = self.pending_txn_offsets.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for (tp, mut writes) in offsets {
            if let Some(latest) = writes.pop() {
                self.commit_offset(tp, latest);
            }
        }
    }

    /// Drops every open transaction's offsets for `tp` (an offset tombstone covers them, as
    /// Kafka's `removeOffsets` does); `true` if there were any.
    pub(crate) fn remove_txn_offsets(&mut self, tp: &TopicPartition) -> bool {
        let mut removed = false;
        self.pending_txn_offsets.retain(|_, offsets| {
            removed |= offsets.remove(tp).is_some();
            !offsets.is_empty()
        });
        removed
    }
}

//! The runtime around the consumer-group state machine (`fjord_group`).
//!
//! One task owns the [`GroupCoordinator`] and drains its inbox; handlers send it requests and
//! await the answer. The task carries out the machine's effects: appends to
//! `__consumer_offsets` (in the order issued, so the log replays to the same state), waits for
//! them to be durable off the task, answers parked JoinGroup/SyncGroup requests, and keeps the
//! single timer the machine asks for.
//!
//! On a single broker it replays all of `__consumer_offsets` at start and owns every group. In
//! cluster mode it loads nothing at start: it follows the applied metadata image
//! ([`LeadershipFeed`]) and, like Kafka's `onElection`/`onResignation`, replays a partition
//! when this broker becomes its leader (at a new leader epoch: again) and forgets its groups
//! when it stops leading it. The replay reads the log off the task; meanwhile the partition's
//! groups answer COORDINATOR_LOAD_IN_PROGRESS. Where each partition stands is shared with the
//! request handlers ([`GroupCoordinatorHandle::loaded`]).
//!
//! ```text
//!  handler ──Command──► runtime task ──► GroupCoordinator (pure)
//!     ▲                     │  effects: Persist → append + flush → complete_persist
//!     └──── oneshot ◄───────┘           Respond → oneshot, ScheduleTimeout → timer → tick
//!  applied image ──► led here at epoch e ──► begin_load ──► read log (blocking pool)
//!                                                          └─► Loaded ──► load_partition
//!                   no longer led here  ──► unload_partition
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use fjord_group::api::{
    DescribedGroup, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListedGroup,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, OffsetFetchResponse, Response,
    SyncGroupRequest, TxnOffsetCommitRequest,
};
use fjord_group::records::OffsetsRecord;
use fjord_group::{
    partition_for_group, Effect, GroupConfig, GroupCoordinator, LoadEntry, MemberIdGenerator,
    PersistId, RequestId, TxnProducer,
};
use fjord_protocol::batch::{build_batch, BatchSpec, RecordSpec};
use kafka_protocol::ResponseError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::internal_topic::{
    self, InternalEntry, LeadershipFeed, LoadedPartitions, Move, PartitionLoad, PartitionRead,
};
use crate::log_manager::{now_ms, LogManager, Topic};

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Commands queued for the coordinator before senders wait; bounds memory under a flood.
const INBOX_CAPACITY: usize = 4096;
/// Segment size of `__consumer_offsets` (Kafka's `offsets.topic.segment.bytes`).
const OFFSETS_SEGMENT_BYTES: &str = "104857600";

/// A request the coordinator answers with a [`Response`], possibly after waiting.
#[derive(Debug)]
pub enum GroupRequest {
    /// JoinGroup.
    Join(JoinGroupRequest),
    /// SyncGroup.
    Sync(SyncGroupRequest),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup.
    Leave(LeaveGroupRequest),
    /// OffsetCommit.
    Commit(OffsetCommitRequest),
    /// TxnOffsetCommit.
    TxnCommit(TxnOffsetCommitRequest),
    /// OffsetDelete.
    DeleteOffsets(OffsetDeleteRequest),
    /// DeleteGroups.
    DeleteGroups(Vec<String>),
}

enum Command {
    Request(GroupRequest, oneshot::Sender<Response>),
    FetchOffsets(OffsetFetchRequest, oneshot::Sender<OffsetFetchResponse>),
    Describe(Vec<String>, oneshot::Sender<Vec<DescribedGroup>>),
    List(Vec<String>, oneshot::Sender<Vec<ListedGroup>>),
    PersistDone(PersistId, Result<(), i16>),
    TxnCompleted {
        producer_id: i64,
        partition: i32,
        commit: bool,
        marker_offset: i64,
        done: oneshot::Sender<()>,
    },
    /// A partition taken over was read from the local log (off the task).
    Loaded {
        partition: i32,
        leader_epoch: i32,
        read: Result<PartitionRead, String>,
    },
    /// Read a partition taken over again, after a failed read.
    Reload {
        partition: i32,
        leader_epoch: i32,
    },
}

/// Why the coordinator could not answer.
#[derive(Debug, thiserror::Error)]
pub enum GroupRuntimeError {
    /// The coordinator task has stopped (shutdown).
    #[error("the group coordinator is not running")]
    NotRunning,
}

/// Handle for sending requests to the coordinator task.
#[derive(Debug, Clone)]
pub struct GroupCoordinatorHandle {
    inbox: mpsc::Sender<Command>,
    loaded: LoadedPartitions,
}

impl GroupCoordinatorHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, GroupRuntimeError> {
        internal_topic::ask_task(&self.inbox, make)
            .await
            .ok_or(GroupRuntimeError::NotRunning)
    }

    /// Sends a request and waits for its (possibly parked) answer.
    pub async fn request(&self, request: GroupRequest) -> Result<Response, GroupRuntimeError> {
        self.ask(|tx| Command::Request(request, tx)).await
    }

    /// Committed offsets of a group.
    pub async fn fetch_offsets(
        &self,
        request: OffsetFetchRequest,
    ) -> Result<OffsetFetchResponse, GroupRuntimeError> {
        self.ask(|tx| Command::FetchOffsets(request, tx)).await
    }

    /// DescribeGroups.
    pub async fn describe(
        &self,
        groups: Vec<String>,
    ) -> Result<Vec<DescribedGroup>, GroupRuntimeError> {
        self.ask(|tx| Command::Describe(groups, tx)).await
    }

    /// Applies (commit) or drops (abort) the transactional offsets of `producer_id` once its
    /// marker, at `marker_offset`, is durable in `__consumer_offsets` partition `partition`.
    /// The offset tells whether a replay of the partition in progress already saw the marker.
    pub async fn complete_transaction(
        &self,
        producer_id: i64,
        partition: i32,
        commit: bool,
        marker_offset: i64,
    ) -> Result<(), GroupRuntimeError> {
        self.ask(|done| Command::TxnCompleted {
            producer_id,
            partition,
            commit,
            marker_offset,
            done,
        })
        .await
    }

    /// The `__consumer_offsets` partitions the coordinator has taken over (cluster mode), for
    /// answering NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS without asking the task.
    /// Empty on a single broker, which owns every partition.
    pub fn loaded(&self) -> &LoadedPartitions {
        &self.loaded
    }

    /// ListGroups with a state filter (empty = all).
    pub async fn list(&self, states: Vec<String>) -> Result<Vec<ListedGroup>, GroupRuntimeError> {
        self.ask(|tx| Command::List(states, tx)).await
    }
}

/// Member ids like Kafka's: `<client id>-<uuid>`, the suffix being a random UUID.
#[derive(Debug, Default)]
struct RandomMemberIds;

impl MemberIdGenerator for RandomMemberIds {
    fn next_suffix(&mut self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

/// Settings for the offsets topic and the coordinator.
#[derive(Debug, Clone)]
pub struct GroupRuntimeConfig {
    /// The coordinator's own settings.
    pub group: GroupConfig,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
}

/// Starts the coordinator and runs its task until every handle is dropped.
///
/// Without `feed` (a single broker) it replays all of `__consumer_offsets` first (blocking,
/// before serving) and owns every group. With it (cluster mode) it starts with no group and
/// follows the leadership of the `__consumer_offsets` partitions in the applied image.
pub fn start(
    logs: Weak<LogManager>,
    config: GroupRuntimeConfig,
    feed: Option<LeadershipFeed>,
) -> Result<GroupCoordinatorHandle, fjord_storage::StorageError> {
    let existing = logs.upgrade().and_then(|l| l.topic(OFFSETS_TOPIC));
    // Appends go to the partitions the topic really has, so transaction markers must map
    // groups to partitions with the same count.
    let image_count = feed.as_ref().and_then(|f| {
        f.applied
            .borrow()
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as i32)
    });
    let group_config = GroupConfig {
        offsets_topic_num_partitions: image_count
            .or(existing.as_ref().map(|topic| topic.partition_count()))
            .unwrap_or(config.offsets_topic_num_partitions),
        ..config.group.clone()
    };
    let mut initial_effects = Vec::new();
    let mut coordinator = match feed {
        Some(_) => GroupCoordinator::without_partitions(group_config, Box::new(RandomMemberIds)),
        None => GroupCoordinator::new(group_config, Box::new(RandomMemberIds)),
    };
    if let (Some(topic), None) = (existing, &feed) {
        let records = read_all_records(&topic)?;
        let count = records.len();
        match coordinator.load(records, now_ms()) {
            Ok(effects) => initial_effects = effects,
            Err(e) => tracing::error!(error = %e, "could not replay __consumer_offsets"),
        }
        tracing::info!(
            records = count,
            "loaded consumer groups from __consumer_offsets"
        );
    }
    let (inbox, rx) = mpsc::channel(INBOX_CAPACITY);
    let loaded = LoadedPartitions::default();
    let runtime = Runtime {
        coordinator,
        logs,
        config,
        inbox: inbox.downgrade(),
        pending: HashMap::new(),
        next_request: 0,
        timer: None,
        loaded: loaded.clone(),
        completed_while_loading: BTreeMap::new(),
    };
    tokio::spawn(runtime.run(rx, initial_effects, feed));
    Ok(GroupCoordinatorHandle { inbox, loaded })
}

/// A record (key, value absent for tombstones) or a transaction marker.
type Entry = LoadEntry<Vec<u8>, Vec<u8>>;

/// Every record and transaction marker in `__consumer_offsets`, partition by partition, in
/// log order.
fn read_all_records(topic: &Topic) -> Result<Vec<Entry>, fjord_storage::StorageError> {
    Ok(load_entries(internal_topic::read_entries(topic)?))
}

/// Entries of an internal topic as the group coordinator replays them.
fn load_entries(entries: Vec<InternalEntry>) -> Vec<Entry> {
    entries
        .into_iter()
        .map(|entry| match entry {
            InternalEntry::Record {
                partition,
                transactional_producer,
                key,
                value,
            } => LoadEntry::Record {
                key,
                value,
                producer_id: transactional_producer,
                partition,
            },
            InternalEntry::Marker {
                partition,
                producer_id,
                commit,
            } => LoadEntry::Marker {
                producer_id,
                commit,
                partition,
            },
        })
        .collect()
}

/// A transaction marker that landed in a partition while it was being read.
#[derive(Debug, Clone, Copy)]
struct Completion {
    producer_id: i64,
    commit: bool,
    marker_offset: i64,
}

struct Runtime {
    coordinator: GroupCoordinator,
    logs: Weak<LogManager>,
    config: GroupRuntimeConfig,
    /// For persist completions; weak so the task ends when every handle is gone.
    inbox: mpsc::WeakSender<Command>,
    pending: HashMap<RequestId, oneshot::Sender<Response>>,
    next_request: u64,
    timer: Option<Instant>,
    /// Cluster mode: the partitions taken over, shared with the handlers.
    loaded: LoadedPartitions,
    /// Markers that landed in partitions being read; the replay may not have seen them.
    completed_while_loading: BTreeMap<i32, Vec<Completion>>,
}

impl Runtime {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        initial: Vec<Effect>,
        mut feed: Option<LeadershipFeed>,
    ) {
        self.apply(initial);
        if let Some(feed) = feed.as_mut() {
            let image = feed.applied.borrow_and_update().clone();
            let led = feed.led_here(&image, OFFSETS_TOPIC);
            self.follow(&led);
        }
        let cleanup_every = Duration::from_millis(
            self.config.group.offsets_retention_check_interval_ms.max(1) as u64,
        );
        let mut cleanup = tokio::time::interval(cleanup_every);
        cleanup.tick().await;
        loop {
            let timer = self.timer;
            tokio::select! {
                biased;
                command = rx.recv() => match command {
                    Some(command) => self.handle(command),
                    None => return,
                },
                _ = internal_topic::sleep_until(timer), if timer.is_some() => {
                    self.timer = None;
                    let effects = self.coordinator.tick(now_ms());
                    self.apply(effects);
                }
                _ = cleanup.tick() => {
                    let effects = self.coordinator.cleanup_expired_offsets(now_ms());
                    self.apply(effects);
                }
                image = internal_topic::next_image(&mut feed) => match (image, feed.as_ref()) {
                    (Some(image), Some(f)) => {
                        let led = f.led_here(&image, OFFSETS_TOPIC);
                        self.follow(&led);
                    }
                    _ => feed = None,
                },
            }
        }
    }

    fn handle(&mut self, command: Command) {
        let now = now_ms();
        match command {
            Command::Request(request, reply) => {
                let id = RequestId(self.next_request);
                self.next_request += 1;
                self.pending.insert(id, reply);
                let c = &mut self.coordinator;
                let effects = match request {
                    GroupRequest::Join(r) => c.join_group(id, r, now),
                    GroupRequest::Sync(r) => c.sync_group(id, r, now),
                    GroupRequest::Heartbeat(r) => c.heartbeat(id, r, now),
                    GroupRequest::Leave(r) => c.leave_group(id, r, now),
                    GroupRequest::Commit(r) => c.commit_offsets(id, r, now),
                    GroupRequest::TxnCommit(r) => c.txn_offset_commit(id, r, now),
                    GroupRequest::DeleteOffsets(r) => c.delete_offsets(id, r, now),
                    GroupRequest::DeleteGroups(groups) => c.delete_groups(id, &groups, now),
                };
                self.apply(effects);
            }
            Command::FetchOffsets(request, reply) => {
                let _ = reply.send(self.coordinator.fetch_offsets(&request));
            }
            Command::Describe(groups, reply) => {
                let _ = reply.send(self.coordinator.describe_groups(&groups));
            }
            Command::List(states, reply) => {
                let _ = reply.send(self.coordinator.list_groups(&states));
            }
            Command::PersistDone(id, result) => {
                let effects = self.coordinator.complete_persist(id, result, now);
                self.apply(effects);
            }
            Command::TxnCompleted {
                producer_id,
                partition,
                commit,
                marker_offset,
                done,
            } => {
                if let Some(PartitionLoad::Loading { .. }) = self.loaded.get(partition) {
                    self.completed_while_loading
                        .entry(partition)
                        .or_default()
                        .push(Completion {
                            producer_id,
                            commit,
                            marker_offset,
                        });
                } else {
                    let effects =
                        self.coordinator
                            .complete_transaction(producer_id, partition, commit, now);
                    self.apply(effects);
                }
                let _ = done.send(());
            }
            Command::Loaded {
                partition,
                leader_epoch,
                read,
            } => self.loaded_partition(partition, leader_epoch, read),
            Command::Reload {
                partition,
                leader_epoch,
            } => {
                if self.loaded.get(partition) == Some(PartitionLoad::Loading { leader_epoch }) {
                    self.spawn_read(partition, leader_epoch);
                }
            }
        }
    }

    /// Takes over the partitions led here (`partition → leader epoch`) and gives up the others.
    fn follow(&mut self, led_here: &BTreeMap<i32, i32>) {
        let now = now_ms();
        for step in internal_topic::moves(&self.loaded.snapshot(), led_here) {
            match step {
                Move::Load {
                    partition,
                    leader_epoch,
                } => {
                    tracing::info!(
                        partition,
                        leader_epoch,
                        "loading consumer groups of a __consumer_offsets partition led here"
                    );
                    let effects = self.coordinator.begin_load_partition(partition, now);
                    self.apply(effects);
                    self.completed_while_loading.remove(&partition);
                    self.loaded
                        .set(partition, Some(PartitionLoad::Loading { leader_epoch }));
                    self.spawn_read(partition, leader_epoch);
                }
                Move::Unload { partition } => {
                    tracing::info!(
                        partition,
                        "unloading consumer groups of a __consumer_offsets partition no longer led here"
                    );
                    let effects = self.coordinator.unload_partition(partition, now);
                    self.apply(effects);
                    self.completed_while_loading.remove(&partition);
                    self.loaded.set(partition, None);
                }
            }
        }
    }

    /// Reads `partition` on the blocking pool and reports back with [`Command::Loaded`].
    fn spawn_read(&self, partition: i32, leader_epoch: i32) {
        let (Some(logs), Some(inbox)) = (self.logs.upgrade(), self.inbox.upgrade()) else {
            return;
        };
        internal_topic::spawn_partition_read(logs, inbox, OFFSETS_TOPIC, partition, move |read| {
            Command::Loaded {
                partition,
                leader_epoch,
                read,
            }
        });
    }

    /// Replays a partition read for `leader_epoch`, unless leadership moved on meanwhile;
    /// then applies the markers that landed after the read.
    fn loaded_partition(
        &mut self,
        partition: i32,
        leader_epoch: i32,
        read: Result<PartitionRead, String>,
    ) {
        if self.loaded.get(partition) != Some(PartitionLoad::Loading { leader_epoch }) {
            return;
        }
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(partition, leader_epoch, %error, "could not read a __consumer_offsets partition; retrying");
                internal_topic::retry_load_later(
                    self.inbox.upgrade(),
                    Command::Reload {
                        partition,
                        leader_epoch,
                    },
                );
                return;
            }
        };
        let now = now_ms();
        let count = read.entries.len();
        match self
            .coordinator
            .load_partition(partition, load_entries(read.entries), now)
        {
            Ok(effects) => self.apply(effects),
            Err(e) => {
                tracing::error!(partition, error = %e, "could not replay a __consumer_offsets partition")
            }
        }
        self.loaded
            .set(partition, Some(PartitionLoad::Loaded { leader_epoch }));
        for c in self
            .completed_while_loading
            .remove(&partition)
            .unwrap_or_default()
        {
            if c.marker_offset >= read.end_offset {
                let effects =
                    self.coordinator
                        .complete_transaction(c.producer_id, partition, c.commit, now);
                self.apply(effects);
            }
        }
        tracing::info!(
            partition,
            leader_epoch,
            records = count,
            "loaded consumer groups of a __consumer_offsets partition"
        );
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Respond {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        // The client may have gone; nothing to do then.
                        let _ = reply.send(response);
                    }
                }
                Effect::ScheduleTimeout { at_ms } => {
                    let wait = (at_ms - now_ms()).max(0) as u64;
                    self.timer = Some(Instant::now() + Duration::from_millis(wait));
                }
                Effect::Persist {
                    persist_id,
                    group_id,
                    records,
                    transaction,
                } => self.persist(persist_id, &group_id, &records, transaction),
            }
        }
    }

    /// Appends now (so log order is issue order) and reports completion once durable.
    fn persist(
        &mut self,
        id: PersistId,
        group_id: &str,
        records: &[OffsetsRecord],
        transaction: Option<TxnProducer>,
    ) {
        let appended = self.append(group_id, records, transaction);
        let Some(inbox) = self.inbox.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            let result = match appended {
                Ok((partition, end_offset, logs)) => {
                    internal_topic::wait_durable(&logs, partition, end_offset).await
                }
                Err(code) => Err(code),
            };
            let _ = inbox.send(Command::PersistDone(id, result)).await;
        });
    }

    /// Appends the records, as a transactional batch of `transaction`'s producer if given;
    /// returns the partition, the offset that must become durable, and the log manager (for
    /// its flusher).
    fn append(
        &self,
        group_id: &str,
        records: &[OffsetsRecord],
        transaction: Option<TxnProducer>,
    ) -> Result<Appended, i16> {
        let logs = self
            .logs
            .upgrade()
            .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
        let topic = ensure_offsets_topic(&logs, self.config.offsets_topic_num_partitions)
            .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
        let index = partition_for_group(group_id, topic.partition_count());
        let partition = topic
            .partition(index)
            .cloned()
            .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
        let now = now_ms();
        let specs: Vec<RecordSpec> = records
            .iter()
            .map(|r| RecordSpec {
                timestamp: now,
                key: Some(r.encode_key().to_vec()),
                value: r.encode_value().map(|v| v.to_vec()),
                headers: Vec::new(),
            })
            .collect();
        let spec = match transaction {
            None => BatchSpec::default(),
            // No sequence: the coordinator's appends are not part of the producer's sequence,
            // so the partition neither checks nor remembers them for deduplication.
            Some(txn) => BatchSpec {
                producer_id: txn.producer_id,
                producer_epoch: txn.producer_epoch,
                base_sequence: -1,
                is_transactional: true,
                ..BatchSpec::default()
            },
        };
        let mut batch = build_batch(&spec, &specs);
        let end = internal_topic::append(&partition, &mut batch, now)?;
        Ok((partition, end, logs))
    }
}

type Appended = (Arc<crate::partition::Partition>, i64, Arc<LogManager>);

/// The topic configs of `__consumer_offsets`: compacted like Kafka's, so the latest commit
/// per group and partition survives.
pub fn offsets_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            OFFSETS_SEGMENT_BYTES.to_string(),
        ),
    ])
}

/// Creates `__consumer_offsets` on first use, as Kafka does. In cluster mode the topic
/// comes from the metadata image (FindCoordinator creates it through the controller), so
/// only an existing one is returned.
pub fn ensure_offsets_topic(
    logs: &LogManager,
    partitions: i32,
) -> Result<Arc<Topic>, crate::log_manager::TopicError> {
    if let Some(topic) = logs.topic(OFFSETS_TOPIC) {
        return Ok(topic);
    }
    logs.create_internal_topic(OFFSETS_TOPIC, partitions, offsets_topic_configs())
}

#[cfg(test)]
#[path = "group_runtime_test.rs"]
pub(crate) mod tests;

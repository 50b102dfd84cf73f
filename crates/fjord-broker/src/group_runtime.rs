//! The runtime around the consumer-group state machine (`fjord_group`).
//!
//! One task owns the [`GroupCoordinator`] and drains its inbox; handlers send it requests and
//! await the answer. The task carries out the machine's effects: appends to
//! `__consumer_offsets` (in the order issued, so the log replays to the same state), waits for
//! them to be durable off the task, answers parked JoinGroup/SyncGroup requests, and keeps the
//! single timer the machine asks for. On start it replays `__consumer_offsets` into the machine.
//!
//! ```text
//!  handler ──Command──► runtime task ──► GroupCoordinator (pure)
//!     ▲                     │  effects: Persist → append + flush → complete_persist
//!     └──── oneshot ◄───────┘           Respond → oneshot, ScheduleTimeout → timer → tick
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

use crate::internal_topic::{self, InternalEntry};
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
        done: oneshot::Sender<()>,
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
    /// marker is durable in `__consumer_offsets` partition `partition`.
    pub async fn complete_transaction(
        &self,
        producer_id: i64,
        partition: i32,
        commit: bool,
    ) -> Result<(), GroupRuntimeError> {
        self.ask(|done| Command::TxnCompleted {
            producer_id,
            partition,
            commit,
            done,
        })
        .await
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

/// Starts the coordinator: replays `__consumer_offsets` (blocking, before serving), then runs
/// the task until every handle is dropped.
pub fn start(
    logs: Weak<LogManager>,
    config: GroupRuntimeConfig,
) -> Result<GroupCoordinatorHandle, fjord_storage::StorageError> {
    let existing = logs.upgrade().and_then(|l| l.topic(OFFSETS_TOPIC));
    // Appends go to the partitions the topic really has, so transaction markers must map
    // groups to partitions with the same count.
    let group_config = GroupConfig {
        offsets_topic_num_partitions: existing
            .as_ref()
            .map_or(config.offsets_topic_num_partitions, |topic| {
                topic.partition_count()
            }),
        ..config.group.clone()
    };
    let mut coordinator = GroupCoordinator::new(group_config, Box::new(RandomMemberIds));
    let mut initial_effects = Vec::new();
    if let Some(topic) = existing {
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
    let runtime = Runtime {
        coordinator,
        logs,
        config,
        inbox: inbox.downgrade(),
        pending: HashMap::new(),
        next_request: 0,
        timer: None,
    };
    tokio::spawn(runtime.run(rx, initial_effects));
    Ok(GroupCoordinatorHandle { inbox })
}

/// A record (key, value absent for tombstones) or a transaction marker.
type Entry = LoadEntry<Vec<u8>, Vec<u8>>;

/// Every record and transaction marker in `__consumer_offsets`, partition by partition, in
/// log order.
fn read_all_records(topic: &Topic) -> Result<Vec<Entry>, fjord_storage::StorageError> {
    Ok(internal_topic::read_entries(topic)?
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
        .collect())
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
}

impl Runtime {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, initial: Vec<Effect>) {
        self.apply(initial);
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
                done,
            } => {
                let effects =
                    self.coordinator
                        .complete_transaction(producer_id, partition, commit, now);
                self.apply(effects);
                let _ = done.send(());
            }
        }
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

//! The runtime around the transaction-coordinator state machine (`fjord_txn`).
//!
//! One task owns the [`TransactionCoordinator`] and drains its inbox, like the group runtime.
//! It carries out the machine's effects: appends to `__transaction_state` in the order issued
//! and reports them once durable, writes commit/abort markers to every partition of a
//! transaction (telling the group coordinator when a marker lands in `__consumer_offsets`), and
//! keeps the single timer that aborts transactions past their timeout.
//!
//! On a single broker it replays all of `__transaction_state` at start, which re-sends the
//! markers of transactions caught mid-completion. In cluster mode it follows the leadership of
//! the `__transaction_state` partitions in the applied image, as the group runtime does for
//! `__consumer_offsets`: a partition led here (at a new leader epoch: again) is replayed from
//! the local log off the task, re-sending its pending markers, with that leader epoch as the
//! coordinator epoch of its markers; a partition no longer led here is forgotten, and the
//! markers still being sent for its ids stop (the new leader sends them).
//!
//! ```text
//!  handler ──Command──► runtime task ──► TransactionCoordinator (pure)
//!     ▲                     │ Persist → append + fsync → complete_persist
//!     └──── oneshot ◄───────┤ WriteMarkers → marker task (every partition, fsync, retry)
//!                           │                   └─► markers_written
//!                           └ ScheduleTimeout → timer → tick
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use fjord_protocol::batch::{build_batch, BatchSpec, RecordSpec};
use fjord_txn::api::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribedTransaction, EndTxnRequest,
    InitProducerIdRequest, ListedTransaction, Response,
};
use fjord_txn::records::TransactionLogRecord;
use fjord_txn::{
    partition_for_transactional_id, Effect, ErrorCode, PersistId, ProducerIdAllocator, RequestId,
    TopicPartition, TransactionCoordinator, TxnConfig,
};
use kafka_protocol::ResponseError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cluster::{ClusterNode, Leadership};
use crate::group_runtime::{GroupCoordinatorHandle, OFFSETS_TOPIC};
use crate::internal_topic::{
    self, InternalEntry, LeadershipFeed, LoadedPartitions, Move, PartitionLoad, PartitionRead,
};
use crate::log_manager::{now_ms, LogManager, Topic};
use crate::partition::PartitionError;
use crate::producer_ids::ProducerIdManager;

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// Commands queued before senders wait; bounds memory under a flood.
const INBOX_CAPACITY: usize = 4096;
/// Segment size of `__transaction_state` (Kafka's `transaction.state.log.segment.bytes`).
const STATE_SEGMENT_BYTES: &str = "104857600";
/// Pause before writing a transaction's markers again after a failure (Kafka retries forever).
const MARKER_RETRY: Duration = Duration::from_millis(500);

/// A request the coordinator answers with a [`Response`], possibly after waiting.
#[derive(Debug)]
pub enum TxnRequest {
    /// InitProducerId with a transactional id.
    InitProducerId(InitProducerIdRequest),
    /// AddPartitionsToTxn.
    AddPartitions(AddPartitionsToTxnRequest),
    /// AddOffsetsToTxn.
    AddOffsets(AddOffsetsToTxnRequest),
    /// EndTxn.
    EndTxn(EndTxnRequest),
}

enum Command {
    Request(TxnRequest, oneshot::Sender<Response>),
    List {
        states: Vec<String>,
        producer_ids: Vec<i64>,
        reply: oneshot::Sender<Vec<ListedTransaction>>,
    },
    Describe(Vec<String>, oneshot::Sender<Vec<DescribedTransaction>>),
    PersistDone(PersistId, Result<(), i16>),
    MarkersWritten {
        transactional_id: String,
        producer_id: i64,
        epoch: i16,
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
pub enum TxnRuntimeError {
    /// The coordinator task has stopped (shutdown).
    #[error("the transaction coordinator is not running")]
    NotRunning,
}

/// Handle for sending requests to the coordinator task.
#[derive(Debug, Clone)]
pub struct TxnCoordinatorHandle {
    inbox: mpsc::Sender<Command>,
    loaded: LoadedPartitions,
}

impl TxnCoordinatorHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, TxnRuntimeError> {
        internal_topic::ask_task(&self.inbox, make)
            .await
            .ok_or(TxnRuntimeError::NotRunning)
    }

    /// Sends a request and waits for its (possibly parked) answer.
    pub async fn request(&self, request: TxnRequest) -> Result<Response, TxnRuntimeError> {
        self.ask(|tx| Command::Request(request, tx)).await
    }

    /// ListTransactions with state and producer-id filters (empty = all).
    pub async fn list(
        &self,
        states: Vec<String>,
        producer_ids: Vec<i64>,
    ) -> Result<Vec<ListedTransaction>, TxnRuntimeError> {
        self.ask(|reply| Command::List {
            states,
            producer_ids,
            reply,
        })
        .await
    }

    /// DescribeTransactions.
    pub async fn describe(
        &self,
        transactional_ids: Vec<String>,
    ) -> Result<Vec<DescribedTransaction>, TxnRuntimeError> {
        self.ask(|tx| Command::Describe(transactional_ids, tx))
            .await
    }

    /// The `__transaction_state` partitions the coordinator has taken over (cluster mode),
    /// for answering NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS without asking the task.
    /// Empty on a single broker, which owns every partition.
    pub fn loaded(&self) -> &LoadedPartitions {
        &self.loaded
    }
}

/// Producer ids from the broker's persisted blocks, so transactional and idempotent producers
/// never share an id, across restarts too.
struct BrokerProducerIds(Arc<ProducerIdManager>);

impl ProducerIdAllocator for BrokerProducerIds {
    fn next_producer_id(&mut self) -> Result<i64, ErrorCode> {
        self.0.next_id().map_err(|e| {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            ErrorCode::Other(crate::error::producer_id_error(&e).code())
        })
    }
}

/// Settings of the runtime around the coordinator.
#[derive(Debug, Clone)]
pub struct TxnRuntimeConfig {
    /// The coordinator's own settings.
    pub coordinator: TxnConfig,
    /// `transactional.id.expiration.ms`.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub cleanup_interval_ms: i64,
}

/// Starts the coordinator and runs its task until every handle is dropped. In cluster mode
/// (`cluster`), markers for partitions led by other brokers are sent to them with
/// WriteTxnMarkers.
///
/// Without `feed` (a single broker) it replays all of `__transaction_state` first (blocking,
/// before serving) and owns every transactional id. With it (cluster mode) it starts with no
/// id and follows the leadership of the `__transaction_state` partitions in the applied image.
pub fn start(
    logs: Weak<LogManager>,
    runtime_config: TxnRuntimeConfig,
    producer_ids: Arc<ProducerIdManager>,
    groups: GroupCoordinatorHandle,
    cluster: Option<Arc<ClusterNode>>,
    feed: Option<LeadershipFeed>,
) -> Result<TxnCoordinatorHandle, fjord_storage::StorageError> {
    let mut config = runtime_config.coordinator.clone();
    let existing = logs
        .upgrade()
        .and_then(|l| l.topic(TRANSACTION_STATE_TOPIC));
    // Ids map to the partitions the topic really has.
    if let Some(count) = feed.as_ref().and_then(|f| {
        f.applied
            .borrow()
            .topic(TRANSACTION_STATE_TOPIC)
            .map(|t| t.partitions.len() as i32)
    }) {
        config.transaction_state_num_partitions = count;
    }
    let ids = Box::new(BrokerProducerIds(producer_ids));
    let mut coordinator = match feed {
        Some(_) => TransactionCoordinator::without_partitions(config.clone(), ids),
        None => TransactionCoordinator::new(config.clone(), ids),
    };
    let mut initial_effects = Vec::new();
    if let (Some(topic), None) = (existing, &feed) {
        let records = state_records(internal_topic::read_entries(&topic)?);
        let count = records.len();
        match coordinator.load(records, now_ms()) {
            Ok(effects) => initial_effects = effects,
            Err(e) => tracing::error!(error = %e, "could not replay __transaction_state"),
        }
        tracing::info!(
            records = count,
            "loaded transactions from __transaction_state"
        );
    }
    let (inbox, rx) = mpsc::channel(INBOX_CAPACITY);
    let loaded = LoadedPartitions::default();
    let runtime = Runtime {
        coordinator,
        logs,
        config,
        expiration: runtime_config,
        groups,
        cluster,
        inbox: inbox.downgrade(),
        pending: HashMap::new(),
        next_request: 0,
        timer: None,
        loaded: loaded.clone(),
        marker_tasks: HashMap::new(),
    };
    tokio::spawn(runtime.run(rx, initial_effects, feed));
    Ok(TxnCoordinatorHandle { inbox, loaded })
}

/// The key/value records of `__transaction_state` entries (it holds no markers).
fn state_records(entries: Vec<InternalEntry>) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    entries
        .into_iter()
        .filter_map(|e| match e {
            InternalEntry::Record { key, value, .. } => Some((key, value)),
            InternalEntry::Marker { .. } => None,
        })
        .collect()
}

/// A marker task in flight for one transaction, so it can be stopped when the id's partition
/// is given up.
#[derive(Debug)]
struct MarkerTask {
    producer_id: i64,
    epoch: i16,
    task: tokio::task::AbortHandle,
}

struct Runtime {
    coordinator: TransactionCoordinator,
    logs: Weak<LogManager>,
    config: TxnConfig,
    expiration: TxnRuntimeConfig,
    groups: GroupCoordinatorHandle,
    /// Cluster mode: where each partition's leader is.
    cluster: Option<Arc<ClusterNode>>,
    /// For completions; weak so the task ends when every handle is gone.
    inbox: mpsc::WeakSender<Command>,
    pending: HashMap<RequestId, oneshot::Sender<Response>>,
    next_request: u64,
    timer: Option<Instant>,
    /// Cluster mode: the partitions taken over, shared with the handlers.
    loaded: LoadedPartitions,
    /// Markers being written, per transactional id.
    marker_tasks: HashMap<String, MarkerTask>,
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
            let led = feed.led_here(&image, TRANSACTION_STATE_TOPIC);
            self.follow(&led);
        }
        let mut cleanup = tokio::time::interval(Duration::from_millis(
            self.expiration.cleanup_interval_ms.max(1) as u64,
        ));
        cleanup.tick().await;
        loop {
            let timer = self.timer;
            tokio::select! {
                biased;
                command = rx.recv() => match command {
                    Some(command) => self.handle(command),
                    None => return,
                },
                _ = cleanup.tick() => {
                    let effects = self.coordinator.expire_transactional_ids(
                        now_ms(),
                        self.expiration.transactional_id_expiration_ms,
                    );
                    self.apply(effects);
                }
                _ = internal_topic::sleep_until(timer), if timer.is_some() => {
                    self.timer = None;
                    let effects = self.coordinator.tick(now_ms());
                    self.apply(effects);
                }
                image = internal_topic::next_image(&mut feed) => match (image, feed.as_ref()) {
                    (Some(image), Some(f)) => {
                        let led = f.led_here(&image, TRANSACTION_STATE_TOPIC);
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
                    TxnRequest::InitProducerId(r) => c.init_producer_id(id, r, now),
                    TxnRequest::AddPartitions(r) => c.add_partitions_to_txn(id, r, now),
                    TxnRequest::AddOffsets(r) => c.add_offsets_to_txn(id, r, now),
                    TxnRequest::EndTxn(r) => c.end_txn(id, r, now),
                };
                self.apply(effects);
            }
            Command::List {
                states,
                producer_ids,
                reply,
            } => {
                let _ = reply.send(self.coordinator.list_transactions(&states, &producer_ids));
            }
            Command::Describe(ids, reply) => {
                let _ = reply.send(self.coordinator.describe_transactions(&ids));
            }
            Command::PersistDone(id, result) => {
                let effects = self.coordinator.complete_persist(id, result, now);
                self.apply(effects);
            }
            Command::MarkersWritten {
                transactional_id,
                producer_id,
                epoch,
            } => {
                if self
                    .marker_tasks
                    .get(&transactional_id)
                    .is_some_and(|t| t.producer_id == producer_id && t.epoch == epoch)
                {
                    self.marker_tasks.remove(&transactional_id);
                }
                let effects =
                    self.coordinator
                        .markers_written(&transactional_id, producer_id, epoch, now);
                self.apply(effects);
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
        for step in internal_topic::moves(&self.loaded.snapshot(), led_here) {
            match step {
                Move::Load {
                    partition,
                    leader_epoch,
                } => {
                    tracing::info!(
                        partition,
                        leader_epoch,
                        "loading transactions of a __transaction_state partition led here"
                    );
                    self.stop_markers(partition);
                    let effects = self.coordinator.begin_load_partition(partition);
                    self.apply(effects);
                    self.loaded
                        .set(partition, Some(PartitionLoad::Loading { leader_epoch }));
                    self.spawn_read(partition, leader_epoch);
                }
                Move::Unload { partition } => {
                    tracing::info!(
                        partition,
                        "unloading transactions of a __transaction_state partition no longer led here"
                    );
                    self.stop_markers(partition);
                    let effects = self.coordinator.unload_partition(partition);
                    self.apply(effects);
                    self.loaded.set(partition, None);
                }
            }
        }
    }

    /// Stops the marker tasks of the ids of `partition`.
    fn stop_markers(&mut self, partition: i32) {
        let coordinator = &self.coordinator;
        self.marker_tasks.retain(|id, task| {
            let keep = coordinator.partition_of(id) != partition;
            if !keep {
                task.task.abort();
            }
            keep
        });
    }

    /// Reads `partition` on the blocking pool and reports back with [`Command::Loaded`].
    fn spawn_read(&self, partition: i32, leader_epoch: i32) {
        let (Some(logs), Some(inbox)) = (self.logs.upgrade(), self.inbox.upgrade()) else {
            return;
        };
        internal_topic::spawn_partition_read(
            logs,
            inbox,
            TRANSACTION_STATE_TOPIC,
            partition,
            move |read| Command::Loaded {
                partition,
                leader_epoch,
                read,
            },
        );
    }

    /// Replays a partition read for `leader_epoch`, unless leadership moved on meanwhile.
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
                tracing::warn!(partition, leader_epoch, %error, "could not read a __transaction_state partition; retrying");
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
        let records = state_records(read.entries);
        let count = records.len();
        match self
            .coordinator
            .load_partition(partition, leader_epoch, records, now_ms())
        {
            Ok(effects) => self.apply(effects),
            Err(e) => {
                tracing::error!(partition, error = %e, "could not replay a __transaction_state partition")
            }
        }
        self.loaded
            .set(partition, Some(PartitionLoad::Loaded { leader_epoch }));
        tracing::info!(
            partition,
            leader_epoch,
            records = count,
            "loaded transactions of a __transaction_state partition"
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
                        let _ = reply.send(response);
                    }
                }
                Effect::ScheduleTimeout { at_ms } => {
                    let wait = (at_ms - now_ms()).max(0) as u64;
                    self.timer = Some(Instant::now() + Duration::from_millis(wait));
                }
                Effect::Persist {
                    persist_id,
                    transactional_id,
                    record,
                } => self.persist(persist_id, &transactional_id, &record),
                Effect::WriteMarkers {
                    transactional_id,
                    producer_id,
                    epoch,
                    commit,
                    coordinator_epoch,
                    partitions,
                } => {
                    let (Some(logs), Some(inbox)) = (self.logs.upgrade(), self.inbox.upgrade())
                    else {
                        continue;
                    };
                    let groups = self.groups.clone();
                    let cluster = self.cluster.clone();
                    let id = transactional_id.clone();
                    let task = tokio::spawn(async move {
                        let markers = Markers {
                            producer_id,
                            epoch,
                            commit,
                            coordinator_epoch,
                        };
                        markers
                            .write_all(&logs, &groups, cluster.as_deref(), &partitions)
                            .await;
                        let _ = inbox
                            .send(Command::MarkersWritten {
                                transactional_id,
                                producer_id,
                                epoch,
                            })
                            .await;
                    });
                    let task = MarkerTask {
                        producer_id,
                        epoch,
                        task: task.abort_handle(),
                    };
                    if let Some(previous) = self.marker_tasks.insert(id, task) {
                        previous.task.abort();
                    }
                }
            }
        }
    }

    /// Appends now (so log order is issue order) and reports completion once durable.
    fn persist(&mut self, id: PersistId, transactional_id: &str, record: &TransactionLogRecord) {
        let Some(inbox) = self.inbox.upgrade() else {
            return;
        };
        let appended = self.append(transactional_id, record);
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

    fn append(
        &self,
        transactional_id: &str,
        record: &TransactionLogRecord,
    ) -> Result<(Arc<crate::partition::Partition>, i64, Arc<LogManager>), i16> {
        let logs = self
            .logs
            .upgrade()
            .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
        let topic =
            ensure_transaction_state_topic(&logs, self.config.transaction_state_num_partitions)
                .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
        let index = partition_for_transactional_id(transactional_id, topic.partition_count());
        let partition = topic
            .partition(index)
            .cloned()
            .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
        let now = now_ms();
        let spec = RecordSpec {
            timestamp: now,
            key: Some(record.encode_key().to_vec()),
            value: record.encode_value().map(|v| v.to_vec()),
            headers: Vec::new(),
        };
        let mut batch = build_batch(&BatchSpec::default(), &[spec]);
        let end = internal_topic::append(&partition, &mut batch, now)?;
        Ok((partition, end, logs))
    }
}

/// The markers ending one transaction.
#[derive(Debug, Clone, Copy)]
struct Markers {
    producer_id: i64,
    epoch: i16,
    commit: bool,
    /// The leader epoch of the transactional id's `__transaction_state` partition.
    coordinator_epoch: i32,
}

impl Markers {
    /// Writes the marker to every partition and waits until each is durable, retrying failed
    /// partitions until they succeed or are gone (a deleted topic needs no marker).
    async fn write_all(
        self,
        logs: &Arc<LogManager>,
        groups: &GroupCoordinatorHandle,
        cluster: Option<&ClusterNode>,
        partitions: &[TopicPartition],
    ) {
        let mut left: Vec<&TopicPartition> = partitions.iter().collect();
        loop {
            // All partitions at once, so their fsyncs share the flusher's rounds.
            let outcomes = futures::future::join_all(
                left.iter()
                    .map(|tp| self.write_one(logs, groups, cluster, tp)),
            )
            .await;
            let mut failed = Vec::new();
            for (tp, outcome) in left.into_iter().zip(outcomes) {
                if let Err(e) = outcome {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "transaction marker not written; retrying");
                    failed.push(tp);
                }
            }
            if failed.is_empty() {
                return;
            }
            left = failed;
            tokio::time::sleep(MARKER_RETRY).await;
        }
    }

    /// Writes the marker where the partition's leader is: here, or (cluster mode) at the
    /// leading broker. A partition gone from the image needs no marker; one without a leader
    /// is retried until it has one.
    async fn write_one(
        self,
        logs: &Arc<LogManager>,
        groups: &GroupCoordinatorHandle,
        cluster: Option<&ClusterNode>,
        tp: &TopicPartition,
    ) -> Result<(), String> {
        let marker = MarkerSpec {
            producer_id: self.producer_id,
            producer_epoch: self.epoch,
            commit: self.commit,
            coordinator_epoch: self.coordinator_epoch,
        };
        let local = || write_marker(logs, groups, tp, marker);
        let Some(cluster) = cluster else {
            return match local().await {
                Ok(()) | Err(MarkerError::UnknownPartition) => Ok(()),
                Err(e) => Err(e.to_string()),
            };
        };
        match cluster.leadership(&tp.topic, tp.partition) {
            Leadership::Unknown => Ok(()),
            Leadership::Offline { .. } => Err("the partition has no leader".into()),
            // The image says it is led here, so a partition not open yet is retried.
            Leadership::Here { .. } => local().await.map_err(|e| e.to_string()),
            Leadership::Elsewhere { leader, .. } => cluster
                .inter_broker()
                .write_txn_marker(&cluster.image(), leader, &tp.topic, tp.partition, marker)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// Why a marker could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// The partition is not hosted here (or was deleted).
    #[error("unknown topic or partition")]
    UnknownPartition,
    /// The partition refused the marker (e.g. a stale producer epoch) or its log failed.
    #[error(transparent)]
    Partition(#[from] PartitionError),
    /// The marker was written but not made durable in time; the Kafka code says why.
    #[error("error code {0} waiting for the marker to be durable")]
    NotDurable(i16),
    /// The group coordinator could not take the outcome of transactional offset commits.
    #[error("the group coordinator is not running")]
    Groups,
}

/// One commit or abort marker to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerSpec {
    /// The producer whose transaction ends.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
    /// Commit (`true`) or abort.
    pub commit: bool,
    /// The leader epoch of the transaction coordinator's `__transaction_state` partition,
    /// which tells a deposed coordinator's late markers apart.
    pub coordinator_epoch: i32,
}

/// Writes one commit/abort marker, waits until it is durable, and, for `__consumer_offsets`,
/// lets the group coordinator apply or drop the transaction's offsets. Shared by the
/// coordinator's own marker writes and WriteTxnMarkers.
pub async fn write_marker(
    logs: &Arc<LogManager>,
    groups: &GroupCoordinatorHandle,
    tp: &TopicPartition,
    marker: MarkerSpec,
) -> Result<(), MarkerError> {
    let MarkerSpec {
        producer_id,
        producer_epoch,
        commit,
        coordinator_epoch,
    } = marker;
    let partition = logs
        .topic(&tp.topic)
        .and_then(|t: Arc<Topic>| t.partition(tp.partition).cloned())
        .ok_or(MarkerError::UnknownPartition)?;
    let offset = match partition.write_marker(
        producer_id,
        producer_epoch,
        commit,
        coordinator_epoch,
        now_ms(),
    ) {
        Ok(offset) => offset,
        Err(PartitionError::Closed(_)) => return Err(MarkerError::UnknownPartition),
        Err(e) => return Err(e.into()),
    };
    tracing::trace!(topic = %tp.topic, partition = tp.partition, producer_id, coordinator_epoch, commit, offset, "transaction marker written");
    internal_topic::wait_durable(logs, partition, offset + 1)
        .await
        .map_err(MarkerError::NotDurable)?;
    if tp.topic == OFFSETS_TOPIC {
        groups
            .complete_transaction(producer_id, tp.partition, commit, offset)
            .await
            .map_err(|_| MarkerError::Groups)?;
    }
    Ok(())
}

/// The topic configs of `__transaction_state`: compacted like Kafka's, so the latest state
/// per transactional id survives.
pub fn transaction_state_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), STATE_SEGMENT_BYTES.to_string()),
    ])
}

/// Creates `__transaction_state` on first use, as Kafka does. In cluster mode the topic
/// comes from the metadata image (FindCoordinator creates it through the controller), so
/// only an existing one is returned.
pub fn ensure_transaction_state_topic(
    logs: &LogManager,
    partitions: i32,
) -> Result<Arc<Topic>, crate::log_manager::TopicError> {
    if let Some(topic) = logs.topic(TRANSACTION_STATE_TOPIC) {
        return Ok(topic);
    }
    logs.create_internal_topic(
        TRANSACTION_STATE_TOPIC,
        partitions,
        transaction_state_topic_configs(),
    )
}

#[cfg(test)]
#[path = "txn_runtime_test.rs"]
mod tests;
